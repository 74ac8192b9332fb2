"""The HTTP API on real PostgreSQL, Redis and S3 (moto's server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from subprocess import Popen
from typing import Any

import httpx
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pdftranslate.db import cache, get_cache, get_database, get_storage, storage
from pdftranslate.main import app
from plinth import Cache, CacheSettings, Database, DatabaseSettings, Storage, StorageSettings

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def tenant_headers() -> dict[str, str]:
    return {"X-Tenant-ID": str(uuid.uuid4())}


async def create_user(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    body = {"google_id": f"g-{uuid.uuid4().hex[:10]}", "email": "ada@example.com", "name": "Ada"}
    response = await client.post("/users", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], user_id: str, data: bytes = PDF
) -> httpx.Response:
    return await client.post(
        f"/users/{user_id}/translations",
        params={"target_lang": "fr", "source_lang": "en", "filename": "paper.pdf"},
        content=data,
        headers={**headers, "Content-Type": "application/pdf"},
    )


@pytest.fixture
def overrides() -> Iterator[dict[Any, Any]]:
    try:
        yield app.dependency_overrides
    finally:
        app.dependency_overrides.clear()


async def test_users_are_created_with_the_free_tier(client: httpx.AsyncClient) -> None:
    headers = tenant_headers()
    user = await create_user(client, headers)
    assert user["subscription_tier"] == "free"
    fetched = await client.get(f"/users/{user['id']}", headers=headers)
    assert fetched.json() == user


async def test_a_duplicate_google_id_is_409(client: httpx.AsyncClient) -> None:
    headers = tenant_headers()
    user = await create_user(client, headers)
    twin = {"google_id": user["google_id"], "email": "other@example.com"}
    response = await client.post("/users", json=twin, headers=headers)
    assert response.status_code == 409
    assert response.json()["constraint"] == "uq_users_tenant_id_google_id"


async def test_requests_without_a_tenant_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/users/{uuid.uuid4()}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "X-Tenant-ID"]


async def test_creating_a_job_stores_the_pdf_the_row_and_the_status(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    headers = tenant_headers()
    user = await create_user(client, headers)
    response = await upload(client, headers, user["id"])
    assert response.status_code == 201, response.text
    job = response.json()
    assert (job["status"], job["progress"], job["file_size"]) == ("pending", 0, len(PDF))

    key = f"{headers['X-Tenant-ID']}/{job['id']}/original.pdf"
    assert await storage.download(key) == PDF
    row = await db_session.execute(
        text("SELECT original_path, status::text FROM translations WHERE id = :id"),
        {"id": uuid.UUID(job["id"])},
    )
    assert row.one() == (key, "pending")
    cached = await cache.scope("tenant", headers["X-Tenant-ID"]).get(
        f"translation:{job['id']}:status"
    )
    assert cached["status"] == "pending"


async def test_only_pdfs_are_accepted(client: httpx.AsyncClient) -> None:
    headers = tenant_headers()
    user = await create_user(client, headers)
    not_pdf = await upload(client, headers, user["id"], b"GIF89a...")
    assert not_pdf.status_code == 422
    wrong_type = await client.post(
        f"/users/{user['id']}/translations",
        params={"target_lang": "fr"},
        content=PDF,
        headers={**headers, "Content-Type": "text/plain"},
    )
    assert wrong_type.status_code == 415


async def test_a_job_for_an_unknown_user_uploads_nothing(client: httpx.AsyncClient) -> None:
    headers = tenant_headers()
    response = await upload(client, headers, str(uuid.uuid4()))
    assert response.status_code == 404
    listed = await storage.client.list_objects_v2(
        Bucket=storage.bucket, Prefix=headers["X-Tenant-ID"]
    )
    assert listed["KeyCount"] == 0


async def test_status_is_served_from_the_cache_and_invalidated_on_update(
    client: httpx.AsyncClient,
) -> None:
    headers = tenant_headers()
    user = await create_user(client, headers)
    job = (await upload(client, headers, user["id"])).json()
    url = f"/translations/{job['id']}/status"

    first = await client.get(url, headers=headers)
    assert first.headers["X-Cache"] == "hit"  # cached when the job was created
    assert first.json()["status"] == "pending"

    update = {"status": "processing", "progress": 40, "page_count": 3}
    patched = await client.patch(f"/translations/{job['id']}", json=update, headers=headers)
    assert patched.status_code == 200, patched.text

    after = await client.get(url, headers=headers)
    assert after.headers["X-Cache"] == "miss"
    assert (after.json()["status"], after.json()["progress"]) == ("processing", 40)
    again = await client.get(url, headers=headers)
    assert again.headers["X-Cache"] == "hit"
    assert again.json() == after.json()


async def test_an_invalid_update_is_422_and_changes_nothing(client: httpx.AsyncClient) -> None:
    headers = tenant_headers()
    user = await create_user(client, headers)
    job = (await upload(client, headers, user["id"])).json()
    # Completed without a translated file: the check constraint refuses it.
    response = await client.patch(
        f"/translations/{job['id']}", json={"status": "completed"}, headers=headers
    )
    assert response.status_code == 422
    assert response.json()["constraint"] == "ck_translations_completed_has_result"
    status = await client.get(f"/translations/{job['id']}/status", headers=headers)
    assert status.json()["status"] == "pending"


async def test_completing_a_job_sets_completed_at(client: httpx.AsyncClient) -> None:
    headers = tenant_headers()
    user = await create_user(client, headers)
    job = (await upload(client, headers, user["id"])).json()
    done = {"status": "completed", "progress": 100, "translated_path": "x/translated.pdf"}
    response = await client.patch(f"/translations/{job['id']}", json=done, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["completed_at"] is not None


async def test_the_original_downloads_through_a_presigned_url(client: httpx.AsyncClient) -> None:
    headers = tenant_headers()
    user = await create_user(client, headers)
    job = (await upload(client, headers, user["id"])).json()
    link = await client.get(f"/translations/{job['id']}/original", headers=headers)
    assert link.status_code == 200
    async with httpx.AsyncClient() as browser:
        response = await browser.get(link.json()["url"])
    assert response.status_code == 200
    assert response.content == PDF
    assert response.headers["content-disposition"] == 'attachment; filename="paper.pdf"'


async def test_glossary_terms(client: httpx.AsyncClient) -> None:
    headers = tenant_headers()
    user = await create_user(client, headers)
    url = f"/users/{user['id']}/glossary"
    for term, translation, lang in [("invoice", "facture", "fr"), ("invoice", "Rechnung", "de")]:
        body = {"term": term, "translation": translation, "target_lang": lang}
        response = await client.post(url, json=body, headers=headers)
        assert response.status_code == 201, response.text
    twin = {"term": "invoice", "translation": "note", "target_lang": "fr"}
    duplicate = await client.post(url, json=twin, headers=headers)
    assert duplicate.status_code == 409
    assert duplicate.json()["constraint"] == "uq_glossaries_tenant_id_user_id_term_target_lang"
    french = await client.get(url, params={"target_lang": "fr"}, headers=headers)
    assert [entry["translation"] for entry in french.json()] == ["facture"]
    assert len((await client.get(url, headers=headers)).json()) == 2


async def test_a_tenant_cannot_see_or_touch_another_tenants_rows(
    client: httpx.AsyncClient,
) -> None:
    a, b = tenant_headers(), tenant_headers()
    user = await create_user(client, a)
    job = (await upload(client, a, user["id"])).json()
    term = {"term": "invoice", "translation": "facture", "target_lang": "fr"}
    assert (await client.post(f"/users/{user['id']}/glossary", json=term, headers=a)).is_success

    for path in (
        f"/users/{user['id']}",
        f"/users/{user['id']}/glossary",
        f"/translations/{job['id']}",
        f"/translations/{job['id']}/status",  # a's status is cached: b must not get it
        f"/translations/{job['id']}/original",
    ):
        response = await client.get(path, headers=b)
        assert response.status_code == 404, path
    listed = await client.get(f"/users/{user['id']}/translations", headers=b)
    assert listed.json() == []
    patched = await client.patch(f"/translations/{job['id']}", json={"progress": 99}, headers=b)
    assert patched.status_code == 404
    assert (
        await client.post(f"/users/{user['id']}/glossary", json=term, headers=b)
    ).status_code == 404
    assert (await upload(client, b, user["id"])).status_code == 404

    # Tenant a still sees all of it, unchanged.
    mine = await client.get(f"/users/{user['id']}/translations", headers=a)
    assert [(row["id"], row["progress"]) for row in mine.json()] == [(job["id"], 0)]


async def test_health_reports_each_service(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"postgres", "redis", "s3"}
    for check in body["checks"].values():
        assert check["status"] == "up"
        assert check["latency_ms"] >= 0


@pytest.fixture
async def doomed_cache(redis_server: tuple[str, Popen[bytes]]) -> AsyncIterator[Cache]:
    """A started cache whose Redis the test is about to stop."""
    url, process = redis_server
    async with Cache(CacheSettings(redis_url=url), key_prefix="doomed") as started:
        process.terminate()
        process.wait(10)
        yield started


async def test_health_names_redis_when_it_is_down(
    client: httpx.AsyncClient, doomed_cache: Cache, overrides: dict[Any, Any]
) -> None:
    overrides[get_cache] = lambda: doomed_cache
    response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["redis"]
    assert body["checks"]["redis"] == {"status": "down", "reason": "unreachable"}
    assert body["checks"]["postgres"]["status"] == "up"
    assert "outage-pw" not in response.text
    assert "127.0.0.1" not in response.text


async def test_a_redis_outage_slows_status_but_does_not_break_it(
    client: httpx.AsyncClient, doomed_cache: Cache, overrides: dict[Any, Any]
) -> None:
    headers = tenant_headers()
    user = await create_user(client, headers)
    job = (await upload(client, headers, user["id"])).json()
    overrides[get_cache] = lambda: doomed_cache
    response = await client.get(f"/translations/{job['id']}/status", headers=headers)
    assert response.status_code == 200
    assert response.headers["X-Cache"] == "unavailable"
    assert response.json()["status"] == "pending"
    patched = await client.patch(
        f"/translations/{job['id']}", json={"progress": 5}, headers=headers
    )
    assert patched.status_code == 200


async def test_health_names_s3_when_it_is_down(
    client: httpx.AsyncClient, overrides: dict[Any, Any]
) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = StorageSettings(
        bucket_name="doomed",
        endpoint_url=f"http://{host}:{port}",
        access_key_id="testing",
        secret_access_key="doomed-secret",
        max_attempts=1,
    )
    async with Storage(settings) as doomed:
        server.stop()
        overrides[get_storage] = lambda: doomed
        response = await client.get("/health")
        assert response.status_code == 503
        assert response.json()["down"] == ["s3"]
        assert "doomed-secret" not in response.text
        # Routes that need S3 answer 503 too, not 500.
        headers = tenant_headers()
        user = await create_user(client, headers)
        assert (await upload(client, headers, user["id"])).status_code == 503


async def test_health_names_postgres_when_it_is_not_started(
    client: httpx.AsyncClient, overrides: dict[Any, Any]
) -> None:
    settings = DatabaseSettings(database_url="postgresql://app:pg-secret@127.0.0.1:1/none")
    overrides[get_database] = lambda: Database(settings)
    response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["postgres"]
    assert body["checks"]["postgres"] == {"status": "down", "reason": "not started"}
    assert "pg-secret" not in response.text
