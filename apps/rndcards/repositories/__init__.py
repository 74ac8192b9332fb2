"""Data access for the R&D cards: one repository per aggregate, built on `plinth.Repository`.

Methods never commit: the unit of work (``database.depends`` in routes,
``database.transaction()`` elsewhere) commits once, or rolls back everything.
"""

from __future__ import annotations

from rndcards.repositories.batch_repository import BatchRepository
from rndcards.repositories.project_repository import ProjectRepository
from rndcards.repositories.user_repository import UserRepository

__all__ = ["BatchRepository", "ProjectRepository", "UserRepository"]
