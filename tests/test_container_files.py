"""The container files say what the code does: Dockerfile and compose.yaml, read, not run.

Fast and offline (no Docker, no database): parses compose.yaml and the Dockerfile and checks
the facts that break a deployment silently when the code moves on without them - the CLI
commands they run, the health endpoints and heartbeat key they probe, the paths they copy.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from functools import cache
from typing import Any

import pytest
import typer.main
import yaml

from halsosamtal.cli.app import app as cli_app
from halsosamtal.core.runtime import heartbeat_key
from halsosamtal.core.settings import PROJECT_ROOT
from services.api.health import router as health_router

ROOT = PROJECT_ROOT
APP_SERVICES = ("migrate", "api", "worker")
SERVICES = {"postgres", "redis", *APP_SERVICES}
APP_DIR = "/app"  # WORKDIR of both stages; PROJECT_ROOT inside the image


# --- readers ---------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    svc = compose()["services"][name]
    assert isinstance(svc, dict)
    return svc


@cache
def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"

    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instruction = (keyword.upper(), args.strip())
        if instruction[0] == "FROM":
            stages.append([])
        if stages:  # ARGs before the first FROM belong to no stage
            stages[-1].append(instruction)
    return stages


def instructions(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in stage if kw == keyword]


def final_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[-1]


def stage_named(name: str) -> list[tuple[str, str]]:
    for stage in dockerfile_stages():
        if re.search(rf"\bAS\s+{name}\s*$", stage[0][1], flags=re.IGNORECASE):
            return stage
    raise AssertionError(f"no Dockerfile stage named {name!r}")


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec (JSON) form: {args}"
    return [str(v) for v in value]


def copy_sources(args: str) -> tuple[dict[str, str], list[str]]:
    """Flags (--from=..., ...) and source paths of a COPY instruction."""
    words = shlex.split(args)
    flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1]


@cache
def cli_commands() -> dict[str, Any]:
    """The root command's subcommands (Typer's Click objects; recent Typer vendors Click)."""
    return dict(typer.main.get_command(cli_app).commands)  # type: ignore[attr-defined]


def assert_real_cli_command(argv: list[str]) -> None:
    """``argv`` (after the ``halsosamtal`` entry point) names a command and its real options."""
    assert argv, "empty command"
    name, *rest = argv
    commands = cli_commands()
    assert name in commands, f"`halsosamtal {name}` is not a command (have: {sorted(commands)})"
    options = {
        opt
        for param in commands[name].params
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("--")
    }
    for word in rest:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in options, f"`halsosamtal {name}` has no option {word}"


def healthcheck_command(svc: dict[str, Any]) -> str:
    test = svc["healthcheck"]["test"]
    assert isinstance(test, list)
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return " ".join(test[1:])


# --- compose.yaml ----------------------------------------------------------------------------


def test_compose_has_the_five_services_and_no_version_key() -> None:
    assert set(compose()["services"]) == SERVICES
    assert "version" not in compose(), "the Compose spec has no `version:`"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_api_and_worker_wait_for_migrations_and_redis(name: str) -> None:
    depends = service(name)["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["redis"]["condition"] == "service_healthy"


def test_migrate_waits_for_a_healthy_postgres_and_runs_once() -> None:
    migrate = service("migrate")
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"


@pytest.mark.parametrize("name", sorted(SERVICES - {"migrate"}))
def test_every_long_running_service_has_a_healthcheck(name: str) -> None:
    check = service(name).get("healthcheck")
    assert check, f"{name} has no healthcheck"
    assert not check.get("disable"), f"{name}'s healthcheck is disabled"
    assert healthcheck_command(service(name))


def test_migrate_does_not_inherit_the_images_api_healthcheck() -> None:
    assert service("migrate")["healthcheck"] == {"disable": True}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_run_the_clis_own_commands(name: str) -> None:
    command = service(name)["command"]
    assert isinstance(command, list), "exec form, so no shell sits between Docker and the CLI"
    assert command[0] == name
    assert_real_cli_command(command)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_one_image_and_production_settings(name: str) -> None:
    svc = service(name)
    env = svc["environment"]
    assert svc["build"] == "."
    assert svc["image"] == service("api")["image"]
    assert env["HALSOSAMTAL_ENVIRONMENT"] == "production"
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    # The webhook's secret is needed only when the webhook gateway is chosen; the settings
    # refuse it missing then (tests/core/test_settings.py), not compose for everyone.
    assert env["HALSOSAMTAL_MESSAGING_GATEWAY"] == "${HALSOSAMTAL_MESSAGING_GATEWAY:-letters}"
    assert env["HALSOSAMTAL_WEBHOOK_SECRET"] == "${HALSOSAMTAL_WEBHOOK_SECRET:-}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_letters_have_a_writable_volume_where_the_image_puts_them(name: str) -> None:
    """The read-only container can write the print files of the default 'letters' gateway."""
    env_lines = " ".join(instructions(final_stage(), "ENV"))
    letters = re.search(r"HALSOSAMTAL_LETTERS_DIR=(\S+)", env_lines)
    assert letters, "the image sets HALSOSAMTAL_LETTERS_DIR"
    assert service(name)["read_only"] is True
    assert f"letters:{letters.group(1)}" in service(name)["volumes"]
    assert "letters" in compose()["volumes"]
    made = " ".join(instructions(final_stage(), "RUN"))
    assert "install -d -o 10001 -g 10001" in made
    assert letters.group(1) in made
    assert any(letters.group(1) in v for v in instructions(final_stage(), "VOLUME"))


def test_secrets_are_required_variables_not_literals() -> None:
    assert service("postgres")["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "${POSTGRES_PASSWORD:?" in service("api")["environment"]["DATABASE_URL"]


def test_only_the_api_is_published_and_only_on_loopback() -> None:
    for name in SERVICES - {"api"}:
        assert "ports" not in service(name), f"{name} should not be published"
    assert all(str(p).startswith("127.0.0.1:") for p in service("api")["ports"])


def test_api_healthcheck_probes_readiness() -> None:
    assert "http://127.0.0.1:8000/readyz" in healthcheck_command(service("api"))


def test_worker_healthcheck_is_the_clis_worker_health() -> None:
    """The check is the command operators run (it reads heartbeat_key(queue) with the same
    settings the worker has: tests/cli/test_worker_health.py)."""
    test = service("worker")["healthcheck"]["test"]
    assert test == ["CMD", "halsosamtal", "worker", "health"]
    worker = cli_commands()["worker"]
    assert "health" in worker.commands  # type: ignore[attr-defined]
    assert heartbeat_key("q").endswith(":worker:heartbeat")


def test_the_worker_keeps_the_shared_settings_and_serves_metrics_inside_the_stack() -> None:
    env = service("worker")["environment"]
    assert env["HALSOSAMTAL_ENVIRONMENT"] == "production"
    assert env["HALSOSAMTAL_WORKER_METRICS_PORT"] == "9101"
    assert "ports" not in service("worker")


def test_probed_health_paths_exist_in_the_api() -> None:
    paths = {getattr(route, "path", None) for route in health_router.routes}
    assert {"/healthz", "/readyz"} <= paths


# --- Dockerfile ------------------------------------------------------------------------------


def test_final_stage_runs_as_a_non_root_user() -> None:
    users = instructions(final_stage(), "USER")
    assert users, "the final stage has no USER"
    user = users[-1].split(":", 1)[0]
    assert user not in ("root", "0", "")
    if user.isdigit():
        assert any(f"--uid {user}" in run for run in instructions(final_stage(), "RUN"))


def test_entrypoint_is_the_cli_and_the_default_command_is_real() -> None:
    (entrypoint,) = instructions(final_stage(), "ENTRYPOINT")
    assert exec_form(entrypoint) == ["halsosamtal"]
    (cmd,) = instructions(final_stage(), "CMD")
    assert_real_cli_command(exec_form(cmd))


def test_image_is_production_and_checks_liveness() -> None:
    env = " ".join(instructions(final_stage(), "ENV"))
    assert "HALSOSAMTAL_ENVIRONMENT=production" in env
    (check,) = instructions(final_stage(), "HEALTHCHECK")
    assert "http://127.0.0.1:8000/healthz" in check
    assert "8000" in instructions(final_stage(), "EXPOSE")


def test_runtime_copies_paths_that_exist_at_the_same_place() -> None:
    """The venv is editable and PROJECT_ROOT-relative: the source must keep the repo's layout."""
    copied: list[str] = []
    for args in instructions(final_stage(), "COPY"):
        flags, sources = copy_sources(args)
        assert flags.get("from") == "builder", args
        copied += sources
    relative = [s.removeprefix(APP_DIR + "/") for s in copied]
    assert all(s.startswith(APP_DIR + "/") for s in copied), copied
    for path in relative:
        if path != ".venv":
            assert (ROOT / path).exists(), f"the image copies {path}, which the repo lacks"
    for needed in ("halsosamtal", "services", "migrations", "alembic.ini", ".venv"):
        assert needed in relative, f"the runtime stage does not copy {needed}"


def test_builder_installs_locked_production_dependencies_only() -> None:
    runs = instructions(stage_named("builder"), "RUN")
    syncs = [run for run in runs if "uv sync" in run]
    assert len(syncs) == 2
    assert all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert "--no-install-project" in syncs[0]
    assert not any(flag in " ".join(syncs) for flag in ("--extra", "--all-extras", "--group"))


def test_builder_copies_from_the_context_only_what_exists_and_is_not_ignored() -> None:
    ignored = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for args in instructions(stage_named("builder"), "COPY"):
        flags, sources = copy_sources(args)
        if "from" in flags:
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"the build copies {source}, which the repo lacks"
            hits = [p for p in ignored if fnmatch.fnmatch(source, p)]
            assert not hits, f".dockerignore ({hits}) keeps {source} out of the build context"
    assert "tests" in ignored
