"""Texts that residents read: Jinja2 templates per message kind, form and language.

Each kind has a long form (letter and digital mailbox: a subject and a body) and a short form
(SMS: a body only). Templates are plain text files named ``<kind>.<form>.<language>.j2`` in the
package's ``templates`` directory; a region can replace any of them, or the shared partials
(``_*.j2``), by putting a file with the same name in an override directory, which is searched
first.

A long template defines two blocks, ``subject`` and ``body``; a short template is its body.

Languages. A resident whose language is ``en`` reads English; everyone else reads Swedish. A
resident whose language is neither (``ar``, ``so``, ``ti``, ...) also gets one line in their own
language under the Swedish text when the region supplies it: ``<kind>.note.<language>.j2`` in
the override directory (e.g. ``invitation.note.ar.j2``), one per message kind. The note goes
under the body of the letter or mailbox message, and under the SMS when the SMS still fits its
segments with it (else the SMS goes in Swedish alone: a note never costs a resident their SMS).
A note is given the same variables, with the dates as digits (``2028-03-31``,
``2027-03-03 09:15``) since they go into a sentence in another language. Without a note file,
Swedish alone.
Variables that the caller did not give are *undefined*, not empty, so a template that needs an
appointment time fails loudly when rendered without one (``StrictUndefined``); optional ones are
tested with ``is defined``. The personnummer is never in the context, so no template can print it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Literal, get_args

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from halsosamtal.core.clock import STOCKHOLM
from halsosamtal.messaging.sms import fits_sms

MessageKind = Literal[
    "invitation",
    "reminder",
    "booking_confirmation",
    "booking_moved",
    "booking_cancelled",
    "appointment_reminder",
]
Form = Literal["long", "short"]
Language = Literal["sv", "en"]

MESSAGE_KINDS: tuple[MessageKind, ...] = get_args(MessageKind)
FORMS: tuple[Form, ...] = get_args(Form)
LANGUAGES: tuple[Language, ...] = get_args(Language)

BUILTIN_DIR = Path(__file__).with_name("templates")

_SV_WEEKDAYS = ("måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag")
_SV_MONTHS = (
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
)
_EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class MessageTemplateError(Exception):
    """A template could not be rendered; ``template`` names the file that failed."""

    def __init__(self, message: str, *, template: str) -> None:
        super().__init__(message)
        self.template = template


class MissingTemplate(MessageTemplateError):
    """No file with this name in the override directory or among the built-in templates."""


class MissingVariable(MessageTemplateError):
    """The template uses a variable (or block) that the context does not give."""

    def __init__(self, message: str, *, template: str, variable: str) -> None:
        super().__init__(message, template=template)
        self.variable = variable


def resolve_language(language: str) -> Language:
    """The language a resident reads: English when their language is ``en``, else Swedish."""
    return "en" if language.strip().lower() == "en" else "sv"


_LANGUAGE_CODE = re.compile(r"[a-z]{2}")


def note_language(language: str) -> str | None:
    """The language of the line added under the Swedish text: the resident's own, when it is a
    2-letter code and neither Swedish nor English; else None."""
    code = language.strip().lower()
    if code in LANGUAGES or not _LANGUAGE_CODE.fullmatch(code):
        return None
    return code


def format_date(value: date, language: Language) -> str:
    """``31 mars 2028`` / ``31 March 2028``."""
    months = _EN_MONTHS if language == "en" else _SV_MONTHS
    return f"{value.day} {months[value.month - 1]} {value.year}"


def format_appointment(value: datetime, language: Language) -> str:
    """An aware time as residents read it, in Swedish local time.

    ``onsdag 3 mars 2027 kl. 09.15`` (Swedish writes the time with a full stop) or
    ``Wednesday 3 March 2027 at 09:15``. A naive time is refused: it could be off by the
    UTC offset, and an appointment an hour wrong is a missed appointment.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("appointment time must be timezone-aware")
    local = value.astimezone(STOCKHOLM)
    if language == "en":
        return f"{_EN_WEEKDAYS[local.weekday()]} {format_date(local.date(), 'en')} at {local:%H:%M}"
    return f"{_SV_WEEKDAYS[local.weekday()]} {format_date(local.date(), 'sv')} kl. {local:%H.%M}"


