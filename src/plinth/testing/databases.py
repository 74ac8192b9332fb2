"""The per-app test databases of a run: created and migrated once, dropped at the end.

The plugin's ``plinth_databases`` fixture holds one `TestDatabases`;
`plinth.testing.citus.CitusTestDatabases` is the same on a Citus cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from plinth import migrations
from plinth.db.scratch import create_database, drop_database, small_engine

if TYPE_CHECKING:
    from plinth.project import AppSpec

__all__ = ["TestDatabases"]


@dataclass
class TestDatabases:
    """One migrated database per app, created on first use, dropped at the end."""

    __test__ = False  # not a test class, whatever its name

    server: URL
    """The test server's maintenance database (`plinth_server`)."""
    engines: dict[Path, AsyncEngine] = field(default_factory=dict)
    """An engine on each app's test database, by app directory."""

    async def engine_for(self, app: AppSpec) -> AsyncEngine:
        """The engine on `app`'s test database, created and migrated to head on first use."""
        if app.path not in self.engines:
            name = f"plinth_test_{app.name}_{os.getpid()}"
            url = await create_database(self.server, name)
            # The app's own driver (`DB_DRIVER`), so its tests run on what it runs on.
            engine = small_engine(app.database.settings.with_driver(url))
            async with engine.connect() as connection:
                await migrations.upgrade(connection, app.migrations)
            self.engines[app.path] = engine
        return self.engines[app.path]

    async def close(self) -> None:
        """Dispose of every engine and drop its database."""
        for engine in self.engines.values():
            name = engine.url.database
            await engine.dispose()
            assert name is not None
            await drop_database(self.server, name)
        self.engines.clear()
