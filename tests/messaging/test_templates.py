"""Message texts: every kind, form and language renders, reads right and fits its channel."""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from halsosamtal.core.logging import redact
from halsosamtal.messaging.sms import fits_sms, is_gsm7, sms_size
from halsosamtal.messaging.templates import (
    BUILTIN_DIR,
    FORMS,
    LANGUAGES,
    MESSAGE_KINDS,
    Form,
    MessageContext,
    MessageKind,
    MessageTemplateError,
    MissingTemplate,
    MissingVariable,
    format_appointment,
    render,
    resolve_language,
    template_name,
)
from tests.factories import personnummer

UTC = dt.UTC

# Real-world shaped unit names, the longest ones we expect in a register.
UNIT_NAMES = [
    "Vårdcentralen Capio Citykliniken Helsingborg Väster",
    "Närhälsan Göteborg Centrum vårdcentral och BVC",
    "Hälsocentralen Åre-Järpen Östersunds kommun",
    "Familjeläkarna i Saltsjöbaden, Österåker och Täby",
]

CONTEXT = MessageContext(
    unit_name=UNIT_NAMES[0],
    year=2027,
    age=40,
    valid_until=dt.date(2028, 3, 31),
    booking_url="https://halsosamtal.regionhalland.se/boka",
    unit_phone="010-476 19 00",
    appointment_at=dt.datetime(2027, 3, 3, 8, 15, tzinfo=UTC),
    previous_appointment_at=dt.datetime(2027, 3, 1, 12, 0, tzinfo=UTC),
    reminder_number=1,
)

PNR = personnummer(dt.date(1987, 3, 3))

ALL = [(k, f, lang) for k in MESSAGE_KINDS for f in FORMS for lang in LANGUAGES]


@pytest.mark.parametrize(("kind", "form", "language"), ALL)
def test_every_template_renders_plain_complete_text(kind: MessageKind, form: Form, language: str) -> None:
    rendered = render(kind, form, language, CONTEXT)
    assert (rendered.kind, rendered.form, rendered.language) == (kind, form, language)
    assert rendered.template == template_name(kind, form, rendered.language)
    texts = [rendered.body] if form == "short" else [rendered.subject or "", rendered.body]
    assert all(text.strip() for text in texts)
    for text in texts:
        assert "None" not in text
        assert "{" not in text
        assert "}" not in text
        assert "&amp;" not in text
        assert text == text.strip()
    assert (rendered.subject is None) == (form == "short")
    if form == "short":
        assert "\n" not in rendered.body
    assert UNIT_NAMES[0] in rendered.body


@pytest.mark.parametrize(("kind", "form", "language"), ALL)
def test_no_personnummer_in_any_text(kind: MessageKind, form: Form, language: str) -> None:
    rendered = render(kind, form, language, CONTEXT)
    for text in (rendered.subject or "", rendered.body):
        assert PNR not in text
        assert PNR[2:] not in text
        assert redact(text) == text, "something shaped like a personnummer is in the text"


