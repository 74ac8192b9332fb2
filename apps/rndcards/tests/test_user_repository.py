"""UserRepository: the seed's four tests, then every error path."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plinth import Conflict, ConstraintViolation, NotFound
from rndcards.models import DEFAULT_PREFERENCES, User
from rndcards.repositories import UserRepository


@pytest.fixture
def users(db_session: AsyncSession) -> UserRepository:
    return UserRepository(db_session)


async def test_create_user_success(users: UserRepository) -> None:
    user = await users.create("anna@firma.pl", "Anna Nowak", "cognito-anna")
    assert isinstance(user.id, uuid.UUID)
    assert (user.email, user.name, user.cognito_sub) == (
        "anna@firma.pl",
        "Anna Nowak",
        "cognito-anna",
    )
    assert user.company is None
    assert user.last_login_at is None
    assert isinstance(user.created_at, datetime)
    assert user.created_at.tzinfo is not None


async def test_create_user_fills_the_default_preferences(users: UserRepository) -> None:
    user = await users.create("anna@firma.pl", "Anna", "sub-1", company="Firma")
    assert user.preferences == DEFAULT_PREFERENCES
    assert user.company == "Firma"


async def test_get_user_by_id_found(users: UserRepository, db_session: AsyncSession) -> None:
    created = await users.create("anna@firma.pl", "Anna", "sub-1")
    db_session.expunge_all()  # read it back from the database, not the identity map
    found = await users.get_by_id(created.id)
    assert found is not None
    assert (found.id, found.email) == (created.id, "anna@firma.pl")


async def test_get_user_by_id_not_found(users: UserRepository) -> None:
    assert await users.get_by_id(uuid.uuid4()) is None


async def test_get_user_by_email(users: UserRepository) -> None:
    created = await users.create("anna@firma.pl", "Anna", "sub-1")
    await users.create("jan@firma.pl", "Jan", "sub-2")
    found = await users.get_by_email("anna@firma.pl")
    assert found is not None
    assert found.id == created.id
    assert await users.get_by_email("nikt@firma.pl") is None


async def test_update_last_login_stamps_the_server_time(
    users: UserRepository, db_session: AsyncSession
) -> None:
    user = await users.create("anna@firma.pl", "Anna", "sub-1")
    await users.update_last_login(user.id)
    now = await db_session.scalar(select(func.now()))
    # The loaded object is current (no expired attribute, no MissingGreenlet).
    assert user.last_login_at == now
    db_session.expunge_all()
    stored = await users.get_by_id(user.id)
    assert stored is not None
    assert stored.last_login_at == now


async def test_update_last_login_of_unknown_user_is_not_found(users: UserRepository) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound, match=f"User {missing} not found"):
        await users.update_last_login(missing)


async def test_duplicate_email_is_a_conflict(users: UserRepository) -> None:
    await users.create("anna@firma.pl", "Anna", "sub-1")
    with pytest.raises(Conflict) as caught:
        await users.create("anna@firma.pl", "Anna 2", "sub-2")
    assert caught.value.constraint == "idx_users_email"


async def test_duplicate_cognito_sub_is_a_conflict(users: UserRepository) -> None:
    await users.create("anna@firma.pl", "Anna", "sub-1")
    with pytest.raises(Conflict) as caught:
        await users.create("jan@firma.pl", "Jan", "sub-1")
    assert caught.value.constraint == "idx_users_cognito_sub"


async def test_missing_name_is_a_constraint_violation(users: UserRepository) -> None:
    with pytest.raises(ConstraintViolation, match="not-null"):
        await users.create("anna@firma.pl", None, "sub-1")  # type: ignore[arg-type]


async def test_users_are_counted_by_the_generic_methods(users: UserRepository) -> None:
    await users.create("anna@firma.pl", "Anna", "sub-1")
    await users.create("jan@firma.pl", "Jan", "sub-2")
    assert await users.count() == 2
    assert await users.exists(User.email.like("jan@%"))
