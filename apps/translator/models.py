"""The translator's schema: users, documents and their translations (seeds 000/001)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from plinth import ddl

MAX_FILE_SIZE = 10_485_760
STATUSES = ("pending", "in_progress", "completed", "failed")


class Base(DeclarativeBase):
    metadata = ddl.new_metadata()


ddl.extensions(Base.metadata, if_available=("uuid-ossp",))


class User(ddl.Timestamps, Base):
    """Created for post-MVP authentication; documents may belong to a user."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = ddl.uuid_pk()
    email: Mapped[str] = mapped_column(String(255), unique=True)


class Document(ddl.Timestamps, Base):
    __tablename__ = "documents"
    __table_args__ = (
        CheckConstraint(f"file_size > 0 AND file_size <= {MAX_FILE_SIZE}", name="file_size"),
        CheckConstraint("user_id IS NOT NULL OR session_id IS NOT NULL", name="owner"),
        Index("idx_documents_user_id", "user_id", postgresql_where="user_id IS NOT NULL"),
        Index("idx_documents_session_id", "session_id", postgresql_where="session_id IS NOT NULL"),
    )

    id: Mapped[uuid.UUID] = ddl.uuid_pk()
    content: Mapped[str] = mapped_column(Text)
    file_name: Mapped[str] = mapped_column(String(255))
    file_size: Mapped[int] = mapped_column(Integer)
    source_language: Mapped[str] = mapped_column(String(10))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    session_id: Mapped[str | None] = mapped_column(String(255))

    translations: Mapped[list[Translation]] = relationship(
        back_populates="document", lazy="raise", passive_deletes=True
    )


class Translation(ddl.Timestamps, Base):
    __tablename__ = "translations"
    __table_args__ = (
        UniqueConstraint("document_id", "target_language", name="unique_document_target_language"),
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),
        CheckConstraint("progress_percentage >= 0 AND progress_percentage <= 100", name="progress"),
        CheckConstraint("user_id IS NOT NULL OR session_id IS NOT NULL", name="owner"),
        Index("idx_translations_document_id", "document_id"),
        Index("idx_translations_user_id", "user_id", postgresql_where="user_id IS NOT NULL"),
        Index(
            "idx_translations_session_id", "session_id", postgresql_where="session_id IS NOT NULL"
        ),
        Index("idx_translations_status", "status"),
    )

    id: Mapped[uuid.UUID] = ddl.uuid_pk()
    document_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("documents.id", ondelete="CASCADE")
    )
    target_language: Mapped[str] = mapped_column(String(10))
    translated_content: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), server_default="pending")
    progress_percentage: Mapped[int] = mapped_column(Integer, server_default="0")
    translation_state: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    session_id: Mapped[str | None] = mapped_column(String(255))

    document: Mapped[Document] = relationship(back_populates="translations", lazy="raise")


# Expression indexes name their columns, so they are declared after the classes.
Index("idx_documents_created_at", Document.created_at.desc())
Index("idx_translations_created_at", Translation.created_at.desc())
ddl.fulltext_index("idx_documents_content_fts", Document.content)
ddl.fulltext_index("idx_translations_content_fts", Translation.translated_content)
for model in (User, Document, Translation):
    ddl.updated_at_trigger(model)
