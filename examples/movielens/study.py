"""Does embedding drift warn before quality falls? MovieLens replayed through drift-decider.

    python examples/movielens/study.py --workdir /tmp/movielens-study

For each model version (retrained on a fixed schedule of cutoffs, not on decisions): train SVD
item factors on every rating before the cutoff and build an HNSW index over them; validate on the
next two windows, which give the quality baseline and the reference queries (users folded in
from their recent ratings, out of sample, as in serving); register the version in MLflow with
its item factors and those queries as reference; then serve every later window: fold in the
window's requests, run ``drift_decider.api.check`` on the catalogue as it is then, the queries,
the index and the data growth since the cutoff, and measure recall@10 on the ratings the users actually gave next. See
docs/movielens.md for what it found.

Writes ``results.json``, ``summary.md`` and ``movielens-study.png`` into the work directory; the
MLflow store (``mlflow.db``, ``artifacts/``) is there too: ``mlflow ui --backend-store-uri
sqlite:///DIR/mlflow.db``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for path in (str(REPO), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import numpy as np  # noqa: E402

import analysis  # noqa: E402
import tracking_setup  # noqa: E402
from report import VALIDATION, WindowResult, summarise, summary_markdown  # noqa: E402
from data_windows import Requests, Window, build_requests, data_growth, equal_count_windows, in_window  # noqa: E402
from recommender import Model, fold_in, recall_at_k, train  # noqa: E402
from shadow import current_catalog, same_period_refit  # noqa: E402

DEFAULT_POLICY = REPO / "policies" / "recommender-default.yaml"
SIBLINGS = 3   # same-period refits on 80 % of the users, registered with each version as its noise floor


@dataclass(frozen=True)
class StudyConfig:
    """Every knob of the study; the defaults are the published run."""

    n_windows: int = 24             # equal-count windows of ~4,200 ratings, ~400 requests each
    version_starts: tuple[int, ...] = (6, 12, 18)  # a model version is trained before these windows
    replay_windows: int | None = None  # served windows per version (None: to the end of the log)
    dim: int = 32
    seed: int = 0
    model_name: str = "movielens-svd"
    policy: Path = DEFAULT_POLICY


def run_study(workdir: Path, config: StudyConfig = StudyConfig(), *, log=print) -> dict:
    """Run the whole study into ``workdir`` (which must not hold an earlier study)."""
    from drift_decider import api
    from drift_decider.demo.movielens import load_ratings

    workdir = workdir.resolve()
    if workdir.exists() and not workdir.is_dir():
        raise SystemExit(f"--workdir {workdir} is a file; give a new folder")
    if (workdir / "mlflow.db").exists():
        raise SystemExit(f"{workdir} already holds a study (mlflow.db); choose a new --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ratings = load_ratings()
    windows = equal_count_windows(ratings, config.n_windows)
    requests = build_requests(ratings)
    client, study_experiment = tracking_setup.prepare(workdir)
    uri = tracking_setup.tracking_uri(workdir)
    results: list[WindowResult] = []
    noise: dict[str, dict[str, float]] = {}
    for start in config.version_starts:
        validation = windows[start:start + analysis.BASELINE_WINDOWS]
        served = windows[start + analysis.BASELINE_WINDOWS:]
        served = served if config.replay_windows is None else served[:config.replay_windows]
        deployed = _deploy(api, client, study_experiment, config, ratings, requests, validation, workdir)
        noise[deployed.version] = deployed.refit_noise
        log(f"version {deployed.version}: trained before {validation[0].label} on "
            f"{len(deployed.model.item_ids)} movies; validated on "
            f"{validation[0].window_id}-{validation[-1].window_id}; same-period refit "
            f"knn_jaccard {deployed.refit_noise.get('knn_jaccard', float('nan')):.2f}")
        study_run = client.create_run(study_experiment,
                                      run_name=f"{config.model_name}-v{deployed.version}-replay",
                                      tags={"model": config.model_name, "version": deployed.version})
        for window in validation + served:
            current = in_window(requests, window)
            queries, can_serve = fold_in(deployed.model, ratings, current)
            result = _quality(deployed.model, deployed.version, ratings, current, queries, can_serve, window)
            if window in served:
                _check(api, config, deployed, ratings, queries, window, uri, result)
            results.append(result)
            for key, value in (("quality.recall_at_10", result.recall_mean), ("quality.served_share",
                               result.served_share), ("catalog.new_item_share", result.new_item_share)):
                client.log_metric(study_run.info.run_id, key, value, step=window.index,
                                  timestamp=window.end * 1000)
            log(f"  v{deployed.version} {window.window_id} {window.label}: "
                f"recall@10 {result.recall_mean:.4f} (±{result.recall_se:.4f}, n={result.n_evaluated}) "
                f"new-item share {result.new_item_share:.2f} "
                f"-> {result.action}{' (' + result.rule_id + ')' if result.rule_id else ''}")
        client.set_terminated(study_run.info.run_id)
    summary = summarise(results, noise)
    summary["runtime_seconds"] = round(time.monotonic() - started, 1)
    summary["config"] = {**asdict(config), "policy": str(config.policy)}
    (workdir / "results.json").write_text(json.dumps(
        {"summary": summary, "windows": [asdict(r) for r in results]}, indent=2, default=str))
    import figure

    figure.plot(results, summary, workdir / "movielens-study.png")
    (workdir / "summary.md").write_text(summary_markdown(summary))
    log(f"done in {summary['runtime_seconds']} s: {workdir / 'summary.md'}")
    return summary


@dataclass(frozen=True)
class Deployment:
    """A registered model version and the files its checks read."""

    version: str
    model: Model
    folder: Path
    index_path: Path              # the serving ANN index over the version's items
    reference_queries_path: Path  # the validation windows' queries
    refit_noise: dict[str, float]  # structure metrics of a same-period refit: their no-drift floor


def _deploy(api, client, experiment_id: str, config: StudyConfig, ratings, requests, validation: list[Window],
            workdir: Path) -> Deployment:
    """Train before the first validation window, build the ANN index, register, set the reference.

    The reference is the version's item factors (distribution and structure metrics compare the
    current catalogue with them), the validation windows' queries (score and ranking metrics) and
    three same-period refits on 80 % of the users (the noise floor every metric is judged against).
    """
    from datetime import datetime, timezone

    from drift_decider.inputs.serving_index import ServingIndex

    cutoff = validation[0].start
    model = train(ratings, cutoff, dim=config.dim, seed=config.seed)
    folder = workdir / "versions" / f"cutoff-{validation[0].window_id}"
    model_dir = folder / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    items_path = model_dir / "item_factors.npz"
    np.savez(items_path, ids=model.item_ids, vectors=model.item_vectors)
    index = ServingIndex.build(model.item_ids, model.item_vectors, kind="hnsw", metric="ip", seed=config.seed,
                               built_at=datetime.fromtimestamp(cutoff, tz=timezone.utc))
    index_path = index.save(model_dir / "index")
    queries = np.concatenate([fold_in(model, ratings, in_window(requests, w))[0] for w in validation])
    queries_path = folder / "reference_queries.npy"
    np.save(queries_path, queries)
    version = tracking_setup.register_version(
        client, experiment_id, config.model_name, artifacts=model_dir,
        params={"cutoff": validation[0].start_iso, "validation_end": validation[-1].end_iso,
                "dim": str(config.dim), "n_items": str(len(model.item_ids)), "seed": str(config.seed),
                "reference_queries": str(len(queries))})
    uri = tracking_setup.tracking_uri(workdir)
    siblings = [same_period_refit(ratings, model, seed=config.seed + i) for i in range(SIBLINGS)]
    sibling_paths = []
    for i, sibling in enumerate(siblings):
        sibling_paths.append(model_dir / f"sibling_{i}.npz")
        np.savez(sibling_paths[-1], ids=sibling.ids, vectors=sibling.vectors)
    api.set_reference(config.model_name, version, items_path, queries_path=queries_path,
                      sibling_paths=sibling_paths, tracking_uri=uri, seed=config.seed)
    noise = _refit_noise(model, siblings[0], config.seed)
    return Deployment(version, model, folder, index_path, queries_path, noise)


def _refit_noise(model: Model, refit, seed: int) -> dict[str, float]:
    from drift_decider.measure.metrics.structure import structure_metrics

    results = structure_metrics(model.item_vectors, model.item_ids, refit.vectors, refit.ids, seed=seed)
    return {r.name: float(r.value) for r in results if r.value is not None}


def _quality(model: Model, version: str, ratings, current: Requests, queries: np.ndarray,
             can_serve: np.ndarray, window: Window) -> WindowResult:
    """Recall@10 of the window's requests; a request the model cannot serve recalls nothing."""
    recalls = np.zeros(len(current))
    recalls[can_serve] = recall_at_k(model, ratings, current.take(can_serve), queries)
    has_liked = np.array([bool((ratings.rating[t] >= 4.0).any()) for t in current.targets])
    recalls[~has_liked] = np.nan  # nothing to recall
    point = analysis.quality_point(window.index, recalls)
    in_window_items = ratings.between(window.start, window.end).item
    return WindowResult(
        version=version, window=window.index, label=window.label, window_end=window.end_iso,
        n_requests=len(current), served_share=float(can_serve.mean()),
        new_item_share=float(np.mean(model.known(in_window_items) < 0)), recall_mean=point.mean,
        recall_se=point.se, n_evaluated=point.n, action=VALIDATION, rule_id=None, run_id=None)