@pytest.mark.parametrize("unit_name", UNIT_NAMES)
@pytest.mark.parametrize("kind", MESSAGE_KINDS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_sms_forms_fit_in_gsm7_within_the_limit_for_long_unit_names(
    kind: MessageKind, language: str, unit_name: str
) -> None:
    context = replace(CONTEXT, unit_name=unit_name, reminder_number=2)
    body = render(kind, "short", language, context).body
    # GSM-7 keeps an SMS at 153 characters a segment; a stray typographic dash would halve that.
    assert is_gsm7(body), [ch for ch in body if not is_gsm7(ch)]
    assert fits_sms(body), sms_size(body)


def test_swedish_invitation_says_what_the_talk_is() -> None:
    rendered = render("invitation", "long", "sv", CONTEXT)
    body = rendered.body
    assert rendered.subject == f"Välkommen till ett hälsosamtal på {UNIT_NAMES[0]}"
    assert body.startswith("Hej!")
    for fact in (
        "Under 2027 fyller du 40 år",
        "gratis",
        "ungefär en timme",
        "blodtryck",
        "midjemått",
        "blodprover",
        "frågeformulär",
        "https://halsosamtal.regionhalland.se/boka",
        "010-476 19 00",
        "31 mars 2028",
        "tacka nej",
    ):
        assert fact in body, fact
    assert body.index("blodprover") < body.index("Boka din tid")


def test_english_invitation_says_what_the_talk_is() -> None:
    body = render("invitation", "long", "en", CONTEXT).body
    for fact in ("You turn 40 in 2027", "free of charge", "about an hour", "blood samples", "questionnaire"):
        assert fact in body, fact
    assert "31 March 2028" in body


@pytest.mark.parametrize("language", ["sv", "ar", "fi", "so", "", "SV"])
def test_any_language_but_english_gets_swedish(language: str) -> None:
    assert resolve_language(language) == "sv"
    assert render("invitation", "short", language, CONTEXT).body.startswith("Hej!")


@pytest.mark.parametrize("language", ["en", "EN", " en "])
def test_english_for_en(language: str) -> None:
    assert resolve_language(language) == "en"
    assert render("invitation", "short", language, CONTEXT).body.startswith("Hello!")


def test_appointment_times_are_shown_in_swedish_local_time() -> None:
    winter = dt.datetime(2027, 3, 3, 8, 15, tzinfo=UTC)  # CET, UTC+1
    summer = dt.datetime(2027, 7, 6, 7, 0, tzinfo=UTC)  # CEST, UTC+2
    assert format_appointment(winter, "sv") == "onsdag 3 mars 2027 kl. 09.15"
    assert format_appointment(winter, "en") == "Wednesday 3 March 2027 at 09:15"
    assert format_appointment(summer, "sv") == "tisdag 6 juli 2027 kl. 09.00"
    body = render("booking_confirmation", "long", "sv", replace(CONTEXT, appointment_at=summer)).body
    assert "Tid: tisdag 6 juli 2027 kl. 09.00" in body


def test_a_naive_appointment_time_is_refused() -> None:
    naive = dt.datetime(2027, 3, 3, 9)  # no tzinfo: the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        render("booking_confirmation", "short", "sv", replace(CONTEXT, appointment_at=naive))


def test_the_first_and_later_reminders_read_differently() -> None:
    first = render("reminder", "long", "sv", replace(CONTEXT, reminder_number=1))
    second = render("reminder", "long", "sv", replace(CONTEXT, reminder_number=2))
    assert first.subject is not None
    assert first.subject.startswith("Påminnelse:")
    assert second.subject is not None
    assert second.subject.startswith("Ny påminnelse:")
    assert first.body != second.body
    later = render("reminder", "short", "en", replace(CONTEXT, reminder_number=2))
    assert later.body.startswith("New reminder")


def test_the_unit_phone_is_optional() -> None:
    context = replace(CONTEXT, unit_phone=None)
    for kind in MESSAGE_KINDS:
        for form in FORMS:
            for language in LANGUAGES:
                rendered = render(kind, form, language, context)
                assert "010-476" not in rendered.body
                assert " ring " not in rendered.body
                assert " call " not in rendered.body
    assert "ring 010-476 19 00" in render("invitation", "short", "sv", CONTEXT).body


def test_letters_name_the_units_visiting_address_and_phone_when_it_has_them() -> None:
    context = replace(CONTEXT, unit_address="Storgatan 12, 302 43 Halmstad")
    letter = render("invitation", "long", "sv", context).body
    assert letter.endswith(f"{UNIT_NAMES[0]}\nStorgatan 12, 302 43 Halmstad\nTelefon 010-476 19 00")
    assert "Kontakta oss på 010-476 19 00" in render("booking_confirmation", "long", "sv", context).body
    confirmation = render("booking_confirmation", "long", "en", context).body
    assert f"Place: {UNIT_NAMES[0]}, Storgatan 12, 302 43 Halmstad" in confirmation
    assert confirmation.endswith("Storgatan 12, 302 43 Halmstad\nPhone 010-476 19 00")
    bare = render("invitation", "long", "sv", replace(CONTEXT, unit_phone=None)).body
    assert bare.endswith(f"Varma hälsningar\n{UNIT_NAMES[0]}")  # nothing made up
    assert "Storgatan" not in render("invitation", "short", "sv", context).body  # SMS stays short


def test_a_moved_booking_mentions_the_earlier_time_only_when_given() -> None:
    with_previous = render("booking_moved", "short", "sv", CONTEXT).body
    without = render("booking_moved", "short", "sv", replace(CONTEXT, previous_appointment_at=None)).body
    assert "(tidigare måndag 1 mars 2027 kl. 13.00)" in with_previous
    assert "tidigare" not in without


@pytest.mark.parametrize(
    ("kind", "missing", "variable"),
    [
        ("booking_confirmation", {"appointment_at": None}, "appointment"),
        ("appointment_reminder", {"appointment_at": None}, "appointment"),
        ("reminder", {"reminder_number": None}, "reminder_number"),
    ],
)
@pytest.mark.parametrize("form", FORMS)
def test_a_missing_variable_names_the_template_and_the_variable(
    kind: MessageKind, missing: dict[str, Any], variable: str, form: Form
) -> None:
    with pytest.raises(MissingVariable) as caught:
        render(kind, form, "sv", replace(CONTEXT, **missing))
    assert caught.value.variable == variable
    assert caught.value.template == f"{kind}.{form}.sv.j2"
    assert variable in str(caught.value)
    assert f"{kind}.{form}.sv.j2" in str(caught.value)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown message kind"):
        render("newsletter", "long", "sv", CONTEXT)  # type: ignore[arg-type]


def test_a_file_in_the_override_directory_wins(tmp_path: Path) -> None:
    (tmp_path / "invitation.short.sv.j2").write_text(
        "Hej från {{ unit_name }}! Boka på {{ booking_url }}.", encoding="utf-8"
    )
    rendered = render("invitation", "short", "sv", CONTEXT, override_dir=tmp_path)
    assert rendered.body == f"Hej från {UNIT_NAMES[0]}! Boka på https://halsosamtal.regionhalland.se/boka."
    # Everything not overridden still comes from the built-in templates.
    assert render("invitation", "short", "en", CONTEXT, override_dir=tmp_path) == render(
        "invitation", "short", "en", CONTEXT
    )


def test_an_overridden_partial_is_used_by_the_built_in_templates(tmp_path: Path) -> None:
    (tmp_path / "_signature.sv.j2").write_text("Hälsningar från hälsosamtalsteamet\n{{ unit_name }}\n")
    body = render("booking_cancelled", "long", "sv", CONTEXT, override_dir=tmp_path).body
    assert body.endswith(f"Hälsningar från hälsosamtalsteamet\n{UNIT_NAMES[0]}")


def test_an_edited_override_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "booking_cancelled.short.en.j2"
    path.write_text("First version for {{ unit_name }}.")
    assert render("booking_cancelled", "short", "en", CONTEXT, tmp_path).body.startswith("First version")
    path.write_text("Second version, {{ age }}.")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # a later edit
    assert render("booking_cancelled", "short", "en", CONTEXT, tmp_path).body == "Second version, 40."


def test_a_missing_variable_in_an_override_names_it(tmp_path: Path) -> None:
    (tmp_path / "invitation.short.sv.j2").write_text("Hej {{ first_name }}!")
    with pytest.raises(MissingVariable) as caught:
        render("invitation", "short", "sv", CONTEXT, override_dir=tmp_path)
    assert (caught.value.template, caught.value.variable) == ("invitation.short.sv.j2", "first_name")


def test_a_missing_variable_in_a_partial_names_the_partial(tmp_path: Path) -> None:
    (tmp_path / "_before.sv.j2").write_text("Ta med {{ what_to_bring }}.")
    with pytest.raises(MissingVariable) as caught:
        render("booking_confirmation", "long", "sv", CONTEXT, override_dir=tmp_path)
    assert (caught.value.template, caught.value.variable) == ("_before.sv.j2", "what_to_bring")


def test_a_missing_template_is_named(tmp_path: Path) -> None:
    (tmp_path / "invitation.short.sv.j2").write_text('Hej! {% include "_footer.sv.j2" %}')
    with pytest.raises(MissingTemplate) as caught:
        render("invitation", "short", "sv", CONTEXT, override_dir=tmp_path)
    assert caught.value.template == "_footer.sv.j2"
    assert "_footer.sv.j2" in str(caught.value)


def test_a_long_template_without_a_subject_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "invitation.long.sv.j2").write_text("{% block body %}Hej!{% endblock %}")
    with pytest.raises(MissingVariable) as caught:
        render("invitation", "long", "sv", CONTEXT, override_dir=tmp_path)
    assert (caught.value.template, caught.value.variable) == ("invitation.long.sv.j2", "subject")


