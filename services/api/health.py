"""Liveness and readiness, without authentication (for orchestrators and load balancers)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from halsosamtal.access.doors import rate_limits_state

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"] = Field(
        description="Whether the API can serve: the database answers"
    )
    database: Literal["ok", "unavailable"]
    redis: Literal["ok", "unavailable"] = Field(
        description="Reported only: without Redis every call still works, and batches and messages "
        "wait in the database for the worker"
    )
    rate_limits: Literal["enforced", "fail-open", "off"] = Field(
        description="Rate limits count in Redis; while it does not answer they fail open (requests go on)"
    )


@router.get("/healthz", operation_id="healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive. Touches nothing else."""
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database does not answer"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers (within 2 s). Redis's state is in the body but does not
    decide: the API serves every call without it (a started batch or a message waits in the
    database until the worker is back), so an orchestrator must not take a working API out."""
    resources = request.app.state.resources

    async def database() -> bool:
        async with resources.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def redis() -> bool:
        return bool(await resources.redis.ping())

    async def check(probe: object) -> Literal["ok", "unavailable"]:
        try:
            ok = await asyncio.wait_for(probe(), timeout=2)  # type: ignore[operator]
        except Exception:
            return "unavailable"
        return "ok" if ok else "unavailable"

    db, rd = await asyncio.gather(check(database), check(redis))
    ready = db == "ok"
    limits = rate_limits_state(request.app, rd == "ok")
    body = Readiness(status="ready" if ready else "unavailable", database=db, redis=rd, rate_limits=limits)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
