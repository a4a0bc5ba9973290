"""Reports for operators and, for their own units, the centres' EHR clients: participation,
health outcomes and the reimbursement statement (JSON, or CSV with ``Accept: text/csv`` or
``?format=csv``, and CSV for Swedish Excel with ``?excel=true``); closing a reimbursement month;
importing the Care Need Index."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from halsosamtal.access.dependencies import Operator
from halsosamtal.core.errors import InvalidInput
from halsosamtal.core.http import Session, problem_responses
from halsosamtal.core.idempotency import IdempotencyKey, idempotent
from halsosamtal.core.imports import DelimiterQuery, EncodingQuery, csv_body, parse_delimiter, parse_encoding
from halsosamtal.reports import cni, export, outcomes, participation, reimbursement
from halsosamtal.reports.schemas import (
    ClosedMonth,
    CloseMonth,
    CniImportSummary,
    OutcomeDimension,
    OutcomesReport,
    ParticipationDimension,
    ParticipationReport,
    ReimbursementStatement,
)
from halsosamtal.reports.scope import resolve_scope
from halsosamtal.units.access import OperatorOrEhr
from halsosamtal.units.models import HSA_ID_PATTERN

router = APIRouter(prefix="/reports", tags=["reports"])

Year = Annotated[int, Query(ge=2000, le=2100, description="Programme year", examples=[2027])]
Unit = Annotated[
    str | None,
    Query(pattern=HSA_ID_PATTERN, description="Only this unit (HSA-id); an EHR client: one of its own"),
]
Format = Annotated[
    Literal["json", "csv"] | None,
    Query(description="csv: a CSV download (also with `Accept: text/csv`); default json"),
]
Excel = Annotated[
    bool,
    Query(
        description="true: the CSV for Swedish Excel (semicolons, decimal comma, CRLF, UTF-8 BOM), "
        "which opens by double-click with every column in place; implies CSV"
    ),
]

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The report"}
}
CNI_CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "deso,cni\n1380C1010,1.42\n1380C1020,0.87\n",
            }
        },
    }
}


def _wants_csv(request: Request, fmt: str | None, excel: bool = False) -> bool:
    if excel:
        if fmt == "json":
            raise InvalidInput("excel=true is a CSV for Excel; leave out format=json", field="excel")
        return True
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == "text/csv" for part in accept.split(","))


def _csv(body: str, filename: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _threshold(request: Request) -> int:
    return int(request.app.state.settings.small_cell_threshold)


@router.get(
    "/participation",
    operation_id="participation_report",
    response_model=ParticipationReport,
    responses={**problem_responses(401, 403, 404, 422), **CSV_RESPONSE},
)
async def participation_report(
    request: Request,
    session: Session,
    principal: OperatorOrEhr,
    year: Year,
    care_unit: Unit = None,
    group_by: Annotated[ParticipationDimension, Query(description="The breakdown")] = "unit",
    format: Format = None,
    excel: Excel = False,
) -> Any:
    """The participation funnel of a programme year: cohort, invited, reminded, booked,
    attended, completed, and declined, no-show, withdrawn and expired, with rates (shares of the
    cohort; `participation` is completed of invited), in total and by the breakdown asked for.
    An invitation counts for the unit the resident was listed at when it was sent.

    Counts from 1 to 4 (below `small_cell_threshold`) are suppressed (`"<5"`), as is anything
    that would let them be worked out by subtraction (`".."`). An EHR client sees its own units
    only (403 for another's `care_unit`)."""
    scope = await resolve_scope(session, principal, care_unit)
    report = await participation.participation(
        session, year, group_by=[group_by], scope=scope, threshold=_threshold(request)
    )
    if _wants_csv(request, format, excel):
        return _csv(export.participation_csv(report, excel=excel), f"participation-{year}-{group_by}.csv")
    return report


@router.get(
    "/outcomes",
    operation_id="outcomes_report",
    response_model=OutcomesReport,
    responses={**problem_responses(401, 403, 404, 422), **CSV_RESPONSE},
)
async def outcomes_report(
    request: Request,
    session: Session,
    principal: OperatorOrEhr,
    year: Year,
    care_unit: Unit = None,
    group_by: Annotated[OutcomeDimension, Query(description="The breakdown")] = "sex",
    format: Format = None,
    excel: Excel = False,
) -> Any:
    """Health outcomes among the year's completed talks (each with its latest version): share
    with each unhealthy living habit, the action levels given, referrals, the SCORE2 category
    distribution and mean BMI, in total and by sex, age or unit. Small cells are suppressed as
    in the participation report."""
    scope = await resolve_scope(session, principal, care_unit)
    report = await outcomes.outcomes(
        session, year, group_by=[group_by], scope=scope, threshold=_threshold(request)
    )
    if _wants_csv(request, format, excel):
        return _csv(export.outcomes_csv(report, excel=excel), f"outcomes-{year}-{group_by}.csv")
    return report


@router.get(
    "/reimbursement",
    operation_id="reimbursement_statement",
    response_model=ReimbursementStatement,
    responses={**problem_responses(401, 403, 404, 422), **CSV_RESPONSE},
)
async def reimbursement_statement(
    request: Request,
    session: Session,
    principal: OperatorOrEhr,
    year: Annotated[int, Query(ge=2000, le=2100, description="Calendar year of the months")],
    month: Annotated[int | None, Query(ge=1, le=12, description="Only this month")] = None,
    care_unit: Unit = None,
    format: Format = None,
    excel: Excel = False,
) -> Any:
    """The reimbursement statement per care unit and month: a line per completed talk at its
    programme year's rate (`talk-<event id>`), start-grant lines in January where the year has
    one (`grant-<year>-<HSA-id>`), and reversals (`reversal-<event id>`) for results retracted
    after their month was closed, in the month of the retraction. Totals per unit and month.
    A closed month never changes. Not suppressed: a centre checks its own lines."""
    scope = await resolve_scope(session, principal, care_unit)
    report = await reimbursement.statement(session, year, month, scope=scope)
    if _wants_csv(request, format, excel):
        period = f"{year}" + (f"-{month:02d}" if month else "")
        return _csv(export.reimbursement_csv(report, excel=excel), f"reimbursement-{period}.csv")
    return report


@router.post(
    "/reimbursement/close",
    operation_id="close_reimbursement_month",
    response_model=ClosedMonth,
    responses=problem_responses(401, 403, 409, 422),
)
async def close_reimbursement_month(
    body: CloseMonth,
    request: Request,
    session: Session,
    principal: Operator,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Close (report) a month of the reimbursement statement: from then on it never changes; a
    later retraction is a reversal in the month it happens. 409 `month-not-ended` before the
    month has ended (Swedish time), `month-closed` when it is closed already, and
    `earlier-month-open` when an earlier month with results is still open (months close in
    order). With an `Idempotency-Key`, a retry gets the first answer."""
    return await idempotent(
        session,
        request,
        principal.client_id,
        idempotency_key,
        body,
        lambda: reimbursement.close_month(session, body.year, body.month, actor=principal.name),
    )


@router.post(
    "/cni",
    operation_id="import_cni",
    response_model=CniImportSummary,
    responses=problem_responses(401, 403, 422),
    openapi_extra=CNI_CSV_BODY,
)
async def import_cni(
    request: Request,
    session: Session,
    principal: Operator,
    delimiter: DelimiterQuery = None,
    encoding: EncodingQuery = None,
) -> CniImportSummary:
    """Import the Care Need Index per DeSO area (CSV `deso,cni`): the body is the whole table
    (areas not in it are removed, unless some row was rejected). Each bad row is reported with
    its line and reason; valid rows are imported. Participation by CNI quintile uses it.

    The body may be what Swedish Excel saves (`;` and a decimal comma, or `,`; UTF-8 with or
    without a BOM or Windows-1252; CRLF): detected unless given, and `format` says how it was
    read."""
    given_delimiter, given_encoding = parse_delimiter(delimiter), parse_encoding(encoding)
    return await cni.import_cni(
        session, csv_body(request, "the table"), delimiter=given_delimiter, encoding=given_encoding
    )
