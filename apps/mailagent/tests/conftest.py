from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.encryption import ENV_VAR, generate_key
from plinth.testing.alembic import alembic_config, alembic_engine  # noqa: F401  (pytest-alembic)


@pytest.fixture
def plinth_app_dir() -> Path:
    return Path(__file__).parents[1]


@pytest.fixture(scope="session", autouse=True)
def encryption_keys() -> Iterator[str]:
    """A fresh key per run: the token columns read it on first use."""
    key = generate_key()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_VAR, key)
        yield key
