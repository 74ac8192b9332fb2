"""The pytest plugins without the ``testing`` extra: a clear word, never a broken run.

The plugins are registered for every pytest run in an environment where
Plinth is installed, including one without pytest-asyncio. Importing it
there must not fail: the run goes on, its header says what to install, and
only a test that asks for one of Plinth's async fixtures fails, with the same
sentence.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

__all__ = ["INSTALL", "async_fixture", "missing_testing_extra", "unavailable_fixture"]

INSTALL = "pip install 'plinth-pg[testing]'"


@functools.cache
def missing_testing_extra() -> str | None:
    """What to install for Plinth's fixtures, or None when all is there."""
    try:
        found = importlib.util.find_spec("pytest_asyncio") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        try:
            import pytest_asyncio  # noqa: F401
        except ImportError:
            found = False
    return None if found else f"pytest-asyncio is not installed ({INSTALL})"


def unavailable_fixture(
    *args: Any, scope: str = "function", **kwargs: Any
) -> Callable[[Callable[..., Any]], Any]:
    """Stands in for ``pytest_asyncio.fixture``: a fixture that fails, saying why."""

    def decorate(function: Callable[..., Any]) -> Any:
        # No parameters: the real fixture's own would need pytest-asyncio too.
        def unavailable() -> None:
            pytest.fail(
                f"Plinth's fixture {function.__name__!r} needs pytest-asyncio: {INSTALL}",
                pytrace=False,
            )

        unavailable.__doc__ = function.__doc__
        return pytest.fixture(scope=scope, name=function.__name__)(unavailable)  # type: ignore[call-overload]

    return decorate


if TYPE_CHECKING:
    from pytest_asyncio import fixture as async_fixture
else:
    try:
        from pytest_asyncio import fixture as async_fixture
    except ModuleNotFoundError:
        async_fixture = unavailable_fixture
