"""PostgreSQL DDL that both ``metadata.create_all`` and migrations use.

Each helper returns one `DDL` statement, so a migration runs exactly the SQL
that ``create_all`` runs (``op.execute(ddl.create_updated_at_function())``),
and attaching it to the metadata (`updated_at_trigger`, `extensions`) makes
``create_all`` build the same schema that the migrations build. What is
attached is recorded in ``metadata.info["plinth.ddl"]`` for drift checks.

Citus: `distribute_table` and `create_reference_table` (attached by
`distributed` and `reference_table`), and `undistribute_table` (downgrades),
act only where the ``citus`` extension is installed, so one schema and one set
of migrations serve plain PostgreSQL and a Citus cluster alike.

Row-level security for tenants: `tenant_isolation` (on a model, for
``create_all``) and `enable_tenant_isolation` / `disable_tenant_isolation`
(in migrations) emit the same ``ENABLE`` / ``FORCE ROW LEVEL SECURITY`` and
the same policy on the transaction-local setting `TENANT_SETTING`, which
`plinth.Database.transaction` (``tenant=...``) sets. `grant_app_role` is the
SQL that lets a restricted runtime role use the tables.

What SQLAlchemy already does is not wrapped: partial indexes are
``Index(..., postgresql_where=...)``, enums are ``sqlalchemy.Enum``.

    core      naming convention, extensions, updated_at triggers, full text, uuid keys
    tenancy   row-level security for tenants, and the app role's grants
    citus     distributed and reference tables (only where Citus is installed)
"""

from __future__ import annotations

from plinth.ddl.citus import create_reference_table as create_reference_table
from plinth.ddl.citus import distribute_table as distribute_table
from plinth.ddl.citus import distributed as distributed
from plinth.ddl.citus import reference_table as reference_table
from plinth.ddl.citus import undistribute_table as undistribute_table
from plinth.ddl.core import NAMING_CONVENTION as NAMING_CONVENTION
from plinth.ddl.core import Timestamps as Timestamps
from plinth.ddl.core import create_extension as create_extension
from plinth.ddl.core import create_updated_at_function as create_updated_at_function
from plinth.ddl.core import create_updated_at_trigger as create_updated_at_trigger
from plinth.ddl.core import drop_extension as drop_extension
from plinth.ddl.core import drop_updated_at_function as drop_updated_at_function
from plinth.ddl.core import drop_updated_at_trigger as drop_updated_at_trigger
from plinth.ddl.core import extensions as extensions
from plinth.ddl.core import fulltext_index as fulltext_index
from plinth.ddl.core import fulltext_match as fulltext_match
from plinth.ddl.core import new_metadata as new_metadata
from plinth.ddl.core import updated_at_trigger as updated_at_trigger
from plinth.ddl.core import uuid_pk as uuid_pk
from plinth.ddl.tenancy import TENANT_POLICY as TENANT_POLICY
from plinth.ddl.tenancy import TENANT_SETTING as TENANT_SETTING
from plinth.ddl.tenancy import disable_tenant_isolation as disable_tenant_isolation
from plinth.ddl.tenancy import enable_tenant_isolation as enable_tenant_isolation
from plinth.ddl.tenancy import grant_app_role as grant_app_role
from plinth.ddl.tenancy import tenant_isolation as tenant_isolation

__all__ = [
    "NAMING_CONVENTION",
    "TENANT_POLICY",
    "TENANT_SETTING",
    "Timestamps",
    "create_extension",
    "create_reference_table",
    "create_updated_at_function",
    "create_updated_at_trigger",
    "disable_tenant_isolation",
    "distribute_table",
    "distributed",
    "drop_extension",
    "drop_updated_at_function",
    "drop_updated_at_trigger",
    "enable_tenant_isolation",
    "extensions",
    "fulltext_index",
    "fulltext_match",
    "grant_app_role",
    "new_metadata",
    "reference_table",
    "tenant_isolation",
    "updated_at_trigger",
    "uuid_pk",
]
