"""Projects: the cards of a batch, whose scores and statuses feed the batch's figures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from plinth import Repository
from rndcards.models import Project


class ProjectRepository(Repository[Project]):
    """`plinth.Repository` for projects.

    Changing a project's score or status makes the database recompute its
    batch's ``average_quality_score`` and ``completed_projects`` (see
    `rndcards.triggers`); a batch already loaded in the session keeps its old
    figures until ``BatchRepository(session).refresh(batch)``.
    """

    # The seed's style of signature narrows the generic `create(**values)`.
    async def create(  # type: ignore[override]
        self, batch_id: UUID, row_number: int, input_data: dict[str, Any]
    ) -> Project:
        """Insert row `row_number` (1-20) of a batch; `plinth.Conflict` if taken."""
        return await super().create(batch_id=batch_id, row_number=row_number, input_data=input_data)

    async def list_by_batch(self, batch_id: UUID) -> list[Project]:
        """The batch's projects in spreadsheet order."""
        return await self.list(batch_id=batch_id, order_by="row_number")

    async def update_quality_score(self, project_id: UUID, quality_score: Decimal) -> None:
        """Set the score (0-100); `plinth.ConstraintViolation` outside that range."""
        await self.update(project_id, quality_score=quality_score)

    async def update_status(self, project_id: UUID, status: str) -> None:
        """Set the status; `plinth.ConstraintViolation` for one the schema does not allow."""
        await self.update(project_id, status=status)
