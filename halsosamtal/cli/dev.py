"""Local development: ``halsosamtal demo-data`` and ``halsosamtal dev run|stop`` (``make run``).

``dev run`` finds Postgres and Redis (or starts the embedded ones), migrates, loads a
deterministic demo region the first time, then runs the API and the worker until Ctrl-C, when
it stops them, and the embedded servers if it started them. It drives the same public commands
an operator uses (``halsosamtal import ...``), in child processes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from halsosamtal.core.console import console, err_console, fail

if TYPE_CHECKING:
    from halsosamtal.core.settings import Settings

app = typer.Typer(help="Local development: run everything, stop embedded servers.", no_args_is_help=True)


def _today() -> dt.date:
    from halsosamtal.core.clock import local_today

    return local_today()


DEMO_SEED = 2026
DEMO_RESIDENTS = 50_000
DEV_RUN_RESIDENTS = 20_000
"""``make run``'s region: some 500 invitations in the year (README: what its simulation costs)."""
DEMO_CLIENT = "demo-operator"


def demo_data(
    out: Annotated[Path | None, typer.Option(help="Where to write the residents CSV.")] = None,
    residents: Annotated[int, typer.Option(min=1, help="Number of residents.")] = DEMO_RESIDENTS,
    seed: Annotated[int, typer.Option(help="Same seed, same file.")] = DEMO_SEED,
    bad_rows: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of realistic bad rows.")] = 0.0,
    reference: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Ages are as of this day (default today)."),
    ] = None,
    care_units: Annotated[int, typer.Option(min=1, max=500, help="Number of care units.")] = 10,
    care_units_out: Annotated[
        Path | None, typer.Option(help="Also write the matching care unit CSV here.")
    ] = None,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Instead of a file: load the register into the (empty, migrated) database and "
            "live its programme year up to --as-of through the real services: invitations, "
            "reminders, bookings, talks, results, closed months.",
        ),
    ] = False,
    as_of: Annotated[
        dt.datetime | None,
        typer.Option(
            "--as-of",
            formats=["%Y-%m-%d"],
            help="With --simulate: the day the simulation reaches (default today; its year, or "
            "the year before until April).",
        ),
    ] = None,
) -> None:
    """Write a deterministic, Sweden-like demo register as the residents CSV, or (--simulate)
    make the demo region's year in progress in the database. Same seed, same result."""
    if simulate:
        if out is not None or care_units_out is not None or bad_rows or reference is not None:
            fail("--simulate loads the database: no --out, --care-units-out, --bad-rows or --reference")
        _simulate(residents=residents, seed=seed, care_units=care_units, as_of=as_of)
        return
    if as_of is not None:
        fail("--as-of is for --simulate")
    if out is None:
        fail("give --out FILE (the residents CSV), or --simulate to load the database")
    from halsosamtal.residents.demo import demo_care_units, write_care_units_csv, write_demo_csv

    units = demo_care_units(care_units, seed=seed)
    if care_units_out is not None:
        with care_units_out.open("w", encoding="utf-8", newline="") as f:
            write_care_units_csv(f, units)
    with out.open("w", encoding="utf-8", newline="") as f:
        summary = write_demo_csv(
            f,
            residents=residents,
            seed=seed,
            bad_rows=bad_rows,
            reference=(reference.date() if reference else _today()),
            care_units=units,
        )
    console.print(f"wrote {summary.rows} residents to {out} ({summary.bad_rows} bad rows)")


