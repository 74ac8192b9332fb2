"""Typed async repositories: an app's data access in a few lines, no SQL.

::

    class UserRepository(Repository[User]):
        async def get_by_email(self, email: str) -> User | None:
            return await self.first(email=email)

Commits belong to the unit of work, not the repository. ``database.depends``
and ``database.transaction()`` commit once, when the request or block
succeeds, and roll back otherwise; repository methods only send their
statements (and flush), so several calls are atomic together and a failed
request leaves nothing half-written. Code outside a unit of work commits
its session itself.

Round trips are counted: `create`, `update` and `upsert` are one
``INSERT/UPDATE ... RETURNING`` statement each (no refresh afterwards),
`get` answers from the session's identity map when it can, and
`list_and_count` reads the total with ``count(*) OVER ()`` in the same query
(a second query only for a page past the end, which returns no rows to carry
the total, and when `options` or a ``lazy="joined"`` collection may repeat
rows). `bulk_insert` uses ``COPY`` on asyncpg.

Database errors are translated here, once: a unique violation raises
`Conflict`, a foreign-key, check or not-null violation `ConstraintViolation`
(both with the constraint's name), a value that does not fit its column
`InvalidValue`, a missing row `NotFound`; Plinth's FastAPI handlers answer
them with 409, 422, 422 and 404. After such an error the
transaction is aborted: let the unit of work roll it back.

Relationships never load behind your back. Async code cannot lazy-load on
attribute access (SQLAlchemy's ``MissingGreenlet``), so the first repository
of a model checks every relationship of its registry and refuses
``lazy="select"`` (the default) and ``"dynamic"`` with a `ConfigurationError`
naming the attribute. Declare ``relationship(..., lazy="raise")`` and load
what a call needs with ``options=[selectinload(User.batches)]``; an
unloaded relationship then raises an error naming it. Set
``strict_loading = False`` on a repository to skip the check.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, NoReturn, TypeVar, cast, overload

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapper, Session
from sqlalchemy.orm.interfaces import ORMOption

from plinth.driver_errors import translate_dbapi_error
from plinth.errors import ConfigurationError, NotFound
from plinth.repository import mapping
from plinth.repository.pagination import (
    OrderBy,
    Page,
    check_keyset,
    decode_cursor,
    encode_cursor,
    keyset_condition,
    resolve_order,
)

__all__ = ["Repository"]

ModelT = TypeVar("ModelT", bound=DeclarativeBase)
SchemaT = TypeVar("SchemaT", bound=BaseModel)


class Repository(Generic[ModelT]):
    """Data access for one mapped model on one `AsyncSession`.

    Subclass with the model as type argument (``Repository[User]``). Filters
    are SQL expressions (``User.age > 30``) and/or ``column=value`` keywords.
    Not safe to share between concurrent tasks, like its session.
    """

    model: type[ModelT]
    """The mapped class, taken from the type argument (``Repository[User]``)."""
    strict_loading: ClassVar[bool] = True
    """Refuse relationships that could lazy-load (see the module docstring)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mapping.bind_model_argument(cls, Repository)

    def __init__(self, session: AsyncSession) -> None:
        model = getattr(self, "model", None)
        if model is None:
            raise ConfigurationError(
                f"{type(self).__name__} has no model: subclass Repository[YourModel]"
            )
        self.session = session
        """The `AsyncSession` every statement goes through; the repository never commits it."""
        self.mapper: Mapper[ModelT] = model.__mapper__
        """The model's SQLAlchemy `Mapper`."""
        registry = self.mapper.registry
        count = len(registry.mappers)
        if self.strict_loading and mapping.checked.get(registry) != count:
            mapping.check_relationships(self.mapper)
            mapping.checked[registry] = count
        joins = mapping.joins_cache.get(registry)
        if joins is None or joins[0] != count:
            joins = mapping.joins_cache[registry] = (count, mapping.joins_eagerly(self.mapper))
        self._joins_eagerly = joins[1]

    # -- reading ------------------------------------------------------------

    async def get(self, id: Any, *, options: Sequence[ORMOption] = ()) -> ModelT | None:
        """The row with primary key `id` (a tuple for composite keys), or None.

        Without `options` a row already in the session costs no query; with
        them the row is read again, so that the options apply to it.
        """
        if options:
            return await self.session.get(self.model, id, options=options, populate_existing=True)
        params = None if self.session.identity_map else mapping.pk_params(self.mapper, id)
        if params is None:
            # The identity map may hold the row, and `session.get` knows how to look.
            return await self.session.get(self.model, id)
        # An empty identity map cannot hold it: skip building a new SELECT
        # (and its cache key) on every call, as `session.get` does.
        result = await self.session.execute(
            mapping.by_pk_statement(type(self), self.mapper), params
        )
        if self._joins_eagerly:  # a joined collection repeats the row
            result = result.unique()
        return cast("ModelT | None", result.scalar_one_or_none())

    async def get_one(self, id: Any, *, options: Sequence[ORMOption] = ()) -> ModelT:
        """The row with primary key `id`; `NotFound` if there is none."""
        row = await self.get(id, options=options)
        if row is None:
            raise NotFound(f"{self.model.__name__} {id} not found")
        return row

    async def first(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        options: Sequence[ORMOption] = (),
        **by: Any,
    ) -> ModelT | None:
        """The first matching row in `order_by` order, or None."""
        rows = await self.list(*where, order_by=order_by, limit=1, options=options, **by)
        return rows[0] if rows else None

    async def exists(self, *where: ColumnElement[bool], **by: Any) -> bool:
        """Whether any row matches."""
        query = select(self.model).where(*self._where(where, by)).exists()
        return bool(await self.session.scalar(select(query)))

    async def count(self, *where: ColumnElement[bool], **by: Any) -> int:
        """The number of matching rows."""
        query = select(func.count()).select_from(self.model).where(*self._where(where, by))
        return int(await self.session.scalar(query) or 0)

    async def list(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int | None = None,
        offset: int = 0,
        after: str | None = None,
        options: Sequence[ORMOption] = (),
        **by: Any,
    ) -> builtins.list[ModelT]:
        """Matching rows in `order_by` order (primary key last, as tie-breaker).

        Paginate with `limit`/`offset`, or by keyset with `after` (a cursor
        from `page`), which needs NOT NULL ordering columns.
        """
        query = self._select(where, by, order_by, limit, offset, after, options)
        return await self._all(query, options)

    async def page(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int = 20,
        after: str | None = None,
        options: Sequence[ORMOption] = (),
        **by: Any,
    ) -> Page[ModelT]:
        """One keyset page: up to `limit` rows after the cursor `after`.

        Pass the returned `Page.next_cursor` as `after` for the next page (None
        means the last page). The ordering must use NOT NULL mapped columns
        (`ValueError` otherwise); a cursor that is not one of ours, or an unknown
        ordering name, is a `DataError` (400).
        """
        terms = resolve_order(self.mapper, order_by)
        check_keyset(terms)
        query = self._select(where, by, order_by, limit + 1, 0, after, options)
        items = await self._all(query, options)
        if len(items) <= limit:
            return Page(items, None)
        last = items[limit - 1]
        return Page(items[:limit], encode_cursor([getattr(last, t.key) for t in terms]))  # type: ignore[arg-type]

    async def list_and_count(
        self,
        *where: ColumnElement[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int | None = None,
        offset: int = 0,
        options: Sequence[ORMOption] = (),
        **by: Any,
    ) -> tuple[builtins.list[ModelT], int]:
        """A page of matching rows and the total number of matching rows."""
        query = self._select(where, by, order_by, limit, offset, None, options)
        if options or self._joins_eagerly:
            # A collection loaded by JOIN repeats its parent's row, which the
            # window would count: count separately.
            return await self._all(query, options), await self.count(*where, **by)
        total = func.count().over().label("plinth_total")
        rows = (await self.session.execute(query.add_columns(total))).all()
        if rows:
            return [row[0] for row in rows], int(rows[0][1])
        # No rows carry the window total past the last page: count separately.
        return [], (await self.count(*where, **by)) if offset else 0

    async def refresh(self, instance: ModelT) -> ModelT:
        """Read `instance`'s row again, e.g. after a trigger changed it."""
        await self.session.refresh(instance)
        return instance

    # -- writing ------------------------------------------------------------

    @overload
    async def create(self, *, into: None = None, **values: Any) -> ModelT: ...
    @overload
    async def create(self, *, into: type[SchemaT], **values: Any) -> SchemaT: ...
    async def create(self, *, into: type[BaseModel] | None = None, **values: Any) -> Any:
        """Insert one row and return it, server defaults included (one statement).

        With ``into=Schema`` the row comes back as that Pydantic model, from a
        Core ``INSERT ... RETURNING`` of the schema's columns: no ORM instance
        (nor identity-map entry) is built, which halves the client's work for a
        create endpoint that answers with the schema anyway (a model that
        inherits a mapped class goes through the ORM, then into the schema).
        """
        if into is not None and self.mapper.inherits is None:
            keys = tuple(sorted(values))
            query, returned = mapping.insert_returning(self.mapper, into, keys)
            params = {f"plinth_v_{key}": value for key, value in values.items()}
            try:
                # One greenlet switch, past the ORM's execute (this is Core).
                row = await self.session.run_sync(_insert_one, self.mapper, query, params)
            except DBAPIError as exc:
                _raise_translated(exc)
            return into.model_validate(dict(zip(returned, row, strict=True)))
        query = pg_insert(self.model).values(**values).returning(self.model)
        row = await self._scalar(query)
        # An inheriting model: the ORM sets its discriminator and parent rows.
        return row if into is None else into.model_validate(row, from_attributes=True)

    async def update(self, id: Any, **values: Any) -> ModelT:
        """Update the row with primary key `id` and return it; `NotFound` if absent."""
        query = (
            sql_update(self.model)
            .where(self._pk_is(id))
            .values(**values)
            .returning(self.model)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        row = await self._scalar(query)
        if row is None:
            raise NotFound(f"{self.model.__name__} {id} not found")
        return cast(ModelT, row)

    async def update_many(
        self, *where: ColumnElement[bool], values: Mapping[str, Any], **by: Any
    ) -> builtins.list[ModelT]:
        """Update every matching row and return them as updated.

        Returning the rows keeps objects already in the session current, even
        for SQL-expression values (``func.now()``) that would otherwise leave
        them expired and unreadable in async code.
        """
        query = (
            sql_update(self.model)
            .where(*self._where(where, by))
            .values(**values)
            .returning(self.model)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return builtins.list((await self._execute(query)).scalars())

    async def delete(self, id: Any) -> None:
        """Delete the row with primary key `id`; `NotFound` if absent."""
        if not await self.delete_many(self._pk_is(id)):
            raise NotFound(f"{self.model.__name__} {id} not found")

    async def delete_many(self, *where: ColumnElement[bool], **by: Any) -> int:
        """Delete every matching row; return how many were deleted."""
        query = sql_delete(self.model).where(*self._where(where, by))
        result = await self._execute(query)
        return int(result.rowcount)

    async def upsert(
        self,
        values: Mapping[str, Any],
        *,
        conflict: Sequence[str],
        update: Sequence[str] | None = None,
    ) -> ModelT:
        """Insert, or on a unique conflict over the columns `conflict` update
        the columns `update` (default: every other given column); return the row."""
        insert = pg_insert(self.model).values(**values)
        if update is None:
            update = [key for key in values if key not in conflict]
        # DO NOTHING would return no row on conflict; a no-op update returns it.
        keys = update or conflict[:1]
        query = (
            insert.on_conflict_do_update(
                index_elements=[self._column(key) for key in conflict],
                set_={self._column(k).name: insert.excluded[self._column(k).name] for k in keys},
            )
            .returning(self.model)
            .execution_options(populate_existing=True)
        )
        return cast(ModelT, await self._scalar(query))

    async def bulk_insert(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert many rows (no RETURNING); return how many. See `plinth.repository.bulk`."""
        from plinth.repository.bulk import bulk_insert

        return await bulk_insert(self.session, self.mapper, rows)

    # -- helpers ------------------------------------------------------------

    def _column(self, key: str) -> Any:
        prop = self.mapper.column_attrs.get(key)
        if prop is None:
            valid = ", ".join(sorted(self.mapper.column_attrs.keys()))
            raise TypeError(
                f"{self.model.__name__} has no column attribute {key!r}; valid: {valid}"
            )
        return prop.columns[0]

    def _where(
        self, where: Sequence[ColumnElement[bool]], by: Mapping[str, Any]
    ) -> builtins.list[ColumnElement[bool]]:
        return [*where, *(self._column(key) == value for key, value in by.items())]

    def _pk_is(self, id: Any) -> ColumnElement[bool]:
        keys = self.mapper.primary_key
        if len(keys) == 1:
            return cast("ColumnElement[bool]", keys[0] == id)
        return tuple_(*keys) == tuple_(*id)

    def _select(
        self,
        where: Sequence[ColumnElement[bool]],
        by: Mapping[str, Any],
        order_by: OrderBy | Sequence[OrderBy] | None,
        limit: int | None,
        offset: int,
        after: str | None,
        options: Sequence[ORMOption],
    ) -> Select[ModelT]:
        terms = resolve_order(self.mapper, order_by)
        conditions = self._where(where, by)
        if after is not None:
            check_keyset(terms)
            conditions.append(keyset_condition(terms, decode_cursor(after, terms)))
        query = select(self.model).where(*conditions).order_by(*(t.clause() for t in terms))
        if options:
            query = query.options(*options)
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        return query

    async def _all(
        self, query: Select[ModelT], options: Sequence[ORMOption]
    ) -> builtins.list[ModelT]:
        result = await self.session.scalars(query)
        if options or self._joins_eagerly:  # a joined collection repeats its parent's row
            result = result.unique()
        return builtins.list(result)

    async def _execute(self, query: Any) -> Any:
        try:
            return await self.session.execute(query)
        except DBAPIError as exc:
            _raise_translated(exc)

    async def _scalar(self, query: Any) -> Any:
        return (await self._execute(query)).scalar_one_or_none()


def _insert_one(session: Session, mapper: Mapper[Any], query: Any, params: Any) -> Any:
    # The session's connection as `session.execute` would pick it (the primary
    # for a write, with read replicas; `after_begin` hooks such as the tenant's run).
    connection = session.connection(bind_arguments={"mapper": mapper, "clause": query})
    return connection.execute(query, params).one()


def _raise_translated(exc: DBAPIError) -> NoReturn:
    """Raise `exc` as Plinth's error for it (`Conflict`, ...), or as it is."""
    error = translate_dbapi_error(exc)
    if error is None:
        raise exc
    raise error from exc
