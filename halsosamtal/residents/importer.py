"""Import residents from the population and listing register (CSV), set-based.

How a file flows (all in the caller's transaction; nothing here commits):

1. **Framing, in Python, while streaming.** The byte stream is cut into physical lines; each
   record gets its physical line number and the record's bytes are passed on unchanged to
   ``COPY ... (FORMAT csv)`` into a TEMP staging table. Python only does what COPY cannot do
   row by row: UTF-8 and header checks (file-level errors), and rows COPY would fail the whole
   file on (wrong number of fields, NUL bytes, unterminated quotes), which become rejects with a
   reason. Quotes follow PostgreSQL's CSV rules, so what Python counts is what COPY parses.
2. **Validation, in SQL, on the staging table.** First the rows that repeat a stored resident
   exactly (most of a nightly extract) are found with one hash join and set aside: they pass
   every check and change nothing (_UNCHANGED_SQL). One pass over the other rows computes every
   check (personnummer, care unit, codes, booleans, dates), the typed values and what the row
   does (new resident, changed, unchanged) into a second TEMP table; duplicates of a
   personnummer are found by one sort of the numbers. Measured on a million rows,
   ``personnummer.parse`` costs ~18 µs a row in Python while the SQL below costs ~3 µs, and the
   SQL runs in the database process rather than in the single Python thread that also feeds
   COPY. The SQL mirrors ``halsosamtal.residents.personnummer.parse`` step by step;
   ``tests/residents/test_personnummer.py`` checks that they agree over a large random set.
3. **Writes**, only of what changes: an UPDATE of the changed residents, closing and opening
   their listing periods; for a snapshot, residents absent from the file marked moved out; then
   one plain INSERT of the new residents, in personnummer order, with their listing periods.
   The foreign keys' row-by-row triggers are switched off for these writes where the import may
   do so and can vouch for every reference itself (see _foreign_key_triggers_off): they were a
   third of a first import's time.

A transaction-level advisory lock keeps two imports from interleaving.

Where a first import of a million residents spends its time now (2 cores; see
``bench/import_residents.py``): about a tenth in the COPY, a third in the checks and two thirds
in writing residents and listing periods, which costs ~5 µs a resident (heap, three indexes
and the checks of each table, WAL) even with no validation at all; a re-import that changes
nothing in the COPY and the one hash join that finds the unchanged rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.core import clock
from halsosamtal.core.database import raw_connection
from halsosamtal.core.errors import InvalidInput
from halsosamtal.core.imports import (
    BOOL_REASON,
    DEFAULT_REJECT_LIMIT,
    FALSE_WORDS,
    MAX_LINE_BYTES,
    MAX_RECORD_LINES,
    TRUE_WORDS,
    CsvFormat,
    Delimiter,
    Encoding,
    ImportSummary,
    RegisterImport,
    Reject,
    header_columns,
    not_text,
    open_csv,
    utf8_chunks,
)
from halsosamtal.residents.columns import RESIDENT_COLUMNS
from halsosamtal.units.models import HSA_ID_PATTERN

log = logging.getLogger(__name__)

COLUMNS = RESIDENT_COLUMNS

ADVISORY_LOCK_KEY = 0x7265_7369_6465_6E74  # b"resident": one residents import at a time
HEADER_EXAMPLE = "personnummer,care_unit,municipality"

_STAGING = "residents_import_staging"
_CHECKED = "residents_import_checked"
_REOPEN = "residents_import_reopen"

# Booleans: the words ``halsosamtal.core.imports.parse_bool`` knows (the tests hold them equal).
_TRUE_WORDS = TRUE_WORDS
_FALSE_WORDS = FALSE_WORDS

ChunkSource = AsyncIterable[bytes]
RejectSink = Callable[[Reject], None]


# --------------------------------------------------------------------------------------------
# Framing: bytes -> COPY payload with line numbers


@dataclass
class _Framer:
    """Turn the file's bytes (after the header) into CSV for COPY: ``line,problem,<fields>``.

    Quote handling follows PostgreSQL's CSV parser: a ``"`` toggles quoting wherever it
    appears, ``""`` inside quotes is a literal quote, and a record ends at a newline outside
    quotes. So the field count Python checks is the one COPY will see.
    """

    columns: int
    delimiter: bytes = b","
    line: int = 1  # the header is line 1
    rows: int = 0
    carry: bytes = b""
    pending: list[bytes] = field(default_factory=list)
    pending_start: int = 0
    pending_quotes: int = 0

    def feed(self, chunk: bytes) -> bytes:
        """Frame every complete line in ``carry + chunk``; keep the incomplete rest."""
        buf = self.carry + chunk if self.carry else chunk
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            if len(buf) > MAX_LINE_BYTES:
                raise InvalidInput(
                    f"line {self.line + 1} is longer than {MAX_LINE_BYTES} bytes; "
                    "this does not look like a register extract in CSV"
                )
            self.carry = buf
            return b""
        # A line longer than the bound straddles chunks (only the first can), or fills a chunk
        # larger than the bound.
        if buf.find(b"\n") > MAX_LINE_BYTES or len(chunk) > MAX_LINE_BYTES:
            for n, ln in enumerate(buf[:cut].split(b"\n")):
                if len(ln) > MAX_LINE_BYTES:
                    raise InvalidInput(
                        f"line {self.line + 1 + n} is longer than {MAX_LINE_BYTES} bytes; "
                        "this does not look like a register extract in CSV"
                    )
        self.carry = buf[cut:]
        return self._frame(buf[:cut])

    def finish(self) -> bytes:
        """Frame the last line (when the file does not end in a newline) and any open quote."""
        out = b""
        if self.carry:
            last, self.carry = self.carry, b""
            out = self._frame(last + b"\n")
        if self.pending:
            self.rows += 1
            out += (
                self._reject(self.pending_start, "a quoted field is not closed before the end of the file")
                + b"\n"
            )
            self.pending = []
        return out

    def _frame(self, block: bytes) -> bytes:
        """Frame ``block``: whole lines, each ending in ``\\n``."""
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = self.line + block.count(b"\n", 0, exc.start) + 1
            column = exc.start - (block.rfind(b"\n", 0, exc.start) + 1) + 1
            raise not_text(line, block[exc.start], "utf-8", column) from None
        if b'"' in block or b"\x00" in block or self.pending:
            return self._frame_slow(block)
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n")
            if b"\r" in block:
                return self._frame_slow(block)
        # The fast path: no quotes, so a physical line is a record and every delimiter counts.
        lines = block.split(b"\n")
        lines.pop()  # the empty string after the last newline
        delim = self.delimiter
        commas = self.columns - 1
        prefix = b"%d" + delim + delim + b"%b"
        n = self.line
        out: list[bytes] = []
        append = out.append
        for ln in lines:
            n += 1
            if ln.count(delim) == commas and len(ln) > commas:  # (not only delimiters)
                append(prefix % (n, ln))
            elif ln and ln.strip(delim):
                append(self._field_count_reject(n, ln.count(delim) + 1))
            elif ln:
                self.rows -= 1  # only delimiters (Excel writes such lines for emptied rows): blank
        self.rows += len(lines) - lines.count(b"")
        self.line = n
        if not out:
            return b""
        out.append(b"")
        return b"\n".join(out)

    def _frame_slow(self, block: bytes) -> bytes:
        """Frame lines that may hold quotes, NULs or bare carriage returns, one by one."""
        lines = block.split(b"\n")
        lines.pop()
        out: list[bytes] = []
        i = 0
        while i < len(lines):
            ln = lines[i]
            i += 1
            self.line += 1
            if self.pending:
                self.pending.append(ln)
                self.pending_quotes += ln.count(b'"')
                if self.pending_quotes % 2:
                    if len(self.pending) >= MAX_RECORD_LINES:
                        # Give up on this record: reject its first line, re-read the others.
                        self.rows += 1
                        out.append(
                            self._reject(
                                self.pending_start,
                                f"a quoted field is not closed within {MAX_RECORD_LINES} lines",
                            )
                        )
                        back = len(self.pending) - 1
                        self.line -= back
                        lines[i:i] = self.pending[1:]
                        self.pending = []
                    continue
                record, start = b"\n".join(self.pending), self.pending_start
                self.pending = []
            else:
                quotes = ln.count(b'"')
                if quotes % 2:
                    self.pending, self.pending_start, self.pending_quotes = [ln], self.line, quotes
                    continue
                record, start = ln, self.line
            if record.endswith(b"\r"):
                record = record[:-1]  # the line ending (CRLF) is outside quotes: not data
            if not record.strip(self.delimiter):
                continue  # blank, or only delimiters
            out.append(self._record(record, start))
        if not out:
            return b""
        out.append(b"")
        return b"\n".join(out)

    def _record(self, record: bytes, start: int) -> bytes:
        """One complete record (quotes balanced) -> its COPY line, or a reject."""
        self.rows += 1
        if b"\x00" in record:
            return self._reject(start, "contains a NUL byte")
        outside = record.split(b'"')[::2]  # the parts not inside quotes
        if any(b"\r" in part for part in outside):
            return self._reject(start, "has a carriage return (CR) outside quotes")
        fields = sum(part.count(self.delimiter) for part in outside) + 1
        if fields != self.columns:
            return self._field_count_reject(start, fields)
        if b"\n\\." in record:
            # COPY reads a line that starts with \. as the end of the data, even inside quotes.
            return self._reject(start, "a line inside a quoted field starts with '\\.'")
        return b"%d" % start + self.delimiter + self.delimiter + record

    def _field_count_reject(self, line: int, fields: int) -> bytes:
        return self._reject(line, f"has {fields} fields; the header has {self.columns} columns")

    def _reject(self, line: int, reason: str) -> bytes:
        """The COPY line (without its newline) of a row rejected here: line and reason only."""
        quoted = reason.replace('"', '""').encode()
        return b'%d%b"%b"%b' % (line, self.delimiter, quoted, self.delimiter * self.columns)


# --------------------------------------------------------------------------------------------
# SQL

# Characters python-stdnum's ``compact`` maps to ASCII before it checks a personnummer
# (``stdnum.util._char_map``): dashes to '-', digits to ASCII digits; spaces and colons are
# removed. Only these change whether and how a number parses: stdnum's other mappings turn one
# non-digit into another, and such a number is rejected either way.
_DASHES = (
    0x58A,
    0x5BE,
    0x2010,
    0x2011,
    0x2012,
    0x2013,
    0x2014,
    0x2015,
    0xFE63,
    0xFF0D,
    0x180A,
    0x203E,
    0x2043,
    0xAF,
    0x2D7,
    0xFFE3,
    0x1680,
    0x207B,
    0x208B,
    0x2212,
    0x23AF,
    0x23BA,
    0x23BB,
    0x23BC,
    0x23BD,
    0x23E4,
)
_DIGIT_ZEROS = (0xFF10, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6)  # + 0..9 for each digit
_DROPPED = (  # besides ASCII space and colon, which replace() drops first
    0xA0,
    0x2000,
    0x2001,
    0x2002,
    0x2003,
    0x2004,
    0x2005,
    0x2006,
    0x2007,
    0x2008,
    0x2009,
    0x200A,
    0x202F,
    0x205F,
    0x3000,  # spaces
    0x1361,
    0x16EC,
    0x1804,
    0xFE13,
    0xFF1A,
    0xFE30,
    0xFE55,  # colons
)
_MAP_FROM = (
    "".join(map(chr, _DASHES))
    + "".join(chr(z + d) for d in range(10) for z in _DIGIT_ZEROS)
    + "".join(map(chr, _DROPPED))
)
_MAP_TO = "-" * len(_DASHES) + "".join(str(d) * len(_DIGIT_ZEROS) for d in range(10))

# Luhn over YYMMDDNNNC taken as five two-digit pairs: the first digit of each pair is doubled.
_LUHN_PAIRS = ",".join(str((2 * (p // 10)) // 10 + (2 * (p // 10)) % 10 + p % 10) for p in range(100))


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _compact_sql(v: str) -> str:
    """``stdnum.se.personnummer.compact`` as an SQL expression on the text ``v``.

    Only evaluated for values that are not already in one of the four plain forms, so the
    repetition of ``v``'s mapping below costs nothing on a normal file.
    """
    ascii_dropped = f"replace(replace({v}, ' ', ''), ':', '')"
    s = (
        f"(CASE WHEN octet_length({v}) = length({v}) THEN {ascii_dropped} "
        f"ELSE translate({ascii_dropped}, {_sql_literal(_MAP_FROM)}, {_sql_literal(_MAP_TO)}) END)"
    )
    return (
        f"(CASE WHEN length({s}) IN (10, 12) AND substr({s}, length({s}) - 4, 1) NOT IN ('-', '+')"
        f" THEN replace(replace(left({s}, -4), '-', ''), '+', '') || '-' || right({s}, 4)"
        f" ELSE replace(replace(left({s}, -5), '-', ''), '+', '') || right({s}, 5) END)"
    )


def _sep_shape_sql(c: str) -> str:
    """``c`` is digits with one '-' or '+' right before the last four (a compacted number)."""
    return f"({c} ~ '^[0-9]+[-+][0-9]+$' AND substr({c}, length({c}) - 4, 1) IN ('-', '+'))"


_DAYS_IN_MONTH = "'{31,28,31,30,31,30,31,31,30,31,30,31}'::int[]"

# The personnummer checks, step by step as in ``personnummer.parse``, over ``__source__`` (a
# table with a ``personnummer`` text column). Each ``OFFSET 0`` subquery computes its values
# once per row: without it the planner would inline them and evaluate each expression as often
# as it is referenced. :ref_year and :ref_key (YYYYMMDD as an integer) describe the import's
# as_of date, the reference for the 10-digit form's century.
PERSONNUMMER_SQL = f"""
SELECT p4.*,
  CASE
    WHEN p4.shape_problem IS NOT NULL THEN p4.shape_problem
    WHEN NOT p4.luhn_ok THEN 'the check digit is wrong'
    WHEN p4.nnnc < 10 THEN 'serial number 000 is never assigned'
    WHEN NOT (p4.y >= 1 AND p4.mm BETWEEN 1 AND 12 AND p4.dd >= 1 AND p4.dd <= CASE
              WHEN p4.mm <> 2 THEN ({_DAYS_IN_MONTH})[p4.mm]
              WHEN (p4.y % 4 = 0 AND p4.y % 100 <> 0) OR p4.y % 400 = 0 THEN 29 ELSE 28 END)
      THEN 'the date part is not a real date'
    WHEN p4.y * 10000 + p4.mm * 100 + p4.dd > CAST(:ref_key AS int) THEN 'the birth date is in the future'
  END AS pnr_problem,
  -- What is stored (meaningful only when pnr_problem is NULL): the 12 digits, with the
  -- century the 10-digit form implies (also as a number, which sorts faster), the birth date
  -- and the sex.
  p4.y::bigint * 100000000 + p4.digits % 100000000 AS pnr_key,
  lpad((p4.y::bigint * 100000000 + p4.digits % 100000000)::text, 12, '0') AS pnr_normal,
  CASE WHEN p4.y >= 1 AND p4.mm BETWEEN 1 AND 12 AND p4.dd >= 1 AND p4.dd <= CASE
            WHEN p4.mm <> 2 THEN ({_DAYS_IN_MONTH})[p4.mm]
            WHEN (p4.y % 4 = 0 AND p4.y % 100 <> 0) OR p4.y % 400 = 0 THEN 29 ELSE 28 END
    THEN make_date(p4.y, p4.mm, p4.dd) END AS pnr_birth_date,
  CASE WHEN p4.nnnc / 10 % 2 = 1 THEN 'M' ELSE 'F' END AS pnr_sex
