"""Initial schema: users, batches, projects, contents, generation metadata,
the uuid-ossp extension and the batch quality trigger.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from plinth import ddl
from rndcards import triggers

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # The seed asks for uuid-ossp; ids use core gen_random_uuid(), so a server
    # without the extension (the embedded one) still works.
    op.execute(ddl.create_extension("uuid-ossp", if_available=True))
    op.execute(triggers.create_function())
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("company", sa.String(length=255), nullable=True),
        sa.Column("cognito_sub", sa.String(length=255), nullable=False),
        sa.Column(
            "preferences",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text(
                '\'{"defaultAiModel": "claude", "language": "pl", "notificationsEnabled": true}\'::jsonb'
            ),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index("idx_users_cognito_sub", "users", ["cognito_sub"], unique=True)
    op.create_index("idx_users_email", "users", ["email"], unique=True)
    op.create_table(
        "batches",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=50), server_default="uploading", nullable=False),
        sa.Column("total_projects", sa.Integer(), nullable=False),
        sa.Column("completed_projects", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "average_quality_score",
            sa.Numeric(precision=5, scale=2),
            server_default="0",
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "expires_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(now() + '90 days'::interval)"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('uploading', 'validating', 'validation_failed', 'queued', 'processing', 'completed', 'partially_completed', 'archived')",
            name=op.f("ck_batches_valid_status"),
        ),
        sa.CheckConstraint(
            "average_quality_score BETWEEN 0 AND 100",
            name=op.f("ck_batches_average_quality_score_range"),
        ),
        sa.CheckConstraint(
            "total_projects BETWEEN 1 AND 20", name=op.f("ck_batches_total_projects_range")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_batches_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index(
        "idx_batches_created_at", "batches", [sa.literal_column("created_at DESC")], unique=False
    )
    op.create_index("idx_batches_expires_at", "batches", ["expires_at"], unique=False)
    op.create_index("idx_batches_status", "batches", ["status"], unique=False)
    op.create_index("idx_batches_user_id", "batches", ["user_id"], unique=False)
    op.create_table(
        "projects",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=50), server_default="pending", nullable=False),
        sa.Column(
            "quality_score", sa.Numeric(precision=5, scale=2), server_default="0", nullable=True
        ),
        sa.Column("input_data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "ai_model", sa.String(length=50), server_default="claude-3.5-sonnet", nullable=True
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'generating', 'completed', 'failed', 'reviewed', 'exported')",
            name=op.f("ck_projects_valid_project_status"),
        ),
        sa.CheckConstraint(
            "quality_score BETWEEN 0 AND 100", name=op.f("ck_projects_quality_score_range")
        ),
        sa.CheckConstraint(
            "row_number BETWEEN 1 AND 20", name=op.f("ck_projects_row_number_range")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_projects_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("batch_id", "row_number", name=op.f("uq_projects_batch_id_row_number")),
    )
    op.create_index("idx_projects_batch_id", "projects", ["batch_id"], unique=False)
    op.create_index("idx_projects_status", "projects", ["status"], unique=False)
    op.create_table(
        "generation_metadata",
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="1", nullable=False),
        sa.Column("total_input_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_output_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "total_cost_eur", sa.Numeric(precision=10, scale=4), server_default="0", nullable=False
        ),
        sa.Column("average_latency_ms", sa.Integer(), nullable=True),
        sa.Column("model_used", sa.String(length=50), nullable=False),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=True,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "attempts BETWEEN 1 AND 3", name=op.f("ck_generation_metadata_attempts_range")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_generation_metadata_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_generation_metadata")),
    )
    op.create_table(
        "project_contents",
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("sections", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("last_edited_section", sa.String(length=50), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_contents_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_contents")),
    )
    for statement in triggers.create_triggers():
        op.execute(statement)


def downgrade() -> None:
    for statement in triggers.drop_triggers():
        op.execute(statement)
    op.drop_table("project_contents")
    op.drop_table("generation_metadata")
    op.drop_index("idx_projects_status", table_name="projects")
    op.drop_index("idx_projects_batch_id", table_name="projects")
    op.drop_table("projects")
    op.drop_index("idx_batches_user_id", table_name="batches")
    op.drop_index("idx_batches_status", table_name="batches")
    op.drop_index("idx_batches_expires_at", table_name="batches")
    op.drop_index("idx_batches_created_at", table_name="batches")
    op.drop_table("batches")
    op.drop_index("idx_users_email", table_name="users")
    op.drop_index("idx_users_cognito_sub", table_name="users")
    op.drop_table("users")
    op.execute(triggers.drop_function())
    op.execute(ddl.drop_extension("uuid-ossp"))
