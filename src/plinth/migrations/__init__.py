"""Alembic for Plinth apps: the env, locked upgrades, safety checks and lint.

The public part is what this module exports (``plinth.migrations`` is in
`plinth.__all__`): `run_env` for an app's ``env.py``, and the async commands
`upgrade`, `downgrade`, `current`, `drift`, `heads`, `alembic_config`.

Inside, imports go one way, each module only on those above it:

    config       the migrations folder: Alembic config, scripts, heads
    env          run_env, the body of an app's env.py
    guard        timeouts, blocker watch, one-paragraph failures
    runner       upgrade/downgrade under the advisory lock; current; drift
    snapshot     a schema as the catalogs render it
    schema_diff  do the models match the migrations (autogenerate + catalogs)
    kit          the migration kit's checks (pytest plugin: plinth.testing)
    lint         squawk on the offline SQL

May import `plinth.db` (connections, scratch databases), `plinth.settings`
and `plinth.errors`; never `plinth.web`, `plinth.testing` or `plinth.cli`.
"""

from __future__ import annotations

from plinth.migrations.config import alembic_config as alembic_config
from plinth.migrations.config import heads as heads
from plinth.migrations.env import run_env as run_env
from plinth.migrations.runner import MIGRATION_LOCK_KEY as MIGRATION_LOCK_KEY
from plinth.migrations.runner import current as current
from plinth.migrations.runner import downgrade as downgrade
from plinth.migrations.runner import drift as drift
from plinth.migrations.runner import upgrade as upgrade

__all__ = [
    "MIGRATION_LOCK_KEY",
    "alembic_config",
    "current",
    "downgrade",
    "drift",
    "heads",
    "run_env",
    "upgrade",
]
