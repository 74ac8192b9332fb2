"""`Storage`: one S3 bucket through one aiobotocore client (see `plinth.storage`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import IO, TYPE_CHECKING, Any

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from plinth.embedded.seaweed import BUCKET as EMBEDDED_BUCKET
from plinth.errors import (
    NotFound,
    ServiceStateError,
    StorageUnavailableError,
)
from plinth.lifecycle import Ping, Service, State, elapsed_ms
from plinth.storage.settings import StorageSettings

if TYPE_CHECKING:
    from plinth.embedded.process import EmbeddedService

__all__ = ["EXPIRY_RULE_ID", "PART_SIZE", "Storage"]

logger = logging.getLogger("plinth")

EXPIRY_RULE_ID = "plinth-expire"
"""The ID of the lifecycle rule `ensure_bucket` manages; other rules are kept."""

PART_SIZE = 8 * 1024 * 1024
"""Uploads larger than this go in parts of this size (S3's minimum part is 5 MiB)."""

_MISSING = ("404", "NoSuchKey", "NotFound")


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reason(exc: BaseException) -> str:
    """A one-line reason; botocore's messages carry no credentials."""
    if isinstance(exc, ClientError):
        code = _code(exc)
        if code in ("NoSuchBucket", "404", "NotFound"):
            return "the bucket does not exist (S3_ENSURE_BUCKET=true creates it)"
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"access denied ({code}): check the credentials and the bucket policy"
        return code or "request refused"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


class Storage(Service):
    """One S3 bucket through one async client, started and closed explicitly.

    Use as the FastAPI lifespan, or ``async with storage:``. Safe to share
    between concurrent tasks. `expire_after_days` (with `expire_prefix`) is
    the app's retention policy: `ensure_bucket` keeps a lifecycle rule for it.
    """

    def __init__(
        self,
        settings: StorageSettings | None = None,
        *,
        expire_after_days: int | None = None,
        expire_prefix: str = "",
    ) -> None:
        if expire_after_days is not None and expire_after_days < 1:
            raise ValueError("expire_after_days must be at least 1 (S3 counts whole days)")
        self._settings = settings
        self.expire_after_days = expire_after_days
        """Days until objects below `expire_prefix` expire (S3 lifecycle rule); None: never."""
        self.expire_prefix = expire_prefix
        """The key prefix the expiry rule applies to (``""``: the whole bucket)."""
        self._state = State.NEW
        self._client: Any = None
        self._presigner: Any = None
        self._stack: AsyncExitStack | None = None
        self._embedded: EmbeddedService | None = None

    def __repr__(self) -> str:
        where = self._settings.describe() if self._settings is not None else "<from env>"
        return f"<Storage {where} {self._state.value}>"

    @property
    def settings(self) -> StorageSettings:
        """The settings, read from the environment on first use."""
        if self._settings is None:
            self._settings = StorageSettings.load()
        return self._settings

    @property
    def bucket(self) -> str:
        """The bucket's name (``AWS_BUCKET_NAME``, else the embedded one)."""
        return self.settings.bucket_name or EMBEDDED_BUCKET

    @property
    def client(self) -> Any:
        """The aiobotocore S3 client; raises `ServiceStateError` unless started."""
        if self._client is None:
            raise self._not_started()
        return self._client

    @contextmanager
    def _translated(self, key: str | None = None) -> Iterator[None]:
        """Turn botocore failures into `StorageUnavailableError` (`NotFound` for `key`)."""
        try:
            yield
        except ClientError as exc:
            if key is not None and _code(exc) in _MISSING:
                raise NotFound(f"object {key!r} not found in bucket {self.bucket!r}") from exc
            raise StorageUnavailableError(f"{self.settings.describe()}: {_reason(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError(f"{self.settings.describe()}: {_reason(exc)}") from exc

    async def start(self) -> None:
        """Open the client and check the bucket (creating it, with `ensure_bucket`)."""
        if self._state is State.STARTED:
            return
        if self._state is State.CLOSED:
            raise ServiceStateError("Storage is closed; create a new one to reconnect")
        settings = configured = self.settings
        if settings.embedded:
            settings = await self._start_embedded(settings)
        session = aioboto3.Session(
            aws_access_key_id=_secret(settings.access_key_id),
            aws_secret_access_key=_secret(settings.secret_access_key),
            aws_session_token=_secret(settings.session_token),
            region_name=settings.region,
        )
        config = AioConfig(
            signature_version="s3v4",
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            retries={"mode": "standard", "max_attempts": settings.max_attempts},
            max_pool_connections=settings.max_pool_connections,
            s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
        )
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                session.client("s3", endpoint_url=settings.endpoint_url, config=config)
            )
            self._stack = stack
            if settings.public_endpoint_url is not None:
                # Presigning is local computation: this client never connects.
                self._presigner = await stack.enter_async_context(
                    session.client("s3", endpoint_url=settings.public_endpoint_url, config=config)
                )
            if settings.ensure_bucket:
                await self.ensure_bucket()
            else:
                with self._translated():
                    await self._client.head_bucket(Bucket=self.bucket)
        except BaseException:
            self._client = self._stack = self._presigner = None
            await stack.aclose()
            await self._release_embedded()
            self._settings = configured  # a retry starts the embedded server afresh
            raise
        self._state = State.STARTED
        logger.info("storage connected to %s", settings.describe())

    async def _start_embedded(self, settings: StorageSettings) -> StorageSettings:
        """Start or reuse the project's SeaweedFS (the cwd's project) and point at it."""
        from plinth.embedded.seaweed import start_seaweedfs

        service = await asyncio.to_thread(start_seaweedfs)
        self._embedded = service
        service.announce()
        logger.warning("AWS_BUCKET_NAME unset: using the embedded SeaweedFS at %s", service.url)
        self._settings = settings.model_copy(
            update={
                "bucket_name": EMBEDDED_BUCKET,
                "endpoint_url": service.url,
                "public_endpoint_url": None,
                "region": "us-east-1",
                "access_key_id": SecretStr(service.credentials["access_key_id"]),
                "secret_access_key": SecretStr(service.credentials["secret_access_key"]),
                "session_token": None,
            }
        )
        return self._settings

    async def _release_embedded(self) -> None:
        if self._embedded is not None:
            embedded, self._embedded = self._embedded, None
            await asyncio.to_thread(embedded.release_announced)

    async def close(self) -> None:
        """Close the client; the storage cannot be started again."""
        if self._stack is not None:
            await self._stack.aclose()
        self._client = self._stack = self._presigner = None
        await self._release_embedded()
        self._state = State.CLOSED

    async def ping(self, timeout: float = 2.0) -> Ping:
        """``HeadBucket`` within `timeout` seconds; raise `StorageUnavailableError`."""
        client = self.client
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                with self._translated():
                    response = await client.head_bucket(Bucket=self.bucket)
        except TimeoutError as exc:
            raise StorageUnavailableError(f"{self.settings.describe()}: timed out") from exc
        server = response["ResponseMetadata"]["HTTPHeaders"].get("server", "unknown")
        return Ping(elapsed_ms(started), str(server))

    async def ensure_bucket(self) -> bool:
        """Create the bucket if missing and keep the expiry rule; True if created."""
        client, created = self.client, False
        try:
            await client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise StorageUnavailableError(
                    f"{self.settings.describe()}: {_reason(exc)}"
                ) from exc
            options: dict[str, Any] = {"Bucket": self.bucket}
            if self.settings.region != "us-east-1":
                location = {"LocationConstraint": self.settings.region}
                options["CreateBucketConfiguration"] = location
            with self._translated():
                await client.create_bucket(**options)
            created = True
            logger.info("created bucket %s", self.settings.describe())
        except BotoCoreError as exc:
            raise StorageUnavailableError(f"{self.settings.describe()}: {_reason(exc)}") from exc
        if self.expire_after_days is not None:
            await self._keep_expiry_rule(self.expire_after_days)
        return created

    async def _keep_expiry_rule(self, days: int) -> None:
        rule = {
            "ID": EXPIRY_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": self.expire_prefix},
            "Expiration": {"Days": days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
        rules = await self.lifecycle_rules()
        if rule in rules:
            return
        # PUT replaces the whole configuration: keep the rules somebody else set.
        others = [r for r in rules if r.get("ID") != EXPIRY_RULE_ID]
        with self._translated():
            await self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [*others, rule]}
            )

    async def lifecycle_rules(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules (empty when it has none)."""
        try:
            response = await self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) == "NoSuchLifecycleConfiguration":
                return []
            raise StorageUnavailableError(f"{self.settings.describe()}: {_reason(exc)}") from exc
        return list(response.get("Rules", []))

    async def upload(
        self,
        key: str,
        data: bytes | IO[bytes],
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Store `data` at `key`; anything over `PART_SIZE` is sent in parts."""
        _check_key(key)
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": metadata or {}}
        source = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
        # A file on disk is read in a thread: a read may block, the loop must not.
        if isinstance(source, io.BytesIO):
            read = functools.partial(_read_now, source)
        else:
            read = functools.partial(asyncio.to_thread, source.read, PART_SIZE)
        first = await read()
        with self._translated():
            if len(first) < PART_SIZE:
                # Bodies go as file objects: aiohttp warns that large raw bytes stall the loop.
                body = io.BytesIO(first)
                await self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
            else:
                await self._multipart(key, first, read, extra)

    async def _multipart(
        self,
        key: str,
        first: bytes,
        read: Callable[[], Awaitable[bytes]],
        extra: dict[str, Any],
    ) -> None:
        client, bucket = self.client, self.bucket
        upload = await client.create_multipart_upload(Bucket=bucket, Key=key, **extra)
        upload_id, chunk = upload["UploadId"], first
        parts: list[dict[str, Any]] = []
        try:
            while chunk:
                number = len(parts) + 1
                response = await client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=io.BytesIO(chunk),
                )
                parts.append({"ETag": response["ETag"], "PartNumber": number})
                chunk = await read()
            await client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # Stored parts cost money until aborted (the expiry rule aborts them too).
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    async def download(self, key: str) -> bytes:
        """The object's content; `NotFound` if there is none."""
        _check_key(key)
        with self._translated(key):
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                return bytes(await body.read())

    async def exists(self, key: str) -> bool:
        """Whether an object is stored at `key`."""
        _check_key(key)
        try:
            with self._translated(key):
                await self.client.head_object(Bucket=self.bucket, Key=key)
        except NotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Delete the object at `key` (no error if there is none, as in S3)."""
        _check_key(key)
        with self._translated():
            await self.client.delete_object(Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix`; return how many."""
        if not prefix:
            raise ValueError("refusing to delete a whole bucket: give a non-empty prefix")
        deleted = 0
        with self._translated():
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            async for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    await self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                    )
                    deleted += len(keys)
        return deleted

    async def presigned_get(
        self, key: str, *, expires_in: int | None = None, filename: str | None = None
    ) -> str:
        """A URL that downloads `key` without credentials until it expires."""
        _check_key(key)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename is not None:
            quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
            params["ResponseContentDisposition"] = f'attachment; filename="{quoted}"'
        return await self._presign("get_object", params, expires_in)

    async def presigned_put(
        self, key: str, *, content_type: str, expires_in: int | None = None
    ) -> str:
        """A URL to upload `key` with ``PUT``; the client must send `content_type`."""
        _check_key(key)
        params = {"Bucket": self.bucket, "Key": key, "ContentType": content_type}
        return await self._presign("put_object", params, expires_in)

    async def _presign(self, method: str, params: dict[str, Any], expires_in: int | None) -> str:
        expires = expires_in if expires_in is not None else self.settings.presign_expires
        if not 1 <= expires <= 604800:
            raise ValueError(f"expires_in must be 1 to 604800 seconds, got {expires!r}")
        with self._translated():
            presigner = self._presigner or self.client
            url = await presigner.generate_presigned_url(method, Params=params, ExpiresIn=expires)
        return str(url)


async def _read_now(source: io.BytesIO) -> bytes:
    return source.read(PART_SIZE)


def _check_key(key: str) -> None:
    if not key or key.startswith("/") or len(key.encode()) > 1024:
        raise ValueError(f"invalid object key {key!r}: 1 to 1024 bytes, not starting with '/'")
