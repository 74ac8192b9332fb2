"""The PDF translation service's schema (seed 002).

Users signed in with Google, their translation jobs, the text blocks
extracted from each PDF page, and per-user glossaries. Every table carries
``tenant_id``, and every key includes it (migration ``0003``): each primary
key is ``(tenant_id, id)``, each unique constraint starts with ``tenant_id``,
and each foreign key references a composite primary key, so a row can never
point at another tenant's row, whatever the application code does.

That is also what Citus needs to shard the schema by tenant: every table is
distributed by ``tenant_id``, co-located with ``users`` (`plinth.ddl.distributed`
here, `plinth.ddl.distribute_table` in ``0003``), so all of one tenant's rows
live on one shard group and a query that names the tenant is a single-shard
router query. On plain PostgreSQL the distribution is a no-op.

The ORM identity is the composite key too, ``(tenant_id, id)``, not ``id``
alone, although a UUID is unique by itself: SQLAlchemy writes an object's
UPDATE and DELETE as ``WHERE`` its mapped primary key, and looks objects up
by it (``session.get``, `plinth.Repository.get` / ``update``). With ``id``
alone those statements would not name the tenant, and on Citus each would
go to every shard. With the tenant in the identity they cannot forget it;
the cost is that ``session.get(Translation, (tenant_id, id))`` takes both.

Uniqueness of Google ids and e-mail addresses is per tenant: a global unique
constraint would tell tenant B, through a 409, that tenant A has that user.

Row-level security holds each table to its tenant in PostgreSQL itself
(`plinth.ddl.tenant_isolation`, migration ``0002``): a query sees and writes
only the rows of the tenant its unit of work was given
(``database.transaction(tenant=...)``), whatever its WHERE clause says.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plinth import ddl


class Base(DeclarativeBase):
    metadata = ddl.new_metadata()


class SubscriptionTier(enum.StrEnum):
    free = "free"
    pro = "pro"
    enterprise = "enterprise"


class TranslationStatus(enum.StrEnum):
    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"


ACTIVE = (TranslationStatus.pending, TranslationStatus.processing)


def _tenant_id() -> Mapped[uuid.UUID]:
    # The first column of every primary key: the distribution column on Citus.
    return mapped_column(UUID(as_uuid=True), primary_key=True)


def _tenant_pk() -> PrimaryKeyConstraint:
    # Explicit, for the column order: (tenant_id, id), whatever the attribute order.
    return PrimaryKeyConstraint("tenant_id", "id")


class User(ddl.Timestamps, Base):
    """A person signed in with Google OAuth, within one tenant."""

    __tablename__ = "users"
    __table_args__ = (
        _tenant_pk(),
        UniqueConstraint("tenant_id", "google_id"),
        UniqueConstraint("tenant_id", "email"),
    )

    id: Mapped[uuid.UUID] = ddl.uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    google_id: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(255))
    subscription_tier: Mapped[SubscriptionTier] = mapped_column(
        Enum(SubscriptionTier, name="subscription_tier"), server_default="free"
    )


class Translation(ddl.Timestamps, Base):
    """One PDF to translate: where it is in S3, and how far the job has come."""

    __tablename__ = "translations"
    __table_args__ = (
        _tenant_pk(),
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
        ),
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress"),
        CheckConstraint("file_size > 0", name="file_size"),
        CheckConstraint(
            "status <> 'completed' OR (translated_path IS NOT NULL AND completed_at IS NOT NULL)",
            name="completed_has_result",
        ),
        CheckConstraint("status <> 'failed' OR error_message IS NOT NULL", name="failed_has_error"),
        Index("ix_translations_tenant_id_user_id_created_at", "tenant_id", "user_id", "created_at"),
        # The workers' queue: only the jobs still to do, oldest first.
        Index(
            "ix_translations_active",
            "created_at",
            postgresql_where="status IN ('pending', 'processing')",
        ),
    )

    id: Mapped[uuid.UUID] = ddl.uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[TranslationStatus] = mapped_column(
        Enum(TranslationStatus, name="translation_status"), server_default="pending"
    )
    source_lang: Mapped[str | None] = mapped_column(String(10))
    target_lang: Mapped[str] = mapped_column(String(10))
    original_filename: Mapped[str] = mapped_column(String(255))
    original_path: Mapped[str] = mapped_column(String(1024))
    translated_path: Mapped[str | None] = mapped_column(String(1024))
    file_size: Mapped[int] = mapped_column(Integer)
    page_count: Mapped[int | None] = mapped_column(Integer)
    progress: Mapped[int] = mapped_column(Integer, server_default="0")
    error_message: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DocumentBlock(ddl.Timestamps, Base):
    """A block of text extracted from one page, with its position and translation."""

    __tablename__ = "document_blocks"
    __table_args__ = (
        _tenant_pk(),
        UniqueConstraint("tenant_id", "translation_id", "page_num", "block_num"),
        ForeignKeyConstraint(
            ["tenant_id", "translation_id"],
            ["translations.tenant_id", "translations.id"],
            ondelete="CASCADE",
        ),
        # Counted from 0, as PDF libraries count pages and blocks.
        CheckConstraint("page_num >= 0 AND block_num >= 0", name="position"),
    )

    id: Mapped[uuid.UUID] = ddl.uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    translation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    page_num: Mapped[int] = mapped_column(Integer)
    block_num: Mapped[int] = mapped_column(Integer)
    original_text: Mapped[str] = mapped_column(Text)
    translated_text: Mapped[str | None] = mapped_column(Text)
    coordinates: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """The block's bounding box on the page, e.g. ``{"x0": 72, "y0": 90, "x1": 540, "y1": 130}``."""


class Glossary(ddl.Timestamps, Base):
    """A user's preferred translation of a term into one language."""

    __tablename__ = "glossaries"
    __table_args__ = (
        _tenant_pk(),
        UniqueConstraint("tenant_id", "user_id", "term", "target_lang"),
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
        ),
        CheckConstraint("length(btrim(term)) > 0", name="term_not_blank"),
    )

    id: Mapped[uuid.UUID] = ddl.uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    term: Mapped[str] = mapped_column(String(255))
    translation: Mapped[str] = mapped_column(String(1000))
    target_lang: Mapped[str] = mapped_column(String(10))


for model in (User, Translation, DocumentBlock, Glossary):
    ddl.updated_at_trigger(model)
    ddl.tenant_isolation(model)  # ENABLE + FORCE ROW LEVEL SECURITY, policy on app.tenant_id
    # Last: Citus distributes a table with its trigger and policy (users first:
    # create_all creates it first, and the others are co-located with it).
    ddl.distributed(model, "tenant_id", colocate_with=None if model is User else "users")
