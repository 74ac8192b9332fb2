"""Create the R&D cards schema: migrate the database to head.

    export DATABASE_URL=postgresql://postgres@localhost:5432/rnd_cards
    python apps/rndcards/scripts/init_db.py

With DATABASE_URL unset (outside production) it migrates the embedded
PostgreSQL that ``plinth serve apps/rndcards`` uses. Safe to run again, and
from several replicas at once: Plinth's upgrade holds an advisory lock, so a
database already at head is left as it is.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file: make the `rndcards` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from plinth import Database, DatabaseSettings, PlinthError, migrations
from rndcards.db import RndCardsDatabaseSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


async def init_db(settings: DatabaseSettings | None = None) -> tuple[str, ...]:
    """Upgrade the database to head; return the revisions it is at afterwards."""
    async with (
        Database(settings or RndCardsDatabaseSettings.load(pool_size=1)) as database,
        database.engine.connect() as connection,
    ):
        await migrations.upgrade(connection, MIGRATIONS)
        return await migrations.current(connection)


def main() -> int:
    try:
        revisions = asyncio.run(init_db())
    except PlinthError as exc:
        print(f"init_db: {exc}", file=sys.stderr)
        return 1
    print(f"rndcards: database at {', '.join(revisions)} (head)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
