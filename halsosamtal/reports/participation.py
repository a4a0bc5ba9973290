"""The participation funnel of a programme year, by unit, age, sex, municipality, DeSO area and
Care Need Index quintile: one set-based query (GROUPING SETS), then small-cell suppression.

Definitions (per invitation of the year; see the package docstring for the reasons):

* cohort: every invitation of the year, whatever its status (the batch creates one for each
  eligible resident, once per year and age).
* invited: its invitation message was released (``invitations.sent_at`` is set).
* reminded: at least one reminder message was released (``messages.queued_at`` set), the same
  moment that makes an invitation "invited".
* booked: it ever had an appointment; attended: an appointment marked attended, or a completed
  result (a talk held at once, without a booking, was attended too); no-show: an appointment
  marked no-show. An invitation with a no-show that later booked again and came counts in both.
* completed: its result is in and not retracted (``results.status = 'completed'``).
* declined, withdrawn, expired: the invitation's status.

Unit: the unit the resident was listed at (``listing_periods``) on the day the invitation was
sent (Swedish date); for an invitation not sent, or a resident with no listing on that day, the
invitation's own unit. Age: the target age of the invitation. Sex, municipality and DeSO: the
resident's, as the register has them now (the register keeps no history of them); a
municipality is labelled with its name from SCB's list (its code is the key). CNI quintile:
``ntile(5)`` over the imported DeSO areas ordered by CNI ascending (ties by DeSO code), so
quintile 5 is the highest care need; areas without a CNI are "unknown".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.places.municipalities import municipality_name
from halsosamtal.reports.schemas import (
    FunnelCounts,
    FunnelRates,
    ParticipationDimension,
    ParticipationGroup,
    ParticipationReport,
)
from halsosamtal.reports.scope import EVERYTHING, NO_JIT, Scope
from halsosamtal.reports.suppression import Cell, Protector

COUNTS = (
    "cohort",
    "invited",
    "reminded",
    "booked",
    "attended",
    "completed",
    "declined",
    "no_show",
    "withdrawn",
    "expired",
)
DIMENSIONS: tuple[ParticipationDimension, ...] = (
    "unit",
    "age",
    "sex",
    "municipality",
    "deso",
    "cni_quintile",
)

# Grouping columns of each breakdown (key first, then its label) in the ``base`` CTE.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "unit": ("hsa_id", "unit_name"),
    "age": ("age",),
    "sex": ("sex",),
    "municipality": ("municipality",),
    "deso": ("deso",),
    "cni_quintile": ("cni_quintile",),
}
SEX_LABELS = {"F": "female", "M": "male"}

_BASE = """
WITH inv AS (
  -- Each invitation once, with where the resident was listed on the (Swedish) day it went out.
  -- A hash join rather than a lookup per invitation; DISTINCT ON keeps one listing should
  -- periods ever overlap (the latest).
  SELECT DISTINCT ON (i.id) i.id, i.age, i.status, i.sent_at IS NOT NULL AS invited,
         coalesce(l.care_unit_id, i.care_unit_id) AS unit_id,
         r.sex, r.municipality, r.deso
  FROM invitations i
  JOIN residents r ON r.id = i.resident_id
  LEFT JOIN listing_periods l
    ON i.sent_at IS NOT NULL AND l.resident_id = i.resident_id
   AND l.listed_from <= (i.sent_at AT TIME ZONE 'Europe/Stockholm')::date
   AND (l.listed_to IS NULL OR l.listed_to > (i.sent_at AT TIME ZONE 'Europe/Stockholm')::date)
  WHERE i.year = :year
  ORDER BY i.id, l.listed_from DESC, l.id DESC
), reminded AS (
  SELECT DISTINCT m.invitation_id
  FROM messages m JOIN invitations i ON i.id = m.invitation_id
  WHERE i.year = :year AND m.kind = 'reminder' AND m.queued_at IS NOT NULL
), appointed AS (
  SELECT a.invitation_id, bool_or(a.status = 'attended') AS attended,
         bool_or(a.status = 'no_show') AS no_show
  FROM appointments a JOIN invitations i ON i.id = a.invitation_id
  WHERE i.year = :year
  GROUP BY a.invitation_id
), quintiles AS (
  SELECT deso, ntile(5) OVER (ORDER BY cni, deso) AS quintile FROM deso_cni
), base AS (
  SELECT s.id, s.status, s.invited, s.age, s.sex, s.municipality, s.deso,
         u.hsa_id, u.name AS unit_name, q.quintile AS cni_quintile,
         rm.invitation_id IS NOT NULL AS reminded,
         ap.invitation_id IS NOT NULL AS booked,
         -- A talk held without a booking (the resident called and came at once) was attended too.
         coalesce(ap.attended, false) OR res.id IS NOT NULL AS attended,
         coalesce(ap.no_show, false) AS no_show,
         res.id IS NOT NULL AS completed
  FROM inv s
  JOIN care_units u ON u.id = s.unit_id
  LEFT JOIN reminded rm ON rm.invitation_id = s.id
  LEFT JOIN appointed ap ON ap.invitation_id = s.id
  LEFT JOIN results res ON res.invitation_id = s.id AND res.status = 'completed'
  LEFT JOIN quintiles q ON q.deso = s.deso
  WHERE CAST(:units AS bigint[]) IS NULL OR s.unit_id = ANY(CAST(:units AS bigint[]))
)
"""

_AGGREGATES = """
  count(*) AS cohort,
  count(*) FILTER (WHERE invited) AS invited,
  count(*) FILTER (WHERE reminded) AS reminded,
  count(*) FILTER (WHERE booked) AS booked,
  count(*) FILTER (WHERE attended) AS attended,
  count(*) FILTER (WHERE completed) AS completed,
  count(*) FILTER (WHERE status = 'declined') AS declined,
  count(*) FILTER (WHERE no_show) AS no_show,
  count(*) FILTER (WHERE status = 'withdrawn') AS withdrawn,
  count(*) FILTER (WHERE status = 'expired') AS expired
