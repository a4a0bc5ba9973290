"""The fault layer's harness: a Postgres and a Redis of its own (``servers``), the real
``halsosamtal api`` and ``halsosamtal worker`` processes on them, a webhook receiver, and a
region to work on (units, residents, a programme year, bookable times, two API clients).

The tests stop, kill and restart those servers and processes, so nothing here may touch the
machine's shared Postgres or Redis. The leases are short (a batch's 6 s, a message's 30 s, the
least allowed) so that what resumes by itself does so within the test's time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from halsosamtal.core.database import raw_connection
from halsosamtal.messaging.webhook import verify_signature
from tests.faults.servers import OwnPostgres, OwnRedis, free_port
from tests.product.support import ROOT, personnummer

YEAR = 2027
QUEUE = "faults:queue"
SECRET = "fault-layer-webhook-secret-0123456789"
BATCH_LEASE_S = 6
DELIVERY_LEASE_S = 30
UNITS = 40
RESIDENTS = 40_000


def run_async(work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(work())


@dataclass
class Receiver:
    """A notification service: records each request's Idempotency-Key and whether it accepted
    it. Slow (``delay_s`` a request) and flaky: the first try of every ``fail_first_every``-th
    message is a 503, so those are retried after the service's backoff."""

    delay_s: float = 0.02
    fail_first_every: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def handle(self, key: str) -> int:
        time.sleep(self.delay_s)
        with self.lock:
            if self.fail_first_every and int(key) % self.fail_first_every == 0 and not self.refused[key]:
                self.refused[key] += 1
                return 503
            self.accepted[key] += 1
            return 200

    def accepted_keys(self) -> set[str]:
        with self.lock:
            return set(self.accepted)

    def duplicates(self) -> int:
        """Messages accepted more than once (a real receiver would dedupe them by the key)."""
        with self.lock:
            return sum(n - 1 for n in self.accepted.values())


def _serve(receiver: Receiver) -> tuple[ThreadingHTTPServer, str]:
    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if not verify_signature(
                SECRET.encode(),
                self.headers.get("x-halsosamtal-timestamp"),
                body,
                self.headers.get("x-halsosamtal-signature"),
            ):
                self.send_response(401)
            else:
                key = self.headers["idempotency-key"]
                assert json.loads(body)["message_id"] == key
                self.send_response(receiver.handle(key))
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> None:
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self.handle.close()


