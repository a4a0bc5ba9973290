"""A resident whose language is neither Swedish nor English gets the Swedish text, and under it a
line in their own language when the region supplies one (``<kind>.note.<language>.j2``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from halsosamtal.core.settings import Settings
from halsosamtal.messaging.outbox import cached_renderer
from halsosamtal.messaging.sms import fits_sms
from halsosamtal.messaging.templates import (
    MESSAGE_KINDS,
    MessageContext,
    MissingVariable,
    note_language,
    render,
)

CONTEXT = MessageContext(
    unit_name="Vårdcentralen Andersberg",
    year=2027,
    age=40,
    valid_until=dt.date(2028, 3, 31),
    booking_url="https://halsosamtal.regionhalland.se/boka",
    unit_phone="035-13 10 00",
    appointment_at=dt.datetime(2027, 3, 3, 8, 15, tzinfo=dt.UTC),
    previous_appointment_at=dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC),
    reminder_number=1,
)

# "You are invited to a free health talk at ... Book by 2028-03-31. Call us if you need an
# interpreter." (Arabic), as a region would write it.
ARABIC = (
    "أنت مدعو إلى حوار صحي مجاني في {{ unit_name }}. احجز قبل {{ valid_until }}."
    "{% if unit_phone is defined %} اتصل بنا على {{ unit_phone }} إذا كنت بحاجة إلى مترجم.{% endif %}\n"
)


@pytest.fixture
def region_dir(tmp_path: Path) -> Path:
    (tmp_path / "invitation.note.ar.j2").write_text(ARABIC, encoding="utf-8")
    (tmp_path / "appointment_reminder.note.so.j2").write_text(
        "Waqtigaaga: {{ appointment }} ee {{ unit_name }}.", encoding="utf-8"
    )
    return tmp_path


def test_the_swedish_letter_with_a_line_in_the_residents_language(region_dir: Path) -> None:
    swedish = render("invitation", "long", "sv", CONTEXT, region_dir)
    arabic = render("invitation", "long", "ar", CONTEXT, region_dir)
    line = (
        "أنت مدعو إلى حوار صحي مجاني في Vårdcentralen Andersberg. احجز قبل 2028-03-31. "
        "اتصل بنا على 035-13 10 00 إذا كنت بحاجة إلى مترجم."
    )
    assert arabic.body == f"{swedish.body}\n\n{line}"
    assert arabic.subject == swedish.subject, "the subject stays Swedish"
    assert (arabic.language, arabic.template, arabic.note) == (
        "sv",
        swedish.template,
        "invitation.note.ar.j2",
    )
    assert swedish.note is None


def test_the_sms_gets_the_line_when_it_still_fits(region_dir: Path, tmp_path: Path) -> None:
    swedish = render("appointment_reminder", "short", "sv", CONTEXT, region_dir)
    somali = render("appointment_reminder", "short", "so", CONTEXT, region_dir)
    # The time as digits in Swedish local time (08:15 UTC is 09:15 in March).
    assert somali.body == f"{swedish.body}\nWaqtigaaga: 2027-03-03 09:15 ee Vårdcentralen Andersberg."
    assert fits_sms(somali.body)

    # A note too long for the SMS: the SMS goes in Swedish alone rather than not at all.
    (region_dir / "invitation.note.ti.j2").write_text("ሰላም " * 200, encoding="utf-8")
    tigrinya = render("invitation", "short", "ti", CONTEXT, region_dir)
    assert tigrinya == render("invitation", "short", "sv", CONTEXT, region_dir)
    assert render("invitation", "long", "ti", CONTEXT, region_dir).note == "invitation.note.ti.j2"


@pytest.mark.parametrize("language", ["fi", "so", "de"])
def test_without_a_note_in_their_language_swedish_alone(region_dir: Path, language: str) -> None:
    # Somali has a note for appointment reminders only; Finnish and German none at all.
    for form in ("long", "short"):
        assert render("invitation", form, language, CONTEXT, region_dir) == render(
            "invitation", form, "sv", CONTEXT, region_dir
        )
    assert render("invitation", "long", "ar", CONTEXT) == render("invitation", "long", "sv", CONTEXT), (
        "no override directory: no notes"
    )


def test_swedish_and_english_readers_get_no_note(tmp_path: Path) -> None:
    for language in ("sv", "en"):
        (tmp_path / f"invitation.note.{language}.j2").write_text("A line.", encoding="utf-8")
        assert note_language(language) is None
        assert render("invitation", "long", language, CONTEXT, tmp_path).note is None
    assert note_language(" AR ") == "ar"
    assert note_language("") is None
    assert note_language("../x") is None


def test_a_note_with_a_mistake_names_itself(tmp_path: Path) -> None:
    (tmp_path / "reminder.note.ar.j2").write_text("{{ first_name }}", encoding="utf-8")
    with pytest.raises(MissingVariable) as caught:
        render("reminder", "long", "ar", CONTEXT, tmp_path)
    assert (caught.value.template, caught.value.variable) == ("reminder.note.ar.j2", "first_name")


def test_every_kind_can_have_a_note(tmp_path: Path) -> None:
    for kind in MESSAGE_KINDS:
        (tmp_path / f"{kind}.note.fa.j2").write_text(f"{kind} به فارسی", encoding="utf-8")
        rendered = render(kind, "long", "fa", CONTEXT, tmp_path)
        assert rendered.body.endswith(f"\n\n{kind} به فارسی")


def test_the_release_renders_each_residents_language_apart(region_dir: Path) -> None:
    # One chunk renders each text once; residents of two other languages must not share one.
    draw = cached_renderer(Settings.model_construct(template_dir=region_dir))
    context = replace(CONTEXT, reminder_number=None)
    arabic = draw("invitation", "long", "ar", context)
    finnish = draw("invitation", "long", "fi", context)
    assert arabic.note == "invitation.note.ar.j2"
    assert finnish.note is None
    assert draw("invitation", "long", "ar", context) is arabic


def test_a_language_added_while_running_is_used_at_once(tmp_path: Path) -> None:
    assert render("booking_moved", "long", "ar", CONTEXT, tmp_path).note is None
    (tmp_path / "booking_moved.note.ar.j2").write_text("{{ previous_appointment }}", encoding="utf-8")
    moved = render("booking_moved", "long", "ar", CONTEXT, tmp_path)
    assert moved.body.endswith("\n\n2027-03-01 13:00")
