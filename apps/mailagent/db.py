"""The mail agent's database: psycopg 3, the seed's pool, a session dependency,
and the read dependency (``UserReads``, `plinth.Reads`) of plain reads."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from mailagent.models import User
from plinth import Database, DatabaseSettings, Reads


class MailAgentDatabaseSettings(DatabaseSettings):
    """Plinth's settings with the seed's defaults; the environment still overrides them."""

    driver: Literal["asyncpg", "psycopg"] | None = "psycopg"
    """psycopg 3 in async mode, whatever scheme DATABASE_URL (or the embedded server) uses."""

    pool_size: int = Field(default=20, ge=1)
    """The seed's pool: 20 connections kept open..."""

    max_overflow: int = Field(default=10, ge=0)
    """...and up to 10 more under load (30 in all: check the server's max_connections)."""

    application_name: str = "mailagent"


database = Database(
    MailAgentDatabaseSettings.load(), migrations=Path(__file__).parent / "migrations"
)

Session = Annotated[AsyncSession, database.depends]
"""A unit of work per request: committed before the response is sent."""


class UserReader(Reads[User]):
    """Reads of users straight from Core rows: no session, one round trip."""

    # Whether a token is stored, without reading (and decrypting) it.
    expressions: ClassVar[Mapping[str, ColumnElement[Any]]] = {
        "has_gmail_token": User.gmail_oauth_token.is_not(None)
    }


UserReads = Annotated[UserReader, UserReader.depends(database)]