"""


def _query(dimensions: Sequence[str]) -> str:
    """The statement for the total and the given breakdowns, from fixed fragments only."""
    sets = ["()", *(f"({', '.join(_COLUMNS[d])})" for d in dimensions)]
    selected = []
    for d in dimensions:
        key, *label = _COLUMNS[d]
        selected.append(f"GROUPING({key}) AS g_{d}")
        selected.append(f"CAST({key} AS text) AS k_{d}")
        selected.append(f"{label[0] if label else 'NULL'} AS l_{d}")
    columns = ",\n  ".join([*selected, _AGGREGATES])
    return f"{_BASE}SELECT\n  {columns}\nFROM base\nGROUP BY GROUPING SETS ({', '.join(sets)})"


def _label(dimension: str, key: str | None, label: str | None) -> str:
    if key is None:
        return "unknown"
    if dimension == "sex":
        return SEX_LABELS.get(key, key)
    if dimension == "cni_quintile":
        return f"quintile {key}"
    if dimension == "municipality":
        return municipality_name(key) or key
    return label or key


def _by_key(dimension: str) -> Callable[[tuple[str | None, str, Any]], tuple[bool, int, str]]:
    """Sort key for a breakdown's groups: by key, numbers as numbers, unknown last."""

    def key(group: tuple[str | None, str, Any]) -> tuple[bool, int, str]:
        return _sort_key(dimension, group[0])

    return key


def _sort_key(dimension: str, key: str | None) -> tuple[bool, int, str]:
    # Unknown last; numbers as numbers.
    if key is None:
        return (True, 0, "")
    if dimension in ("age", "cni_quintile"):
        return (False, int(key), "")
    return (False, 0, key)


async def participation(
    session: AsyncSession,
    year: int,
    *,
    group_by: Sequence[ParticipationDimension] = ("unit",),
    scope: Scope = EVERYTHING,
    threshold: int = 5,
) -> ParticipationReport:
    """The funnel for ``year``: the total and each breakdown in ``group_by``, suppressed."""
    dimensions = list(dict.fromkeys(group_by))
    await session.execute(NO_JIT)
    rows = (await session.execute(text(_query(dimensions)), {"year": year, "units": scope.unit_ids})).all()
    protector = Protector(threshold)
    total_row: dict[str, Cell] | None = None
    groups: dict[str, list[tuple[str | None, str, dict[str, Cell]]]] = {d: [] for d in dimensions}
    for row in rows:
        values = row._mapping
        cells = {name: protector.cell(values[name]) for name in COUNTS}
        dimension = next((d for d in dimensions if values[f"g_{d}"] == 0), None)
        if dimension is None:
            total_row = cells
        else:
            key = values[f"k_{dimension}"]
            groups[dimension].append((key, _label(dimension, key, values[f"l_{dimension}"]), cells))
    if total_row is None:  # pragma: no cover - the () grouping set gives a row even for no input
        total_row = {name: protector.cell(0) for name in COUNTS}
    for dimension in dimensions:
        groups[dimension].sort(key=_by_key(dimension))
        for name in COUNTS:
            protector.relate(total_row[name], [cells[name] for _, _, cells in groups[dimension]])
    protector.solve()
    return ParticipationReport(
        year=year,
        care_units=scope.hsa_ids,
        small_cell_threshold=threshold,
        total=_group(protector, None, "total", total_row),
        groups={
            d: [_group(protector, key, label, cells) for key, label, cells in groups[d]] for d in dimensions
        },
    )


def _group(protector: Protector, key: str | None, label: str, cells: dict[str, Cell]) -> ParticipationGroup:
    counts = {name: protector.count(cells[name]) for name in COUNTS}
    rates = {name: protector.rate(cells[name], cells["cohort"]) for name in COUNTS if name != "cohort"}
    rates["participation"] = protector.rate(cells["completed"], cells["invited"])
    return ParticipationGroup(key=key, label=label, counts=FunnelCounts(**counts), rates=FunnelRates(**rates))
