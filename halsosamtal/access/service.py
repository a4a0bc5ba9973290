"""API clients: create (the key is returned once), list, revoke, and authenticate a key."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Select, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.access import keys
from halsosamtal.access.models import ApiClient, ApiClientCareUnit
from halsosamtal.access.schemas import ClientCreate, ClientCreated, ClientOut, Principal, Role
from halsosamtal.core.errors import Conflict, InvalidInput, NotFound


async def create_client(
    session: AsyncSession, data: ClientCreate, care_unit_ids: Mapping[str, int]
) -> ClientCreated:
    """Create a client and its key (returned this once; only its hash is kept).

    ``care_unit_ids`` maps the HSA-ids the request names to the units' ids, for those that exist
    (the caller looks them up: access knows clients, not care units); a named unit missing from
    it is a 422."""
    if data.role == "ehr" and not data.care_units:
        raise InvalidInput("an ehr client must name at least one care unit", field="care_units")
    if data.role != "ehr" and data.care_units:
        raise InvalidInput("only ehr clients are bound to care units", field="care_units")
    if await session.scalar(select(ApiClient.id).where(ApiClient.name == data.name)):
        raise Conflict(f"a client named {data.name!r} exists already", field="name")
    unknown = sorted(set(data.care_units) - care_unit_ids.keys())
    if unknown:
        raise InvalidInput(f"unknown care unit(s): {', '.join(unknown)}", field="care_units")
    unit_ids = {hsa: care_unit_ids[hsa] for hsa in data.care_units}
    key = keys.new_key()
    client = ApiClient(
        name=data.name,
        role=data.role,
        key_prefix=keys.display_prefix(key),
        key_hash=keys.hash_key(key),
        care_units=[ApiClientCareUnit(care_unit_id=uid) for uid in unit_ids.values()],
    )
    session.add(client)
    await session.flush()
    await session.refresh(client, ["created_at"])
    return ClientCreated(
        id=client.id,
        name=client.name,
        role=data.role,
        key_prefix=client.key_prefix,
        care_units=sorted(unit_ids),
        created_at=client.created_at,
        revoked_at=None,
        key=key,
    )


@dataclass(frozen=True)
class ClientRecord:
    """A client as stored: its units by id (the caller names them)."""

    id: int
    name: str
    role: Role
    key_prefix: str
    care_unit_ids: list[int]
    created_at: datetime
    revoked_at: datetime | None

    def out(self, hsa_ids: Mapping[int, str]) -> ClientOut:
        return ClientOut(
            id=self.id,
            name=self.name,
            role=self.role,
            key_prefix=self.key_prefix,
            care_units=sorted(hsa_ids[u] for u in self.care_unit_ids),
            created_at=self.created_at,
            revoked_at=self.revoked_at,
        )


def _client_query() -> Select[ApiClient, list[int]]:
    units = (
        select(func.coalesce(func.array_agg(ApiClientCareUnit.care_unit_id), []))
        .where(ApiClientCareUnit.client_id == ApiClient.id)
        .scalar_subquery()
    )
    return select(ApiClient, units).order_by(ApiClient.id)


def _record(client: ApiClient, units: list[int] | None) -> ClientRecord:
    return ClientRecord(
        id=client.id,
        name=client.name,
        role=cast(Role, client.role),
        key_prefix=client.key_prefix,
        care_unit_ids=sorted(units or []),
        created_at=client.created_at,
        revoked_at=client.revoked_at,
    )


async def list_clients(session: AsyncSession, *, include_revoked: bool = True) -> list[ClientRecord]:
    query = _client_query()
    if not include_revoked:
        query = query.where(ApiClient.revoked_at.is_(None))
    rows = await session.execute(query)
    return [_record(client, units) for client, units in rows]


async def revoke_client(session: AsyncSession, name: str) -> ClientRecord:
    """Revoke a client's key at once. Revoking twice keeps the first time."""
    await session.execute(
        update(ApiClient)
        .where(ApiClient.name == name, ApiClient.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    row = (await session.execute(_client_query().where(ApiClient.name == name))).first()
    if row is None:
        raise NotFound(f"no client named {name!r}")
    return _record(*row)


@dataclass(frozen=True)
class Rotated:
    """A client's new key (shown this once) and until when the key before still works."""

    client: ClientRecord
    key: str
    previous_prefix: str
    previous_valid_until: datetime


async def rotate_key(session: AsyncSession, name: str, *, overlap: timedelta) -> Rotated:
    """Give a client a new key; the current one keeps working for ``overlap`` (0: it stops now),
    so the client can switch without a refused request. A key from an earlier rotation that is
    still in its overlap stops at once: a client has at most two keys."""
    if overlap < timedelta(0):
        raise InvalidInput("the overlap cannot be negative", field="overlap")
    client = await session.scalar(select(ApiClient).where(ApiClient.name == name).with_for_update())
    if client is None:
        raise NotFound(f"no client named {name!r}")
    if client.revoked_at is not None:
        raise Conflict(f"the client {name!r} is revoked; create a new one")
    key = keys.new_key()
    until = datetime.now(UTC) + overlap
    client.previous_key_prefix, client.previous_key_hash = client.key_prefix, client.key_hash
    client.previous_key_valid_until = until
    client.key_prefix, client.key_hash = keys.display_prefix(key), keys.hash_key(key)
    await session.flush()
    row = (await session.execute(_client_query().where(ApiClient.id == client.id))).one()
    return Rotated(_record(*row), key, client.previous_key_prefix, until)


# Plain SQL: it runs on every request, and the ORM form costs its cache-key work every time.
# Both hashes are looked up by index (the key itself is never compared); the row's hash is then
# compared once more in constant time.
_AUTHENTICATE = text("""
SELECT c.id, c.name, c.role,
       CASE WHEN c.key_hash = :key_hash THEN c.key_hash ELSE c.previous_key_hash END AS matched,
       coalesce((SELECT array_agg(u.care_unit_id) FROM api_client_care_units u WHERE u.client_id = c.id),
                '{}') AS units
FROM api_clients c
WHERE (c.key_hash = :key_hash OR (c.previous_key_hash = :key_hash AND c.previous_key_valid_until > now()))
  AND c.revoked_at IS NULL
""")


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    """The client a key belongs to (its current key, or the one before a rotation while its
    overlap lasts), or None when the key is unknown, revoked or past its overlap."""
    digest = keys.hash_key(key)
    row = (await session.execute(_AUTHENTICATE, {"key_hash": digest})).first()
    if row is None or not hmac.compare_digest(bytes(row.matched), digest):
        return None
    return Principal(client_id=row.id, name=row.name, role=row.role, care_unit_ids=frozenset(row.units))
