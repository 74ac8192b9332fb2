"""The schema as the seed describes it: defaults, constraints, 1:1 and 1:N relationships."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from plinth import Conflict, ConstraintViolation, Repository
from rndcards.models import SECTION_KEYS, Batch, GenerationMetadata, Project, ProjectContent, User
from rndcards.repositories import BatchRepository, ProjectRepository, UserRepository


class Contents(Repository[ProjectContent]):
    pass


class Metadata(Repository[GenerationMetadata]):
    pass


@pytest.fixture
async def project(db_session: AsyncSession) -> Project:
    user = await UserRepository(db_session).create("anna@firma.pl", "Anna", "sub-anna")
    batch = await BatchRepository(db_session).create(user.id, "Styczeń", 2)
    return await ProjectRepository(db_session).create(batch.id, 1, {"tytul": "Robot"})


async def test_project_defaults(project: Project) -> None:
    assert (project.status, project.quality_score) == ("pending", Decimal("0.00"))
    assert project.ai_model == "claude-3.5-sonnet"
    assert project.input_data == {"tytul": "Robot"}
    assert (project.generated_at, project.edited_at) == (None, None)


async def test_row_number_is_unique_within_a_batch(
    project: Project, db_session: AsyncSession
) -> None:
    projects = ProjectRepository(db_session)
    with pytest.raises(Conflict) as caught:
        async with db_session.begin_nested():
            await projects.create(project.batch_id, 1, {})
    assert caught.value.constraint == "uq_projects_batch_id_row_number"
    assert (await projects.create(project.batch_id, 2, {})).row_number == 2


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"row_number": 0}, "ck_projects_row_number_range"),
        ({"row_number": 21}, "ck_projects_row_number_range"),
        ({"status": "done"}, "ck_projects_valid_project_status"),
        ({"quality_score": Decimal("-1")}, "ck_projects_quality_score_range"),
    ],
)
async def test_project_checks(
    project: Project, db_session: AsyncSession, values: dict[str, object], constraint: str
) -> None:
    with pytest.raises(ConstraintViolation) as caught:
        await ProjectRepository(db_session).update(project.id, **values)
    assert caught.value.constraint == constraint


async def test_content_and_metadata_are_one_to_one(
    project: Project, db_session: AsyncSession
) -> None:
    sections = {key: f"tekst {key}" for key in SECTION_KEYS}
    content = await Contents(db_session).create(project_id=project.id, sections=sections)
    assert (content.version, content.last_edited_section) == (1, None)
    metadata = await Metadata(db_session).create(project_id=project.id, model_used="claude")
    assert (metadata.attempts, metadata.total_input_tokens, metadata.total_output_tokens) == (
        1,
        0,
        0,
    )
    assert (metadata.total_cost_eur, metadata.errors) == (Decimal("0.0000"), [])
    with pytest.raises(Conflict):
        async with db_session.begin_nested():
            await Contents(db_session).create(project_id=project.id, sections={})
    loaded = await ProjectRepository(db_session).get_one(
        project.id,
        options=[selectinload(Project.content), selectinload(Project.generation_metadata)],
    )
    assert loaded.content is not None
    assert loaded.content.sections == sections
    assert loaded.generation_metadata is metadata


async def test_generation_attempts_are_1_to_3(project: Project, db_session: AsyncSession) -> None:
    with pytest.raises(ConstraintViolation) as caught:
        await Metadata(db_session).create(project_id=project.id, model_used="x", attempts=4)
    assert caught.value.constraint == "ck_generation_metadata_attempts_range"


async def test_one_to_many_relationships_load_on_request(
    project: Project, db_session: AsyncSession
) -> None:
    users = UserRepository(db_session)
    user = await users.get_by_email("anna@firma.pl")
    assert user is not None
    with pytest.raises(InvalidRequestError, match=r"'User\.batches' is not available"):
        _ = user.batches
    (loaded,) = await users.list(
        id=user.id, options=[selectinload(User.batches).selectinload(Batch.projects)]
    )
    assert [[p.id for p in batch.projects] for batch in loaded.batches] == [[project.id]]


async def test_deleting_a_user_cascades_to_everything(
    project: Project, db_session: AsyncSession
) -> None:
    await Contents(db_session).create(project_id=project.id, sections={})
    await Metadata(db_session).create(project_id=project.id, model_used="claude")
    user = await UserRepository(db_session).get_by_email("anna@firma.pl")
    assert user is not None
    await UserRepository(db_session).delete(user.id)
    for table in ("batches", "projects", "project_contents", "generation_metadata"):
        assert await db_session.scalar(text(f"SELECT count(*) FROM {table}")) == 0, table


async def test_listed_indexes_exist(db_session: AsyncSession) -> None:
    rows = await db_session.execute(
        text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
    )
    names = set(rows.scalars())
    assert {
        "idx_users_email",
        "idx_users_cognito_sub",
        "idx_batches_user_id",
        "idx_batches_status",
        "idx_batches_created_at",
        "idx_batches_expires_at",
        "idx_projects_batch_id",
        "idx_projects_status",
        "uq_projects_batch_id_row_number",
    } <= names
    definition = await db_session.scalar(
        text("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_batches_created_at'")
    )
    assert "created_at DESC" in definition


async def test_uuid_ossp_is_installed_where_the_server_has_it(db_session: AsyncSession) -> None:
    available = await db_session.scalar(
        text("SELECT count(*) FROM pg_available_extensions WHERE name = 'uuid-ossp'")
    )
    installed = await db_session.scalar(
        text("SELECT count(*) FROM pg_extension WHERE extname = 'uuid-ossp'")
    )
    assert installed == available
    # Ids never depend on it.
    assert isinstance(await db_session.scalar(text("SELECT gen_random_uuid()")), uuid.UUID)
