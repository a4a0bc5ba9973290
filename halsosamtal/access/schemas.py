from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from halsosamtal.core.http import StrictModel

Role = Literal["operator", "portal", "ehr"]


@dataclass(frozen=True)
class Principal:
    """The authenticated API client of a request."""

    client_id: int
    name: str
    role: Role
    care_unit_ids: frozenset[int] = field(default_factory=frozenset)

    def may_act_for(self, care_unit_id: int) -> bool:
        return self.role == "operator" or care_unit_id in self.care_unit_ids


class ClientCreate(StrictModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
    role: Role
    care_units: list[str] = Field(
        default_factory=list, description="HSA-ids of the units an `ehr` client acts for"
    )


class ClientOut(BaseModel):
    id: int
    name: str
    role: Role
    key_prefix: str
    care_units: list[str]
    created_at: datetime
    revoked_at: datetime | None


class ClientCreated(ClientOut):
    key: str = Field(description="The API key. Shown this once; only its hash is stored.")
