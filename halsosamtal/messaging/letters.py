"""The daily print file: every letter of a day, for the printing house.

Format: CSV (RFC 4180), UTF-8 without a byte-order mark, a header row, every field quoted and
CRLF between records. CSV because it is what printing houses' mail-merge tools take in without
a custom importer; quoting every field keeps multi-line letter bodies, commas and postal codes
("302 31") intact, and Python's csv module reads back exactly what it wrote (tested).

One row per letter, in message-id order:

``message_id``
    The outbox id; the printing house reports back by it, and it keeps rows unique.
``route``
    ``address``: print the address lines in the envelope window.
    ``skatteverket_forwarding``: the resident has protected identity. The address columns are
    empty; the letter goes in a sealed envelope marked with ``forward_personnummer`` (and our
    return address on the back), inside an outer envelope to the tax agency's mail forwarding
    (Skatteverket, Box 2820, 403 20 Göteborg), which forwards it. That is the tax agency's
    published procedure, and the personnummer on the inner envelope is how it finds the
    resident; it is never printed in the letter itself, and it is left empty on the address
    route, where nobody needs it.
``forward_personnummer``, ``address_line``, ``postal_code``, ``city``
    As above. We have no names in the register, so there is no name line.
``subject``, ``body``
    The rendered long form of the message.

The file for a day is written whole, atomically, and deterministically: the caller passes every
letter of the day, and writing the same letters again gives a byte-identical file (order does
not matter, an exact duplicate collapses), so a worker that died after writing and runs again
never makes a second copy of a letter.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from halsosamtal.residents.contacts import Recipient

Route = Literal["address", "skatteverket_forwarding"]

COLUMNS = (
    "message_id",
    "route",
    "forward_personnummer",
    "address_line",
    "postal_code",
    "city",
    "subject",
    "body",
)

_PERSONNUMMER = re.compile(r"\d{12}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AddressOnProtectedLetter(ValueError):
    """A letter to a resident with protected identity was given address fields.

    Refused outright: the address must never reach a print file, however it got here.
    """


def _present(value: str | None) -> bool:
    return value is not None and value.strip() != ""


@dataclass(frozen=True, slots=True)
class PrintedLetter:
    """One letter for the print file. Build it with ``for_recipient`` to get the route right."""

    message_id: str
    protected_identity: bool
    subject: str
    body: str
    address_line: str | None = field(default=None, repr=False)
    postal_code: str | None = field(default=None, repr=False)
    city: str | None = field(default=None, repr=False)
    forward_personnummer: str | None = field(default=None, repr=False)
    """12 digits; only for protected identity, for the inner envelope the tax agency forwards."""

    def __post_init__(self) -> None:
        if not self.message_id or _CONTROL.search(self.message_id):
            raise ValueError("message_id must be non-empty and free of control characters")
        if not self.body.strip():
            raise ValueError(f"letter {self.message_id} has an empty body")
        address = (self.address_line, self.postal_code, self.city)
        if self.protected_identity:
            if any(value is not None for value in address):
                raise AddressOnProtectedLetter(
                    f"letter {self.message_id} is for a resident with protected identity "
                    "and must not carry an address"
                )
            if self.forward_personnummer is None or not _PERSONNUMMER.fullmatch(self.forward_personnummer):
                raise ValueError(
                    f"letter {self.message_id} goes through the tax agency's forwarding and needs "
                    "the 12-digit personnummer for the inner envelope"
                )
        else:
            if not all(_present(value) for value in address):
                raise ValueError(f"letter {self.message_id} has an incomplete address")
            if self.forward_personnummer is not None:
                raise ValueError(
                    f"letter {self.message_id} goes to an address; it must not carry a personnummer"
                )

    @property
    def route(self) -> Route:
        """How the printing house sends it: to the address, or through the tax agency."""
        return "skatteverket_forwarding" if self.protected_identity else "address"

    @classmethod
    def for_recipient(cls, message_id: str, recipient: Recipient, subject: str, body: str) -> PrintedLetter:
        """The letter for ``recipient``: their address, or the forwarding route if protected.

        For a protected resident the register's address fields are dropped here, even if the
        register has them, so they cannot reach the file by mistake.
        """
        if recipient.protected_identity:
            return cls(
                message_id,
                True,
                subject,
                body,
                forward_personnummer=recipient.personnummer,
            )
        return cls(
            message_id,
            False,
            subject,
            body,
            address_line=recipient.address_line.strip() if recipient.address_line else None,
            postal_code=recipient.postal_code.strip() if recipient.postal_code else None,
            city=recipient.city.strip() if recipient.city else None,
        )

    def row(self) -> tuple[str, ...]:
        """The CSV row, in ``COLUMNS`` order."""
        pnr = self.forward_personnummer
        return (
            self.message_id,
            self.route,
            f"{pnr[:8]}-{pnr[8:]}" if pnr else "",  # as written on an envelope: YYYYMMDD-NNNN
            self.address_line or "",
            self.postal_code or "",
            self.city or "",
            self.subject,
            self.body,
        )


def print_file_name(day: date) -> str:
    """``letters-YYYY-MM-DD.csv``."""
    return f"letters-{day.isoformat()}.csv"


def _order(message_id: str) -> tuple[int, int, str]:
    # Numeric ids in numeric order (9 before 10), so the printing house sees the outbox order.
    return (0, int(message_id), "") if message_id.isdigit() else (1, 0, message_id)


def print_file_content(letters: Iterable[PrintedLetter]) -> bytes:
    """The file's bytes: header and one row per distinct letter, ordered by message id.

    Raises ``ValueError`` when one message id comes with two different letters: that is a bug
    upstream, and printing either one could be the wrong one.
    """
    unique: dict[str, PrintedLetter] = {}
    for letter in letters:
        seen = unique.setdefault(letter.message_id, letter)
        if seen != letter:
            raise ValueError(f"message {letter.message_id} appears twice with different content")
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for message_id in sorted(unique, key=_order):
        writer.writerow(unique[message_id].row())
    return buffer.getvalue().encode("utf-8")


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_print_file(directory: Path, day: date, letters: Iterable[PrintedLetter]) -> Path:
    """Write the print file for ``day`` in ``directory`` and return its path.

    ``letters`` must be every letter of the day: the file is replaced whole. The new content is
    written to a hidden temporary file in the same directory (so a pickup job that matches
    ``letters-*.csv`` never sees it), fsynced, and moved over the old file with ``os.replace``,
    which readers see as all-or-nothing. If the file already holds exactly these bytes it is
    left untouched, so a re-run does not even change its modification time (a pickup agent
    watching for changes sends nothing twice). The file is readable by its owner only (0600):
    it holds addresses.
    """
    content = print_file_content(letters)  # validate and serialise before touching the disk
    target = directory / print_file_name(day)
    with contextlib.suppress(FileNotFoundError):
        if target.read_bytes() == content:
            return target
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(directory)
    return target