@dataclass(frozen=True, slots=True)
class MessageContext:
    """What a message may say. Optional fields left as None are undefined in the template."""

    unit_name: str
    year: int
    age: int
    valid_until: date
    """Last day the invitation can be used."""
    booking_url: str
    unit_phone: str | None = None
    unit_address: str | None = None
    """The unit's visiting address (long forms: letters and e-mail)."""
    appointment_at: datetime | None = None
    previous_appointment_at: datetime | None = None
    """For ``booking_moved``: the time that no longer holds."""
    reminder_number: int | None = None
    """For ``reminder``: 1 for the first reminder, 2 for the second, ..."""

    def __post_init__(self) -> None:
        if self.reminder_number is not None and self.reminder_number < 1:
            raise ValueError("reminder_number starts at 1")

    def variables(self, language: Language) -> dict[str, object]:
        """The template variables, dates already written out in ``language``."""
        found: dict[str, object] = {
            "unit_name": self.unit_name,
            "year": self.year,
            "age": self.age,
            "valid_until": format_date(self.valid_until, language),
            "booking_url": self.booking_url,
        }
        if self.unit_phone is not None and self.unit_phone.strip():
            found["unit_phone"] = self.unit_phone.strip()
        if self.unit_address is not None and self.unit_address.strip():
            found["unit_address"] = self.unit_address.strip()
        if self.appointment_at is not None:
            found["appointment"] = format_appointment(self.appointment_at, language)
        if self.previous_appointment_at is not None:
            found["previous_appointment"] = format_appointment(self.previous_appointment_at, language)
        if self.reminder_number is not None:
            found["reminder_number"] = self.reminder_number
        return found

    def note_variables(self) -> dict[str, object]:
        """The variables of a note in another language: dates and times as digits, Swedish
        local time (``2028-03-31``, ``2027-03-03 09:15``)."""
        found = self.variables("sv")
        found["valid_until"] = self.valid_until.isoformat()
        if self.appointment_at is not None:
            found["appointment"] = f"{self.appointment_at.astimezone(STOCKHOLM):%Y-%m-%d %H:%M}"
        if self.previous_appointment_at is not None:
            found["previous_appointment"] = (
                f"{self.previous_appointment_at.astimezone(STOCKHOLM):%Y-%m-%d %H:%M}"
            )
        return found


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A rendered text: ``subject`` for the long form, None for the short (SMS) form.

    ``language`` is the language of the text (Swedish or English); ``note``, the template of the
    line in the resident's own language under it, if one was added."""

    kind: MessageKind
    form: Form
    language: Language
    template: str
    subject: str | None
    body: str
    note: str | None = None


def template_name(kind: MessageKind, form: Form, language: Language) -> str:
    """The file name of a template, e.g. ``invitation.long.sv.j2``."""
    return f"{kind}.{form}.{language}.j2"


def note_template_name(kind: MessageKind, language: str) -> str:
    """The file name of a note in another language, e.g. ``invitation.note.ar.j2``."""
    return f"{kind}.note.{language}.j2"


@lru_cache(maxsize=32)
def _environment(override_dir: Path | None) -> SandboxedEnvironment:
    loaders: list[jinja2.BaseLoader] = []
    if override_dir is not None:
        loaders.append(jinja2.FileSystemLoader(override_dir))
    loaders.append(jinja2.FileSystemLoader(BUILTIN_DIR))
    # Sandboxed because override templates are edited by regional staff, not developers: a
    # template must not reach Python internals. Autoescape is off because the output is plain
    # text (letters, SMS); HTML escaping would print "&amp;" to residents.
    return SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=True,
    )


