"""The study's figure: recall@10 with decision markers above the drift metrics, one line per version."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# One panel per family: structure (what the retrain rules read), index health (refresh rule),
# score calibration, and the queries' own distribution drift (a study variable).
PANELS = ("knn_jaccard", "index.coverage", "scores.mean_shift", "queries.domain_classifier.auc")
ACTION_STYLE = {"retrain": ("^", "tab:red"), "recalibrate": ("D", "tab:orange"),
                "refresh-index": ("s", "tab:blue")}


def metric(result, key: str) -> float:
    """A window's value of ``key``: a check metric, or ``queries.<name>`` for the queries' drift."""
    if key.startswith("queries."):
        return result.query_metrics.get(key.removeprefix("queries."), float("nan"))
    return result.metrics.get(key, float("nan"))


def plot(results, summary: dict, path: Path) -> None:
    versions = list(dict.fromkeys(r.version for r in results))
    colours = {v: plt.cm.viridis(i / max(1, len(versions) - 1) * 0.85) for i, v in enumerate(versions)}
    fig, axes = plt.subplots(1 + len(PANELS), 1, figsize=(11, 2.2 * (1 + len(PANELS))), sharex=True)
    quality = axes[0]
    for version in versions:
        mine = [r for r in results if r.version == version]
        colour = colours[version]
        quality.errorbar([r.window for r in mine], [r.recall_mean for r in mine],
                         yerr=[r.recall_se for r in mine], color=colour, marker="o", ms=3, capsize=2,
                         label=f"version {version}")
        for r in mine:
            if r.action in ACTION_STYLE:
                marker, edge = ACTION_STYLE[r.action]
                quality.scatter([r.window], [r.recall_mean], marker=marker, s=70, facecolors="none",
                                edgecolors=edge, linewidths=1.6, zorder=5)
        facts = summary["versions"][version]
        if facts["first_significant_drop"] is not None:
            quality.axvline(facts["first_significant_drop"], color=colour, ls="--", lw=1)
        served = [r for r in mine if r.metrics]
        for ax, key in zip(axes[1:], PANELS):
            ax.plot([r.window for r in served], [metric(r, key) for r in served], color=colour, marker="o",
                    ms=3)
            ax.set_ylabel(key, fontsize=8)
        floor = facts["refit_noise"].get("knn_jaccard")
        if floor is not None:
            axes[1 + PANELS.index("knn_jaccard")].axhline(floor, color=colour, ls=":", lw=1)
    for action, (marker, edge) in ACTION_STYLE.items():
        quality.scatter([], [], marker=marker, facecolors="none", edgecolors=edge, label=action)
    quality.plot([], [], color="grey", ls="--", lw=1, label="first significant drop")
    axes[1 + PANELS.index("knn_jaccard")].plot([], [], color="grey", ls=":", lw=1, label="same-period refit")
    axes[1 + PANELS.index("knn_jaccard")].legend(fontsize=7, loc="upper right")
    quality.set_ylabel("recall@10 (± s.e.)", fontsize=8)
    quality.legend(fontsize=7, ncol=4, loc="upper right")
    quality.set_title("MovieLens replay: quality of each model version and drift of its embeddings")
    labels = {r.window: r.label for r in results}
    axes[-1].set_xticks(sorted(labels))
    axes[-1].set_xticklabels([labels[w] for w in sorted(labels)], rotation=60, fontsize=7)
    axes[-1].set_xlabel("window (start month; equal-count windows of ratings)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
