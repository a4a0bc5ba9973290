"""What every register import reports (counts, and each rejected row with its line and reason)
and records (one ``register_imports`` row per run, whichever register it was); and how every
CSV import reads its file: what Swedish Excel writes (``;`` or ``,``, UTF-8 with or without a
BOM or Windows-1252, CRLF), streamed, with line length bounded.

Reading, in one place for the three imports (care units, residents, CNI):

* :func:`open_csv` reads the head of the stream (the header line, and at least the first
  ``SNIFF_BYTES`` for the encoding), detects what it is not told (:class:`CsvFormat`), and
  returns the header's fields and the rest of the stream, unread.
* :func:`utf8_chunks` passes the rest on as UTF-8 bytes (the residents import frames those for
  COPY); :func:`read_records` cuts it into records (the care units and CNI imports).
* :func:`csv_body` is the API routes' one way to take a CSV request body (streamed).

No reason here or in an import's rejects quotes a value from the file: a reject names the line
and the column, so a personnummer or an address never reaches a log, a report or a response.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Annotated, Literal

import typer
from fastapi import Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, DateTime, Integer, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base
from halsosamtal.core.errors import InvalidInput

MAX_LINE_BYTES = 1 << 20
"""A physical line longer than this is a file-level error: no register row is that long."""
MAX_RECORD_LINES = 20
"""A quoted field may span at most this many lines; a quote left open longer rejects the row
it starts in and reading goes on with the next line (else one stray quote would swallow the
rest of the file)."""
SNIFF_BYTES = 64 << 10
"""The head of the file the encoding is detected from (the header line when it is longer)."""
DEFAULT_REJECT_LIMIT = 1000
"""Rejects listed in an API answer (the rest are counted)."""


class Reject(BaseModel):
    """One rejected row. ``line`` is the physical line in the file where the row starts
    (the header is line 1); ``column`` is the column at fault, when one is."""

    line: int
    column: str | None = None
    reason: str


Delimiter = Literal[",", ";"]
Encoding = Literal["utf-8", "windows-1252"]


class CsvFormat(BaseModel):
    """How the file was read: what was detected, or given (``--delimiter``/``--encoding``,
    ``?delimiter=``/``?encoding=``)."""

    delimiter: Delimiter = Field(",", description="Field delimiter")
    encoding: Encoding = Field("utf-8", description="Character encoding")
    bom: bool = Field(False, description="The file starts with a UTF-8 byte order mark (skipped)")
    line_ending: Literal["LF", "CRLF"] = Field("LF", description="The header line's ending")
    delimiter_detected: bool = Field(True, description="False when the delimiter was given")
    encoding_detected: bool = Field(True, description="False when the encoding was given")

    def describe(self) -> str:
        """One line for the CLI: ``read as windows-1252 (detected), ';' (detected), CRLF``."""
        enc = self.encoding + (" with BOM" if self.bom else "")
        return (
            f"read as {enc} ({'detected' if self.encoding_detected else 'given'}), "
            f"delimiter '{self.delimiter}' ({'detected' if self.delimiter_detected else 'given'}), "
            f"{self.line_ending} line endings"
        )


class ImportSummary(BaseModel):
    import_id: int | None = Field(None, description="The register_imports row of this run")
    rows: int = Field(0, description="Data rows read (header not counted)")
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    moved_out: int = Field(0, description="Residents missing from a snapshot, now marked moved out")
    rejects: list[Reject] = Field(default_factory=list)
    rejects_truncated: int = Field(
        0, description="Rejects left out of `rejects` (it holds the first ones by line)"
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the import did not do, and why (e.g. no "
        "resident was marked moved out because some rows could not be identified)",
    )
    columns: list[str] = Field(
        default_factory=list, description="The columns the file has: the ones the import took"
    )
    columns_left_unchanged: list[str] = Field(
        default_factory=list,
        description="Known columns the file does not have: left as they were on every existing "
        "record (a new one gets the column's default)",
    )
    format: CsvFormat = Field(default_factory=CsvFormat, description="How the file was read")


def columns_line(columns: Sequence[str], left: Sequence[str]) -> str:
    """One line for the CLI: which columns were taken and which were left unchanged."""
    line = f"columns taken: {', '.join(columns)}"
    if left:
        line += f"; not in the file, so left unchanged: {', '.join(left)}"
    return line


@dataclass
class RejectReport:
    """Collects rejects; written as CSV (line, column, reason) next to the imported file."""

    rejects: list[Reject] = field(default_factory=list)

    def add(self, line: int, reason: str, column: str | None = None) -> None:
        self.rejects.append(Reject(line=line, column=column, reason=reason))

    def write(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "column", "reason"])
            for r in sorted(self.rejects, key=lambda r: r.line):
                writer.writerow([r.line, r.column or "", r.reason])


class RejectFile:
    """The CLI's reject report, written while an import streams its rejects (in line order) to a
    temporary file beside the target, and moved into place only once the import committed."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._writer: csv.DictWriter[str] | None = None

    def add(self, reject: Reject) -> None:
        if self._writer is None:
            fd, name = tempfile.mkstemp(
                prefix=f".{self.target.name}.", suffix=".partial", dir=self.target.parent
            )
            self._path = Path(name)
            self._file = os.fdopen(fd, "w", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._file, fieldnames=["line", "column", "reason"])
            self._writer.writeheader()
        self._writer.writerow({"line": reject.line, "column": reject.column or "", "reason": reject.reason})

    def publish(self) -> bool:
        """Move the report into place; False when there was nothing to report."""
        if self._file is None or self._path is None:
            return False
        self._file.close()
        os.replace(self._path, self.target)
        return True

    def discard(self) -> None:
        if self._file is not None and self._path is not None:
            self._file.close()
            self._path.unlink(missing_ok=True)


