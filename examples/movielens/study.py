"""Does embedding drift warn before quality falls? MovieLens replayed through drift-decider.

    python examples/movielens/study.py --workdir /tmp/movielens-study

For each model version (trained at a fixed schedule of cutoffs, chosen before any result was seen):
train SVD item factors on every rating before the cutoff; validate it on the next two windows,
which give its quality baseline and its reference queries (users folded in from their recent
ratings, out of sample, exactly as in serving); register the version in MLflow with that
reference; then serve every later window: fold in the window's requests, run
``drift_decider.api.check`` on those query embeddings, and measure recall@10 on the ratings the
users actually gave next.
Writes ``results.json``, ``summary.md`` and ``movielens-study.png`` into the work directory; the
MLflow store (``mlflow.db``, ``artifacts/``) is there too: ``mlflow ui --backend-store-uri
sqlite:///DIR/mlflow.db``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for path in (str(REPO), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import numpy as np  # noqa: E402

import analysis  # noqa: E402
import tracking_setup  # noqa: E402
from data_windows import Requests, Window, build_requests, equal_count_windows, in_window  # noqa: E402
from recommender import Model, fold_in, recall_at_k, train  # noqa: E402

DEFAULT_POLICY = REPO / "policies" / "recommender-default.yaml"
VALIDATION = "validation"  # the action column of windows used to validate a version (no check run)


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


@dataclass
class WindowResult:
    version: str
    window: int
    label: str
    window_end: str
    n_requests: int
    served_share: float        # requests the model could fold in (enough known items in context)
    new_item_share: float      # ratings in the window on movies the model does not know
    recall_mean: float
    recall_se: float
    n_evaluated: int
    action: str
    rule_id: str | None
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)


def run_study(workdir: Path, config: StudyConfig = StudyConfig(), *, log=print) -> dict:
    """Run the whole study into ``workdir`` (which must not hold an earlier study)."""
    from drift_decider import api
    from drift_decider.datasets.movielens import load_ratings

    workdir = workdir.resolve()
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
    for start in config.version_starts:
        folder = workdir / "versions" / f"cutoff-{windows[start].window_id}"
        model = train(ratings, windows[start].start, dim=config.dim, seed=config.seed)
        validation = windows[start:start + analysis.BASELINE_WINDOWS]
        served = windows[start + analysis.BASELINE_WINDOWS:]
        served = served if config.replay_windows is None else served[:config.replay_windows]
        reference = np.concatenate([fold_in(model, ratings, in_window(requests, w))[0] for w in validation])
        reference_path = folder / "reference_queries.npy"
        folder.mkdir(parents=True, exist_ok=True)
        np.save(reference_path, reference)
        version, model_id = tracking_setup.register_version(
            client, study_experiment, config.model_name, item_ids=model.item_ids, item_vectors=model.item_vectors,
            params={"cutoff": _iso(windows[start].start), "validation_end": validation[-1].end_iso,
                    "dim": str(config.dim), "n_items": str(len(model.item_ids)), "seed": str(config.seed),
                    "reference_rows": str(len(reference))}, folder=folder / "model")
        api.set_reference(config.model_name, version, reference_path, tracking_uri=uri, seed=config.seed)
        log(f"version {version}: trained before {windows[start].label} on {len(model.item_ids)} movies; "
            f"validated on {validation[0].window_id}-{validation[-1].window_id} ({len(reference)} reference queries)")
        study_run = client.create_run(study_experiment, run_name=f"{config.model_name}-v{version}-replay",
                                      tags={"model": config.model_name, "version": version, "model_id": model_id})
        for window in validation + served:
            current = in_window(requests, window)
            queries, can_serve = fold_in(model, ratings, current)
            result = _quality(model, version, ratings, current, queries, can_serve, window)
            if window in served:
                _check(api, config, version, queries, window, folder, uri, result)
            results.append(result)
            for key, value in (("quality.recall_at_10", result.recall_mean), ("quality.served_share",
                               result.served_share), ("catalog.new_item_share", result.new_item_share)):
                client.log_metric(study_run.info.run_id, key, value, step=window.index, timestamp=window.end * 1000)
            log(f"  v{version} {window.window_id} {window.label}: recall@10 {result.recall_mean:.4f} "
                f"(±{result.recall_se:.4f}, n={result.n_evaluated}) new-item share {result.new_item_share:.2f} "
                f"-> {result.action}{' (' + result.rule_id + ')' if result.rule_id else ''}")
        client.set_terminated(study_run.info.run_id)
    summary = summarise(results)
    summary["runtime_seconds"] = round(time.monotonic() - started, 1)
    summary["config"] = {**asdict(config), "policy": str(config.policy)}
    (workdir / "results.json").write_text(json.dumps(
        {"summary": summary, "windows": [asdict(r) for r in results]}, indent=2, default=str))
    import figure

    figure.plot(results, summary, workdir / "movielens-study.png")
    (workdir / "summary.md").write_text(summary_markdown(summary))
    log(f"done in {summary['runtime_seconds']} s: {workdir / 'summary.md'}")
    return summary


def _quality(model: Model, version: str, ratings, current: Requests, queries: np.ndarray, can_serve: np.ndarray,
             window: Window) -> WindowResult:
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


def _check(api, config: StudyConfig, version: str, queries: np.ndarray, window: Window, folder: Path, uri: str,
           result: WindowResult) -> None:
    """Run drift-decider on the window's query embeddings and note its decision in ``result``."""
    path = folder / "windows" / f"{window.window_id}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, queries)
    outcome = api.check(config.model_name, path, config.policy, version=version, tracking_uri=uri,
                        window_id=window.window_id, window_end=window.end_iso, seed=config.seed)
    result.action = outcome.action
    result.rule_id = outcome.decision.get("rule_id")
    result.run_id = outcome.run_id
    result.metrics = dict(outcome.values)


