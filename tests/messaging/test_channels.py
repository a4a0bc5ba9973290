"""Channel choice: digital mailbox, then SMS, then letter; protected identity never exposes an address."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from typing import Any

import pytest

from halsosamtal.messaging.channels import Undeliverable, choose_channel
from halsosamtal.residents.contacts import Recipient
from halsosamtal.residents.models import Resident
from tests.factories import personnummer

SHORT = "Hej! Du är välkommen till ett gratis hälsosamtal. Boka på https://example.se/boka."

BASE = Recipient(
    personnummer=personnummer(dt.date(1987, 5, 17)),
    language="sv",
    protected_identity=False,
    digital_mailbox=False,
    phone=None,
    address_line="Storgatan 1",
    postal_code="302 31",
    city="Halmstad",
)


def test_digital_mailbox_wins_over_sms_and_letter() -> None:
    recipient = replace(BASE, digital_mailbox=True, phone="070-123 45 67")
    assert choose_channel(recipient, SHORT) == "digital_mailbox"


def test_an_appointment_reminder_prefers_sms_over_the_digital_mailbox() -> None:
    recipient = replace(BASE, digital_mailbox=True, phone="070-123 45 67")
    assert choose_channel(recipient, SHORT, prefer_sms=True) == "sms"
    # Without a mobile it falls back to the usual order.
    assert choose_channel(replace(recipient, phone=None), SHORT, prefer_sms=True) == "digital_mailbox"


def test_sms_when_there_is_a_mobile_and_the_text_fits() -> None:
    assert choose_channel(replace(BASE, phone="070-123 45 67"), SHORT) == "sms"


def test_letter_when_the_sms_text_is_too_long() -> None:
    recipient = replace(BASE, phone="070-123 45 67")
    assert choose_channel(recipient, "a" * 459) == "sms"
    assert choose_channel(recipient, "a" * 460) == "letter"


def test_letter_when_one_emoji_makes_the_sms_too_long() -> None:
    # 200 GSM-7 characters are two segments; one emoji turns it into UCS-2 at 202 units: four.
    recipient = replace(BASE, phone="070-123 45 67")
    assert choose_channel(recipient, "a" * 200) == "sms"
    assert choose_channel(recipient, "a" * 200 + "😊") == "letter"


def test_letter_when_there_is_no_short_form() -> None:
    assert choose_channel(replace(BASE, phone="070-123 45 67"), None) == "letter"


def test_letter_when_the_phone_is_a_landline() -> None:
    assert choose_channel(replace(BASE, phone="035-13 70 00"), SHORT) == "letter"


def test_letter_when_there_is_nothing_else() -> None:
    assert choose_channel(BASE, SHORT) == "letter"


@pytest.mark.parametrize(
    "missing",
    [
        {"address_line": None},
        {"postal_code": None},
        {"city": None},
        {"address_line": "  "},
        {"address_line": None, "postal_code": None, "city": None},
    ],
)
def test_no_complete_address_is_undeliverable_not_an_empty_letter(missing: dict[str, Any]) -> None:
    with pytest.raises(Undeliverable) as caught:
        choose_channel(replace(BASE, **missing), SHORT)
    assert caught.value.reason == "no_address"
    assert caught.value.problem()["reason"] == "no_address"


def test_an_address_is_not_needed_when_sms_reaches_the_resident() -> None:
    recipient = replace(BASE, address_line=None, postal_code=None, city=None, phone="0701234567")
    assert choose_channel(recipient, SHORT) == "sms"


def test_protected_identity_uses_the_digital_mailbox_when_there_is_one() -> None:
    recipient = replace(BASE, protected_identity=True, digital_mailbox=True, phone="0701234567")
    assert choose_channel(recipient, SHORT) == "digital_mailbox"


def test_protected_identity_uses_sms_when_there_is_a_mobile() -> None:
    recipient = replace(BASE, protected_identity=True, phone="0701234567")
    assert choose_channel(recipient, SHORT) == "sms"


def test_protected_identity_letters_go_through_the_tax_agency_even_with_an_address_on_file() -> None:
    assert choose_channel(replace(BASE, protected_identity=True), SHORT) == "letter_protected"


def test_protected_identity_without_an_address_is_still_reached_by_letter() -> None:
    recipient = replace(BASE, protected_identity=True, address_line=None, postal_code=None, city=None)
    assert choose_channel(recipient, None) == "letter_protected"


def test_a_recipient_shows_no_personal_data_in_its_repr() -> None:
    recipient = replace(BASE, phone="070-123 45 67")
    text = repr(recipient)
    assert BASE.personnummer not in text
    assert not re.search(r"\d{6}", text)
    assert "Storgatan" not in text
    assert "302 31" not in text
    assert "070" not in text


def test_a_recipient_is_built_from_a_register_row() -> None:
    resident = Resident(
        personnummer=BASE.personnummer,
        birth_date=dt.date(1987, 5, 17),
        sex="F",
        protected_identity=True,
        digital_mailbox=False,
        phone="0701234567",
        address_line=None,
        postal_code=None,
        city=None,
        language="en",
    )
    assert Recipient.from_resident(resident) == Recipient(
        personnummer=BASE.personnummer,
        language="en",
        protected_identity=True,
        digital_mailbox=False,
        phone="0701234567",
        address_line=None,
        postal_code=None,
        city=None,
    )