def _simulate(*, residents: int, seed: int, care_units: int, as_of: dt.datetime | None) -> None:
    import halsosamtal.models  # noqa: F401 - every table registered before the services run
    from halsosamtal.core.cli import check_database, database_url, not_after_today
    from halsosamtal.core.database import create_engine, make_sessionmaker
    from halsosamtal.core.errors import DomainError, SchemaOutOfDate
    from halsosamtal.core.settings import get_settings
    from halsosamtal.demo.simulate import SimulationSummary, fast_commits, simulate

    day = not_after_today(as_of.date()) if as_of else _today()
    url = database_url()

    async def go() -> SimulationSummary:
        engine = create_engine(url, pool_size=3, max_overflow=2, application_name="halsosamtal-demo")
        fast_commits(engine)
        try:
            await check_database(engine, url)
            return await simulate(
                make_sessionmaker(engine),
                get_settings(),
                seed=seed,
                residents=residents,
                care_units=care_units,
                as_of=day,
                progress=lambda what: err_console.print(f"  {what}", highlight=False),
            )
        finally:
            await engine.dispose()

    try:
        summary = asyncio.run(go())
    except DomainError as exc:
        fail(exc.detail)
    except SchemaOutOfDate as exc:
        fail(str(exc))
    console.print(
        f"simulated programme year {summary.year} up to {summary.as_of}: {summary.care_units} care units, "
        f"{summary.residents} residents, {summary.invitations} invitations in {summary.seconds:.1f} s",
        highlight=False,
    )
    for what, n in sorted(summary.counts.items()):
        console.print(f"  {what}: {n}", highlight=False)
    for phase, seconds in sorted(summary.phases.items(), key=lambda p: -p[1]):
        console.print(f"  time in {phase}: {seconds:.1f} s", highlight=False)
    for what, n in sorted(summary.refused.items()):
        console.print(f"  refused by the service ({what}): {n}", highlight=False)


def _halsosamtal(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
        [sys.executable, "-m", "halsosamtal.cli", *args],
        env=env,
        check=check,
        text=True,
        capture_output=True,
    )


async def _demo_loaded(url: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM care_units)"))
    finally:
        await conn.close()


def _simulate_demo(env: dict[str, str], residents: int) -> None:
    """The demo region's year so far, through ``demo-data --simulate`` (its progress shown)."""
    result = subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
        [
            sys.executable,
            "-m",
            "halsosamtal.cli",
            "demo-data",
            "--simulate",
            "--residents",
            str(residents),
            "--seed",
            str(DEMO_SEED),
        ],
        env=env,
        check=False,
        text=True,
        stdout=subprocess.PIPE,
    )
    if result.returncode != 0:
        fail(f"simulating the demo year failed:\n{result.stdout}")
    console.print(result.stdout.rstrip(), highlight=False)


def _load_demo(env: dict[str, str], data_dir: Path, residents: int) -> None:
    demo = data_dir / "demo"
    demo.mkdir(parents=True, exist_ok=True)
    units_csv, residents_csv = demo / "care_units.csv", demo / "residents.csv"
    year = _today().year
    steps: list[tuple[str, list[str]]] = [
        (
            "generating the demo register",
            [
                "demo-data",
                "--out",
                str(residents_csv),
                "--residents",
                str(residents),
                "--seed",
                str(DEMO_SEED),
                "--care-units-out",
                str(units_csv),
                "--reference",
                f"{year}-01-01",
            ],
        ),
        ("importing care units", ["import", "care-units", str(units_csv)]),
        ("importing residents", ["import", "residents", str(residents_csv), "--as-of", f"{year}-01-01"]),
        (
            "setting the programme",
            [
                "programme",
                "set",
                "--year",
                str(year),
                "--ages",
                "40,50,60",
                "--talk-rate",
                "1000",
                "--start-grant",
                "0",
                "--reminder-days",
                "28,56",
                "--valid-until",
                f"{year + 1}-03-31",
            ],
        ),
        (
            "publishing bookable times (Tue and Thu mornings, the next 12 weeks)",
            [
                "slots",
                "template",
                "--all-participating",
                "--first-day",
                (_today() + dt.timedelta(days=7)).isoformat(),
                "--last-day",
                (_today() + dt.timedelta(weeks=12)).isoformat(),
            ],
        ),
    ]
    for what, args in steps:
        console.print(f"  {what} …")
        result = _halsosamtal(*args, env=env, check=False)
        if result.returncode != 0:
            fail(f"{what} failed:\n{result.stdout}{result.stderr}")


