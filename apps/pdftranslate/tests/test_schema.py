"""The schema the seed asks for: enums, tenant columns, keys, constraints, triggers, indexes."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pdftranslate.models import (
    DocumentBlock,
    Glossary,
    SubscriptionTier,
    Translation,
    TranslationStatus,
    User,
)

TABLES = ("users", "translations", "document_blocks", "glossaries")


def user(tenant: uuid.UUID, **overrides: object) -> User:
    values: dict[str, object] = {
        "tenant_id": tenant,
        "google_id": f"google-{uuid.uuid4().hex[:8]}",
        "email": f"{uuid.uuid4().hex[:8]}@example.com",
        "name": "Ada",
    }
    values.update(overrides)
    return User(**values)


def translation(owner: User, **overrides: object) -> Translation:
    values: dict[str, object] = {
        "tenant_id": owner.tenant_id,
        "user_id": owner.id,
        "target_lang": "fr",
        "original_filename": "paper.pdf",
        "original_path": f"{owner.tenant_id}/x/original.pdf",
        "file_size": 1234,
    }
    values.update(overrides)
    return Translation(**values)


async def add(session: AsyncSession, *rows: object) -> None:
    session.add_all(rows)
    await session.flush()


async def violated_constraint(session: AsyncSession, *rows: object) -> str:
    """Flush `rows` expecting an IntegrityError; return the violated constraint's name."""
    with pytest.raises(IntegrityError) as caught:
        async with session.begin_nested():
            await add(session, *rows)
    return str(caught.value.orig.__cause__.constraint_name)  # type: ignore[union-attr]


@pytest.fixture
async def ada(db_session: AsyncSession) -> User:
    row = user(uuid.uuid4())
    await add(db_session, row)
    return row


async def test_defaults_come_from_the_server(db_session: AsyncSession, ada: User) -> None:
    job = translation(ada)
    await add(db_session, job)
    assert isinstance(ada.id, uuid.UUID)
    assert ada.subscription_tier is SubscriptionTier.free
    assert job.status is TranslationStatus.pending
    assert job.progress == 0
    assert job.created_at.tzinfo is not None


async def test_every_table_has_a_required_indexed_tenant_id(db_session: AsyncSession) -> None:
    for table in TABLES:
        column = await db_session.execute(
            text(
                "SELECT data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = :table "
                "AND column_name = 'tenant_id'"
            ),
            {"table": table},
        )
        assert column.one() == ("uuid", "NO"), table
        # An index whose first column is tenant_id serves "WHERE tenant_id = ...".
        leading = await db_session.execute(
            text(
                "SELECT count(*) FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                "WHERE i.indrelid = CAST(:table AS regclass) AND a.attname = 'tenant_id'"
            ),
            {"table": table},
        )
        assert leading.scalar_one() >= 1, table


async def test_an_unknown_status_is_refused_by_the_enum(
    db_session: AsyncSession, ada: User
) -> None:
    job = translation(ada)
    await add(db_session, job)
    with pytest.raises(DBAPIError, match="invalid input value for enum translation_status"):
        async with db_session.begin_nested():
            await db_session.execute(
                text("UPDATE translations SET status = 'done' WHERE id = :id"), {"id": job.id}
            )


async def test_google_id_and_email_are_unique_per_tenant(
    db_session: AsyncSession, ada: User
) -> None:
    twin = user(ada.tenant_id, google_id=ada.google_id)
    assert await violated_constraint(db_session, twin) == "uq_users_tenant_id_google_id"
    twin = user(ada.tenant_id, email=ada.email)
    assert await violated_constraint(db_session, twin) == "uq_users_tenant_id_email"
    # Another tenant may know the same person.
    await add(db_session, user(uuid.uuid4(), google_id=ada.google_id, email=ada.email))


async def test_a_translation_cannot_point_at_another_tenants_user(
    db_session: AsyncSession, ada: User
) -> None:
    stray = translation(ada, tenant_id=uuid.uuid4())
    assert await violated_constraint(db_session, stray) == "fk_translations_tenant_id_users"


async def test_a_block_cannot_point_at_another_tenants_translation(
    db_session: AsyncSession, ada: User
) -> None:
    job = translation(ada)
    await add(db_session, job)
    stray = DocumentBlock(
        tenant_id=uuid.uuid4(), translation_id=job.id, page_num=0, block_num=0, original_text="x"
    )
    name = await violated_constraint(db_session, stray)
    assert name == "fk_document_blocks_tenant_id_translations"


@pytest.mark.parametrize("progress", [-1, 101])
async def test_progress_is_a_percentage(db_session: AsyncSession, ada: User, progress: int) -> None:
    bad = translation(ada, progress=progress)
    assert await violated_constraint(db_session, bad) == "ck_translations_progress"


