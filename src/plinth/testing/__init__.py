"""Testing with Plinth: the pytest plugins and the helpers tests use.

    plugin          fixtures: plinth_server, db_connection, db_session, client,
                    plinth_each_server, plinth_scratch, s3_server, plinth_pgbouncer,
                    plinth_citus (entry point ``plinth``)
    databases       TestDatabases: each app's test database, migrated once per run
    migration_kit   the migration kit, collected beside every app's tests
                    (entry point ``plinth_migrations``)
    _kit_tests      the kit's test class
    proxy           CuttableProxy: a TCP forwarder a test can cut (outages)
    serving         served_app: `plinth serve` as a process, for end-to-end tests
    pgbouncer       PgBouncer in transaction mode in front of a server
    replica         start_standby: a streaming standby made with pg_basebackup
    citus           start_citus, CitusTestDatabases: a coordinator and workers

Helpers for tests are exported here. The top layer with `plinth.cli`: it may
import everything else in Plinth, and nothing in Plinth imports it.
"""

from __future__ import annotations

from plinth.db.scratch import create_database as create_database
from plinth.db.scratch import drop_database as drop_database
from plinth.testing.databases import TestDatabases as TestDatabases
from plinth.testing.plugin import local_server_url as local_server_url
from plinth.testing.proxy import CuttableProxy as CuttableProxy
from plinth.testing.serving import ServedApp as ServedApp
from plinth.testing.serving import served_app as served_app

__all__ = [
    "CuttableProxy",
    "ServedApp",
    "TestDatabases",
    "create_database",
    "drop_database",
    "local_server_url",
    "served_app",
]
