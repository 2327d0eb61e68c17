"""Rebuild a model version's check history from MLflow, so `check` keeps no state of its own.

Only runs marked complete count: a run whose write was interrupted never shapes a later decision.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any


from drift_decider.policy import CheckRecord
from drift_decider.errors import InputError
from drift_decider.inputs.times import parse_time
from drift_decider.tracking import tags
from drift_decider.tracking.connection import mlflow_errors
from drift_decider.tracking.registry import VersionRef, quoted

if TYPE_CHECKING:      # MLflow's types, for annotations only (mlflow loads when a call needs it)
    from mlflow import MlflowClient
    from mlflow.entities import Run


def check_runs(client: MlflowClient, experiment_id: str, ref: VersionRef, *, kind: str = "check",
               window_id: str | None = None, newest: bool = False) -> list:
    """Complete check runs of one model version, oldest window first (``newest``: the latest only)."""
    return search_checks(client, experiment_id, model=ref.name, version=ref.version, kind=kind, window_id=window_id,
                         newest=newest)


# Latest window first, as check_runs orders them from the other end: window ends are written in one
# ISO-8601 form (UTC, +00:00), which sorts as the times do.
NEWEST_FIRST = [f"tags.`{tags.WINDOW_END}` DESC", "attributes.start_time DESC"]


def search_checks(client: MlflowClient, experiment_id: str, *, model: str | None = None, version: str | None = None,
                  kind: str | None = "check", window_id: str | None = None, decision_id: str | None = None,
                  complete_only: bool = True, newest: bool = False) -> list:
    """Complete (or, with ``complete_only=False``, all active) drift-decider runs matching the tags,
    oldest window first; with ``newest``, only the run of the latest window (one request, however long
    the history: what publishing the latest decision reads)."""
    from mlflow.entities import ViewType

    wanted = {tags.MODEL: model, tags.VERSION: version, tags.KIND: kind, tags.WINDOW_ID: window_id,
              tags.DECISION_ID: decision_id, tags.COMPLETE: "true" if complete_only else None}
    conditions = [f"tags.`{key}` = {quoted(value)}" for key, value in wanted.items() if value is not None]
    runs, token = [], None
    with mlflow_errors("reading the check history" + (f" of {model}" if model else "")):
        while True:
            page = client.search_runs([experiment_id], " and ".join(conditions),
                                      run_view_type=ViewType.ACTIVE_ONLY, max_results=1 if newest else 1000,
                                      page_token=token, order_by=NEWEST_FIRST if newest else None)
            if newest:
                return list(page)
            runs.extend(page)
            token = page.token
            if not token:
                break
    return sorted(runs, key=lambda run: (window_end_of(run), run.info.start_time))


def find_decision_run(client: MlflowClient, experiment_id: str, key: str):
    """The complete run of one decision, given its run id or a unique prefix of its decision id (at
    least 6 hex digits, as `history` shows them); None when nothing matches. An ambiguous prefix is
    an InputError naming the candidates."""
    from mlflow.exceptions import MlflowException

    key = key.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,64}", key):
        raise InputError(f"{key!r} is neither a decision id (hex, at least 6 digits) nor a run id")
    if len(key) == 32:
        with mlflow_errors(f"reading run {key}"), contextlib.suppress(MlflowException):
            run = client.get_run(key)
            if run.info.experiment_id == experiment_id and run.data.tags.get(tags.COMPLETE) == "true":
                return run
    with mlflow_errors("looking up the decision"):
        runs = client.search_runs([experiment_id], f"tags.`{tags.DECISION_ID}` LIKE '{key}%' and "
                                                   f"tags.`{tags.COMPLETE}` = 'true'", max_results=11)
    ids = sorted({run.data.tags[tags.DECISION_ID] for run in runs})
    if len(ids) > 1:
        raise InputError(f"{len(ids) if len(ids) < 11 else 'over 10'} decisions start with {key!r} "
                         f"(e.g. {', '.join(i[:16] for i in ids[:3])}): give more digits")
    return runs[0] if runs else None


def window_end_of(run: Run) -> datetime:
    return _tag_time(run, tags.WINDOW_END)


def _tag_time(run: Run, tag: str) -> datetime:
    """A time tag of a check run (written by a check; an InputError naming the run if edited since)."""
    return parse_time(run.data.tags[tag], f"run {run.info.run_id}: tag {tag}")


def check_row(run: Run) -> dict[str, Any]:
    """A complete check run as a plain row (what `drift-decider history --json` prints): the one place
    that reads a check's tags."""
    run_tags = run.data.tags
    return {"window_end": window_end_of(run), "window_id": run_tags[tags.WINDOW_ID], "model": run_tags[tags.MODEL],
            "version": run_tags[tags.VERSION], "action": run_tags[tags.DECISION],
            "rule_id": run_tags.get(tags.RULE) or None, "held": run_tags.get(tags.HELD, ""),
            "mode": run_tags.get(tags.MODE), "decision_id": run_tags[tags.DECISION_ID], "run_id": run.info.run_id,
            "noise_floor": run.data.params.get("noise_floor"), "not_measured": run.data.params.get("not_measured"),
            "metrics": dict(run.data.metrics)}


def records_from_runs(runs: list[Run]) -> tuple[CheckRecord, ...]:
    """The policy's view of complete check runs, oldest first: each row, decided when its decision says."""
    return tuple(CheckRecord(window_id=row["window_id"], window_end=row["window_end"], metrics=row["metrics"],
                             action=row["action"], rule_id=row["rule_id"],
                             decided_at=_tag_time(run, tags.DECIDED_AT),
                             mode=row["mode"] or "enforce")
                 for run, row in ((run, check_row(run)) for run in runs))
