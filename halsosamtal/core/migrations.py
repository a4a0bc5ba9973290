"""Run Alembic from code, and refuse to start on an out-of-date schema."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from halsosamtal.core.errors import SchemaOutOfDate
from halsosamtal.core.settings import PROJECT_ROOT


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.attributes["configure_logging"] = False
    if database_url:
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations (blocking: Alembic's env runs its own event loop)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def current_revisions(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync_conn: set(MigrationContext.configure(sync_conn).get_current_heads())
        )


async def ensure_schema_current(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaOutOfDate` unless the database is at the migrations' head."""
    current, heads = await current_revisions(engine), head_revisions()
    if current != heads:
        have = ", ".join(sorted(current)) or "no schema"
        want = ", ".join(sorted(heads))
        raise SchemaOutOfDate(
            f"the database schema is out of date (database: {have}; code: {want}). "
            "Run `halsosamtal migrate` (or `make migrate`) first."
        )


def pending(database_url: str, revision: str = "head") -> list[str]:
    """The migrations an upgrade to ``revision`` would apply, oldest first ("<id> <title>").
    A database that does not exist yet has all of them pending."""
    import asyncio

    import asyncpg

    from halsosamtal.core.database import async_url

    async def current() -> tuple[str, ...]:
        url = async_url(database_url).replace("postgresql+asyncpg://", "postgresql://", 1)
        try:
            conn = await asyncpg.connect(url)
        except asyncpg.InvalidCatalogNameError:
            return ()
        try:
            if not await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL"):
                return ()
            return tuple(r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version"))
        finally:
            await conn.close()

    heads = asyncio.run(current())
    script = ScriptDirectory.from_config(alembic_config())
    steps = script.iterate_revisions(revision, heads or "base")
    return [f"{s.revision} {s.doc}" for s in reversed(list(steps)) if s.revision not in heads]
