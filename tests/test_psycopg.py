"""psycopg 3 (``postgresql+psycopg://``) through every part of Plinth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import URL, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from plinth import (
    ConfigurationError,
    Conflict,
    ConstraintViolation,
    Database,
    DatabaseSettings,
    DatabaseUnavailableError,
    DataError,
    migrations,
    readiness,
)
from plinth.db.engine import engine_arguments
from plinth.driver_errors import translate_dbapi_error

pytest_plugins = ["pytester"]

SECRET = "s3cr3t-pa55"
TRANSLATOR = Path(__file__).parents[1] / "apps" / "translator"


def psycopg(url: URL) -> URL:
    return url.set(drivername="postgresql+psycopg")


def database_at(url: URL | str, **settings: object) -> Database:
    return Database(DatabaseSettings.load(database_url=url, **settings))


def test_engine_arguments_speak_libpq() -> None:
    settings = DatabaseSettings.load(
        database_url="postgresql+psycopg://app@db/app?sslmode=verify-full&sslrootcert=/ca.pem",
        application_name="mailagent",
        connect_timeout=2.6,
        statement_timeout=5000,
    )
    assert settings.database_url is not None
    url, options = engine_arguments(settings, settings.database_url)
    assert url.drivername == "postgresql+psycopg"
    # libpq reads the SSL parameters itself: they stay in the URL, untranslated.
    assert dict(url.query) == {"sslmode": "verify-full", "sslrootcert": "/ca.pem"}
    assert options["connect_args"] == {
        "application_name": "mailagent",
        "connect_timeout": 3,
        "options": "-c statement_timeout=5000",
    }


async def test_settings_reach_the_server(scratch_url: URL) -> None:
    database = database_at(
        psycopg(scratch_url), application_name="plinth-psycopg", statement_timeout=1234
    )
    async with database, database.transaction() as session:
        connection = await session.connection()
        assert connection.dialect.driver == "psycopg"
        row = await session.execute(
            text(
                "SELECT application_name, current_setting('statement_timeout') "
                "FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            )
        )
        assert row.one() == ("plinth-psycopg", "1234ms")
        raw = await connection.get_raw_connection()
        assert raw.driver_connection is not None
        assert raw.driver_connection.info.get_parameters()["connect_timeout"] == "10"


async def test_statement_timeout_cancels_a_slow_statement(scratch_url: URL) -> None:
    database = database_at(psycopg(scratch_url), statement_timeout=50)
    async with database:
        with pytest.raises(Exception, match="canceling statement due to statement timeout"):
            async with database.transaction() as session:
                await session.execute(text("SELECT pg_sleep(5)"))


async def test_sslmode_passes_through_to_libpq(scratch_url: URL) -> None:
    plain = database_at(psycopg(scratch_url).update_query_dict({"sslmode": "disable"}))
    async with plain, plain.transaction() as session:
        server_ssl = (await session.execute(text("SHOW ssl"))).scalar_one()
        in_use = await session.execute(
            text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        )
        assert in_use.scalar_one() is False

    # `ssl=true` (asyncpg's spelling) becomes sslmode=require for libpq too.
    as_text = psycopg(scratch_url).render_as_string(hide_password=False)
    required = database_at(f"{as_text}?ssl=true", connect_retries=0)
    if server_ssl == "on":
        async with required, required.transaction() as session:
            in_use = await session.execute(
                text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            )
            assert in_use.scalar_one() is True
    else:
        with pytest.raises(DatabaseUnavailableError, match="server does not support SSL"):
            await required.start()


def test_db_driver_switches_every_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_DRIVER", "psycopg")
    settings = DatabaseSettings.load(database_url="postgresql://app@db/app")
    assert settings.database_url is not None
    url, options = engine_arguments(settings, settings.database_url)
    assert url.drivername == "postgresql+psycopg"
    assert "server_settings" not in options["connect_args"]  # not asyncpg's arguments
    # The embedded server's URL (asyncpg) is switched the same way.
    embedded = settings.with_driver(settings.database_url.set(drivername="postgresql+asyncpg"))
    assert embedded.drivername == "postgresql+psycopg"


def test_db_driver_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_DRIVER", "psycopg2")
    with pytest.raises(ConfigurationError, match=r"^DB_DRIVER .*'asyncpg' or 'psycopg'"):
        DatabaseSettings.load()


async def test_refused_connection_is_retried_and_reported_without_password() -> None:
    database = database_at(
        f"postgresql+psycopg://app:{SECRET}@127.0.0.1:1/app", connect_retries=2, retry_delay=0.01
    )
    with pytest.raises(DatabaseUnavailableError) as caught:
        await database.start()
    message = str(caught.value)
    # psycopg reports a refused connection without a SQLSTATE; it is still transient.
    assert "after 3 attempts" in message
    assert "Connection refused" in message
    assert SECRET not in message
    assert "postgresql+psycopg://app:***@127.0.0.1:1/app" in message


async def test_missing_database_fails_at_once(scratch_url: URL) -> None:
    database = database_at(psycopg(scratch_url).set(database="no_such_db"), retry_delay=0.01)
    with pytest.raises(DatabaseUnavailableError, match=r"after 1 attempt .*does not exist"):
        await database.start()


@pytest.fixture
async def connection(scratch_url: URL) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(psycopg(scratch_url))
    async with engine.connect() as connection:
        await connection.execute(
            text(
                "CREATE TABLE parents (id int CONSTRAINT pk_parents PRIMARY KEY);"
                "CREATE TABLE children ("
                " id int CONSTRAINT pk_children PRIMARY KEY,"
                " email text NOT NULL CONSTRAINT uq_children_email UNIQUE,"
                " age int CONSTRAINT ck_children_age CHECK (age >= 0),"
                " parent_id int CONSTRAINT fk_children_parent REFERENCES parents)"
            )
        )
        await connection.commit()
        yield connection
    await engine.dispose()


@pytest.mark.parametrize(
    ("values", "error", "constraint"),
    [
        ("(2, 'a@example.com', 1, NULL)", Conflict, "uq_children_email"),
        ("(1, 'b@example.com', 1, NULL)", Conflict, "pk_children"),
        ("(2, 'b@example.com', -1, NULL)", ConstraintViolation, "ck_children_age"),
        ("(2, 'b@example.com', 1, 42)", ConstraintViolation, "fk_children_parent"),
        ("(2, NULL, 1, NULL)", ConstraintViolation, None),
    ],
)
async def test_integrity_errors_are_translated(
    connection: AsyncConnection, values: str, error: type[DataError], constraint: str | None
) -> None:
    await connection.execute(text("INSERT INTO children VALUES (1, 'a@example.com', 1, NULL)"))
    with pytest.raises(IntegrityError) as caught:
        await connection.execute(text(f"INSERT INTO children VALUES {values}"))
    translated = translate_dbapi_error(caught.value)
    assert translated is not None
    assert type(translated) is error
    assert translated.constraint == constraint
    await connection.rollback()


ENV = "from plinth.migrations import run_env\n\nrun_env(None)\n"
REVISION = """
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE notes (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)")


