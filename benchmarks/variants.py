"""The four contenders, each a FastAPI app with the same routes and payloads.

- **R**: raw asyncpg, one pool, hand-written SQL: the physical limit. Its pool
  skips asyncpg's default reset query on release (``RESET ALL``, ``UNLISTEN``,
  ...), one round trip per request that nothing here needs.
- **N**: the seed stories' code (seed 004's ``database.py`` and
  ``BatchRepository``): a session per request from a plain ``get_db``
  dependency, ``select(...).where(...)`` then ``scalar_one_or_none()``,
  ``add`` + ``commit`` + ``refresh`` per created row, a separate ``count``
  query for totals, ``add_all`` + ``commit`` for bulk.
- **A**: advanced-alchemy's FastAPI extension (``commit_mode="autocommit"``)
  and ``SQLAlchemyAsyncRepository``.
- **P**: Plinth: ``Database``; reads through ``plinth.Reads`` (Core rows into the
  response model, no session), the write through ``database.depends`` and
  ``plinth.Repository``.

Every pool holds 20 connections (N's and A's may overflow by 10), so
concurrency 16 never waits for a connection.

No ``from __future__ import annotations`` here: FastAPI must resolve the
routes' annotations, which name per-app local aliases, at definition time.
"""

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import sessionmaker

from benchmarks.schema import BulkItem, Item, ItemIn, ItemOut, PageOut

__all__ = ["VARIANTS", "WRITE_ONLY", "Variant", "build_variant"]

POOL = 20
PAGE = 50
Row = dict[str, Any]


class Variant:
    """One contender: an app for the HTTP benchmarks plus its bulk inserts."""

    key = "?"
    title = "?"
    app: FastAPI

    async def close(self) -> None:
        raise NotImplementedError

    def keyset_path(self, after_id: int) -> str | None:
        """The URL of the page after `after_id`, if this variant can page by keyset."""
        return None

    async def bulk_insert(self, rows: Sequence[Row]) -> None:
        """Insert `rows` in one transaction; no ids needed."""
        raise NotImplementedError

    async def bulk_insert_returning(self, rows: Sequence[Row]) -> list[int]:
        """Insert `rows` in one transaction and return their ids."""
        raise NotImplementedError


# -- R: raw asyncpg -------------------------------------------------------

_COLUMNS = "id, owner_id, name, price, created_at"


async def _no_reset(connection: asyncpg.Connection) -> None:
    return None


class Raw(Variant):
    key, title = "R", "raw asyncpg"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.app = app = FastAPI()

        @app.get("/items/{item_id}")
        async def get_item(item_id: int) -> ItemOut:
            async with pool.acquire() as connection:
                row = await connection.fetchrow(
                    f"SELECT {_COLUMNS} FROM bench_items WHERE id = $1", item_id
                )
            if row is None:
                raise HTTPException(404)
            return ItemOut(**row)

        @app.post("/items", status_code=201)
        async def create_item(body: ItemIn) -> ItemOut:
            async with pool.acquire() as connection:
                row = await connection.fetchrow(
                    "INSERT INTO bench_items (owner_id, name, price) VALUES ($1, $2, $3) "
                    f"RETURNING {_COLUMNS}",
                    body.owner_id,
                    body.name,
                    body.price,
                )
            return ItemOut(**row)

        @app.get("/items")
        async def list_items(owner_id: int, offset: int = 0) -> PageOut:
            async with pool.acquire() as connection:
                rows = await connection.fetch(
                    f"SELECT {_COLUMNS}, count(*) OVER () AS total FROM bench_items "
                    "WHERE owner_id = $1 ORDER BY id LIMIT $2 OFFSET $3",
                    owner_id,
                    PAGE,
                    offset,
                )
                total = rows[0]["total"] if rows else 0
                if not rows and offset:
                    total = await connection.fetchval(
                        "SELECT count(*) FROM bench_items WHERE owner_id = $1", owner_id
                    )
            return PageOut(items=[ItemOut(**row) for row in rows], total=total)

        @app.get("/deep")
        async def deep_page(offset: int) -> list[ItemOut]:
            async with pool.acquire() as connection:
                rows = await connection.fetch(
                    f"SELECT {_COLUMNS} FROM bench_items ORDER BY id LIMIT $1 OFFSET $2",
                    PAGE,
                    offset,
                )
            return [ItemOut(**row) for row in rows]

        @app.get("/after")
        async def keyset_page(after: int) -> list[ItemOut]:
            async with pool.acquire() as connection:
                rows = await connection.fetch(
                    f"SELECT {_COLUMNS} FROM bench_items WHERE id > $1 ORDER BY id LIMIT $2",
                    after,
                    PAGE,
                )
            return [ItemOut(**row) for row in rows]

    def keyset_path(self, after_id: int) -> str:
        return f"/after?after={after_id}"

    async def close(self) -> None:
        await self.pool.close()

    async def bulk_insert(self, rows: Sequence[Row]) -> None:
        async with self.pool.acquire() as connection:
            await connection.copy_records_to_table(
                "bench_bulk",
                records=[(row["owner_id"], row["name"], row["price"]) for row in rows],
                columns=["owner_id", "name", "price"],
            )

    async def bulk_insert_returning(self, rows: Sequence[Row]) -> list[int]:
        async with self.pool.acquire() as connection:
            records = await connection.fetch(
                "INSERT INTO bench_bulk (owner_id, name, price) "
                "SELECT * FROM unnest($1::int[], $2::text[], $3::int[]) RETURNING id",
                [row["owner_id"] for row in rows],
                [row["name"] for row in rows],
                [row["price"] for row in rows],
            )
        return [record[0] for record in records]


