"""Request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from plinth import PgText
from rndcards.models import BatchStatus


class UserIn(BaseModel):
    email: Annotated[PgText, Field(max_length=255, pattern=r"^[^@\s]+@[^@\s]+$")]
    name: Annotated[PgText, Field(min_length=1, max_length=255)]
    cognito_sub: Annotated[PgText, Field(min_length=1, max_length=255)]
    company: Annotated[PgText, Field(max_length=255)] | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    company: str | None
    cognito_sub: str
    preferences: dict[str, Any]
    created_at: datetime
    last_login_at: datetime | None


class BatchIn(BaseModel):
    name: Annotated[PgText, Field(min_length=1, max_length=255)]
    total_projects: int = Field(ge=1, le=20)


class BatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    status: BatchStatus
    total_projects: int
    completed_projects: int
    average_quality_score: Decimal | None
    created_at: datetime
    completed_at: datetime | None
    expires_at: datetime
