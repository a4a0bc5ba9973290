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

from typing import Literal

from halsosamtal.core.errors import DomainError
from halsosamtal.messaging.sms import DEFAULT_MAX_SEGMENTS, fits_sms, sms_number
from halsosamtal.residents.contacts import Recipient

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
    sms_fits = (
        sms_text is not None and sms_number(recipient.phone) is not None and fits_sms(sms_text, max_segments)
    )
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
