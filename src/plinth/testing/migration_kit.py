"""The migration kit, run for every app without a line of code in the app.

A pytest plugin (entry point ``plinth_migrations``), apart from the plugin of
`plinth.testing.plugin` so that it can be switched off alone. Wherever pytest finds
``<app>/tests/conftest.py`` and ``<app>`` is a Plinth app (a package with
``main.py`` and ``migrations/env.py``), it adds the kit's tests next to it::

    apps/translator/tests/conftest.py::TestMigrationKit::test_single_head
    apps/translator/tests/conftest.py::TestMigrationKit::test_upgrade_from_empty[test-server]
    apps/translator/tests/conftest.py::TestMigrationKit::test_models_match_migrations[...]
    apps/translator/tests/conftest.py::TestMigrationKit::test_stairway[...]
    apps/translator/tests/conftest.py::TestMigrationKit::test_downgrade_leaves_no_trace[...]
    apps/translator/tests/conftest.py::TestMigrationKit::test_data_survives[...]

Each runs on its own scratch database, on the test server and again on the
local PostgreSQL on 127.0.0.1:5432 when one answers (``[local-5432]``). The
app under test is the conftest's ``plinth_app_dir``. Data checks come from
the app's ``plinth_migration_data`` fixture: a mapping from a revision to an
async generator that seeds rows, yields, then asserts on them::

    async def names_are_split(connection: AsyncConnection) -> AsyncIterator[None]:
        await connection.execute(text("INSERT INTO users (name) VALUES ('Ada Lovelace')"))
        yield  # revision 0002 runs here
        row = (await connection.execute(text("SELECT first, last FROM users"))).one()
        assert tuple(row) == ("Ada", "Lovelace")

    @pytest.fixture
    def plinth_migration_data() -> dict[str, DataHook]:
        return {"0002": names_are_split}

Switch the kit off with ``plinth_migration_kit = false`` in the pytest
configuration or ``-p no:plinth_migrations``, or deselect it with
``-m "not plinth_migrations"``. For one app: ``pytest apps/NAME -m plinth_migrations``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from plinth.migrations.kit import DataHook
from plinth.testing.extra import missing_testing_extra

__all__ = ["MARKER", "MigrationKit", "is_plinth_app", "plinth_migration_data"]

MARKER = "plinth_migrations"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "plinth_migration_kit",
        type="bool",
        default=True,
        help="Run Plinth's migration kit next to every app's tests/conftest.py (default: true).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: Plinth's migration kit (deselect with -m 'not {MARKER}')"
    )


def is_plinth_app(path: Path) -> bool:
    """Whether `path` follows the app convention the kit relies on."""
    return all((path / part).is_file() for part in ("__init__.py", "main.py", "migrations/env.py"))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> MigrationKit | None:
    if file_path.name != "conftest.py" or file_path.parent.name != "tests":
        return None
    if not is_plinth_app(file_path.parent.parent):
        return None
    if not parent.config.getini("plinth_migration_kit"):
        return None
    if missing_testing_extra() is not None:
        return None  # async tests; the plinth plugin's header says what to install
    kit: MigrationKit = MigrationKit.from_parent(parent, path=file_path)
    kit.add_marker(MARKER)
    return kit


class MigrationKit(pytest.Module):
    """The kit's tests, collected beside an app's conftest.py (and its fixtures)."""

    def _getobj(self) -> ModuleType:
        return importlib.import_module("plinth.testing._kit_tests")


@pytest.fixture
def plinth_migration_data() -> dict[str, DataHook]:
    """Data hooks by revision; override in the app's conftest.py."""
    return {}
