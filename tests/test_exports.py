"""The public API is exactly what plinth/__init__.py exports."""

from __future__ import annotations

import plinth


def test_all_is_sorted_and_complete() -> None:
    assert plinth.__all__ == sorted(plinth.__all__)
    for name in plinth.__all__:
        assert hasattr(plinth, name), name


def test_core_names_are_exported() -> None:
    core = {
        "ConfigurationError",
        "Conflict",
        "ConstraintViolation",
        "DataError",
        "Database",
        "DatabaseSettings",
        "DatabaseStateError",
        "DatabaseUnavailableError",
        "EmbeddedServerError",
        "MigrationError",
        "NotFound",
        "Ping",
        "PlinthError",
        "ddl",
        "exception_handlers",
        "health_router",
        "migrations",
        "readiness",
    }
    assert core <= set(plinth.__all__)
