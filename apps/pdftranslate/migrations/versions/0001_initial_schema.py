"""Initial schema: users, translations, document blocks, glossaries, their enum types.

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

TABLES = ("users", "glossaries", "translations", "document_blocks")
ENUMS = (
    postgresql.ENUM("free", "pro", "enterprise", name="subscription_tier"),
    postgresql.ENUM("pending", "processing", "completed", "failed", name="translation_status"),
)


def upgrade() -> None:
    # Types first: the columns below use them with create_type=False, so
    # create_table does not try to create them a second time.
    for enum in ENUMS:
        enum.create(op.get_bind(), checkfirst=False)
    op.execute(ddl.create_updated_at_function())
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("google_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column(
            "subscription_tier",
            postgresql.ENUM(
                "free", "pro", "enterprise", name="subscription_tier", create_type=False
            ),
            server_default="free",
            nullable=False,
        ),
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
        sa.UniqueConstraint("tenant_id", "email", name=op.f("uq_users_tenant_id_email")),
        sa.UniqueConstraint("tenant_id", "google_id", name=op.f("uq_users_tenant_id_google_id")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_users_tenant_id_id")),
    )
    op.create_table(
        "glossaries",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("term", sa.String(length=255), nullable=False),
        sa.Column("translation", sa.String(length=1000), nullable=False),
        sa.Column("target_lang", sa.String(length=10), nullable=False),
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
        sa.CheckConstraint("length(btrim(term)) > 0", name=op.f("ck_glossaries_term_not_blank")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_glossaries_tenant_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_glossaries")),
        sa.UniqueConstraint(
            "user_id", "term", "target_lang", name=op.f("uq_glossaries_user_id_term_target_lang")
        ),
    )
    op.create_index(
        "ix_glossaries_tenant_id_user_id", "glossaries", ["tenant_id", "user_id"], unique=False
    )
    op.create_table(
        "translations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column(
            "status",
            postgresql.ENUM(
                "pending",
                "processing",
                "completed",
                "failed",
                name="translation_status",
                create_type=False,
            ),
            server_default="pending",
            nullable=False,
        ),
        sa.Column("source_lang", sa.String(length=10), nullable=True),
        sa.Column("target_lang", sa.String(length=10), nullable=False),
        sa.Column("original_filename", sa.String(length=255), nullable=False),
        sa.Column("original_path", sa.String(length=1024), nullable=False),
        sa.Column("translated_path", sa.String(length=1024), nullable=True),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("progress", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
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
            "status <> 'completed' OR (translated_path IS NOT NULL AND completed_at IS NOT NULL)",
            name=op.f("ck_translations_completed_has_result"),
        ),
        sa.CheckConstraint(
            "status <> 'failed' OR error_message IS NOT NULL",
            name=op.f("ck_translations_failed_has_error"),
        ),
        sa.CheckConstraint("file_size > 0", name=op.f("ck_translations_file_size")),
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 100", name=op.f("ck_translations_progress")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_translations_tenant_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_translations")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_translations_tenant_id_id")),
    )
    op.create_index(
        "ix_translations_active",
        "translations",
        ["created_at"],
        unique=False,
        postgresql_where="status IN ('pending', 'processing')",
    )
    op.create_index(
        "ix_translations_tenant_id_user_id_created_at",
        "translations",
        ["tenant_id", "user_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "document_blocks",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("translation_id", sa.UUID(), nullable=False),
        sa.Column("page_num", sa.Integer(), nullable=False),
        sa.Column("block_num", sa.Integer(), nullable=False),
        sa.Column("original_text", sa.Text(), nullable=False),
        sa.Column("translated_text", sa.Text(), nullable=True),
        sa.Column("coordinates", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
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
            "page_num >= 0 AND block_num >= 0", name=op.f("ck_document_blocks_position")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "translation_id"],
            ["translations.tenant_id", "translations.id"],
            name=op.f("fk_document_blocks_tenant_id_translations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_blocks")),
        sa.UniqueConstraint(
            "translation_id",
            "page_num",
            "block_num",
            name=op.f("uq_document_blocks_translation_id_page_num_block_num"),
        ),
    )
    op.create_index(
        op.f("ix_document_blocks_tenant_id"), "document_blocks", ["tenant_id"], unique=False
    )

    for table in TABLES:
        op.execute(ddl.create_updated_at_trigger(table))


def downgrade() -> None:
    # Dropping a table drops its indexes, constraints and triggers.
    for table in reversed(TABLES):
        op.drop_table(table)
    op.execute(ddl.drop_updated_at_function())
    # Types last, once no column uses them; without this a second upgrade
    # would fail with "type ... already exists".
    for enum in reversed(ENUMS):
        enum.drop(op.get_bind(), checkfirst=False)
