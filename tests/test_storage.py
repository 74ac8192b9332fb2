"""S3 storage against a real S3-compatible server on loopback (moto's server mode)."""

from __future__ import annotations

import asyncio
import io
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from plinth import (
    ConfigurationError,
    NotFound,
    ServiceStateError,
    Storage,
    StorageSettings,
    StorageUnavailableError,
)
from plinth.storage import EXPIRY_RULE_ID

SECRET = "moto-secret-key-never-shown"


def settings_for(endpoint: str, bucket: str | None = None, **overrides: Any) -> StorageSettings:
    values: dict[str, Any] = {
        "bucket_name": bucket or f"plinth-test-{uuid.uuid4().hex[:12]}",
        "endpoint_url": endpoint,
        "access_key_id": "moto-key",
        "secret_access_key": SECRET,
        "region": "us-east-1",
        "max_attempts": 1,
    }
    values.update(overrides)
    return StorageSettings(**values)


@pytest.fixture
async def storage(s3_server: str) -> AsyncIterator[Storage]:
    async with Storage(settings_for(s3_server), expire_after_days=1) as started:
        yield started
        pages = started.client.get_paginator("list_objects_v2").paginate(Bucket=started.bucket)
        async for page in pages:
            for item in page.get("Contents", []):
                await started.delete(item["Key"])
        await started.client.delete_bucket(Bucket=started.bucket)


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts connections (the kernel does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_bucket_name_is_required_with_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without both (outside production): the embedded S3 (tests/test_embedded_services.py).
    monkeypatch.delenv("AWS_BUCKET_NAME", raising=False)
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://localhost:9000")
    with pytest.raises(
        ConfigurationError, match=r"^AWS_BUCKET_NAME is required when S3_ENDPOINT_URL is set$"
    ):
        StorageSettings.load()


def test_an_invalid_bucket_name_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_BUCKET_NAME", "My_Bucket")
    with pytest.raises(ConfigurationError, match=r"^AWS_BUCKET_NAME 'My_Bucket' is not a valid"):
        StorageSettings.load()


def test_an_endpoint_needs_a_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_BUCKET_NAME", "pdfs")
    monkeypatch.setenv("S3_ENDPOINT_URL", "minio:9000")
    with pytest.raises(ConfigurationError, match=r"^S3_ENDPOINT_URL must start with http://"):
        StorageSettings.load()


def test_settings_read_the_usual_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_BUCKET_NAME", "pdfs")
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("S3_PRESIGN_EXPIRES", "600")
    settings = StorageSettings.load()
    assert settings.bucket_name == "pdfs"
    assert settings.endpoint_url == "http://minio:9000"
    assert settings.region == "eu-central-1"
    assert settings.presign_expires == 600
    assert settings.secret_access_key is not None
    assert settings.secret_access_key.get_secret_value() == SECRET
    for text in (repr(settings), str(settings), repr(Storage(settings))):
        assert SECRET not in text
        assert "AKIAEXAMPLE" not in text


def test_retention_is_counted_in_whole_days() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Storage(expire_after_days=0)


async def test_start_creates_the_bucket_once(s3_server: str, storage: Storage) -> None:
    await storage.client.head_bucket(Bucket=storage.bucket)
    again = Storage(settings_for(s3_server, storage.bucket))
    async with again:
        assert await again.ensure_bucket() is False


async def test_a_bucket_outside_us_east_1_is_created_in_its_region(s3_server: str) -> None:
    async with Storage(settings_for(s3_server, region="eu-west-1")) as storage:
        location = await storage.client.get_bucket_location(Bucket=storage.bucket)
        assert location["LocationConstraint"] == "eu-west-1"
        await storage.client.delete_bucket(Bucket=storage.bucket)


async def test_ensure_bucket_keeps_an_expiry_rule(storage: Storage) -> None:
    rules = await storage.lifecycle_rules()
    assert [rule["ID"] for rule in rules] == [EXPIRY_RULE_ID]
    assert rules[0]["Expiration"] == {"Days": 1}
    assert rules[0]["Status"] == "Enabled"


async def test_ensure_bucket_keeps_other_rules_and_does_not_duplicate(
    s3_server: str, storage: Storage
) -> None:
    other = {
        "ID": "archive-logs",
        "Status": "Enabled",
        "Filter": {"Prefix": "logs/"},
        "Expiration": {"Days": 90},
    }
    ours = [rule for rule in await storage.lifecycle_rules() if rule["ID"] == EXPIRY_RULE_ID]
    await storage.client.put_bucket_lifecycle_configuration(
        Bucket=storage.bucket, LifecycleConfiguration={"Rules": [other, *ours]}
    )
    again = Storage(
        settings_for(s3_server, storage.bucket), expire_after_days=2, expire_prefix="tmp/"
    )
    async with again:
        await again.ensure_bucket()
        rules = {rule["ID"]: rule for rule in await again.lifecycle_rules()}
    assert set(rules) == {"archive-logs", EXPIRY_RULE_ID}
    assert rules[EXPIRY_RULE_ID]["Expiration"] == {"Days": 2}
    assert rules[EXPIRY_RULE_ID]["Filter"] == {"Prefix": "tmp/"}


async def test_upload_and_download_bytes(storage: Storage) -> None:
    await storage.upload(
        "t1/original.pdf",
        b"%PDF-1.7 hello",
        content_type="application/pdf",
        metadata={"pages": "1"},
    )
    assert await storage.download("t1/original.pdf") == b"%PDF-1.7 hello"
    head = await storage.client.head_object(Bucket=storage.bucket, Key="t1/original.pdf")
    assert head["ContentType"] == "application/pdf"
    assert head["Metadata"] == {"pages": "1"}


async def test_a_large_file_object_is_uploaded_in_parts(storage: Storage) -> None:
    data = bytes(range(256)) * (9 * 4096)  # 9 MiB: two parts of at most 8 MiB
    await storage.upload("big.bin", io.BytesIO(data))
    await storage.upload("big-bytes.bin", data)
    for key in ("big.bin", "big-bytes.bin"):
        assert await storage.download(key) == data
        head = await storage.client.head_object(Bucket=storage.bucket, Key=key)
        assert head["ETag"].strip('"').endswith("-2")  # a multipart ETag names its part count


async def test_a_file_on_disk_is_uploaded(storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"%PDF-1.7 " + b"x" * 100_000)
    with path.open("rb") as file:
        await storage.upload("scan.pdf", file, content_type="application/pdf")
    assert await storage.download("scan.pdf") == path.read_bytes()


async def test_a_missing_object_is_not_found(storage: Storage) -> None:
    with pytest.raises(NotFound, match=r"object 'nope\.pdf' not found in bucket"):
        await storage.download("nope.pdf")


async def test_exists_and_delete(storage: Storage) -> None:
    await storage.upload("a.txt", b"a")
    assert await storage.exists("a.txt")
    await storage.delete("a.txt")
    assert not await storage.exists("a.txt")
    await storage.delete("a.txt")  # deleting nothing is not an error, as in S3


async def test_delete_prefix(storage: Storage) -> None:
    for name in ("job1/a", "job1/b", "job1/c", "job2/a"):
        await storage.upload(name, b"x")
    assert await storage.delete_prefix("job1/") == 3
    assert not await storage.exists("job1/a")
    assert await storage.exists("job2/a")
    with pytest.raises(ValueError, match="whole bucket"):
        await storage.delete_prefix("")


@pytest.mark.parametrize("key", ["", "/leading-slash", "x" * 1025])
async def test_invalid_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        await storage.upload(key, b"x")


async def test_a_presigned_get_url_downloads_without_credentials(storage: Storage) -> None:
    await storage.upload("doc.pdf", b"%PDF-1.7 shared", content_type="application/pdf")
    url = await storage.presigned_get("doc.pdf", expires_in=300, filename='report "v2".pdf')
    assert "X-Amz-Signature=" in url
    assert SECRET not in url
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.content == b"%PDF-1.7 shared"
    assert response.headers["content-disposition"] == 'attachment; filename="report \\"v2\\".pdf"'


async def test_a_presigned_put_url_uploads_without_credentials(storage: Storage) -> None:
    url = await storage.presigned_put("upload.pdf", content_type="application/pdf")
    async with httpx.AsyncClient() as http:
        response = await http.put(
            url, content=b"%PDF-1.7 from a browser", headers={"Content-Type": "application/pdf"}
        )
    assert response.status_code == 200
    assert await storage.download("upload.pdf") == b"%PDF-1.7 from a browser"


async def test_presigned_urls_use_the_public_endpoint(s3_server: str) -> None:
    # The app reaches S3 at one name (127.0.0.1 here, minio:9000 in compose) and
    # browsers at another (localhost); the signature covers the public host.
    public = s3_server.replace("127.0.0.1", "localhost")
    settings = settings_for(s3_server, public_endpoint_url=public)
    async with Storage(settings) as storage:
        await storage.upload("doc.pdf", b"%PDF-1.7 public")
        url = await storage.presigned_get("doc.pdf")
        put_url = await storage.presigned_put("up.pdf", content_type="application/pdf")
        assert url.startswith(f"{public}/{storage.bucket}/doc.pdf?")
        assert put_url.startswith(f"{public}/{storage.bucket}/up.pdf?")
        async with httpx.AsyncClient() as http:
            response = await http.get(url)
        assert response.content == b"%PDF-1.7 public"
        await storage.delete("doc.pdf")
        await storage.client.delete_bucket(Bucket=storage.bucket)


async def test_presigned_expiry_is_bounded(storage: Storage) -> None:
    with pytest.raises(ValueError, match="expires_in must be 1 to 604800"):
        await storage.presigned_get("doc.pdf", expires_in=604801)


async def test_ping_reports_latency_and_server(storage: Storage) -> None:
    ping = await storage.ping()
    assert ping.latency_ms >= 0
    assert ping.server_version


async def test_using_storage_before_start_says_how_to_start_it() -> None:
    storage = Storage(StorageSettings(bucket_name="never-started"))
    with pytest.raises(ServiceStateError, match=r"Storage is new: call `await storage.start\(\)`"):
        await storage.exists("a")


async def test_a_closed_storage_cannot_be_used_or_restarted(s3_server: str) -> None:
    storage = Storage(settings_for(s3_server))
    async with storage:
        await storage.ping()
        await storage.client.delete_bucket(Bucket=storage.bucket)
    with pytest.raises(ServiceStateError, match="Storage is closed"):
        await storage.ping()
    with pytest.raises(ServiceStateError, match="create a new one"):
        await storage.start()


async def test_without_ensure_bucket_a_missing_bucket_fails_start(s3_server: str) -> None:
    storage = Storage(settings_for(s3_server, ensure_bucket=False))
    with pytest.raises(StorageUnavailableError, match="the bucket does not exist"):
        await storage.start()


async def test_an_unreachable_server_is_a_clear_error_without_secrets() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    storage = Storage(settings_for(endpoint, "pdfs"))
    with pytest.raises(StorageUnavailableError) as caught:
        await storage.start()
    message = str(caught.value)
    assert message.startswith(f"s3://pdfs at {endpoint}: Could not connect to the endpoint URL")
    assert SECRET not in message
    assert "moto-key" not in message


async def test_a_slow_s3_does_not_block_the_event_loop(blackhole: int) -> None:
    # Sync boto3 inside `async def` would hold the loop until its read timeout:
    # this test's own sleep could not return before the request had ended.
    settings = settings_for(f"http://127.0.0.1:{blackhole}", "pdfs", read_timeout=60)
    storage = Storage(settings, expire_after_days=1)
    request = asyncio.create_task(storage.start())
    for _ in range(5):
        await asyncio.sleep(0.01)
    assert not request.done()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert storage._client is None  # a cancelled start closes its client


async def test_lifespan_starts_and_closes(s3_server: str) -> None:
    storage = Storage(settings_for(s3_server))
    async with storage.lifespan(FastAPI()):
        assert await storage.exists("nothing") is False
        await storage.client.delete_bucket(Bucket=storage.bucket)
    with pytest.raises(ServiceStateError):
        storage.client  # noqa: B018
