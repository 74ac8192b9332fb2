"""BatchRepository: the seed's three tests, then defaults, listing and error paths."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from plinth import ConstraintViolation, NotFound
from rndcards.models import BATCH_STATUSES, Batch, User
from rndcards.repositories import BatchRepository, UserRepository


@pytest.fixture
def batches(db_session: AsyncSession) -> BatchRepository:
    return BatchRepository(db_session)


@pytest.fixture
async def user(db_session: AsyncSession) -> User:
    return await UserRepository(db_session).create("anna@firma.pl", "Anna", "sub-anna")


async def _dated(batches: BatchRepository, user: User, name: str, days_ago: int) -> Batch:
    batch = await batches.create(user.id, name, 5)
    # Rows made in one transaction share now(); spread them out explicitly.
    moment = datetime(2026, 1, 31, tzinfo=UTC) - timedelta(days=days_ago)
    return await batches.update(batch.id, created_at=moment)


async def test_create_batch_success(batches: BatchRepository, user: User) -> None:
    batch = await batches.create(user.id, "Styczeń 2026", 12)
    assert isinstance(batch.id, uuid.UUID)
    assert (batch.user_id, batch.name, batch.total_projects) == (user.id, "Styczeń 2026", 12)
    assert (batch.status, batch.completed_projects) == ("uploading", 0)
    assert batch.average_quality_score == Decimal("0.00")
    assert batch.completed_at is None


async def test_batch_expires_90_days_after_creation(batches: BatchRepository, user: User) -> None:
    batch = await batches.create(user.id, "b", 1)
    assert batch.expires_at - batch.created_at == timedelta(days=90)


async def test_list_batches_by_user(batches: BatchRepository, user: User) -> None:
    other = await UserRepository(batches.session).create("jan@firma.pl", "Jan", "sub-jan")
    old = await _dated(batches, user, "old", days_ago=30)
    new = await _dated(batches, user, "new", days_ago=1)
    middle = await _dated(batches, user, "middle", days_ago=10)
    archived = await _dated(batches, user, "archived", days_ago=0)
    await batches.update_status(archived.id, "archived")
    await _dated(batches, other, "someone else's", days_ago=0)

    listed = await batches.list_by_user(user.id)
    assert [b.name for b in listed] == ["new", "middle", "old"]
    assert [b.id for b in await batches.list_by_user(user.id, limit=2)] == [new.id, middle.id]
    assert [b.id for b in await batches.list_by_user(user.id, limit=2, offset=2)] == [old.id]
    assert await batches.list_by_user(user.id, offset=3) == []
    assert await batches.list_by_user(uuid.uuid4()) == []


async def test_update_batch_status(
    batches: BatchRepository, user: User, db_session: AsyncSession
) -> None:
    batch = await batches.create(user.id, "b", 3)
    await batches.update_status(batch.id, "processing")
    assert batch.status == "processing"  # the loaded object is current
    db_session.expunge_all()
    stored = await batches.get_by_id(batch.id)
    assert stored is not None
    assert stored.status == "processing"


@pytest.mark.parametrize("status", BATCH_STATUSES)
async def test_every_listed_status_is_allowed(
    batches: BatchRepository, user: User, status: str
) -> None:
    batch = await batches.create(user.id, "b", 3)
    await batches.update_status(batch.id, status)
    assert batch.status == status


async def test_unknown_status_is_a_constraint_violation(
    batches: BatchRepository, user: User
) -> None:
    batch = await batches.create(user.id, "b", 3)
    with pytest.raises(ConstraintViolation) as caught:
        await batches.update_status(batch.id, "lost")
    assert caught.value.constraint == "ck_batches_valid_status"
    assert caught.value.status_code == 422


async def test_update_status_of_unknown_batch_is_not_found(batches: BatchRepository) -> None:
    with pytest.raises(NotFound, match=r"Batch .* not found"):
        await batches.update_status(uuid.uuid4(), "queued")


async def test_get_batch_by_id(batches: BatchRepository, user: User) -> None:
    batch = await batches.create(user.id, "b", 3)
    assert await batches.get_by_id(batch.id) is batch
    assert await batches.get_by_id(uuid.uuid4()) is None


async def test_batch_of_unknown_user_is_a_constraint_violation(batches: BatchRepository) -> None:
    with pytest.raises(ConstraintViolation) as caught:
        await batches.create(uuid.uuid4(), "b", 3)
    assert caught.value.constraint == "fk_batches_user_id_users"


@pytest.mark.parametrize("size", [0, 21, -1])
async def test_batch_size_outside_1_to_20_is_a_constraint_violation(
    batches: BatchRepository, user: User, size: int
) -> None:
    with pytest.raises(ConstraintViolation) as caught:
        await batches.create(user.id, "b", size)
    assert caught.value.constraint == "ck_batches_total_projects_range"


@pytest.mark.parametrize("size", [1, 20])
async def test_batch_sizes_at_the_limits_are_allowed(
    batches: BatchRepository, user: User, size: int
) -> None:
    assert (await batches.create(user.id, "b", size)).total_projects == size
