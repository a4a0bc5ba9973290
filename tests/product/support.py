"""Plain helpers of the product layer: the OpenAPI operation a request hit, the commands the
README documents and the CLI has, raw HTTP/1.1 over one socket, and register rows."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "openapi" / "openapi.json"
README = ROOT / "README.md"


# --- OpenAPI operations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    literal_segments: int


@cache
def operations() -> tuple[Operation, ...]:
    """Every operation of the committed OpenAPI document."""
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    found = []
    for template, methods in document["paths"].items():
        segments = template.strip("/").split("/")
        regex = "/" + "/".join(
            "[^/]+" if s.startswith("{") and s.endswith("}") else re.escape(s) for s in segments
        )
        literal = sum(1 for s in segments if not s.startswith("{"))
        for method, operation in methods.items():
            found.append(
                Operation(
                    operation["operationId"], method.upper(), template, re.compile(regex + "$"), literal
                )
            )
    return tuple(found)


def match_operation(method: str, path: str) -> Operation | None:
    """The operation a request went to: its method and path matched against the templates, a
    literal segment winning over a parameter (``/batches/plan`` is not ``/batches/{batch_id}``)."""
    candidates = [op for op in operations() if op.method == method.upper() and op.pattern.match(path)]
    return max(candidates, key=lambda op: op.literal_segments, default=None)


# --- CLI commands ------------------------------------------------------------------------------

_COMMAND_WORD = re.compile(r"^[a-z][a-z-]*(\|[a-z][a-z-]*)*$")


def readme_commands(readme: str | None = None) -> set[str]:
    """The command paths the README's command-line block documents, e.g. ``"batch plan"``.

    ``halsosamtal messages release|deliver`` is two commands, and so is
    ``halsosamtal clients list [--active] | revoke NAME``: after `` | `` the group's next
    command follows. Option values such as ``--role operator|portal|ehr`` are not commands."""
    text = readme if readme is not None else README.read_text(encoding="utf-8")
    section = text.split("\n## The command line", 1)[1]
    block = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    commands: set[str] = set()
    for raw in block.splitlines():
        line = raw.split(" # ", 1)[0].rstrip().rstrip("\\").strip()
        if not line.startswith("halsosamtal "):
            continue  # a continuation line of the one before
        first, *others = line.removeprefix("halsosamtal ").split(" | ")
        tokens = first.split()
        group = tokens[0]
        if len(tokens) > 1 and _COMMAND_WORD.match(tokens[1]):
            for sub in tokens[1].split("|"):
                commands.add(f"{group} {sub}")
            for other in others:
                commands.add(f"{group} {other.split()[0]}")
        else:
            commands.add(group)
    return commands


def _root_command() -> Any:
    """The real CLI as the click command Typer builds (Typer may bundle its own click)."""
    import typer

    from halsosamtal.cli.app import app

    return typer.main.get_command(app)


def _subcommands(command: Any) -> dict[str, Any]:
    """A group's commands, asked for as click asks (groups may load lazily); {} for a command."""
    if not hasattr(command, "list_commands"):
        return {}
    ctx = command.context_class(command, info_name=command.name)
    return {name: command.get_command(ctx, name) for name in command.list_commands(ctx)}


@cache
def cli_tree() -> dict[str, set[str]]:
    """The real CLI's commands: each top-level name with its subcommands (empty for a command)."""
    return {name: set(_subcommands(command)) for name, command in _subcommands(_root_command()).items()}


@cache
def runs_alone() -> frozenset[str]:
    """Groups that are a command too, run without a subcommand (``halsosamtal worker``)."""
    return frozenset(
        name
        for name, command in _subcommands(_root_command()).items()
        if getattr(command, "invoke_without_command", False)
    )


def cli_options(path: str) -> set[str]:
    """The option flags of one command of the real CLI, e.g. ``{"--as-of", "--json", ...}``."""
    command = _root_command()
    for name in path.split():
        command = _subcommands(command)[name]
    return {flag for param in command.params for flag in (*param.opts, *param.secondary_opts)}


def cli_commands() -> set[str]:
    """Every command path of the real CLI, e.g. ``{"migrate", "batch plan", ...}``."""
    commands = {
        f"{group} {sub}" if sub else group for group, subs in cli_tree().items() for sub in subs or [""]
    }
    return commands | runs_alone()


