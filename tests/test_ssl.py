"""SSL for real: a PostgreSQL 15 cluster with ssl=on and a certificate made here.

The embedded server is built without OpenSSL, so these tests start a
throwaway cluster from the machine's PostgreSQL binaries, and skip where
there are none.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from plinth import Database, DatabaseSettings, DatabaseUnavailableError
from plinth.db.security import inspect_connection
from plinth.testing import local_server_url

BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


@dataclass(frozen=True)
class SslServer:
    port: int
    ca: Path
    other_ca: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def ssl_server() -> Iterator[SslServer]:
    if not BINARIES or not (BINARIES[-1] / "initdb").exists():
        pytest.skip("no PostgreSQL server binaries on this machine")
    bin_dir = BINARIES[-1]
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("root without runuser cannot start PostgreSQL")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="plinth-ssl-"))
    base.chmod(0o755)  # our own new directory: the server user must reach it
    ca_key, server_key = _key(), _key()
    ca = _certificate("plinth test CA", ca_key, None)
    server = _certificate(
        "localhost",
        server_key,
        ("plinth test CA", ca_key),
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    (base / "ca.pem").write_bytes(_pem(ca))
    (base / "other-ca.pem").write_bytes(_pem(_certificate("another CA", _key(), None)))
    (base / "server.crt").write_bytes(_pem(server))
    (base / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (base / "server.key").chmod(0o600)
    if as_postgres:
        shutil.chown(base / "server.key", "postgres")
        shutil.chown(base, "postgres")
    data, port = base / "data", _free_port()
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    options = (
        f"-h 127.0.0.1,127.0.0.2 -p {port} -k {base} -c ssl=on -c ssl_cert_file={base}/server.crt "
        f"-c ssl_key_file={base}/server.key -c fsync=off"
    )
    subprocess.run(
        [
            *as_postgres,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-o",
            options,
            "-l",
            str(base / "log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield SslServer(port, base / "ca.pem", base / "other-ca.pem")
    finally:
        subprocess.run(
            [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


def database(url: str, **settings: object) -> Database:
    return Database(DatabaseSettings.load(database_url=url, connect_retries=0, **settings))


async def encrypted(url: str) -> bool:
    async with database(url) as db, db.engine.connect() as connection:
        return (await inspect_connection(connection)).ssl


@pytest.mark.parametrize("driver", ["postgresql", "postgresql+psycopg"])
async def test_sslmode_require_encrypts(ssl_server: SslServer, driver: str) -> None:
    url = f"{driver}://postgres@127.0.0.1:{ssl_server.port}/postgres?sslmode=require"
    assert await encrypted(url) is True


@pytest.mark.parametrize("driver", ["postgresql", "postgresql+psycopg"])
async def test_without_ssl_the_same_server_is_not_encrypted(
    ssl_server: SslServer, driver: str
) -> None:
    url = f"{driver}://postgres@127.0.0.1:{ssl_server.port}/postgres?sslmode=disable"
    assert await encrypted(url) is False


@pytest.mark.parametrize("driver", ["postgresql", "postgresql+psycopg"])
async def test_verify_full_checks_chain_and_host_name(ssl_server: SslServer, driver: str) -> None:
    good = (
        f"{driver}://postgres@localhost:{ssl_server.port}/postgres"
        f"?sslmode=verify-full&sslrootcert={ssl_server.ca}"
    )
    assert await encrypted(good) is True
    wrong_ca = good.replace(str(ssl_server.ca), str(ssl_server.other_ca))
    with pytest.raises(DatabaseUnavailableError, match=r"certificate|SSL"):
        await encrypted(wrong_ca)


async def test_production_start_checks_ssl_and_warns_about_a_superuser(
    ssl_server: SslServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{ssl_server.port}/postgres?sslmode=require"
    with caplog.at_level(logging.WARNING, "plinth"):
        async with database(url, app_env="production"):
            pass
    assert "role 'postgres' has SUPERUSER, CREATEROLE, CREATEDB, BYPASSRLS" in caplog.text


async def test_verify_ca_skips_the_host_name_that_verify_full_checks(
    ssl_server: SslServer,
) -> None:
    # 127.0.0.2 is loopback too, but not a name in the server's certificate.
    base = f"postgresql://postgres@127.0.0.2:{ssl_server.port}/postgres?sslrootcert={ssl_server.ca}"
    assert await encrypted(f"{base}&sslmode=verify-ca") is True
    with pytest.raises(DatabaseUnavailableError, match=r"certificate|hostname|SSL"):
        await encrypted(f"{base}&sslmode=verify-full")


async def test_production_refuses_a_server_without_ssl() -> None:
    local = local_server_url()
    if local is None:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    async with (
        database(local.render_as_string(False)) as plain,
        plain.engine.connect() as connection,
    ):
        ssl_on = (await connection.execute(text("SHOW ssl"))).scalar_one() == "on"
    if ssl_on:
        pytest.skip("the local server has SSL on")
    url = local.set(query={"sslmode": "require"}).render_as_string(False)
    with pytest.raises(DatabaseUnavailableError, match="rejected SSL upgrade"):
        await database(url, app_env="production").start()
