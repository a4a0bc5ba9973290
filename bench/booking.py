"""Benchmark the booking API under concurrent load, against /healthz on the same server.

    uv run python bench/booking.py                  # about 2 minutes
    uv run python bench/booking.py --seconds 5      # shorter phases
    uv run python bench/booking.py --py-spy /tmp/p  # also profile the server (numbers disturbed)

In a scratch database of its own (created, migrated and dropped again) it inserts a few
participating care units, next year's programme, N residents listed at them, each with an open
invitation (its letter sent, a reminder planned), an ``ehr`` client for the units and a
``portal`` client. It starts the API as a process of its own, the way ``halsosamtal api`` does
(uvicorn, one worker, 127.0.0.1 on a free port), waits for /readyz and publishes the units'
times through the API (a weekly template each). Then a separate load process runs, against that
server, over keep-alive HTTP/1.1 connections (a minimal client of its own: httpx costs more CPU
per request than the server's /healthz, so on two cores it would measure itself; ``--client
httpx`` shows it):

1. GET /healthz at the highest rate it can (closed loop, ``--concurrency`` requests in flight):
   the yardstick;
2. POST /v1/portal/slots/search the same way, each request for another resident, a random
   window of days;
3. POST /v1/portal/bookings the same way, each request another resident booking another free
   time at their unit (so every one succeeds);
4. search, then booking, again at half the rate measured in 2 and 3, open loop: requests leave
   on a fixed schedule whatever the answers, and latency counts from the scheduled moment, so
   queueing in the server (or the client) is not hidden (no coordinated omission);
5. the access log's cost: a second server on the same database with the access log off
   (``HALSOSAMTAL_AUDIT_LOG=false``), and ``--audit-rounds`` rounds of search and booking at max
   rate against each, off and on interleaved (which goes first alternates), so that other work on
   the machine weighs on both alike (the server with the log off has a round of its own first, to
   warm up). It prints each round, the rates off and on over all rounds, the overhead
   (1 - on / off) with its spread over the rounds, the server's and Postgres' CPU per request
   off and on, and the goal: at most 15 %. Then every access event must be there: one per
   search and booking the server with the log on answered with success, none from the other;
   and the time the worker's sealer takes to chain them all is shown;
6. the race: 200 clients, each on its own connection, released at the same moment, book 50
   times (client i wants time i % 50). Exactly 50 must get 201, 150 409 ``slot-taken``, none a
   5xx, and the database must then hold exactly one appointment per time.

It prints each phase's rate and latency percentiles, the server's CPU time per request, the CPU
the server, the scratch database's Postgres backends, the load process and everything else used
(two cores: they share them, so a busy load process or other work on the machine shows, and is
named), the ratios to /healthz and a PASS/FAIL line per goal. Goals: search at least half the
/healthz rate, booking at least a quarter, p99 under 50 ms at half the maximum rate, the access
log costing at most 15 % of the search and of the booking rate. The exit
status is 1 when the race (or any other correctness check: a 5xx, a booking that did not
succeed, a count of appointments or access events that does not match the answers) fails; the speed goals are reported only.
Linux only (CPU times from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import math
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import text
from stdnum import luhn

from halsosamtal.access.schemas import ClientCreate
from halsosamtal.audit import chain
from halsosamtal.cli.clients import create_client
from halsosamtal.core import infra, migrations
from halsosamtal.core.database import create_engine, make_sessionmaker
from halsosamtal.core.settings import PROJECT_ROOT, Settings
from halsosamtal.programmes.schemas import ProgrammeRules
from halsosamtal.programmes.service import set_year

HOST = "127.0.0.1"
SEARCH = "/v1/portal/slots/search"
BOOK = "/v1/portal/bookings"
AGES = (40, 50, 60)
RACE_CLIENTS = 200
RACE_SLOTS = 50
IDLE_LIMIT_S = 4.0  # reuse a keep-alive connection idle at most this long (uvicorn closes at 5 s)
HOLDS_SLOT = "('booked', 'attended', 'no_show')"

# The goals of the issue.
SEARCH_SHARE = 0.5
BOOKING_SHARE = 0.25
P99_LIMIT_MS = 50.0
AUDIT_OVERHEAD = 0.15  # the access log may cost at most this share of the search or booking rate
BUSY_ELSEWHERE = 0.3  # cores used by other work during a phase above which the report says so


# --- The scratch region -------------------------------------------------------------------------


def personnummer(birth: dt.date, serial: int) -> str:
    """A valid 12-digit personnummer: YYYYMMDD, a serial (never 000) and its Luhn digit."""
    body = f"{birth:%y%m%d}{serial:03d}"
    return f"{birth:%Y%m%d}{serial:03d}{luhn.calc_check_digit(body)}"


def register(n: int, year: int) -> list[tuple[str, dt.date]]:
    """``n`` distinct residents turning 40, 50 or 60 in ``year``: (personnummer, birth date)."""
    people = []
    for i in range(n):
        age = AGES[i % len(AGES)]
        birth = dt.date(year - age, 1, 1) + dt.timedelta(days=(i // len(AGES)) % 365)
        serial = 1 + i // (len(AGES) * 365)
        assert serial < 1000, "too many residents for one serial range"
        people.append((personnummer(birth, serial), birth))
    return people


@dataclass(frozen=True)
class Region:
    units: list[tuple[int, str]]  # (id, HSA-id)
    portal_key: str
    ehr_key: str


async def build(url: str, residents: int, units: int, year: int) -> Region:
    """Care units, the programme year, residents with open invitations (letter sent, a reminder
    planned) and the two API clients; all set-based."""
    engine = create_engine(url, pool_size=2, max_overflow=0, application_name="halsosamtal-bench")
    today = dt.date.today()
    sent_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    try:
        async with engine.begin() as conn:
            unit_rows = (
                await conn.execute(
                    text(
                        "INSERT INTO care_units (hsa_id, name, municipality, operator, participating, "
                        "weekly_capacity) SELECT 'SE2321000115-BENCH' || lpad(i::text, 4, '0'), "
                        "'Vårdcentralen Bench ' || i, '1380', 'public', true, 200 "
                        "FROM generate_series(1, :n) i RETURNING id, hsa_id"
                    ),
                    {"n": units},
                )
            ).all()
            unit_ids = sorted(r.id for r in unit_rows)
            people = register(residents, year)
            await conn.execute(
                text(
                    "INSERT INTO residents (personnummer, birth_date, sex, care_unit_id, municipality, "
                    "address_line, postal_code, city) "
                    "SELECT p, b, CASE WHEN substr(p, 11, 1)::int % 2 = 1 THEN 'M' ELSE 'F' END, "
                    "(CAST(:units AS bigint[]))[1 + (o - 1) % cardinality(CAST(:units AS bigint[]))], "
                    "'1380', 'Storgatan 1', '302 31', 'Halmstad' "
                    "FROM unnest(CAST(:pnrs AS text[]), CAST(:births AS date[])) "
                    "WITH ORDINALITY AS v(p, b, o)"
                ),
                {"pnrs": [p for p, _ in people], "births": [b for _, b in people], "units": unit_ids},
            )
            await conn.execute(
                text(
                    "INSERT INTO invitations (year, age, resident_id, care_unit_id, planned_send_on, status, "
                    "sent_at, last_message_at, valid_until) "
                    "SELECT CAST(:year AS int), CAST(:year AS int) - extract(year FROM birth_date)::int, "
                    "id, care_unit_id, :today, 'open', :sent_at, :sent_at, :valid_until "
                    "FROM residents ORDER BY id"
                ),
                {"year": year, "today": today, "sent_at": sent_at, "valid_until": dt.date(year + 1, 12, 31)},
            )
            await conn.execute(
                text(
                    "INSERT INTO messages (resident_id, invitation_id, kind, send_on, status, channel, "
                    "language, template, subject, body, queued_at, sent_at, attempts) "
                    "SELECT resident_id, id, 'invitation', planned_send_on, 'sent', 'letter', 'sv', "
                    "'invitation.long.sv.j2', 'Inbjudan', 'Välkommen', sent_at, sent_at, 1 FROM invitations"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO messages (resident_id, invitation_id, kind, sequence, send_on) "
                    "SELECT resident_id, id, 'reminder', 1, planned_send_on + 28 FROM invitations"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO invitation_events (invitation_id, from_status, to_status, reason, actor) "
                    "SELECT id, NULL, 'open', 'bench', 'bench' FROM invitations"
                )
            )
            for table in ("care_units", "residents", "invitations", "messages", "invitation_events"):
                await conn.execute(text(f"ANALYZE {table}"))
        async with make_sessionmaker(engine)() as s, s.begin():
            await set_year(
                s,
                year,
                ProgrammeRules(target_ages=list(AGES), talk_rate=1000, valid_until=dt.date(year + 1, 12, 31)),
                actor="bench",
            )
            hsa_ids = [r.hsa_id for r in sorted(unit_rows, key=lambda r: r.id)]
            portal = await create_client(s, ClientCreate(name="bench-portal", role="portal"))
            ehr = await create_client(s, ClientCreate(name="bench-ehr", role="ehr", care_units=hsa_ids))
        return Region(units=list(zip(unit_ids, hsa_ids, strict=True)), portal_key=portal.key, ehr_key=ehr.key)
    finally:
        await engine.dispose()


async def fetch(url: str, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
    engine = create_engine(url, pool_size=1, max_overflow=0, application_name="halsosamtal-bench")
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql), params or {})
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


# --- The server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(
    database_url: str, redis_url: str, port: int, log: Path, *, audit_log: bool = True
) -> subprocess.Popen[bytes]:
    """``halsosamtal api`` (it execs uvicorn, so the pid is the server's), one worker; the access
    log on or off."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        # The load names each resident in the body, as a portal did before resident tokens; the
        # cost measured is the booking path's (a token's check is one ES256 verify). Limits stay
        # on, counted in Redis as in production, at a rate the load never reaches.
        "HALSOSAMTAL_PORTAL_IDENTITY": "asserted",
        "HALSOSAMTAL_RATE_LIMIT_PORTAL": "100000000/minute",
        "HALSOSAMTAL_RATE_LIMIT_EHR": "100000000/minute",
        "HALSOSAMTAL_AUDIT_LOG": "true" if audit_log else "false",
    }
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own CLI with fixed arguments
            [
                sys.executable,
                "-m",
                "halsosamtal.cli",
                "api",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=2) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the API exited with {server.returncode} before it was ready")
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"the API was not ready within {timeout:.0f} s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def publish(base: str, region: Region, first_day: dt.date, last_day: dt.date) -> int:
    """Each unit's times through the API: weekdays 08:00-16:00, 15-minute talks."""
    created = 0
    headers = {"Authorization": f"Bearer {region.ehr_key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        for _, hsa_id in region.units:
            response = client.post(
                f"/v1/care-units/{hsa_id}/slots/template",
                json={
                    "first_day": first_day.isoformat(),
                    "last_day": last_day.isoformat(),
                    "weekdays": ["mon", "tue", "wed", "thu", "fri"],
                    "day_starts": "08:00",
                    "day_ends": "16:00",
                    "talk_minutes": 15,
                },
            )
            if response.status_code != 200:
                raise RuntimeError(f"publishing times failed: {response.status_code} {response.text}")
            created += int(response.json()["created"])
    return created


# --- The load process ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What the load process sends. Residents are (personnummer as YYYYMMDD-NNNC, invitation id)."""

    base: str
    database: str
    portal_key: str
    server_pid: int
    seconds: float
    warmup: float
    concurrency: int
    search_residents: list[tuple[str, int]]
    search_days: tuple[dt.date, dt.date]
    bookings: list[tuple[str, int, int]]  # (personnummer, invitation id, slot id)
    race: list[tuple[str, int, int]]
    py_spy: str | None
    seed: int
    client: str  # "raw" or "httpx"
    audit_off_base: str | None = None  # the same API with the access log off
    audit_off_pid: int = 0
    audit_rounds: int = 0
    audit_seconds: float = 5.0


@dataclass
class Cpu:
    """CPU seconds used in a phase; ``wall`` its length."""

    wall: float = 0.0
    server: float = 0.0
    postgres: float = 0.0
    load: float = 0.0
    busy: float = 0.0  # the whole machine, all cores

    def share(self, seconds: float) -> float:
        """As a share of one core."""
        return seconds / self.wall if self.wall else 0.0

    @property
    def other(self) -> float:
        return max(0.0, self.busy - self.server - self.postgres - self.load)


@dataclass
class Phase:
    name: str
    mode: str  # "max" (closed loop) or "half" (open loop, at a target rate)
    audit_log: bool = True  # answered by the server with the access log on
    round: int = 0  # the access log's comparison: which round (0: not part of it)
    requests: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)  # "201", "409 slot-taken", ...
    target_rps: float = 0.0
    max_send_lag_ms: float = 0.0  # open loop: how late the client sent, at worst
    exhausted: bool = False
    cpu: Cpu = field(default_factory=Cpu)
    cpu_requests: int = 0  # answers within the CPU measurement (to share the server's CPU out)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    @property
    def server_ms(self) -> float:
        """The server's CPU per request, in milliseconds."""
        return self.cpu.server / self.cpu_requests * 1000 if self.cpu_requests else math.nan

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s.startswith(("5", "transport")))