def _check(api, config: StudyConfig, deployed: Deployment, ratings, queries: np.ndarray, window: Window,
           uri: str, result: WindowResult) -> None:
    """Run drift-decider on the window and note its decision in ``result``.

    Current embeddings: the catalogue as it is at the window's end (shadow refit, aligned); current
    queries: the window's folded-in requests; the serving index built at the cutoff. The queries'
    own drift against the validation queries is measured too (``api.measure_files``), as a study
    variable: the policy does not see it.
    """
    folder = deployed.folder / "windows"
    folder.mkdir(parents=True, exist_ok=True)
    catalog = current_catalog(ratings, deployed.model, window.end, seed=config.seed)
    catalog_path = folder / f"{window.window_id}-catalog.npz"
    np.savez(catalog_path, ids=catalog.ids, vectors=catalog.vectors)
    queries_path = folder / f"{window.window_id}-queries.npy"
    np.save(queries_path, queries)
    outcome = api.check(config.model_name, catalog_path, config.policy, version=deployed.version,
                        tracking_uri=uri, window_id=window.window_id, window_end=window.end_iso,
                        seed=config.seed, queries_path=queries_path, index_path=deployed.index_path,
                        data_growth=data_growth(ratings, deployed.model.cutoff, window.end),
                        # the study keeps serving a version long after most movies are new to it (its
                        # retrain decisions are what is studied), so a catalogue mostly of unknown ids
                        # is expected here, not a wrong id column
                        allow_id_mismatch=True)
    result.action = outcome.action
    result.rule_id = outcome.decision.get("rule_id")
    result.run_id = outcome.run_id
    result.metrics = dict(outcome.values)
    result.query_metrics = api.measure_files(deployed.reference_queries_path, queries_path,
                                             seed=config.seed).values()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="new folder for MLflow store and outputs")
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    parser.add_argument("--seed", type=int, default=StudyConfig.seed)
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    run_study(args.workdir, StudyConfig(seed=args.seed, policy=args.policy))


if __name__ == "__main__":
    main()
