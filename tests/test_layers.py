"""The package's folders are its layers, in pipeline order, and imports go only downwards: inputs ->
measure -> evidence -> policy -> tracking -> api -> shells. Read from the source, so a new upward
import fails here rather than in a reviewer's head."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "drift_decider"
RANK = {"errors": 0, "inputs": 1, "measure": 2, "evidence": 3, "policy": 4, "tracking": 5, "report": 6,
        "api": 7, "cli": 8, "demo": 8, "automation": 8, "__init__": 9, "__main__": 9}
# the one upward import allowed, and why: the serving index searches with the exact k-NN the metrics
# use (one implementation of k-NN), which lives with the metrics
ALLOWED = {("inputs/serving_index.py", "drift_decider.measure.metrics.knn")}


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _package_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("drift_decider"):
            found |= ({node.module} if node.module != "drift_decider"
                      else {f"drift_decider.{alias.name}" for alias in node.names})
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("drift_decider")}
    return found


def test_every_module_is_in_a_layer() -> None:
    assert sorted({_layer(path) for path in PACKAGE.rglob("*.py")} - set(RANK)) == []


def test_imports_go_only_downwards() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _layer(path)
        for module in _package_imports(path):
            there = module.split(".")[1] if "." in module else "__init__"
            if there != "__version__" and RANK.get(there, 0) > RANK[here]:
                upward.append((str(path.relative_to(PACKAGE)), module))
    assert sorted(set(upward) - ALLOWED) == []
