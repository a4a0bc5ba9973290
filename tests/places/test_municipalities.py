"""The municipality list is SCB's: 290 unique codes, each in a real county, with known names."""

from __future__ import annotations

import csv
import unicodedata

from halsosamtal.places.municipalities import DATA, counties, municipalities, municipality_name

# SCB's county codes (län); 02, 11, 15 and 16 are counties merged away long ago.
COUNTY_CODES = ["01", "03", "04", "05", "06", "07", "08", "09", "10", "12", "13"]
COUNTY_CODES += ["14", "17", "18", "19", "20", "21", "22", "23", "24", "25"]

KNOWN = {
    "0114": "Upplands Väsby",
    "0180": "Stockholm",
    "0380": "Uppsala",
    "0884": "Vimmerby",
    "0980": "Gotland",
    "1280": "Malmö",
    "1315": "Hylte",
    "1380": "Halmstad",
    "1381": "Laholm",
    "1382": "Falkenberg",
    "1383": "Varberg",
    "1384": "Kungsbacka",
    "1480": "Göteborg",
    "2023": "Malung-Sälen",
    "2321": "Åre",
    "2580": "Luleå",
    "2584": "Kiruna",
}


def test_there_are_290_municipalities_with_unique_four_digit_codes() -> None:
    with DATA.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 290
    assert len({r["code"] for r in rows}) == 290
    assert len({r["name"] for r in rows}) == 290
    for row in rows:
        assert len(row["code"]) == 4, row
        assert row["code"].isdigit(), row
        assert row["code"][:2] in COUNTY_CODES, row
        assert row["county_code"] == row["code"][:2], row
    assert [r["code"] for r in rows] == sorted(r["code"] for r in rows), "in code order"


def test_every_county_has_municipalities_and_its_name() -> None:
    assert list(counties()) == COUNTY_CODES
    assert counties()["13"] == "Hallands län"
    assert counties()["14"] == "Västra Götalands län"
    assert all(name.endswith(" län") for name in counties().values())


def test_known_codes_have_their_names() -> None:
    for code, name in KNOWN.items():
        assert municipality_name(code) == name
        assert municipalities()[code].name == name


def test_names_are_clean_composed_text() -> None:
    # Composed å/ä/ö (NFC), so a name compares equal to the same name typed on a keyboard.
    for m in municipalities().values():
        assert m.name == unicodedata.normalize("NFC", m.name) == m.name.strip(), m
        assert m.name[0].isupper(), m


def test_an_unknown_code_has_no_name() -> None:
    assert municipality_name("9999") is None
    assert municipality_name(None) is None
