"""pytest-alembic on a Plinth app: its two fixtures, for the app under test.

pytest-alembic (``pip install pytest-alembic``) runs its built-in checks with
whatever ``alembic_config`` and ``alembic_engine`` fixtures it finds; its own
defaults point at SQLite. Import these two into the app's ``conftest.py``::

    from plinth.testing.alembic import alembic_config, alembic_engine  # noqa: F401

and its tests run on a new, empty PostgreSQL database per test, through the
app's unchanged ``env.py``::

    from pytest_alembic.tests import (  # noqa: F401
        test_model_definitions_match_ddl,
        test_single_head_revision,
        test_up_down_consistency,
        test_upgrade,
    )

The engine is an `AsyncEngine` without a pool: pytest-alembic drives it from
synchronous tests with ``asyncio.run``, a new event loop each time, and a
pooled connection would outlive its loop.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator

import pytest
from alembic.config import Config
from sqlalchemy import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from plinth import migrations
from plinth.db.scratch import create_database, drop_database
from plinth.project import AppSpec
from plinth.testing.extra import async_fixture

__all__ = ["alembic_config", "alembic_engine"]

_numbers = itertools.count(1)


@pytest.fixture
def alembic_config(plinth_app: AppSpec) -> Config:
    """The app's migrations, configured as ``plinth db`` configures them."""
    return migrations.alembic_config(plinth_app.migrations)


@async_fixture(loop_scope="session")
async def alembic_engine(plinth_app: AppSpec, plinth_server: URL) -> AsyncIterator[AsyncEngine]:
    """An engine on a new empty database (the app's driver), dropped afterwards."""
    name = f"plinth_alembic_{plinth_app.name}_{os.getpid()}_{next(_numbers)}"[:63]
    url = await create_database(plinth_server, name)
    engine = create_async_engine(plinth_app.settings.with_driver(url), poolclass=NullPool)
    try:
        yield engine
    finally:
        await engine.dispose()
        await drop_database(plinth_server, name)
