"""Care units: list, get, update participation and capacity."""

from fastapi import APIRouter

router = APIRouter(tags=["care units"])