# -- N: the seed stories' code --------------------------------------------


class _SeedItemRepository:
    """Seed 004's ``BatchRepository``, for items."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, owner_id: int, name: str, price: int) -> Item:
        item = Item(owner_id=owner_id, name=name, price=price)
        self.session.add(item)
        await self.session.commit()
        await self.session.refresh(item)
        return item

    async def get_by_id(self, item_id: int) -> Item | None:
        result = await self.session.execute(select(Item).where(Item.id == item_id))
        return result.scalar_one_or_none()

    async def list_by_owner(self, owner_id: int, limit: int = 10, offset: int = 0) -> list[Item]:
        result = await self.session.execute(
            select(Item)
            .where(Item.owner_id == owner_id)
            .order_by(Item.id)
            .limit(limit)
            .offset(offset)
        )
        return list(result.scalars().all())

    async def count_by_owner(self, owner_id: int) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(Item).where(Item.owner_id == owner_id)
        )
        return int(result.scalar_one())

    async def list_all(self, limit: int, offset: int) -> list[Item]:
        result = await self.session.execute(
            select(Item).order_by(Item.id).limit(limit).offset(offset)
        )
        return list(result.scalars().all())


class Naive(Variant):
    key, title = "N", "seed-style SQLAlchemy"

    def __init__(self, url: str) -> None:
        # Seed 004: apps/api/src/database.py, verbatim but for the URL.
        self.engine = engine = create_async_engine(url, echo=False, pool_size=POOL, max_overflow=10)
        # (sessionmaker with class_=AsyncSession, as the seed writes it.)
        self.sessions = AsyncSessionLocal = sessionmaker(  # type: ignore[call-overload]
            engine, class_=AsyncSession, expire_on_commit=False
        )

        async def get_db() -> Any:
            async with AsyncSessionLocal() as session:
                yield session

        Db = Annotated[AsyncSession, Depends(get_db)]
        self.app = app = FastAPI()

        @app.get("/items/{item_id}")
        async def get_item(item_id: int, db: Db) -> ItemOut:
            item = await _SeedItemRepository(db).get_by_id(item_id)
            if item is None:
                raise HTTPException(404)
            return ItemOut.model_validate(item)

        @app.post("/items", status_code=201)
        async def create_item(body: ItemIn, db: Db) -> ItemOut:
            item = await _SeedItemRepository(db).create(body.owner_id, body.name, body.price)
            return ItemOut.model_validate(item)

        @app.get("/items")
        async def list_items(owner_id: int, db: Db, offset: int = 0) -> PageOut:
            repository = _SeedItemRepository(db)
            items = await repository.list_by_owner(owner_id, PAGE, offset)
            total = await repository.count_by_owner(owner_id)
            return PageOut(items=[ItemOut.model_validate(i) for i in items], total=total)

        @app.get("/deep")
        async def deep_page(offset: int, db: Db) -> list[ItemOut]:
            items = await _SeedItemRepository(db).list_all(PAGE, offset)
            return [ItemOut.model_validate(i) for i in items]

    async def close(self) -> None:
        await self.engine.dispose()

    async def bulk_insert(self, rows: Sequence[Row]) -> None:
        await self.bulk_insert_returning(rows)

    async def bulk_insert_returning(self, rows: Sequence[Row]) -> list[int]:
        async with self.sessions() as session:
            items = [BulkItem(**row) for row in rows]
            session.add_all(items)
            await session.commit()
            return [item.id for item in items]

    async def insert_per_row(self, rows: Sequence[Row]) -> None:
        """The seed's ``create`` for each row: add, commit, refresh."""
        async with self.sessions() as session:
            for row in rows:
                item = BulkItem(**row)
                session.add(item)
                await session.commit()
                await session.refresh(item)


