"""The package's architecture holds: no import cycle, no upward import.

The layers are the import-linter contract in pyproject.toml (drawn in
docs/design.md); a module that imports a layer above its own breaks it. A
cycle between two modules, even inside one package, is found here too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def import_cycles(imports: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in imports.get(module, ()):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return cycles


def plinth_imports() -> dict[str, set[str]]:
    # Imports under TYPE_CHECKING never run; function-level imports do, so they count.
    graph = grimp.build_graph("plinth", exclude_type_checking_imports=True)
    # The root package re-exports the public API and is imported by no module.
    return {
        module: graph.find_modules_directly_imported_by(module) - {"plinth"}
        for module in graph.modules
        if module != "plinth"
    }


def test_no_module_imports_the_root_package() -> None:
    graph = grimp.build_graph("plinth", exclude_type_checking_imports=True)
    assert graph.find_modules_that_directly_import("plinth") == set()


def test_no_import_cycle() -> None:
    imports = plinth_imports()
    assert len(imports) > 40  # the whole package was read
    assert import_cycles(imports) == []


@pytest.mark.parametrize(
    ("imports", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(
    imports: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert import_cycles(imports) == expected


def test_layers_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The contract is live: a copy of the package with one upward import fails it."""
    copy = tmp_path / "src"
    copy.mkdir()
    shutil.copytree(ROOT / "src" / "plinth", copy / "plinth")
    errors = copy / "plinth" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom plinth.web import handlers  # upward\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "plinth.errors -> plinth.web.handlers" in result.stdout
