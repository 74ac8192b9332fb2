"""Bad input is a 422 at the door, never a 500 (issue 10)."""

from __future__ import annotations

import uuid

import httpx
import pytest


@pytest.mark.parametrize(
    "query",
    ["limit=101", "limit=0", "offset=-1", "offset=215681930492632140980682752"],
)
async def test_batch_pages_are_bounded(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/users/{uuid.uuid4()}/batches?{query}")
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "body",
    [
        '{"email": "a@b.c", "name": "A\\u0000", "cognito_sub": "s"}',
        '{"email": "a@b.c", "name": "A", "cognito_sub": "s\\udc00"}',
    ],
)
async def test_text_postgresql_cannot_store(client: httpx.AsyncClient, body: str) -> None:
    response = await client.post(
        "/users", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text


async def test_an_email_with_nul_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users?email=a%00@b.c")).status_code == 422