TRUE_WORDS = ("true", "1", "ja", "sant")
FALSE_WORDS = ("false", "0", "nej", "falskt", "")
"""The words of a boolean column, in any case and with spaces around: true/false, ja/nej, 1/0,
and SANT/FALSKT (Swedish Excel's own words for its TRUE and FALSE). Empty is false."""


def parse_bool(value: str) -> bool | None:
    """A boolean column's value (see ``TRUE_WORDS``); None when it is none of those words."""
    v = value.strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    return None


BOOL_REASON = "must be true or false (also ja/nej, 1/0)"


# --------------------------------------------------------------------------------------------
# Reading a CSV stream

_ENCODINGS: dict[str, Encoding] = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8",
    "windows-1252": "windows-1252",
    "cp1252": "windows-1252",
    "win-1252": "windows-1252",
    "ansi": "windows-1252",
}
_DELIMITERS: dict[str, Delimiter] = {",": ",", ";": ";", "comma": ",", "semicolon": ";"}
_BOM = codecs.BOM_UTF8
_CODEC = {"utf-8": "utf-8", "windows-1252": "cp1252"}


def parse_encoding(value: str | None, *, option: str = "encoding") -> Encoding | None:
    """A given encoding's canonical name; an unknown one is an error that lists the known."""
    if value is None or not value.strip():
        return None
    known = _ENCODINGS.get(value.strip().lower())
    if known is None:
        raise InvalidInput(
            f"{option} must be utf-8 or windows-1252 (also cp1252), not {value.strip()[:20]!r}",
            field=option,
        )
    return known


def parse_delimiter(value: str | None, *, option: str = "delimiter") -> Delimiter | None:
    """A given delimiter (``,``/``comma`` or ``;``/``semicolon``)."""
    if value is None or value == "":
        return None
    known = _DELIMITERS.get(value.strip().lower() or value)
    if known is None:
        raise InvalidInput(f"{option} must be ',' or ';' (comma or semicolon)", field=option)
    return known


DelimiterQuery = Annotated[
    str | None,
    Query(
        description="Field delimiter: `,` or `;` (also `comma`, `semicolon`). Default: detected "
        "from the header line (the one of the two it has more of).",
        max_length=9,
    ),
]
EncodingQuery = Annotated[
    str | None,
    Query(
        description="Character encoding: `utf-8` or `windows-1252` (`cp1252`). Default: "
        "detected from the start of the body (a UTF-8 BOM, or valid UTF-8; else Windows-1252).",
        max_length=12,
    ),
]

