"""Imports flow one way: ssdconvert -> preprocess, postprocess -> stageio (a leaf), never back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"stageio": ("ssdconvert", "preprocess", "postprocess"),
             "preprocess": ("ssdconvert",), "postprocess": ("ssdconvert",)}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports anywhere (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package):
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules
    wrong = {f"{m.relative_to(ROOT)} imports {p}" for m in modules for p in imported_packages(m)
             if p in FORBIDDEN[package]}
    assert not wrong, sorted(wrong)