FROM (
  SELECT p3.*,
    p3.rawdd > 60 AS coordination,
    CASE WHEN p3.rawdd > 60 THEN p3.rawdd - 60 ELSE p3.rawdd END AS dd,
    CASE
      WHEN p3.long THEN (p3.digits / 10000000000)::int * 100 + p3.yy
      -- 10 digits: the latest year at which the person is under 100 at the reference date,
      -- or a century earlier with '+'.
      ELSE CAST(:ref_year AS int) / 100 * 100 + p3.yy
        - CASE WHEN (CAST(:ref_year AS int) / 100 * 100 + p3.yy) * 10000 + p3.mm * 100
                    + CASE WHEN p3.rawdd > 60 THEN p3.rawdd - 60 ELSE p3.rawdd END > CAST(:ref_key AS int)
               THEN 100 ELSE 0 END
        - CASE WHEN p3.plus THEN 100 ELSE 0 END
    END AS y,
    (('{{{_LUHN_PAIRS}}}'::int[])[p3.yy + 1] + ('{{{_LUHN_PAIRS}}}'::int[])[p3.mm + 1]
      + ('{{{_LUHN_PAIRS}}}'::int[])[p3.rawdd + 1]
      + ('{{{_LUHN_PAIRS}}}'::int[])[p3.nnnc / 100 + 1]
      + ('{{{_LUHN_PAIRS}}}'::int[])[p3.nnnc % 100 + 1]) % 10 = 0 AS luhn_ok
  FROM (
    SELECT p2.*,
      -- Integer arithmetic on the digits as one number: far cheaper than substr() on text.
      (p2.digits / 100000000 % 100)::int AS yy,
      (p2.digits / 1000000 % 100)::int AS mm,
      (p2.digits / 10000 % 100)::int AS rawdd,
      (p2.digits % 10000)::int AS nnnc
    FROM (
      SELECT p1.*,
        -- The 10 or 12 digits as a number (NULL when the form is wrong), and which it was.
        CASE
          WHEN p1.plain AND octet_length(p1.pnr_in) IN (10, 12) THEN p1.pnr_in::bigint
          WHEN p1.plain THEN (left(p1.pnr_in, -5) || right(p1.pnr_in, 4))::bigint
          WHEN length(p1.c) IN (11, 13) AND {_sep_shape_sql("p1.c")}
            THEN (left(p1.c, -5) || right(p1.c, 4))::bigint
        END AS digits,
        CASE WHEN p1.plain THEN octet_length(p1.pnr_in) IN (12, 13)
             ELSE length(p1.c) = 13 END AS long,
        CASE WHEN p1.plain THEN octet_length(p1.pnr_in) = 11 AND substr(p1.pnr_in, 7, 1) = '+'
             ELSE length(p1.c) = 11 AND substr(p1.c, 7, 1) = '+' END AS plus,
        CASE
          WHEN p1.plain THEN NULL
          WHEN p1.pnr_in IS NULL THEN 'is empty'
          WHEN length(p1.c) NOT IN (11, 13) THEN 'must have 10 or 12 digits'
          WHEN NOT {_sep_shape_sql("p1.c")}
            THEN 'only digits and one ''-'' or ''+'' before the last four are allowed'
        END AS shape_problem
      FROM (
        SELECT p0.*,
          CASE WHEN NOT p0.plain THEN {_compact_sql("p0.pnr_in")} END AS c
        FROM (
          SELECT s.*, nullif(s.personnummer, '') AS pnr_in,
            -- The plain forms (YYYYMMDDNNNC, YYMMDDNNNC, and with '-' or '+' before the last
            -- four) are what stdnum's compaction would give already: cheap checks for them,
            -- the compaction (above) only for anything else.
            -- (octet_length: once the pattern matched the value is ASCII, and it is cheaper
            -- than length, which counts the characters of a UTF-8 string one by one.)
            coalesce(s.personnummer ~ '^[0-9]+[-+]?[0-9]+$' AND CASE octet_length(s.personnummer)
              WHEN 10 THEN strpos(s.personnummer, '-') + strpos(s.personnummer, '+') = 0
              WHEN 12 THEN strpos(s.personnummer, '-') + strpos(s.personnummer, '+') = 0
              WHEN 11 THEN substr(s.personnummer, 7, 1) IN ('-', '+')
              WHEN 13 THEN substr(s.personnummer, 9, 1) IN ('-', '+')
              ELSE false END, false) AS plain
          FROM __source__ s
          OFFSET 0
        ) p0
        OFFSET 0
      ) p1
      OFFSET 0
    ) p2
    OFFSET 0
  ) p3
  OFFSET 0
) p4
"""


def personnummer_query(source: str) -> str:
    """The personnummer checks over the table ``source`` (which has a ``personnummer`` text
    column): each row with ``pnr_problem`` (NULL when valid; else the reason, as
    ``personnummer.parse`` gives it), ``pnr_normal``, ``pnr_birth_date``, ``pnr_sex`` and
    ``coordination``. Bind ``reference_params(as_of)``."""
    return PERSONNUMMER_SQL.replace("__source__", source)


def reference_params(reference: dt.date) -> dict[str, int]:
    """The bind parameters of :func:`personnummer_query` for the reference date."""
    return {
        "ref_year": reference.year,
        "ref_key": reference.year * 10000 + reference.month * 100 + reference.day,
    }


def _words(words: tuple[str, ...]) -> str:
    return ", ".join(_sql_literal(w) for w in words)


def _bool_sql(col: str) -> str:
    """The boolean ``parse_bool`` gives for the text ``col`` (empty: false; unknown: NULL)."""
    norm = f"lower(btrim({col}, E' \\t\\r\\n'))"
    return (
        f"(CASE WHEN {col} IS NULL OR {col} = 'false' THEN false WHEN {col} = 'true' THEN true "
        f"WHEN {norm} IN ({_words(_TRUE_WORDS)}) THEN true "
        f"WHEN {norm} IN ({_words(_FALSE_WORDS)}) THEN false END)"
    )


def _date_sql(col: str) -> str:
    """The date in ``col`` written YYYY-MM-DD, or NULL when it is empty or not a real date."""
    y, m, d = f"substr({col}, 1, 4)::int", f"substr({col}, 6, 2)::int", f"substr({col}, 9, 2)::int"
    return (
        f"(CASE WHEN {col} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' THEN CASE WHEN {y} >= 1 "
        f"AND {m} BETWEEN 1 AND 12 AND {d} >= 1 AND {d} <= CASE "
        f"WHEN {m} <> 2 THEN ({_DAYS_IN_MONTH})[{m}] "
        f"WHEN ({y} % 4 = 0 AND {y} % 100 <> 0) OR {y} % 400 = 0 THEN 29 ELSE 28 END "
        f"THEN make_date({y}, {m}, {d}) END END)"
    )


def _date_problem_sql(col: str, value: str, birth: str) -> str:
    """Why the date column ``col`` (parsed: ``value``) is rejected, or NULL."""
    return (
        f"CASE WHEN {col} IS NULL THEN NULL "
        f"WHEN {value} IS NULL THEN 'must be a date written YYYY-MM-DD' "
        f"WHEN {value} > CAST(:as_of AS date) THEN "
        f"format('is after the date of the extract (as_of %s)', CAST(:as_of AS date)) "
        f"WHEN {value} < {birth} THEN 'is before the birth date' END"
    )


# The columns an import may change (birth date, sex and coordination follow from the number).
_MUTABLE = (
    "care_unit_id",
    "municipality",
    "deso",
    "protected_identity",
    "address_line",
    "postal_code",
    "city",
    "phone",
    "digital_mailbox",
    "language",
    "deceased_on",
    "emigrated_on",
)
_HSA_ID_SQL = HSA_ID_PATTERN.replace("'", "''")
_INSERTED = ("personnummer", "birth_date", "sex", "coordination_number", *_MUTABLE)
# The staging rows _UNCHANGED_SQL did not take, when it took any: in a table of their own (with
# statistics, for the plan of _CHECK_REST_SQL), as _CHECK_REST_SQL cannot read the lines taken
# from the table it inserts into (a nested loop over a table growing with each row inserted
# would read it anew for every row).
_REST = "residents_import_rest"
_REST_SQL = f"""
CREATE TEMP TABLE {_REST} ON COMMIT DROP AS
SELECT * FROM {_STAGING} WHERE line NOT IN (SELECT line FROM {_CHECKED})
"""


def _differs_sql(old: str, new: str, values: dict[str, str] | None = None) -> str:
    """Whether the stored resident ``old`` differs from the checked row ``new`` (a moved-out
    resident differs from any row: the row brings them back). ``values``: the expressions of
    the new values where they are not ``new``'s columns (see _merged_values)."""
    values = values or {}
    return (
        f"({', '.join(f'{old}.{c}' for c in _MUTABLE)}, {old}.moved_out_on) "
        f"IS DISTINCT FROM ({', '.join(values.get(c, f'{new}.{c}') for c in _MUTABLE)}, NULL::date)"
    )