def _demo_key(env: dict[str, str], data_dir: Path, role: str = "operator") -> str:
    """The demo key of a role (operator, portal), kept in .data (local development only; mode 0600)."""
    client = DEMO_CLIENT if role == "operator" else f"demo-{role}"
    key_file = data_dir / f"{client}.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    if key_file.exists():
        return key_file.read_text().strip()
    if role == "operator":  # the name of keys made before the names had a timestamp
        _halsosamtal("clients", "revoke", client, env=env, check=False)
    name = f"{client}-{int(time.time())}"
    result = _halsosamtal("clients", "create", name, "--role", role, "--json", env=env)
    import json

    key = str(json.loads(result.stdout)["key"])
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


def _wait_ready(url: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own local URL
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


DEMO_RESIDENT = "19860412-1023"
"""A personnummer for the printed example (any valid number works with ``dev token``)."""


def _resident_tokens_from(settings: Settings) -> str:
    """Where the API takes residents' tokens from, in a line; makes the development identity
    provider's key the first time, so a token from ``dev token`` verifies at once."""
    from halsosamtal.access import dev_idp
    from halsosamtal.access.tokens import dev_idp_dir

    if settings.portal_identity == "asserted":
        return "asserted (HALSOSAMTAL_PORTAL_IDENTITY=asserted): the body names the resident"
    if settings.resident_token_jwks_url or settings.resident_token_jwks_file:
        return f"verified with {settings.resident_token_jwks_url or settings.resident_token_jwks_file}"
    dev_idp.ensure_keys(dev_idp_dir(settings))
    return "the development identity provider (halsosamtal dev token PNR)"


@app.command("run")
def run(
    host: Annotated[str, typer.Option(help="API address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    residents: Annotated[int, typer.Option(help="Demo residents loaded the first time.")] = DEV_RUN_RESIDENTS,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run the API only.")] = False,
    simulate: Annotated[
        bool,
        typer.Option(
            help="Load the demo region as a year in progress (demo-data --simulate); "
            "--no-simulate: the register, programme and bookable times only.",
        ),
    ] = True,
) -> None:
    """Find or start Postgres and Redis, migrate, load the demo region once, and run the API and
    the worker until Ctrl-C."""
    from halsosamtal.core import infra
    from halsosamtal.core.settings import get_settings

    settings = get_settings()
    found = infra.find(settings)
    console.print(infra.describe(found), highlight=False, soft_wrap=True)
    asyncio.run(infra.ensure_database(found.database_url))
    env = {**os.environ, "DATABASE_URL": found.database_url, "REDIS_URL": found.redis_url}
    result = _halsosamtal("migrate", env=env, check=False)
    if result.returncode != 0:
        fail(f"migration failed:\n{result.stdout}{result.stderr}")
    if not asyncio.run(_demo_loaded(found.database_url)):
        console.print(f"loading the demo region ({residents} residents, seed {DEMO_SEED}) the first time:")
        if simulate:
            _simulate_demo(env, residents)
        else:
            _load_demo(env, settings.data_dir, residents)
    key = _demo_key(env, settings.data_dir)
    portal_key = _demo_key(env, settings.data_dir, "portal")
    tokens_from = _resident_tokens_from(settings)

    children = [
        subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "halsosamtal.cli", "api", "--host", host, "--port", str(port)],
            env=env,
            # Their own process group: Ctrl-C in the terminal reaches only this process, which
            # then stops each child once. A second SIGINT makes uvicorn abandon its shutdown
            # (a CancelledError traceback in the log).
            process_group=0,
        )
    ]
    if not no_worker:
        children.append(
            subprocess.Popen([sys.executable, "-m", "halsosamtal.cli", "worker"], env=env, process_group=0)
        )
    base = f"http://{host}:{port}"
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        # Generous: on a busy machine, right after the first start's simulation, the API can take
        # well over a minute to import and connect.
        if not _wait_ready(f"{base}/readyz", timeout=180):
            err_console.print("[red]the API did not become ready in 180 s[/red]")
            stopping = True
        else:
            console.print(
                f"\n[bold]halsosamtal is running[/bold]\n"
                f"  API docs:      {base}/docs\n"
                f"  readiness:     {base}/readyz\n"
                f"  operator key:  {key}\n"
                f"  try:           curl -H 'Authorization: Bearer {key}' {base}/v1/care-units\n"
                f"  portal key:    {portal_key}\n"
                f"  as a resident: curl -X POST -H 'Authorization: Bearer {portal_key}' "
                f'-H "X-Resident-Token: $(halsosamtal dev token {DEMO_RESIDENT})" '
                f"-H 'Content-Type: application/json' -d '{{}}' {base}/v1/portal/access-log\n"
                f"  resident tokens: {tokens_from}\n"
                f"Press Ctrl-C to stop.",
                soft_wrap=True,
            )
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.2)
    finally:
        console.print("stopping …")
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        # Only what this run started: servers it found running were someone else's to stop.
        if "postgres" in found.started:
            infra.stop_embedded_postgres(settings.data_dir)
        if "redis" in found.started:
            infra.stop_embedded_redis(settings.data_dir)
        console.print("stopped")
    if not stopping and any(c.returncode not in (0, -signal.SIGINT, 130) for c in children):
        fail("the API or the worker stopped unexpectedly; see its output above")


