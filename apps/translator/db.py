"""The translator's database and its session dependency."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from sqlalchemy.ext.asyncio import AsyncSession

from plinth import Database

database = Database(migrations=Path(__file__).parent / "migrations")

Session = Annotated[AsyncSession, database.depends]
"""A unit of work per request: committed before the response is sent."""
