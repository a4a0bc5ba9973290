"""Every report figure recomputed from the generated region's rows in plain Python, following
the written definitions (not the SQL), so a test can compare the two."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tests.reports.region import AGES, START_GRANT, STOCKHOLM, TALK_RATE, Region

FUNNEL = (
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


def swedish_date(at: dt.datetime) -> dt.date:
    return at.astimezone(STOCKHOLM).date()


def attributed_unit(region: Region, invitation: dict[str, Any]) -> int:
    """The unit the resident was listed at on the (Swedish) day the invitation was sent; else
    the invitation's own unit."""
    if invitation["sent_at"] is not None:
        day = swedish_date(invitation["sent_at"])
        for period in region.listings:
            if (
                period["resident_id"] == invitation["resident_id"]
                and period["listed_from"] <= day
                and (period["listed_to"] is None or period["listed_to"] > day)
            ):
                return int(period["care_unit_id"])
    return int(invitation["care_unit_id"])


def quintiles(cni: dict[str, Decimal]) -> dict[str, int]:
    """ntile(5) over the areas by CNI ascending (ties by code): the first (n mod 5) quintiles
    get one more area."""
    ordered = sorted(cni, key=lambda d: (cni[d], d))
    n = len(ordered)
    out: dict[str, int] = {}
    index = 0
    for q in range(1, 6):
        size = n // 5 + (1 if q <= n % 5 else 0)
        for d in ordered[index : index + size]:
            out[d] = q
        index += size
    return out


def funnel(
    region: Region, units: set[int] | None = None, cni: dict[str, Decimal] | None = None
) -> dict[str, dict[str | None, dict[str, int]]]:
    """{breakdown: {key: {count name: n}}}, with breakdown 'total' keyed None."""
    residents = {r["id"]: r for r in region.residents}
    units_by_id = {u["id"]: u for u in region.units}
    quintile = quintiles(cni or {})
    reminded = {
        m["invitation_id"] for m in region.messages if m["kind"] == "reminder" and m["queued_at"] is not None
    }
    appointments: dict[int, list[str]] = defaultdict(list)
    for a in region.appointments:
        appointments[a["invitation_id"]].append(a["status"])
    completed = {r["invitation_id"] for r in region.results if r["status"] == "completed"}
    out: dict[str, dict[str | None, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(FUNNEL, 0))
    )
    for inv in region.invitations:
        if inv["year"] != region.year:
            continue
        unit = attributed_unit(region, inv)
        if units is not None and unit not in units:
            continue
        resident = residents[inv["resident_id"]]
        flags = {
            "cohort": True,
            "invited": inv["sent_at"] is not None,
            "reminded": inv["id"] in reminded,
            "booked": bool(appointments[inv["id"]]),
            "attended": "attended" in appointments[inv["id"]] or inv["id"] in completed,
            "completed": inv["id"] in completed,
            "declined": inv["status"] == "declined",
            "no_show": "no_show" in appointments[inv["id"]],
            "withdrawn": inv["status"] == "withdrawn",
            "expired": inv["status"] == "expired",
        }
        q = quintile.get(resident["deso"]) if resident["deso"] else None
        keys = {
            "total": None,
            "unit": units_by_id[unit]["hsa_id"],
            "age": str(inv["age"]),
            "sex": resident["sex"],
            "municipality": resident["municipality"],
            "deso": resident["deso"],
            "cni_quintile": None if q is None else str(q),
        }
        for breakdown, key in keys.items():
            counts = out[breakdown][key]
            for name, flag in flags.items():
                counts[name] += int(flag)
    return out


def outcome_rows(region: Region, units: set[int] | None = None) -> list[dict[str, Any]]:
    """The current version of each completed result of the year, with its grouping keys."""
    invitations = {i["id"]: i for i in region.invitations}
    versions = {(v["result_id"], v["version"]): v for v in region.versions}
    units_by_id = {u["id"]: u for u in region.units}
    rows = []
    for result in region.results:
        invitation = invitations[result["invitation_id"]]
        if result["status"] != "completed" or invitation["year"] != region.year:
            continue
        if units is not None and result["care_unit_id"] not in units:
            continue
        v = versions[(result["id"], result["current_version"])]
        rows.append(
            {
                **v,
                "age_key": str(invitation["age"]),
                "unit_key": units_by_id[result["care_unit_id"]]["hsa_id"],
            }
        )
    return rows


