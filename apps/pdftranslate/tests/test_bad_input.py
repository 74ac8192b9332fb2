"""Bad input is a 422 at the door, never a 500 (issue 10)."""

from __future__ import annotations

import uuid

import httpx
import pytest


def tenant() -> dict[str, str]:
    return {"X-Tenant-ID": str(uuid.uuid4())}


@pytest.mark.parametrize("limit", ["0", "101", "1000000", "99999999999999999999"])
async def test_job_lists_are_bounded(client: httpx.AsyncClient, limit: str) -> None:
    response = await client.get(
        f"/users/{uuid.uuid4()}/translations?limit={limit}", headers=tenant()
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "body",
    [
        '{"google_id": "g\\u0000", "email": "a@b.c"}',
        '{"google_id": "g", "email": "a@b.c", "name": "\\ud800"}',
    ],
)
async def test_text_postgresql_cannot_store(client: httpx.AsyncClient, body: str) -> None:
    headers = {**tenant(), "content-type": "application/json"}
    response = await client.post("/users", content=body, headers=headers)
    assert response.status_code == 422, response.text


async def test_page_count_beyond_integer(client: httpx.AsyncClient) -> None:
    response = await client.patch(
        f"/translations/{uuid.uuid4()}", json={"page_count": 2**31}, headers=tenant()
    )
    assert response.status_code == 422, response.text
