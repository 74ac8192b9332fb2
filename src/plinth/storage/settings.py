"""Where the bucket is and how to reach it: ``AWS_BUCKET_NAME``, ``S3_*``, the AWS keys."""

from __future__ import annotations

import re

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from plinth.embedded.seaweed import BUCKET as EMBEDDED_BUCKET
from plinth.settings import AppEnv, PlinthSettings

__all__ = ["StorageSettings"]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class StorageSettings(PlinthSettings):
    """Where the bucket is and how to reach it.

    The seeds' names (``AWS_BUCKET_NAME``, ``AWS_REGION``, ``S3_ENDPOINT_URL``
    and the AWS credential variables); the other fields use the ``S3_``
    prefix, e.g. ``S3_PRESIGN_EXPIRES=600``.
    """

    model_config = SettingsConfigDict(env_prefix="S3_")

    bucket_name: str | None = Field(default=None, validation_alias="AWS_BUCKET_NAME")
    """``AWS_BUCKET_NAME``: the one bucket this storage uses. Unset, with
    ``S3_ENDPOINT_URL`` unset too, outside production: the embedded SeaweedFS."""

    app_env: AppEnv = Field(default="development", validation_alias="APP_ENV")
    """``APP_ENV``: production requires ``AWS_BUCKET_NAME``."""

    endpoint_url: str | None = Field(default=None, validation_alias="S3_ENDPOINT_URL")
    """``S3_ENDPOINT_URL``: MinIO or another S3-compatible server; unset: AWS.
    With an endpoint, requests use path-style addressing (``host/bucket/key``)."""

    public_endpoint_url: str | None = None
    """``S3_PUBLIC_ENDPOINT_URL``: the endpoint as browsers reach it, for presigned
    URLs, when it differs from ``S3_ENDPOINT_URL`` (``http://localhost:9000``
    while the app reaches MinIO at ``http://minio:9000``)."""

    region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    """``AWS_REGION`` (or ``AWS_DEFAULT_REGION``)."""

    access_key_id: SecretStr | None = Field(default=None, validation_alias="AWS_ACCESS_KEY_ID")
    """``AWS_ACCESS_KEY_ID``; unset: botocore's credential chain."""

    secret_access_key: SecretStr | None = Field(
        default=None, validation_alias="AWS_SECRET_ACCESS_KEY"
    )
    """``AWS_SECRET_ACCESS_KEY``."""

    session_token: SecretStr | None = Field(default=None, validation_alias="AWS_SESSION_TOKEN")
    """``AWS_SESSION_TOKEN``, for temporary credentials."""

    ensure_bucket: bool = True
    """Create the bucket and its lifecycle rule at start-up when missing."""

    presign_expires: int = Field(default=3600, ge=1, le=604800)
    """Seconds a presigned URL stays valid (S3 allows at most 7 days)."""

    connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds allowed for one connection attempt."""

    read_timeout: float = Field(default=60.0, gt=0)
    """Seconds allowed between two reads of a response."""

    max_attempts: int = Field(default=3, ge=1)
    """Attempts per request (botocore's standard retry mode, with backoff)."""

    max_pool_connections: int = Field(default=10, ge=1)
    """Connections the client keeps open to S3."""

    @field_validator("bucket_name")
    @classmethod
    def _check_bucket(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _BUCKET.match(value) or ".." in value:
            raise ValueError(
                f"{value!r} is not a valid bucket name: 3 to 63 lowercase letters, digits, "
                "dots or hyphens, beginning and ending with a letter or digit"
            )
        return value

    @field_validator("endpoint_url", "public_endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, e.g. http://minio:9000")
        return value

    @model_validator(mode="after")
    def _bucket_required(self) -> StorageSettings:
        if self.bucket_name is None and self.app_env == "production":
            raise ValueError("AWS_BUCKET_NAME is required when APP_ENV=production")
        if self.bucket_name is None and self.endpoint_url is not None:
            raise ValueError("AWS_BUCKET_NAME is required when S3_ENDPOINT_URL is set")
        return self

    @property
    def embedded(self) -> bool:
        """Whether the embedded SeaweedFS serves this storage (no bucket, no endpoint)."""
        return self.bucket_name is None

    def describe(self) -> str:
        """Bucket and endpoint, for messages and logs."""
        if self.bucket_name is None:
            return f"s3://{EMBEDDED_BUCKET} at the embedded SeaweedFS"
        return f"s3://{self.bucket_name} at {self.endpoint_url or f'AWS {self.region}'}"
