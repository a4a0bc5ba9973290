"""Small-cell suppression for aggregated exports, so that no person can be singled out.

**Primary suppression.** A shown count from 1 to ``threshold - 1`` is replaced by ``"<T"``
(``"<5"`` with the default threshold). 0 is shown: "nobody" singles nobody out.

**Complementary (secondary) suppression.** A suppressed cell must not be recoverable by
subtraction. Each report declares its *relations*: sets of cells that add up to a shown total
(the groups of a breakdown add up to the total row, column by column; within a row, e.g. the
four SCORE2 categories add up to the completed talks). Some cells of a relation are *hidden*:
never shown, but derivable, such as "healthy" = completed - unhealthy. A hidden count from 1 to
``threshold - 1`` is sensitive as well ("all but two smoke" singles the two out).

The rule, applied until nothing changes: when a relation has exactly one unknown cell (suppressed
or hidden) and that cell is sensitive (suppressed, or a small hidden count), one more of the
relation's shown cells is suppressed: the smallest non-zero member, else a zero member, else
the relation's total. Such a cell is shown as ``".."`` (it is not small, so ``"<5"`` would be
untrue). This stops recovery from any single relation; it does not solve the general linear
system (an attacker combining several relations cleverly), which for the one-way breakdowns
these reports show is the case that matters.

Rates, shares and means are suppressed when any count they are computed from is suppressed.

Limits: each report is protected on its own. Reports for different filters or breakdowns (all
units by sex, and each unit by sex) could still be differenced against each other; only
operators can ask for any of them, and an EHR client's reports cover its own units only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from halsosamtal.reports.schemas import Figure

State = Literal["shown", "small", "secondary"]

SECONDARY_MARK = ".."
RATE_PLACES = Decimal("0.0001")


@dataclass(eq=False)
class Cell:
    """One count of a report. ``hidden`` cells are never shown but can be derived."""

    value: int
    hidden: bool = False
    state: State = "shown"

    @property
    def unknown(self) -> bool:
        return self.hidden or self.state != "shown"


@dataclass
class Relation:
    """``sum(members) == total``."""

    total: Cell
    members: list[Cell]


@dataclass
class Protector:
    """Collects a report's cells and relations, then suppresses (:meth:`solve`)."""

    threshold: int
    relations: list[Relation] = field(default_factory=list)

    def cell(self, value: int, *, hidden: bool = False) -> Cell:
        made = Cell(int(value), hidden=hidden)
        if not hidden and self.small(made.value):
            made.state = "small"
        return made

    def small(self, value: int) -> bool:
        return 1 <= value < self.threshold

    def relate(self, total: Cell, members: Sequence[Cell]) -> None:
        self.relations.append(Relation(total, list(members)))

    def sensitive(self, cell: Cell) -> bool:
        return cell.state != "shown" or (cell.hidden and self.small(cell.value))

    def solve(self) -> None:
        """Complementary suppression until no relation gives a sensitive cell away."""
        changed = True
        while changed:
            changed = False
            for relation in self.relations:
                cells = [relation.total, *relation.members]
                unknown = [c for c in cells if c.unknown]
                if len(unknown) != 1 or not self.sensitive(unknown[0]):
                    continue
                candidates = [c for c in relation.members if not c.unknown]
                if candidates:
                    # Smallest non-zero first: it hides the most for the least information lost.
                    pick = min(candidates, key=lambda c: (c.value == 0, c.value))
                elif not relation.total.unknown:
                    pick = relation.total
                else:  # pragma: no cover - one unknown means someone is known
                    continue
                pick.state = "secondary"
                changed = True

    # --- Rendering -------------------------------------------------------------------------

    @property
    def small_mark(self) -> str:
        return f"<{self.threshold}"

    def mark(self, cells: Iterable[Cell]) -> str | None:
        """How a figure computed from ``cells`` is shown when one of them is suppressed."""
        states = {c.state for c in cells}
        if "small" in states:
            return self.small_mark
        if "secondary" in states:
            return SECONDARY_MARK
        return None

    def count(self, cell: Cell) -> Figure:
        mark = self.mark([cell])
        if mark is not None:
            return Figure(value=None, suppressed=True, shown=mark)
        return Figure(value=cell.value, shown=str(cell.value))

    def rate(self, numerator: Cell, denominator: Cell) -> Figure:
        """numerator / denominator to 4 decimals (half up); null for a zero denominator."""
        mark = self.mark([numerator, denominator])
        if mark is not None:
            return Figure(value=None, suppressed=True, shown=mark)
        if denominator.value == 0:
            return Figure(value=None, shown="")
        share = ratio(numerator.value, denominator.value)
        return Figure(value=float(share), shown=str(share))

    def mean(self, value: Decimal | None, n: Cell, places: Decimal) -> Figure:
        """A mean over ``n`` values, rounded half up to ``places``; null when there are none."""
        mark = self.mark([n])
        if mark is not None:
            return Figure(value=None, suppressed=True, shown=mark)
        if value is None or n.value == 0:
            return Figure(value=None, shown="")
        rounded = value.quantize(places, rounding=ROUND_HALF_UP)
        return Figure(value=float(rounded), shown=str(rounded))


def ratio(numerator: int, denominator: int) -> Decimal:
    """An exact share to 4 decimals, rounded half up (what the reports show)."""
    return (Decimal(numerator) / Decimal(denominator)).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)
