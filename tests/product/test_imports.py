"""Register files as operators have them, through the real CLI and the real API process: what
Swedish Excel saves (Windows-1252 or UTF-8 with a BOM, ';', CRLF) imports as its UTF-8 comma
version would, a file with some columns changes only those, and a file that cannot be read is
one line (CLI) or a 422 (API), never a traceback or a 500."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.product.conftest import Product
from tests.product.support import personnummer, words

TODAY = dt.datetime.now(ZoneInfo("Europe/Stockholm")).date()
UNIT = "SE2321000131-EIMPORTS00001"
OTHER = "SE2321000131-EIMPORTS00002"
ANNA = personnummer(dt.date(1951, 3, 4), 30, sex="F")
BO = personnummer(dt.date(1952, 5, 6), 31, sex="M")
UNITS_HEADER = "hsa_id;name;municipality;operator;participating;weekly_capacity;visiting_address;phone"


def excel(path: Path, lines: list[str], *, encoding: str = "cp1252", bom: bool = False) -> Path:
    """``lines`` saved as Swedish Excel saves CSV: CRLF, in ``encoding``."""
    data = "".join(line + "\r\n" for line in lines).encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def lookup(product: Product, pnr: str) -> Any:
    found = product.api.post("/v1/residents/lookup", json={"personnummer": pnr}, headers=product.operator)
    assert found.status_code == 200, found.text
    return found.json()


def test_cli_imports_swedish_excel_files_and_a_partial_file_changes_only_its_columns(
    product: Product,
) -> None:
    units = excel(
        product.tmp / "vårdcentraler.csv",
        [
            UNITS_HEADER,
            f"{UNIT};Vårdcentralen Östra;1380;public;JA;25;Östra vägen 2, 302 45 Halmstad;035-10 20 30",
            f"{OTHER};Capio Söder;1380;private;nej;10;;",
        ],
    )
    done = product.cli("import", "care-units", str(units))
    assert "read as windows-1252 (detected), delimiter ';' (detected), CRLF line endings" in words(
        done.stdout
    )
    assert "inserted 2" in done.stdout
    unit = product.api.get(f"/v1/care-units/{UNIT}", headers=product.operator).json()
    assert (unit["name"], unit["participating"], unit["visiting_address"], unit["phone"]) == (
        "Vårdcentralen Östra",
        True,
        "Östra vägen 2, 302 45 Halmstad",
        "035-10 20 30",
    )

    register = excel(
        product.tmp / "folkbokföring.csv",
        [
            "personnummer;care_unit;municipality;deso;protected_identity;address_line;postal_code;city;"
            "phone;digital_mailbox;language",
            f"{ANNA};{UNIT};1380;1380C1010;nej;Åsgatan 3;302 31;Halmstad;0701112233;ja;sv",
            f'{BO};{OTHER};1380;1380C1010;0;"Gränd 1; lgh 2";302 31;Halmstad;;1;fi',
        ],
        encoding="utf-8",
        bom=True,
    )
    done = product.cli("import", "residents", str(register), "--as-of", TODAY.isoformat())
    assert "read as utf-8 with BOM (detected)" in words(done.stdout)
    anna = lookup(product, ANNA)
    assert (anna["care_unit"], anna["address"]["address_line"], anna["digital_mailbox"]) == (
        UNIT,
        "Åsgatan 3",
        True,
    )
    assert lookup(product, BO)["address"]["address_line"] == "Gränd 1; lgh 2"

    # Only the phone: everything else stays (listing, address, DeSO); given, not detected.
    partial = excel(product.tmp / "telefon.csv", ["personnummer,phone", f"{ANNA},0709999999"])
    done = product.cli(
        "import",
        "residents",
        str(partial),
        "--as-of",
        TODAY.isoformat(),
        "--delimiter",
        ",",
        "--encoding",
        "cp1252",
    )
    out = words(done.stdout)
    assert "read as windows-1252 (given), delimiter ',' (given)" in out
    assert "columns taken: personnummer, phone; not in the file, so left unchanged: care_unit" in out
    after = lookup(product, ANNA)
    assert after["phone"] == "0709999999"
    assert {k: v for k, v in after.items() if k not in ("phone", "updated_at")} == {
        k: v for k, v in anna.items() if k not in ("phone", "updated_at")
    }


def test_cli_refuses_a_file_it_cannot_read_in_one_line(product: Product) -> None:
    headless = excel(product.tmp / "utan-rubrik.csv", [f"{ANNA};{UNIT};Åsgatan 3"])
    done = product.cli("import", "residents", str(headless), "--as-of", TODAY.isoformat(), check=False)
    assert done.returncode == 1
    assert words(done.stderr).endswith("add a header line such as personnummer,care_unit,municipality")
    assert "no header row" in done.stderr
    assert ANNA not in done.stderr + done.stdout
    assert "Åsgatan" not in done.stderr + done.stdout

    endless = product.tmp / "endless.csv"
    endless.write_bytes(b"hsa_id,name\n" + b"x" * (2 << 20))
    done = product.cli("import", "care-units", str(endless), check=False)
    assert done.returncode == 1
    assert "line 2 is longer than 1048576 bytes" in words(done.stderr)

    bad = product.cli("import", "cni", str(endless), "--encoding", "ebcdic", check=False)
    assert bad.returncode == 2
    assert "--encoding must be utf-8 or windows-1252" in words(bad.stderr)

    cni = excel(product.tmp / "cni.csv", ["DeSO;CNI", "1380C1010;1,25", "1380C1020;0,8"])
    done = product.cli("import", "cni", str(cni), "--dry-run")
    assert "delimiter ';' (detected)" in words(done.stdout)
    assert "rows 2" in done.stdout


def test_api_streams_excel_bodies_and_answers_4xx_for_what_it_cannot_read(product: Product) -> None:
    headers = {**product.operator, "Content-Type": "text/csv"}
    body = "\r\n".join(
        [UNITS_HEADER, f"{UNIT};Vårdcentralen Östra;1380;public;ja;30;Östra vägen 2;035-10 20 30", ""]
    ).encode("cp1252")
    answer = product.api.post("/v1/care-units/import", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["format"]["encoding"] == "windows-1252"
    assert answer.json()["columns_left_unchanged"] == []

    # No newline at all, streamed: a 422 that names the line, not a 500 (and not held whole).
    def endless() -> Any:
        yield b"hsa_id,name\n"
        for _ in range(48):
            yield b"x" * (64 << 10)

    long = product.api.post("/v1/care-units/import", content=endless(), headers=headers)
    assert long.status_code == 422, long.text
    assert "line 2 is longer than" in long.json()["detail"]

    register = f"personnummer;city\r\n{BO};Borås\r\n".encode("cp1252")
    given = product.api.post(
        "/v1/residents/import",
        content=register,
        headers=headers,
        params={"delimiter": ";", "encoding": "windows-1252", "as_of": TODAY.isoformat()},
    )
    assert given.status_code == 200, given.text
    assert given.json()["format"]["delimiter_detected"] is False
    assert lookup(product, BO)["address"]["city"] == "Borås"
    assert lookup(product, BO)["care_unit"] == OTHER  # not in the body: unchanged

    headless = product.api.post(
        "/v1/residents/import",
        content=f"{BO};Borås\r\n".encode(),
        headers=headers,
        params={"as_of": TODAY.isoformat()},
    )
    assert headless.status_code == 422
    assert headless.headers["content-type"] == "application/problem+json"
    assert BO not in headless.text
    assert BO.replace("-", "") not in headless.text

    cni = product.api.post(
        "/v1/reports/cni", content=b"\xef\xbb\xbfdeso;cni\r\n1380C1010;1,25\r\n", headers=headers
    )
    assert cni.status_code == 200, cni.text
    assert cni.json()["format"]["bom"] is True