def downgrade() -> None:
    op.execute("DROP TABLE notes")
"""


async def test_migrations_run_on_psycopg(scratch_url: URL, tmp_path: Path) -> None:
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ENV)
    (scripts / "versions" / "0001_notes.py").write_text(REVISION)
    engine = create_async_engine(psycopg(scratch_url))
    try:
        async with engine.connect() as connection:
            await migrations.upgrade(connection, scripts)
            assert await migrations.current(connection) == ("0001",)
            await migrations.downgrade(connection, scripts, "base")
            assert await migrations.current(connection) == ()
            tables = await connection.execute(text("SELECT to_regclass('notes')"))
            assert tables.scalar() is None
    finally:
        await engine.dispose()


async def test_readiness_on_psycopg(scratch_url: URL) -> None:
    database = database_at(psycopg(scratch_url), pool_size=3)
    async with database:
        ok, report = await readiness(database)
    assert ok, report
    assert report["status"] == "ready"
    assert report["pool"]["size"] == 3


SUITE = """
from sqlalchemy import text

async def test_the_test_database_is_reached_through_psycopg(db_connection, db_session):
    assert db_connection.dialect.driver == "psycopg"
    assert (await db_session.connection()).dialect.driver == "psycopg"

async def test_the_app_runs_on_it_too(client, db_session):
    response = await client.post("/documents", json={
        "content": "x", "file_name": "x", "file_size": 1, "source_language": "en",
        "session_id": "s"})
    assert response.status_code == 201, response.text
    assert (await db_session.execute(text("SELECT count(*) FROM documents"))).scalar_one() == 1
"""


def test_the_plugin_uses_the_apps_driver(
    pytester: pytest.Pytester, plinth_server: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(
        f"[pytest]\npythonpath = {TRANSLATOR.parent}\nasyncio_mode = auto\n"
        "asyncio_default_fixture_loop_scope = session\n"
        "asyncio_default_test_loop_scope = session\n"
    )
    pytester.makeconftest(
        "from pathlib import Path\nimport pytest\n\n@pytest.fixture\n"
        f"def plinth_app_dir() -> Path:\n    return Path({str(TRANSLATOR)!r})\n"
    )
    pytester.makepyfile(test_suite=SUITE)
    # The translator's settings read DB_DRIVER, as an app's own default would set it.
    monkeypatch.setenv("DB_DRIVER", "psycopg")
    result = pytester.runpytest_subprocess(
        "--plinth-url",
        plinth_server.render_as_string(hide_password=False),
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=2)
