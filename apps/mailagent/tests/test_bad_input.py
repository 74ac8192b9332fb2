"""Bad input is a 422, never a 500, on psycopg too (issue 10)."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize("user_id", ["0", "2147483648", "99999999999999999999"])
async def test_ids_beyond_integer(client: httpx.AsyncClient, user_id: str) -> None:
    assert (await client.get(f"/api/v1/users/{user_id}")).status_code == 422
    response = await client.patch(f"/api/v1/users/{user_id}", json={"is_active": False})
    assert response.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        '{"email": "a@b.c", "telegram_id": "1\\u00002"}',
        '{"email": "a@b.c", "telegram_username": "x\\ud800"}',
        '{"email": "a@b.c", "gmail_oauth_token": "ya29\\ud800"}',
        '{"email": "a@b.c", "gmail_refresh_token": "r\\u0000"}',
    ],
)
async def test_text_postgresql_cannot_store(client: httpx.AsyncClient, body: str) -> None:
    response = await client.post(
        "/api/v1/users", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "ya29" not in response.text
