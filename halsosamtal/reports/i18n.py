"""What the HTML report says, in Swedish (the default) or English.

One template, one message catalogue per language with the same keys, and numbers and dates
written the way the language writes them: Swedish with a space between thousands and a decimal
comma (``1 234``, ``51,4 %``, ``1 000,00 kr``), dates in tables as ISO 8601 (``2027-03-04``, the
Swedish official style) and in headings written out (``7 december 2026``). The spaces inside a
number are no-break spaces, so a number never wraps across lines.

A message is a ``str.format`` pattern: ``t("participation.title", year=2027)``. A key missing in
one language is a test failure, not a fallback: every language says everything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, get_args

from halsosamtal.core.clock import STOCKHOLM
from halsosamtal.reports.schemas import CountShare, Figure

Lang = Literal["sv", "en"]
LANGUAGES: tuple[Lang, ...] = get_args(Lang)
DEFAULT_LANG: Lang = "sv"

NBSP = "\u00a0"

SV_MONTHS = (
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
)
EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

SV: dict[str, str] = {
    # The document
    "title.summary": "Hälsosamtal {year}",
    "title.participation": "Deltagande i hälsosamtal {year}",
    "title.outcomes": "Resultat av hälsosamtal {year}",
    "title.reimbursement": "Ersättning för hälsosamtal, {period}",
    "subtitle": "Riktade hälsosamtal. Framtagen {date}.",
    "footer.produced": "Framtagen {date}.",
    "footer.municipalities": "Kommunnamn: {source}.",
    "suppression": "Antal från 1 till {max} visas som ”<{threshold}”, liksom andelar som beräknats "
    "från dem; ”..” står för en uppgift som döljs för att ett litet antal inte ska kunna räknas "
    "fram genom subtraktion.",
    "total": "Totalt",
    "unknown": "Okänt",
    "units.some": "Vårdenheter: {units}.",
    "units.all": "Alla vårdenheter.",
    # Breakdowns: "by ..." headings and the first column's name
    "by.unit": "Per vårdenhet",
    "by.age": "Per ålder",
    "by.sex": "Per kön",
    "by.municipality": "Per kommun",
    "by.deso": "Per DeSO-område",
    "by.cni_quintile": "Per kvintil av vårdbehovsindex (CNI)",
    "column.unit": "Vårdenhet",
    "column.age": "Ålder",
    "column.sex": "Kön",
    "column.municipality": "Kommun",
    "column.deso": "DeSO-område",
    "column.cni_quintile": "CNI-kvintil",
    "age.value": "{age} år",
    "sex.F": "Kvinnor",
    "sex.M": "Män",
    "cni.quintile": "Kvintil {quintile}",
    "cni.note": "Kvintil 1 har lägst och kvintil 5 högst vårdbehov enligt Care Need Index (CNI).",
    # Participation
    "participation.heading": "Deltagande {year}",
    "participation.note": "Varje inbjudan räknas för den vårdenhet där invånaren var listad när "
    "inbjudan skickades.",
    "funnel.cohort": "Målgrupp",
    "funnel.invited": "Inbjudna",
    "funnel.reminded": "Påminda",
    "funnel.booked": "Bokade",
    "funnel.attended": "Kom på besök",
    "funnel.completed": "Genomförda",
    "funnel.declined": "Tackade nej",
    "funnel.no_show": "Uteblev",
    "funnel.withdrawn": "Återkallade",
    "funnel.expired": "Utgångna",
    "rate.invited": "Inbjudna %",
    "rate.participation": "Deltagande %",
    "chart.funnel": "Från målgrupp till genomfört samtal",
    "chart.funnel.note": "Andel av målgruppen",
    "chart.participation.unit": "Deltagande per vårdenhet",
    "chart.participation.sex": "Deltagande per kön",
    "chart.participation.age": "Deltagande per ålder",
    "chart.participation.municipality": "Deltagande per kommun",
    "chart.participation.cni_quintile": "Deltagande per kvintil av vårdbehovsindex (CNI)",
    "chart.participation.deso": "Deltagande per DeSO-område",
    "chart.participation.note": "Genomförda samtal av inbjudna",
    # Outcomes
    "outcomes.heading": "Resultat av samtalen {year}",
    "outcomes.note": "Bland genomförda samtal, vart och ett med sin senaste version.",
    "outcomes.completed": "Genomförda samtal",
    "habit.tobacco": "Tobak",
    "habit.alcohol": "Alkohol",
    "habit.physical_activity": "Fysisk aktivitet",
    "habit.diet": "Matvanor",
    "habit.unhealthy": "{habit}: ohälsosamma vanor",
    "habit.action": "{habit}: {action}",
    "action.none": "ingen åtgärd",
    "action.simple_advice": "enkla råd",
    "action.advisory_talk": "rådgivande samtal",
    "action.qualified_advisory_talk": "kvalificerat rådgivande samtal",
    "habits.any": "Någon ohälsosam levnadsvana",
    "referral.any": "Någon remiss",
    "referral.kind": "Remiss: {kind}",
    "referral.health_coordinator": "hälsosamordnare",
    "referral.tobacco_cessation": "tobaksavvänjning",
    "referral.physical_activity_on_prescription": "fysisk aktivitet på recept (FaR)",
    "referral.physician": "läkare",
    "referral.other": "annat",
    "score2.category": "SCORE2: {category}",
    "score2.low_to_moderate": "låg till måttlig risk",
    "score2.high": "hög risk",
    "score2.very_high": "mycket hög risk",
    "score2.not_applicable": "ej beräknad",
    "bmi.measured": "BMI uppmätt",
    "bmi.mean": "Medel-BMI",
    "chart.habits": "Ohälsosamma levnadsvanor",
    "chart.score2": "Risk enligt SCORE2",
    "chart.outcomes.note": "Andel av genomförda samtal",
    # Reimbursement
    "reimbursement.heading": "Ersättning {period}",
    "reimbursement.note": "Per genomfört samtal med programårets ersättning; ett samtal som "
    "makuleras efter att dess månad har stängts återförs i den månad då det makuleras. "
    "Inga uppgifter döljs: varje vårdenhet stämmer av sina egna rader.",
    "chart.reimbursement": "Ersättning per vårdenhet, {period}",
    "chart.reimbursement.note": "kronor",
    "months.heading": "Månader",
    "months.month": "Månad",
    "months.closed": "Stängd",
    "months.by": "Stängd av",
    "months.unchanged": "Oförändrad sedan stängning",
    "months.open": "öppen",
    "yes": "ja",
    "no": "NEJ",
    "totals.heading": "Summor",
    "totals.unit": "Vårdenhet",
    "totals.lines": "Rader",
    "totals.amount": "Belopp (kr)",
    "totals.all_months": "alla månader",
    "totals.all_units": "alla vårdenheter",
    "lines.heading": "Rader",
    "lines.id": "Id",
    "lines.kind": "Typ",
    "lines.record": "Journalpost",
    "lines.event": "Tidpunkt",
    "lines.reverses": "Återför",
    "lines.quantity": "Antal",
    "lines.rate": "Pris (kr)",
    "kind.talk": "samtal",
    "kind.reversal": "återföring",
    "kind.start_grant": "startbidrag",
}

EN: dict[str, str] = {
    "title.summary": "Health dialogues {year}",
    "title.participation": "Participation in health dialogues {year}",
    "title.outcomes": "Health dialogue outcomes {year}",
    "title.reimbursement": "Reimbursement for health dialogues, {period}",
    "subtitle": "Targeted health dialogues. Produced {date}.",
    "footer.produced": "Produced {date}.",
    "footer.municipalities": "Municipality names: {source}.",
    "suppression": "Counts from 1 to {max} are shown as “<{threshold}”, and so is any share computed "
    "from one; “..” marks a figure suppressed so that a small count cannot be worked out by "
    "subtraction.",
    "total": "Total",
    "unknown": "Unknown",
    "units.some": "Care units: {units}.",
    "units.all": "All care units.",
    "by.unit": "By care unit",
    "by.age": "By age",
    "by.sex": "By sex",
    "by.municipality": "By municipality",
    "by.deso": "By DeSO area",
    "by.cni_quintile": "By Care Need Index (CNI) quintile",
    "column.unit": "Care unit",
    "column.age": "Age",
    "column.sex": "Sex",
    "column.municipality": "Municipality",
    "column.deso": "DeSO area",
    "column.cni_quintile": "CNI quintile",
    "age.value": "{age} years",
    "sex.F": "Women",
    "sex.M": "Men",
    "cni.quintile": "Quintile {quintile}",
    "cni.note": "Quintile 1 has the lowest and quintile 5 the highest care need by the Care Need "
    "Index (CNI).",
    "participation.heading": "Participation {year}",
    "participation.note": "Each invitation counts for the care unit the resident was listed at "
    "when it was sent.",
    "funnel.cohort": "Cohort",
    "funnel.invited": "Invited",
    "funnel.reminded": "Reminded",
    "funnel.booked": "Booked",
    "funnel.attended": "Attended",
    "funnel.completed": "Completed",
    "funnel.declined": "Declined",
    "funnel.no_show": "No-show",
    "funnel.withdrawn": "Withdrawn",
    "funnel.expired": "Expired",
    "rate.invited": "Invited %",
    "rate.participation": "Participation %",
    "chart.funnel": "From cohort to completed talk",
    "chart.funnel.note": "Share of the cohort",
    "chart.participation.unit": "Participation by care unit",
    "chart.participation.sex": "Participation by sex",
    "chart.participation.age": "Participation by age",
    "chart.participation.municipality": "Participation by municipality",
    "chart.participation.cni_quintile": "Participation by Care Need Index (CNI) quintile",
    "chart.participation.deso": "Participation by DeSO area",
    "chart.participation.note": "Completed talks of those invited",
    "outcomes.heading": "Health outcomes {year}",
    "outcomes.note": "Among completed talks, each with its latest version.",
    "outcomes.completed": "Completed talks",
    "habit.tobacco": "Tobacco",
    "habit.alcohol": "Alcohol",
    "habit.physical_activity": "Physical activity",
    "habit.diet": "Diet",
    "habit.unhealthy": "{habit}: unhealthy",
    "habit.action": "{habit}: {action}",
    "action.none": "no action",
    "action.simple_advice": "simple advice",
    "action.advisory_talk": "advisory talk",
    "action.qualified_advisory_talk": "qualified advisory talk",
    "habits.any": "Any unhealthy habit",
    "referral.any": "Any referral",
    "referral.kind": "Referral: {kind}",
    "referral.health_coordinator": "health coordinator",
    "referral.tobacco_cessation": "tobacco cessation",
    "referral.physical_activity_on_prescription": "physical activity on prescription",
    "referral.physician": "physician",
    "referral.other": "other",
    "score2.category": "SCORE2: {category}",
    "score2.low_to_moderate": "low to moderate risk",
    "score2.high": "high risk",
    "score2.very_high": "very high risk",
    "score2.not_applicable": "not computed",
    "bmi.measured": "BMI measured",
    "bmi.mean": "Mean BMI",
    "chart.habits": "Unhealthy living habits",
    "chart.score2": "SCORE2 risk category",
    "chart.outcomes.note": "Share of completed talks",
    "reimbursement.heading": "Reimbursement {period}",
    "reimbursement.note": "Per completed talk at the programme year's rate; a talk retracted after "
    "its month was closed is reversed in the month of the retraction. Not suppressed: each care "
    "unit checks its own lines.",
    "chart.reimbursement": "Reimbursement per care unit, {period}",
    "chart.reimbursement.note": "SEK",
    "months.heading": "Months",
    "months.month": "Month",
    "months.closed": "Closed",
    "months.by": "Closed by",
    "months.unchanged": "Unchanged since closed",
    "months.open": "open",
    "yes": "yes",
    "no": "NO",
    "totals.heading": "Totals",
    "totals.unit": "Care unit",
    "totals.lines": "Lines",
    "totals.amount": "Amount (SEK)",
    "totals.all_months": "all months",
    "totals.all_units": "all units",
    "lines.heading": "Lines",
    "lines.id": "Id",
    "lines.kind": "Kind",
    "lines.record": "EHR record",
    "lines.event": "Time",
    "lines.reverses": "Reverses",
    "lines.quantity": "Quantity",
    "lines.rate": "Rate (SEK)",
    "kind.talk": "talk",
    "kind.reversal": "reversal",
    "kind.start_grant": "start grant",
}

CATALOGUES: Mapping[Lang, Mapping[str, str]] = {"sv": SV, "en": EN}


def parse_lang(value: str) -> Lang:
    """``sv`` or ``en`` (any case, around spaces); anything else is a ValueError."""
    found = value.strip().lower()
    for lang in LANGUAGES:
        if found == lang:
            return lang
    raise ValueError(f"language {value!r}: choose {' or '.join(LANGUAGES)}")


def _grouped(digits: str, separator: str) -> str:
    groups: list[str] = []
    while len(digits) > 3:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    groups.insert(0, digits)
    return separator.join(groups)


@dataclass(frozen=True, slots=True)
class Locale:
    """The report's words and number and date formats in one language."""

    lang: Lang = DEFAULT_LANG

    @property
    def _thousands(self) -> str:
        return NBSP if self.lang == "sv" else ","

    @property
    def _point(self) -> str:
        return "," if self.lang == "sv" else "."

    def __call__(self, key: str, **values: object) -> str:
        """The message ``key`` with ``values`` filled in (KeyError for an unknown key)."""
        return CATALOGUES[self.lang][key].format(**values)

    # --- numbers ---

    def decimal(self, value: float | int | Decimal, places: int) -> str:
        """``1 234,5`` (sv) / ``1,234.5`` (en), rounded half up to ``places``."""
        exact = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        sign = "-" if exact < 0 else ""
        whole, _, fraction = f"{abs(exact):f}".partition(".")
        text = _grouped(whole, self._thousands)
        return sign + (text + self._point + fraction if places > 0 else text)

    def integer(self, value: int) -> str:
        return self.decimal(value, 0)

    def percent(self, share: float | int | Decimal, places: int = 1) -> str:
        """A share from 0 to 1 as a percentage: ``51,4 %``."""
        return f"{self.decimal(Decimal(str(share)) * 100, places)}{NBSP}%"

    def sek(self, amount: Decimal | float | int) -> str:
        """``1 000,00 kr`` (sv) / ``SEK 1,000.00`` (en)."""
        number = self.decimal(amount, 2)
        return f"{number}{NBSP}kr" if self.lang == "sv" else f"SEK{NBSP}{number}"

    def count(self, figure: Figure) -> str:
        """A count as the table shows it: the suppression mark, or the number."""
        if figure.suppressed or figure.value is None:
            return figure.shown
        return self.integer(int(figure.value))

    def mean(self, figure: Figure, places: int = 1) -> str:
        if figure.suppressed or figure.value is None:
            return figure.shown
        return self.decimal(figure.value, places)

    def share(self, figure: Figure) -> str:
        """A share in a column headed "%": the number of percent, 1 decimal, or the mark."""
        if figure.suppressed or figure.value is None:
            return figure.shown
        return self.decimal(Decimal(str(figure.value)) * 100, 1)

    def pair(self, pair: CountShare) -> str:
        """A count and its share: ``73 (51,4 %)``."""
        if pair.count.suppressed or pair.count.value is None:
            return pair.count.shown
        if pair.share.suppressed:
            return f"{self.count(pair.count)} ({pair.share.shown})"
        if pair.share.value is None:
            return self.count(pair.count)
        return f"{self.count(pair.count)} ({self.percent(pair.share.value)})"

    # --- dates ---

    def long_date(self, day: dt.date) -> str:
        """``7 december 2026`` / ``7 December 2026``."""
        months = SV_MONTHS if self.lang == "sv" else EN_MONTHS
        return f"{day.day} {months[day.month - 1]} {day.year}"

    def month(self, year: int, month: int) -> str:
        """``mars 2027`` / ``March 2027``."""
        months = SV_MONTHS if self.lang == "sv" else EN_MONTHS
        return f"{months[month - 1]} {year}"

    def period(self, year: int, month: int | None) -> str:
        """A reimbursement period in a heading: the year, or the month written out."""
        return str(year) if month is None else self.month(year, month)

    @staticmethod
    def moment(value: dt.datetime) -> str:
        """A time in a table: Swedish local time, ``2027-03-04 10:15`` (ISO 8601 date)."""
        return value.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M")
