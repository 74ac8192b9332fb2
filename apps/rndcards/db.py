"""The R&D cards database: the seed's pool (20 + 10), the session dependency,
and the read dependencies.

Writes (and reads that must see them) go through ``Session``, the unit of work;
plain reads through ``UserReads`` / ``BatchReads`` (`plinth.Reads`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from plinth import Database, DatabaseSettings, Reads
from rndcards.models import Batch, User


class RndCardsDatabaseSettings(DatabaseSettings):
    """Plinth's settings with the seed's pool; the environment still overrides them."""

    pool_size: int = Field(default=20, ge=1)
    """20 connections kept open (``DB_POOL_SIZE``)..."""

    max_overflow: int = Field(default=10, ge=0)
    """...and up to 10 more under load (``DB_MAX_OVERFLOW``)."""

    application_name: str = "rndcards"


database = Database(
    RndCardsDatabaseSettings.load(), migrations=Path(__file__).parent / "migrations"
)

Session = Annotated[AsyncSession, database.depends]
"""A unit of work per request: committed before the response is sent."""


class UserReader(Reads[User]):
    """Reads of users straight from Core rows: no session, one round trip."""


class BatchReader(Reads[Batch]):
    """Reads of batches straight from Core rows: no session, one round trip."""


UserReads = Annotated[UserReader, UserReader.depends(database)]
BatchReads = Annotated[BatchReader, BatchReader.depends(database)]
