"""Reads at the driver's speed: SQLAlchemy Core rows, or Pydantic models, with no ORM.

::

    class Documents(Reads[Document]):
        pass

    DocumentReads = Annotated[Documents, Documents.depends(database)]

    @router.get("/documents/{document_id}")
    async def get_document(document_id: uuid.UUID, documents: DocumentReads) -> DocumentOut:
        return await documents.get_one(document_id, into=DocumentOut)

A `Reads[Model]` runs each read as one Core ``SELECT`` of the model's table
on one pooled connection: no `Session`, no identity map, no unit of work, no
ORM instances. The connection is checked out, used and returned in a single
greenlet switch (SQLAlchemy's async connection takes three), and the statement
for each read shape (by primary key; ``column=value`` filters with name
orderings) is built once and reused, so SQLAlchemy's compiled cache answers it
without rebuilding its cache key. Plinth's lean reads (`plinth.db.lean_reads`)
make it one round trip: no ``BEGIN``/``ROLLBACK``.

Rows come back as SQLAlchemy `Row` objects keyed by attribute name, or, with
``into=Schema``, as instances of a Pydantic model validated from them (only the
columns that the schema has a field for are selected). Filters, orderings,
limits and keyset cursors are those of `Repository`: the same ``where``
expressions and ``column=value`` keywords, the same ordering strings, and the
same opaque cursor (`plinth.repository.pagination`), so a cursor from
`Repository.page` continues in `Reads.page` and back.

Use it for reads outside a unit of work. Each read checks out its own
connection (and runs once more on a fresh one if that connection was dead),
so it does not see what the request's session has written and not yet
committed; read that through the `Repository`. The source is a `Database`
(anything with a ``read_bind``: its engine, or in tests the connection that
`Database.bind` routes everything through), an `AsyncEngine`, or an
`AsyncConnection` (for instance ``await session.connection()``).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    Protocol,
    TypeVar,
    overload,
)

from pydantic import BaseModel
from sqlalchemy import ColumnElement, bindparam, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapper
from sqlalchemy.util import greenlet_spawn

from plinth.errors import ConfigurationError, NotFound
from plinth.repository import mapping
from plinth.repository.mapping import pk_params
from plinth.repository.pagination import (
    OrderBy,
    Page,
    encode_cursor,
)
from plinth.repository.read_statements import ModelT, ReadStatements

if TYPE_CHECKING:
    pass

__all__ = ["ReadBind", "Reads"]

SchemaT = TypeVar("SchemaT", bound=BaseModel)
T = TypeVar("T")


class ReadBind(Protocol):
    """Anything with a ``read_bind``: a `Database` (its engine, or its test binding)."""

    @property
    def read_bind(self) -> AsyncEngine | AsyncConnection: ...


Source = AsyncEngine | AsyncConnection | ReadBind


def _on_engine(engine: Any, read: Callable[[Connection], T]) -> T:
    try:
        with engine.connect() as connection:
            return read(connection)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    # Its pooled connection was dead (a restart, a failover, a terminated backend):
    # a read wrote nothing and returned nothing yet, so it runs once more, on a
    # fresh connection (as a unit of work's first read does, plinth.db.failover).
    with engine.connect() as connection:
        return read(connection)


class Reads(ReadStatements[ModelT]):
    """Typed reads of one mapped model, straight from SQLAlchemy Core results.

    Subclass with the model as type argument (``Reads[Document]``), or pass
    ``model=``. Stateless apart from its source: one instance may serve every
    request (`depends` does that), and concurrent tasks may share it.
    """

    model: type[ModelT]
    """The mapped class, taken from the type argument (``Reads[Document]``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mapping.bind_model_argument(cls, Reads)

    def __init__(self, source: Source, model: type[ModelT] | None = None) -> None:
        if model is not None:
            self.model = model
        if getattr(self, "model", None) is None:
            raise ConfigurationError(
                f"{type(self).__name__} has no model: subclass Reads[YourModel] or pass model="
            )
        self.source = source
        """Where the reads go: a `Database`, an `AsyncEngine` or an `AsyncConnection`."""
        self.mapper: Mapper[ModelT] = self.model.__mapper__
        """The model's SQLAlchemy `Mapper`."""

    @classmethod
    def depends(cls, source: Source, model: type[ModelT] | None = None) -> Any:
        """A FastAPI dependency giving one shared instance on `source`:
        ``Annotated[Documents, Documents.depends(database)]``. A plain ``async``
        function, not a generator: the connection is held per read, not per request."""
        from fastapi import Depends

        reads = cls(source, model)

        async def reads_dependency() -> Reads[ModelT]:
            return reads

        return Depends(reads_dependency)

    # -- reading ------------------------------------------------------------

    @overload
    async def get(self, id: Any) -> Row[Any] | None: ...
    @overload
    async def get(self, id: Any, *, into: type[SchemaT]) -> SchemaT | None: ...
    async def get(self, id: Any, *, into: type[BaseModel] | None = None) -> Any:
        """The row with primary key `id` (a tuple for a composite key), or None."""
        params = pk_params(self.mapper, id)
        if params is None:
            if id is None or (isinstance(id, tuple) and None in id):
                return None
            raise TypeError(
                f"{self.model.__name__}'s primary key has {len(self.mapper.primary_key)} "
                f"column(s); got {id!r}"
            )
        key = ("pk", self._shape, into)
        statement = self._template(key)
        if statement is None:
            conditions = [
                column == bindparam(f"plinth_pk_{index}", type_=column.type)
                for index, column in enumerate(self.mapper.primary_key)
            ]
            query = select(*self._columns(into)).where(*conditions)
            statement = self._remember(key, query, [])
        rows = await self._run(lambda c: c.execute(statement[0], params).all())
        if not rows:
            return None
        if into is None:
            return rows[0]
        return into.model_validate(dict(zip(self._keys(into), rows[0], strict=False)))

    @overload
    async def get_one(self, id: Any) -> Row[Any]: ...
    @overload
    async def get_one(self, id: Any, *, into: type[SchemaT]) -> SchemaT: ...
    async def get_one(self, id: Any, *, into: type[BaseModel] | None = None) -> Any:
        """The row with primary key `id`; `NotFound` (404) if there is none."""
        row = await self.get(id, into=into) if into else await self.get(id)
        if row is None:
            raise NotFound(f"{self.model.__name__} {id} not found")
        return row

    @overload
    async def list(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int | None = None,
        offset: int = 0,
        after: str | None = None,
        into: None = None,
        **by: Any,
    ) -> builtins.list[Row[Any]]: ...
    @overload
    async def list(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int | None = None,
        offset: int = 0,
        after: str | None = None,
        into: type[SchemaT],
        **by: Any,
    ) -> builtins.list[SchemaT]: ...
    async def list(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int | None = None,
        offset: int = 0,
        after: str | None = None,
        into: type[BaseModel] | None = None,
        **by: Any,
    ) -> Any:
        """Matching rows in `order_by` order (primary key last, as tie-breaker),
        by `limit`/`offset` or after the keyset cursor `after`, as in `Repository.list`."""
        query, params, _ = self._select(where, by, order_by, limit, offset, after, into)
        rows = await self._run(lambda c: c.execute(query, params).all())
        return self._convert(rows, into)

    @overload
    async def page(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int = 20,
        after: str | None = None,
        into: None = None,
        **by: Any,
    ) -> Page[Row[Any]]: ...
    @overload
    async def page(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int = 20,
        after: str | None = None,
        into: type[SchemaT],
        **by: Any,
    ) -> Page[SchemaT]: ...
    async def page(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int = 20,
        after: str | None = None,
        into: type[BaseModel] | None = None,
        **by: Any,
    ) -> Any:
        """One keyset page, as `Repository.page`, with the same cursors."""
        query, params, terms = self._select(
            where, by, order_by, limit + 1, 0, after, into, keyset=True
        )
        rows = await self._run(lambda c: c.execute(query, params).all())
        cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]._mapping
            cursor = encode_cursor([last[term.key] for term in terms])  # type: ignore[index]
        return Page(self._convert(rows, into), cursor)

    @overload
    async def list_and_count(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int | None = None,
        offset: int = 0,
        into: None = None,
        **by: Any,
    ) -> tuple[builtins.list[Row[Any]], int]: ...
    @overload
    async def list_and_count(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int | None = None,
        offset: int = 0,
        into: type[SchemaT],
        **by: Any,
    ) -> tuple[builtins.list[SchemaT], int]: ...
    async def list_and_count(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int | None = None,
        offset: int = 0,
        into: type[BaseModel] | None = None,
        **by: Any,
    ) -> Any:
        """A page of matching rows and the total number of matching rows, in one
        query (``count(*) OVER ()``); a second only for a page past the end."""
        query, params, _ = self._select(where, by, order_by, limit, offset, None, into, total=True)
        count = self._count_query(where, by) if offset else None

        def read(connection: Connection) -> tuple[builtins.list[Row[Any]], int]:
            result = connection.execute(query, params)
            if into is not None:  # the schema ignores the total column
                rows = result.all()
                if rows:
                    return builtins.list(rows), int(rows[0][-1])
            else:
                width = len(result.keys()) - 1
                frozen = result.freeze()
                if frozen.data:  # the rows without the total column
                    rows = frozen().columns(*range(width)).all()
                    return builtins.list(rows), int(frozen.data[0][width])
            # No row carries the window total past the last page: count.
            total = connection.execute(*count).scalar_one() if count else 0
            return [], int(total)

        rows, total = await self._run(read)
        return self._convert(rows, into), total

    async def exists(self, *where: ColumnElement[bool], **by: Any) -> bool:
        """Whether any row matches."""
        query, params = self._count_query(where, by, exists=True)
        return bool(await self._run(lambda c: c.execute(query, params).scalar()))

    async def count(self, *where: ColumnElement[bool], **by: Any) -> int:
        """The number of matching rows."""
        query, params = self._count_query(where, by)
        return int(await self._run(lambda c: c.execute(query, params).scalar_one()))

    # -- helpers ------------------------------------------------------------

    async def _run(self, read: Callable[[Connection], T]) -> T:
        """`read` on a connection of the source, in one greenlet switch."""
        source = self.source
        bind = source if isinstance(source, AsyncEngine | AsyncConnection) else source.read_bind
        if isinstance(bind, AsyncEngine):
            # Check out, execute, fetch and return the connection in one switch.
            return await greenlet_spawn(_on_engine, bind.sync_engine, read)
        return await bind.run_sync(read)