# -- A: advanced-alchemy --------------------------------------------------


class Alchemy(Variant):
    key, title = "A", "advanced-alchemy"

    def __init__(self, url: str) -> None:
        from advanced_alchemy.extensions.fastapi import (
            AdvancedAlchemy,
            EngineConfig,
            SQLAlchemyAsyncConfig,
        )
        from advanced_alchemy.filters import LimitOffset, OrderBy
        from advanced_alchemy.repository import SQLAlchemyAsyncRepository

        class ItemRepository(SQLAlchemyAsyncRepository[Item]):
            model_type = Item

        class BulkRepository(SQLAlchemyAsyncRepository[BulkItem]):
            model_type = BulkItem

        self.bulk_repository = BulkRepository
        self.config = config = SQLAlchemyAsyncConfig(
            connection_string=url,
            commit_mode="autocommit",
            engine_config=EngineConfig(pool_size=POOL, max_overflow=10),
        )
        self.app = app = FastAPI()
        self.alchemy = alchemy = AdvancedAlchemy(config=config, app=app)
        Db = Annotated[AsyncSession, Depends(alchemy.provide_session())]
        by_id = OrderBy(field_name="id", sort_order="asc")

        @app.get("/items/{item_id}")
        async def get_item(item_id: int, db: Db) -> ItemOut:
            return ItemOut.model_validate(await ItemRepository(session=db).get(item_id))

        @app.post("/items", status_code=201)
        async def create_item(body: ItemIn, db: Db) -> ItemOut:
            item = await ItemRepository(session=db).add(Item(**body.model_dump()))
            return ItemOut.model_validate(item)

        @app.get("/items")
        async def list_items(owner_id: int, db: Db, offset: int = 0) -> PageOut:
            items, total = await ItemRepository(session=db).list_and_count(
                Item.owner_id == owner_id, LimitOffset(limit=PAGE, offset=offset), by_id
            )
            return PageOut(items=[ItemOut.model_validate(i) for i in items], total=total)

        @app.get("/deep")
        async def deep_page(offset: int, db: Db) -> list[ItemOut]:
            items = await ItemRepository(session=db).list(
                LimitOffset(limit=PAGE, offset=offset), by_id
            )
            return [ItemOut.model_validate(i) for i in items]

    async def start(self) -> None:
        await self.alchemy.on_startup()

    async def close(self) -> None:
        await self.alchemy.on_shutdown()
        await self.config.get_engine().dispose()

    async def bulk_insert(self, rows: Sequence[Row]) -> None:
        async with self.config.get_session() as session:
            await self.bulk_repository(session=session).add_many(
                [BulkItem(**row) for row in rows], auto_commit=True
            )

    async def bulk_insert_returning(self, rows: Sequence[Row]) -> list[int]:
        async with self.config.get_session() as session:
            items = await self.bulk_repository(session=session).add_many(
                [BulkItem(**row) for row in rows]
            )
            ids = [item.id for item in items]  # read before commit expires them
            await session.commit()
            return ids


# -- P: Plinth ------------------------------------------------------------


