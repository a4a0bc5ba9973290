"""Programme years: the rules (ages, rates, reminders, validity) of each calendar year."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from halsosamtal.access.dependencies import Operator
from halsosamtal.core.http import Session, problem_responses
from halsosamtal.programmes import service
from halsosamtal.programmes.schemas import ProgrammeRevisionOut, ProgrammeRules, ProgrammeYearOut

router = APIRouter(prefix="/programme-years", tags=["programme years"])

Year = Annotated[int, Path(ge=2000, le=2100, examples=[2027])]


@router.get(
    "",
    operation_id="list_programme_years",
    response_model=list[ProgrammeYearOut],
    responses=problem_responses(401, 403),
)
async def list_programme_years(session: Session, principal: Operator) -> list[ProgrammeYearOut]:
    """Every programme year, oldest first."""
    return await service.list_years(session)


@router.put(
    "/{year}",
    operation_id="set_programme_year",
    response_model=ProgrammeYearOut,
    responses={
        201: {"model": ProgrammeYearOut, "description": "Created"},
        **problem_responses(401, 403, 422),
    },
)
async def set_programme_year(
    year: Year, rules: ProgrammeRules, session: Session, principal: Operator, response: Response
) -> ProgrammeYearOut:
    """Create (201) or replace (200) the rules of one year. Other years are never touched;
    every change is kept in the year's revisions. Sending the same rules again changes nothing."""
    out, created = await service.set_year(session, year, rules, actor=principal.name)
    if created:
        response.status_code = 201
        response.headers["Location"] = f"/v1/programme-years/{year}"
    return out


@router.get(
    "/{year}",
    operation_id="get_programme_year",
    response_model=ProgrammeYearOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_programme_year(year: Year, session: Session, principal: Operator) -> ProgrammeYearOut:
    """The rules of one year."""
    return await service.get_year_out(session, year)


@router.get(
    "/{year}/revisions",
    operation_id="list_programme_year_revisions",
    response_model=list[ProgrammeRevisionOut],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_programme_year_revisions(
    year: Year, session: Session, principal: Operator
) -> list[ProgrammeRevisionOut]:
    """Every change to a year's rules: when, by which client, and the whole rule set."""
    return await service.revisions(session, year)
