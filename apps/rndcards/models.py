"""The R&D project cards schema (seed 004): users, batches of 1-20 projects,
each project's generated content and its generation metadata.

Ids are UUIDs from core ``gen_random_uuid()``; ``uuid-ossp`` is created where
the server ships it (the seed asks for it; the embedded server lacks it).
Timestamps are ``TIMESTAMP WITH TIME ZONE`` set by the server. Every
relationship is ``lazy="raise"``: load what a query needs with
``options=[selectinload(...)]``.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

from plinth import ddl
from rndcards import triggers

BatchStatus = Literal[
    "uploading",
    "validating",
    "validation_failed",
    "queued",
    "processing",
    "completed",
    "partially_completed",
    "archived",
]
ProjectStatus = Literal["pending", "generating", "completed", "failed", "reviewed", "exported"]
BATCH_STATUSES: tuple[str, ...] = get_args(BatchStatus)
PROJECT_STATUSES: tuple[str, ...] = get_args(ProjectStatus)

DEFAULT_PREFERENCES: dict[str, Any] = {
    "defaultAiModel": "claude",
    "language": "pl",
    "notificationsEnabled": True,
}
SECTION_KEYS = (
    "nazwa_projektu",
    "cel_projektu",
    "opis_projektu",
    "nowatorstwo",
    "metodologia",
    "rezultaty",
    "koszty",
    "harmonogram",
)
"""The eight Ulga B+R sections: the keys of ``project_contents.sections``."""
BATCH_LIFETIME_DAYS = 90


def _jsonb(value: Any) -> Any:
    literal = json.dumps(value).replace("'", "''")
    return text(f"'{literal}'::jsonb")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


def _timestamp() -> Mapped[datetime | None]:
    return mapped_column(DateTime(timezone=True))


class Base(DeclarativeBase):
    metadata = ddl.new_metadata()

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        # Server defaults come back with the INSERT (RETURNING), never as
        # expired attributes that async code could not load.
        return {"eager_defaults": True}


ddl.extensions(Base.metadata, if_available=("uuid-ossp",))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # The seed lists these indexes besides UNIQUE constraints on the same
        # columns; one unique index each does both jobs without a duplicate.
        Index("idx_users_email", "email", unique=True),
        Index("idx_users_cognito_sub", "cognito_sub", unique=True),
    )

    id: Mapped[uuid.UUID] = ddl.uuid_pk()
    email: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    company: Mapped[str | None] = mapped_column(String(255))
    cognito_sub: Mapped[str] = mapped_column(String(255))
    """The AWS Cognito user id."""
    preferences: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=_jsonb(DEFAULT_PREFERENCES)
    )
    created_at: Mapped[datetime] = _created_at()
    last_login_at: Mapped[datetime | None] = _timestamp()

    batches: Mapped[list[Batch]] = relationship(
        back_populates="user", lazy="raise", passive_deletes=True
    )


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (
        CheckConstraint(_in("status", BATCH_STATUSES), name="valid_status"),
        CheckConstraint("total_projects BETWEEN 1 AND 20", name="total_projects_range"),
        CheckConstraint(
            "average_quality_score BETWEEN 0 AND 100", name="average_quality_score_range"
        ),
        Index("idx_batches_user_id", "user_id"),
        Index("idx_batches_status", "status"),
        Index("idx_batches_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = ddl.uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(50), server_default="uploading")
    total_projects: Mapped[int] = mapped_column(Integer)
    completed_projects: Mapped[int] = mapped_column(Integer, server_default="0")
    """Projects with status ``completed``; kept by `rndcards.triggers`."""
    average_quality_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2), server_default="0")
    """Mean score of the projects scored above 0; kept by `rndcards.triggers`."""
    created_at: Mapped[datetime] = _created_at()
    completed_at: Mapped[datetime | None] = _timestamp()
    expires_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        # now() is the transaction's start, the same instant created_at gets.
        server_default=text(f"(now() + '{BATCH_LIFETIME_DAYS} days'::interval)"),
    )

    user: Mapped[User] = relationship(back_populates="batches", lazy="raise")
    projects: Mapped[list[Project]] = relationship(
        back_populates="batch",
        lazy="raise",
        passive_deletes=True,
        order_by="Project.row_number",
    )


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint(_in("status", PROJECT_STATUSES), name="valid_project_status"),
        CheckConstraint("row_number BETWEEN 1 AND 20", name="row_number_range"),
        CheckConstraint("quality_score BETWEEN 0 AND 100", name="quality_score_range"),
        UniqueConstraint("batch_id", "row_number"),
        Index("idx_projects_batch_id", "batch_id"),
        Index("idx_projects_status", "status"),
    )

    id: Mapped[uuid.UUID] = ddl.uuid_pk()
    batch_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("batches.id", ondelete="CASCADE")
    )
    row_number: Mapped[int] = mapped_column(Integer)
    """The project's row in the uploaded spreadsheet (1-20)."""
    status: Mapped[str] = mapped_column(String(50), server_default="pending")
    quality_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2), server_default="0")
    input_data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    ai_model: Mapped[str | None] = mapped_column(String(50), server_default="claude-3.5-sonnet")
    created_at: Mapped[datetime] = _created_at()
    generated_at: Mapped[datetime | None] = _timestamp()
    edited_at: Mapped[datetime | None] = _timestamp()

    batch: Mapped[Batch] = relationship(back_populates="projects", lazy="raise")
    content: Mapped[ProjectContent | None] = relationship(
        back_populates="project", lazy="raise", passive_deletes=True
    )
    generation_metadata: Mapped[GenerationMetadata | None] = relationship(
        back_populates="project", lazy="raise", passive_deletes=True
    )


class ProjectContent(Base):
    """The generated text of one project (1:1 with projects)."""

    __tablename__ = "project_contents"

    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    sections: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """Section key (see `SECTION_KEYS`) to its content."""
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    last_edited_section: Mapped[str | None] = mapped_column(String(50))

    project: Mapped[Project] = relationship(back_populates="content", lazy="raise")


class GenerationMetadata(Base):
    """AI usage of one project, for cost monitoring (1:1 with projects)."""

    __tablename__ = "generation_metadata"
    __table_args__ = (CheckConstraint("attempts BETWEEN 1 AND 3", name="attempts_range"),)

    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default="1")
    total_input_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    total_output_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    total_cost_eur: Mapped[Decimal] = mapped_column(Numeric(10, 4), server_default="0")
    average_latency_ms: Mapped[int | None] = mapped_column(Integer)
    model_used: Mapped[str] = mapped_column(String(50))
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB, server_default=_jsonb([]))
    completed_at: Mapped[datetime | None] = _timestamp()

    project: Mapped[Project] = relationship(back_populates="generation_metadata", lazy="raise")


# An expression index names its column, so it is declared after the class.
Index("idx_batches_created_at", Batch.created_at.desc())
triggers.attach(Project.__table__)  # type: ignore[arg-type]
