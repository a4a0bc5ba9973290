"""API clients: create (the key is returned once), list, revoke, and authenticate a key."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Select, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.access import keys
from halsosamtal.access.models import ApiClient, ApiClientCareUnit
from halsosamtal.access.schemas import ClientCreate, ClientCreated, ClientOut, Principal
from halsosamtal.core.errors import Conflict, InvalidInput, NotFound
from halsosamtal.units.models import CareUnit


async def create_client(session: AsyncSession, data: ClientCreate) -> ClientCreated:
    if data.role == "ehr" and not data.care_units:
        raise InvalidInput("an ehr client must name at least one care unit", field="care_units")
    if data.role != "ehr" and data.care_units:
        raise InvalidInput("only ehr clients are bound to care units", field="care_units")
    if await session.scalar(select(ApiClient.id).where(ApiClient.name == data.name)):
        raise Conflict(f"a client named {data.name!r} exists already", field="name")
    unit_ids: dict[str, int] = {}
    if data.care_units:
        rows = await session.execute(
            select(CareUnit.hsa_id, CareUnit.id).where(CareUnit.hsa_id.in_(data.care_units))
        )
        unit_ids = {hsa: uid for hsa, uid in rows}
        unknown = sorted(set(data.care_units) - unit_ids.keys())
        if unknown:
            raise InvalidInput(f"unknown care unit(s): {', '.join(unknown)}", field="care_units")
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


def _client_query() -> Select[ApiClient, list[str]]:
    units = (
        select(func.coalesce(func.array_agg(CareUnit.hsa_id), []))
        .join(ApiClientCareUnit, ApiClientCareUnit.care_unit_id == CareUnit.id)
        .where(ApiClientCareUnit.client_id == ApiClient.id)
        .scalar_subquery()
    )
    return select(ApiClient, units).order_by(ApiClient.id)


def _out(client: ApiClient, units: list[str] | None) -> ClientOut:
    return ClientOut(
        id=client.id,
        name=client.name,
        role=client.role,
        key_prefix=client.key_prefix,
        care_units=sorted(units or []),
        created_at=client.created_at,
        revoked_at=client.revoked_at,
    )


async def list_clients(session: AsyncSession, *, include_revoked: bool = True) -> list[ClientOut]:
    query = _client_query()
    if not include_revoked:
        query = query.where(ApiClient.revoked_at.is_(None))
    rows = await session.execute(query)
    return [_out(client, units) for client, units in rows]


async def revoke_client(session: AsyncSession, name: str) -> ClientOut:
    """Revoke a client's key at once. Revoking twice keeps the first time."""
    await session.execute(
        update(ApiClient)
        .where(ApiClient.name == name, ApiClient.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    row = (await session.execute(_client_query().where(ApiClient.name == name))).first()
    if row is None:
        raise NotFound(f"no client named {name!r}")
    return _out(*row)


# Plain SQL: it runs on every request, and the ORM form costs its cache-key work every time.
_AUTHENTICATE = text("""
SELECT c.id, c.name, c.role,
       coalesce((SELECT array_agg(u.care_unit_id) FROM api_client_care_units u WHERE u.client_id = c.id),
                '{}') AS units
FROM api_clients c
WHERE c.key_hash = :key_hash AND c.revoked_at IS NULL
""")


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    """The client a key belongs to, or None when the key is unknown or revoked."""
    row = (await session.execute(_AUTHENTICATE, {"key_hash": keys.hash_key(key)})).first()
    if row is None:
        return None
    return Principal(client_id=row.id, name=row.name, role=row.role, care_unit_ids=frozenset(row.units))
