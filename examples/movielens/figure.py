"""The study's figure: recall@10 with decision markers above the drift metrics, one line per version."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The two headline two-sample tests and the norm statistic the recalibration rules read.
DRIFT_PANELS = ("domain_classifier.auc", "mmd2", "norm_ratio")
ACTION_STYLE = {"retrain": ("^", "tab:red"), "recalibrate": ("D", "tab:orange"),
                "refresh-index": ("s", "tab:blue")}


def plot(results, summary: dict, path: Path) -> None:
    versions = list(dict.fromkeys(r.version for r in results))
    colours = {v: plt.cm.viridis(i / max(1, len(versions) - 1) * 0.85) for i, v in enumerate(versions)}
    panels = 2 + len(DRIFT_PANELS)
    fig, axes = plt.subplots(panels, 1, figsize=(11, 2.3 * panels), sharex=True)
    quality = axes[0]
    for version in versions:
        mine = [r for r in results if r.version == version]
        x = [r.window for r in mine]
        quality.errorbar(x, [r.recall_mean for r in mine], yerr=[r.recall_se for r in mine],
                         color=colours[version], marker="o", ms=3, capsize=2, label=f"version {version}")
        for r in mine:
            if r.action in ACTION_STYLE:
                marker, colour = ACTION_STYLE[r.action]
                quality.scatter([r.window], [r.recall_mean], marker=marker, s=70, facecolors="none",
                                edgecolors=colour, linewidths=1.6, zorder=5)
        drop = summary["versions"][version]["first_significant_drop"]
        if drop is not None:
            quality.axvline(drop, color=colours[version], ls="--", lw=1)
        for ax, key in zip(axes[1:], DRIFT_PANELS + ("study.new_item_share",)):
            values = [r.new_item_share if key == "study.new_item_share" else r.metrics.get(key, float("nan"))
                      for r in mine]
            ax.plot(x, values, color=colours[version], marker="o", ms=3)
            ax.set_ylabel(key.replace("study.", ""), fontsize=8)
    for action, (marker, colour) in ACTION_STYLE.items():
        quality.scatter([], [], marker=marker, facecolors="none", edgecolors=colour, label=action)
    quality.plot([], [], color="grey", ls="--", lw=1, label="first significant drop")
    quality.set_ylabel("recall@10 (± s.e.)", fontsize=8)
    quality.legend(fontsize=7, ncol=4, loc="upper right")
    quality.set_title("MovieLens replay: quality of each model version and drift of its queries")
    labels = {r.window: r.label for r in results}
    axes[-1].set_xticks(sorted(labels))
    axes[-1].set_xticklabels([labels[w] for w in sorted(labels)], rotation=60, fontsize=7)
    axes[-1].set_xlabel("window (start month; equal-count windows of ratings)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