_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")
_BLANK_LINES = re.compile(r"\n{3,}")


def _failing_template(tb: TracebackType | None, default: str) -> str:
    """The template file of the innermost Jinja frame (an included partial, say)."""
    found = default
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = Path(filename).name
        tb = tb.tb_next
    return found


def _long_text(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines))


def _one_line(text: str) -> str:
    # SMS and subjects are one line however the template is laid out for reading.
    return " ".join(text.split())


def render(
    kind: MessageKind,
    form: Form,
    language: str,
    context: MessageContext,
    override_dir: Path | None = None,
) -> RenderedMessage:
    """Render the ``form`` of ``kind`` for a resident whose language is ``language``.

    ``override_dir``: a directory whose files win over the built-in templates of the same name.
    Raises ``MissingTemplate`` or ``MissingVariable`` naming the template (and the variable).
    """
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}")
    if override_dir is not None and not override_dir.is_dir():
        # A mistyped directory would otherwise silently fall back to the built-in texts.
        raise ValueError(f"template override directory {override_dir} does not exist")
    lang = resolve_language(language)
    name = template_name(kind, form, lang)
    env = _environment(override_dir.resolve() if override_dir is not None else None)
    with _template_errors(kind, name):
        template = env.get_template(name)
        rendered = _render_form(template, kind, form, lang, name, context.variables(lang))
    reader = note_language(language)
    if reader is None:
        return rendered
    note_name = note_template_name(kind, reader)
    with _template_errors(kind, note_name):
        try:
            note_template = env.get_template(note_name)
        except jinja2.TemplateNotFound as exc:
            if exc.name != note_name:  # pragma: no cover - get_template loads only the note
                raise
            return rendered  # the region has no note in this language: Swedish alone
        note = _one_line(note_template.render(context.note_variables()))
    if not note:
        return rendered
    if form == "short":
        body = f"{rendered.body}\n{note}"
        if not fits_sms(body):
            return rendered
    else:
        body = f"{rendered.body}\n\n{note}"
    return dataclasses.replace(rendered, body=body, note=note_name)


def _render_form(
    template: jinja2.Template,
    kind: MessageKind,
    form: Form,
    lang: Language,
    name: str,
    variables: dict[str, object],
) -> RenderedMessage:
    if form == "short":
        return RenderedMessage(kind, form, lang, name, None, _one_line(template.render(variables)))
    parts: dict[str, str] = {}
    for block in ("subject", "body"):
        if block not in template.blocks:
            raise MissingVariable(
                f"template {name} has no '{block}' block; a long template needs both 'subject' and 'body'",
                template=name,
                variable=block,
            )
        parts[block] = "".join(template.blocks[block](template.new_context(variables)))
    return RenderedMessage(kind, form, lang, name, _one_line(parts["subject"]), _long_text(parts["body"]))


@contextmanager
def _template_errors(kind: MessageKind, name: str) -> Iterator[None]:
    """Jinja's errors as ``MessageTemplateError``s naming the template (and the variable)."""
    try:
        yield
    except jinja2.TemplateNotFound as exc:
        missing = exc.name if isinstance(exc.name, str) else name
        raise MissingTemplate(f"template {missing} not found (wanted by {name})", template=missing) from exc
    except jinja2.UndefinedError as exc:
        failing = _failing_template(exc.__traceback__, name)
        match = _UNDEFINED.match(str(exc))
        variable = match.group(1) if match else str(exc)
        raise MissingVariable(
            f"template {failing} uses {variable!r}, which the context for {kind} does not give",
            template=failing,
            variable=variable,
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        failing = Path(exc.filename).name if exc.filename else (exc.name or name)
        raise MessageTemplateError(
            f"template {failing} line {exc.lineno}: {exc.message}", template=failing
        ) from exc
    except jinja2.TemplateError as exc:  # e.g. a sandbox refusal
        raise MessageTemplateError(f"template {name}: {exc}", template=name) from exc
