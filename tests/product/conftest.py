"""The product layer's harness: the real processes, started as the README and compose start them.

``halsosamtal migrate``, then ``halsosamtal api --port P`` and ``halsosamtal worker`` as
long-lived subprocesses of the installed console script, and every CLI command as a subprocess
too; the tests talk to the API over real TCP. Nothing runs in-process, so what only shows in a
real process (a model module never imported, settings read at start-up, when a transaction
commits relative to the response, the event loop) shows here.

Where Postgres and Redis come from is left to the service, exactly as on a user's machine
(local 127.0.0.1:5432/6379, else the embedded servers): the one setting added is
``HALSOSAMTAL_DATABASE_NAME``, a throw-away database ``halsosamtal_test_product_<pid>_<hex>``
on whatever Postgres the service finds (the arq queue follows it), with
``HALSOSAMTAL_DATA_DIR`` in a temporary folder (print files land there) and a free API port.
When the outer environment names its servers (``DATABASE_URL``/``REDIS_URL``), Redis is kept
and the database URL is pointed at the throw-away name. Every other ``HALSOSAMTAL_*`` variable
of the outer environment is left out, so a developer's queue or letters folder is never used.

Bytecode: the children cache it under the temporary folder (``PYTHONPYCACHEPREFIX``) even when
the outer environment says not to write it, as an ordinary install does; otherwise every
command compiles the whole codebase again (~4 s each on 2 cores).

At the end: the processes get SIGINT (then SIGKILL), the database is dropped, the Redis keys of
its queue are deleted and the temporary folder removed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import httpx
import pytest

from halsosamtal.core import infra
from halsosamtal.core.settings import Settings
from tests.product.support import ROOT, command_path, match_operation

READY_TIMEOUT_S = 60
CLI_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_async(work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine on its own loop in another thread (never disturbing pytest-asyncio's)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


class Run(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Answer:
    operation_id: str | None
    method: str
    path: str
    status: int


@dataclass
class Server:
    """A long-lived child process with its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20) -> int | None:
        """SIGINT (Ctrl-C, as ``make run`` users stop it), then SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.handle.close()
        return self.process.returncode


@dataclass
class Product:
    """The service as its users run it: a database of its own, the API, the worker, the CLI."""

    database: str
    tmp: Path
    env: dict[str, str]
    endpoints: infra.Endpoints
    port: int = 0
    executed: list[tuple[str, ...]] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    servers: dict[str, Server] = field(default_factory=dict)
    client: httpx.Client | None = None
    _keys: dict[str, str] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    # --- paths and names ---

    @property
    def data_dir(self) -> Path:
        return Path(self.env["HALSOSAMTAL_DATA_DIR"])

    @property
    def letters_dir(self) -> Path:
        return self.data_dir / "letters"

    @property
    def queue(self) -> str:
        return f"halsosamtal:{self.database}:queue"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return self.endpoints.database_url

    @property
    def embedded(self) -> bool:
        """Whether the service found no local servers and runs on the embedded ones."""
        return "embedded" in self.endpoints.database_source + self.endpoints.redis_source

    @staticmethod
    def script() -> list[str]:
        """The installed console script, as ``uv run halsosamtal`` runs it."""
        script = Path(sys.executable).parent / "halsosamtal"
        return [str(script)] if script.exists() else [sys.executable, "-m", "halsosamtal.cli"]

    # --- the CLI ---

    def cli(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = CLI_TIMEOUT_S,
    ) -> Run:
        """Run ``halsosamtal ARGS`` as a subprocess; never a traceback, and exit 0 unless
        ``check=False``."""
        done = subprocess.run(  # noqa: S603 - our own console script with test arguments
            [*self.script(), *args],
            env=env if env is not None else self.env,
            cwd=ROOT,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.executed.append(tuple(args))
        shown = (
            f"halsosamtal {' '.join(args)}\n--- exit {done.returncode}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        assert "Traceback" not in done.stderr, shown
        assert "Traceback" not in done.stdout, shown
        if check:
            assert done.returncode == 0, shown
        return Run(done.returncode, done.stdout, done.stderr)

    def executed_commands(self) -> set[str]:
        return {path for argv in self.executed if (path := command_path(argv)) is not None}

    # --- long-lived processes ---

    def start(
        self, name: str, *args: str, program: list[str] | None = None, env: dict[str, str] | None = None
    ) -> Server:
        """Start ``halsosamtal ARGS`` (or ``program`` as it is) with its output in a log file."""
        log = self.tmp / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        handle = log.open("ab")
        process = subprocess.Popen(  # noqa: S603 - our own programs
            program if program is not None else [*self.script(), *args],
            env=env if env is not None else self.env,
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, which stops them
        )
        if program is None:
            self.executed.append(tuple(args))
        server = Server(name, process, log, handle)
        self.servers[name] = server
        return server

    def start_services(self) -> None:
        """``halsosamtal api --port P`` and ``halsosamtal worker``, until /readyz answers 200."""
        self.port = free_port()
        self.start("api", "api", "--port", str(self.port))
        self.start("worker", "worker")
        if self.client is None:
            self.client = httpx.Client(
                base_url=self.base_url, timeout=60, event_hooks={"response": [self._record]}
            )
        else:
            self.client.base_url = httpx.URL(self.base_url)
        self.wait_ready()

    def stop_services(self) -> None:
        for name in ("api", "worker"):
            server = self.servers.pop(name, None)
            if server is not None:
                server.stop()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        assert self.client is not None
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for name in ("api", "worker"):
                server = self.servers[name]
                assert server.process.poll() is None, (
                    f"{name} exited ({server.process.returncode}):\n{server.tail()}"
                )
            try:
                response = self.client.get("/readyz")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise AssertionError(
            f"/readyz never answered 200 in {timeout} s ({last}):\n{self.servers['api'].tail()}"
        )

    # --- the API ---

    @property
    def api(self) -> httpx.Client:
        assert self.client is not None
        return self.client

    def _record(self, response: httpx.Response) -> None:
        request = response.request
        operation = match_operation(request.method, request.url.path)
        self.answers.append(
            Answer(
                operation.operation_id if operation else None,
                request.method,
                request.url.path,
                response.status_code,
            )
        )

    def answered_2xx(self) -> set[str]:
        return {a.operation_id for a in self.answers if a.operation_id and 200 <= a.status < 300}

    def key(self, name: str, role: str, *units: str) -> dict[str, str]:
        """Authorization headers of a client made with ``halsosamtal clients create``."""
        if name not in self._keys:
            args = ["clients", "create", name, "--role", role, "--json"]
            for unit in units:
                args += ["--unit", unit]
            created = self.cli(*args)
            self._keys[name] = json.loads(created.stdout)["key"]
        return {"Authorization": f"Bearer {self._keys[name]}"}

    def resident_token(self, personnummer: str) -> dict[str, str]:
        """A resident's login for the portal calls: ``halsosamtal dev token`` (the development
        identity provider, whose keys the API of this data folder verifies), as the README says."""
        if personnummer not in self._tokens:
            minted = self.cli("dev", "token", personnummer)
            self._tokens[personnummer] = minted.stdout.strip()
        return {"X-Resident-Token": self._tokens[personnummer]}

    def forget_keys(self) -> None:
        self._keys.clear()

    @property
    def operator(self) -> dict[str, str]:
        return self.key("product-operator", "operator")

    # --- the database and Redis ---

    def drop_database(self) -> None:
        run_async(lambda: infra.drop_database(self.database_url))

    def database_exists(self) -> bool:
        async def exists() -> bool:
            import asyncpg

            admin = infra.with_database(self.database_url, "postgres")
            conn = await asyncpg.connect(admin)
            try:
                return bool(
                    await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database)
                )
            finally:
                await conn.close()

        return bool(run_async(exists))

    def redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.endpoints.redis_url)

    def delete_queue_keys(self) -> int:
        """The arq keys of this database's queue: the queue, its health check, and the jobs and
        results whose ids carry the queue name (batches) or that sat in the queue (cron runs)."""
        r = self.redis()
        try:
            keys = set(r.scan_iter(match=f"*{self.queue}*", count=1000))
            for job_id in r.zrange(self.queue, 0, -1):
                job = job_id.decode()
                keys |= {
                    f"arq:job:{job}".encode(),
                    f"arq:retry:{job}".encode(),
                    f"arq:in-progress:{job}".encode(),
                }
            return int(r.delete(*keys)) if keys else 0
        finally:
            r.close()


def _child_env(database: str, data_dir: Path, pycache: Path) -> tuple[dict[str, str], Settings]:
    outer = os.environ
    env = {
        k: v
        for k, v in outer.items()
        if not k.startswith("HALSOSAMTAL_")
        and k not in ("DATABASE_URL", "REDIS_URL", "PYTHONDONTWRITEBYTECODE")
    }
    if outer.get("HALSOSAMTAL_EMBEDDED"):
        env["HALSOSAMTAL_EMBEDDED"] = outer["HALSOSAMTAL_EMBEDDED"]
    for name in ("DATABASE_URL", "HALSOSAMTAL_DATABASE_URL"):
        if outer.get(name):
            env[name] = infra.with_database(outer[name], database)
    for name in ("REDIS_URL", "HALSOSAMTAL_REDIS_URL"):
        if outer.get(name):
            env[name] = outer[name]
    env["HALSOSAMTAL_DATABASE_NAME"] = database
    env["HALSOSAMTAL_DATA_DIR"] = str(data_dir)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    settings = Settings(
        database_url=env.get("DATABASE_URL") or env.get("HALSOSAMTAL_DATABASE_URL", ""),
        redis_url=env.get("REDIS_URL") or env.get("HALSOSAMTAL_REDIS_URL", ""),
        database_name=database,
        data_dir=data_dir,
        embedded=env.get("HALSOSAMTAL_EMBEDDED") == "1",
    )
    return env, settings


def new_database_name() -> str:
    return f"halsosamtal_test_product_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@contextmanager
def running_product() -> Iterator[Product]:
    """The service as its users run it, in a throw-away database of its own: migrated, with the
    API and the worker up until the block ends; then stopped and dropped."""
    tmp = Path(tempfile.mkdtemp(prefix="halsosamtal-product-"))
    database = new_database_name()
    assert re.fullmatch(r"halsosamtal_test_product_\d+_[0-9a-f]{8}", database)
    env, settings = _child_env(database, tmp / "data", tmp / "pycache")
    # The same discovery the children make (quietly), to know where to drop the database.
    endpoints = infra.find(settings, database=database, quiet=True)
    if settings.database_url:
        endpoints = infra.Endpoints(settings.database_url, endpoints.redis_url, "", "")
    assert endpoints.database_url.rsplit("/", 1)[-1].split("?")[0] == database
    product = Product(database=database, tmp=tmp, env=env, endpoints=endpoints)
    try:
        product.cli("migrate")
        product.start_services()
        yield product
    finally:
        for server in list(product.servers.values()):
            server.stop()
        if product.client is not None:
            product.client.close()
        try:
            product.drop_database()
        finally:
            product.delete_queue_keys()
            if product.embedded:  # started for this session in its own data folder
                infra.stop_embedded_postgres(product.data_dir)
                infra.stop_embedded_redis(product.data_dir)
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="package")
def product() -> Iterator[Product]:
    """The running service for every product test (package scope: it stops when the last
    product test has run, not at the end of the whole suite)."""
    with running_product() as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, the tail of each server's log goes into the report."""
    report = yield
    if report.failed and "product" in getattr(item, "fixturenames", ()):
        product: Product | None = item.funcargs.get("product") if hasattr(item, "funcargs") else None  # type: ignore[attr-defined]
        if product is not None:
            for server in product.servers.values():
                report.sections.append((f"{server.name} log (tail)", server.tail()))
    return report
