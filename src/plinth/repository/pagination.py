"""Ordering and keyset (cursor) pagination for `plinth.Repository`.

Offset pagination re-reads every skipped row and shifts when rows are added;
keyset pagination continues after the last row seen
(``WHERE (created_at, id) < (:c, :i)``), so it stays fast and stable on deep
pages. The cursor is the last row's ordering values, JSON in URL-safe base64:
opaque to clients, but not signed, so it must never carry anything that
authorises access (filters still come from the server).

Orderings are column attributes (``User.created_at``, ``User.created_at.desc()``)
or attribute names (``"created_at"``, ``"-created_at"`` for descending); names
come from clients, so an unknown one is a `DataError` (400) listing the valid
names. The primary key is appended as a tie-breaker when the ordering does not
include it, so pages never overlap or skip rows.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Column, ColumnElement, and_, or_, tuple_
from sqlalchemy.orm import Mapper, QueryableAttribute
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from plinth.errors import DataError

__all__ = ["OrderBy", "Ordering", "Page", "decode_cursor", "encode_cursor", "resolve_order"]

T = TypeVar("T")

OrderBy = str | ColumnElement[Any] | QueryableAttribute[Any]
"""One ordering term: ``"name"``, ``"-name"``, ``Model.name`` or ``Model.name.desc()``."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a keyset listing; pass `next_cursor` as ``after`` for the next."""

    items: list[T]
    """The rows of this page, at most the ``limit`` asked for."""
    next_cursor: str | None
    """The cursor of the next page, or None on the last page."""


@dataclass(frozen=True)
class Ordering:
    """A resolved ordering term; `key` is the mapped attribute (None for expressions)."""

    expression: ColumnElement[Any]
    key: str | None
    descending: bool
    column: Column[Any] | None

    def clause(self) -> ColumnElement[Any]:
        return self.expression.desc() if self.descending else self.expression.asc()


def _column_keys(mapper: Mapper[Any]) -> dict[Column[Any], str]:
    return {
        column: prop.key
        for prop in mapper.column_attrs
        for column in prop.columns
        if isinstance(column, Column)
    }


def _term(mapper: Mapper[Any], item: OrderBy, keys: dict[Column[Any], str]) -> Ordering:
    if isinstance(item, str):
        descending, name = item.startswith("-"), item.lstrip("-+")
        prop = mapper.column_attrs.get(name)
        if prop is None:
            valid = ", ".join(sorted(mapper.column_attrs.keys()))
            raise DataError(f"cannot order by {name!r}; valid: {valid}")
        named = prop.columns[0]
        assert isinstance(named, Column)
        return Ordering(named, name, descending, named)
    descending = False
    element: Any = item
    if isinstance(element, UnaryExpression) and element.modifier in (
        operators.desc_op,
        operators.asc_op,
    ):
        descending = element.modifier is operators.desc_op
        element = element.element
    if isinstance(element, QueryableAttribute):
        element = element.__clause_element__()
    # ORM attributes yield annotated copies of the table's Column; find the original.
    column: Column[Any] | None = next((c for c in keys if element is c or element.compare(c)), None)
    key = keys.get(column) if column is not None else None
    return Ordering(element, key, descending, column)


def resolve_order(
    mapper: Mapper[Any], order_by: OrderBy | Sequence[OrderBy] | None
) -> list[Ordering]:
    """Resolve `order_by` against `mapper`, appending the primary key as tie-breaker.

    The tie-breaker takes the direction of the last term, so a uniform ordering
    stays uniform and keyset pagination can use one row comparison.
    """
    keys = _column_keys(mapper)
    items: Sequence[OrderBy]
    if order_by is None:
        items = ()
    elif isinstance(order_by, str | ColumnElement | QueryableAttribute):
        items = (order_by,)
    else:
        items = order_by
    terms = [_term(mapper, item, keys) for item in items]
    seen = {term.column for term in terms if term.column is not None}
    descending = terms[-1].descending if terms else False
    for column in mapper.primary_key:
        if column not in seen:
            assert isinstance(column, Column)
            terms.append(Ordering(column, keys[column], descending, column))
    return terms


def keyset_condition(terms: Sequence[Ordering], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after `values` in the ordering `terms`."""
    if len({term.descending for term in terms}) == 1:
        # One row comparison; PostgreSQL can use a matching composite index.
        left = tuple_(*(term.expression for term in terms))
        right = tuple_(*values)
        return left < right if terms[0].descending else left > right
    # Mixed directions: (a > x) OR (a = x AND b < y) OR ...
    branches = []
    for index, term in enumerate(terms):
        equal = [terms[i].expression == values[i] for i in range(index)]
        after = (
            term.expression < values[index] if term.descending else term.expression > values[index]
        )
        branches.append(and_(*equal, after))
    return or_(*branches)


def check_keyset(terms: Sequence[Ordering]) -> None:
    """Raise `ValueError` unless every term is a NOT NULL mapped column."""
    for term in terms:
        if term.key is None or term.column is None:
            raise ValueError(
                f"keyset pagination orders by mapped columns only, not {term.expression}"
            )
        if term.column.nullable:
            raise ValueError(
                f"keyset pagination needs NOT NULL columns; {term.column.table.name}."
                f"{term.column.name} is nullable (order by another column, or use offset)"
            )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.time | uuid.UUID | decimal.Decimal):
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    raise TypeError(f"cannot put a {type(value).__name__} in a cursor")


def encode_cursor(values: Sequence[Any]) -> str:
    """The opaque cursor for a row whose ordering values are `values`."""
    raw = json.dumps(list(values), default=_json_default, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_PARSERS: dict[type, Callable[[Any], Any]] = {
    datetime.datetime: datetime.datetime.fromisoformat,
    datetime.date: datetime.date.fromisoformat,
    datetime.time: datetime.time.fromisoformat,
    uuid.UUID: uuid.UUID,
    decimal.Decimal: decimal.Decimal,
}


def _parse(term: Ordering, value: Any) -> Any:
    assert term.column is not None
    try:
        python_type: type | None = term.column.type.python_type
    except NotImplementedError:
        python_type = None
    parser = _PARSERS.get(python_type) if python_type is not None else None
    if parser is not None:
        return parser(value)
    accepted = {float: (int, float)}.get(python_type, python_type)  # type: ignore[arg-type]
    if python_type in (int, float, str, bool) and not isinstance(value, accepted):  # type: ignore[arg-type]
        raise ValueError("wrong type")
    return value


def decode_cursor(cursor: str, terms: Sequence[Ordering]) -> list[Any]:
    """The ordering values in `cursor`; a `DataError` (400) if it is not one of ours."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(terms):
            raise ValueError("wrong length")
        return [_parse(term, value) for term, value in zip(terms, values, strict=True)]
    except (ValueError, TypeError, binascii.Error, decimal.InvalidOperation):
        raise DataError("invalid cursor: pass the next_cursor of the previous page") from None
