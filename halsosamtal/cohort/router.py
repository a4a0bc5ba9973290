"""Cohort queries for operators: counts and members of a programme year's cohort."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from halsosamtal.access.dependencies import Operator
from halsosamtal.audit.dependencies import Audit
from halsosamtal.cohort import service
from halsosamtal.cohort.schemas import CohortCounts, CohortMember
from halsosamtal.core.http import IdCursorQuery, Page, ServiceDay, Session, problem_responses
from halsosamtal.residents.lookup import residents_by_personnummer
from halsosamtal.units.models import HSA_ID_PATTERN

router = APIRouter(prefix="/cohort", tags=["cohort"])

Year = Annotated[int, Path(ge=2000, le=2100, examples=[2027])]
AsOf = Annotated[
    ServiceDay | None,
    Query(description="Count residents alive and living in the region on this day (default: today)"),
]


@router.get(
    "/{year}/counts",
    operation_id="cohort_counts",
    response_model=CohortCounts,
    responses=problem_responses(401, 403, 404, 422),
)
async def cohort_counts(
    year: Year, session: Session, principal: Operator, as_of: AsOf = None
) -> CohortCounts:
    """The year's cohort counted by target age, care unit and sex, with the totals of eligible
    (listed at a participating unit), not listed, and listed at a non-participating unit."""
    return await service.counts(session, year, as_of=as_of)


@router.get(
    "/{year}/members",
    operation_id="cohort_members",
    response_model=Page[CohortMember],
    responses=problem_responses(401, 403, 404, 422),
)
async def cohort_members(
    year: Year,
    session: Session,
    principal: Operator,
    audit: Audit,
    care_unit: Annotated[str | None, Query(pattern=HSA_ID_PATTERN, description="HSA-id")] = None,
    age: Annotated[int | None, Query(ge=0, le=130, description="One of the year's target ages")] = None,
    as_of: AsOf = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: IdCursorQuery = None,
) -> Page[CohortMember]:
    """The cohort's members, filtered by unit and age, a page at a time (stable order). Each
    member shown is recorded in the access log."""
    page = await service.members(
        session, year, care_unit=care_unit, age=age, as_of=as_of, limit=limit, cursor=cursor
    )
    if page.items:
        audit.add_query("read", residents_by_personnummer(m.personnummer for m in page.items))
    return page
