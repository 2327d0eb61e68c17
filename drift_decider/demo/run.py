"""The demo: a season of drift replayed against a local sqlite MLflow store, every window checked.

A MovieLens-trained recommender's item embeddings are registered as a model version with their
reference, three sibling refits (the noise floor) and an HNSW serving index. Daily windows then bring
a quiet period, a nightly refit with no new data, an index going stale, a score-scale shift, an item
tower exported with its axes shuffled and users turning to what the catalogue lacks (built by
drift_decider.demo.scenarios from real factors), and each one goes through exactly the code path of
`drift-decider check`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from drift_decider import api
from drift_decider.inputs.serving_index import ServingIndex
from drift_decider.errors import InputError
from drift_decider.demo.scenarios import generate_scenario
from drift_decider.cli.table import fmt, render_table

MODEL_NAME = "movielens-recommender"
POLICY = Path(__file__).resolve().parents[1] / "policies" / "recommender-default.yaml"
# Written first, so even a half-built demo is known as one; --force deletes only a folder that has it.
MARKER = ".drift-decider-demo"
OUTPUTS = ("mlflow.db", "artifacts", "data")
START = datetime(2026, 1, 1, tzinfo=timezone.utc)

# (phase, scenario kind, strength): one entry per day. Retrain rules want a breach on two consecutive days.
SCHEDULE: tuple[tuple[str, str, float], ...] = (
    ("quiet", "none", 0.01), ("quiet", "none", 0.015), ("quiet", "none", 0.02),
    ("refit, no new data", "refit", 0.8), ("refit, no new data", "refit", 0.8),
    ("index going stale", "new_items", 0.1), ("index going stale", "updated_vectors", 0.15),
    ("score-scale shift", "scale", 0.25),
    ("axes shuffled", "permuted_axes", 0.3),
    ("users off catalogue", "queries_off_catalog", 0.5), ("users off catalogue", "queries_off_catalog", 0.5),
)
TABLE_METRICS = ("mmd2.p_value", "knn_turnover.noise_units", "rank.overlap_fixed.noise_units", "rank.fix_gain",
                 "rank.score_shift", "queries.off_catalog_share", "index.recall_at_k", "index.coverage")


@dataclass
class DemoResult:
    workdir: Path
    tracking_uri: str
    model: str
    version: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def table(self) -> str:
        header = ["day", "phase", *TABLE_METRICS, "decision", "rule"]
        body = [[row["window_id"], row["phase"], *(fmt(row["metrics"].get(m)) for m in TABLE_METRICS),
                 row["action"], row["rule_id"] or (f"held: {row['held']}" if row["held"] else "-")]
                for row in self.rows]
        return "\n".join([
            f"model {self.model} version {self.version}, policy {POLICY.name}, store {self.tracking_uri}", "",
            render_table(header, body), "",
            "Look at it in the MLflow UI:",
            f"  mlflow ui --backend-store-uri {self.tracking_uri}",
            "  experiment drift-decider, view \"Model training\": each check run's artifact "
            "drift_decider/report.html is the drift report",
            f"History and plot:  drift-decider history --model {self.model} --tracking-uri {self.tracking_uri} "
            f"--plot {self.workdir / 'history.png'}",
            f"The report as a file:  drift-decider history --model {self.model} --version {self.version} "
            f"--tracking-uri {self.tracking_uri} --html {self.workdir / 'report.html'}",
        ])

    def to_dict(self) -> dict[str, Any]:
        return {"workdir": str(self.workdir), "tracking_uri": self.tracking_uri, "model": self.model,
                "version": self.version, "windows": self.rows}


def run_demo(workdir: str | Path, *, seed: int = 0, progress: bool = False, force: bool = False) -> DemoResult:
    workdir = Path(workdir).resolve()
    _claim_workdir(workdir, force)
    base = generate_scenario("none", 0.0, seed)      # reads the MovieLens data before any store exists
    data = workdir / "data"
    data.mkdir()
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    experiment = api.create_local_store(uri, workdir / "artifacts")
    version = api.register(MODEL_NAME, tracking_uri=uri, experiment_id=experiment,
                           tags={"embedding": "MovieLens item factors (truncated SVD, 32 d)"})

    np.savez(data / "reference_items.npz", ids=base.reference_ids, vectors=base.reference_vectors)
    np.save(data / "reference_queries.npy", base.queries_reference)
    siblings = []
    for number, sibling in enumerate(base.siblings, start=1):
        siblings.append(data / f"sibling-{number}-items.npz")
        np.savez(siblings[-1], ids=sibling.ids, vectors=sibling.vectors)
    api.set_reference(MODEL_NAME, version, data / "reference_items.npz",
                      queries_path=data / "reference_queries.npy", sibling_paths=siblings, tracking_uri=uri,
                      seed=seed)

    result = DemoResult(workdir, uri, MODEL_NAME, version)
    for day, (phase, kind, strength) in enumerate(_progress(SCHEDULE, progress), start=1):
        window = generate_scenario(kind, strength, seed)
        items = data / f"day-{day:02d}-items.npz"
        queries = data / f"day-{day:02d}-queries.npy"
        np.savez(items, ids=window.current_ids, vectors=window.current_vectors)
        np.save(queries, window.queries_current)
        # the index serving that day: built at registration, or rebuilt by the pipeline that changed the vectors
        index = ServingIndex.build(window.index_ids, window.index_vectors, kind="hnsw", seed=seed,
                                   built_at=START).save(data / f"day-{day:02d}-index")
        outcome = api.check(MODEL_NAME, items, POLICY, version=version, tracking_uri=uri,
                            window_id=f"day-{day:02d}", window_end=(START + timedelta(days=day)).isoformat(),
                            seed=seed, queries_path=queries, index_path=index)
        result.rows.append({"window_id": outcome.window.window_id, "phase": phase, "scenario": kind,
                            "strength": strength, "action": outcome.action,
                            "rule_id": outcome.decision.get("rule_id"), "run_id": outcome.run_id,
                            "held": outcome.held,
                            "metrics": outcome.values})
    return result


def _claim_workdir(workdir: Path, force: bool) -> None:
    """Mark ``workdir`` as the demo's, after deleting an earlier demo there on ``force``.

    A store without the marker is someone else's and is never deleted; an earlier demo, complete or
    half-built, is deleted only on ``force``, and the refusal names that flag.
    """
    marker = workdir / MARKER
    if marker.exists() and not force:
        raise InputError(f"{workdir} holds an earlier demo (complete or not): run `drift-decider demo --workdir "
                         f"{workdir} --force` to delete its store, artifacts and data and start over, "
                         "or choose another --workdir")
    foreign = [name for name in OUTPUTS if (workdir / name).exists()]
    if foreign and not marker.exists():
        raise InputError(f"{workdir} holds {', '.join(foreign)} that no demo marked as its own ({MARKER}); the "
                         "demo will not delete them, even with --force: choose another --workdir")
    for path in (workdir / name for name in OUTPUTS):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text("Made by `drift-decider demo`. `drift-decider demo --force` deletes this folder's "
                      f"{', '.join(OUTPUTS)} and starts over.\n")


def _progress(items, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="checking windows", unit="window", leave=False)
