"""SMS sizing by GSM 03.38 and the numbers an SMS can reach."""

from __future__ import annotations

import pytest

from halsosamtal.messaging.sms import GSM7_BASIC, GSM7_EXTENSION, fits_sms, is_gsm7, sms_number, sms_size


def test_the_gsm7_tables_have_the_standard_sizes() -> None:
    # 128 code points less the escape; the extension table has ten printable characters.
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert "\x1b" not in GSM7_BASIC


def test_swedish_letters_are_gsm7_and_cost_one_septet_each() -> None:
    text = "åäöÅÄÖé" * 10
    assert is_gsm7(text)
    assert sms_size(text).encoding == "gsm7"
    assert sms_size(text).units == 70


@pytest.mark.parametrize(
    "char",
    ["\u2013", "\u2019", "\u201c", "\u2026", "ç", "ł", "\U0001f60a", "\u00a0"],
    ids=["en-dash", "curly-apostrophe", "curly-quote", "ellipsis", "c-cedilla", "l-stroke", "emoji", "nbsp"],
)
def test_one_character_outside_gsm7_makes_the_whole_message_ucs2(char: str) -> None:
    assert sms_size("Hej! Välkommen " + char).encoding == "ucs2"


def test_extension_characters_cost_two_septets() -> None:
    assert sms_size("€").units == 2
    assert sms_size("{[~]}|^\\").units == 16
    assert sms_size("€").encoding == "gsm7"


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 0),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 159 + "€", 2),  # 161 septets
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 459, 3),
        ("a" * 460, 4),
    ],
)
def test_gsm7_segments(text: str, segments: int) -> None:
    assert sms_size(text).segments == segments


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("ł" * 70, 1),
        ("ł" * 71, 2),
        ("ł" * 134, 2),
        ("ł" * 135, 3),
        ("ł" * 201, 3),
        ("ł" * 202, 4),
        ("😊" * 35, 1),  # 70 UTF-16 units
        ("😊" * 36, 2),
    ],
)
def test_ucs2_segments_count_utf16_units(text: str, segments: int) -> None:
    assert sms_size(text).segments == segments


def test_an_escape_pair_is_never_split_across_segments() -> None:
    # 459 septets, which would be three segments by division, but the euro signs cannot
    # straddle a segment boundary, so it takes four.
    text = "a" * 152 + "€" + "a" * 152 + "€" + "a" * 151
    assert sms_size(text).units == 459
    assert sms_size(text).segments == 4
    assert not fits_sms(text)
    assert fits_sms("a" * 459)


def test_a_surrogate_pair_is_never_split_across_segments() -> None:
    text = "ł" * 66 + "😊" + "ł" * 65 + "😊" + "ł" * 66
    assert sms_size(text).units == 201
    assert sms_size(text).segments == 4
    assert not fits_sms(text)
    assert fits_sms("ł" * 201)


def test_a_blank_text_does_not_fit() -> None:
    assert not fits_sms("")
    assert not fits_sms("   ")


def test_fits_with_a_smaller_limit() -> None:
    assert fits_sms("a" * 160, max_segments=1)
    assert not fits_sms("a" * 161, max_segments=1)


@pytest.mark.parametrize(
    ("phone", "e164"),
    [
        ("070-123 45 67", "+46701234567"),
        ("0701234567", "+46701234567"),
        ("+46 70 123 45 67", "+46701234567"),
        ("+46 (0)70-123 45 67", "+46701234567"),
        ("0046701234567", "+46701234567"),
        ("+358 40 123 4567", "+358401234567"),
        ("08-123 456 78", None),  # Stockholm landline
        ("031-12 34 56", None),  # Gothenburg landline
        ("+46 8 123 456 78", None),
        ("070-123 45", None),  # too short
        ("ring mig", None),
        ("", None),
        (None, None),
    ],
)
def test_sms_number(phone: str | None, e164: str | None) -> None:
    assert sms_number(phone) == e164
