"""The HTML report speaks Swedish (by default) or English throughout: one template whose every
word comes from a catalogue that says everything in both languages, with each language's way of
writing numbers and dates."""

from __future__ import annotations

import datetime as dt
import re
import string
from decimal import Decimal

from halsosamtal.cli.app import app
from halsosamtal.core.clock import local_today
from halsosamtal.reports.html import TEMPLATES
from halsosamtal.reports.i18n import EN, NBSP, SV, Locale, parse_lang
from halsosamtal.reports.schemas import CountShare, Figure
from tests.reports.conftest import run_cli
from tests.reports.region import YEAR, Region


def _fields(pattern: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(pattern) if name}


# Messages that read the same in both languages; any other the same in both is untranslated.
SAME_IN_BOTH = {"habit.action", "score2.category", "lines.id"}


def test_both_languages_say_the_same_things() -> None:
    assert SV.keys() == EN.keys()
    for key in SV:
        assert _fields(SV[key]) == _fields(EN[key]), key
        assert SV[key].strip() == SV[key], key
    assert {key for key in SV if SV[key] == EN[key]} == SAME_IN_BOTH


def test_every_word_of_the_template_comes_from_the_catalogue() -> None:
    source = (TEMPLATES / "report.html.j2").read_text(encoding="utf-8")
    text = re.sub(r"<style>.*?</style>", "", source, flags=re.DOTALL)
    text = re.sub(r"\{#.*?#\}", "", text, flags=re.DOTALL)
    # Attributes that a reader (or a screen reader) is given must come from the catalogue too.
    for attribute in re.findall(r'(?:aria-label|title|alt)="([^"]*)"', text):
        assert attribute.startswith("{{"), attribute
    text = re.sub(r"\{%.*?%\}", "", text, flags=re.DOTALL)
    text = re.sub(r"\{\{.*?\}\}", "", text, flags=re.DOTALL)
    text = re.sub(r"<[^>]*>", "", text, flags=re.DOTALL)
    assert re.findall(r"[^\W\d_]{2,}", text) == [], "words outside the catalogue"


def test_swedish_numbers_and_dates() -> None:
    sv, en = Locale("sv"), Locale("en")
    assert sv.integer(1234567) == f"1{NBSP}234{NBSP}567"
    assert en.integer(1234567) == "1,234,567"
    assert sv.decimal(Decimal("-1234.5"), 2) == f"-1{NBSP}234,50"
    assert sv.percent(0.5135) == f"51,4{NBSP}%"
    assert en.percent(0.5135) == f"51.4{NBSP}%"
    assert sv.sek(Decimal("123456.5")) == f"123{NBSP}456,50{NBSP}kr"
    assert en.sek(Decimal("900")) == f"SEK{NBSP}900.00"
    assert sv.long_date(dt.date(2026, 12, 7)) == "7 december 2026"
    assert en.long_date(dt.date(2026, 12, 7)) == "7 December 2026"
    assert sv.period(2027, 3) == "mars 2027"
    assert sv.period(2027, None) == "2027"
    # A time in a table: ISO date, Swedish local time (summer time in June).
    assert sv.moment(dt.datetime(2027, 6, 1, 8, 5, tzinfo=dt.UTC)) == "2027-06-01 10:05"
    assert sv.count(Figure(value=None, suppressed=True, shown="<5")) == "<5"
    assert sv.count(Figure(value=12345, shown="12345")) == f"12{NBSP}345"
    pair = CountShare(count=Figure(value=73, shown="73"), share=Figure(value=0.5141, shown="0.5141"))
    assert sv.pair(pair) == f"73 (51,4{NBSP}%)"
    assert parse_lang(" EN ") == "en"


async def test_the_swedish_report_has_no_english_and_the_english_no_swedish(
    region: Region, cli_env: None
) -> None:
    pages = {}
    for lang in ("sv", "en"):
        code, out = await run_cli(app, "report", "summary", "--year", str(YEAR), "--lang", lang)
        assert code == 0, out
        pages[lang] = out
    assert pages["sv"].startswith('<!DOCTYPE html>\n<html lang="sv">')
    code, out = await run_cli(app, "report", "summary", "--year", str(YEAR))
    assert code == 0, out
    assert out.replace(Locale("sv").long_date(local_today()), "") == pages["sv"].replace(
        Locale("sv").long_date(local_today()), ""
    ), "Swedish is the default"

    def visible(page: str) -> str:
        page = re.sub(r"<style>.*?</style>", "", page, flags=re.DOTALL)
        return re.sub(r"<[^>]*>", " ", page)

    for lang, catalogue, theirs in (("sv", SV, EN), ("en", EN, SV)):
        text = visible(pages[lang])
        for key, pattern in theirs.items():
            for fragment in re.split(r"\{[^}]*\}", pattern):
                fragment = fragment.strip(" :.,()")
                if len(fragment) < 4 or any(fragment in mine for mine in catalogue.values()):
                    continue
                # As words: the statement's line ids (talk-41) are data.
                assert not re.search(rf"(?<![\w-]){re.escape(fragment)}(?![\w-])", text), (
                    lang,
                    key,
                    fragment,
                )

    sv, en = visible(pages["sv"]), visible(pages["en"])
    assert f"Framtagen {Locale('sv').long_date(local_today())}." in sv
    assert f"Produced {Locale('en').long_date(local_today())}." in en
    assert "Kommunnamn: SCB" in sv
    # Amounts with a space between thousands and a decimal comma; times as ISO dates.
    assert re.search(rf"\d{NBSP}\d{{3}},\d{{2}}", sv)
    assert re.search(r"\d,\d{3}\.\d{2}", en)
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", sv)
    assert re.search(r"\d,\d %", sv.replace(NBSP, " "))


async def test_lang_is_for_the_html_report(region: Region, cli_env: None) -> None:
    code, out = await run_cli(
        app, "report", "participation", "--year", str(YEAR), "--format", "csv", "--lang", "sv"
    )
    assert code == 1
    assert "--lang is for --format html" in out
    code, out = await run_cli(app, "report", "summary", "--year", str(YEAR), "--lang", "de")
    assert code == 2
