"""The pytest plugin, run on a throwaway test suite in a subprocess (pytester)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import URL

pytest_plugins = ["pytester"]

TRANSLATOR = Path(__file__).parents[1] / "apps" / "translator"

INI = f"""
[pytest]
pythonpath = {TRANSLATOR.parent}
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
"""

CONFTEST = f"""
from pathlib import Path
import pytest

@pytest.fixture
def plinth_app_dir() -> Path:
    return Path({str(TRANSLATOR)!r})
"""

TESTS = """
from sqlalchemy import text
from translator.models import User

async def test_commit_inside_a_test(db_session):
    db_session.add(User(email="a@example.com"))
    await db_session.commit()
    assert (await db_session.execute(text("SELECT count(*) FROM users"))).scalar_one() == 1

async def test_the_next_test_sees_a_clean_database(db_session):
    assert (await db_session.execute(text("SELECT count(*) FROM users"))).scalar_one() == 0

async def test_the_app_commits_into_the_test_transaction(client, db_session):
    response = await client.post("/documents", json={
        "content": "x", "file_name": "x", "file_size": 1, "source_language": "en",
        "session_id": "s"})
    assert response.status_code == 201
    assert (await db_session.execute(text("SELECT count(*) FROM documents"))).scalar_one() == 1

async def test_and_that_is_rolled_back_too(db_session):
    assert (await db_session.execute(text("SELECT count(*) FROM documents"))).scalar_one() == 0
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=TESTS)
    return pytester


def test_isolation_between_tests(suite: pytest.Pytester, plinth_server: URL) -> None:
    result = suite.runpytest_subprocess(
        "--plinth-url",
        plinth_server.render_as_string(hide_password=False),
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["plinth: server postgresql+asyncpg://*, one migrated database*"])


def test_missing_app_dir_fixture_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_x="async def test_x(db_session):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*define a `plinth_app_dir` fixture*"])
    assert result.ret != 0


APPS = Path(__file__).parent / "fixtures" / "migration_apps"


def _kit_project(pytester: pytest.Pytester, ini: str) -> None:
    shutil.copytree(
        APPS / "kit_enum", pytester.path / "kit_enum", ignore=shutil.ignore_patterns("__pycache__")
    )
    (pytester.path / "kit_enum" / "tests").mkdir()
    (pytester.path / "kit_enum" / "tests" / "conftest.py").write_text(
        "from pathlib import Path\nimport pytest\n\n@pytest.fixture\n"
        "def plinth_app_dir() -> Path:\n    return Path(__file__).parents[1]\n"
    )
    pytester.makeini(ini)


def test_the_kit_runs_in_strict_asyncio_mode(pytester: pytest.Pytester, plinth_server: URL) -> None:
    """A project in pytest-asyncio's default (strict) mode still gets a working kit."""
    _kit_project(
        pytester,
        "[pytest]\npythonpath = .\nfilterwarnings = error\n"
        "asyncio_default_fixture_loop_scope = session\n",
    )
    result = pytester.runpytest_subprocess(
        "--plinth-url",
        plinth_server.render_as_string(hide_password=False),
        "-p",
        "no:cacheprovider",
        "-k",
        "not local-5432",
    )
    result.assert_outcomes(passed=5, skipped=1)


def test_without_pytest_asyncio_the_run_goes_on_and_says_what_to_install(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kit_project(pytester, "[pytest]\npythonpath = .\n")
    # pytest-asyncio made unimportable for this run; its own plugin is switched off.
    shadow = pytester.path / "shadow" / "pytest_asyncio"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pytest_asyncio'\", name='pytest_asyncio')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    pytester.makepyfile(
        test_plain="def test_plain():\n    assert 1 + 1 == 2\n\n"
        "def test_asks_for_a_plinth_fixture(db_session):\n    pass\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:asyncio", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert (
        "plinth: fixtures off: pytest-asyncio is not installed (pip install 'plinth-pg[testing]')"
        in out
    )
    assert (
        "Plinth's fixture 'db_session' needs pytest-asyncio: pip install 'plinth-pg[testing]'"
        in out
    )
    # The plain test ran, the kit (async) was not collected, the fixture's user failed.
    result.assert_outcomes(passed=1, errors=1)
