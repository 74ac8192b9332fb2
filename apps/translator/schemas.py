"""Request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["pending", "in_progress", "completed", "failed"]


class Owner(BaseModel):
    user_id: uuid.UUID | None = None
    session_id: str | None = Field(default=None, max_length=255)


class DocumentIn(Owner):
    content: str
    file_name: str = Field(max_length=255)
    file_size: int
    source_language: str = Field(max_length=10)


class DocumentOut(DocumentIn):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class TranslationIn(Owner):
    target_language: str = Field(max_length=10)


class TranslationUpdate(BaseModel):
    status: Status | None = None
    progress_percentage: int | None = None
    translated_content: str | None = None
    translation_state: dict[str, Any] | None = None


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
