"""The tracking boundary and the thin shells, read from the source: only ``tracking/`` knows MLflow,
``api.py`` reaches it through the TrackingStore alone, and the CLI and the demo go through ``api``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "drift_decider"
SHELLS = ("cli/main.py", "cli/policy_commands.py", "cli/serve_commands.py")
# the registry automation: a shell over the API too (its receiver and jobs call it as the CLI does)
AUTOMATION = tuple(str(path.relative_to(PACKAGE)) for path in sorted((PACKAGE / "automation").glob("*.py")))
# what a shell may import from the package: the API, its errors and exit codes, and presentation
SHELL_IMPORTS = {"drift_decider", "drift_decider.api", "drift_decider.errors", "drift_decider.cli.table",
                 "drift_decider.cli.plots", "drift_decider.cli.policy_commands", "drift_decider.demo.run",
                 "drift_decider.cli.serve_commands",
                 *(f"drift_decider.{name[:-3].replace('/', '.')}" for name in AUTOMATION)}
# MLflow's object model seen through an attribute: a run's parts, or a client call
MLFLOW_OBJECTS = re.compile(r"\.inputs\.dataset_inputs|\.data\.(?:tags|metrics|params)\b|\.info\.\w+|\bclient\b"
                            r"|\bmlflow\w*", re.IGNORECASE)


def _imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module or "")
    return modules


class _Blank(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.Constant("") if isinstance(node.value, str) else node


def _code(path: Path) -> str:
    """The code alone: no comments, and every string blank (messages and help may name MLflow)."""
    return ast.unparse(_Blank().visit(ast.parse(path.read_text())))


def test_only_the_tracking_package_imports_mlflow() -> None:
    outside = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
               if "tracking" not in path.relative_to(PACKAGE).parts
               and any(module.split(".")[0] == "mlflow" for module in _imports(path))]
    assert outside == []


@pytest.mark.parametrize("name", ["api.py", "demo/run.py", *SHELLS, *AUTOMATION])
def test_no_mlflow_object_above_the_tracking_store(name: str) -> None:
    code = _code(PACKAGE / name)
    assert MLFLOW_OBJECTS.findall(code) == []
    tracking = {module for module in _imports(PACKAGE / name) if module.startswith("drift_decider.tracking")}
    assert tracking <= ({"drift_decider.tracking.store"} if name == "api.py" else set())


@pytest.mark.parametrize("name", SHELLS)
def test_the_shells_call_only_the_api(name: str) -> None:
    ours = {module for module in _imports(PACKAGE / name) if module.startswith("drift_decider")}
    assert ours <= SHELL_IMPORTS


def test_exit_codes_are_written_once() -> None:
    """Codes are named (errors.ExitCode) everywhere but where they are defined."""
    for path in [PACKAGE / name for name in ("api.py", *SHELLS)]:
        code = _code(path)
        assert not re.search(r"\b(sys\.exit|ctx\.exit|exit_code\s*=)\(?\s*\d", code), path.name
        assert not re.search(r"exit_codes\([^)]*\d", code), path.name


# each command and the API function it is a shell over (the demo is a fixture that runs on the API)
API_OF_COMMAND = {"measure": "measure_files", "register": "register", "reference set": "set_reference",
                  "reference noise": "set_noise_floor_from_checks", "check": "check", "sync": "sync",
                  "history": "history", "audit": "audit", "promote": "promote", "rollback": "rollback",
                  "policy validate": "validate_policies", "policy test": "run_policy_tests",
                  "policy explain": "explain", "policy backtest": "backtest", "demo": None,
                  "webhooks register": "register_webhooks",
                  # the receiver and its reconcile pass are drift_decider.automation, itself a shell over the API
                  "serve": None, "webhooks reconcile": None}


def test_the_api_offers_every_command() -> None:
    import click

    from drift_decider import api
    from drift_decider.cli.main import cli

    def paths(group: click.Group, prefix: str = "") -> list[str]:
        found = []
        for name, command in group.commands.items():
            found += paths(command, f"{prefix}{name} ") if isinstance(command, click.Group) else [prefix + name]
        return found

    assert sorted(paths(cli)) == sorted(API_OF_COMMAND)
    assert all(callable(getattr(api, name)) for name in API_OF_COMMAND.values() if name)
