from __future__ import annotations

import httpx


async def test_create_and_get_document(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/documents",
        json={"content": "hello world", "file_name": "a.txt", "file_size": 11,
              "source_language": "en", "session_id": "s1"},
    )
    assert created.status_code == 201, created.text
    fetched = await client.get(f"/documents/{created.json()['id']}")
    assert fetched.json()["content"] == "hello world"
