"""From per-window results to the study's findings: lead times, specificity, correlations.

The definitions live in ``analysis``; this module applies them per model version and writes
the Markdown table the report quotes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import analysis

AGE = "study.age_windows"  # served windows since the version went live
VALIDATION = "validation"  # the action column of windows used to validate a version (no check run)


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
    metrics: dict[str, float] = field(default_factory=dict)        # what the check measured
    query_metrics: dict[str, float] = field(default_factory=dict)  # drift of the queries alone


def summarise(results: list[WindowResult], refit_noise: dict[str, dict[str, float]]) -> dict:
    """Baselines, drops, first warnings and lead times per version; drift/quality correlations."""
    versions, pooled_rows, pooled_loss, per_version = {}, [], [], {}
    for version in dict.fromkeys(r.version for r in results):
        mine = [r for r in results if r.version == version]
        points = [analysis.QualityPoint(r.window, r.recall_mean, r.recall_se, r.n_evaluated) for r in mine]
        base = analysis.baseline_from_points(points)
        served = mine[analysis.BASELINE_WINDOWS:]
        windows, actions = [r.window for r in served], [r.action for r in served]
        drop = analysis.first_drop(points, base)
        warn = analysis.first_action(windows, actions)
        any_action = analysis.first_action(windows, actions, ("retrain", "recalibrate", "refresh-index"))
        versions[version] = {
            "first_window": mine[0].window, "served_windows": len(served), "baseline_recall": base.mean,
            "baseline_se": base.se, "first_significant_drop": drop, "first_retrain_or_recalibrate": warn,
            "lead_windows": analysis.lead_time(warn, drop), "first_any_action": any_action,
            "lead_windows_any_action": analysis.lead_time(any_action, drop),
            "actions": {a: actions.count(a) for a in dict.fromkeys(actions)},
            "warnings_without_drop": sum(
                r.action in analysis.WARNING_ACTIONS and analysis.drop_z(p, base) <= analysis.DROP_Z
                for r, p in zip(served, points[analysis.BASELINE_WINDOWS:])),
            "refit_noise": refit_noise.get(version, {}),
            "drop_z": {r.window: analysis.drop_z(p, base) for r, p in zip(mine, points)}}
        rows = [{**r.metrics, **{f"queries.{k}": v for k, v in r.query_metrics.items()},
                 "study.new_item_share": r.new_item_share, "study.served_share": r.served_share,
                 AGE: float(age)} for age, r in enumerate(served, start=1)]
        alarmed = analysis.alarms(windows, rows)
        versions[version].update({
            "first_drift_alarm": alarmed[0] if alarmed else None, "drift_alarm_windows": len(alarmed),
            "lead_windows_drift_alarm": analysis.lead_time(alarmed[0] if alarmed else None, drop)})
        loss = [1.0 - r.recall_mean / base.mean for r in served]
        per_version[version] = {c.metric: asdict(c) for c in analysis.correlations(rows, loss, AGE)}
        pooled_rows += rows
        pooled_loss += loss
    return {"versions": versions,
            "correlations": [asdict(c) for c in analysis.correlations(pooled_rows, pooled_loss, AGE)],
            "correlations_per_version": per_version}


def summary_markdown(summary: dict) -> str:
    lines = ["Lead = first significant drop minus the event, in windows (positive: the event came first).",
             "",
             "| version | served windows | baseline recall@10 | first significant drop "
             "| first retrain/recalibrate (lead) | warnings without a drop | first any action (lead) "
             "| first query-drift alarm (lead) | windows alarmed | actions | same-period refit knn_jaccard |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for version, v in summary["versions"].items():
        floor = v["refit_noise"].get("knn_jaccard")
        lines.append(
            f"| {version} | {v['served_windows']} from w{v['first_window'] + analysis.BASELINE_WINDOWS:02d} "
            f"| {v['baseline_recall']:.4f} ± {v['baseline_se']:.4f} | {_w(v['first_significant_drop'])} "
            f"| {_w(v['first_retrain_or_recalibrate'])} ({v['lead_windows']}) | {v['warnings_without_drop']} "
            f"| {_w(v['first_any_action'])} ({v['lead_windows_any_action']}) "
            f"| {_w(v['first_drift_alarm'])} ({v['lead_windows_drift_alarm']}) | {v['drift_alarm_windows']} "
            f"| {v['actions']} | {'-' if floor is None else f'{floor:.2f}'} |")
    versions = list(summary["versions"])
    lines += ["", "Spearman rho of each metric with relative recall loss (1 - recall / baseline) over served "
              "windows; 'given age' is the partial rank correlation with the version's age held fixed:",
              "", "| metric | pooled rho (n, p) | given age | "
              + " | ".join(f"version {v}" for v in versions) + " |",
              "|---|---|---|" + "---|" * len(versions)]
    for c in summary["correlations"]:
        cells = []
        for v in versions:
            own = summary["correlations_per_version"][v].get(c["metric"])
            cells.append("-" if own is None
                         else f"{own['spearman']:+.2f} (n={own['n']}, p={own['p_value']:.2g})")
        given = "-" if c["partial"] is None else f"{c['partial']:+.2f}"
        lines.append(f"| {c['metric']} | {c['spearman']:+.3f} (n={c['n']}, p={c['p_value']:.2g}) | {given} | "
                     + " | ".join(cells) + " |")
    lines.append(f"\nruntime: {summary.get('runtime_seconds')} s")
    return "\n".join(lines) + "\n"


def _w(window: int | None) -> str:
    return "-" if window is None else f"w{window:02d}"
