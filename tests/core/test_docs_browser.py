"""/docs and /redoc of a running API render in a real browser on a network closed to everything
but the server, as in a closed regional network.

The API runs as it does in production (``uvicorn services.api.main:app`` in a subprocess, against
the test database); headless Chromium resolves no host name and sends everything else to a
proxy port that refuses connections. The page must show every operation of the API, and every
request the page made must have gone to the server. A control serves FastAPI's stock page (its
assets on a CDN) to the same browser and sees it render nothing, so the closure is real: a page
whose assets came from a CDN fails this test."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from halsosamtal.core.settings import PROJECT_ROOT, Settings
from services.api.openapi import document
from tests.browser import HEADLESS_FLAGS

pytestmark = pytest.mark.slow

# Each UI marks an operation with an element id that ends in its operation id.
OPERATION_IDS = {
    "/docs": re.compile(r'id="operations-(?!tag-)[^"]*-(\w+)"'),  # operations-<tag>-<operation id>
    "/redoc": re.compile(r'id="operation/(\w+)"'),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _refusing_port() -> Iterator[int]:
    """A port bound but never listened on: every connection to it is refused while it is held."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


async def _wait_until_up(base: str, process: asyncio.subprocess.Process | None = None) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(600):  # bounded: at most about 60 s (importing the app is not quick)
            if process is not None and process.returncode is not None:
                break
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"the server at {base} did not come up")


@pytest.fixture(scope="module")
async def server(
    settings: Settings, engine: AsyncEngine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """The API as production runs it, on a free port of 127.0.0.1, against the test database.

    ``engine`` is not used here: the harness empties the tables with it after every test that
    reaches the database, and it must already be set up by then."""
    port = _free_port()
    env = {
        **os.environ,
        "HALSOSAMTAL_ENVIRONMENT": "test",
        "HALSOSAMTAL_DATABASE_URL": settings.database_url,
        "HALSOSAMTAL_REDIS_URL": settings.redis_url,
        "HALSOSAMTAL_QUEUE_NAME": settings.queue_name,
        "HALSOSAMTAL_LOG_LEVEL": "WARNING",
    }
    log = tmp_path_factory.mktemp("docs-server") / "uvicorn.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "services.api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            await _wait_until_up(base, process)
        except AssertionError as e:
            raise AssertionError(f"{e}:\n{log.read_text(errors='replace')[-3000:]}") from None
        yield base
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()


@asynccontextmanager
async def _serve_in_process(app: FastAPI) -> AsyncIterator[str]:
    """A small app served by uvicorn in the test's event loop (for the control)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    uv_server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(uv_server.serve(sockets=[sock]))
    try:
        await _wait_until_up(base)
        yield base
    finally:
        uv_server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        sock.close()


def _page_requests(net_log: Path, origin: str) -> list[str]:
    """The URLs that the page at ``origin`` asked for, from Chromium's network log: the requests
    it initiated (Chromium's own traffic, autofill and updates, has no such initiator)."""
    events: list[dict[str, Any]] = json.loads(net_log.read_text(encoding="utf-8"))["events"]
    return sorted(
        {
            str(params["url"])
            for event in events
            if (params := event.get("params") or {}).get("initiator") == origin and "url" in params
        }
    )


def _open_offline(chromium: Path, url: str, workdir: Path) -> tuple[str, list[str]]:
    """The DOM of ``url`` after the page settled, and every URL the page asked for, in a browser
    that can reach 127.0.0.1 and nothing else."""
    net_log = workdir / "net-log.json"
    with _refusing_port() as dead:
        command = [
            str(chromium),
            *HEADLESS_FLAGS,
            # No name resolves, and anything not for 127.0.0.1 goes to a proxy that refuses it.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--proxy-server=http://127.0.0.1:{dead}",
            "--proxy-bypass-list=127.0.0.1",
            f"--user-data-dir={workdir / 'profile'}",
            f"--log-net-log={net_log}",
            # Virtual time only runs while no request is pending: the spec fetch finishes first.
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr[-3000:]
    origin = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    return done.stdout, _page_requests(net_log, origin)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_render_every_operation_with_the_network_closed(
    server: str, chromium: Path, tmp_path: Path, page: str
) -> None:
    dom, requests = await asyncio.to_thread(_open_offline, chromium, f"{server}{page}", tmp_path)

    # Every request the page made went to the server, including the UI's own assets.
    outside = [u for u in requests if not u.startswith(f"{server}/")]
    assert not outside, f"the page asked for something outside the server: {outside}"
    assert f"{server}/openapi.json" in requests, requests
    assert any(u.startswith(f"{server}/docs-assets/") and u.endswith(".js") for u in requests), requests

    # And the UI ran: it read the OpenAPI document and drew each of its operations.
    expected = {op["operationId"] for ops in document()["paths"].values() for op in ops.values()}
    drawn = set(OPERATION_IDS[page].findall(dom))
    assert drawn == expected, (sorted(expected - drawn), sorted(drawn - expected), dom[:2000])
    if page == "/docs":
        assert len(re.findall(r'class="opblock opblock-', dom)) == len(expected)
        assert re.search(r'<h1 class="title">halsosamtal\b', dom), dom[:2000]


async def test_a_page_with_its_assets_on_a_cdn_renders_nothing_in_the_same_browser(
    chromium: Path, tmp_path: Path
) -> None:
    """The control: FastAPI's stock /docs, whose script and stylesheet are on a CDN, stays blank,
    so the checks above cannot pass on assets fetched from outside."""
    stock = FastAPI(title="control")

    @stock.get("/healthz", operation_id="healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async with _serve_in_process(stock) as base:
        dom, requests = await asyncio.to_thread(_open_offline, chromium, f"{base}/docs", tmp_path)
    assert any(urlsplit(u).hostname not in (None, "127.0.0.1") for u in requests), requests
    assert "opblock" not in dom
    assert OPERATION_IDS["/docs"].findall(dom) == []
