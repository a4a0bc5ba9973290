"""Residents: bulk import (operator) and lookup by personnummer."""

from fastapi import APIRouter

router = APIRouter(tags=["residents"])
