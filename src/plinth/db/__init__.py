"""The database: settings, engine, the `Database` and its unit of work.

    settings     DatabaseSettings: DATABASE_URL, DB_* (URL parsed and redacted once)
    engine       create_async_engine arguments per driver; connect with retries
    database     Database: lifecycle, sessions, the unit of work (transaction,
                 get_db / depends for FastAPI)
    failover     FailoverSession: a first read whose connection died runs once more
    lean_reads   a plain read in autocommit: one round trip, not three
    tenancy      bind_tenant: set_config(app.tenant_id) at each transaction's start
    security     SSL in use and the role's privileges (pg_stat_ssl, catalogs)
    replicas     read replicas: routing (RoutingSession), health and lag
    scratch      create and drop throwaway databases (tests, checks)

May import `plinth.embedded` (the default server), `plinth.lifecycle`,
`plinth.settings` and `plinth.errors`; nothing above it.
"""

from __future__ import annotations

from plinth.db.database import Database as Database
from plinth.db.settings import DatabaseSettings as DatabaseSettings

__all__ = ["Database", "DatabaseSettings"]
