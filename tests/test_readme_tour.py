"""The README's CLI tour runs top to bottom on an empty store exactly as printed (issue 15).

The commands are read from the README itself (the bash block under "## CLI tour") and run by bash in
a fresh folder, once against a new sqlite store and once against a real `mlflow server`, with
MLFLOW_TRACKING_URI pointing at it as a user would set it. Only the inputs the tour names are made
here (MovieLens item factors under the tour's file names): every command, flag and path is the
README's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import MlflowServer
from drift_decider.inputs.serving_index import ServingIndex
from support import POLICY, movielens_items

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_script() -> str:
    """The bash block under "## CLI tour", as printed."""
    text = README.read_text()
    section = text[text.index("## CLI tour"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def _inputs(folder: Path) -> None:
    """The files the tour names: reference items with ids and queries, three sibling refits, today's
    items and queries, a serving index, a second version's items, metrics for `policy explain`."""
    ids, vectors = movielens_items()
    rng = np.random.default_rng(0)
    queries = (vectors[rng.choice(len(vectors), 600, replace=False)]
               + rng.normal(scale=0.05, size=(600, vectors.shape[1])))
    np.save(folder / "ref.npy", vectors.astype(np.float32))
    np.save(folder / "today.npy", (vectors * 1.2).astype(np.float32))
    np.savez(folder / "items.npz", ids=ids, vectors=vectors.astype(np.float32))
    np.save(folder / "queries.npy", queries.astype(np.float32))
    for seed in (1, 2, 3):       # refits with no new data: the reference plus small independent noise
        sibling = vectors + np.random.default_rng(seed).normal(scale=0.02, size=vectors.shape)
        np.savez(folder / f"items-seed{seed}.npz", ids=ids, vectors=sibling.astype(np.float32))
    today = vectors + rng.normal(scale=0.01, size=vectors.shape)
    np.savez(folder / "items-today.npz", ids=ids, vectors=today.astype(np.float32))
    np.save(folder / "queries-today.npy", queries.astype(np.float32))
    ServingIndex.build(ids, today, kind="exact").save(folder / "index")
    np.savez(folder / "items-v2.npz", ids=ids, vectors=today.astype(np.float32))
    (folder / "metrics.json").write_text(json.dumps({"mmd2": 0.002, "rank.overlap_fixed": 0.95}))
    (folder / "policies").symlink_to(POLICY.parent, target_is_directory=True)


@pytest.fixture
def fresh_server(tmp_path_factory: pytest.TempPathFactory):
    """An empty `mlflow server`: the tour starts from nothing."""
    server = MlflowServer(tmp_path_factory.mktemp("tour-server")).start()
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_the_readme_tour_runs_as_printed_on_an_empty_store(tmp_path: Path, store: str, request) -> None:
    _inputs(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if store == "sqlite" else request.getfixturevalue("fresh_server").uri
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("DRIFT_DECIDER_SPOOL_DIR", None)
    result = subprocess.run(["bash", "-euo", "pipefail", "-x", "-c", tour_script()], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "drift.png").stat().st_size > 10_000 and json.loads((tmp_path / "history.json").read_text())
    for command in re.findall(r"^drift-decider (\w+)", tour_script(), re.M):
        assert f"+ drift-decider {command}" in result.stderr      # bash -x: each command ran