# The file's column each resident column comes from.
_FILE_COLUMN = {c: c for c in _MUTABLE} | {"care_unit_id": "care_unit"}
_ADDRESS = ("address_line", "postal_code", "city")


def _merged_values(present: frozenset[str]) -> dict[str, str]:
    """The new values of the resident columns whose file column is missing: what the resident
    has (``old``), so a column a file does not have is never changed; a new resident gets the
    column's default (``c``, computed as from an empty field). A protected identity, from the
    file or as stored, still clears the address (its columns never hold one)."""
    values = {
        c: f"CASE WHEN old.id IS NULL THEN c.{c} ELSE old.{c} END"
        for c in _MUTABLE
        if _FILE_COLUMN[c] not in present
    }
    if "protected_identity" in values or any(c in values for c in _ADDRESS):
        protected = values.get("protected_identity", "c.protected_identity")
        for c in _ADDRESS:
            values[c] = f"CASE WHEN {protected} THEN NULL ELSE {values.get(c, f'c.{c}')} END"
    return values


# The columns of a resident that come from the file, but the personnummer, with their types.
_VALUE_TYPES = (
    ("birth_date", "date"),
    ("sex", "text"),
    ("coordination_number", "boolean"),
    ("care_unit_id", "bigint"),
    ("municipality", "text"),
    ("deso", "text"),
    ("protected_identity", "boolean"),
    ("address_line", "text"),
    ("postal_code", "text"),
    ("city", "text"),
    ("phone", "text"),
    ("digital_mailbox", "boolean"),
    ("language", "text"),
    ("deceased_on", "date"),
    ("emigrated_on", "date"),
)
_CHECKED_COLUMNS = (
    "line",
    "reject_column",
    "reject_reason",
    "pnr_key",
    *_INSERTED,
    "resident_id",
    "changed",
)

