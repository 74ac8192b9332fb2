from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import URL

from plinth.testing import create_database, drop_database

_numbers = itertools.count()


@pytest.fixture
async def scratch_url(plinth_server: URL) -> AsyncIterator[URL]:
    """A fresh, empty database for tests that need real commits."""
    name = f"plinth_scratch_{os.getpid()}_{next(_numbers)}"
    url = await create_database(plinth_server, name)
    try:
        yield url
    finally:
        await drop_database(plinth_server, name)
