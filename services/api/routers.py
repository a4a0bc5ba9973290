"""Every feature's router, in the order they appear in the API documentation."""

from fastapi import APIRouter

from halsosamtal.cohort.router import router as cohort
from halsosamtal.invitations.router import router as invitations
from halsosamtal.programmes.router import router as programmes
from halsosamtal.residents.router import router as residents
from halsosamtal.units.router import router as units

ROUTERS: list[APIRouter] = [units, residents, programmes, cohort, invitations]
