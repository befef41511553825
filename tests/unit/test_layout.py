"""The layout's promises (issue 21): imports point one way, and reading scores never loads torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(package: str) -> set[str]:
    """Every module a package's files import, at any depth (function-level imports included)."""
    found: set[str] = set()
    for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


def test_the_report_and_the_trainer_never_import_each_other() -> None:
    assert not [m for m in imported_modules("services.report") if m.startswith("services.trainer")]
    assert not [m for m in imported_modules("services.trainer") if m.startswith("services.report")]


def test_the_scorer_imports_shared_only() -> None:
    ours = {m for m in imported_modules("services.scoring") if m.startswith(("services", "shared", "bench"))}
    assert {m for m in ours if not m.startswith(("shared", "services.scoring"))} == set()


@pytest.mark.parametrize("package", ["services.scoring", "services.report"])
def test_reading_scores_does_not_load_torch(package: str) -> None:
    # Every module of the package, in a fresh interpreter: this test process may have loaded torch.
    code = (
        "import importlib, pkgutil, sys\n"
        f"import {package} as package\n"
        "for module in pkgutil.iter_modules(package.__path__):\n"
        "    importlib.import_module(package.__name__ + '.' + module.name)\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_module_in_services_or_shared_is_over_300_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for folder in ("services", "shared")
        for path in (ROOT / folder).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 300
    }
    assert long == {}
