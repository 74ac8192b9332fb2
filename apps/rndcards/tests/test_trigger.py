"""update_batch_quality_score(): the batch's figures follow its projects, in the database.

Exercised twice over: through the repositories, and through raw SQL that no
Python code watches, because the point of a trigger is that both agree.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from plinth import ConstraintViolation
from rndcards.models import Batch
from rndcards.repositories import BatchRepository, ProjectRepository, UserRepository


@pytest.fixture
async def batch(db_session: AsyncSession) -> Batch:
    user = await UserRepository(db_session).create("anna@firma.pl", "Anna", "sub-anna")
    return await BatchRepository(db_session).create(user.id, "Styczeń", 4)


@pytest.fixture
def projects(db_session: AsyncSession) -> ProjectRepository:
    return ProjectRepository(db_session)


async def _figures(session: AsyncSession, batch_id: uuid.UUID) -> tuple[Decimal, int]:
    row = (
        await session.execute(
            text("SELECT average_quality_score, completed_projects FROM batches WHERE id = :id"),
            {"id": batch_id},
        )
    ).one()
    return row[0], row[1]


async def _add(projects: ProjectRepository, batch: Batch, count: int) -> list[uuid.UUID]:
    made = [await projects.create(batch.id, n, {"tytul": f"P{n}"}) for n in range(1, count + 1)]
    return [project.id for project in made]


async def test_scores_and_statuses_through_the_repository(
    batch: Batch, projects: ProjectRepository, db_session: AsyncSession
) -> None:
    first, second, third = await _add(projects, batch, 3)
    assert await _figures(db_session, batch.id) == (Decimal("0.00"), 0)

    await projects.update_quality_score(first, Decimal("80"))
    await projects.update_quality_score(second, Decimal("91.5"))
    # The third project is unscored (0): left out of the average.
    assert await _figures(db_session, batch.id) == (Decimal("85.75"), 0)

    await projects.update_status(first, "completed")
    await projects.update_status(second, "completed")
    assert await _figures(db_session, batch.id) == (Decimal("85.75"), 2)

    await projects.update_status(second, "reviewed")
    await projects.update_quality_score(third, Decimal("70"))
    assert await _figures(db_session, batch.id) == (Decimal("80.50"), 1)

    listed = await projects.list_by_batch(batch.id)
    assert [(p.row_number, p.status) for p in listed] == [
        (1, "completed"),
        (2, "reviewed"),
        (3, "pending"),
    ]
    # A batch loaded earlier is refreshed on request.
    batches = BatchRepository(db_session)
    assert batch.completed_projects == 0
    await batches.refresh(batch)
    assert (batch.average_quality_score, batch.completed_projects) == (Decimal("80.50"), 1)


async def test_scores_and_statuses_through_raw_updates(
    batch: Batch, projects: ProjectRepository, db_session: AsyncSession
) -> None:
    await _add(projects, batch, 4)
    await db_session.execute(
        text(
            "UPDATE projects SET quality_score = row_number * 10, status = 'completed' "
            "WHERE batch_id = :id AND row_number <= 3"
        ),
        {"id": batch.id},
    )
    assert await _figures(db_session, batch.id) == (Decimal("20.00"), 3)
    await db_session.execute(
        text("UPDATE projects SET status = 'failed' WHERE batch_id = :id AND row_number = 1"),
        {"id": batch.id},
    )
    assert await _figures(db_session, batch.id) == (Decimal("20.00"), 2)
    await db_session.execute(
        text("UPDATE projects SET quality_score = 0 WHERE batch_id = :id"), {"id": batch.id}
    )
    assert await _figures(db_session, batch.id) == (Decimal("0.00"), 2)


async def test_unchanged_values_do_not_fire_the_trigger(
    batch: Batch, projects: ProjectRepository, db_session: AsyncSession
) -> None:
    (project,) = await _add(projects, batch, 1)
    # Plant a wrong figure: only a firing trigger would correct it.
    await db_session.execute(
        text("UPDATE batches SET completed_projects = 7 WHERE id = :id"), {"id": batch.id}
    )
    await projects.update_status(project, "pending")  # the status it already has
    await projects.update(project, input_data={"tytul": "inny"})  # a column it ignores
    assert await _figures(db_session, batch.id) == (Decimal("0.00"), 7)
    await projects.update_status(project, "completed")
    assert await _figures(db_session, batch.id) == (Decimal("0.00"), 1)


async def test_inserting_and_deleting_projects_recomputes(
    batch: Batch, db_session: AsyncSession
) -> None:
    insert = text(
        "INSERT INTO projects (batch_id, row_number, status, quality_score, input_data) "
        "VALUES (:id, :n, :status, :score, '{}')"
    )
    await db_session.execute(insert, {"id": batch.id, "n": 1, "status": "completed", "score": 60})
    await db_session.execute(insert, {"id": batch.id, "n": 2, "status": "pending", "score": 90})
    assert await _figures(db_session, batch.id) == (Decimal("75.00"), 1)
    await db_session.execute(
        text("DELETE FROM projects WHERE batch_id = :id AND row_number = 1"), {"id": batch.id}
    )
    assert await _figures(db_session, batch.id) == (Decimal("90.00"), 0)


async def test_moving_a_project_recomputes_both_batches(
    batch: Batch, projects: ProjectRepository, db_session: AsyncSession
) -> None:
    other = await BatchRepository(db_session).create(batch.user_id, "Luty", 2)
    (project,) = await _add(projects, batch, 1)
    await projects.update_quality_score(project, Decimal("50"))
    await projects.update_status(project, "completed")
    await db_session.execute(
        text("UPDATE projects SET batch_id = :to WHERE id = :id"), {"to": other.id, "id": project}
    )
    assert await _figures(db_session, batch.id) == (Decimal("0.00"), 0)
    assert await _figures(db_session, other.id) == (Decimal("50.00"), 1)


async def test_deleting_a_batch_cascades_through_the_trigger(
    batch: Batch, projects: ProjectRepository, db_session: AsyncSession
) -> None:
    ids = await _add(projects, batch, 3)
    await projects.update_status(ids[0], "completed")
    await BatchRepository(db_session).delete(batch.id)
    assert await projects.count(batch_id=batch.id) == 0


async def test_a_rejected_score_changes_nothing(
    batch: Batch, projects: ProjectRepository, db_session: AsyncSession
) -> None:
    (project,) = await _add(projects, batch, 1)
    with pytest.raises(ConstraintViolation) as caught:
        async with db_session.begin_nested():
            await projects.update_quality_score(project, Decimal("100.5"))
    assert caught.value.constraint == "ck_projects_quality_score_range"
    assert await _figures(db_session, batch.id) == (Decimal("0.00"), 0)
