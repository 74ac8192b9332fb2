"""The tenant of a request, from a header, for `Database.tenant_depends`.

`tenant_header` reads a UUID from a header (``X-Tenant-ID`` by default). A
request without it, or with anything but a UUID in it, is a 422 naming the
header, before any dependency touches the database: a missing tenant can never
mean "every tenant".
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import Header

__all__ = ["tenant_header"]


def tenant_header(
    name: str = "X-Tenant-ID", *, description: str = "The tenant; scopes every query."
) -> Callable[[uuid.UUID], uuid.UUID]:
    """A dependency returning the UUID in header `name`; 422 when missing or malformed."""

    def tenant(value: uuid.UUID = Header(alias=name, description=description)) -> uuid.UUID:
        return value

    return tenant
