from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _declared_packages() -> list[str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data["tool"]["setuptools"]["packages"]


def test_every_python_folder_is_a_declared_package():
    declared = set(_declared_packages())
    folders = {str(p.parent.relative_to(REPO)).replace("/", ".")
               for p in (REPO / "instgs").rglob("*.py") if "__pycache__" not in p.parts}
    assert folders <= declared, f"add to pyproject packages: {sorted(folders - declared)}"
    for pkg in folders:
        assert (REPO / pkg.replace(".", "/") / "__init__.py").is_file(), pkg


def test_native_sources_are_shipped():
    assert "instgs._cuda" in _declared_packages()
    assert (REPO / "cuda" / "bindings.cpp").is_file()


def test_cli_lists_commands(capsys):
    from instgs.cli import COMMANDS, main

    assert main([]) == 2
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
