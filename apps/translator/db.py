"""The translator's database, its session dependency, and its read dependencies.

Writes (and reads that must see them) go through ``Session``, the unit of work;
plain reads through ``DocumentReads`` / ``TranslationReads`` (`plinth.Reads`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from sqlalchemy.ext.asyncio import AsyncSession

from plinth import Database, Reads
from translator.models import Document, Translation

database = Database(migrations=Path(__file__).parent / "migrations")

Session = Annotated[AsyncSession, database.depends]
"""A unit of work per request: committed before the response is sent."""


class Documents(Reads[Document]):
    """Reads of documents straight from Core rows: no session, one round trip."""


class Translations(Reads[Translation]):
    """Reads of translations straight from Core rows: no session, one round trip."""


DocumentReads = Annotated[Documents, Documents.depends(database)]
TranslationReads = Annotated[Translations, Translations.depends(database)]