@dataclass
class Race:
    statuses: Counter[str] = field(default_factory=Counter)
    winners: list[tuple[int, int]] = field(default_factory=list)  # (slot id, appointment id)
    spread_ms: float = 0.0  # from the first request sent to the last answer


@dataclass
class Report:
    phases: list[Phase]
    race: Race
    booked: int  # 201s of the booking phases (warm-up included), the race excluded
    audit_phases: list[Phase] = field(default_factory=list)  # the access log off and on, by round


def _ticks(path: str) -> float:
    """utime + stime of a /proc/<pid>/stat file, in seconds (0 when the process is gone)."""
    try:
        with open(path, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backends(database: str) -> dict[int, float]:
    """CPU seconds of each Postgres backend serving ``database`` (its process title names it)."""
    found = {}
    marker = f" {database} ".encode()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    title = f.read()
            except OSError:
                continue
            if title.startswith(b"postgres: ") and marker in title:
                found[int(entry.name)] = _ticks(f"/proc/{entry.name}/stat")
    return found


def _machine_busy() -> float:
    with open("/proc/stat", "rb") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    at: float
    server: float
    backends: dict[int, float]
    load: float
    busy: float


class CpuMeter:
    """CPU used by the server, the Postgres backends of the scratch database, this process and
    the whole machine (Linux /proc)."""

    def __init__(self, server_pid: int, database: str) -> None:
        self.server_stat = f"/proc/{server_pid}/stat"
        self.database = database

    def sample(self) -> CpuSample:
        return CpuSample(
            time.perf_counter(),
            _ticks(self.server_stat),
            _backends(self.database),
            time.process_time(),
            _machine_busy(),
        )

    @staticmethod
    def between(a: CpuSample, b: CpuSample) -> Cpu:
        # A backend that started during the phase counts from zero; one that ended is missed.
        postgres = sum(used - a.backends.get(pid, 0.0) for pid, used in b.backends.items())
        return Cpu(
            wall=b.at - a.at,
            server=b.server - a.server,
            postgres=postgres,
            load=b.load - a.load,
            busy=b.busy - a.busy,
        )


Request = tuple[str, str, bytes | None]  # method, path, JSON body


class TransportError(Exception):
    """The connection failed or the answer was not HTTP we understand."""


class Sender(Protocol):
    async def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class RawSender:
    """A minimal HTTP/1.1 keep-alive client: up to ``connections`` open at once, each reused.

    Enough for the requests this benchmark sends and the answers uvicorn gives. Here httpx costs
    about 1 ms of CPU per request sent one at a time and 3-4 ms with 32 in flight, against about
    0.1 ms for this and 0.2 ms for the server to answer /healthz: with httpx on two cores the load
    process, not the server, would set every rate (see ``--client httpx``)."""

    def __init__(self, base: str, headers: dict[str, str], connections: int) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or HOST, parts.port or 80
        self.common = f"Host: {parts.netloc}\r\n".encode() + b"".join(
            f"{k}: {v}\r\n".encode() for k, v in headers.items()
        )
        self.slots = asyncio.Semaphore(connections)
        self.idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open: set[asyncio.StreamWriter] = set()

    async def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self.common
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        message = head + b"\r\n" + (body or b"")
        async with self.slots:
            while True:
                reused, reader, writer = await self._connection()
                try:
                    writer.write(message)
                    status, data, keep = await self._answer(reader)
                except (OSError, EOFError, ValueError, IndexError) as exc:
                    self._close(writer)
                    # Closed by the server as we reused it, before any answer: once more, anew.
                    stale = isinstance(exc, ConnectionResetError | asyncio.IncompleteReadError)
                    if reused and stale and not getattr(exc, "partial", b""):
                        continue
                    raise TransportError(type(exc).__name__) from exc
                break
            if keep:
                self.idle.append((time.monotonic(), reader, writer))
            else:
                self._close(writer)
        return status, data

    async def _connection(self) -> tuple[bool, asyncio.StreamReader, asyncio.StreamWriter]:
        """(reused?, reader, writer): the latest idle connection still open, else a new one."""
        while self.idle:
            since, reader, writer = self.idle.pop()
            if time.monotonic() - since < IDLE_LIMIT_S and not reader.at_eof():
                return True, reader, writer
            self._close(writer)
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise TransportError(type(exc).__name__) from exc
        self.open.add(writer)
        return False, reader, writer

    @staticmethod
    async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, keep = 0, False, True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                keep = value != b"close"
        if not chunked:
            return status, await reader.readexactly(length), keep
        data = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            data += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")  # no trailers
        return status, data, keep

    def _close(self, writer: asyncio.StreamWriter) -> None:
        self.open.discard(writer)
        writer.close()

    async def aclose(self) -> None:
        for writer in list(self.open):
            self._close(writer)
        self.idle.clear()


class HttpxSender:
    """httpx.AsyncClient with keep-alive: for comparison (see ``RawSender``)."""

    def __init__(self, base: str, headers: dict[str, str], connections: int) -> None:
        self.client = httpx.AsyncClient(
            base_url=base,
            headers=headers,
            timeout=60,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            response = await self.client.request(method, path, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise TransportError(type(exc).__name__) from exc
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self.client.aclose()


def sender(plan: Plan, connections: int, base: str | None = None) -> Sender:
    headers = {"Authorization": f"Bearer {plan.portal_key}"}
    kind = RawSender if plan.client == "raw" else HttpxSender
    return kind(base or plan.base, headers, connections)


async def exchange(client: Sender, request: Request) -> tuple[str, bytes]:
    """Send; the answer's status (with its problem ``code`` when it is an error) and body."""
    try:
        status, data = await client.request(*request)
    except TransportError as exc:
        return f"transport {exc}", b""
    if status < 300:
        return str(status), data
    try:
        return f"{status} {orjson.loads(data).get('code')}", data
    except (orjson.JSONDecodeError, AttributeError):
        return str(status), data


async def closed_loop(
    client: Sender,
    phase: Phase,
    requests: Iterator[Request],
    plan: Plan,
    meter: CpuMeter,
    *,
    seconds: float | None = None,
    warmup: float | None = None,
) -> None:
    """``concurrency`` workers send back to back; the first ``warmup`` seconds are not counted.
    Stops after ``seconds``, or earlier when ``requests`` runs out."""
    start = time.perf_counter()
    measure_from = start + (plan.warmup if warmup is None else warmup)
    stop = measure_from + (plan.seconds if seconds is None else seconds)
    done: list[tuple[float, float, str]] = []  # (sent, answered, status)
    cpu_from: list[CpuSample] = []

    async def worker() -> None:
        while (now := time.perf_counter()) < stop:
            if now >= measure_from and not cpu_from:
                cpu_from.append(meter.sample())
            request = next(requests, None)
            if request is None:
                phase.exhausted = True
                return
            sent = time.perf_counter()
            status, _ = await exchange(client, request)
            done.append((sent, time.perf_counter(), status))

    await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
    end = min(stop, max((a for _, a, _ in done), default=stop))
    cpu_to = meter.sample()
    # The rate: answers within the window. Latency: requests sent within it (not those of the
    # warm-up, slow while the server opens its database connections and prepares statements).
    # Answers: all, the warm-up's too.
    phase.requests = sum(1 for _, a, _ in done if measure_from <= a <= end)
    phase.seconds = end - measure_from
    phase.latencies_ms = [(a - s) * 1000 for s, a, _ in done if measure_from <= s and a <= end]
    phase.statuses = Counter(st for _, _, st in done)
    phase.cpu_requests = sum(1 for _, a, _ in done if a >= measure_from)
    if cpu_from:
        phase.cpu = CpuMeter.between(cpu_from[0], cpu_to)


async def open_loop(
    client: Sender, phase: Phase, requests: Iterator[Request], plan: Plan, meter: CpuMeter
) -> None:
    """Request i leaves at ``start + i / rate``, whatever happened to the earlier ones; its
    latency is from that scheduled moment to the answer."""
    rate = phase.target_rps
    total = max(1, int(rate * plan.seconds))
    results: list[tuple[float, float, str]] = []  # (scheduled, answered, status)
    lag = 0.0

    async def send(scheduled: float, request: Request) -> None:
        status, _ = await exchange(client, request)
        results.append((scheduled, time.perf_counter(), status))

    tasks = []
    cpu_from = meter.sample()
    start = time.perf_counter() + 0.01
    for i in range(total):
        request = next(requests, None)
        if request is None:
            phase.exhausted = True
            break
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lag = max(lag, time.perf_counter() - scheduled)
        tasks.append(asyncio.create_task(send(scheduled, request)))
    await asyncio.gather(*tasks)
    phase.cpu = CpuMeter.between(cpu_from, meter.sample())
    phase.requests = phase.cpu_requests = len(results)
    phase.seconds = max(a for _, a, _ in results) - start
    phase.latencies_ms = [(a - s) * 1000 for s, a, _ in results]
    phase.statuses = Counter(st for _, _, st in results)
    phase.max_send_lag_ms = lag * 1000


async def race(plan: Plan) -> Race:
    """200 clients, each on a connection of its own opened beforehand, wait on one event, then
    all book at once."""
    clients = [sender(plan, 1) for _ in plan.race]
    result = Race()
    try:
        await asyncio.gather(*(c.request("GET", "/healthz", None) for c in clients))
        go = asyncio.Event()
        first_sent: list[float] = []

        async def one(client: Sender, pnr: str, invitation: int, slot: int) -> None:
            body = orjson.dumps({"personnummer": pnr, "invitation_id": invitation, "slot_id": slot})
            await go.wait()
            if not first_sent:
                first_sent.append(time.perf_counter())
            status, data = await exchange(client, ("POST", BOOK, body))
            if status == "201":
                result.winners.append((slot, int(orjson.loads(data)["id"])))
            result.statuses[status] += 1

        tasks = [asyncio.create_task(one(c, *r)) for c, r in zip(clients, plan.race, strict=True)]
        await asyncio.sleep(0.2)  # every task waits on the event now
        go.set()
        await asyncio.gather(*tasks)
        result.spread_ms = (time.perf_counter() - first_sent[0]) * 1000
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return result


def _py_spy(plan: Plan, name: str, seconds: float) -> subprocess.Popen[bytes] | None:
    if plan.py_spy is None:
        return None
    out = Path(plan.py_spy) / f"{name}.folded"
    return subprocess.Popen(  # noqa: S603 - py-spy from PATH, fixed arguments
        [
            shutil.which("py-spy") or "py-spy",
            "record",
            "--pid",
            str(plan.server_pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def load(plan: Plan) -> Report:
    rng = random.Random(plan.seed)
    meter = CpuMeter(plan.server_pid, plan.database)
    first, last = plan.search_days

    def searches() -> Iterator[Request]:
        days = (last - first).days
        for pnr, invitation in itertools.cycle(plan.search_residents):
            start = first + dt.timedelta(days=rng.randrange(days))
            body = {
                "personnummer": pnr,
                "invitation_id": invitation,
                "first_day": start.isoformat(),
                "last_day": (start + dt.timedelta(days=rng.randrange(6, 28))).isoformat(),
            }
            yield "POST", SEARCH, orjson.dumps(body)

    def bookings_from(pairs: list[tuple[str, int, int]]) -> Iterator[Request]:
        for pnr, invitation, slot in pairs:
            yield (
                "POST",
                BOOK,
                orjson.dumps({"personnummer": pnr, "invitation_id": invitation, "slot_id": slot}),
            )

    bookings = bookings_from(plan.bookings)  # shared by both booking phases: no time twice
    search_requests = searches()

    def healthz() -> Iterator[Request]:
        while True:
            yield "GET", "/healthz", None

    phases: list[Phase] = []
    client = sender(plan, max(plan.concurrency, 256))
    try:
        for name, requests in (("healthz", healthz()), ("search", search_requests), ("booking", bookings)):
            phase = Phase(name, "max")
            print(f"  {name}: max rate, {plan.concurrency} in flight, {plan.seconds:.0f} s …", flush=True)
            spy = _py_spy(plan, f"{name}-max", plan.warmup + plan.seconds)
            await closed_loop(client, phase, requests, plan, meter)
            if spy is not None:
                spy.wait()
            phases.append(phase)
        for name, source in (("search", search_requests), ("booking", bookings)):
            measured = next(p for p in phases if p.name == name)
            phase = Phase(name, "half", target_rps=measured.rps / 2)
            print(f"  {name}: open loop at {phase.target_rps:,.0f}/s, {plan.seconds:.0f} s …", flush=True)
            spy = _py_spy(plan, f"{name}-half", plan.seconds)
            await open_loop(client, phase, source, plan, meter)
            if spy is not None:
                spy.wait()
            phases.append(phase)
        audit_phases = await audit_cost(client, plan, search_requests, bookings)
    finally:
        await client.aclose()
    print(f"  race: {len(plan.race)} clients, {RACE_SLOTS} times …", flush=True)
    race_result = await race(plan)
    booked = sum(p.statuses["201"] for p in [*phases, *audit_phases] if p.name == "booking")
    return Report(phases=phases, race=race_result, booked=booked, audit_phases=audit_phases)


async def audit_cost(
    on: Sender, plan: Plan, searches: Iterator[Request], bookings: Iterator[Request]
) -> list[Phase]:
    """Search and booking at max rate against the server with the access log off and the one
    with it on, interleaved round by round (which goes first alternates), the same requests
    drawn from the same sources; a short warm-up before each."""
    if plan.audit_off_base is None or plan.audit_rounds < 1:
        return []
    off = sender(plan, max(plan.concurrency, 256), plan.audit_off_base)
    meters = {
        True: CpuMeter(plan.server_pid, plan.database),
        False: CpuMeter(plan.audit_off_pid, plan.database),
    }
    clients = {True: on, False: off}
    warmup = min(plan.warmup, 1.0)
    phases: list[Phase] = []
    print(
        f"  access log: {plan.audit_rounds} rounds of search and booking at max rate, off and on "
        f"interleaved, {plan.audit_seconds:.0f} s each …",
        flush=True,
    )
    try:
        # The server with the log on is warm from the phases before; this one is cold (its
        # connections, prepared statements): a round of its own first, not compared (round 0).
        for name, requests in (("search", searches), ("booking", bookings)):
            phase = Phase(name, "max", audit_log=False, round=0)
            await closed_loop(off, phase, requests, plan, meters[False], seconds=plan.audit_seconds, warmup=0)
            phases.append(phase)
        for n in range(1, plan.audit_rounds + 1):
            order = (False, True) if n % 2 else (True, False)
            for name, requests in (("search", searches), ("booking", bookings)):
                for audit_log in order:
                    phase = Phase(name, "max", audit_log=audit_log, round=n)
                    await closed_loop(
                        clients[audit_log],
                        phase,
                        requests,
                        plan,
                        meters[audit_log],
                        seconds=plan.audit_seconds,
                        warmup=warmup,
                    )
                    phases.append(phase)
    finally:
        await off.aclose()
    return phases


def run_load(plan: Plan) -> Report:
    """The load process's entry point."""
    return asyncio.run(load(plan))


# --- The run ------------------------------------------------------------------------------------


def make_plan(
    url: str,
    base: str,
    region: Region,
    server_pid: int,
    days: tuple[dt.date, dt.date],
    args: argparse.Namespace,
    audit_off: tuple[str, int] | None = None,
) -> Plan:
    """Who searches, who books which time, who races for which; from the database."""
    rng = random.Random(args.seed)
    people = asyncio.run(
        fetch(
            url,
            "SELECT r.personnummer, i.id AS invitation_id, i.care_unit_id FROM invitations i "
            "JOIN residents r ON r.id = i.resident_id ORDER BY i.id",
        )
    )
    slots = asyncio.run(
        fetch(url, "SELECT id, care_unit_id FROM slots WHERE withdrawn_at IS NULL ORDER BY id")
    )
    by_unit: dict[int, list[tuple[str, int]]] = {}
    for p in people:
        by_unit.setdefault(p.care_unit_id, []).append(
            (f"{p.personnummer[:8]}-{p.personnummer[8:]}", p.invitation_id)
        )
    slots_by_unit: dict[int, list[int]] = {}
    for s in slots:
        slots_by_unit.setdefault(s.care_unit_id, []).append(s.id)
    for residents in by_unit.values():
        rng.shuffle(residents)
    for unit_slots in slots_by_unit.values():
        rng.shuffle(unit_slots)

    # The race: at the first unit, residents and times no other phase books.
    race_unit = region.units[0][0]
    racers = by_unit[race_unit][:RACE_CLIENTS]
    race_slots = slots_by_unit[race_unit][:RACE_SLOTS]
    race = [(pnr, invitation, race_slots[i % RACE_SLOTS]) for i, (pnr, invitation) in enumerate(racers)]
    by_unit[race_unit] = by_unit[race_unit][RACE_CLIENTS:]
    slots_by_unit[race_unit] = slots_by_unit[race_unit][RACE_SLOTS:]

    # Bookings: another resident and another free time of their unit each, the units interleaved.
    per_unit = [
        [
            (pnr, invitation, slot)
            for (pnr, invitation), slot in zip(by_unit[u], slots_by_unit.get(u, []), strict=False)
        ]
        for u, _ in region.units
    ]
    bookings = [b for group in itertools.zip_longest(*per_unit) for b in group if b is not None]
    searchers = [r for residents in by_unit.values() for r in residents]
    rng.shuffle(searchers)
    return Plan(
        base=base,
        database=url.rsplit("/", 1)[-1],
        portal_key=region.portal_key,
        server_pid=server_pid,
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=args.concurrency,
        search_residents=searchers,
        search_days=days,
        bookings=bookings,
        race=race,
        py_spy=str(args.py_spy) if args.py_spy else None,
        seed=args.seed,
        client=args.client,
        audit_off_base=audit_off[0] if audit_off else None,
        audit_off_pid=audit_off[1] if audit_off else 0,
        audit_rounds=args.audit_rounds,
        audit_seconds=args.audit_seconds,
    )


def check_race(url: str, plan: Plan, result: Race) -> list[str]:
    """What is wrong with the race, as lines (empty: nothing)."""
    problems = []
    expected = Counter({"201": RACE_SLOTS, "409 slot-taken": RACE_CLIENTS - RACE_SLOTS})
    if result.statuses != expected:
        problems.append(f"answers {dict(result.statuses)}, expected {dict(expected)}")
    slot_ids = sorted({slot for _, _, slot in plan.race})
    holders = asyncio.run(
        fetch(
            url,
            f"SELECT s.id, array_remove(array_agg(a.id ORDER BY a.id), NULL) AS holders FROM slots s "
            f"LEFT JOIN appointments a ON a.slot_id = s.id AND a.status IN {HOLDS_SLOT} "
            "WHERE s.id = ANY(:ids) GROUP BY s.id ORDER BY s.id",
            {"ids": slot_ids},
        )
    )
    wrong = [(h.id, list(h.holders)) for h in holders if len(h.holders) != 1]
    if len(holders) != RACE_SLOTS or wrong:
        problems.append(f"times without exactly one holding appointment: {wrong[:5]} ({len(wrong)} in all)")
    in_db = {(h.id, h.holders[0]) for h in holders if len(h.holders) == 1}
    if set(result.winners) != in_db:
        problems.append("the 201 answers do not name the appointments the database holds")
    invitations = [invitation for _, invitation, _ in plan.race]
    states = asyncio.run(
        fetch(
            url,
            "SELECT status, count(*) AS n FROM invitations WHERE id = ANY(:ids) GROUP BY status",
            {"ids": invitations},
        )
    )
    counts = {s.status: s.n for s in states}
    if counts != {"booked": RACE_SLOTS, "open": RACE_CLIENTS - RACE_SLOTS}:
        problems.append(f"the racers' invitations are {counts}")
    return problems


def _label(p: Phase) -> str:
    if not p.round:
        return f"{p.name} {p.mode}"
    return f"{p.name} with the access log {'on' if p.audit_log else 'off'}, round {p.round}"


def _ms(value: float) -> str:
    return f"{value:7.1f}" if not math.isnan(value) else "      -"


def print_report(report: Report, plan: Plan) -> None:
    print()
    print(
        f"{'phase':<16} {'requests':>8} {'rps':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        f"  server cpu ms/req   cores: server postgres load rest"
    )
    for p in report.phases:
        label = f"{p.name} {'max' if p.mode == 'max' else f'@{p.target_rps:,.0f}/s'}"
        cpu = p.cpu
        print(
            f"{label:<16} {p.requests:>8,} {p.rps:>7,.0f} {_ms(p.percentile(50))} {_ms(p.percentile(90))} "
            f"{_ms(p.percentile(99))} {_ms(max(p.latencies_ms, default=math.nan))} {p.server_ms:>18.2f}"
            f"   {cpu.share(cpu.server):>13.2f} {cpu.share(cpu.postgres):>8.2f} {cpu.share(cpu.load):>4.2f} "
            f"{cpu.share(cpu.other):>4.2f}"
        )
    print()
    for p in report.phases:
        notes = []
        expected = "200" if p.name != "booking" else "201"
        others = {s: n for s, n in p.statuses.items() if s != expected}
        if others:
            notes.append(f"answers other than {expected}: {others}")
        if p.exhausted:
            notes.append("ran out of prepared requests before the end (use more --residents)")
        if p.mode == "half" and p.max_send_lag_ms > 5:
            notes.append(
                f"the load process sent up to {p.max_send_lag_ms:.0f} ms late (counted in the latency)"
            )
        if p.mode == "max" and p.cpu.share(p.cpu.load) > 0.9:
            notes.append("the load process used a whole core: the rate may be the client's limit")
        if p.cpu.share(p.cpu.other) > BUSY_ELSEWHERE:
            notes.append(
                f"{p.cpu.share(p.cpu.other):.1f} cores busy with other work: rates are lower and latencies "
                "higher than on a quiet machine"
            )
        if notes:
            print(f"note, {p.name} {p.mode}: " + "; ".join(notes))
    print(
        f"{plan.concurrency} requests in flight at max rate; one server process; {os.cpu_count()} cores "
        "shared by the server, its Postgres backends, the load process and the rest (Postgres' own "
        "background work, anything else running)"
    )

    by = {(p.name, p.mode): p for p in report.phases}
    health = by[("healthz", "max")].rps
    search, booking = by[("search", "max")], by[("booking", "max")]
    search_ratio, booking_ratio = search.rps / health, booking.rps / health
    print()
    print(f"search / healthz:  {search_ratio:.2f}  ({search.rps:,.0f} / {health:,.0f} requests/s)")
    print(f"booking / healthz: {booking_ratio:.2f}  ({booking.rps:,.0f} / {health:,.0f} requests/s)")
    cost = by[("healthz", "max")].server_ms
    print(
        f"by server CPU per request (steadier on a shared machine): search {cost / search.server_ms:.2f}, "
        f"booking {cost / booking.server_ms:.2f} (healthz {cost:.2f} ms, search {search.server_ms:.2f} ms, "
        f"booking {booking.server_ms:.2f} ms)"
    )

    def goal(ok: bool, what: str) -> None:
        print(f"{'PASS' if ok else 'FAIL'}  {what}")

    goal(
        search_ratio >= SEARCH_SHARE,
        f"slot search at least {SEARCH_SHARE:g} x the /healthz rate ({search_ratio:.2f})",
    )
    goal(
        booking_ratio >= BOOKING_SHARE,
        f"booking at least {BOOKING_SHARE:g} x the /healthz rate ({booking_ratio:.2f})",
    )
    for name in ("search", "booking"):
        half = by[(name, "half")]
        p99 = half.percentile(99)
        goal(p99 < P99_LIMIT_MS, f"{name} p99 under {P99_LIMIT_MS:g} ms at half its max rate ({p99:.1f} ms)")


def _overhead(off: float, on: float) -> float:
    """What the access log costs, as a share of the rate without it (negative: on was faster)."""
    return 1 - on / off if off else math.nan


def print_audit_cost(report: Report) -> None:
    """Rates off and on by round; over all rounds (answers / seconds, CPU / answers) the
    overhead, with its spread over the rounds; the goal."""
    compared = [p for p in report.audit_phases if p.round]
    if not compared:
        return
    by = {(p.name, p.audit_log, p.round): p for p in compared}
    rounds = sorted({p.round for p in compared})
    print()
    print(
        "access log off vs on (max rate, interleaved; CPU: the server's and its Postgres backends' per request):"
    )
    print(
        f"{'round':<7} {'phase':<8} {'rps off':>8} {'rps on':>8} {'overhead':>9}   {'cpu ms off':>10} {'cpu ms on':>10}"
        f"   {'server/postgres off':>19} {'on':>11}"
    )
    results: dict[str, tuple[float, float, float, list[float]]] = {}
    for name in ("search", "booking"):
        overheads = []
        for n in rounds:
            off, on = by[(name, False, n)], by[(name, True, n)]
            overheads.append(_overhead(off.rps, on.rps))
            print(
                f"{n:<7} {name:<8} {off.rps:>8,.0f} {on.rps:>8,.0f} {overheads[-1]:>8.1%}   "
                f"{_cpu_per_request([off]):>10.2f} {_cpu_per_request([on]):>10.2f}   "
                f"{_split([off]):>19} {_split([on]):>11}"
            )
        off_all = [by[(name, False, n)] for n in rounds]
        on_all = [by[(name, True, n)] for n in rounds]
        off_rps, on_rps = _pooled_rps(off_all), _pooled_rps(on_all)
        cpu_off, cpu_on = _cpu_per_request(off_all), _cpu_per_request(on_all)
        results[name] = (off_rps, on_rps, _overhead(off_rps, on_rps), overheads)
        print(
            f"{'all':<7} {name:<8} {off_rps:>8,.0f} {on_rps:>8,.0f} {_overhead(off_rps, on_rps):>8.1%}   "
            f"{cpu_off:>10.2f} {cpu_on:>10.2f}   {_split(off_all):>19} {_split(on_all):>11}"
            f"   (by CPU: {cpu_on / cpu_off - 1:+.1%} per request)"
        )
    busy = max(p.cpu.share(p.cpu.other) for p in compared)
    if busy > BUSY_ELSEWHERE:
        print(
            f"note: up to {busy:.1f} cores busy with other work during these rounds: the rates swing with "
            "it (the spread), the CPU per request much less"
        )
    print()
    for name, (off_rps, on_rps, overhead, overheads) in results.items():
        print(
            f"{'PASS' if overhead <= AUDIT_OVERHEAD else 'FAIL'}  the access log costs at most "
            f"{AUDIT_OVERHEAD:.0%} of the {name} rate ({off_rps:,.1f}/s off, {on_rps:,.1f}/s on: "
            f"{overhead:.1%}; by round {min(overheads):.1%} to {max(overheads):.1%})"
        )


def _pooled_rps(phases: list[Phase]) -> float:
    seconds = sum(p.seconds for p in phases)
    return sum(p.requests for p in phases) / seconds if seconds else math.nan


def _split(phases: list[Phase]) -> str:
    """The server's and its Postgres backends' CPU per request, in ms, as 'server/postgres'."""
    answered = sum(p.cpu_requests for p in phases)
    if not answered:
        return "-"
    server = sum(p.cpu.server for p in phases) / answered * 1000
    return f"{server:.2f}/{sum(p.cpu.postgres for p in phases) / answered * 1000:.2f}"


def _cpu_per_request(phases: list[Phase]) -> float:
    """The server's and its Postgres backends' CPU per request over these phases, in milliseconds."""
    answered = sum(p.cpu_requests for p in phases)
    used = sum(p.cpu.server + p.cpu.postgres for p in phases)
    return used / answered * 1000 if answered else math.nan


def check_access_events(url: str, report: Report) -> list[str]:
    """One access event per successful search and booking the server with the log on answered
    (the race's winners too), none from the one with it off; then the sealer's time to chain them."""
    problems = []
    answered = [*report.phases, *report.audit_phases]
    expected = {
        "portal_search_slots": sum(p.statuses["200"] for p in answered if p.name == "search" and p.audit_log),
        "portal_book": sum(p.statuses["201"] for p in answered if p.name == "booking" and p.audit_log)
        + report.race.statuses["201"],
    }
    rows = asyncio.run(
        fetch(
            url,
            "SELECT operation, count(*) AS n FROM access_events WHERE operation = ANY(:ops) GROUP BY operation",
            {"ops": list(expected)},
        )
    )
    found = {r.operation: r.n for r in rows}
    for operation, n in expected.items():
        if found.get(operation, 0) != n:
            problems.append(
                f"{found.get(operation, 0)} access events of {operation} for {n} successful answers "
                "of the server with the access log on"
            )
    print(
        f"{'PASS' if not problems else 'FAIL'}  one access event per successful search "
        f"({expected['portal_search_slots']:,}) and booking ({expected['portal_book']:,}) with the log on, "
        "none with it off"
    )
    sealed, seconds = asyncio.run(seal_all(url))
    if sealed:
        print(
            f"sealing (the worker's job, off the request path): {sealed:,} events in {seconds:.1f} s "
            f"({sealed / seconds:,.0f}/s)"
        )
    return problems


async def seal_all(url: str) -> tuple[int, float]:
    """Chain every event, chunk by chunk as the worker does; (events, seconds)."""
    engine = create_engine(url, pool_size=1, max_overflow=0, application_name="halsosamtal-bench")
    total = 0
    t0 = time.perf_counter()
    try:
        while True:
            async with make_sessionmaker(engine)() as session, session.begin():
                sealed = await chain.seal(session)
            total += sealed
            if sealed < chain.SEAL_CHUNK:
                return total, time.perf_counter() - t0
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--residents", type=int, default=40_000, help="residents with an open invitation")
    parser.add_argument("--units", type=int, default=4, help="participating care units")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="uncounted seconds before each max-rate phase"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at max rate")
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="the load's HTTP client: a minimal keep-alive one (default) or httpx, which costs more "
        "CPU per request than the server's /healthz",
    )
    parser.add_argument(
        "--audit-rounds",
        type=int,
        default=3,
        help="rounds of search and booking with the access log off and on (0: do not measure its cost)",
    )
    parser.add_argument(
        "--audit-seconds", type=float, default=5.0, help="measured seconds per phase of those rounds"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="write py-spy profiles of the server here, one per phase (collapsed stacks, for speedscope or "
        "flamegraph.pl); py-spy takes CPU too, so the numbers of such a run are lower",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    if args.py_spy:
        if shutil.which("py-spy") is None:
            parser.error("--py-spy needs py-spy on PATH")
        args.py_spy.mkdir(parents=True, exist_ok=True)

    today = dt.date.today()
    year = today.year + 1
    # Times from two weeks ahead at the earliest (the booking lead time is 7 days) through the year.
    days = (max(dt.date(year, 1, 1), today + dt.timedelta(days=14)), dt.date(year, 12, 31))

    found = infra.find(Settings(), quiet=True)
    url = infra.with_database(found.database_url, f"halsosamtal_bench_{uuid.uuid4().hex[:8]}")
    asyncio.run(infra.ensure_database(url))
    server: subprocess.Popen[bytes] | None = None
    server_off: subprocess.Popen[bytes] | None = None
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "api.log"
        log_off = Path(tmp) / "api-audit-off.log"
        try:
            migrations.upgrade(url, "heads")  # what the server checks for: every head
            t0 = time.perf_counter()
            region = asyncio.run(build(url, args.residents, args.units, year))
            print(
                f"region: {args.units} units, {args.residents:,} residents with an open invitation "
                f"for {year}, in {time.perf_counter() - t0:.1f} s"
            )
            port = free_port()
            base = f"http://{HOST}:{port}"
            server = start_server(url, found.redis_url, port, log)
            wait_ready(base, server)
            print(f"server: pid {server.pid}, {base}, one uvicorn worker")
            t0 = time.perf_counter()
            created = publish(base, region, *days)
            asyncio.run(fetch(url, "ANALYZE slots"))
            print(f"times:  {created:,} published through the API in {time.perf_counter() - t0:.1f} s")
            audit_off = None
            if args.audit_rounds > 0:
                port_off = free_port()
                base_off = f"http://{HOST}:{port_off}"
                server_off = start_server(url, found.redis_url, port_off, log_off, audit_log=False)
                wait_ready(base_off, server_off)
                audit_off = (base_off, server_off.pid)
                print(f"server: pid {server_off.pid}, {base_off}, the same with the access log off")
            plan = make_plan(url, base, region, server.pid, days, args, audit_off)
            print(
                f"load:   a separate process; {len(plan.bookings):,} bookings prepared, "
                f"{len(plan.search_residents):,} residents to search for"
            )
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                report = pool.submit(run_load, plan).result()
            if server.poll() is not None:
                problems.append(f"the server exited with {server.returncode} during the run")
            if server_off is not None and server_off.poll() is not None:
                problems.append(f"the server without the access log exited with {server_off.returncode}")
            print_report(report, plan)
            print_audit_cost(report)

            print()
            for p in [*report.phases, *report.audit_phases]:
                if p.server_errors:
                    problems.append(f"{p.server_errors} 5xx or transport errors in {_label(p)}")
                failed = sum(n for status, n in p.statuses.items() if status != "201")
                if p.name == "booking" and failed:
                    problems.append(f"{failed} bookings in {_label(p)} did not succeed")
            booked_in_db = asyncio.run(
                fetch(url, f"SELECT count(*) AS n FROM appointments WHERE status IN {HOLDS_SLOT}")
            )[0].n
            if booked_in_db != report.booked + RACE_SLOTS:
                problems.append(
                    f"{booked_in_db} appointments in the database for "
                    f"{report.booked} + {RACE_SLOTS} 201 answers"
                )
            race_problems = check_race(url, plan, report.race)
            r = report.race
            print(
                f"race: {RACE_CLIENTS} clients for {RACE_SLOTS} times: {r.statuses['201']} x 201, "
                f"{r.statuses['409 slot-taken']} x 409 slot-taken, "
                f"{sum(n for s, n in r.statuses.items() if s.startswith('5'))} x 5xx, "
                f"all answered within {r.spread_ms:.0f} ms"
            )
            print(
                f"{'PASS' if not race_problems else 'FAIL'}  race: exactly {RACE_SLOTS} bookings, "
                f"{RACE_CLIENTS - RACE_SLOTS} 409s, no 5xx, one holding appointment per time in the database"
            )
            problems += race_problems
            problems += check_access_events(url, report)
        finally:
            for process, output in ((server, log), (server_off, log_off)):
                if process is not None:
                    stop_server(process)
                    if problems or process.returncode not in (0, -signal.SIGINT):
                        print(
                            f"--- the API's output ({output}) ---\n"
                            + output.read_text(errors="replace")[-4000:]
                        )
            if not args.keep:
                asyncio.run(infra.drop_database(url))
            else:
                print(f"kept the database: {url}")
    if problems:
        print("FAIL  correctness:\n  " + "\n  ".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
