from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def plinth_app_dir() -> Path:
    return Path(__file__).parents[1]