@dataclass
class Stack:
    tmp: Path
    postgres: OwnPostgres
    redis: OwnRedis
    receiver: Receiver
    env: dict[str, str]
    port: int = 0
    processes: dict[str, Process] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    client: httpx.Client | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, name: str, *args: str) -> Process:
        log = self.tmp / f"{name}.log"
        handle = log.open("ab")
        popen = subprocess.Popen(  # noqa: S603 - our own console script
            [str(Path(sys.executable).parent / "halsosamtal"), *args],
            env=self.env,
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        process = Process(name, popen, log, handle)
        self.processes[name] = process
        return process

    def start_api(self) -> None:
        self.port = free_port()
        self.start("api", "api", "--port", str(self.port))
        self.client = httpx.Client(base_url=self.base_url, timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.processes["api"].alive(), self.processes["api"].tail()
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the API never got ready:\n{self.processes['api'].tail()}")

    def start_worker(self) -> Process:
        return self.start("worker", "worker")

    @property
    def api(self) -> httpx.Client:
        assert self.client is not None
        return self.client

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def as_resident(self, personnummer: str) -> dict[str, str]:
        """The portal's headers for one resident: its key and the resident's login, signed by
        the development identity provider the API trusts outside production (as `halsosamtal
        dev token` signs it, without a subprocess per booking)."""
        from halsosamtal.access import dev_idp
        from halsosamtal.access.tokens import DEV_IDP_DIR
        from halsosamtal.core.settings import Settings
        from halsosamtal.residents import personnummer as pnr

        fields = Settings.model_fields
        token = dev_idp.mint(
            Path(self.env["HALSOSAMTAL_DATA_DIR"]) / DEV_IDP_DIR,
            pnr.parse(personnummer).personnummer,
            claim=str(fields["resident_token_personnummer_claim"].default),
            acr=str(fields["resident_token_min_acr"].default),
        )
        return {**self.headers("portal"), "X-Resident-Token": token}

    def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async def go() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.postgres.url)
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()

        result: list[asyncpg.Record] = run_async(go)
        return result

    def value(self, query: str, *args: Any) -> Any:
        rows = self.sql(query, *args)
        return rows[0][0] if rows else None

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(every)
        worker = self.processes.get("worker")
        raise AssertionError(f"{what} not within {timeout} s\n{worker.tail() if worker else ''}")


def _seed(stack: Stack) -> None:
    """A region: participating units, residents (a tenth of them turn 40, 50 or 60 in YEAR),
    the programme year, weekday times in January of YEAR at every unit, and two clients. Made
    in this process, directly: what is under test is how the processes meet faults, and every
    extra process costs seconds on a busy machine."""
    from halsosamtal.access.schemas import ClientCreate
    from halsosamtal.access.service import create_client
    from halsosamtal.core.database import create_engine, make_sessionmaker, session_scope
    from halsosamtal.core.migrations import upgrade
    from halsosamtal.programmes.schemas import ProgrammeRules
    from halsosamtal.programmes.service import set_year

    async def admin() -> None:
        conn = await asyncpg.connect(stack.postgres.url.rsplit("/", 1)[0] + "/postgres")
        try:
            await conn.execute("CREATE DATABASE halsosamtal")
        finally:
            await conn.close()

    run_async(admin)
    upgrade(stack.postgres.url)

    async def seed() -> None:
        engine = create_engine(stack.postgres.url, pool_size=1, max_overflow=0)
        try:
            async with session_scope(make_sessionmaker(engine)) as s:
                await s.execute(
                    text(
                        "INSERT INTO care_units "
                        "(hsa_id, name, municipality, operator, participating, weekly_capacity) "
                        "SELECT 'SE2321000131-E' || lpad(i::text, 12, '0'), 'VC ' || i, '1380', 'public', "
                        "true, 60 FROM generate_series(1, :n) i"
                    ),
                    {"n": UNITS},
                )
                rules = ProgrammeRules(
                    target_ages=[40, 50, 60], talk_rate=Decimal(1000), valid_until=dt.date(YEAR + 1, 3, 31)
                )
                await set_year(s, YEAR, rules, actor="faults")
                await s.execute(
                    text(
                        "INSERT INTO slots (care_unit_id, starts_at, ends_at, published_by) "
                        "SELECT u.id, t, t + interval '45 minutes', 'faults' FROM care_units u, "
                        "generate_series(make_timestamptz(:y, 1, 11, 8, 0, 0, 'Europe/Stockholm'), "
                        "  make_timestamptz(:y, 1, 29, 16, 0, 0, 'Europe/Stockholm'), interval '1 hour') t "
                        "WHERE extract(isodow FROM t AT TIME ZONE 'Europe/Stockholm') < 6 "
                        "AND extract(hour FROM t AT TIME ZONE 'Europe/Stockholm') BETWEEN 8 AND 15"
                    ),
                    {"y": YEAR},
                )
                for role in ("operator", "portal"):
                    made = await create_client(s, ClientCreate(name=f"faults-{role}", role=role), {})
                    stack.keys[role] = made.key
                units = list(await s.scalars(text("SELECT id FROM care_units ORDER BY id")))
                rows = []
                for i in range(RESIDENTS):
                    birth = dt.date(1960, 1, 1) + dt.timedelta(days=i % 10950)
                    pnr = personnummer(birth, i // 10950 + 1, sex="F").replace("-", "")
                    rows.append((pnr, birth, "F", units[i % UNITS], "Storgatan 1", "30246", "Halmstad"))
                copy = await raw_connection(await s.connection())
                await copy.copy_records_to_table(
                    "residents",
                    records=rows,
                    columns=[
                        "personnummer",
                        "birth_date",
                        "sex",
                        "care_unit_id",
                        "address_line",
                        "postal_code",
                        "city",
                    ],
                )
        finally:
            await engine.dispose()

    run_async(seed)


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    tmp = Path(tempfile.mkdtemp(prefix="halsosamtal-faults-"))
    tmp.chmod(0o755)
    receiver = Receiver()
    hook, hook_url = _serve(receiver)
    postgres = OwnPostgres(tmp / "postgres")
    redis = OwnRedis(tmp / "redis")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HALSOSAMTAL_")
        and k not in ("DATABASE_URL", "REDIS_URL", "PYTHONDONTWRITEBYTECODE")
    }
    env.update(
        DATABASE_URL=postgres.url,
        REDIS_URL=redis.url,
        HALSOSAMTAL_QUEUE_NAME=QUEUE,
        HALSOSAMTAL_DATA_DIR=str(tmp / "data"),
        HALSOSAMTAL_BATCH_LEASE_S=str(BATCH_LEASE_S),
        HALSOSAMTAL_DELIVERY_LEASE_S=str(DELIVERY_LEASE_S),
        HALSOSAMTAL_MESSAGING_GATEWAY="webhook",
        HALSOSAMTAL_WEBHOOK_URL=hook_url,
        HALSOSAMTAL_WEBHOOK_SECRET=SECRET,
        HALSOSAMTAL_DB_POOL_SIZE="5",
        HALSOSAMTAL_DB_MAX_OVERFLOW="5",
        # Bytecode kept between runs (each new process compiles the codebase otherwise, ~30 s
        # each on a busy machine), outside the checkout.
        PYTHONPYCACHEPREFIX=str(Path(tempfile.gettempdir()) / "halsosamtal-faults-pycache"),
    )
    stack = Stack(tmp, postgres, redis, receiver, env)
    try:
        postgres.start()
        redis.start()
        _seed(stack)
        stack.start_worker()  # starts while the API does
        stack.start_api()
        yield stack
    finally:
        for process in stack.processes.values():
            process.stop()
        if stack.client is not None:
            stack.client.close()
        hook.shutdown()
        redis.stop()
        postgres.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, the tail of each process's log goes into the report."""
    report = yield
    if report.failed and hasattr(item, "funcargs") and "stack" in item.funcargs:
        for process in item.funcargs["stack"].processes.values():
            report.sections.append((f"{process.name} log (tail)", process.tail()))
    return report
