"""Bad input is a 422 at the door, never a 500 (issue 10)."""

from __future__ import annotations

import httpx
import pytest

DOCUMENT = {
    "content": "Hello",
    "file_name": "a.txt",
    "file_size": 5,
    "source_language": "en",
    "session_id": "s1",
}


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    "url",
    [
        "/documents/search?q=hello&limit=1000000",
        "/documents/search?q=hello&limit=-1",
        "/documents/search?q=a%00b",
        "/documents?limit=0",
        "/documents?offset=99999999999999999999",
        "/documents?session_id=a%00b",
    ],
)
async def test_bad_query_parameters(client: httpx.AsyncClient, url: str) -> None:
    response = await client.get(url)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "body",
    [
        '{"content": "Hello", "file_name": "a.txt", "file_size": 99999999999, '
        '"source_language": "en"}',
        '{"content": "a\\u0000b", "file_name": "a.txt", "file_size": 5, "source_language": "en"}',
        '{"content": "a\\ud800b", "file_name": "a.txt", "file_size": 5, "source_language": "en"}',
    ],
)
async def test_bad_documents(client: httpx.AsyncClient, body: str) -> None:
    response = await client.post(
        "/documents", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text


async def test_state_nested_too_deep_is_refused_before_it_is_stored(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.post("/documents", json=DOCUMENT)).json()
    assert "id" in document, document
    created = await client.post(
        f"/documents/{document['id']}/translations",
        json={"target_language": "de", "session_id": "s1"},
    )
    url = f"/translations/{created.json()['id']}"
    headers = {"content-type": "application/json"}
    deep = '{"translation_state": ' + nested(300) + "}"
    assert (await client.patch(url, content=deep, headers=headers)).status_code == 422
    assert (await client.get(url)).json()["translation_state"] is None
    fine = '{"translation_state": ' + nested(10) + "}"
    assert (await client.patch(url, content=fine, headers=headers)).status_code == 200