DelimiterOption = Annotated[
    str | None,
    typer.Option(
        "--delimiter",
        help="Field delimiter: ',' or ';' (default: detected from the header line).",
        show_default=False,
    ),
]
EncodingOption = Annotated[
    str | None,
    typer.Option(
        "--encoding",
        help="utf-8 or windows-1252 (default: detected: a UTF-8 BOM, or valid UTF-8, else Windows-1252).",
        show_default=False,
    ),
]


def given_format(delimiter: str | None, encoding: str | None) -> tuple[Delimiter | None, Encoding | None]:
    """The CLI's ``--delimiter`` and ``--encoding``; a value that is neither is one line (exit 2)."""
    from halsosamtal.core.console import fail  # (the console needs a terminal; the API never does)

    try:
        return (
            parse_delimiter(delimiter, option="--delimiter"),
            parse_encoding(encoding, option="--encoding"),
        )
    except InvalidInput as exc:
        fail(exc.detail, code=2)


CSV_MEDIA_TYPES = ("text/csv", "text/plain", "application/octet-stream")


def csv_body(request: Request, what: str = "the file") -> AsyncIterator[bytes]:
    """The request body of a CSV import, streamed: every import route reads its body here (and
    only here), never whole into memory. A body that says it is something else is a 422."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type not in CSV_MEDIA_TYPES:
        raise InvalidInput(f"send {what} as text/csv, not {media_type[:60]}", field="body")
    return request.stream()


@dataclass
class CsvStart:
    """The head of a CSV stream: how it is read, its header's fields (as written, trimmed), and
    the rest of the stream (raw bytes in the file's encoding, after the header line)."""

    format: CsvFormat
    header: list[str]
    rest: AsyncIterator[bytes]


def not_text(line: int, byte: int, encoding: str, at: int | None = None) -> InvalidInput:
    where = f"line {line} has the byte 0x{byte:02X}" + (f" at byte {at} of the line" if at else "")
    if encoding == "utf-8":
        hint = (
            "the file is read as UTF-8 (its start is UTF-8); if it was saved by Excel as "
            "'CSV (semikolonavgränsad)' it is Windows-1252: give the encoding windows-1252 "
            "(--encoding / ?encoding=)"
        )
    else:
        hint = "that byte is not a character in Windows-1252; save the file as 'CSV UTF-8'"
    return InvalidInput(f"the file cannot be read as {encoding}: {where}; {hint}", field="file")


def decode_block(block: bytes, encoding: Encoding, first_line: int) -> str:
    """``block`` (whole lines, the first of them line ``first_line``) as text; a byte that is not
    text in the encoding is a file-level error naming its line (never its content)."""
    try:
        return block.decode(_CODEC[encoding])
    except UnicodeDecodeError as exc:
        line = first_line + block.count(b"\n", 0, exc.start)
        column = exc.start - (block.rfind(b"\n", 0, exc.start) + 1) + 1
        raise not_text(line, block[exc.start], encoding, column) from None


def _split_fields(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter, strict=True))
    except (csv.Error, StopIteration) as exc:
        raise InvalidInput(f"the header row (line 1) is not valid CSV: {exc}", field="header") from None


def _count_outside_quotes(line: str, char: str) -> int:
    return sum(part.count(char) for part in line.split('"')[::2])


