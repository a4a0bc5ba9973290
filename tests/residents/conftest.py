"""Fixtures for the residents import tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core.imports import ImportSummary
from halsosamtal.residents.importer import import_residents
from halsosamtal.units.models import CareUnit

ImportCsv = Callable[..., Awaitable[ImportSummary]]


@pytest.fixture
def import_csv(sessionmaker: async_sessionmaker[AsyncSession]) -> ImportCsv:
    """``await import_csv(text, as_of=..., snapshot=..., chunk=N)``: one import in its own
    committed transaction, the file fed in chunks of ``chunk`` bytes (default: whole)."""

    async def run(
        content: str | bytes,
        *,
        as_of: dt.date,
        snapshot: bool = False,
        chunk: int | None = None,
        **kwargs: Any,
    ) -> ImportSummary:
        data = content.encode() if isinstance(content, str) else content

        async def chunks() -> AsyncIterator[bytes]:
            step = chunk or max(len(data), 1)
            for i in range(0, len(data), step):
                yield data[i : i + step]

        kwargs.setdefault("reject_limit", None)
        async with sessionmaker() as s, s.begin():
            return await import_residents(
                s,
                chunks(),
                as_of=as_of,
                snapshot=snapshot,
                source="test",
                actor="test",
                **kwargs,
            )

    return run


@pytest.fixture
async def units(make_unit: Callable[..., Awaitable[CareUnit]]) -> list[CareUnit]:
    """Three care units."""
    return [await make_unit() for _ in range(3)]
