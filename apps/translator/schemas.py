"""Request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from plinth import BoundedJsonObject, Int4, PgText

Status = Literal["pending", "in_progress", "completed", "failed"]


class Owner(BaseModel):
    user_id: uuid.UUID | None = None
    session_id: Annotated[PgText, Field(max_length=255)] | None = None


class DocumentIn(Owner):
    content: PgText
    file_name: Annotated[PgText, Field(max_length=255)]
    file_size: Int4
    source_language: Annotated[PgText, Field(max_length=10)]


class DocumentOut(DocumentIn):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class TranslationIn(Owner):
    target_language: Annotated[PgText, Field(max_length=10)]


class TranslationUpdate(BaseModel):
    status: Status | None = None
    progress_percentage: Int4 | None = None
    translated_content: PgText | None = None
    translation_state: BoundedJsonObject | None = None


class TranslationOut(TranslationIn):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    document_id: uuid.UUID
    status: str
    progress_percentage: int
    translated_content: str | None
    translation_state: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
