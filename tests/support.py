"""Helpers for end-to-end tests: real embeddings on disk and a registered model version in MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from drift_decider.cli.main import cli
from drift_decider.demo.movielens import factorize, load_ratings
from drift_decider.tracking.connection import connect
from drift_decider.tracking.registry import ensure_experiment, register_external_model

POLICY = Path(__file__).resolve().parents[1] / "policies" / "recommender-default.yaml"
GATE = POLICY.parent / "promotion-gate.yaml"

# an automation config as docs/automation.md shows one (a reference job, then a gate)
GOOD_AUTOMATION = f"""\
apiVersion: drift-decider/v1
kind: Automation
receiver:
  url: http://127.0.0.1:8787/hook
  secret_env: DD_TEST_SECRET
models:
  recsys:
    model_version.created:
      - reference:
          embeddings: items/v{{version}}.npz
      - promote:
          alias: champion
          policy: {GATE}
          current: prod/{{today}}.npz
"""

_FACTORS = None


def movielens_items():
    """Real item factors (ids, vectors) learned from MovieLens, computed once per test session."""
    global _FACTORS
    if _FACTORS is None:
        factors = factorize(load_ratings(), dim=32, min_item_ratings=5, seed=0)
        _FACTORS = (factors.item_ids, factors.item_vectors)
    return _FACTORS


def write_items(path: Path, ids: np.ndarray, vectors: np.ndarray) -> Path:
    np.savez(path, vectors=vectors.astype(np.float32), ids=ids)
    return path


def run_cli(*args: str, expect: int | None = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, f"exit {result.exit_code}, expected {expect}:\n{result.output}"
    return result


def check_args(uri: str, version: str, current: Path, window_id: str = "w1", *, model: str = "recsys",
               policy: Path = POLICY, window_end: str = "2026-07-01T00:00:00Z",
               spool: Path | None = None) -> list[object]:
    """`drift-decider check` of one window with --json (last, so a caller may drop it), as tests run it."""
    args: list[object] = ["check", "--model", model, "--version", version, "--current", current, "--policy", policy,
                          "--window-id", window_id, "--window-end", window_end, "--tracking-uri", uri]
    return [*args, *(["--spool-dir", spool] if spool is not None else []), "--json"]


def register_with_reference(uri: str, tmp_path: Path, name: str = "recsys") -> tuple[str, Path]:
    """Register an external model version and store MovieLens item factors as its reference."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    client = connect(uri)
    ref = register_external_model(client, uri, name, experiment_id=ensure_experiment(client))
    ids, vectors = movielens_items()
    reference = write_items(tmp_path / "reference.npz", ids, vectors)
    run_cli("reference", "set", "--model", name, "--version", ref.version, "--embeddings", reference,
            "--tracking-uri", uri)
    return ref.version, reference


def cli_process(*args: object, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """`python -m drift_decider ARGS` as its own process, as users run it (concurrency and fault tests)."""
    return subprocess.Popen([sys.executable, "-m", "drift_decider", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kwargs)


def json_outcomes(processes: list[subprocess.Popen], timeout: float = 600) -> list[dict]:
    """Wait for every process; each must exit 0 and print one JSON object."""
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err
        outcomes.append(json.loads(out))
    return outcomes