# The rows that repeat what is stored, found cheaply: most of a nightly extract. A row is taken
# here only when its personnummer is written in the 12-digit form (YYYYMMDDNNNC, or with '-' or
# '+' before the last four: no century to infer, so the same number whatever the extract's date)
# and equals a stored resident's, who has not moved out, and every other field is written
# exactly as that resident's stored value reads (the canonical words for booleans, YYYY-MM-DD for
# dates, empty for NULL). Such a row passes every check of _CHECK_TEMPLATE: the stored values
# passed the same checks when they were written, and the checks that depend on the extract's
# date (nothing after it) can only pass again, as extracts come in date order. And it changes
# nothing. So it skips the checks, which cost ~5 µs a row, for a hash join and a dozen
# comparisons. Anything else, however slightly different (' 1380', 'TRUE', an address with a
# protected identity), is checked like any row. Nothing is written for these rows, so only what
# the steps below read of them is kept: their values are left NULL. (A check added to
# _CHECK_TEMPLATE that stored rows may fail needs a condition here too.) A column the file does
# not have is one the import leaves as it is: it has no condition (see _unchanged_sql).
_UNCHANGED_SQL = f"""
CREATE TEMP TABLE {_CHECKED} ON COMMIT DROP AS
SELECT s.line, NULL::text AS reject_column, NULL::text AS reject_reason,
  old.personnummer::bigint AS pnr_key, old.personnummer,
  {", ".join(f"NULL::{t} AS {c}" for c, t in _VALUE_TYPES)},
  old.id AS resident_id, false AS changed
FROM {_STAGING} s
JOIN residents old ON old.personnummer = CASE octet_length(s.personnummer)
  WHEN 12 THEN s.personnummer
  WHEN 13 THEN CASE WHEN substr(s.personnummer, 9, 1) IN ('-', '+')
    THEN left(s.personnummer, 8) || right(s.personnummer, 4) END
  END
WHERE s.problem IS NULL AND old.moved_out_on IS NULL
__conditions__
"""
_UNCHANGED_CONDITIONS = {
    "care_unit": """CASE WHEN old.care_unit_id IS NULL THEN nullif(s.care_unit, '') IS NULL
      -- (a hashed subplan: the few units are hashed once, not looked up row by row)
      ELSE (old.care_unit_id, s.care_unit) IN (SELECT id, hsa_id FROM care_units) END""",
    "municipality": "nullif(s.municipality, '') IS NOT DISTINCT FROM old.municipality",
    "deso": "nullif(s.deso, '') IS NOT DISTINCT FROM old.deso",
    "protected_identity": (
        "s.protected_identity = CASE WHEN old.protected_identity THEN 'true' ELSE 'false' END"
    ),
    "address_line": "nullif(s.address_line, '') IS NOT DISTINCT FROM old.address_line",
    "postal_code": "nullif(s.postal_code, '') IS NOT DISTINCT FROM old.postal_code",
    "city": "nullif(s.city, '') IS NOT DISTINCT FROM old.city",
    "phone": "nullif(s.phone, '') IS NOT DISTINCT FROM old.phone",
    "digital_mailbox": ("s.digital_mailbox = CASE WHEN old.digital_mailbox THEN 'true' ELSE 'false' END"),
    "language": "s.language = old.language",
    "deceased_on": "nullif(s.deceased_on, '') IS NOT DISTINCT FROM to_char(old.deceased_on, 'YYYY-MM-DD')",
    "emigrated_on": "nullif(s.emigrated_on, '') IS NOT DISTINCT FROM to_char(old.emigrated_on, 'YYYY-MM-DD')",
}