@app.command("token")
def token(
    personnummer: Annotated[str, typer.Argument(help="The resident, e.g. 19860412-2386.")],
    acr: Annotated[
        str | None, typer.Option(help="The login's assurance level (default: the required minimum).")
    ] = None,
    minutes: Annotated[int, typer.Option(min=1, max=24 * 60, help="How long the token is valid.")] = 60,
) -> None:
    """Print a resident token signed with the development identity provider's key, for the
    portal calls' X-Resident-Token header (development only; the key is made on first use)."""
    from halsosamtal.access import dev_idp
    from halsosamtal.access.tokens import dev_idp_dir
    from halsosamtal.core.settings import get_settings
    from halsosamtal.residents import personnummer as pnr

    settings = get_settings()
    if settings.environment == "production":
        fail("dev token is for development: production takes tokens from the region's identity provider")
    if settings.resident_token_jwks_url or settings.resident_token_jwks_file:
        fail(
            "the API verifies resident tokens with the configured identity provider's keys "
            "(HALSOSAMTAL_RESIDENT_TOKEN_JWKS_*), which never accept the development key; unset them"
        )
    try:
        number = pnr.parse(personnummer).personnummer
    except pnr.InvalidPersonnummer as exc:
        raise typer.BadParameter(exc.reason, param_hint="PERSONNUMMER") from None
    level = acr or settings.resident_token_min_acr
    signed = dev_idp.mint(
        dev_idp_dir(settings),
        number,
        claim=settings.resident_token_personnummer_claim,
        acr=level,
        lifetime_s=minutes * 60,
    )
    sys.stdout.write(signed + "\n")


@app.command("stop")
def stop_embedded() -> None:
    """Stop the embedded Postgres and Redis (their data stays in .data)."""
    from halsosamtal.core import infra
    from halsosamtal.core.settings import get_settings

    settings = get_settings()
    pg = infra.stop_embedded_postgres(settings.data_dir)
    rd = infra.stop_embedded_redis(settings.data_dir)
    infra.forget(settings.data_dir)
    console.print(
        f"embedded Postgres {'stopped' if pg else 'was not running'}; "
        f"embedded Redis {'stopped' if rd else 'was not running'}"
    )