async def open_csv(
    chunks: AsyncIterable[bytes],
    *,
    delimiter: Delimiter | None = None,
    encoding: Encoding | None = None,
) -> CsvStart:
    """Read the header line (and the first ``SNIFF_BYTES``) of a CSV stream and detect what is
    not given: the encoding (a UTF-8 BOM; else UTF-8 when the head is valid UTF-8; else
    Windows-1252, what Swedish Excel's plain CSV is), the delimiter (``;`` when the header has
    more semicolons than commas outside quotes, else ``,``) and the line ending.

    File-level problems are ``InvalidInput``: an empty file, a first line that does not end
    within ``MAX_LINE_BYTES``, a header that is not text or not CSV."""
    iterator = aiter(chunks)
    buf = b""
    ended = False
    while True:
        newline = buf.find(b"\n")
        if (newline >= 0 and len(buf) >= SNIFF_BYTES) or ended:
            break
        if newline < 0 and len(buf) > MAX_LINE_BYTES:
            raise InvalidInput(
                f"the header row (line 1) does not end within {MAX_LINE_BYTES} bytes; "
                "this is not a CSV register file",
                field="file",
            )
        try:
            buf += await anext(iterator)
        except StopAsyncIteration:
            ended = True
    bom = buf.startswith(_BOM)
    if bom:
        buf = buf[len(_BOM) :]
    if not buf.strip(b"\r\n\t "):
        raise InvalidInput("the file is empty; it needs a header row", field="file")
    fmt = CsvFormat(bom=bom)
    if encoding is not None:
        fmt.encoding, fmt.encoding_detected = encoding, False
    elif bom:
        fmt.encoding = "utf-8"
    else:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(buf[:SNIFF_BYTES], final=ended)
            fmt.encoding = "utf-8"
        except UnicodeDecodeError:
            fmt.encoding = "windows-1252"
    newline = buf.find(b"\n")
    raw_header, rest = (buf, b"") if newline < 0 else (buf[:newline], buf[newline + 1 :])
    if len(raw_header) > MAX_LINE_BYTES:
        raise InvalidInput(
            f"the header row (line 1) is longer than {MAX_LINE_BYTES} bytes; this is not a CSV register file",
            field="file",
        )
    if raw_header.endswith(b"\r"):
        fmt.line_ending = "CRLF"
        raw_header = raw_header[:-1]
    header_text = decode_block(raw_header, fmt.encoding, 1)
    if "\x00" in header_text:
        raise InvalidInput("the header row (line 1) contains a NUL byte", field="header")
    if not header_text.strip():
        raise InvalidInput("the file has no header row (line 1 is empty)", field="header")
    if delimiter is not None:
        fmt.delimiter, fmt.delimiter_detected = delimiter, False
    else:
        semicolons = _count_outside_quotes(header_text, ";")
        fmt.delimiter = ";" if semicolons > _count_outside_quotes(header_text, ",") else ","
    header = [name.strip() for name in _split_fields(header_text, fmt.delimiter)]

    async def remainder() -> AsyncIterator[bytes]:
        if rest:
            yield rest
        async for chunk in iterator:
            yield chunk

    return CsvStart(fmt, header, remainder())


