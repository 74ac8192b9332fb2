"""The benchmark schema, its seed data, and the HTTP payloads every variant shares.

One ORM model serves the three SQLAlchemy variants (N, A, P); raw asyncpg (R)
uses the same tables through SQL. ``bench_items`` holds the seeded rows
(``owner_id`` is the indexed filter column); ``bench_bulk`` receives the bulk
inserts and is truncated between runs.
"""

from __future__ import annotations

import datetime

import asyncpg
from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, DateTime, Identity, Integer, MetaData, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "BulkItem", "Item", "ItemIn", "ItemOut", "PageOut", "create_schema", "seed"]

OWNERS = 100
"""Distinct ``owner_id`` values: 1,000 rows each in the 100k-row table."""


class Base(DeclarativeBase):
    metadata = MetaData()


class _Columns:
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(100))
    price: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Item(_Columns, Base):
    __tablename__ = "bench_items"


class BulkItem(_Columns, Base):
    __tablename__ = "bench_bulk"


class ItemIn(BaseModel):
    owner_id: int
    name: str
    price: int


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    owner_id: int
    name: str
    price: int
    created_at: datetime.datetime


class PageOut(BaseModel):
    items: list[ItemOut]
    total: int


def row_values(i: int) -> tuple[int, str, int]:
    """(owner_id, name, price) of the i-th generated row."""
    return i % OWNERS, f"item {i}", (i * 7919) % 10_000


async def create_schema(connection: asyncpg.Connection) -> None:
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    for table in Base.metadata.sorted_tables:
        await connection.execute(f"DROP TABLE IF EXISTS {table.name}")
        await connection.execute(str(CreateTable(table).compile(dialect=dialect)))
        for index in table.indexes:
            await connection.execute(str(CreateIndex(index).compile(dialect=dialect)))


async def seed(connection: asyncpg.Connection, rows: int) -> None:
    """Fill ``bench_items`` with `rows` rows (COPY), then ANALYZE it."""
    await connection.execute("TRUNCATE bench_items RESTART IDENTITY")
    await connection.copy_records_to_table(
        "bench_items",
        records=[row_values(i) for i in range(rows)],
        columns=["owner_id", "name", "price"],
    )
    await connection.execute("VACUUM ANALYZE bench_items")
