"""Health outcomes among the year's completed talks, by sex, age and unit: living habits found
unhealthy, the action levels given, referrals, the SCORE2 category distribution and mean BMI.

Each completed result (``results.status = 'completed'``) counts once, with its current version
(an amendment replaces what is counted; a retracted result is not counted). Year: the
programme year of the result's invitation. Sex: as the result records it. Age: the
invitation's target age (so outcomes line up with participation; the age at the talk can be one
less when the talk is held before the birthday). Unit: the unit whose EHR posted the result.

Shares are of the group's completed talks. Mean BMI is over the talks with a BMI, computed from
the exact sum (half up to 1 decimal). Suppression: see :mod:`halsosamtal.reports.suppression`;
besides the breakdowns adding up to the total, within a group the action levels of a habit,
and the SCORE2 categories, add up to the completed talks, and each "unhealthy" or referral count
has its hidden complement (the talks without it), which is protected too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.reports.schemas import (
    BmiOutcome,
    CountShare,
    HabitOutcome,
    OutcomeDimension,
    OutcomeGroup,
    OutcomesReport,
)
from halsosamtal.reports.scope import EVERYTHING, NO_JIT, Scope
from halsosamtal.reports.suppression import Protector
from halsosamtal.results.habits import ACTION_LEVELS, HABITS, REFERRAL_KINDS
from halsosamtal.results.score2 import CATEGORIES

DIMENSIONS: tuple[OutcomeDimension, ...] = ("unit", "age", "sex")
SCORE2_GROUPS = (*CATEGORIES, "not_applicable")
BMI_PLACES = Decimal("0.1")

_COLUMNS: dict[str, tuple[str, ...]] = {"unit": ("hsa_id", "unit_name"), "age": ("age",), "sex": ("sex",)}
SEX_LABELS = {"F": "female", "M": "male"}


def _counted() -> list[tuple[str, str]]:
    """(column name, filter) of every count the query makes; fixed strings only."""
    out = [("completed", "true")]
    for habit in HABITS:
        out.append((f"{habit}_unhealthy", f"{habit}_finding = 'unhealthy'"))
        for action in ACTION_LEVELS:
            out.append((f"{habit}_{action}", f"{habit}_action = '{action}'"))
    unhealthy_any = " OR ".join(f"{h}_finding = 'unhealthy'" for h in HABITS)
    out.append(("any_unhealthy", unhealthy_any))
    for kind in REFERRAL_KINDS:
        out.append((f"referral_{kind}", f"'{kind}' = ANY(referrals)"))
    out.append(("referral_any", "cardinality(referrals) > 0"))
    for category in CATEGORIES:
        out.append((f"score2_{category}", f"score2_category = '{category}'"))
    out.append(("score2_not_applicable", "score2_category IS NULL"))
    out.append(("bmi_measured", "bmi IS NOT NULL"))
    return out


COUNTED = _counted()

_BASE = """
WITH base AS (
  SELECT i.age, u.hsa_id, u.name AS unit_name,
         -- The results service writes the register's F/M; accept the words as well.
         CASE WHEN v.sex IN ('F', 'female') THEN 'F' WHEN v.sex IN ('M', 'male') THEN 'M' ELSE v.sex END
           AS sex,
         v.tobacco_finding, v.alcohol_finding, v.physical_activity_finding, v.diet_finding,
         v.tobacco_action, v.alcohol_action, v.physical_activity_action, v.diet_action,
         v.referrals, v.score2_category, v.bmi
  FROM results r
  JOIN invitations i ON i.id = r.invitation_id
  JOIN result_versions v ON v.result_id = r.id AND v.version = r.current_version
  JOIN care_units u ON u.id = r.care_unit_id
  WHERE r.status = 'completed' AND i.year = :year
    AND (CAST(:units AS bigint[]) IS NULL OR r.care_unit_id = ANY(CAST(:units AS bigint[])))
)
"""


def _query(dimensions: Sequence[str]) -> str:
    sets = ["()", *(f"({', '.join(_COLUMNS[d])})" for d in dimensions)]
    selected = []
    for d in dimensions:
        key, *label = _COLUMNS[d]
        selected.append(f"GROUPING({key}) AS g_{d}")
        selected.append(f"CAST({key} AS text) AS k_{d}")
        selected.append(f"{label[0] if label else 'NULL'} AS l_{d}")
    selected += [f"count(*) FILTER (WHERE {condition}) AS {name}" for name, condition in COUNTED]
    selected.append("sum(bmi) AS bmi_sum")
    columns = ",\n  ".join(selected)
    return f"{_BASE}SELECT\n  {columns}\nFROM base\nGROUP BY GROUPING SETS ({', '.join(sets)})"


class _Row:
    """The cells of one group, and the hidden complements that the relations need."""

    def __init__(self, protector: Protector, values: Any) -> None:
        self.cells = {name: protector.cell(values[name]) for name, _ in COUNTED}
        self.bmi_sum: Decimal | None = values["bmi_sum"]
        n = self.cells["completed"].value
        binary = [f"{h}_unhealthy" for h in HABITS] + ["any_unhealthy", "bmi_measured"]
        binary += [f"referral_{k}" for k in (*REFERRAL_KINDS, "any")]
        self.hidden = {name: protector.cell(n - self.cells[name].value, hidden=True) for name in binary}

    def relate(self, protector: Protector) -> None:
        total = self.cells["completed"]
        for habit in HABITS:
            protector.relate(total, [self.cells[f"{habit}_{a}"] for a in ACTION_LEVELS])
        protector.relate(total, [self.cells[f"score2_{c}"] for c in SCORE2_GROUPS])
        for name, complement in self.hidden.items():
            protector.relate(total, [self.cells[name], complement])


def _by_key(dimension: str) -> Callable[[tuple[str | None, str, Any]], tuple[bool, int, str]]:
    """Sort key for a breakdown's groups: by key, numbers as numbers, unknown last."""

    def key(group: tuple[str | None, str, Any]) -> tuple[bool, int, str]:
        return _sort_key(dimension, group[0])

    return key