def command_path(argv: list[str] | tuple[str, ...]) -> str | None:
    """The command a ``halsosamtal`` argument list runs (``["batch", "run", "--year", ...]`` ->
    ``"batch run"``); None for ``--help`` or an unknown command."""
    if not argv or "--help" in argv:
        return None
    tree = cli_tree()
    group = argv[0]
    if group not in tree:
        return None
    if not tree[group]:
        return group
    if len(argv) > 1 and argv[1] in tree[group]:
        return f"{group} {argv[1]}"
    return group if group in runs_alone() else None


# --- Raw HTTP/1.1 on one connection --------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """One kept-alive TCP connection to the API, for requests written back to back (pipelined)
    without waiting for the answers, as a client or proxy may."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def request(
        method: str, path: str, *, headers: dict[str, str] | None = None, json_body: Any = None
    ) -> bytes:
        body = b"" if json_body is None else json.dumps(json_body).encode()
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if json_body is not None:
            lines.append("Content-Type: application/json")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, *requests: bytes) -> None:
        self.sock.sendall(b"".join(requests))

    def read_response(self) -> RawResponse:
        """The next response on the connection; ConnectionError when the server closed it."""
        status_line = self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection instead of answering")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = self.reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise ConnectionResetError("the server closed the connection mid-response")
            name, value = line.decode("latin-1").split(":", 1)
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.reader.readline().strip(), 16)
                chunk = self.reader.read(size + 2)[:size]
                if size == 0:
                    break
                body += chunk
        else:
            body = self.reader.read(int(headers.get("content-length", "0")))
        return RawResponse(status, headers, body)


# --- Register rows -----------------------------------------------------------------------------

RESIDENT_COLUMNS = (
    "personnummer,care_unit,municipality,deso,protected_identity,address_line,postal_code,city,"
    "phone,digital_mailbox,language,deceased_on,emigrated_on"
)
CARE_UNIT_COLUMNS = "hsa_id,name,municipality,operator,participating,weekly_capacity"


def _luhn_digit(nine: str) -> int:
    total = 0
    for i, ch in enumerate(nine):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


def personnummer(birth: dt.date, serial: int, *, sex: str) -> str:
    """A valid personnummer ``YYYYMMDD-NNNC`` for a birth date; ``serial`` (1-49) picks the
    number, ``sex`` ('F' or 'M') the parity of its third digit."""
    assert 1 <= serial <= 49
    nnn = serial * 20 + (1 if sex == "M" else 0) + 2  # third digit odd for men, even for women
    nine = f"{birth:%y%m%d}{nnn:03d}"
    return f"{birth:%Y%m%d}-{nnn:03d}{_luhn_digit(nine)}"


def resident_row(
    pnr: str,
    unit: str,
    *,
    address: bool = True,
    deso: str = "1380C1010",
    deceased_on: str = "",
) -> str:
    """A register row of a resident in Halmstad; without ``address`` no channel reaches them
    (no address, phone or digital mailbox)."""
    street, postal, city = ("Storgatan 1", "302 31", "Halmstad") if address else ("", "", "")
    return f"{pnr},{unit},1380,{deso},false,{street},{postal},{city},,false,sv,{deceased_on},"


def result_document(
    external_id: str,
    held_at: dt.datetime,
    *,
    invitation_id: int | None = None,
    appointment_id: int | None = None,
    systolic: float = 140,
) -> dict[str, Any]:
    """A complete, plausible health-talk result (a 50-year-old smoker, SBP 140)."""
    body: dict[str, Any] = {
        "external_id": external_id,
        "held_at": held_at.isoformat(),
        "practitioner_hsa_id": "SE2321000131-P000000000042",
        "measurements": {
            "systolic": systolic,
            "diastolic": 85,
            "height": 180,
            "weight": 81,
            "waist": 94,
            "fasting_glucose": 5.4,
            "total_cholesterol": 6.3,
            "hdl": 1.4,
            "known_diabetes": False,
            "known_cvd": False,
        },
        "habits": {
            "tobacco": {"smoking": "daily", "snus": "never", "action": "advisory_talk"},
            "alcohol": {"audit_c": 3, "action": "none"},
            "physical_activity": {"exercise_minutes": 30, "everyday_minutes": 60, "action": "simple_advice"},
            "diet": {"index": 7, "action": "none"},
        },
        "referrals": ["tobacco_cessation"],
    }
    if invitation_id is not None:
        body["invitation_id"] = invitation_id
    if appointment_id is not None:
        body["appointment_id"] = appointment_id
    return body


def words(text: str) -> str:
    """Output with its whitespace collapsed: Rich wraps lines at the terminal width (80 columns
    when not a terminal), so a sentence may be split anywhere."""
    return " ".join(text.split())
