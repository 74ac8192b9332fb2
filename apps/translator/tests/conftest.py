from __future__ import annotations

from pathlib import Path

import pytest

from plinth.testing.alembic import alembic_config, alembic_engine  # noqa: F401  (pytest-alembic)


@pytest.fixture
def plinth_app_dir() -> Path:
    return Path(__file__).parents[1]
