"""Batches: a user's uploads of 1-20 project cards."""

from __future__ import annotations

from uuid import UUID

from plinth import Repository
from rndcards.models import Batch


class BatchRepository(Repository[Batch]):
    """`plinth.Repository` for batches, with the seed's methods."""

    # The seed's signature narrows the generic `create(**values)`.
    async def create(self, user_id: UUID, name: str, total_projects: int) -> Batch:  # type: ignore[override]
        """Insert a batch (status ``uploading``, expiring in 90 days).

        `plinth.ConstraintViolation` for an unknown user or a size outside 1-20.
        """
        return await super().create(user_id=user_id, name=name, total_projects=total_projects)

    async def get_by_id(self, batch_id: UUID) -> Batch | None:
        """The batch, or None."""
        return await self.get(batch_id)

    async def list_by_user(self, user_id: UUID, limit: int = 10, offset: int = 0) -> list[Batch]:
        """The user's batches except archived ones, newest first."""
        return await self.list(
            Batch.status != "archived",
            user_id=user_id,
            order_by=Batch.created_at.desc(),
            limit=limit,
            offset=offset,
        )

    async def update_status(self, batch_id: UUID, status: str) -> None:
        """Set the status; `plinth.ConstraintViolation` for a status the schema does
        not allow, `plinth.NotFound` if no such batch."""
        await self.update(batch_id, status=status)
