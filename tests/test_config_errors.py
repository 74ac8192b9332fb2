"""Configuration mistakes: one line naming the variable, no traceback, no password.

Each mistake is tried through the settings API and through the ``plinth``
command, which reads the same settings when it imports the app.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field
from sqlalchemy import URL, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from plinth import ConfigurationError, Database, DatabaseSettings
from plinth.cli import cli
from plinth.db.engine import engine_arguments

TRANSLATOR = str(Path(__file__).parents[1] / "apps" / "translator")
SECRET = "s3cr3t-pa55"
URL_WITH_SECRET = f"postgresql://app:{SECRET}@127.0.0.1:5432/app"

# (environment, the variable the line names, what else it says)
MISTAKES = [
    pytest.param(
        {"DATABASE_URL": f"{URL_WITH_SECRET}?foo=bar"},
        "DATABASE_URL",
        "has query option 'foo', which asyncpg does not take; accepted: application_name,",
        id="unknown-query-option",
    ),
    pytest.param(
        {"DATABASE_URL": f"{URL_WITH_SECRET}?connect_timeout=soon"},
        "DATABASE_URL",
        "has query option connect_timeout that is not a number",
        id="query-option-not-a-number",
    ),
    pytest.param(
        {"DATABASE_URL": f"{URL_WITH_SECRET}?options=search_path%3Dx"},
        "DATABASE_URL",
        "options must be -c name=value settings",
        id="options-not-c",
    ),
    pytest.param(
        {"DATABASE_URL": f"postgresql://app:{SECRET}@127.0.0.1:54x2/app"},
        "DATABASE_URL",
        "has a port that is not a number",
        id="port-not-a-number",
    ),
    pytest.param(
        {"DATABASE_URL": f"postgresql://app:{SECRET}@127.0.0.1:99999/app"},
        "DATABASE_URL",
        "has port 99999; a port is 1-65535",
        id="port-out-of-range",
    ),
    pytest.param(
        {"DATABASE_URL": URL_WITH_SECRET, "DB_ENGINE_OPTIONS": '{"echo": tru'},
        "DB_ENGINE_OPTIONS",
        "is not JSON (",
        id="engine-options-not-json",
    ),
    pytest.param(
        {"DATABASE_URL": URL_WITH_SECRET, "DB_ENGINE_OPTIONS": '["echo"]'},
        "DB_ENGINE_OPTIONS",
        "should be a valid dictionary",
        id="engine-options-not-an-object",
    ),
    pytest.param(
        {"DATABASE_URL": URL_WITH_SECRET, "DB_ENGINE_OPTIONS": '{"pool_sise": 3}'},
        "DB_ENGINE_OPTIONS",
        "is not accepted by create_async_engine: Invalid argument(s) 'pool_sise'",
        id="engine-options-unknown-argument",
    ),
    pytest.param(
        {
            "DATABASE_URL": URL_WITH_SECRET,
            "DB_ENGINE_OPTIONS": f'{{"connect_args": {{"passwrd": "{SECRET}"}}}}',
        },
        "DB_ENGINE_OPTIONS",
        "has connect_args 'passwrd', which asyncpg's connect does not take; accepted:",
        id="engine-options-unknown-connect-arg",
    ),
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "APP_ENV", "DB_ENGINE_OPTIONS", "DB_DRIVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DB_CONNECT_RETRIES", "0")
    monkeypatch.chdir("/")  # no stray .env


def _assert_one_clean_line(message: str, variable: str, says: str) -> None:
    assert message.count("\n") == 0, message
    assert message.startswith(variable), message
    assert says in message
    assert SECRET not in message
    assert "Traceback" not in message


@pytest.mark.parametrize(("environment", "variable", "says"), MISTAKES)
def test_settings_api(
    environment: dict[str, str], variable: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        DatabaseSettings.load()
    _assert_one_clean_line(str(caught.value), variable, says)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(("environment", "variable", "says"), MISTAKES)
def test_cli(environment: dict[str, str], variable: str, says: str) -> None:
    result = CliRunner().invoke(cli, ["db", "current", "--app", TRANSLATOR], env=environment)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    _assert_one_clean_line(result.stderr.removeprefix("error: ").rstrip("\n"), variable, says)


def test_engine_arguments_refuse_what_the_settings_did_not_check() -> None:
    # A URL given to engine_arguments directly (the embedded server's, a scratch one).
    settings = DatabaseSettings.load()
    with pytest.raises(ConfigurationError, match=r"^DATABASE_URL has query option 'foo'"):
        engine_arguments(settings, make_url(f"postgresql+asyncpg://u:{SECRET}@h/db?foo=1"))


def test_asyncpg_gets_libpq_query_options_as_its_arguments() -> None:
    settings = DatabaseSettings.load(
        database_url="postgresql://u@h/db?application_name=worker&connect_timeout=3"
        "&options=-c%20search_path%3Dapp,public%20-cwork_mem%3D8MB"
        "&statement_cache_size=0&command_timeout=60&prepared_statement_cache_size=0",
        statement_timeout=1500,
    )
    assert settings.database_url is not None
    url, options = engine_arguments(settings, settings.database_url)
    assert dict(url.query) == {"prepared_statement_cache_size": "0"}  # SQLAlchemy's own
    connect_args = options["connect_args"]
    assert connect_args["server_settings"] == {
        "application_name": "worker",
        "search_path": "app,public",
        "work_mem": "8MB",
        "statement_timeout": "1500",
    }
    assert (connect_args["timeout"], connect_args["command_timeout"]) == (3.0, 60.0)
    assert connect_args["statement_cache_size"] == 0


def test_psycopg_leaves_the_query_to_libpq() -> None:
    settings = DatabaseSettings.load(database_url="postgresql+psycopg://u@h/db?keepalives=1")
    assert settings.database_url is not None
    url, _ = engine_arguments(settings, settings.database_url)
    assert dict(url.query) == {"keepalives": "1"}


async def test_query_options_reach_the_server(plinth_server: URL) -> None:
    url = plinth_server.set(
        query={"application_name": "plinth-q", "options": "-c search_path=pg_catalog"}
    )
    async with (
        Database(DatabaseSettings.load(database_url=url)) as database,
        database.engine.connect() as connection,
    ):
        found = await connection.execute(
            text("select current_setting('application_name'), current_setting('search_path')")
        )
        assert tuple(found.one()) == ("plinth-q", "pg_catalog")


def test_a_complex_field_that_is_not_json_names_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Settings(DatabaseSettings):
        tags: list[str] = Field(default_factory=list)

    monkeypatch.setenv("DB_TAGS", "[oops")
    with pytest.raises(ConfigurationError, match=r"^DB_TAGS is not valid JSON$"):
        Settings.load()
