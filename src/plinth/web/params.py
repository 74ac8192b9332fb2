"""Bounds for request data, so that a value PostgreSQL cannot take is a 422 at the door.

Use them in FastAPI signatures and Pydantic models alike::

    @router.get("/notes")
    async def notes(session: Session, limit: Limit = 20, offset: Offset = 0) -> ...

    class NoteIn(BaseModel):
        text: Annotated[PgText, Field(max_length=255)]
        meta: BoundedJsonObject | None = None

- `Int4` / `Int8`: an ``integer`` / ``bigint`` value; `Int4Id` / `Int8Id`:
  a positive one (an identity key).
- `Limit`: 1 to `MAX_LIMIT` rows; another maximum is
  ``Annotated[int, limit_bounds(500)]``. `Offset`: 0 to the ``bigint`` maximum.
- `PgText`: text without NUL characters or lone UTF-16 surrogates, which
  PostgreSQL's ``text`` cannot store (JSON allows ``"\\u0000"`` and ``"\\ud800"``).
- `BoundedJson` / `BoundedJsonObject`: a JSON value at most `MAX_JSON_DEPTH`
  levels deep, its strings `PgText`. Deeper values would be stored, and then
  fail when the response is serialized.

The checks never repeat the value in their messages. Whatever gets past
them is still translated by `plinth.errors.translate_dbapi_error`.
"""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Interval
from pydantic import AfterValidator, BeforeValidator

__all__ = [
    "INT4_MAX",
    "INT8_MAX",
    "MAX_JSON_DEPTH",
    "MAX_LIMIT",
    "BoundedJson",
    "BoundedJsonObject",
    "Int4",
    "Int4Id",
    "Int8",
    "Int8Id",
    "Limit",
    "Offset",
    "PgText",
    "limit_bounds",
]

INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1
MAX_LIMIT = 100
"""The default upper bound of `Limit`."""
MAX_JSON_DEPTH = 32
"""Levels of nesting a `BoundedJson` value may have; Pydantic's serializer
gives up at about 255, and no honest document comes close."""


def limit_bounds(maximum: int = MAX_LIMIT) -> Interval:
    """1 to `maximum`, for ``Annotated[int, limit_bounds(500)]``."""
    return Interval(ge=1, le=maximum)


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "text must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text must not contain lone UTF-16 surrogates"
    return None


def _storable_text(value: str) -> str:
    problem = _text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _bounded_json(value: Any) -> Any:
    """Check depth and strings without recursion: a deep value must not crash the check."""
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        current, depth = todo.pop()
        if isinstance(current, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            items = current.items() if isinstance(current, dict) else enumerate(current)
            for key, item in items:
                if isinstance(key, str):
                    todo.append((key, depth))
                todo.append((item, depth + 1))
        elif isinstance(current, str) and (problem := _text_problem(current)):
            raise ValueError(f"JSON {problem}")
    return value


Int4 = Annotated[int, Interval(ge=-(2**31), le=INT4_MAX)]
"""A PostgreSQL ``integer``."""
Int8 = Annotated[int, Interval(ge=-(2**63), le=INT8_MAX)]
"""A PostgreSQL ``bigint``."""
Int4Id = Annotated[int, Interval(ge=1, le=INT4_MAX)]
"""A positive ``integer``: an identity or serial key."""
Int8Id = Annotated[int, Interval(ge=1, le=INT8_MAX)]
"""A positive ``bigint``: an identity or bigserial key."""
Limit = Annotated[int, limit_bounds()]
"""How many rows: 1 to `MAX_LIMIT`; give the default in the signature (``= 20``)."""
Offset = Annotated[int, Interval(ge=0, le=INT8_MAX)]
"""How many rows to skip: 0 to the ``bigint`` maximum."""
PgText = Annotated[str, AfterValidator(_storable_text)]
"""Text that PostgreSQL can store: no NUL, no lone surrogate."""
BoundedJson = Annotated[Any, BeforeValidator(_bounded_json)]
"""Any JSON value, at most `MAX_JSON_DEPTH` deep, with storable strings."""
BoundedJsonObject = Annotated[dict[str, Any], BeforeValidator(_bounded_json)]
"""A JSON object, at most `MAX_JSON_DEPTH` deep, with storable strings."""
