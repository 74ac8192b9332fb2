"""The base of every Plinth settings class: environment, `.env`, one-line errors.

Each concern declares its own `PlinthSettings` subclass beside its code
(`plinth.db.settings`, `plinth.cache`, `plinth.storage`, ...); this module
only holds what they share: reading, and errors that name the variable and
never echo its value.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from plinth.errors import ConfigurationError

__all__ = ["AppEnv", "PlinthSettings", "redact_url"]

AppEnv = Literal["development", "test", "production"]


def redact_url(url: str) -> str:
    """`url` with its password replaced by ``***`` (for ``repr``, messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


class PlinthSettings(BaseSettings):
    """Base of Plinth's settings classes (database, cache, storage, migrations).

    `load` reads them and turns bad input into one `ConfigurationError` line
    that names the environment variable and never echoes its value.
    """

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", hide_input_in_errors=True, populate_by_name=True
    )

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Read the settings, raising a one-line `ConfigurationError` on bad input."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigurationError(cls._describe(exc)) from None
        except SettingsError as exc:
            # A complex field (a dict, a list) whose value is not JSON.
            field = re.search(r'field "([^"]+)"', str(exc))
            name = cls.variable(field.group(1)) if field else "a setting"
            raise ConfigurationError(f"{name} is not valid JSON") from None

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable that sets `field` (or an alias, returned as is)."""
        info = cls.model_fields.get(field)
        if info is None:
            return field  # pydantic locates an aliased field's error by its alias
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
            alias = alias.choices[0]
        if isinstance(alias, str):
            return alias
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    @classmethod
    def _describe(cls, exc: ValidationError) -> str:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            message = error["msg"].removeprefix("Value error, ")
            message = "is required" if message == "Field required" else message
            if error["loc"]:
                problems.append(f"{cls.variable(str(error['loc'][0]))} {message}")
            else:
                problems.append(message)  # a check across fields names its variables itself
        return "; ".join(problems)