def _unchanged_sql(present: frozenset[str]) -> str:
    """_UNCHANGED_SQL for a file with the columns ``present``."""
    return _UNCHANGED_SQL.replace(
        "__conditions__",
        "".join(f"  AND {sql}\n" for column, sql in _UNCHANGED_CONDITIONS.items() if column in present),
    )


# The other rows, in one pass: every check, the typed values, and what the row does. A row's
# reject is the first problem in column order; an early (framing) problem comes first and has
# no column.
#
# Each row is matched here, once, with the resident of its personnummer (``resident_id``), and
# ``changed`` says whether a valid row would change that resident: the writes below then touch
# only new and changed residents, and the snapshot's anti-join is on ids. ``pnr_key`` is the
# personnummer as a number: it sorts and hashes several times faster than the text.
#
# The care units are joined locked FOR KEY SHARE (as each foreign key check would lock the unit
# it finds): until this transaction ends no unit a row was matched with can be deleted or have
# its id or HSA-id changed, so every care_unit_id written below exists when the import commits.
_CHECK_TEMPLATE = f"""
INSERT INTO {_CHECKED} ({", ".join(_CHECKED_COLUMNS)})
SELECT __values__, old.id AS resident_id,
  c.reject_reason IS NULL AND old.id IS NOT NULL AND __differs__ AS changed
FROM (
  SELECT r.line,
    CASE
      WHEN r.problem IS NOT NULL THEN NULL
      WHEN r.pnr_problem IS NOT NULL THEN 'personnummer'
      WHEN r.care_unit_problem IS NOT NULL THEN 'care_unit'
      WHEN r.municipality_problem IS NOT NULL THEN 'municipality'
      WHEN r.deso_problem IS NOT NULL THEN 'deso'
      WHEN r.protected_problem IS NOT NULL THEN 'protected_identity'
      WHEN r.mailbox_problem IS NOT NULL THEN 'digital_mailbox'
      WHEN r.language_problem IS NOT NULL THEN 'language'
      WHEN r.deceased_problem IS NOT NULL THEN 'deceased_on'
      WHEN r.emigrated_problem IS NOT NULL THEN 'emigrated_on'
    END AS reject_column,
    coalesce(r.problem, r.pnr_problem, r.care_unit_problem, r.municipality_problem,
             r.deso_problem, r.protected_problem, r.mailbox_problem, r.language_problem,
             r.deceased_problem, r.emigrated_problem) AS reject_reason,
    CASE WHEN r.problem IS NULL AND r.pnr_problem IS NULL THEN r.pnr_key END AS pnr_key,
    CASE WHEN r.problem IS NULL AND r.pnr_problem IS NULL THEN r.pnr_normal END AS personnummer,
    r.birth_date,
    r.pnr_sex AS sex,
    r.coordination AS coordination_number,
    r.care_unit_id,
    r.municipality,
    r.deso,
    coalesce(r.protected, false) AS protected_identity,
    -- Protected identity (skyddad folkbokföring): the address is never stored.
    CASE WHEN r.protected THEN NULL ELSE r.address_line END AS address_line,
    CASE WHEN r.protected THEN NULL ELSE r.postal_code END AS postal_code,
    CASE WHEN r.protected THEN NULL ELSE r.city END AS city,
    r.phone,
    coalesce(r.mailbox, false) AS digital_mailbox,
    coalesce(r.language, 'sv') AS language,
    r.deceased_on,
    r.emigrated_on
  FROM (
    SELECT q.line, q.problem, q.pnr_problem, q.pnr_key, q.pnr_normal, q.pnr_sex, q.coordination,
      q.birth_date, q.care_unit_id, q.municipality, q.deso, q.protected, q.address_line,
      q.postal_code, q.city, q.phone, q.mailbox, q.language, q.deceased_on, q.emigrated_on,
      CASE WHEN q.care_unit IS NOT NULL AND q.care_unit_id IS NULL THEN
        CASE WHEN q.care_unit ~ '{_HSA_ID_SQL}'
          THEN 'no care unit has this HSA-id (import the care units first)'
          ELSE 'is not an HSA-id (SE, 10 digits, ''-'', then 1-20 letters or digits)'
        END
      END AS care_unit_problem,
      -- The code checks below are ^[0-9]{{4}}$, ^[0-9]{{4}}[ABC][0-9]{{4}}$ and ^[a-z]{{2}}$,
      -- written without the regex engine, which costs more than all of them together: a
      -- value of the right byte length made of only those ASCII characters.
      CASE WHEN q.municipality IS NOT NULL
            AND NOT (octet_length(q.municipality) = 4 AND ltrim(q.municipality, '0123456789') = '')
        THEN 'must be a municipality code of 4 digits (e.g. 1380)'
      END AS municipality_problem,
      CASE WHEN q.deso IS NOT NULL
            AND NOT (octet_length(q.deso) = 9 AND translate(q.deso, '0123456789', '0000000000')
                                                  IN ('0000A0000', '0000B0000', '0000C0000'))
        THEN 'must be a DeSO code: 4 digits, A, B or C, 4 digits (e.g. 1380C1010)'
      END AS deso_problem,
      CASE WHEN q.protected IS NULL THEN {_sql_literal(BOOL_REASON)}
      END AS protected_problem,
      CASE WHEN q.mailbox IS NULL THEN {_sql_literal(BOOL_REASON)}
      END AS mailbox_problem,
      CASE WHEN q.language IS NOT NULL
            AND NOT (octet_length(q.language) = 2
                     AND ltrim(q.language, 'abcdefghijklmnopqrstuvwxyz') = '')
        THEN 'must be a language code of 2 lowercase letters (e.g. sv)'
      END AS language_problem,
      {_date_problem_sql("q.deceased_in", "q.deceased_on", "q.birth_date")} AS deceased_problem,
      {_date_problem_sql("q.emigrated_in", "q.emigrated_on", "q.birth_date")} AS emigrated_problem
    FROM (
      SELECT p.line, p.problem, p.pnr_problem, p.pnr_key, p.pnr_normal, p.pnr_sex, p.coordination,
        CASE WHEN p.pnr_problem IS NULL THEN p.pnr_birth_date END AS birth_date,
        nullif(p.care_unit, '') AS care_unit, cu.id AS care_unit_id,
        nullif(p.municipality, '') AS municipality,
        nullif(p.deso, '') AS deso,
        p.protected_identity AS protected_in, {_bool_sql("p.protected_identity")} AS protected,
        nullif(p.address_line, '') AS address_line,
        nullif(p.postal_code, '') AS postal_code,
        nullif(p.city, '') AS city,
        nullif(p.phone, '') AS phone,
        p.digital_mailbox AS mailbox_in, {_bool_sql("p.digital_mailbox")} AS mailbox,
        nullif(p.language, '') AS language,
        nullif(p.deceased_on, '') AS deceased_in,
        {_date_sql("nullif(p.deceased_on, '')")} AS deceased_on,
        nullif(p.emigrated_on, '') AS emigrated_in,
        {_date_sql("nullif(p.emigrated_on, '')")} AS emigrated_on
      FROM ({personnummer_query("__rows__")}) p
      LEFT JOIN (SELECT id, hsa_id FROM care_units FOR KEY SHARE) cu ON cu.hsa_id = p.care_unit
      OFFSET 0
    ) q
    OFFSET 0
  ) r
  OFFSET 0
) c
__join__
"""
# All rows: one hash join with the residents. The rows _UNCHANGED_SQL left: most of them new or
# written otherwise (10 digits), few against a large register, so an index probe each (OFFSET
# 0 keeps the planner from turning it into a hash join of every resident again).
_JOIN_ALL = "LEFT JOIN residents old ON old.personnummer = c.personnummer"
_JOIN_REST = (
    "LEFT JOIN LATERAL (SELECT * FROM residents r WHERE r.personnummer = c.personnummer OFFSET 0) old ON true"
)


