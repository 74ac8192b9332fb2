"""The schema the seeds specify: constraints, defaults, triggers, indexes."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from translator.models import Document, Translation, User


def document(**overrides: object) -> Document:
    values: dict[str, object] = {
        "content": "The quick brown fox jumps over the lazy dog",
        "file_name": "fox.txt",
        "file_size": 43,
        "source_language": "en",
        "session_id": "session-1",
    }
    values.update(overrides)
    return Document(**values)


async def add(session: AsyncSession, *rows: object) -> None:
    session.add_all(rows)
    await session.flush()


async def violated_constraint(session: AsyncSession, *rows: object) -> str:
    """Flush `rows` expecting an IntegrityError; return the violated constraint's name."""
    with pytest.raises(IntegrityError) as caught:
        async with session.begin_nested():
            await add(session, *rows)
    return str(caught.value.orig.__cause__.constraint_name)  # type: ignore[union-attr]


async def test_defaults_are_filled_by_the_server(db_session: AsyncSession) -> None:
    doc = document()
    await add(db_session, doc)
    translation = Translation(document_id=doc.id, target_language="fr", session_id="s")
    await add(db_session, translation)
    assert isinstance(doc.id, uuid.UUID)
    assert doc.created_at.tzinfo is not None
    assert translation.status == "pending"
    assert translation.progress_percentage == 0


@pytest.mark.parametrize("size", [0, -1, 10_485_761])
async def test_file_size_must_be_between_1_byte_and_10_mib(
    db_session: AsyncSession, size: int
) -> None:
    assert await violated_constraint(db_session, document(file_size=size)) == (
        "ck_documents_file_size"
    )


async def test_file_size_limit_is_inclusive(db_session: AsyncSession) -> None:
    await add(db_session, document(file_size=10_485_760), document(file_size=1))


async def test_document_needs_a_user_or_a_session(db_session: AsyncSession) -> None:
    name = await violated_constraint(db_session, document(session_id=None))
    assert name == "ck_documents_owner"


async def test_translation_needs_a_user_or_a_session(db_session: AsyncSession) -> None:
    doc = document()
    await add(db_session, doc)
    name = await violated_constraint(
        db_session, Translation(document_id=doc.id, target_language="fr")
    )
    assert name == "ck_translations_owner"


@pytest.mark.parametrize("status", ["done", "PENDING", ""])
async def test_status_must_be_a_known_value(db_session: AsyncSession, status: str) -> None:
    doc = document()
    await add(db_session, doc)
    bad = Translation(document_id=doc.id, target_language="fr", session_id="s", status=status)
    assert await violated_constraint(db_session, bad) == "ck_translations_status"


@pytest.mark.parametrize("progress", [-1, 101])
async def test_progress_is_a_percentage(db_session: AsyncSession, progress: int) -> None:
    doc = document()
    await add(db_session, doc)
    bad = Translation(
        document_id=doc.id, target_language="fr", session_id="s", progress_percentage=progress
    )
    assert await violated_constraint(db_session, bad) == "ck_translations_progress"


async def test_one_translation_per_document_and_language(db_session: AsyncSession) -> None:
    doc = document()
    await add(db_session, doc, Translation(document=doc, target_language="fr", session_id="s"))
    twin = Translation(document_id=doc.id, target_language="fr", session_id="s")
    assert await violated_constraint(db_session, twin) == "unique_document_target_language"
    await add(db_session, Translation(document_id=doc.id, target_language="de", session_id="s"))


async def test_email_is_unique(db_session: AsyncSession) -> None:
    await add(db_session, User(email="a@example.com"))
    assert await violated_constraint(db_session, User(email="a@example.com")) == "uq_users_email"


async def test_unknown_document_is_a_foreign_key_violation(db_session: AsyncSession) -> None:
    orphan = Translation(document_id=uuid.uuid4(), target_language="fr", session_id="s")
    name = await violated_constraint(db_session, orphan)
    assert name == "fk_translations_document_id_documents"


