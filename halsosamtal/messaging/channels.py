"""Which channel carries a message to a resident.

The rule, in order:

1. the resident's digital mailbox, when they have one;
2. SMS, when there is a number an SMS can reach and the rendered SMS text fits;
3. a letter: to the registered address, or through the tax agency's forwarding for a resident
   with protected identity (``letter_protected``).

Protected identity (skyddad folkbokföring) means the address must never be shown or printed.
A digital mailbox is addressed by personnummer and an SMS by phone number; neither exposes where
the resident lives, and both reach only the resident. So they are used for protected residents
exactly as for anyone else: they are faster and surer than forwarded post, and the programme
wants every resident invited. Only the letter route changes: it never uses an address, even if
the register happens to hold one, and goes through the tax agency instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from halsosamtal.core.errors import DomainError
from halsosamtal.messaging.sms import DEFAULT_MAX_SEGMENTS, fits_sms, sms_number

if TYPE_CHECKING:
    from halsosamtal.residents.models import Resident

Channel = Literal["digital_mailbox", "sms", "letter", "letter_protected"]
ElectronicChannel = Literal["digital_mailbox", "sms"]
UndeliverableReason = Literal["no_address", "no_phone", "no_digital_mailbox"]


class Undeliverable(DomainError):
    """No channel can carry the message; the outbox marks it failed with ``reason``.

    Raised instead of returning a channel that would produce an empty letter or a send that
    cannot arrive. ``reason`` is a stable code for the outbox row; ``detail`` is for people.
    """

    code = "undeliverable"
    status = 422
    title = "Undeliverable"

    def __init__(self, reason: UndeliverableReason, detail: str) -> None:
        super().__init__(detail, reason=reason)
        self.reason: UndeliverableReason = reason


def _present(value: str | None) -> bool:
    return value is not None and value.strip() != ""


@dataclass(frozen=True, slots=True)
class Recipient:
    """What delivery needs to know about a resident, and nothing more.

    Personal fields are left out of ``repr`` so a recipient in a log line or a traceback shows
    no personnummer, phone or address.
    """

    personnummer: str = field(repr=False)
    language: str
    protected_identity: bool
    digital_mailbox: bool
    phone: str | None = field(default=None, repr=False)
    address_line: str | None = field(default=None, repr=False)
    postal_code: str | None = field(default=None, repr=False)
    city: str | None = field(default=None, repr=False)

    @classmethod
    def from_resident(cls, resident: Resident) -> Recipient:
        """The recipient for a resident row of the population register."""
        return cls(
            personnummer=resident.personnummer,
            language=resident.language,
            protected_identity=resident.protected_identity,
            digital_mailbox=resident.digital_mailbox,
            phone=resident.phone,
            address_line=resident.address_line,
            postal_code=resident.postal_code,
            city=resident.city,
        )

    @property
    def has_address(self) -> bool:
        """True when every line a letter needs is there (street, postal code, city)."""
        return _present(self.address_line) and _present(self.postal_code) and _present(self.city)

    @property
    def sms_number(self) -> str | None:
        """The phone number in E.164 form when an SMS can reach it (a mobile), else None."""
        return sms_number(self.phone)


def choose_channel(
    recipient: Recipient,
    sms_text: str | None,
    *,
    max_segments: int = DEFAULT_MAX_SEGMENTS,
    prefer_sms: bool = False,
) -> Channel:
    """The channel for one message to ``recipient`` (see the module docstring for the rule).

    ``sms_text`` is the rendered short form, or None when the message has none; SMS is chosen
    only when it fits in ``max_segments`` segments. Raises ``Undeliverable("no_address")`` when
    only a letter is left and a resident without protected identity has no complete address.
    With ``prefer_sms`` (appointment reminders) SMS goes before the digital mailbox.
    """
    sms_fits = sms_text is not None and recipient.sms_number is not None and fits_sms(sms_text, max_segments)
    if prefer_sms and sms_fits:
        return "sms"
    if recipient.digital_mailbox:
        return "digital_mailbox"
    if sms_fits:
        return "sms"
    if recipient.protected_identity:
        return "letter_protected"
    if not recipient.has_address:
        raise Undeliverable(
            "no_address",
            "no digital mailbox, no SMS route and no complete postal address in the register",
        )
    return "letter"
