"""How a resident can be reached: the contact routes the register holds, for messages.

A value type (``Recipient``) that the messaging service chooses channels for and delivers to,
and the lookup that builds it from the register. Messaging asks for recipients by resident id
and never reads the residents' table itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.residents.models import Resident


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


async def recipients(session: AsyncSession, resident_ids: Iterable[int]) -> dict[int, Recipient]:
    """The recipient of each resident id that is in the register (by resident id)."""
    wanted = list(set(resident_ids))
    if not wanted:
        return {}
    rows = await session.scalars(select(Resident).where(Resident.id.in_(wanted)))
    return {r.id: Recipient.from_resident(r) for r in rows}
