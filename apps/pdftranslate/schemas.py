"""Request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from pdftranslate.models import SubscriptionTier, TranslationStatus
from plinth import Int4, PgText

Lang = Field(min_length=2, max_length=10, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,4})?$")


class UserIn(BaseModel):
    google_id: Annotated[PgText, Field(min_length=1, max_length=255)]
    # The address Google vouched for; no deliverability check here.
    email: Annotated[PgText, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
    name: Annotated[PgText, Field(max_length=255)] | None = None
    subscription_tier: SubscriptionTier = SubscriptionTier.free


class UserOut(UserIn):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime


class TranslationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    status: TranslationStatus
    progress: int
    source_lang: str | None
    target_lang: str
    original_filename: str
    file_size: int
    page_count: int | None
    error_message: str | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TranslationUpdate(BaseModel):
    """What a worker reports as the job advances."""

    status: TranslationStatus | None = None
    progress: int | None = Field(default=None, ge=0, le=100)
    page_count: Annotated[Int4, Field(ge=0)] | None = None
    translated_path: Annotated[PgText, Field(max_length=1024)] | None = None
    error_message: PgText | None = None


class JobStatus(BaseModel):
    """What the status endpoint returns and the cache holds."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: TranslationStatus
    progress: int
    error_message: str | None
    updated_at: datetime


class DownloadLink(BaseModel):
    url: str
    expires_in: int


class GlossaryIn(BaseModel):
    term: Annotated[PgText, Field(min_length=1, max_length=255)]
    translation: Annotated[PgText, Field(min_length=1, max_length=1000)]
    target_lang: str = Lang


class GlossaryOut(GlossaryIn):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
