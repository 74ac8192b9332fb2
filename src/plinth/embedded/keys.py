"""Development encryption keys: one Fernet key per project, made once.

With ``PLINTH_ENCRYPTION_KEYS`` unset and ``APP_ENV`` development or test,
`plinth.encryption` uses the key kept in ``development-keys.json`` (0600) of
the project's embedded home, so that values encrypted in one run decrypt in
the next. Production never reads it.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from plinth.embedded import _root
from plinth.embedded.credentials import load_or_create
from plinth.embedded.home import embedded_home

__all__ = ["development_keys"]

FILE_NAME = "development-keys.json"


def development_keys(project_dir: Path | None = None) -> tuple[str, Path, bool]:
    """The keys (comma-separated), the file holding them, and whether they were made now."""
    home = embedded_home(project_dir)
    _root.make_dirs(home)
    path = home / FILE_NAME
    # A Fernet key: 32 random bytes, url-safe base64 (what Fernet.generate_key makes).
    made, created = load_or_create(
        path, lambda: {"keys": base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")}
    )
    return made["keys"], path, created
