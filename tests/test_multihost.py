"""A multi-host DATABASE_URL (failover with ``target_session_attrs=read-write``).

SQLAlchemy's form, on both drivers: ``postgresql+asyncpg://user:pass@/db
?host=h1:5432&host=h2:5432&target_session_attrs=read-write``. The settings
parse, validate and redact it; the engine connects to the first writable
host; ``plinth doctor`` sees no pooler where the port is one of the hosts'.
"""

from __future__ import annotations

import pytest
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import create_async_engine

from plinth import Database, DatabaseSettings
from plinth.cli.doctor import _pooler
from plinth.db.engine import engine_arguments
from plinth.db.settings import hosts

SECRET = "s3cr3t-pa55"
DRIVERS = ["asyncpg", "psycopg"]


def _url(driver: str, *entries: str, extra: str = "&target_session_attrs=read-write") -> str:
    listed = "&".join(f"host={entry}" for entry in entries)
    return f"postgresql+{driver}://app:{SECRET}@/app?{listed}{extra}"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "APP_ENV", "DB_DRIVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no stray .env


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_multi_host_url_is_parsed_redacted_and_passed_on(driver: str) -> None:
    settings = DatabaseSettings.load(database_url=_url(driver, "db1:5433", "db2:5434"))
    url = settings.database_url
    assert url is not None
    assert hosts(url) == [("db1", 5433), ("db2", 5434)]
    for shown in (settings.redacted_url(), repr(settings), repr(url), str(settings)):
        assert SECRET not in shown
    assert "db1%3A5433" in settings.redacted_url()
    bound, _ = engine_arguments(settings, url)
    assert bound.query["host"] == ("db1:5433", "db2:5434")
    assert bound.query["target_session_attrs"] == "read-write"
    assert repr(Database(settings)).count("***") == 1


def test_hosts_of_every_form() -> None:
    def of(text: str) -> list[tuple[str | None, int | None]]:
        url = DatabaseSettings.load(database_url=text).database_url
        assert url is not None
        return hosts(url)

    assert of("postgresql://u@h:5433/db") == [("h", 5433)]
    assert of("postgresql://u@/db?host=a&host=[::1]:7") == [("a", None), ("[::1]", 7)]
    assert of("postgresql://u@/db") == [(None, None)]


@pytest.mark.parametrize("driver", DRIVERS)
def test_production_takes_a_multi_host_url_with_ssl_only(driver: str) -> None:
    with pytest.raises(ValueError, match="must use SSL"):
        DatabaseSettings.load(database_url=_url(driver, "db1", "db2"), app_env="production")
    settings = DatabaseSettings.load(
        database_url=_url(driver, "db1", "db2", extra="&sslmode=require"), app_env="production"
    )
    assert settings.database_url is not None
    assert settings.database_url.query["sslmode"] == "require"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (f"postgresql://app:{SECRET}@db1:5432,db2:5432/app", r"\?host=host1:5432&host=host2"),
        (_url("asyncpg", "db1:5432", "db2:99999"), "host query option whose port"),
        (_url("psycopg", "db1:x"), "host query option whose port"),
        (_url("asyncpg", "db1", extra="&target_session_attrs=a&target_session_attrs=b"),
         "repeats query option 'target_session_attrs'"),
    ],
)  # fmt: skip
def test_a_bad_multi_host_url_is_refused_in_one_line(given: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        DatabaseSettings.load(database_url=given)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("driver", DRIVERS)
async def test_connects_to_the_host_that_answers_and_doctor_sees_no_pooler(
    plinth_server: URL, driver: str
) -> None:
    port = plinth_server.port
    dead = "127.0.0.1:1"  # refused at once
    url = plinth_server.set(drivername=f"postgresql+{driver}", host=None, port=None)
    url = url.update_query_pairs(
        [("host", dead), ("host", f"127.0.0.1:{port}"), ("target_session_attrs", "read-write")]
    )
    settings = DatabaseSettings.load(database_url=url, connect_retries=0)
    async with Database(settings) as database:
        async with database.transaction() as session:
            assert await session.scalar(text("SELECT inet_server_port()")) == port
        replica_url = settings.database_url
        assert replica_url is not None
        engine = create_async_engine(replica_url)
        try:
            async with engine.connect() as connection:
                assert await _pooler(connection, "none") == (
                    "pooler", "none seen (DB_POOLER=none)", True
                )  # fmt: skip
        finally:
            await engine.dispose()
