"""The migration kit run by pytest on fixture apps: each broken app fails its check."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg  # noqa: F401
import pytest
import sqlalchemy.dialects.postgresql.asyncpg  # noqa: F401
from sqlalchemy import URL

# The kit runs in-process (pytester restores sys.modules after each run):
# driver modules with C extensions are imported once, here, never twice.
pytest_plugins = ["pytester"]

APPS = Path(__file__).parent / "fixtures" / "migration_apps"

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
filterwarnings = error
pythonpath = .
addopts = -p no:cacheprovider
"""

CONFTEST = """
from pathlib import Path

import pytest


@pytest.fixture
def plinth_app_dir() -> Path:
    return Path(__file__).parents[1]
"""

DATA_HOOKS = """
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def published_cards_stay(connection: AsyncConnection) -> AsyncIterator[None]:
    await connection.execute(
        text("INSERT INTO cards (id, title, status) VALUES (1, 'kept', 'published')")
    )
    yield
    row = (await connection.execute(text("SELECT title, status::text FROM cards"))).one()
    assert tuple(row) == ("kept", "published")
    await connection.execute(text("UPDATE cards SET status = 'archived'"))


async def archived_cards_vanish(connection: AsyncConnection) -> AsyncIterator[None]:
    await connection.execute(text("INSERT INTO cards (id, title) VALUES (2, 'draft')"))
    yield
    count = (await connection.execute(text("SELECT count(*) FROM cards"))).scalar_one()
    assert count == 0, f"expected the upgrade to delete every card, {count} left"


@pytest.fixture
def plinth_migration_data():
    return {HOOKS}
"""


def kit(
    pytester: pytest.Pytester, server: URL, app: str, conftest: str = CONFTEST
) -> pytest.RunResult:
    """Run the kit on a copy of fixture app `app` (on the test server only)."""
    shutil.copytree(APPS / app, pytester.path / app, ignore=shutil.ignore_patterns("__pycache__"))
    (pytester.path / app / "tests").mkdir()
    (pytester.path / app / "tests" / "conftest.py").write_text(conftest)
    pytester.makeini(INI)
    url = server.render_as_string(hide_password=False)
    return pytester.runpytest("--plinth-url", url, "-k", "not local-5432", "-rfEs")


def expect(result: pytest.RunResult, *fragments: str) -> None:
    """Each fragment appears in the output, in this order."""
    output = result.stdout.str()
    position = 0
    for fragment in fragments:
        found = output.find(fragment, position)
        assert found >= 0, f"{fragment!r} not in the output after position {position}:\n{output}"
        position = found + len(fragment)


def test_a_healthy_app_with_a_growing_enum_passes(
    pytester: pytest.Pytester, plinth_server: URL
) -> None:
    hooks = CONFTEST + DATA_HOOKS.replace("{HOOKS}", '{"0002": published_cards_stay}')
    result = kit(pytester, plinth_server, "kit_enum", hooks)
    result.assert_outcomes(passed=6)


def test_a_failing_data_hook_fails_the_data_check(
    pytester: pytest.Pytester, plinth_server: URL
) -> None:
    hooks = CONFTEST + DATA_HOOKS.replace("{HOOKS}", '{"0002": archived_cards_vanish}')
    result = kit(pytester, plinth_server, "kit_enum", hooks)
    result.assert_outcomes(passed=5, failed=1)
    expect(
        result,
        "expected the upgrade to delete every card, 1 left",
        "FAILED kit_enum/tests/conftest.py::TestMigrationKit::test_data_survives",
    )


def test_data_hooks_must_name_real_revisions(pytester: pytest.Pytester, plinth_server: URL) -> None:
    hooks = CONFTEST + DATA_HOOKS.replace("{HOOKS}", '{"9999": published_cards_stay}')
    result = kit(pytester, plinth_server, "kit_enum", hooks)
    result.assert_outcomes(passed=5, failed=1)
    expect(result, "data hooks name unknown revisions: 9999")


