"""pytest-alembic's built-in checks, on the app's unchanged env.py (fixtures: conftest)."""

from pytest_alembic.tests import (  # noqa: F401
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
