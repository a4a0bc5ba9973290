"""Bar charts as plain geometry, drawn as inline SVG by the HTML template: no script, no
library, nothing fetched, so the report opens offline and prints as it shows. Every number is
written by the report's :class:`~halsosamtal.reports.i18n.Locale`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from halsosamtal.reports.i18n import Locale
from halsosamtal.reports.schemas import Figure, ParticipationGroup

LABEL_WIDTH = 230
BAR_AREA = 440
VALUE_WIDTH = 130
ROW = 24
BAR = 16
TOP = 8
AXIS = 22
WIDTH = LABEL_WIDTH + BAR_AREA + VALUE_WIDTH


@dataclass
class Bar:
    label: str
    text: str
    x: float
    y: float
    width: float
    tone: str = "main"

    @property
    def label_y(self) -> float:
        return self.y + BAR / 2


@dataclass
class Tick:
    x: float
    text: str


@dataclass
class Chart:
    """A horizontal bar chart: one row per bar, with its label left and its value right."""

    id: str
    title: str
    note: str = ""
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)

    width: int = WIDTH
    label_width: int = LABEL_WIDTH
    bar_area: int = BAR_AREA
    bar_height: int = BAR

    @property
    def height(self) -> int:
        return TOP + ROW * max(len(self.bars), 1) + AXIS

    @property
    def axis_y(self) -> int:
        return TOP + ROW * max(len(self.bars), 1)


def _ticks(maximum: float, locale: Locale, *, percent: bool) -> list[Tick]:
    steps = 4
    out = []
    for i in range(steps + 1):
        value = maximum * i / steps
        text = locale.percent(value, 0) if percent else locale.decimal(value, 0)
        out.append(Tick(LABEL_WIDTH + BAR_AREA * i / steps, text))
    return out


def share_chart(
    chart_id: str,
    title: str,
    rows: Sequence[tuple[str, Figure]],
    note: str = "",
    locale: Locale | None = None,
) -> Chart:
    """Shares (0 to 1) on a 0-100 % axis; a suppressed share has no bar and shows its mark."""
    locale = locale or Locale()
    chart = Chart(chart_id, title, note, ticks=_ticks(1.0, locale, percent=True))
    for i, (label, figure) in enumerate(rows):
        y = TOP + i * ROW + (ROW - BAR) / 2
        if figure.value is None:
            chart.bars.append(Bar(label, figure.shown or "-", LABEL_WIDTH, y, 0, "none"))
            continue
        value = float(figure.value)
        chart.bars.append(Bar(label, locale.percent(value), LABEL_WIDTH, y, BAR_AREA * min(value, 1.0)))
    return chart


def funnel_chart(total: ParticipationGroup, locale: Locale | None = None) -> Chart:
    """The funnel from the cohort to completed talks, each bar centred and as wide as its share
    of the cohort."""
    locale = locale or Locale()
    steps = [
        ("cohort", total.counts.cohort, None),
        ("invited", total.counts.invited, total.rates.invited),
        ("reminded", total.counts.reminded, total.rates.reminded),
        ("booked", total.counts.booked, total.rates.booked),
        ("attended", total.counts.attended, total.rates.attended),
        ("completed", total.counts.completed, total.rates.completed),
    ]
    chart = Chart("chart-funnel", locale("chart.funnel"), locale("chart.funnel.note"))
    cohort = total.counts.cohort.value
    for i, (step, count, rate) in enumerate(steps):
        label = locale(f"funnel.{step}")
        y = TOP + i * ROW + (ROW - BAR) / 2
        if count.value is None or not cohort:
            chart.bars.append(Bar(label, count.shown, LABEL_WIDTH, y, 0, "none"))
            continue
        share = float(count.value) / float(cohort)
        width = BAR_AREA * share
        text = locale.count(count) + (
            f" ({locale.percent(rate.value)})" if rate and rate.value is not None else ""
        )
        chart.bars.append(Bar(label, text, LABEL_WIDTH + (BAR_AREA - width) / 2, y, width))
    return chart


def amount_chart(
    chart_id: str,
    title: str,
    rows: Sequence[tuple[str, Decimal]],
    note: str = "",
    locale: Locale | None = None,
) -> Chart:
    """Amounts in SEK; the axis runs to the largest amount (a negative one is drawn by size, in
    another tone)."""
    locale = locale or Locale()
    biggest = max((abs(float(a)) for _, a in rows), default=0.0) or 1.0
    chart = Chart(chart_id, title, note, ticks=_ticks(biggest, locale, percent=False))
    for i, (label, amount) in enumerate(rows):
        y = TOP + i * ROW + (ROW - BAR) / 2
        width = BAR_AREA * abs(float(amount)) / biggest
        tone = "negative" if amount < 0 else "main"
        chart.bars.append(Bar(label, locale.sek(amount), LABEL_WIDTH, y, width, tone))
    return chart
