"""What a repository needs to know about its model's mapping.

The relationship check (nothing may lazy-load in async code), whether rows
may repeat through a joined load, a prebuilt primary-key SELECT, and the
prebuilt Core ``INSERT ... RETURNING`` of `Repository.create` with ``into=``.
"""

from __future__ import annotations

import builtins
import weakref
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Insert, Select, bindparam, insert, select
from sqlalchemy.orm import Mapper

from plinth.errors import ConfigurationError

__all__ = [
    "bind_model_argument",
    "by_pk_statement",
    "check_relationships",
    "checked",
    "column_of",
    "insert_returning",
    "joins_cache",
    "joins_eagerly",
    "pk_params",
    "schema_columns",
]

_SAFE_LAZY = frozenset(
    ("raise", "raise_on_sql", "selectin", "joined", "subquery", "immediate", "noload", "write_only")
)
# Registry -> how many mappers it had when checked (models may be added later).
checked: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def check_relationships(mapper: Mapper[Any]) -> None:
    """Raise `ConfigurationError` for a relationship in `mapper`'s registry that
    would load on attribute access (impossible in async code)."""
    for other in mapper.registry.mappers:
        for rel in other.relationships:
            lazy: Any = rel.lazy
            lazy = {True: "select", False: "joined", None: "noload"}.get(lazy, lazy)
            if lazy not in _SAFE_LAZY:
                raise ConfigurationError(
                    f"{other.class_.__name__}.{rel.key} has lazy={rel.lazy!r}: reading it "
                    "would query the database on attribute access, which async code cannot do "
                    "(MissingGreenlet). Declare relationship(..., lazy='raise') and load it "
                    f"with options=[selectinload({other.class_.__name__}.{rel.key})], "
                    "or lazy='selectin' to always load it."
                )


# Registry -> (how many mappers it had, whether any relationship loads by JOIN).
joins_cache: weakref.WeakKeyDictionary[Any, tuple[int, bool]] = weakref.WeakKeyDictionary()


def joins_eagerly(mapper: Mapper[Any]) -> bool:
    """Whether any relationship in `mapper`'s registry loads by JOIN, so that
    rows may repeat and results must go through ``Result.unique()``."""
    relationships = (rel for other in mapper.registry.mappers for rel in other.relationships)
    return any(rel.lazy in ("joined", False) for rel in relationships)


# Repository class -> SELECT of its model by primary key, with bound parameters
# (keyed by the class, not the mapper, which the statement refers to).
_by_pk: weakref.WeakKeyDictionary[type, Select[Any]] = weakref.WeakKeyDictionary()


def by_pk_statement(repository: type, mapper: Mapper[Any]) -> Select[Any]:
    statement = _by_pk.get(repository)
    if statement is None:
        conditions = [
            column == bindparam(f"plinth_pk_{index}")
            for index, column in enumerate(mapper.primary_key)
        ]
        statement = _by_pk[repository] = select(mapper).where(*conditions)
    return statement


def pk_params(mapper: Mapper[Any], id: Any) -> dict[str, Any] | None:
    """The parameters of `by_pk_statement` for `id`; None for anything but a
    plain complete key (left to `session.get`, which normalises and checks it)."""
    keys = mapper.primary_key
    values: Any
    if len(keys) == 1:
        if isinstance(id, tuple | builtins.list | dict) or hasattr(id, "__composite_values__"):
            return None
        values = (id,)
    elif isinstance(id, tuple | builtins.list) and len(id) == len(keys):
        values = id
    else:
        return None
    if any(value is None for value in values):
        return None
    return {f"plinth_pk_{index}": value for index, value in enumerate(values)}


def bind_model_argument(cls: type, generic: type) -> None:
    """Set ``cls.model`` from its type argument (``Repository[User]``, ``Reads[User]``),
    unless the class names its model itself."""
    if "model" in cls.__dict__:
        return
    for base in getattr(cls, "__orig_bases__", ()):
        if get_origin(base) is generic:
            (model,) = get_args(base)
            if isinstance(model, type):
                cls.model = model  # type: ignore[attr-defined]


def column_of(mapper: Mapper[Any], key: str) -> Any:
    """The column of mapped attribute `key`; `TypeError` naming the valid ones."""
    prop = mapper.column_attrs.get(key)
    if prop is None:
        valid = ", ".join(sorted(mapper.column_attrs.keys()))
        raise TypeError(f"{mapper.class_.__name__} has no column attribute {key!r}; valid: {valid}")
    return prop.columns[0]


def schema_columns(mapper: Mapper[Any], into: type[BaseModel]) -> builtins.list[ColumnElement[Any]]:
    """`mapper`'s columns that `into` has a field (or alias) for, labelled by attribute name."""
    wanted = set(into.model_fields) | {f.alias for f in into.model_fields.values() if f.alias}
    picked: builtins.list[ColumnElement[Any]] = []
    for prop in mapper.column_attrs:
        if prop.key in wanted:
            column: Any = prop.columns[0]
            picked.append(column if column.key == prop.key else column.label(prop.key))
    if not picked:
        raise ConfigurationError(
            f"{into.__name__} has no field named after a column of {mapper.class_.__name__}"
        )
    return picked


_MAX_INSERTS = 1024
# (mapper, schema, value keys) -> the INSERT and the attribute names it returns, in order.
_inserts: dict[tuple[Any, ...], tuple[Insert, tuple[str, ...]]] = {}


def insert_returning(
    mapper: Mapper[Any], into: type[BaseModel], keys: tuple[str, ...]
) -> tuple[Insert, tuple[str, ...]]:
    """A Core ``INSERT`` of the attributes `keys` (bound as ``plinth_v_<key>``)
    returning the columns of `into`; built once per shape, so that SQLAlchemy's
    compiled cache answers it without rebuilding its cache key."""
    cache_key = (mapper, into, keys)
    entry = _inserts.get(cache_key)
    if entry is None:
        values = {
            column_of(mapper, key): bindparam(f"plinth_v_{key}", type_=column_of(mapper, key).type)
            for key in keys
        }
        columns = schema_columns(mapper, into)
        table: Any = mapper.local_table
        statement = insert(table).values(values).returning(*columns)
        if len(_inserts) >= _MAX_INSERTS:
            _inserts.clear()
        entry = _inserts[cache_key] = (statement, tuple(c.key for c in columns))  # type: ignore[misc]
    return entry