def outcome_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts and the exact mean BMI of a set of talks."""
    n = len(rows)
    figures: dict[str, Any] = {"completed": n}
    for habit in ("tobacco", "alcohol", "physical_activity", "diet"):
        figures[f"{habit}_unhealthy"] = sum(r[f"{habit}_finding"] == "unhealthy" for r in rows)
        for action in ("none", "simple_advice", "advisory_talk", "qualified_advisory_talk"):
            figures[f"{habit}_{action}"] = sum(r[f"{habit}_action"] == action for r in rows)
    figures["any_unhealthy"] = sum(
        any(r[f"{h}_finding"] == "unhealthy" for h in ("tobacco", "alcohol", "physical_activity", "diet"))
        for r in rows
    )
    for kind in (
        "health_coordinator",
        "tobacco_cessation",
        "physical_activity_on_prescription",
        "physician",
        "other",
    ):
        figures[f"referral_{kind}"] = sum(kind in r["referrals"] for r in rows)
    figures["referral_any"] = sum(bool(r["referrals"]) for r in rows)
    for category in ("low_to_moderate", "high", "very_high"):
        figures[f"score2_{category}"] = sum(r["score2_category"] == category for r in rows)
    figures["score2_not_applicable"] = sum(r["score2_category"] is None for r in rows)
    bmis = [r["bmi"] for r in rows if r["bmi"] is not None]
    figures["bmi_measured"] = len(bmis)
    figures["bmi_mean"] = (
        None if not bmis else float((sum(bmis) / len(bmis)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
    )
    return figures


def share(numerator: int, denominator: int) -> float | None:
    if denominator == 0:
        return None
    return float(
        (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    )


# --- Reimbursement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Closing:
    month: dt.date
    closed_at: dt.datetime
    last_event_id: int


def month_of(at: dt.datetime) -> dt.date:
    local = at.astimezone(STOCKHOLM)
    return dt.date(local.year, local.month, 1)


def statement_lines(
    region: Region, closings: list[Closing], *, rate: Decimal = TALK_RATE, start_grant: Decimal = START_GRANT
) -> list[dict[str, Any]]:
    """Every statement line of every month, by the written rules: per result, events in id
    order; each retraction undoes the completion of its round; reversed when that completion's
    month was closed before the retraction (by event id), else void."""
    by_month = {c.month: c for c in closings}
    results = {r["id"]: r for r in region.results}
    units = {u["id"]: u for u in region.units}

    def effective_month(event: dict[str, Any]) -> dt.date:
        """The event's month, or, when that month was closed before the event was recorded,
        the first later month that was not."""
        month = month_of(event["at"])
        while (closing := by_month.get(month)) is not None and event["id"] > closing.last_event_id:
            month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
        return month

    lines: list[dict[str, Any]] = []
    events: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in region.events:
        events[e["result_id"]].append(e)
    for result_id, evs in events.items():
        result = results[result_id]
        unit = units[result["care_unit_id"]]
        open_completion: dict[str, Any] | None = None
        for e in sorted(evs, key=lambda e: e["id"]):
            if e["kind"] == "completed":
                open_completion = {
                    "id": f"talk-{e['id']}",
                    "month": effective_month(e),
                    "care_unit": unit["hsa_id"],
                    "kind": "talk",
                    "quantity": 1,
                    "amount": rate,
                    "event_id": e["id"],
                }
                lines.append(open_completion)
            elif e["kind"] == "retracted" and open_completion is not None:
                closing = by_month.get(open_completion["month"])
                if closing is not None and e["id"] > closing.last_event_id:
                    lines.append(
                        {
                            "id": f"reversal-{e['id']}",
                            "month": effective_month(e),
                            "care_unit": unit["hsa_id"],
                            "kind": "reversal",
                            "quantity": -1,
                            "amount": -rate,
                            "reverses": open_completion["id"],
                        }
                    )
                else:
                    lines.remove(open_completion)
                open_completion = None
    if start_grant > 0:
        jan1 = dt.date(region.year, 1, 1)
        residents = {r["id"]: r for r in region.residents}
        invited_units = {i["care_unit_id"] for i in region.invitations if i["year"] == region.year}
        counts: dict[int, int] = defaultdict(int)
        for period in region.listings:
            resident = residents[period["resident_id"]]
            covers = period["listed_from"] <= jan1 and (
                period["listed_to"] is None or period["listed_to"] > jan1
            )
            alive = resident["deceased_on"] is None or resident["deceased_on"] > jan1
            if covers and alive and region.year - resident["birth_date"].year in AGES:
                counts[period["care_unit_id"]] += 1
        for unit_id, quantity in counts.items():
            unit = units[unit_id]
            if unit["participating"] or unit_id in invited_units:
                lines.append(
                    {
                        "id": f"grant-{region.year}-{unit['hsa_id']}",
                        "month": jan1,
                        "care_unit": unit["hsa_id"],
                        "kind": "start_grant",
                        "quantity": quantity,
                        "amount": quantity * start_grant,
                    }
                )
    return lines