class Plinth(Variant):
    key, title = "P", "Plinth"

    def __init__(self, url: str) -> None:
        from plinth import Database, DatabaseSettings, exception_handlers
        from plinth.repository import Reads, Repository
        from plinth.repository.pagination import encode_cursor

        class ItemRepository(Repository[Item]):
            pass

        class ItemReads(Reads[Item]):
            pass

        class BulkRepository(Repository[BulkItem]):
            pass

        self.bulk_repository = BulkRepository
        self.encode_cursor = encode_cursor
        self.database = database = Database(
            DatabaseSettings.load(database_url=url, pool_size=POOL, max_overflow=10)
        )
        Session = Annotated[AsyncSession, database.depends]
        self.app = app = FastAPI(exception_handlers=exception_handlers)

        # Reads go through plinth.Reads (Core rows into the response model, no
        # Session); the write goes through the repository in a unit of work.
        Items = Annotated[ItemReads, ItemReads.depends(database)]

        @app.get("/items/{item_id}")
        async def get_item(item_id: int, items: Items) -> ItemOut:
            return await items.get_one(item_id, into=ItemOut)

        @app.post("/items", status_code=201)
        async def create_item(body: ItemIn, session: Session) -> ItemOut:
            # Core INSERT ... RETURNING into the response model: no ORM instance.
            return await ItemRepository(session).create(into=ItemOut, **body.model_dump())

        @app.get("/items")
        async def list_items(owner_id: int, items: Items, offset: int = 0) -> PageOut:
            rows, total = await items.list_and_count(
                owner_id=owner_id, limit=PAGE, offset=offset, into=ItemOut
            )
            return PageOut(items=rows, total=total)

        @app.get("/deep")
        async def deep_page(offset: int, items: Items) -> list[ItemOut]:
            return await items.list(limit=PAGE, offset=offset, into=ItemOut)

        @app.get("/after")
        async def keyset_page(after: str, items: Items) -> list[ItemOut]:
            return (await items.page(limit=PAGE, after=after, into=ItemOut)).items

    def keyset_path(self, after_id: int) -> str:
        return f"/after?after={self.encode_cursor([after_id])}"

    async def start(self) -> None:
        await self.database.start()

    async def close(self) -> None:
        await self.database.close()

    async def bulk_insert(self, rows: Sequence[Row]) -> None:
        async with self.database.transaction() as session:
            await self.bulk_repository(session).bulk_insert(rows)

    async def bulk_insert_returning(self, rows: Sequence[Row]) -> list[int]:
        # The repository has no bulk insert that returns ids: plain SQLAlchemy
        # "insertmanyvalues" (batched INSERT ... RETURNING) in a unit of work.
        async with self.database.transaction() as session:
            result = await session.execute(insert(BulkItem).returning(BulkItem.id), rows)
            return list(result.scalars())


class PlinthPsycopg(Plinth):
    """Plinth on psycopg 3, whose units of work send BEGIN with their first write."""

    key, title = "Q", "Plinth on psycopg"


VARIANTS = ("R", "N", "A", "P", "Q")
WRITE_ONLY = frozenset({"Q"})
"""Variants timed only in the create cases (`cases.http_cases`)."""


async def build_variant(key: str, url: str) -> Variant:
    """Start variant `key` against the SQLAlchemy URL `url`."""
    sa_url = make_url(url).set(drivername="postgresql+asyncpg")
    if key == "R":
        dsn = sa_url.set(drivername="postgresql").render_as_string(hide_password=False)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=POOL, reset=_no_reset)
        return Raw(pool)
    plain = sa_url.render_as_string(hide_password=False)
    if key == "N":
        return Naive(plain)
    if key == "A":
        variant: Alchemy | Plinth = Alchemy(plain)
    elif key == "P":
        variant = Plinth(plain)
    elif key == "Q":
        variant = PlinthPsycopg(
            sa_url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        )
    else:
        raise ValueError(f"unknown variant {key!r}; valid: {', '.join(VARIANTS)}")
    await variant.start()
    return variant


async def close_all(variants: dict[str, Variant]) -> None:
    await asyncio.gather(*(variant.close() for variant in variants.values()))