async def test_a_completed_job_has_its_result(db_session: AsyncSession, ada: User) -> None:
    bad = translation(ada, status=TranslationStatus.completed)
    assert await violated_constraint(db_session, bad) == "ck_translations_completed_has_result"
    done = translation(
        ada,
        status=TranslationStatus.completed,
        translated_path="t/x/translated.pdf",
        completed_at=func.now(),
    )
    await add(db_session, done)


async def test_a_failed_job_says_why(db_session: AsyncSession, ada: User) -> None:
    bad = translation(ada, status=TranslationStatus.failed)
    assert await violated_constraint(db_session, bad) == "ck_translations_failed_has_error"


async def test_blocks_are_unique_per_page_position(db_session: AsyncSession, ada: User) -> None:
    job = translation(ada)
    await add(db_session, job)
    box = {"x0": 72.0, "y0": 90.5, "x1": 540.0, "y1": 130.0}
    first = DocumentBlock(
        tenant_id=ada.tenant_id,
        translation_id=job.id,
        page_num=0,
        block_num=0,
        original_text="Hello",
        coordinates=box,
    )
    await add(db_session, first)
    stored = await db_session.scalar(
        select(DocumentBlock.coordinates).where(DocumentBlock.id == first.id)
    )
    assert stored == box
    twin = DocumentBlock(
        tenant_id=ada.tenant_id, translation_id=job.id, page_num=0, block_num=0, original_text="x"
    )
    name = await violated_constraint(db_session, twin)
    assert name == "uq_document_blocks_tenant_id_translation_id_page_num_block_num"
    negative = DocumentBlock(
        tenant_id=ada.tenant_id, translation_id=job.id, page_num=-1, block_num=0, original_text="x"
    )
    assert await violated_constraint(db_session, negative) == "ck_document_blocks_position"


async def test_glossary_terms_are_unique_per_user_and_language(
    db_session: AsyncSession, ada: User
) -> None:
    def term(**overrides: object) -> Glossary:
        values: dict[str, object] = {
            "tenant_id": ada.tenant_id,
            "user_id": ada.id,
            "term": "invoice",
            "translation": "facture",
            "target_lang": "fr",
        }
        return Glossary(**{**values, **overrides})

    await add(db_session, term())
    name = await violated_constraint(db_session, term(translation="note"))
    assert name == "uq_glossaries_tenant_id_user_id_term_target_lang"
    await add(db_session, term(target_lang="de", translation="Rechnung"))
    assert await violated_constraint(db_session, term(term="  ")) == "ck_glossaries_term_not_blank"


async def test_deleting_a_user_cascades(db_session: AsyncSession, ada: User) -> None:
    job = translation(ada)
    await add(db_session, job)
    await add(
        db_session,
        DocumentBlock(
            tenant_id=ada.tenant_id,
            translation_id=job.id,
            page_num=0,
            block_num=0,
            original_text="x",
        ),
        Glossary(
            tenant_id=ada.tenant_id, user_id=ada.id, term="a", translation="b", target_lang="fr"
        ),
    )
    await db_session.execute(delete(User).where(User.id == ada.id))
    for model in (Translation, DocumentBlock, Glossary):
        count = await db_session.scalar(
            select(func.count()).select_from(model).where(model.tenant_id == ada.tenant_id)
        )
        assert count == 0, model.__tablename__


@pytest.mark.parametrize("table", TABLES)
async def test_the_updated_at_trigger_moves_updated_at(
    db_session: AsyncSession, ada: User, table: str
) -> None:
    job = translation(ada)
    await add(db_session, job)
    block = DocumentBlock(
        tenant_id=ada.tenant_id, translation_id=job.id, page_num=0, block_num=0, original_text="x"
    )
    entry = Glossary(
        tenant_id=ada.tenant_id, user_id=ada.id, term="a", translation="b", target_lang="fr"
    )
    await add(db_session, block, entry)
    ids = {"users": ada.id, "translations": job.id, "document_blocks": block.id}
    row_id = ids.get(table, entry.id)
    # The trigger replaces whatever the UPDATE sets with the transaction's now().
    moved = await db_session.execute(
        text(
            f"UPDATE {table} SET updated_at = '2000-01-01' WHERE id = :id "
            "RETURNING updated_at = now()"
        ),
        {"id": row_id},
    )
    assert moved.scalar_one() is True


async def test_the_workers_queue_uses_the_partial_index(db_session: AsyncSession) -> None:
    await db_session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = await db_session.execute(
        text(
            "EXPLAIN SELECT id FROM translations WHERE status IN ('pending', 'processing') "
            "ORDER BY created_at LIMIT 10"
        )
    )
    assert "ix_translations_active" in "\n".join(plan.scalars())