def _sort_key(dimension: str, key: str | None) -> tuple[bool, int, str]:
    if key is None:
        return (True, 0, "")
    if dimension == "age":
        return (False, int(key), "")
    return (False, 0, key)


async def outcomes(
    session: AsyncSession,
    year: int,
    *,
    group_by: Sequence[OutcomeDimension] = ("sex",),
    scope: Scope = EVERYTHING,
    threshold: int = 5,
) -> OutcomesReport:
    """Outcomes of ``year``'s completed talks: the total and each breakdown, suppressed."""
    dimensions = list(dict.fromkeys(group_by))
    await session.execute(NO_JIT)
    rows = (await session.execute(text(_query(dimensions)), {"year": year, "units": scope.unit_ids})).all()
    protector = Protector(threshold)
    total: _Row | None = None
    groups: dict[str, list[tuple[str | None, str, _Row]]] = {d: [] for d in dimensions}
    for row in rows:
        values = row._mapping
        made = _Row(protector, values)
        dimension = next((d for d in dimensions if values[f"g_{d}"] == 0), None)
        if dimension is None:
            total = made
            continue
        key = values[f"k_{dimension}"]
        if key is None:
            label = "unknown"
        elif dimension == "sex":
            label = SEX_LABELS.get(key, key)
        else:
            label = values[f"l_{dimension}"] or key
        groups[dimension].append((key, label, made))
    if total is None:  # pragma: no cover - the () grouping set gives a row even for no input
        total = _Row(protector, {**{name: 0 for name, _ in COUNTED}, "bmi_sum": None})
    total.relate(protector)
    for dimension in dimensions:
        groups[dimension].sort(key=_by_key(dimension))
        for _, _, made in groups[dimension]:
            made.relate(protector)
        for name, _ in COUNTED:
            protector.relate(total.cells[name], [g.cells[name] for _, _, g in groups[dimension]])
        for name in total.hidden:
            protector.relate(total.hidden[name], [g.hidden[name] for _, _, g in groups[dimension]])
    protector.solve()
    return OutcomesReport(
        year=year,
        care_units=scope.hsa_ids,
        small_cell_threshold=threshold,
        total=_group(protector, None, "total", total),
        groups={d: [_group(protector, k, label, g) for k, label, g in groups[d]] for d in dimensions},
    )


def _group(protector: Protector, key: str | None, label: str, row: _Row) -> OutcomeGroup:
    n = row.cells["completed"]

    def pair(name: str) -> CountShare:
        return CountShare(count=protector.count(row.cells[name]), share=protector.rate(row.cells[name], n))

    measured = row.cells["bmi_measured"]
    mean = None if row.bmi_sum is None or measured.value == 0 else row.bmi_sum / measured.value
    return OutcomeGroup(
        key=key,
        label=label,
        completed=protector.count(n),
        habits={
            h: HabitOutcome(
                unhealthy=pair(f"{h}_unhealthy"), actions={a: pair(f"{h}_{a}") for a in ACTION_LEVELS}
            )
            for h in HABITS
        },
        any_unhealthy=pair("any_unhealthy"),
        referrals={k: pair(f"referral_{k}") for k in (*REFERRAL_KINDS, "any")},
        score2={c: pair(f"score2_{c}") for c in SCORE2_GROUPS},
        bmi=BmiOutcome(measured=protector.count(measured), mean=protector.mean(mean, measured, BMI_PLACES)),
    )
