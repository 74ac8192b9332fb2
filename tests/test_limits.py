"""The request body limit: 413 JSON, declared or streamed, and a normal body passes."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from plinth import BodySizeLimit, ConfigurationError
from plinth.project import find_app
from plinth.web.limits import DEFAULT_MAX_BODY_BYTES

APPS = Path(__file__).parents[1] / "apps"
MB = 1024 * 1024
BIG = json.dumps({"text": "x" * (30 * MB)}).encode()  # a 30 MB JSON body


class Item(BaseModel):
    text: str


def _app(calls: list[int], **limit: object) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodySizeLimit, **limit)  # type: ignore[arg-type]

    @app.post("/items")
    async def create(item: Item) -> dict[str, int]:
        calls.append(len(item.text))
        return {"length": len(item.text)}

    @app.post("/raw")
    async def raw(request: Request) -> JSONResponse:
        try:
            body = await request.body()
        except Exception:  # an app that answers a failed read itself
            return JSONResponse({"detail": "bad body"}, status_code=400)
        calls.append(len(body))
        return JSONResponse({"length": len(body)})

    return app


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture(autouse=True)
def no_limit_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTP_MAX_BODY_BYTES", raising=False)
    monkeypatch.chdir("/")  # no stray .env


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _assert_413(response: httpx.Response, limit: int = DEFAULT_MAX_BODY_BYTES) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": f"request body larger than {limit} bytes"}


async def test_a_30_mb_body_is_413_and_a_normal_one_passes() -> None:
    calls: list[int] = []
    async with _client(_app(calls)) as client:
        big = await client.post("/items", content=BIG, headers={"content-type": "application/json"})
        _assert_413(big)
        chunked = await client.post(
            "/items", content=_chunks(BIG), headers={"content-type": "application/json"}
        )
        assert "content-length" not in chunked.request.headers
        _assert_413(chunked)
        assert calls == []  # the endpoint never ran
        normal = await client.post("/items", json={"text": "hello"})
        assert (normal.status_code, normal.json()) == (200, {"length": 5})
        at_limit = b"y" * DEFAULT_MAX_BODY_BYTES
        exact = await client.post("/raw", content=_chunks(at_limit))
        assert (exact.status_code, calls) == (200, [5, DEFAULT_MAX_BODY_BYTES])


async def test_an_app_answering_the_failed_read_itself_still_gives_413() -> None:
    calls: list[int] = []
    async with _client(_app(calls, max_bytes=1000)) as client:
        _assert_413(await client.post("/raw", content=_chunks(b"z" * 5000, 300)), 1000)
        assert (await client.post("/raw", content=b"z" * 1000)).status_code == 200
    assert calls == [1000]


async def test_the_limit_comes_from_http_max_body_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_MAX_BODY_BYTES", "100")
    calls: list[int] = []
    async with _client(_app(calls)) as client:
        _assert_413(await client.post("/items", json={"text": "a" * 200}), 100)
        assert (await client.post("/items", json={"text": "a" * 50})).status_code == 200


async def test_a_bad_http_max_body_bytes_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_MAX_BODY_BYTES", "4MB")
    with pytest.raises(ConfigurationError, match=r"^HTTP_MAX_BODY_BYTES .*integer"):
        BodySizeLimit(FastAPI())


async def test_an_upload_media_type_has_its_own_limit() -> None:
    calls: list[int] = []
    app = _app(calls, max_bytes=1000, media_types={"application/pdf": 10_000})
    async with _client(app) as client:
        pdf = {"content-type": "application/pdf; name=x"}
        assert (await client.post("/raw", content=b"%" * 5000, headers=pdf)).status_code == 200
        _assert_413(await client.post("/raw", content=b"%" * 20_000, headers=pdf), 10_000)
        _assert_413(await client.post("/raw", content=b"%" * 5000), 1000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _served(app: FastAPI) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def test_through_a_real_server() -> None:
    """uvicorn: the 413 reaches the client, which is still sending its body."""
    calls: list[int] = []
    with _served(_app(calls)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            headers = {"content-type": "application/json"}
            _assert_413(await client.post("/items", content=BIG, headers=headers))
            _assert_413(await client.post("/items", content=_chunks(BIG), headers=headers))
            assert (await client.post("/items", json={"text": "ok"})).status_code == 200
    assert calls == [2]


@pytest.mark.parametrize("name", ["translator", "rndcards", "pdftranslate", "mailagent"])
def test_every_reference_app_has_the_limit(name: str) -> None:
    app = find_app(APPS / name).app
    assert any(middleware.cls is BodySizeLimit for middleware in app.user_middleware)


async def test_translator_refuses_a_30_mb_body() -> None:
    # The limit answers before routing: no database is needed to see it.
    app = find_app(APPS / "translator").app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/documents", "/nowhere"):
            _assert_413(await client.post(path, content=BIG))
