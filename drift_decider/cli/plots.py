"""PNG plots people would rather look at than read: metric lines over windows with decision markers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Sequence

ACTION_STYLE = {"retrain": ("#d62728", "v"), "recalibrate": ("#ff7f0e", "s"),
                "refresh-index": ("#1f77b4", "D"), "none": ("#2ca02c", "o")}


def plot_history(rows: Sequence[dict], metrics: Sequence[str], path: str | Path, title: str) -> Path:
    """One panel per metric over window end; every check marked by its decision's colour and shape.

    ``rows`` carry ``window_end`` (datetime), ``action`` and ``metrics`` (dict).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if any(m in row["metrics"] for row in rows)] or ["(no metrics)"]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(10, 2.2 * len(metrics) + 0.8), sharex=True, squeeze=False)
    times: list[datetime] = [row["window_end"] for row in rows]
    for ax, metric in zip(axes[:, 0], metrics):
        points = [(t, row["metrics"][metric]) for t, row in zip(times, rows) if metric in row["metrics"]]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], color="#555555", linewidth=1.2, zorder=1)
        for t, row in zip(times, rows):
            if metric in row["metrics"]:
                colour, marker = ACTION_STYLE.get(row["action"], ("#7f7f7f", "x"))
                ax.scatter([t], [row["metrics"][metric]], color=colour, marker=marker, s=36, zorder=2)
            if row["action"] != "none":
                ax.axvline(t, color=ACTION_STYLE.get(row["action"], ("#7f7f7f",))[0], alpha=0.15, linewidth=6)
        ax.set_ylabel(metric, fontsize=8)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker=m, linestyle="", label=a) for a, (c, m) in ACTION_STYLE.items()]
    axes[0, 0].legend(handles=handles, loc="upper left", fontsize=7, ncol=4, title="decision", title_fontsize=7)
    axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
