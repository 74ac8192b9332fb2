"""Typed async data access: `Repository[Model]`, pages and cursors, COPY.

    base        Repository: get, list, page, list_and_count, create, update, upsert, ...
    mapping     what a repository checks and caches about its model's mapping
    pagination  ordering, offset pages, opaque keyset cursors (Page)
    bulk        bulk_insert: COPY on asyncpg, executemany elsewhere
    reads       Reads: Core reads into rows or Pydantic models, no Session
    read_statements  how Reads builds each read shape's statement once, and converts rows

Needs only SQLAlchemy and `plinth.errors`: a repository works on any
`AsyncSession`, so it imports nothing of `plinth.db`.
"""

from __future__ import annotations

from plinth.repository.base import Repository as Repository
from plinth.repository.pagination import Page as Page
from plinth.repository.reads import Reads as Reads

__all__ = ["Page", "Reads", "Repository"]
