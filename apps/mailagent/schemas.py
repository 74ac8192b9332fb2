"""Request and response bodies. Tokens go in, and never come back out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from plinth import PgText


class UserIn(BaseModel):
    email: Annotated[PgText, Field(min_length=3, max_length=255, pattern=r"^[^@\s]+@[^@\s]+$")]
    telegram_id: Annotated[PgText, Field(max_length=100)] | None = None
    telegram_username: Annotated[PgText, Field(max_length=100)] | None = None
    gmail_oauth_token: PgText | None = None
    gmail_refresh_token: PgText | None = None


class UserUpdate(BaseModel):
    telegram_id: Annotated[PgText, Field(max_length=100)] | None = None
    telegram_username: Annotated[PgText, Field(max_length=100)] | None = None
    is_active: bool | None = None
    onboarding_completed: bool | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    telegram_id: str | None
    telegram_username: str | None
    is_active: bool
    onboarding_completed: bool
    has_gmail_token: bool
    created_at: datetime
    updated_at: datetime
