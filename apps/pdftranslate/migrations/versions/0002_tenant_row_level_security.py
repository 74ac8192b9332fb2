"""Row-level security: each table's rows are visible and writable only to their tenant.

ENABLE and FORCE ROW LEVEL SECURITY, and the policy ``tenant_isolation``
(USING and WITH CHECK ``tenant_id = app.tenant_id``, the transaction-local
setting `plinth.Database.transaction(tenant=...)` sets) on every table: the
same statements `plinth.ddl.tenant_isolation` attaches to the models.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from plinth import ddl

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("users", "glossaries", "translations", "document_blocks")


def upgrade() -> None:
    for table in TABLES:
        for statement in ddl.enable_tenant_isolation(table):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        for statement in ddl.disable_tenant_isolation(table):
            op.execute(statement)
