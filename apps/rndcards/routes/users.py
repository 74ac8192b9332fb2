"""Users and their batches: how a route gets its session and repositories.

``Session`` (``rndcards.db``) opens one unit of work per request and commits
it before the response is sent; the repositories below share it, so a
request's writes land together or not at all. Plain reads go through
``UserReads`` / ``BatchReads`` (`plinth.Reads`: Core rows into the response
model, one round trip, no session). Repository errors become 404/409/422
through Plinth's exception handlers.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response

from plinth import Limit, NotFound, Offset, PgText
from rndcards.db import BatchReads, Session, UserReads
from rndcards.models import Batch
from rndcards.repositories import BatchRepository, UserRepository
from rndcards.schemas import BatchIn, BatchOut, UserIn, UserOut


def user_repository(session: Session) -> UserRepository:
    return UserRepository(session)


def batch_repository(session: Session) -> BatchRepository:
    return BatchRepository(session)


Users = Annotated[UserRepository, Depends(user_repository)]
Batches = Annotated[BatchRepository, Depends(batch_repository)]

router = APIRouter(prefix="/users", tags=["users"])


@router.post("", status_code=201)
async def create_user(body: UserIn, users: Users) -> UserOut:
    """Register a user; 409 if the e-mail or Cognito id is taken."""
    user = await users.create(body.email, body.name, body.cognito_sub, company=body.company)
    return UserOut.model_validate(user)


@router.get("")
async def find_user(users: UserReads, email: Annotated[PgText, Query(max_length=255)]) -> UserOut:
    """The user with this e-mail."""
    found = await users.list(email=email, limit=1, into=UserOut)
    if not found:
        raise NotFound(f"no user with e-mail {email!r}")
    return found[0]


@router.get("/{user_id}")
async def get_user(user_id: UUID, users: UserReads) -> UserOut:
    user = await users.get(user_id, into=UserOut)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


@router.post("/{user_id}/login", status_code=204)
async def record_login(user_id: UUID, users: Users) -> Response:
    """Stamp ``last_login_at``; 404 for an unknown user."""
    await users.update_last_login(user_id)
    return Response(status_code=204)


@router.post("/{user_id}/batches", status_code=201)
async def create_batch(user_id: UUID, body: BatchIn, users: Users, batches: Batches) -> BatchOut:
    await users.get_one(user_id)
    batch = await batches.create(user_id, body.name, body.total_projects)
    return BatchOut.model_validate(batch)


@router.get("/{user_id}/batches")
async def list_batches(
    user_id: UUID,
    batches: BatchReads,
    limit: Limit = 10,
    offset: Offset = 0,
) -> list[BatchOut]:
    """The user's batches, newest first, archived ones left out
    (as `BatchRepository.list_by_user`)."""
    return await batches.list(
        Batch.status != "archived",
        user_id=user_id,
        order_by=Batch.created_at.desc(),
        limit=limit,
        offset=offset,
        into=BatchOut,
    )
