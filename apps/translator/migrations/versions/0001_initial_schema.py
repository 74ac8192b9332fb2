"""Initial schema: users, documents, translations, their indexes and triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from plinth import ddl

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("users", "documents", "translations")


def upgrade() -> None:
    # The seed asks for uuid-ossp; ids use core gen_random_uuid(), so a server
    # without the extension (the embedded one) still works.
    op.execute(ddl.create_extension("uuid-ossp", if_available=True))
    op.execute(ddl.create_updated_at_function())
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("source_language", sa.String(length=10), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "file_size > 0 AND file_size <= 10485760", name=op.f("ck_documents_file_size")
        ),
        sa.CheckConstraint(
            "user_id IS NOT NULL OR session_id IS NOT NULL", name=op.f("ck_documents_owner")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_documents_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
    )
    op.create_index(
        "idx_documents_content_fts",
        "documents",
        [sa.literal_column("to_tsvector('english'::regconfig, content)")],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        "idx_documents_created_at",
        "documents",
        [sa.literal_column("created_at DESC")],
        unique=False,
    )
    op.create_index(
        "idx_documents_session_id",
        "documents",
        ["session_id"],
        unique=False,
        postgresql_where="session_id IS NOT NULL",
    )
    op.create_index(
        "idx_documents_user_id",
        "documents",
        ["user_id"],
        unique=False,
        postgresql_where="user_id IS NOT NULL",
    )
    op.create_table(
        "translations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("document_id", sa.UUID(), nullable=False),
        sa.Column("target_language", sa.String(length=10), nullable=False),
        sa.Column("translated_content", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("progress_percentage", sa.Integer(), server_default="0", nullable=False),
        sa.Column("translation_state", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'completed', 'failed')",
            name=op.f("ck_translations_status"),
        ),
        sa.CheckConstraint(
            "progress_percentage >= 0 AND progress_percentage <= 100",
            name=op.f("ck_translations_progress"),
        ),
        sa.CheckConstraint(
            "user_id IS NOT NULL OR session_id IS NOT NULL", name=op.f("ck_translations_owner")
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_translations_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_translations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_translations")),
        sa.UniqueConstraint(
            "document_id", "target_language", name="unique_document_target_language"
        ),
    )
    op.create_index(
        "idx_translations_content_fts",
        "translations",
        [sa.literal_column("to_tsvector('english'::regconfig, translated_content)")],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        "idx_translations_created_at",
        "translations",
        [sa.literal_column("created_at DESC")],
        unique=False,
    )
    op.create_index("idx_translations_document_id", "translations", ["document_id"], unique=False)
    op.create_index(
        "idx_translations_session_id",
        "translations",
        ["session_id"],
        unique=False,
        postgresql_where="session_id IS NOT NULL",
    )
    op.create_index("idx_translations_status", "translations", ["status"], unique=False)
    op.create_index(
        "idx_translations_user_id",
        "translations",
        ["user_id"],
        unique=False,
        postgresql_where="user_id IS NOT NULL",
    )

    for table in TABLES:
        op.execute(ddl.create_updated_at_trigger(table))


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    op.execute(ddl.drop_updated_at_function())
    op.execute(ddl.drop_extension("uuid-ossp"))
