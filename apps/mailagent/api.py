"""HTTP routes under /api/v1. Duplicates surface as 409 through Plinth's handlers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from mailagent.db import Session, UserReads, database
from mailagent.models import User
from mailagent.schemas import UserIn, UserOut, UserUpdate
from plinth import Database, DatabaseStateError, DatabaseUnavailableError, Int4Id, NotFound

router = APIRouter(prefix="/api/v1")


def get_database() -> Database:
    """The Database the health check pings (a dependency, so tests can swap it)."""
    return database


@router.get(
    "/health/db",
    tags=["health"],
    responses={503: {"description": "PostgreSQL cannot be reached"}},
)
async def database_health(db: Annotated[Database, Depends(get_database)]) -> JSONResponse:
    """``SELECT``-level check of PostgreSQL: 200 connected, 503 disconnected."""
    try:
        ping = await db.ping()
    except (DatabaseUnavailableError, DatabaseStateError) as exc:
        # The reason is credential-free: Plinth never puts the URL in it.
        body: dict[str, Any] = {
            "status": "disconnected",
            "error": str(exc),
            "message": "Unable to connect to PostgreSQL",
        }
        return JSONResponse(body, status_code=503)
    return JSONResponse(
        {
            "status": "connected",
            "latency_ms": ping.latency_ms,
            "server_version": ping.server_version,
            "message": "PostgreSQL connection successful",
        }
    )


async def _get(session: Session, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


@router.post("/users", status_code=201, tags=["users"])
async def create_user(body: UserIn, session: Session) -> UserOut:
    user = User(**body.model_dump())
    session.add(user)
    await session.flush()
    return UserOut.model_validate(user)


@router.get("/users/{user_id}", tags=["users"])
async def get_user(user_id: Int4Id, users: UserReads) -> UserOut:
    user = await users.get(user_id, into=UserOut)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


@router.patch("/users/{user_id}", tags=["users"])
async def update_user(user_id: Int4Id, body: UserUpdate, session: Session) -> UserOut:
    user = await _get(session, user_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(user, field, value)
    await session.flush()
    return UserOut.model_validate(user)