def _check_sql(rest: bool, present: frozenset[str]) -> str:
    """The check of every row (``rest``: of the rows _unchanged_sql left), for a file with the
    columns ``present``; a column it does not have keeps each resident's value."""
    values = _merged_values(present)
    projection = ", ".join(
        f"{values[c]} AS {c}" if c in values else f"c.{c}"
        for c in _CHECKED_COLUMNS
        if c not in ("resident_id", "changed")
    )
    return (
        _CHECK_TEMPLATE.replace("__rows__", _REST if rest else _STAGING)
        .replace("__join__", _JOIN_REST if rest else _JOIN_ALL)
        .replace("__values__", projection)
        .replace("__differs__", _differs_sql("old", "c", values))
    )


# The counts, and whether a personnummer comes twice (one sort of the numbers: cheap).
_COUNTS_SQL = f"""
SELECT count(*) AS rows,
  count(*) FILTER (WHERE reject_reason IS NOT NULL) AS rejected,
  count(*) FILTER (WHERE reject_reason IS NOT NULL AND personnummer IS NULL) AS unidentified,
  count(*) FILTER (WHERE reject_reason IS NULL AND resident_id IS NULL) AS new,
  count(*) FILTER (WHERE changed) AS changed,
  count(pnr_key) - count(DISTINCT pnr_key) AS duplicates
FROM {_CHECKED}
"""

# A later row with the personnummer of an earlier one is rejected whatever else is wrong with
# it: only the first can be imported, and never twice. (Only run when there are duplicates.)
_DUPLICATES_SQL = f"""
UPDATE {_CHECKED} c
SET reject_column = 'personnummer',
    reject_reason = format('the same personnummer as line %s (only that row can be imported)',
                           d.first_line),
    changed = false
FROM (
  SELECT pnr_key, min(line) AS first_line FROM {_CHECKED}
  WHERE pnr_key IS NOT NULL
  GROUP BY pnr_key HAVING count(*) > 1
) d
WHERE c.pnr_key = d.pnr_key AND c.line > d.first_line
"""

# New residents, each with an open listing period when listed. Plain INSERTs: _CHECK_TEMPLATE found
# no resident with these numbers, and only an import (one at a time) adds residents, so the
# speculative insertion of ON CONFLICT (a third more work per row) buys nothing; should a
# resident appear anyway, the unique index fails the import and nothing is written. The rows
# go in personnummer order, so the unique index is walked rather than hit at random (on a large
# first import that halves the time of the insert); the new ids ascend in the same order, and
# so do the listing periods' resident_id.
_INSERT_SQL = f"""
WITH ins AS (
  INSERT INTO residents ({", ".join(_INSERTED)})
  SELECT {", ".join(f"c.{c}" for c in _INSERTED)}
  FROM {_CHECKED} c
  WHERE c.reject_reason IS NULL AND c.resident_id IS NULL
  ORDER BY c.pnr_key
  RETURNING id, care_unit_id
),
opened AS (
  INSERT INTO listing_periods (resident_id, care_unit_id, listed_from)
  SELECT id, care_unit_id, CAST(:as_of AS date) FROM ins WHERE care_unit_id IS NOT NULL
  RETURNING 1
)
SELECT (SELECT count(*) FROM ins) AS inserted, (SELECT count(*) FROM opened) AS opened
"""

# Changed residents and their listing history. A resident whose unit changed gets the open
# period closed here; the new period is opened by _REOPEN_SQL, because in one statement the
# order of the two writes is not defined and the open period is unique per resident. Known
# residents without an open period (unlisted before, or moved out) get theirs opened here: they
# cannot clash. The comparison is made again on the stored row, so a row changed meanwhile is
# compared with what it is now.
_UPDATE_SQL = f"""
WITH up AS (
  UPDATE residents r SET
    {", ".join(f"{c} = c.{c}" for c in _MUTABLE)}, moved_out_on = NULL, updated_at = now()
  FROM {_CHECKED} c
  WHERE c.changed AND r.id = c.resident_id AND {_differs_sql("r", "c")}
  RETURNING r.id, r.care_unit_id
),
closed AS (
  UPDATE listing_periods lp SET listed_to = CAST(:as_of AS date)
  FROM up
  WHERE lp.resident_id = up.id AND lp.listed_to IS NULL
    AND lp.care_unit_id IS DISTINCT FROM up.care_unit_id
  RETURNING lp.resident_id
),
opened AS (
  INSERT INTO listing_periods (resident_id, care_unit_id, listed_from)
  SELECT up.id, up.care_unit_id, CAST(:as_of AS date) FROM up
  WHERE up.care_unit_id IS NOT NULL AND NOT EXISTS (
    SELECT FROM listing_periods lp WHERE lp.resident_id = up.id AND lp.listed_to IS NULL)
  RETURNING resident_id
),
reopen AS (
  INSERT INTO {_REOPEN} (resident_id, care_unit_id)
  SELECT up.id, up.care_unit_id FROM up JOIN closed ON closed.resident_id = up.id
  WHERE up.care_unit_id IS NOT NULL
  RETURNING resident_id
)
SELECT (SELECT count(*) FROM up) AS updated,
       (SELECT count(*) FROM closed) AS closed,
       (SELECT count(*) FROM opened) + (SELECT count(*) FROM reopen) AS opened
"""

_REOPEN_SQL = f"""
INSERT INTO listing_periods (resident_id, care_unit_id, listed_from)
SELECT resident_id, care_unit_id, CAST(:as_of AS date) FROM {_REOPEN}
"""

