"""Arrows point down: api/cli → services → store/execution → domain (checked on imports)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "runplane"

#: package -> runplane packages it must never import
FORBIDDEN: dict[str, set[str]] = {
    "domain": {"store", "services", "execution", "dispatch", "api", "cli", "runtime", "config"},
    "store": {"services", "execution", "dispatch", "api", "cli", "runtime"},
    "services": {"execution", "dispatch", "api", "cli", "runtime"},
    "execution": {"dispatch", "api", "cli", "runtime"},
    "dispatch": {"api", "cli"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_layers_only_import_downwards() -> None:
    problems = []
    for package, banned in FORBIDDEN.items():
        for path in (SRC / package).rglob("*.py"):
            for module in _imports(path):
                parts = module.split(".")
                if parts[0] == "runplane" and len(parts) > 1 and parts[1] in banned:
                    problems.append(f"{path.relative_to(SRC)} imports {module}")
    assert problems == []


def _status_writes(path: Path) -> list[int]:
    """Lines assigning ``<x>.status`` or passing ``status=`` to an UPDATE's ``.values()``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        lines += [t.lineno for t in targets if isinstance(t, ast.Attribute) and t.attr == "status"]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "values"
            and any(k.arg == "status" for k in node.keywords)
        ):
            lines.append(node.lineno)
    return lines


def test_only_transition_writes_a_run_status() -> None:
    """Rule 5: every status change goes through ``store.runs.transition`` (and insert_run)."""
    allowed = SRC / "store" / "runs.py"
    offenders = [
        f"{path.relative_to(SRC)}:{line}"
        for path in SRC.rglob("*.py")
        if path != allowed
        for line in _status_writes(path)
    ]
    assert offenders == []
