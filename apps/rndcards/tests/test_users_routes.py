"""routes/users.py through HTTP: one unit of work per request, errors as 4xx."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from rndcards.repositories import BatchRepository
from rndcards.schemas import BatchOut

ANNA = {"email": "anna@firma.pl", "name": "Anna Nowak", "cognito_sub": "sub-anna"}


@pytest.fixture
async def anna(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.post("/users", json=ANNA)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_create_user(anna: dict[str, object]) -> None:
    assert anna["email"] == "anna@firma.pl"
    assert anna["preferences"] == {
        "defaultAiModel": "claude",
        "language": "pl",
        "notificationsEnabled": True,
    }
    assert anna["company"] is None
    uuid.UUID(str(anna["id"]))


async def test_duplicate_user_is_409(client: httpx.AsyncClient, anna: dict[str, object]) -> None:
    response = await client.post("/users", json={**ANNA, "cognito_sub": "other"})
    assert response.status_code == 409
    assert response.json()["constraint"] == "idx_users_email"
    # The failed request rolled back alone: the first user is still there.
    assert (await client.get(f"/users/{anna['id']}")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {**ANNA, "email": "not-an-address"},
        {**ANNA, "name": ""},
        {"email": "a@b.pl", "name": "A"},
    ],
)
async def test_invalid_user_is_422(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    assert (await client.post("/users", json=body)).status_code == 422


async def test_get_user(client: httpx.AsyncClient, anna: dict[str, object]) -> None:
    response = await client.get(f"/users/{anna['id']}")
    assert response.status_code == 200
    assert response.json() == anna
    missing = await client.get(f"/users/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert "not found" in missing.json()["detail"]


async def test_find_user_by_email(client: httpx.AsyncClient, anna: dict[str, object]) -> None:
    found = await client.get("/users", params={"email": "anna@firma.pl"})
    assert found.json()["id"] == anna["id"]
    assert (await client.get("/users", params={"email": "x@y.pl"})).status_code == 404


async def test_record_login(client: httpx.AsyncClient, anna: dict[str, object]) -> None:
    response = await client.post(f"/users/{anna['id']}/login")
    assert response.status_code == 204
    user = (await client.get(f"/users/{anna['id']}")).json()
    assert isinstance(datetime.fromisoformat(user["last_login_at"]), datetime)
    assert (await client.post(f"/users/{uuid.uuid4()}/login")).status_code == 404


async def test_create_and_list_batches(client: httpx.AsyncClient, anna: dict[str, object]) -> None:
    created = await client.post(
        f"/users/{anna['id']}/batches", json={"name": "Styczeń", "total_projects": 3}
    )
    assert created.status_code == 201, created.text
    batch = created.json()
    assert (batch["status"], batch["completed_projects"]) == ("uploading", 0)
    listed = await client.get(f"/users/{anna['id']}/batches")
    assert [b["id"] for b in listed.json()] == [batch["id"]]
    assert (await client.get(f"/users/{anna['id']}/batches", params={"limit": 0})).status_code == (
        422
    )


async def test_batch_errors(client: httpx.AsyncClient, anna: dict[str, object]) -> None:
    too_big = await client.post(
        f"/users/{anna['id']}/batches", json={"name": "b", "total_projects": 21}
    )
    assert too_big.status_code == 422
    orphan = await client.post(
        f"/users/{uuid.uuid4()}/batches", json={"name": "b", "total_projects": 2}
    )
    assert orphan.status_code == 404


async def test_reads_answer_what_the_repository_reads(
    client: httpx.AsyncClient, anna: dict[str, object], db_session: AsyncSession
) -> None:
    """The read routes (`plinth.Reads`) answer exactly what the ORM path would."""
    for i in range(3):
        body = {"name": f"b{i}", "total_projects": 2}
        assert (await client.post(f"/users/{anna['id']}/batches", json=body)).status_code == 201
    batches = BatchRepository(db_session)
    user_id = uuid.UUID(str(anna["id"]))
    first = (await batches.list_by_user(user_id))[0]
    await batches.update_status(first.id, "archived")
    expected = [
        BatchOut.model_validate(b).model_dump(mode="json")
        for b in await batches.list_by_user(user_id)
    ]
    assert len(expected) == 2
    assert (await client.get(f"/users/{anna['id']}/batches")).json() == expected
    page = await client.get(f"/users/{anna['id']}/batches", params={"limit": 1, "offset": 1})
    assert page.json() == expected[1:]
    found = await client.get("/users", params={"email": "anna@firma.pl"})
    assert found.json() == anna
    assert (await client.get(f"/users/{anna['id']}")).content == found.content