def test_a_syntax_error_names_the_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "reminder.short.sv.j2").write_text("Hej!\n{% if %}")
    with pytest.raises(MessageTemplateError, match=r"reminder\.short\.sv\.j2 line 2"):
        render("reminder", "short", "sv", CONTEXT, override_dir=tmp_path)


def test_override_templates_cannot_reach_python_internals(tmp_path: Path) -> None:
    (tmp_path / "invitation.short.sv.j2").write_text("{{ unit_name.__class__.__mro__ }}")
    with pytest.raises(MessageTemplateError) as caught:
        render("invitation", "short", "sv", CONTEXT, override_dir=tmp_path)
    assert not isinstance(caught.value, MissingVariable)
    assert "unsafe" in str(caught.value)


def test_a_mistyped_override_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        render("invitation", "short", "sv", CONTEXT, override_dir=tmp_path / "nope")


def test_ampersands_are_not_html_escaped() -> None:
    rendered = render("invitation", "short", "sv", replace(CONTEXT, unit_name="Hälsa & Vård Halmstad"))
    assert "Hälsa & Vård Halmstad" in rendered.body


def test_the_built_in_directory_holds_exactly_the_expected_templates() -> None:
    names = {p.name for p in BUILTIN_DIR.glob("*.j2") if not p.name.startswith("_")}
    assert names == {template_name(k, f, lang) for k, f, lang in ALL}
    # No typographic characters that would push an SMS into UCS-2.
    for kind in MESSAGE_KINDS:
        for language in LANGUAGES:
            source = (BUILTIN_DIR / template_name(kind, "short", language)).read_text(encoding="utf-8")
            assert is_gsm7(re.sub(r"{[%{].*?[%}]}", "", source)), (kind, language)