# Snapshot: whoever is not in the file (by a row that named them with a valid personnummer,
# imported or not) has moved out; they are kept, unlisted, with their open period closed. Run
# before the new residents are inserted, so only known residents are matched (by id).
_MOVED_OUT_SQL = f"""
WITH gone AS (
  UPDATE residents r
  SET moved_out_on = CAST(:as_of AS date), care_unit_id = NULL, updated_at = now()
  WHERE r.moved_out_on IS NULL
    AND NOT EXISTS (SELECT FROM {_CHECKED} c WHERE c.resident_id = r.id)
  RETURNING r.id
),
closed AS (
  UPDATE listing_periods lp SET listed_to = CAST(:as_of AS date)
  FROM gone WHERE lp.resident_id = gone.id AND lp.listed_to IS NULL
  RETURNING lp.resident_id
)
SELECT (SELECT count(*) FROM gone) AS moved_out, (SELECT count(*) FROM closed) AS closed
"""

_REJECTS_SQL = f"""
SELECT line, reject_column, reject_reason FROM {_CHECKED}
WHERE reject_reason IS NOT NULL ORDER BY line
"""


# --------------------------------------------------------------------------------------------
# The service


async def import_residents(
    session: AsyncSession,
    chunks: ChunkSource,
    *,
    as_of: dt.date,
    snapshot: bool = False,
    source: str,
    actor: str,
    reject_limit: int | None = DEFAULT_REJECT_LIMIT,
    on_reject: RejectSink | None = None,
    delimiter: Delimiter | None = None,
    encoding: Encoding | None = None,
) -> ImportSummary:
    """Import a residents register extract (CSV bytes in ``chunks``) as of the date ``as_of``.

    Runs in the caller's transaction and never commits. Every valid row is upserted by its
    normalised personnummer (birth date, sex and the coordination flag come from the number);
    a row that changes nothing is not written. Each rejected row is reported with its physical
    line and reason and changes nothing; of rows with the same personnummer only the first
    can be imported. When a resident's care unit changes (first listing and becoming unlisted
    included), the open listing period is closed at ``as_of`` and a new one opened from it.

    With ``snapshot``, residents not in the file are marked moved out at ``as_of`` (kept, not
    deleted; their open listing period is closed) and one who reappears later has the mark
    cleared. When a rejected row cannot be tied to a personnummer, nobody is marked moved out
    (the missing person may be that row) and the summary's ``warnings`` says so.

    Protected identity: for a resident with ``protected_identity`` true the address columns
    (``address_line``, ``postal_code``, ``city``) are never stored, whatever the file holds;
    an address stored earlier is cleared.

    Only ``personnummer`` is required. A column the file does not have is left as it is for
    every known resident (a new one gets its default: unlisted, no address, not protected, no
    digital mailbox, Swedish); ``summary.columns`` and ``columns_left_unchanged`` say which.
    The delimiter (``,`` or ``;``) and encoding (UTF-8 with or without a BOM, Windows-1252) are
    detected unless given (see ``halsosamtal.core.imports.open_csv``); ``summary.format`` says.

    File-level problems (empty file, no header row, bad header, not text in its encoding, an
    endless line, an extract older than the last one imported) raise ``InvalidInput`` and
    nothing is imported. ``summary.rejects``
    holds the first ``reject_limit`` rejects by line (all of them when None); ``on_reject`` is
    called for every reject, in line order.
    """
    started = time.perf_counter()
    start = await open_csv(chunks, delimiter=delimiter, encoding=encoding)
    names = header_columns(start.header, COLUMNS, required=("personnummer",), example=HEADER_EXAMPLE)
    present = frozenset(names)

    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    await _check_as_of(session, as_of)
    # The staging tables are this transaction's alone (one import at a time). The sort of the
    # new residents (a million: ~180 MB) and the hash of the known ones for the check's join
    # should stay in memory: spilled to disk, the sort alone takes 2x as long.
    await session.execute(text("SET LOCAL work_mem = '256MB'"))
    # No JIT: it compiles the large expression trees of the check and the upsert anew on every
    # import, about a second each, and the check ran no faster with it (measured, 300k rows).
    await session.execute(text("SET LOCAL jit = off"))
    await session.execute(
        text(
            f"CREATE TEMP TABLE {_STAGING} (line int NOT NULL, problem text, "
            + ", ".join(f"{c} text" for c in COLUMNS)
            + ") ON COMMIT DROP"
        )
    )
    await session.execute(
        text(f"CREATE TEMP TABLE {_REOPEN} (resident_id bigint, care_unit_id bigint) ON COMMIT DROP")
    )

    framed_rows = await _copy_into_staging(session, names, start.format, start.rest)
    timings = {"copy": time.perf_counter() - started}

    params: dict[str, Any] = {"as_of": as_of, **reference_params(as_of)}

    async def step(name: str, sql: str) -> Any:
        t = time.perf_counter()
        result = await session.execute(text(sql), params)
        timings[name] = time.perf_counter() - t
        return result

    t = time.perf_counter()
    await _analyze(session, _STAGING)
    timings["analyze"] = time.perf_counter() - t
    unchanged = (await step("unchanged", _unchanged_sql(present))).rowcount
    if unchanged:
        await step("rest", _REST_SQL)
        await _analyze(session, _REST)
    await step("check", _check_sql(bool(unchanged), present))
    await _analyze(session, _CHECKED)
    counts = (await step("count", _COUNTS_SQL)).one()
    if counts.rows != framed_rows:  # pragma: no cover - would be a bug in the framing
        raise RuntimeError(f"framed {framed_rows} rows but staged {counts.rows}")
    if counts.duplicates:
        await step("duplicates", _DUPLICATES_SQL)
        counts = (await step("count", _COUNTS_SQL)).one()

    summary = ImportSummary(
        rows=counts.rows,
        rejected=counts.rejected,
        columns=names,
        columns_left_unchanged=[c for c in COLUMNS if c not in present],
        format=start.format,
    )
    if snapshot and counts.rows == counts.rejected:
        raise InvalidInput(
            "a snapshot without one valid row would mark every resident as moved out; nothing was imported"
        )

    restore = await _foreign_key_triggers_off(session)
    if counts.changed:
        summary.updated = (await step("update", _UPDATE_SQL)).one().updated
        await step("reopen", _REOPEN_SQL)
    if snapshot and counts.unidentified:
        summary.warnings.append(
            f"no resident was marked moved out: {counts.unidentified} rejected row(s) have no "
            "valid personnummer, so the file may lack people who have not moved; fix the "
            "rejects and import the snapshot again"
        )
    elif snapshot:
        summary.moved_out = (await step("moved_out", _MOVED_OUT_SQL)).one().moved_out
    if counts.new:
        summary.inserted = (await step("insert", _INSERT_SQL)).one().inserted
    if restore is not None:
        await session.execute(text(_SET_ROLE_SQL), {"role": restore})
    summary.unchanged = counts.rows - counts.rejected - summary.inserted - summary.updated

    await _collect_rejects(session, summary, reject_limit, on_reject)
    record = RegisterImport(
        kind="residents",
        source=source,
        as_of=as_of,
        snapshot=snapshot,
        actor=actor,
        finished_at=func.clock_timestamp(),
        rows_total=summary.rows,
        inserted=summary.inserted,
        updated=summary.updated,
        unchanged=summary.unchanged,
        rejected=summary.rejected,
        moved_out=summary.moved_out,
    )
    session.add(record)
    await session.flush()
    summary.import_id = record.id
    # The temp tables would go at commit; dropping them now lets the caller run another
    # import in the same transaction (and frees their space at once).
    await session.execute(text(f"DROP TABLE IF EXISTS {_REST}"))
    await session.execute(text(f"DROP TABLE {_STAGING}, {_CHECKED}, {_REOPEN}"))
    timings["total"] = time.perf_counter() - started
    log.info(
        "residents import %s: %d rows, %d inserted, %d updated, %d unchanged, %d rejected, %d moved out (%s)",
        summary.import_id,
        summary.rows,
        summary.inserted,
        summary.updated,
        summary.unchanged,
        summary.rejected,
        summary.moved_out,
        ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()),
    )
    return summary


