"""How `plinth.Reads` builds each read's statement, once per shape, and converts its rows.

A read's *shape* is everything but its values: the model (and the `Reads`
class when it adds `expressions`), the schema, the filter names, the ordering
names, whether it pages or counts. The statement for a shape is built once,
with bound parameters for the values, and kept (`_templates`, bounded), so
SQLAlchemy's compiled cache finds it without rebuilding its cache key. Reads
with ``where`` expressions, a None filter or orderings given as expressions
are built each time.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter
from sqlalchemy import Column, ColumnElement, Select, bindparam, func, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import DeclarativeBase, Mapper
from sqlalchemy.sql.elements import ClauseElement

from plinth.errors import ConfigurationError
from plinth.repository.pagination import (
    OrderBy,
    Ordering,
    check_keyset,
    decode_cursor,
    keyset_condition,
    resolve_order,
)

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnClause

__all__ = ["TOTAL", "ReadStatements", "order_names"]

ModelT = TypeVar("ModelT", bound=DeclarativeBase)

TOTAL = "plinth_total"
"""The label of the window count a page-with-total reads beside its rows."""
_MAX_TEMPLATES = 1024

# Prebuilt statements, keyed by the read's shape (model, schema, filter names,
# ordering names, ...); their values are bound parameters.
_templates: dict[tuple[Any, ...], tuple[Select[Any], list[Ordering]]] = {}


class ReadStatements(Generic[ModelT]):
    """The statement building and row conversion under `plinth.Reads`."""

    model: type[ModelT]
    mapper: Mapper[ModelT]
    expressions: ClassVar[Mapping[str, ColumnElement[Any]]] = {}
    """SQL expressions selected as if they were columns, by name: a schema field
    of that name reads it (``{"has_token": User.token.is_not(None)}``: a flag
    without reading the token). Rows without a schema carry them too."""
    _column_cache: ClassVar[dict[tuple[Any, ...], tuple[ColumnElement[Any], ...]]] = {}
    _key_cache: ClassVar[dict[tuple[Any, ...], tuple[str, ...]]] = {}

    @staticmethod
    def _template(key: tuple[Any, ...]) -> tuple[Select[Any], builtins.list[Ordering]] | None:
        return _templates.get(key)

    @property
    def _shape(self) -> Any:
        """What the selected columns depend on: the model, and the class when it
        adds `expressions` (prebuilt statements and column lists are keyed by it)."""
        return (self.model, type(self)) if self.expressions else self.model

    def _convert(
        self, rows: Sequence[Row[Any]], into: type[BaseModel] | None
    ) -> builtins.list[Any]:
        if into is None:
            return builtins.list(rows)
        # One validation of a list of plain dicts: pydantic-core loops in Rust, and
        # zip() stops at the schema's columns (a total or cursor column follows them).
        keys = self._keys(into)
        return _adapter(into).validate_python([dict(zip(keys, row, strict=False)) for row in rows])

    def _keys(self, into: type[BaseModel] | None) -> tuple[str, ...]:
        """The attribute names of `_columns(into)`, in order."""
        keys = self._key_cache.get((self._shape, into))
        if keys is None:
            columns = self._columns(into)
            keys = self._key_cache[(self._shape, into)] = tuple(c.key for c in columns)  # type: ignore[misc]
        return keys

    def _columns(self, into: type[BaseModel] | None) -> tuple[ColumnElement[Any], ...]:
        """The model's columns, labelled by attribute name; only the schema's fields."""
        key = (self._shape, into)
        columns = self._column_cache.get(key)
        if columns is None:
            wanted = None
            if into is not None:
                wanted = set(into.model_fields)
                wanted |= {f.alias for f in into.model_fields.values() if f.alias}
            picked: builtins.list[ColumnElement[Any]] = []
            for prop in self.mapper.column_attrs:
                if wanted is not None and prop.key not in wanted:
                    continue
                column: ColumnClause[Any] = prop.columns[0]  # type: ignore[assignment]
                picked.append(column if column.key == prop.key else column.label(prop.key))
            for name, expression in self.expressions.items():
                if wanted is None or name in wanted:
                    picked.append(expression.label(name))
            if not picked:
                raise ConfigurationError(
                    f"{into.__name__ if into else ''} has no field named after a column of "
                    f"{self.model.__name__}"
                )
            columns = self._column_cache[key] = tuple(picked)
        return columns

    def _column(self, key: str) -> Column[Any]:
        prop = self.mapper.column_attrs.get(key)
        if prop is None:
            valid = ", ".join(sorted(self.mapper.column_attrs.keys()))
            raise TypeError(
                f"{self.model.__name__} has no column attribute {key!r}; valid: {valid}"
            )
        return prop.columns[0]  # type: ignore[return-value]

    def _remember(
        self, key: tuple[Any, ...], query: Select[Any], terms: builtins.list[Ordering]
    ) -> tuple[Select[Any], builtins.list[Ordering]]:
        if len(_templates) >= _MAX_TEMPLATES:
            _templates.clear()
        entry = _templates[key] = (query, terms)
        return entry

    def _select(
        self,
        where: Sequence[ColumnElement[bool]],
        by: dict[str, Any],
        order_by: OrderBy | Sequence[OrderBy] | None,
        limit: int | None,
        offset: int,
        after: str | None,
        into: type[BaseModel] | None,
        *,
        keyset: bool = False,
        total: bool = False,
    ) -> tuple[Select[Any], dict[str, Any], builtins.list[Ordering]]:
        """The SELECT of a list shape and its parameters; prebuilt when the shape
        has no `where` expressions, no None filter and only named orderings."""
        names = order_names(order_by)
        cacheable = (
            not where
            and names is not None
            and all(v is not None and not isinstance(v, ClauseElement) for v in by.values())
        )
        key = (
            "list", self._shape, into, tuple(sorted(by)), names,
            limit is None, bool(offset), after is None, keyset, total,
        )  # fmt: skip
        entry = _templates.get(key) if cacheable else None
        if entry is None:
            terms = resolve_order(self.mapper, order_by)
            if keyset or after is not None:
                check_keyset(terms)
            conditions: builtins.list[ColumnElement[bool]] = builtins.list(where)
            for name, value in by.items():
                column = self._column(name)
                conditions.append(
                    column == bindparam(f"plinth_by_{name}", type_=column.type)
                    if cacheable
                    else column == value
                )
            if after is not None:
                conditions.append(
                    keyset_condition(
                        terms,
                        [
                            bindparam(f"plinth_after_{index}", type_=term.expression.type)
                            for index, term in enumerate(terms)
                        ],
                    )
                )
            columns = builtins.list(self._columns(into))
            if keyset:  # the cursor needs every ordering column
                present = {getattr(c, "key", None) for c in columns}
                columns += [
                    self._column(t.key).label(t.key)  # type: ignore[arg-type]
                    for t in terms
                    if t.key not in present
                ]
            if total:
                columns.append(func.count().over().label(TOTAL))
            query = select(*columns).where(*conditions).order_by(*(t.clause() for t in terms))
            if limit is not None:
                query = query.limit(bindparam("plinth_limit"))
            if offset:
                query = query.offset(bindparam("plinth_offset"))
            entry = self._remember(key, query, terms) if cacheable else (query, terms)
        query, terms = entry
        params: dict[str, Any] = {}
        if cacheable:
            params.update({f"plinth_by_{name}": value for name, value in by.items()})
        if after is not None:
            values = decode_cursor(after, terms)
            params.update({f"plinth_after_{i}": value for i, value in enumerate(values)})
        if limit is not None:
            params["plinth_limit"] = limit
        if offset:
            params["plinth_offset"] = offset
        return query, params, terms

    def _count_query(
        self, where: Sequence[ColumnElement[bool]], by: dict[str, Any], *, exists: bool = False
    ) -> tuple[Select[Any], dict[str, Any]]:
        conditions = [*where, *(self._column(name) == value for name, value in by.items())]
        if exists:
            inner = select(self.mapper.primary_key[0]).where(*conditions)
            return select(inner.exists()), {}
        table = self.mapper.local_table
        return select(func.count()).select_from(table).where(*conditions), {}


@functools.cache
def _adapter(into: type[BaseModel]) -> TypeAdapter[builtins.list[Any]]:
    return TypeAdapter(builtins.list[into])  # type: ignore[valid-type]


def order_names(order_by: OrderBy | Sequence[OrderBy] | None) -> tuple[str, ...] | None:
    """`order_by` as a tuple of names, or None when it holds expressions."""
    if order_by is None:
        return ()
    if isinstance(order_by, str):
        return (order_by,)
    if isinstance(order_by, ColumnElement) or not isinstance(order_by, Sequence):
        return None
    if all(isinstance(item, str) for item in order_by):
        return tuple(order_by)  # type: ignore[arg-type]
    return None
