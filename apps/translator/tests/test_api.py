"""The HTTP API, through the app's own unit of work."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

DOCUMENT = {
    "content": "Alice was beginning to get very tired of sitting by her sister on the bank",
    "file_name": "alice.txt",
    "file_size": 74,
    "source_language": "en",
    "session_id": "browser-1",
}


async def create_document(client: httpx.AsyncClient, **overrides: object) -> dict[str, object]:
    response = await client.post("/documents", json={**DOCUMENT, **overrides})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_create_then_get_document(client: httpx.AsyncClient) -> None:
    created = await create_document(client)
    fetched = await client.get(f"/documents/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_committed_document_is_in_the_database(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    created = await create_document(client)
    count = await db_session.execute(
        text("SELECT count(*) FROM documents WHERE id = :id"), {"id": uuid.UUID(str(created["id"]))}
    )
    assert count.scalar_one() == 1


async def test_each_test_starts_from_an_empty_database(db_session: AsyncSession) -> None:
    # test_create_then_get_document committed a row; the plugin rolled it back.
    assert (await db_session.execute(text("SELECT count(*) FROM documents"))).scalar_one() == 0


async def test_unknown_document_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/documents/{uuid.uuid4()}")
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


async def test_oversized_document_is_422_naming_the_constraint(client: httpx.AsyncClient) -> None:
    response = await client.post("/documents", json={**DOCUMENT, "file_size": 10_485_761})
    assert response.status_code == 422
    assert response.json()["constraint"] == "ck_documents_file_size"


async def test_document_without_owner_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/documents", json={**DOCUMENT, "session_id": None})
    assert response.status_code == 422
    assert response.json()["constraint"] == "ck_documents_owner"


async def test_list_is_newest_first_and_filters_by_session(client: httpx.AsyncClient) -> None:
    first = await create_document(client, file_name="1.txt")
    second = await create_document(client, file_name="2.txt")
    await create_document(client, session_id="someone-else")
    listed = (await client.get("/documents", params={"session_id": "browser-1"})).json()
    # Same transaction, same created_at: the id breaks the tie; both are present once.
    assert sorted(str(d["id"]) for d in listed) == sorted([str(first["id"]), str(second["id"])])


async def test_search_finds_documents_by_stemmed_words(client: httpx.AsyncClient) -> None:
    alice = await create_document(client)
    await create_document(client, content="Call me Ishmael. Some years ago", file_name="m.txt")
    found = (await client.get("/documents/search", params={"q": "sisters tiring"})).json()
    assert [d["id"] for d in found] == [alice["id"]]
    assert (await client.get("/documents/search", params={"q": "whale"})).json() == []


async def test_translation_lifecycle(client: httpx.AsyncClient) -> None:
    document = await create_document(client)
    requested = await client.post(
        f"/documents/{document['id']}/translations",
        json={"target_language": "fr", "session_id": "browser-1"},
    )
    assert requested.status_code == 201
    translation = requested.json()
    assert (translation["status"], translation["progress_percentage"]) == ("pending", 0)

    progress = await client.patch(
        f"/translations/{translation['id']}",
        json={"status": "in_progress", "progress_percentage": 40, "translation_state": {"page": 2}},
    )
    assert progress.status_code == 200
    assert progress.json()["translation_state"] == {"page": 2}

    done = await client.patch(
        f"/translations/{translation['id']}",
        json={"status": "completed", "progress_percentage": 100, "translated_content": "Alice"},
    )
    assert done.json()["status"] == "completed"
    fetched = await client.get(f"/translations/{translation['id']}")
    assert fetched.json()["translated_content"] == "Alice"


async def test_second_translation_to_the_same_language_is_409(client: httpx.AsyncClient) -> None:
    document = await create_document(client)
    url = f"/documents/{document['id']}/translations"
    body = {"target_language": "fr", "session_id": "browser-1"}
    assert (await client.post(url, json=body)).status_code == 201
    duplicate = await client.post(url, json=body)
    assert duplicate.status_code == 409
    assert duplicate.json()["constraint"] == "unique_document_target_language"


async def test_progress_over_100_is_422_and_nothing_changes(client: httpx.AsyncClient) -> None:
    document = await create_document(client)
    translation = (
        await client.post(
            f"/documents/{document['id']}/translations",
            json={"target_language": "de", "session_id": "browser-1"},
        )
    ).json()
    bad = await client.patch(
        f"/translations/{translation['id']}",
        json={"status": "in_progress", "progress_percentage": 101},
    )
    assert bad.status_code == 422
    assert bad.json()["constraint"] == "ck_translations_progress"
    unchanged = (await client.get(f"/translations/{translation['id']}")).json()
    assert (unchanged["status"], unchanged["progress_percentage"]) == ("pending", 0)


async def test_translation_of_unknown_document_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/documents/{uuid.uuid4()}/translations",
        json={"target_language": "fr", "session_id": "s"},
    )
    assert response.status_code == 422
    assert response.json()["constraint"] == "fk_translations_document_id_documents"


async def test_health_ready_reports_the_migration_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["migrations"] == {"current": ["0001"], "head": ["0001"], "at_head": True}
    assert body["database"]["latency_ms"] >= 0
    assert (await client.get("/health/live")).json() == {"status": "alive"}
