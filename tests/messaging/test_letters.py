"""The daily print file: complete, atomic, idempotent, and no address for protected identity."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import stat
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from halsosamtal.messaging.letters import (
    COLUMNS,
    AddressOnProtectedLetter,
    PrintedLetter,
    print_file_content,
    write_print_file,
)
from halsosamtal.residents.contacts import Recipient
from tests.factories import personnummer

DAY = dt.date(2027, 3, 3)
BODY = (
    'Hej!\n\nVälkommen till ett hälsosamtal, "gratis" för dig; det tar ungefär en timme.\n\nVarma hälsningar'
)

OPEN = Recipient(
    personnummer=personnummer(dt.date(1987, 1, 2)),
    language="sv",
    protected_identity=False,
    digital_mailbox=False,
    phone=None,
    address_line="Storgatan 1, lgh 1102",
    postal_code="302 31",
    city="Halmstad",
)
PROTECTED = replace(
    OPEN,
    personnummer=personnummer(dt.date(1977, 4, 5)),
    protected_identity=True,
    address_line="Hemliga vägen 7",
    postal_code="311 32",
    city="Falkenberg",
)


def _letters() -> list[PrintedLetter]:
    return [
        PrintedLetter.for_recipient("10", OPEN, "Välkommen till ett hälsosamtal", BODY),
        PrintedLetter.for_recipient("9", PROTECTED, "Välkommen till ett hälsosamtal", BODY),
        PrintedLetter.for_recipient("2", OPEN, "Påminnelse: hälsosamtal", BODY + "\nP.S. Ring oss."),
    ]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_the_file_is_named_by_day_and_has_one_row_per_letter_in_id_order(tmp_path: Path) -> None:
    path = write_print_file(tmp_path, DAY, _letters())
    assert path == tmp_path / "letters-2027-03-03.csv"
    with path.open(encoding="utf-8", newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    rows = _rows(path)
    assert [r["message_id"] for r in rows] == ["2", "9", "10"]


def test_text_and_address_survive_the_round_trip(tmp_path: Path) -> None:
    rows = {r["message_id"]: r for r in _rows(write_print_file(tmp_path, DAY, _letters()))}
    assert rows["10"] == {
        "message_id": "10",
        "route": "address",
        "forward_personnummer": "",
        "address_line": "Storgatan 1, lgh 1102",
        "postal_code": "302 31",
        "city": "Halmstad",
        "subject": "Välkommen till ett hälsosamtal",
        "body": BODY,
    }


def test_the_file_is_utf8_crlf_and_fully_quoted(tmp_path: Path) -> None:
    raw = write_print_file(tmp_path, DAY, _letters()).read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert raw.startswith(b'"message_id","route",')
    assert raw.endswith(b"\r\n")
    assert '"Hälsningar'.encode() not in raw  # ordinary text stays unescaped UTF-8 inside quotes
    assert "Varma hälsningar".encode() in raw


def test_a_protected_letter_goes_to_the_tax_agency_with_no_address(tmp_path: Path) -> None:
    path = write_print_file(tmp_path, DAY, _letters())
    row = next(r for r in _rows(path) if r["message_id"] == "9")
    pnr = PROTECTED.personnummer
    assert row["route"] == "skatteverket_forwarding"
    assert (row["address_line"], row["postal_code"], row["city"]) == ("", "", "")
    assert row["forward_personnummer"] == f"{pnr[:8]}-{pnr[8:]}"
    assert row["body"] == BODY
    # The register had an address for this resident: none of it reaches the file.
    text = path.read_text(encoding="utf-8")
    for part in ("Hemliga", "311 32", "Falkenberg"):
        assert part not in text


def test_only_protected_letters_carry_a_personnummer(tmp_path: Path) -> None:
    text = write_print_file(tmp_path, DAY, _letters()).read_text(encoding="utf-8")
    assert OPEN.personnummer[:8] not in text


@pytest.mark.parametrize(
    "address",
    [
        {"address_line": "Hemliga vägen 7"},
        {"postal_code": "311 32"},
        {"city": "Falkenberg"},
        {"address_line": ""},
    ],
)
def test_a_protected_letter_with_any_address_field_is_refused(address: dict[str, str]) -> None:
    with pytest.raises(AddressOnProtectedLetter):
        PrintedLetter("1", True, "Ämne", BODY, forward_personnummer=PROTECTED.personnummer, **address)


def test_a_protected_letter_needs_the_personnummer_for_forwarding() -> None:
    with pytest.raises(ValueError, match="personnummer"):
        PrintedLetter("1", True, "Ämne", BODY)
    with pytest.raises(ValueError, match="personnummer"):
        PrintedLetter("1", True, "Ämne", BODY, forward_personnummer="19770405-1234")


def test_an_address_letter_must_be_complete_and_carry_no_personnummer() -> None:
    with pytest.raises(ValueError, match="incomplete address"):
        PrintedLetter("1", False, "Ämne", BODY, address_line="Storgatan 1", postal_code="302 31")
    with pytest.raises(ValueError, match="incomplete address"):
        PrintedLetter.for_recipient("1", replace(OPEN, city="  "), "Ämne", BODY)
    with pytest.raises(ValueError, match="must not carry a personnummer"):
        PrintedLetter(
            "1",
            False,
            "Ämne",
            BODY,
            address_line="Storgatan 1",
            postal_code="302 31",
            city="Halmstad",
            forward_personnummer=OPEN.personnummer,
        )


def test_an_empty_body_is_refused() -> None:
    with pytest.raises(ValueError, match="empty body"):
        PrintedLetter.for_recipient("1", OPEN, "Ämne", "  \n")


def test_a_letter_shows_no_address_or_personnummer_in_its_repr() -> None:
    text = repr(_letters()[0]) + repr(_letters()[1])
    for part in ("Storgatan", "302 31", "Halmstad", PROTECTED.personnummer):
        assert part not in text


def test_writing_the_same_letters_again_gives_the_identical_file(tmp_path: Path) -> None:
    first = write_print_file(tmp_path, DAY, _letters()).read_bytes()
    path = tmp_path / "letters-2027-03-03.csv"
    old = 1_700_000_000_000_000_000
    os.utime(path, ns=(old, old))
    # Another order, and a letter that a retried query returned twice.
    again = [*reversed(_letters()), _letters()[0]]
    assert write_print_file(tmp_path, DAY, again) == path
    assert path.read_bytes() == first
    assert path.stat().st_mtime_ns == old, "an identical re-run must leave the file untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["letters-2027-03-03.csv"]


def test_new_letters_replace_the_days_file(tmp_path: Path) -> None:
    write_print_file(tmp_path, DAY, _letters())
    more = [*_letters(), PrintedLetter.for_recipient("11", OPEN, "Ämne", "Ny text")]
    rows = _rows(write_print_file(tmp_path, DAY, more))
    assert [r["message_id"] for r in rows] == ["2", "9", "10", "11"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["letters-2027-03-03.csv"]


def test_one_id_with_two_different_letters_is_refused_and_the_old_file_kept(tmp_path: Path) -> None:
    path = write_print_file(tmp_path, DAY, _letters())
    before = path.read_bytes()
    clash = [*_letters(), PrintedLetter.for_recipient("10", OPEN, "Annat ämne", BODY)]
    with pytest.raises(ValueError, match="appears twice"):
        write_print_file(tmp_path, DAY, clash)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["letters-2027-03-03.csv"]


def test_a_day_without_letters_has_a_header_only_file(tmp_path: Path) -> None:
    path = write_print_file(tmp_path, DAY, [])
    assert _rows(path) == []
    assert path.read_bytes() == print_file_content([])


def test_only_the_owner_can_read_the_file(tmp_path: Path) -> None:
    path = write_print_file(tmp_path, DAY, _letters())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    # Two big versions of the day's file, written in turn while another thread keeps reading:
    # with os.replace every read is one whole version; a write in place would show a torn file.
    big_a = [PrintedLetter.for_recipient(str(i), OPEN, "Ämne", BODY * 5) for i in range(1, 400)]
    big_b = [*big_a, PrintedLetter.for_recipient("9999", OPEN, "Ämne", "sista")]
    versions = {print_file_content(big_a), print_file_content(big_b)}
    path = write_print_file(tmp_path, DAY, big_a)
    done = threading.Event()
    seen: list[bytes] = []

    def read() -> None:
        while not done.is_set() and len(seen) < 5000:
            seen.append(path.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(10):
            write_print_file(tmp_path, DAY, big_b if n % 2 == 0 else big_a)
    finally:
        done.set()
        reader.join(timeout=30)
    assert seen
    torn = [len(content) for content in seen if content not in versions]
    assert torn == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["letters-2027-03-03.csv"]


def test_the_content_reads_back_with_the_standard_csv_reader() -> None:
    content = print_file_content(_letters()).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(content, newline="")))
    assert {r["message_id"]: r["body"] for r in rows}["2"] == BODY + "\nP.S. Ring oss."
