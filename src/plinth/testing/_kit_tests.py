"""The migration kit's tests; `plinth.testing.migration_kit` collects them per app."""

from __future__ import annotations

from collections.abc import Awaitable, Iterator, Mapping
from contextlib import contextmanager

import pytest
from sqlalchemy import URL

from plinth.migrations import kit
from plinth.project import AppSpec

__all__ = ["TestMigrationKit"]


@pytest.fixture
def kit_server(plinth_each_server: URL) -> URL:
    return plinth_each_server


@contextmanager
def _reported() -> Iterator[None]:
    # The message says what is wrong and how to fix it; the kit's stack would not help.
    try:
        yield
    except kit.KitFailure as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None


async def _check(work: Awaitable[None]) -> None:
    with _reported():
        await work


# Marked, so that the kit runs whatever the project's asyncio_mode (strict or auto).
on_the_session_loop = pytest.mark.asyncio(loop_scope="session")


class TestMigrationKit:
    """Plinth's checks of the app's migrations (see `plinth.migrations.kit`)."""

    def test_single_head(self, plinth_app: AppSpec) -> None:
        with _reported():
            kit.single_head(plinth_app.migrations)

    @on_the_session_loop
    async def test_upgrade_from_empty(self, plinth_app: AppSpec, kit_server: URL) -> None:
        await _check(kit.upgrade_from_empty(kit_server, plinth_app.migrations))

    @on_the_session_loop
    async def test_models_match_migrations(self, plinth_app: AppSpec, kit_server: URL) -> None:
        await _check(kit.models_match(kit_server, plinth_app.migrations, plinth_app.metadata))

    @on_the_session_loop
    async def test_stairway(self, plinth_app: AppSpec, kit_server: URL) -> None:
        await _check(kit.stairway(kit_server, plinth_app.migrations))

    @on_the_session_loop
    async def test_downgrade_leaves_no_trace(self, plinth_app: AppSpec, kit_server: URL) -> None:
        await _check(kit.no_trace(kit_server, plinth_app.migrations))

    @on_the_session_loop
    async def test_data_survives(
        self,
        plinth_app: AppSpec,
        kit_server: URL,
        plinth_migration_data: Mapping[str, kit.DataHook],
    ) -> None:
        if not plinth_migration_data:
            pytest.skip("no data hooks: define a `plinth_migration_data` fixture in conftest.py")
        await _check(kit.data_survives(kit_server, plinth_app.migrations, plinth_migration_data))
