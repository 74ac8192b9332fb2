"""Users: created on first sign-in through Cognito, found by id or e-mail."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import func

from plinth import Repository
from rndcards.models import User


class UserRepository(Repository[User]):
    """`plinth.Repository` for users, with the seed's methods."""

    # The seed's signature narrows the generic `create(**values)`.
    async def create(  # type: ignore[override]
        self, email: str, name: str, cognito_sub: str, company: str | None = None
    ) -> User:
        """Insert a user; `plinth.Conflict` if the e-mail or Cognito id is taken."""
        return await super().create(
            email=email, name=name, cognito_sub=cognito_sub, company=company
        )

    async def get_by_id(self, user_id: UUID) -> User | None:
        """The user, or None."""
        return await self.get(user_id)

    async def get_by_email(self, email: str) -> User | None:
        """The user with this e-mail, or None."""
        return await self.first(email=email)

    async def update_last_login(self, user_id: UUID) -> None:
        """Set ``last_login_at`` to the server's now; `plinth.NotFound` if no such user."""
        await self.update(user_id, last_login_at=func.now())
