from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from plinth import ConfigurationError, DatabaseSettings
from plinth.db.engine import engine_arguments

SECRET = "s3cr3t-pa55"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "APP_ENV", "DB_POOL_SIZE", "DB_STATEMENT_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no stray .env


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgres://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg"),
    ],
)
def test_accepted_schemes(given: str, driver: str) -> None:
    settings = DatabaseSettings.load(database_url=given)
    assert settings.database_url is not None
    assert settings.database_url.drivername == driver


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app@db:5432/app")
    monkeypatch.setenv("DB_POOL_SIZE", "20")
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT", "5000")
    settings = DatabaseSettings.load()
    assert settings.pool_size == 20
    assert settings.statement_timeout == 5000
    assert settings.redacted_url() == "postgresql+asyncpg://app@db:5432/app"


def test_unset_url_means_embedded_outside_production() -> None:
    settings = DatabaseSettings.load()
    assert settings.database_url is None
    assert settings.redacted_url() == "<embedded>"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("mysql://u:{s}@h/db", "DATABASE_URL has scheme 'mysql://'"),
        ("postgresql+psycopg2://u:{s}@h/db", "sync driver; use postgresql+psycopg://"),
        ("not a url {s}", "DATABASE_URL is not a URL"),
        ("postgresql://u:{s}@h/db?sslmode=sometimes", "sslmode='sometimes'"),
    ],
)
def test_bad_url_is_one_line_naming_the_variable_without_the_password(
    given: str, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        DatabaseSettings.load(database_url=given.format(s=SECRET))
    message = str(caught.value)
    assert expected in message
    assert SECRET not in message
    assert "\n" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_bad_pool_size_names_its_variable() -> None:
    with pytest.raises(ConfigurationError, match="DB_POOL_SIZE"):
        DatabaseSettings.load(pool_size=0)


def test_repr_and_str_mask_the_password() -> None:
    settings = DatabaseSettings.load(database_url=f"postgresql://app:{SECRET}@db/app")
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert settings.redacted_url() == "postgresql+asyncpg://app:***@db/app"


def test_production_requires_a_url() -> None:
    with pytest.raises(
        ConfigurationError, match="DATABASE_URL is required when APP_ENV=production"
    ):
        DatabaseSettings.load(app_env="production")


@pytest.mark.parametrize("query", ["", "?sslmode=disable", "?sslmode=prefer"])
def test_production_requires_ssl(query: str) -> None:
    with pytest.raises(ConfigurationError, match="must use SSL"):
        DatabaseSettings.load(app_env="production", database_url=f"postgresql://u:p@h/db{query}")


@pytest.mark.parametrize("query", ["?sslmode=require", "?ssl=require", "?ssl=true"])
def test_production_accepts_ssl_spellings(query: str) -> None:
    settings = DatabaseSettings.load(
        app_env="production", database_url=f"postgresql://u:p@h/db{query}"
    )
    assert settings.database_url is not None
    assert settings.database_url.query["sslmode"] == "require"


def test_asyncpg_gets_ssl_not_sslmode() -> None:
    settings = DatabaseSettings.load(database_url="postgresql://u:p@h/db?sslmode=require")
    assert settings.database_url is not None
    url, options = engine_arguments(settings, settings.database_url)
    assert "sslmode" not in url.query
    assert options["connect_args"]["ssl"] == "require"


def test_asyncpg_verify_full_builds_a_verifying_context(tmp_path: object) -> None:
    import ssl

    settings = DatabaseSettings.load(database_url="postgresql://u:p@h/db?sslmode=verify-full")
    assert settings.database_url is not None
    _, options = engine_arguments(settings, settings.database_url)
    context = options["connect_args"]["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_psycopg_keeps_libpq_parameters() -> None:
    settings = DatabaseSettings.load(
        database_url="postgresql+psycopg://u:p@h/db?sslmode=verify-full&sslrootcert=/ca.pem",
        statement_timeout=1500,
    )
    assert settings.database_url is not None
    url, options = engine_arguments(settings, settings.database_url)
    assert url.query == {"sslmode": "verify-full", "sslrootcert": "/ca.pem"}
    assert options["connect_args"]["options"] == "-c statement_timeout=1500"


def test_pool_settings_reach_the_engine() -> None:
    settings = DatabaseSettings.load(
        database_url="postgresql://h/db",
        pool_size=10,
        max_overflow=20,
        engine_options={"echo": True},
    )
    _, options = engine_arguments(settings, make_url("postgresql+asyncpg://h/db"))
    assert (options["pool_size"], options["max_overflow"], options["echo"]) == (10, 20, True)


def test_every_settings_class_names_its_variables_the_same_way() -> None:
    from plinth.cache import CacheSettings
    from plinth.migrations.guard import MigrationSettings
    from plinth.storage import StorageSettings

    assert DatabaseSettings.variable("pool_size") == "DB_POOL_SIZE"
    assert DatabaseSettings.variable("database_url") == "DATABASE_URL"
    assert CacheSettings.variable("max_connections") == "CACHE_MAX_CONNECTIONS"
    assert StorageSettings.variable("region") == "AWS_REGION"  # first of its alias choices
    assert MigrationSettings.variable("lock_timeout") == "DB_MIGRATION_LOCK_TIMEOUT"