async def test_deleting_a_user_cascades_to_documents_and_translations(
    db_session: AsyncSession,
) -> None:
    user = User(email="gone@example.com")
    await add(db_session, user)
    doc = document(user_id=user.id, session_id=None)
    await add(db_session, doc)
    await add(db_session, Translation(document_id=doc.id, target_language="fr", user_id=user.id))
    await db_session.execute(text("DELETE FROM users WHERE id = :id"), {"id": user.id})
    left = await db_session.execute(
        text("SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM translations)")
    )
    assert tuple(left.one()) == (0, 0)


@pytest.mark.parametrize("model", [User, Document, Translation])
async def test_updated_at_trigger_overrides_updates(
    db_session: AsyncSession, model: type[User | Document | Translation]
) -> None:
    doc = document()
    await add(db_session, doc)
    rows: dict[type, User | Document | Translation] = {
        User: User(email="t@example.com"),
        Document: doc,
        Translation: Translation(document_id=doc.id, target_language="fr", session_id="s"),
    }
    row = rows[model]
    await add(db_session, row)
    table = model.__tablename__
    # The trigger replaces whatever the UPDATE sets with the transaction's now().
    moved = await db_session.execute(
        text(
            f"UPDATE {table} SET updated_at = '2000-01-01' WHERE id = :id "
            "RETURNING updated_at = now() AND updated_at > '2000-01-01'"
        ),
        {"id": row.id},
    )
    assert moved.scalar_one() is True


async def test_orm_update_returns_the_trigger_value(db_session: AsyncSession) -> None:
    doc = document()
    await add(db_session, doc)
    await db_session.execute(
        text("UPDATE documents SET updated_at = '2000-01-01' WHERE id = :id"), {"id": doc.id}
    )
    await db_session.refresh(doc)
    assert doc.updated_at.year > 2000  # the trigger overrode the explicit value
    doc.file_name = "renamed.txt"
    await db_session.flush()
    # Fetched back by RETURNING (eager_defaults): no expired attribute to lazy-load.
    assert doc.updated_at.year > 2000


async def test_search_uses_the_full_text_index(db_session: AsyncSession) -> None:
    await db_session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(
        (
            await db_session.execute(
                text(
                    "EXPLAIN SELECT id FROM documents WHERE "
                    "to_tsvector('english'::regconfig, content) @@ "
                    "websearch_to_tsquery('english'::regconfig, 'fox')"
                )
            )
        ).scalars()
    )
    assert "idx_documents_content_fts" in plan


async def test_expected_indexes_exist(db_session: AsyncSession) -> None:
    rows = await db_session.execute(
        text(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename IN ('documents', 'translations')"
        )
    )
    indexes = {name: definition for name, definition in rows}
    assert "WHERE (user_id IS NOT NULL)" in indexes["idx_documents_user_id"]
    assert "WHERE (session_id IS NOT NULL)" in indexes["idx_documents_session_id"]
    assert "WHERE (user_id IS NOT NULL)" in indexes["idx_translations_user_id"]
    assert "WHERE (session_id IS NOT NULL)" in indexes["idx_translations_session_id"]
    assert "created_at DESC" in indexes["idx_documents_created_at"]
    assert "created_at DESC" in indexes["idx_translations_created_at"]
    assert "USING gin" in indexes["idx_documents_content_fts"]
    assert "USING gin" in indexes["idx_translations_content_fts"]
    assert "idx_translations_document_id" in indexes
    assert "idx_translations_status" in indexes


async def test_timestamps_are_with_time_zone(db_session: AsyncSession) -> None:
    rows = await db_session.execute(
        text(
            "SELECT DISTINCT data_type FROM information_schema.columns "
            "WHERE column_name IN ('created_at', 'updated_at') AND table_schema = 'public'"
        )
    )
    assert rows.scalars().all() == ["timestamp with time zone"]