def _iso(ts: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


def summarise(results: list[WindowResult]) -> dict:
    """Baselines, drops, first warnings, lead times per version; correlations over all windows."""
    versions, rows, losses = {}, [], []
    for version in dict.fromkeys(r.version for r in results):
        mine = [r for r in results if r.version == version]
        points = [analysis.QualityPoint(r.window, r.recall_mean, r.recall_se, r.n_evaluated) for r in mine]
        base = analysis.baseline_from_points(points)
        drop = analysis.first_drop(points, base)
        warn = analysis.first_action([r.window for r in mine], [r.action for r in mine])
        any_action = analysis.first_action([r.window for r in mine], [r.action for r in mine],
                                           ("retrain", "recalibrate", "refresh-index"))
        actions: dict[str, int] = {}
        for r in mine:
            actions[r.action] = actions.get(r.action, 0) + 1
        versions[version] = {
            "first_window": mine[0].window, "windows": len(mine), "baseline_recall": base.mean,
            "baseline_se": base.se, "first_significant_drop": drop, "first_retrain_or_recalibrate": warn,
            "first_any_action": any_action, "lead_windows": analysis.lead_time(warn, drop),
            "lead_windows_any_action": analysis.lead_time(any_action, drop), "actions": actions,
            "drop_z": {r.window: analysis.drop_z(p, base) for r, p in zip(mine, points)}}
        for r in mine[analysis.BASELINE_WINDOWS:]:
            rows.append({**r.metrics, "study.new_item_share": r.new_item_share,
                         "study.served_share": r.served_share})
            losses.append(1.0 - r.recall_mean / base.mean)
    return {"versions": versions,
            "correlations": [asdict(c) for c in analysis.correlations(rows, losses)]}


def summary_markdown(summary: dict) -> str:
    lines = ["| version | windows | baseline recall@10 | first significant drop | first retrain/recalibrate "
             "| lead (windows) | first any action | actions |", "|---|---|---|---|---|---|---|---|"]
    for version, v in summary["versions"].items():
        lines.append(f"| {version} | w{v['first_window']:02d}+{v['windows']} | {v['baseline_recall']:.4f} "
                     f"± {v['baseline_se']:.4f} | {_w(v['first_significant_drop'])} "
                     f"| {_w(v['first_retrain_or_recalibrate'])} | {v['lead_windows']} "
                     f"| {_w(v['first_any_action'])} | {v['actions']} |")
    lines += ["", "| metric | n | Spearman rho vs relative recall loss | p-value |", "|---|---|---|---|"]
    for c in summary["correlations"]:
        lines.append(f"| {c['metric']} | {c['n']} | {c['spearman']:+.3f} | {c['p_value']:.3g} |")
    lines.append(f"\nruntime: {summary.get('runtime_seconds')} s")
    return "\n".join(lines) + "\n"


def _w(window: int | None) -> str:
    return "-" if window is None else f"w{window:02d}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="new folder for MLflow store and outputs")
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    parser.add_argument("--seed", type=int, default=StudyConfig.seed)
    args = parser.parse_args(argv)
    run_study(args.workdir, StudyConfig(seed=args.seed, policy=args.policy))


if __name__ == "__main__":
    main()