def header_columns(
    header: Sequence[str], known: Sequence[str], *, required: Sequence[str], example: str
) -> list[str]:
    """The header's column names (trimmed, lower case), or a file-level error that says what is
    wrong. A first line that names no known column is "no header row", and its content is not
    repeated (it is most likely a data row: a personnummer, an address)."""
    names = [n.strip().lower() for n in header]
    if not any(n in known for n in names):
        raise InvalidInput(
            "the file has no header row: line 1 names none of the columns "
            f"({', '.join(known)}); add a header line such as {example}",
            field="header",
        )
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(
            f"the header has unknown column(s) {', '.join(repr(n[:40]) for n in unknown)}; "
            f"known columns are {', '.join(known)}",
            field="header",
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput(f"the header names column(s) {', '.join(twice)} more than once", field="header")
    missing = [c for c in required if c not in names]
    if missing:
        raise InvalidInput(
            f"the header has no {', '.join(missing)} column; it is required "
            f"(the header has: {', '.join(names)})",
            field="header",
        )
    return names


async def utf8_chunks(
    rest: AsyncIterable[bytes], fmt: CsvFormat, *, first_line: int = 2
) -> AsyncIterator[bytes]:
    """The rest of the stream as UTF-8 bytes: passed on as it is for a UTF-8 file (checked by its
    reader), transcoded for Windows-1252 (one byte a character, so any chunk boundary works)."""
    if fmt.encoding == "utf-8":
        async for chunk in rest:
            yield chunk
        return
    line = first_line
    async for chunk in rest:
        yield decode_block(chunk, fmt.encoding, line).encode("utf-8")
        line += chunk.count(b"\n")


@dataclass
class Record:
    """One record of a CSV file: its first physical line, and its fields or why it is refused."""

    line: int
    fields: list[str] | None
    problem: str | None = None


async def read_records(
    rest: AsyncIterable[bytes], fmt: CsvFormat, columns: int, *, first_line: int = 2
) -> AsyncIterator[Record]:
    """The records after the header, streamed, with their physical line numbers.

    Quotes follow the CSV rules (a quoted field may hold the delimiter, quotes doubled and line
    breaks); blank lines, and lines of only delimiters (Excel writes them for emptied rows), are
    not records. A record that is not text, or longer than ``MAX_LINE_BYTES``, is a file-level
    error naming its line. A NUL byte, a wrong number of fields, or a quote left open is a
    refused record (``problem``), and reading goes on."""
    delim = fmt.delimiter
    line = first_line - 1  # the last line read
    carry = b""
    pending: list[str] = []
    pending_start = pending_quotes = 0

    def record(text: str, start: int) -> Record | None:
        if text.endswith("\r"):
            text = text[:-1]
        if not text.strip(delim + " \t"):
            return None
        if "\x00" in text:
            return Record(start, None, "contains a NUL byte")
        try:
            fields = next(csv.reader(io.StringIO(text, newline=""), delimiter=delim))
        except (csv.Error, StopIteration):
            return Record(start, None, "is not valid CSV")
        if len(fields) != columns:
            return Record(start, None, f"has {len(fields)} fields; the header has {columns} columns")
        return Record(start, fields)

    def lines_of(texts: list[str]) -> list[Record]:
        nonlocal line, pending, pending_start, pending_quotes
        out: list[Record] = []
        i = 0
        while i < len(texts):
            ln = texts[i]
            i += 1
            line += 1
            if pending:
                pending.append(ln)
                pending_quotes += ln.count('"')
                if pending_quotes % 2:
                    if len(pending) >= MAX_RECORD_LINES:
                        out.append(
                            Record(
                                pending_start,
                                None,
                                f"a quoted field is not closed within {MAX_RECORD_LINES} lines",
                            )
                        )
                        line -= len(pending) - 1
                        texts[i:i] = pending[1:]
                        pending = []
                    continue
                text, start = "\n".join(pending), pending_start
                pending = []
            else:
                quotes = ln.count('"')
                if quotes % 2:
                    pending, pending_start, pending_quotes = [ln], line, quotes
                    continue
                text, start = ln, line
            rec = record(text, start)
            if rec is not None:
                out.append(rec)
        return out

    async for chunk in rest:
        buf = carry + chunk if carry else chunk
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            if len(buf) > MAX_LINE_BYTES:
                raise InvalidInput(
                    f"line {line + 1} is longer than {MAX_LINE_BYTES} bytes; this is not a CSV register file",
                    field="file",
                )
            carry = buf
            continue
        carry = buf[cut:]
        block = buf[:cut]
        if cut > MAX_LINE_BYTES:
            for n, length in enumerate(len(x) for x in block.split(b"\n")):
                if length > MAX_LINE_BYTES:
                    raise InvalidInput(
                        f"line {line + 1 + n} is longer than {MAX_LINE_BYTES} bytes; "
                        "this is not a CSV register file",
                        field="file",
                    )
        texts = decode_block(block, fmt.encoding, line + 1).split("\n")
        texts.pop()
        for rec in lines_of(texts):
            yield rec
    if carry:
        for rec in lines_of([decode_block(carry, fmt.encoding, line + 1)]):
            yield rec
    if pending:
        yield Record(pending_start, None, "a quoted field is not closed before the end of the file")


class RegisterImport(Base):
    """One run of a register import: what came in and what it did, for the operators' record."""

    __tablename__ = "register_imports"
    __table_args__ = (CheckConstraint("kind IN ('residents', 'care_units')", name="kind"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, comment="File name or 'api'")
    as_of: Mapped[date] = mapped_column(Date, comment="Date of the register extract")
    snapshot: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(Text, comment="API client name or 'cli'")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    moved_out: Mapped[int] = mapped_column(Integer, default=0)
