"""Keys that include the tenant, and every table distributed by it where Citus is installed.

Every primary key becomes ``(tenant_id, id)``; the unique constraints of
glossaries and document blocks gain ``tenant_id``; the ``UNIQUE (tenant_id,
id)`` the foreign keys used to reference is gone, as they now reference the
primary keys; two indexes the new keys make redundant are dropped. Then, only
where the ``citus`` extension exists (a no-op on plain PostgreSQL), ``users``
is distributed by ``tenant_id`` and the other tables co-located with it.

The order serves Citus: the foreign keys are dropped first and created again
last, after the distribution, because Citus refuses to distribute a table
that a local table references, and the constraints are changed while the
tables are still local. The downgrade undoes it in reverse: foreign keys off,
tables back to local, old keys, old foreign keys.

A maintenance-window migration, acknowledged as such for ``plinth db lint``:
re-keying a table rebuilds its indexes under lock, and on Citus
``create_distributed_table`` copies each table to its shards while blocking
writes to it anyway; the lock-free alternatives (``CONCURRENTLY``) cannot run
in the revision's transaction, which is what makes a failed run leave nothing
half-done.

# plinth: allow ban-drop-constraint, adding-serial-primary-key-field (re-keying, see above)
# plinth: allow constraint-missing-not-valid, adding-foreign-key-constraint (see above)
# plinth: allow disallowed-unique-constraint, require-concurrent-index-deletion (see above)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09
"""

from __future__ import annotations

from alembic import op

from plinth import ddl

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("users", "glossaries", "translations", "document_blocks")
"""In distribution order: ``users`` first, the tables co-located with it after."""

# (table, constrained columns, referenced table): the same names before and after.
FOREIGN_KEYS = (
    ("glossaries", "user_id", "users"),
    ("translations", "user_id", "users"),
    ("document_blocks", "translation_id", "translations"),
)
# (table, unique columns without the tenant).
UNIQUES = (
    ("glossaries", ("user_id", "term", "target_lang")),
    ("document_blocks", ("translation_id", "page_num", "block_num")),
)


def _drop_foreign_keys() -> None:
    for table, _, referred in FOREIGN_KEYS:
        op.drop_constraint(f"fk_{table}_tenant_id_{referred}", table, type_="foreignkey")


def _create_foreign_keys() -> None:
    # (tenant_id, id) of the referenced table: its primary key after 0003, a
    # unique constraint before; PostgreSQL finds either.
    for table, column, referred in FOREIGN_KEYS:
        op.create_foreign_key(
            f"fk_{table}_tenant_id_{referred}",
            table,
            referred,
            ["tenant_id", column],
            ["tenant_id", "id"],
            ondelete="CASCADE",
        )


def _unique_name(table: str, columns: tuple[str, ...]) -> str:
    return f"uq_{table}_{'_'.join(columns)}"


def upgrade() -> None:
    _drop_foreign_keys()
    for table in TABLES:
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, ["tenant_id", "id"])
    for table in ("users", "translations"):
        op.drop_constraint(f"uq_{table}_tenant_id_id", table, type_="unique")
    for table, columns in UNIQUES:
        op.drop_constraint(_unique_name(table, columns), table, type_="unique")
        tenant_columns = ("tenant_id", *columns)
        op.create_unique_constraint(_unique_name(table, tenant_columns), table, tenant_columns)
    # Leading columns of the new keys: (tenant_id, id) and (tenant_id, user_id, ...).
    op.drop_index("ix_document_blocks_tenant_id", table_name="document_blocks")
    op.drop_index("ix_glossaries_tenant_id_user_id", table_name="glossaries")

    op.execute(ddl.distribute_table("users", "tenant_id"))
    for table in TABLES[1:]:
        op.execute(ddl.distribute_table(table, "tenant_id", colocate_with="users"))
    _create_foreign_keys()


def downgrade() -> None:
    _drop_foreign_keys()
    for table in reversed(TABLES):
        op.execute(ddl.undistribute_table(table))

    op.create_index("ix_glossaries_tenant_id_user_id", "glossaries", ["tenant_id", "user_id"])
    op.create_index("ix_document_blocks_tenant_id", "document_blocks", ["tenant_id"])
    for table, columns in UNIQUES:
        op.drop_constraint(_unique_name(table, ("tenant_id", *columns)), table, type_="unique")
        op.create_unique_constraint(_unique_name(table, columns), table, columns)
    for table in ("users", "translations"):
        op.create_unique_constraint(f"uq_{table}_tenant_id_id", table, ["tenant_id", "id"])
    for table in TABLES:
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, ["id"])
    _create_foreign_keys()