def test_drift_is_caught_with_the_operations_to_generate(
    pytester: pytest.Pytester, plinth_server: URL
) -> None:
    result = kit(pytester, plinth_server, "kit_drift")
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    expect(
        result,
        "the models do not match the migrations.",
        "autogenerate would emit (run `plinth db revision -m ...` to write it):",
        "op.add_column('things', sa.Column('color', sa.String(length=20), "
        "server_default='red', nullable=False))",
        "op.create_index(op.f('ix_things_name'), 'things', ['name'], unique=False)",
        "the schema the models build (create_all, with Plinth's DDL helpers) differs",
        "constraint public.things.ck_things_name_not_empty is only in models: "
        "CHECK ((length((name)::text) > 0))",
        "trigger public.things.update_things_updated_at is only in models",
        "FAILED kit_drift/tests/conftest.py::TestMigrationKit::test_models_match_migrations",
    )


def test_a_downgrade_that_cannot_run_fails_the_stairway(
    pytester: pytest.Pytester, plinth_server: URL
) -> None:
    result = kit(pytester, plinth_server, "kit_irreversible")
    result.assert_outcomes(passed=3, failed=2, skipped=1)
    expect(
        result,
        "downgrading 0002 to 0001: downgrade to '0001' failed in revision 0002 ('Labels, whose "
        "downgrade was never written.', 0002_label.py): NotImplementedError: labels cannot be "
        "removed without losing data. That revision's transaction was rolled back: the "
        "database is at 0002.",
        "FAILED kit_irreversible/tests/conftest.py::TestMigrationKit::test_stairway",
    )


def test_a_downgrade_that_leaves_objects_behind_fails_no_trace(
    pytester: pytest.Pytester, plinth_server: URL
) -> None:
    result = kit(pytester, plinth_server, "kit_trace")
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    expect(
        result,
        "revision 0002 ('Kinds and a name index; the downgrade forgets both.', 0002_kinds.py): "
        "its downgrade does not undo its upgrade:",
        "enum type public.thing_kind is only in the schema after the downgrade: 'small', 'large'",
        "index public.ix_things_name is only in the schema after the downgrade: CREATE INDEX",
        "FAILED kit_trace/tests/conftest.py::TestMigrationKit::test_downgrade_leaves_no_trace",
    )


def test_two_heads_fail_the_single_head_check(
    pytester: pytest.Pytester, plinth_server: URL
) -> None:
    result = kit(pytester, plinth_server, "kit_two_heads")
    expect(
        result,
        "expected one head revision, found 2: 0002a, 0002b",
        "FAILED kit_two_heads/tests/conftest.py::TestMigrationKit::test_single_head",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_migration_failing_halfway_names_the_revision(
    pytester: pytest.Pytester, plinth_server: URL
) -> None:
    result = kit(pytester, plinth_server, "kit_halfway")
    expect(
        result,
        "upgrading an empty database to head: upgrade to 'heads' failed in revision 0002 "
        "('Scores, filled by an UPDATE with a typo.', 0002_score.py): "
        'column "scroe" of relation "things" does not exist. That revision\'s '
        "transaction was rolled back: the database is at 0001.",
        "FAILED kit_halfway/tests/conftest.py::TestMigrationKit::test_upgrade_from_empty",
    )


def test_the_kit_can_be_switched_off(pytester: pytest.Pytester, plinth_server: URL) -> None:
    pytester.makefile(".py", test_other="def test_other(): pass")
    shutil.copytree(APPS / "kit_enum", pytester.path / "kit_enum")
    (pytester.path / "kit_enum" / "tests").mkdir()
    (pytester.path / "kit_enum" / "tests" / "conftest.py").write_text(CONFTEST)
    pytester.makeini(INI + "plinth_migration_kit = false\n")
    result = pytester.runpytest("--plinth-url", plinth_server.render_as_string(False))
    result.assert_outcomes(passed=1)
