"""`make run` on a machine with neither Postgres nor Redis: `halsosamtal dev run` with the
embedded servers comes up, answers /readyz, and stops everything on Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from halsosamtal.core.clock import local_today
from halsosamtal.demo.simulate import simulated_year


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, key: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(url, headers=headers, timeout=3)
    return response.status_code, response.content


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder outside pytest's own temporary folders: the embedded Postgres runs as
    another user (as root, pgserver's 'pgserver'), and any pytest session that starts meanwhile
    resets /tmp/pytest-of-<user> to mode 0700, locking that user out of a folder below it."""
    folder = Path(tempfile.mkdtemp(prefix="halsosamtal-dev-run-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_dev_run_on_embedded_servers_comes_up_and_stops_cleanly(data_dir: Path) -> None:
    api_port, redis_port = _free_port(), _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "HALSOSAMTAL_EMBEDDED": "1",
        "HALSOSAMTAL_DATA_DIR": str(data_dir / "data"),
        "HALSOSAMTAL_EMBEDDED_REDIS_PORT": str(redis_port),
    }
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [
            sys.executable,
            "-m",
            "halsosamtal.cli",
            "dev",
            "run",
            "--port",
            str(api_port),
            "--residents",
            "2000",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        # The first start simulates the demo region's year (demo-data --simulate): on a busy
        # machine that takes minutes.
        deadline = time.monotonic() + 600
        status = 0
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, _ = _get(f"{base}/readyz")
            except httpx.TransportError:
                status = 0
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, "the API never became ready"
        key = (data_dir / "data" / "demo-operator.key").read_text().strip()
        code, body = _get(f"{base}/v1/care-units", key)
        assert code == 200
        assert len(json.loads(body)) == 10
        year = simulated_year(local_today())
        code, body = _get(f"{base}/v1/cohort/{year}/counts", key)
        assert code == 200
        assert json.loads(body)["total"] > 0
        # A year in progress: the report has talks in it.
        code, body = _get(f"{base}/v1/reports/participation?year={year}", key)
        assert code == 200, body
        assert json.loads(body)["total"]["counts"]["completed"]["value"] > 0
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "halsosamtal is running" in output
    assert key in output
    assert "stopped" in output
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", redis_port), timeout=1).close()
    assert not (data_dir / "data" / "postgres" / "postmaster.pid").exists()