async def _copy_into_staging(
    session: AsyncSession, names: list[str], fmt: CsvFormat, rest: AsyncIterator[bytes]
) -> int:
    """Stream the rows (after the header) through the framer into the staging table with COPY;
    the number of rows framed. Memory stays at about one chunk whatever the file's size."""
    framer = _Framer(columns=len(names), delimiter=fmt.delimiter.encode())

    async def payload() -> AsyncIterator[bytes]:
        async for chunk in utf8_chunks(rest, fmt):
            out = framer.feed(chunk)
            if out:
                yield out
        out = framer.finish()
        if out:
            yield out

    conn = await raw_connection(await session.connection())
    await conn.copy_to_table(
        _STAGING,
        source=payload(),
        columns=["line", "problem", *names],
        format="csv",
        delimiter=fmt.delimiter,
    )
    return framer.rows


async def _analyze(session: AsyncSession, table: str) -> None:
    """Give the planner statistics on a staging table.

    Without them it guesses a new table's size and what its filters keep (a 200th of the rows
    for an IS NULL) and, against a large register, probes the unique index once per row where
    one hash join is 5x faster. A small sample is enough to tell, and takes a tenth of the time
    of the default one.
    """
    setting = "SELECT set_config('default_statistics_target', :value, true)"  # SET LOCAL
    previous = (
        await session.execute(text("SELECT current_setting('default_statistics_target')"))
    ).scalar_one()
    await session.execute(text(setting), {"value": "10"})
    await session.execute(text(f"ANALYZE {table}"))
    await session.execute(text(setting), {"value": previous})


# The foreign keys of the tables the import writes, as (table, columns, referenced table); what
# the import guarantees itself (see _foreign_key_triggers_off).
_GUARANTEED_FOREIGN_KEYS = frozenset(
    {
        ("residents", ("care_unit_id",), "care_units"),
        ("listing_periods", ("resident_id",), "residents"),
        ("listing_periods", ("care_unit_id",), "care_units"),
    }
)
_WRITTEN = ("residents", "listing_periods")

_BULK_CHECK_SQL = """
SELECT current_setting('session_replication_role') AS role,
  (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
  current_setting('server_version_num')::int AS version,
  EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = ANY (CAST(:tables AS regclass[]))
          AND NOT t.tgisinternal)
  OR EXISTS (SELECT FROM pg_rewrite w WHERE w.ev_class = ANY (CAST(:tables AS regclass[])))
    AS own_triggers,
  ARRAY(
    SELECT format('%s|%s|%s', c.conrelid::regclass, c.confrelid::regclass,
                  (SELECT string_agg(a.attname, ',' ORDER BY k.i)
                   FROM unnest(c.conkey) WITH ORDINALITY k(attnum, i)
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum))
    FROM pg_constraint c
    WHERE c.contype = 'f' AND c.conrelid = ANY (CAST(:tables AS regclass[]))
  ) AS foreign_keys
"""
_SET_ROLE_SQL = "SELECT set_config('session_replication_role', :role, true)"  # SET LOCAL


async def _foreign_key_triggers_off(session: AsyncSession) -> str | None:
    """Let the writes of this import skip the row-by-row foreign key triggers, when that is
    allowed and safe; the setting to restore afterwards, or None when they stay on.

    A foreign key checks each inserted row with a query of its own: on a first import of a
    million residents that is 19 s of 53 (measured), three checks a resident. The import
    guarantees what they check instead, for the whole set at once:

    * ``care_unit_id`` (of residents and listing periods) only ever comes from _CHECK_TEMPLATE's
      join with the care units, which locks them FOR KEY SHARE, as each check would lock the
      unit it finds: none of them can be deleted, or get another id, before this transaction
      ends;
    * ``listing_periods.resident_id`` only ever comes from the RETURNING of the rows this
      transaction has just inserted or updated, which it holds locked.

    So the triggers are only switched off (``session_replication_role = replica``, for the
    writes only; the foreign keys stay declared and every other writer is checked as before)
    when those three keys are all the foreign keys the two tables have, the tables have no
    triggers or rules of their own (``replica`` would silence them too), and the role may set
    the parameter (superuser, or ``GRANT SET ON PARAMETER session_replication_role``). Else the
    import runs with the triggers, slower, with the same result.
    """
    row = (await session.execute(text(_BULK_CHECK_SQL), {"tables": list(_WRITTEN)})).one()
    foreign_keys = set()
    for key in row.foreign_keys:
        table, referenced, columns = key.split("|")
        foreign_keys.add((table, tuple(columns.split(",")), referenced))
    if row.own_triggers or not foreign_keys <= _GUARANTEED_FOREIGN_KEYS:
        return None
    allowed = row.superuser
    if not allowed and row.version >= 150000:
        allowed = (
            await session.execute(text("SELECT has_parameter_privilege('session_replication_role', 'SET')"))
        ).scalar_one()
    if not allowed:
        return None
    await session.execute(text(_SET_ROLE_SQL), {"role": "replica"})
    return str(row.role)


async def _check_as_of(session: AsyncSession, as_of: dt.date) -> None:
    """Extracts must come in date order, or listing periods would end before they start."""
    if as_of > clock.local_today():
        raise InvalidInput(
            f"as_of {as_of} is after today ({clock.local_today()} in Sweden); give the date of the extract",
            field="as_of",
        )
    latest = (
        await session.execute(text("SELECT max(as_of) FROM register_imports WHERE kind = 'residents'"))
    ).scalar_one()
    if latest is not None and as_of < latest:
        raise InvalidInput(
            f"as_of {as_of} is before the last residents import's as_of ({latest}); "
            "register extracts must be imported in date order"
        )


async def _collect_rejects(
    session: AsyncSession,
    summary: ImportSummary,
    limit: int | None,
    on_reject: RejectSink | None,
) -> None:
    """Stream the rejects in line order into the summary (up to ``limit``) and ``on_reject``."""
    if not summary.rejected:
        return
    # An SQL cursor, closed before the temp tables are dropped: memory stays flat however many.
    await session.execute(text(f"DECLARE residents_import_rejects NO SCROLL CURSOR FOR {_REJECTS_SQL}"))
    while rows := (await session.execute(text("FETCH 5000 FROM residents_import_rejects"))).all():
        for line, column, reason in rows:
            reject = Reject(line=line, column=column, reason=reason)
            if limit is None or len(summary.rejects) < limit:
                summary.rejects.append(reject)
            if on_reject is not None:
                on_reject(reject)
    await session.execute(text("CLOSE residents_import_rejects"))
    summary.rejects_truncated = summary.rejected - len(summary.rejects)


CREATED_NOW = "SELECT id FROM residents WHERE created_at = now()"
"""Residents this transaction inserted (``now()`` is the transaction's start), for the access log."""
UPDATED_NOW = "SELECT id FROM residents WHERE updated_at = now() AND created_at < now()"
"""Residents this transaction changed (an import sets ``updated_at = now()`` on each change)."""
