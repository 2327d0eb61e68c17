"""The Python API: everything the CLI does (measure, register, set a reference, check a window,
history, audit, promote, roll back, sync, and review policies: validate, test, explain, backtest).
The CLI is a thin shell over these: it parses options and prints what they return.

Every function validates all local input (policy, embeddings) before it talks to MLflow, and writes
to MLflow only after every measurement and the decision exist, so bad input never leaves a trace.
MLflow is reached only through ``tracking.store.TrackingStore``, which hands back plain data.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from drift_decider.inputs.serving_index import ServingIndex
from drift_decider.inputs.spark_tables import DEFAULT_MASTER, read_table, spark_session
from drift_decider.measure.spark_profile import measure_dataframes
from drift_decider.evidence.spark_check import check_tables
from drift_decider.evidence.spark_reference import reference_table
from drift_decider.errors import InFlightError, InputError, PolicyError, TrackingError
from drift_decider.measure.report import EvidenceReport
from drift_decider.evidence.assemble import (CurrentData, ReferenceData, build_evidence, measure_noise,
                                            require_data_growth)
from drift_decider.inputs.embeddings import EmbeddingSet, check_same_dim, load_embeddings
from drift_decider.inputs.files import read_limited
from drift_decider.measure.distribution import measure, require_window_rows
from drift_decider.measure.metrics.structure import check_id_kinds
from drift_decider.evidence.noise_floor import NoiseFloor, Sibling
from drift_decider.tracking.store import (CheckPayload, RecordedCheck, SpoolEntry, TrackingStore, VersionRef,
                                          VersionState, alias_problem, sync_spool)
from drift_decider.inputs.times import parse_time
from drift_decider.inputs.windows import (Window, make_window, named_window, parse_window_end, recordable_window_end,
                                          require_window_id)
# The policy layer, called from here only through _decide, _gate and the policy review functions below.
from drift_decider.policy import CheckRecord, Decision, Policy, PolicyState, evaluate, lint, load_policy
from drift_decider.policy.backtest import recorded_from_rows, replay, summary
from drift_decider.policy.decision import held_rules
from drift_decider.policy.yaml_fields import unknown_metric
from drift_decider.policy.records import clean_metrics, history_rows, records_from_dicts
from drift_decider.policy.policy_tests import TestFileResult, run_test_file
from drift_decider.report.html import render_report


@dataclass(frozen=True)
class CheckOutcome:
    """What a check decided and where it is recorded (``run_id`` is None for a dry run)."""

    model: str
    version: str
    window: Window
    decision: dict[str, Any]          # the decision record, as stored in MLflow
    values: dict[str, float]          # the metric values the policy saw
    run_id: str | None
    already_recorded: bool = False    # the window had been decided before; nothing new was written

    @property
    def action(self) -> str:
        return self.decision["action"]

    @property
    def held(self) -> str:
        """Rules that matched but were held back, and why ("" when none was)."""
        return held_rules(self.decision)

    @property
    def not_measured(self) -> str:
        """The evidence families this decision did not see, and why ("none" when it saw them all)."""
        return self.decision.get("inputs", {}).get("context", {}).get("not_measured", "none")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "window_id": self.window.window_id,
                "window_end": self.window.window_end.isoformat(), "run_id": self.run_id,
                "already_recorded": self.already_recorded, "action": self.action,
                "rule_id": self.decision.get("rule_id"), "decision_id": self.decision.get("decision_id"),
                "held": self.held, "not_measured": self.not_measured, "metrics": self.values, "decision": self.decision}


def measure_files(reference_path: str | Path, current_path: str | Path, *, seed: int = 0,
                  progress: bool = False) -> EvidenceReport:
    """Drift metrics between two embedding files, without MLflow."""
    reference = load_embeddings(reference_path)
    current = load_embeddings(current_path)
    check_same_dim(reference.dim, current, str(reference.path))
    return measure(reference.vectors, current.vectors, seed=seed, progress=progress,
                   reference_ids=reference.ids, current_ids=current.ids)


def measure_tables(reference_path: str | Path, current_path: str | Path, *, seed: int = 0,
                   spark_master: str = DEFAULT_MASTER) -> EvidenceReport:
    """Drift metrics between two Parquet tables (files or directories) profiled on Spark, without
    MLflow: the numbers ``measure_files`` gives on the same rows and ids."""
    spark = spark_session(spark_master)
    return measure_dataframes(read_table(spark, reference_path), read_table(spark, current_path), seed=seed)


def register(model: str, *, tracking_uri: str | None = None, tags: dict[str, str] | None = None,
             experiment_id: str | None = None) -> str:
    """Register a new version of ``model`` (created if new) backed by an external LoggedModel, the first
    step on an empty store: `reference set` then gives it a reference. Returns the version."""
    return TrackingStore.open(tracking_uri).register_model(model, tags=tags, experiment_id=experiment_id).version


def create_local_store(tracking_uri: str, artifact_root: Path) -> str:
    """A new store whose checks' experiment keeps its artifacts under ``artifact_root``; returns its id.
    Versions registered there have their LoggedModel beside the check runs: MLflow's run page looks for
    a run's models in the run's own experiment only."""
    store = TrackingStore.open(tracking_uri)
    return store.create_experiment(store.CHECKS_EXPERIMENT, artifact_root)


def set_reference(model: str, version: str, embeddings_path: str | Path, *, queries_path: str | Path | None = None,
                  sibling_paths: Sequence[str | Path] = (), sibling_query_paths: Sequence[str | Path] = (),
                  tracking_uri: str | None = None, seed: int = 0, progress: bool = False,
                  replace_existing: bool = False) -> str:
    """Summarise the reference once and store it with the model version; returns its URI.

    Embeddings with ids also keep a seeded id-keyed item sample (structure metrics); ``queries_path``
    keeps a query sample (score and ranking metrics); ``sibling_paths`` (refits that saw no new data,
    with ids) give the noise floor that checks judge each metric against. A version's reference is
    replaced only with ``replace_existing``.
    """
    embeddings = load_embeddings(embeddings_path)
    require_window_rows(embeddings.n, str(embeddings.path), "a reference")
    queries = load_embeddings(queries_path) if queries_path else None
    if queries is not None:
        check_same_dim(embeddings.dim, queries, str(embeddings.path))
    elif sibling_query_paths:        # the floor's score metrics compare siblings' queries with the reference's
        raise InputError("--sibling-queries needs --queries: the siblings' query vectors are compared with the "
                         "reference's, and this reference has none")
    siblings = load_siblings(sibling_paths, sibling_query_paths, embeddings)
    store = TrackingStore.open(tracking_uri)
    store.refuse_replacing(store.version(model, version=version), replace_existing)     # before the summary
    reference = ReferenceData.from_arrays(embeddings.vectors, embeddings.ids,
                                          None if queries is None else queries.vectors, seed=seed, progress=progress)
    if siblings:
        reference = replace(reference, noise=measure_noise(reference, siblings, seed=seed))
    return store.store_reference(store.version(model, version=version, attach=True), reference,
                                 replace_existing=replace_existing)


def set_reference_table(model: str, version: str, table_path: str | Path, *,
                        sibling_paths: Sequence[str | Path] = (), tracking_uri: str | None = None, seed: int = 0,
                        spark_master: str = DEFAULT_MASTER, replace_existing: bool = False) -> str:
    """``set_reference`` for Parquet tables with ids read on Spark: the same profile, item sample, learned
    ids and (from ``sibling_paths``) noise floor as the same rows give from a file; no query sample
    (score and ranking metrics need the local engine's ``queries_path``). Returns its URI."""
    store = TrackingStore.open(tracking_uri)
    store.refuse_replacing(store.version(model, version=version), replace_existing)     # before the Spark job
    spark = spark_session(spark_master)
    reference = reference_table(read_table(spark, table_path), seed=seed, name=str(table_path),
                                siblings=[(read_table(spark, path), str(path)) for path in sibling_paths])
    return store.store_reference(store.version(model, version=version, attach=True), reference,
                                 replace_existing=replace_existing)


MIN_BASELINE_CHECKS = 3


def set_noise_floor_from_checks(model: str, version: str, *, checks: int, tracking_uri: str | None = None) -> str:
    """For a version without sibling refits: take the noise floor from its first ``checks`` recorded checks,
    a baseline period the team knows was healthy (as NannyML derives thresholds from reference chunks).
    Stored with the reference like a sibling floor; later checks are judged against it. Returns its label.
    """
    if checks < MIN_BASELINE_CHECKS:
        raise InputError(f"--first-checks {checks}: a baseline floor needs at least {MIN_BASELINE_CHECKS} checks")
    store = TrackingStore.open(tracking_uri, read_only=True)
    rows = _history(store, model, version, None)
    if len(rows) < checks:
        raise InputError(f"{model} version {version} has {len(rows)} recorded checks; --first-checks {checks} "
                         f"needs that many")
    floor = NoiseFloor.from_measurements("baseline checks", [row["metrics"] for row in rows[:checks]])
    if not floor.samples:
        raise InputError(f"the first {checks} checks of {model} version {version} have no paired metrics (they "
                         f"need a reference and current embeddings with ids) to take a floor from")
    ref = store.version(model, version=version)
    reference = store.load_reference(ref)
    if reference.noise is not None:
        raise InputError(f"{model} version {version} already has a noise floor ({reference.noise.label}); it is kept")
    # the same reference, now with a floor
    store.store_reference(ref, replace(reference, noise=floor), replace_existing=True)
    return floor.label


def load_siblings(paths: Sequence[str | Path], query_paths: Sequence[str | Path],
                  reference: EmbeddingSet) -> list[Sibling]:
    """Sibling refits as the noise floor needs them: ids, the reference's dimension, queries paired by order."""
    if query_paths and len(query_paths) != len(paths):
        raise InputError(f"--sibling-queries needs one file per --sibling: {len(query_paths)} for {len(paths)}")
    if paths and reference.ids is None:
        raise InputError(f"{reference.path}: siblings are paired with the reference by id, and it has no ids")
    siblings = []
    for number, path in enumerate(paths):
        items = load_embeddings(path)
        check_same_dim(reference.dim, items, str(reference.path))
        if items.ids is None:
            raise InputError(f"{items.path}: a sibling needs item ids (.npz with `ids`, or a parquet id column)")
        check_id_kinds(reference.ids, items.ids, str(items.path))
        sibling_queries = load_embeddings(query_paths[number]) if query_paths else None
        if sibling_queries is not None:
            check_same_dim(reference.dim, sibling_queries, str(reference.path))
        siblings.append(Sibling(items.ids, np.asarray(items.vectors, dtype=np.float32),
                                None if sibling_queries is None else np.asarray(sibling_queries.vectors)))
    return siblings


def load_current(current_path: str | Path, *, catalog_path: str | Path | None = None,
                 queries_path: str | Path | None = None, index_path: str | Path | None = None,
                 data_growth: float | None = None) -> CurrentData:
    """Load and validate every local input of a check before anything talks to MLflow."""
    embeddings = load_embeddings(current_path)
    require_window_rows(embeddings.n, str(embeddings.path))
    current = CurrentData(embeddings, catalog=load_embeddings(catalog_path) if catalog_path else None,
                          queries=load_embeddings(queries_path) if queries_path else None,
                          index=ServingIndex.load(index_path) if index_path else None, data_growth=data_growth)
    for other in (current.catalog, current.queries):
        if other is not None:
            check_same_dim(embeddings.dim, other, str(embeddings.path))
    if current.index is not None:
        if current.items is None:
            raise InputError("--index needs the item catalogue with ids: give --catalog, or --current with ids")
        if current.index.vectors.shape[1] != embeddings.dim:
            raise InputError(f"{index_path}: dimension mismatch: the index holds {current.index.vectors.shape[1]}-d "
                             f"vectors, {embeddings.path} has {embeddings.dim}")
    if current.queries is not None and current.items is None:
        raise InputError("--queries needs the item catalogue with ids (score metrics compare the same items): "
                         "give --catalog, or --current with ids")
    return current


def _reference_fitting(store: TrackingStore, ref: VersionRef, current: CurrentData) -> ReferenceData:
    """The version's reference, once today's embeddings are known to have its dimension."""
    reference = store.load_reference(ref)
    check_same_dim(reference.profile.dim, current.embeddings, f"the reference of {ref.name} version {ref.version}")
    return reference


def check(model: str, current_path: str | Path, policy_path: str | Path, *, version: str | None = None,
          alias: str | None = None, tracking_uri: str | None = None, window_id: str | None = None,
          window_end: str | None = None, dry_run: bool = False, seed: int = 0, progress: bool = False,
          spool_dir: str | Path | None = None, catalog_path: str | Path | None = None,
          queries_path: str | Path | None = None, index_path: str | Path | None = None,
          allow_id_mismatch: bool = False, launched_at: float | None = None, engine: str = "local",
          spark_master: str = DEFAULT_MASTER, data_growth: float | None = None) -> CheckOutcome:
    """Measure one window against the version's reference, decide with the policy, record in MLflow.
    Ids matching less than half the reference's items are refused unless ``allow_id_mismatch``.
    ``launched_at`` (``time.monotonic()`` when the check's process was launched; default: this call)
    sets how long the decision waits for checks of earlier windows launched with it (decide_in_order).
    ``engine="spark"`` reads ``current_path`` (and ``catalog_path``) as Parquet tables on Spark
    (``_measured_on_spark``); everything after the evidence is the same. ``data_growth``: training
    interactions that arrived since the version's cutoff, as a share of those it was trained on
    (logged as ``data.growth``; the default policy retrains a version that has fallen behind its data).

    Idempotent per (version, window id): a window decided before returns its recorded decision.
    """
    launched_at = time.monotonic() if launched_at is None else launched_at
    if (version is None) == (alias is None):
        raise InputError("give exactly one of --version or --alias")
    policy = load_policy(policy_path)
    require_data_growth(data_growth)
    require_window_id(window_id)           # every option is refused before any data is read
    end = recordable_window_end(parse_window_end(window_end))
    on_spark = None
    if engine == "spark":
        store, ref, window, on_spark = _measured_on_spark(model, version, alias, current_path, catalog_path,
                                                          queries_path, index_path, tracking_uri, window_id,
                                                          end, seed, allow_id_mismatch, spark_master,
                                                          data_growth)
    else:
        current = load_current(current_path, catalog_path=catalog_path, queries_path=queries_path,
                               index_path=index_path, data_growth=data_growth)
        window = make_window(current.embeddings, window_id, end, also=(current.catalog, current.queries),
                             data_growth=data_growth)
        store = TrackingStore.open(tracking_uri)
        ref = store.version(model, version=version, alias=alias)
    earlier = store.recorded_check(ref, window.window_id)
    if earlier is not None:
        return _recorded_outcome(ref, window, earlier)
    if on_spark is None:
        reference = _reference_fitting(store, ref, current)

    def measured() -> EvidenceReport:
        if on_spark is not None:       # measured already: the window's digest comes from it
            return on_spark
        return build_evidence(reference, current, seed=seed, now=window.window_end, progress=progress,
                              allow_id_mismatch=allow_id_mismatch)

    def decided(evidence: EvidenceReport, prior: tuple[CheckRecord, ...]) -> dict[str, Any]:
        return _decide(policy, evidence.values(), evidence.inputs, ref.name, ref.version, window, prior)

    if dry_run:
        evidence = measured()
        decision = decided(evidence, store.checks_before(ref, window.window_end))
        return CheckOutcome(ref.name, ref.version, window, decision, evidence.values(), run_id=None)
    # Checks of one version behave as if run one after another: the window is claimed before measuring
    # (a concurrent check of it waits for this one's record), and the decision waits for earlier windows.
    attempt = uuid.uuid4().hex
    recorded = store.claim_window(ref, window, attempt)
    if recorded is not None:
        return _recorded_outcome(ref, window, recorded)
    claimed_at = time.monotonic()
    with store.holding_window(ref, window, attempt):      # released if measuring or deciding fails
        evidence = measured()
        payload = CheckPayload(values=evidence.values(), inputs=evidence.inputs, evidence=evidence.to_dict(),
                               decision=None)
        try:
            decision, prior_rows = store.decide_in_order(ref, window, lambda prior: decided(evidence, prior),
                                                         settle_until=claimed_at + (claimed_at - launched_at))
        except InFlightError:
            raise
        except TrackingError as exc:      # MLflow failed reading the history: keep the measurement for sync
            raise store.spool_undecided(ref, window, payload, spool_dir=spool_dir, attempt=attempt,
                                        policy_path=str(Path(policy_path).resolve()), policy_sha256=policy.sha256,
                                        exc=exc) from exc
    payload = replace(payload, decision=decision)
    run_id, recorded_by = store.land_check(ref, window, payload, step=len(prior_rows) + 1,
                                           spool_dir=spool_dir, attempt=attempt)
    if recorded_by is not None:      # our claim went stale and another check recorded the window
        return _recorded_outcome(ref, window, recorded_by)
    _attach_report(store, ref, run_id, prior_rows)
    return CheckOutcome(ref.name, ref.version, window, payload.decision, payload.values, run_id=run_id)


def _measured_on_spark(model: str, version: str | None, alias: str | None, current_path: str | Path,
                       catalog_path: str | Path | None, queries_path: str | Path | None,
                       index_path: str | Path | None, tracking_uri: str | None, window_id: str | None,
                       end: datetime, seed: int, allow_id_mismatch: bool, spark_master: str,
                       data_growth: float | None) -> tuple[TrackingStore, VersionRef, Window, EvidenceReport]:
    """A check's evidence and window from Parquet tables on Spark (evidence.spark_check). The digest
    that names the window comes from the profile, so the reference is read and the window measured
    before its recorded decision is looked up."""
    if queries_path or index_path:
        raise InputError("--engine spark measures distribution and structure: --queries and --index read the "
                         "whole catalogue in this process; use the local engine for them")
    store = TrackingStore.open(tracking_uri)
    ref = store.version(model, version=version, alias=alias)
    reference = store.load_reference(ref)
    spark = spark_session(spark_master)
    measured = check_tables(reference, read_table(spark, current_path),
                            None if catalog_path is None else read_table(spark, catalog_path),
                            source=str(current_path),
                            catalog_source=None if catalog_path is None else str(catalog_path),
                            seed=seed, allow_id_mismatch=allow_id_mismatch, data_growth=data_growth)
    return (store, ref, named_window(window_id, end, str(current_path), measured.digest, data_growth),
            measured.evidence)


def sync(*, tracking_uri: str | None = None, spool_dir: str | Path | None = None) -> list[dict[str, str]]:
    """Land the checks spooled while MLflow was unavailable, each in the store it was spooled for
    (or ``tracking_uri``); a check measured but not decided is decided first, by the policy it names
    if that file is unchanged. An entry whose window (or an earlier one) another check is writing now
    is left in the spool with status ``deferred``; one the store or policy cannot take, ``skipped``.
    Each check landed gets the version's drift report, as a check landing at once does. A spool
    folder that does not exist holds nothing yet (it is made by the first check spooled) and is not
    created; a path that is a file is refused."""
    if spool_dir is not None and Path(spool_dir).exists() and not Path(spool_dir).is_dir():
        raise InputError(f"{spool_dir}: not a folder; a check spools into the folder its --spool-dir names")
    return sync_spool(spool_dir, tracking_uri, decide=_decide_spooled, landed=_attach_report)


def _decide(policy: Policy, values: dict[str, float], inputs: dict[str, Any], model: str, version: str,
            window: Window, prior: tuple[CheckRecord, ...]) -> dict[str, Any]:
    """The decision record of one window on the checks before it (folded here, once), in the context a
    check records."""
    return evaluate(policy, values, PolicyState().after_all(policy, prior), window.window_end,
                    context={"model": model, "version": version, "window_id": window.window_id,
                             "noise_floor": inputs["noise_floor"], "not_measured": inputs["not_measured"]}).to_dict()


def _decide_spooled(entry: SpoolEntry, prior: tuple[CheckRecord, ...]) -> dict[str, Any]:
    """Decide a check spooled before its decision, with the policy it named, unless that file changed."""
    policy = load_policy(entry.policy_path)
    if policy.sha256 != entry.policy_sha256:
        raise InputError(f"the policy {entry.policy_path} changed since this window was measured (sha256 "
                         f"{entry.policy_sha256[:12]}, now {policy.sha256[:12]}): restore it to decide the window, "
                         f"or check the window again")
    window = Window(**{**entry.window, "window_end": parse_window_end(entry.window["window_end"])})
    return _decide(policy, entry.payload["values"], entry.payload["inputs"], entry.model, entry.version, window,
                   prior)


def _recorded_outcome(ref: VersionRef, window: Window, recorded: RecordedCheck) -> CheckOutcome:
    """The outcome of a window decided earlier, as it was recorded (its window end, its data). The
    same window id with different data is refused: the recorded decision is not about these inputs."""
    if recorded.dataset is not None:
        name, digest, source = recorded.dataset
        if digest != window.dataset_digest:
            raise InputError(f"window {window.window_id!r} of {ref.name} version {ref.version} was decided on other "
                             f"data (input digest {digest}, from {source}); these inputs have digest "
                             f"{window.dataset_digest}. Give this window its own --window-id")
        window = Window(window.window_id, recorded.window_end, name, digest, source)
    else:
        window = replace(window, window_end=recorded.window_end)
    return CheckOutcome(ref.name, ref.version, window, recorded.decision, recorded.metrics, run_id=recorded.run_id,
                        already_recorded=True)


HEADLINE_METRICS = ("mmd2", "norm_ratio", "knn_turnover.noise_units", "rank.overlap_fixed", "rank.fix_gain",
                    "queries.off_catalog_share", "catalog.new_item_share", "index.recall_at_k", "index.coverage",
                    "data.growth")


def history(model: str, *, version: str | None = None, since: str | None = None,
            tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """Every recorded check of a model (or one version), oldest window first, as plain rows."""
    start = parse_window_end(since, option="--since") if since else None
    return _history(TrackingStore.open(tracking_uri, read_only=True), model, version, start)


def _history(store: TrackingStore, model: str, version: str | None, start: datetime | None) -> list[dict[str, Any]]:
    store.require_model(model)
    if version is not None:     # a version that does not exist is a typo, not an empty history
        store.version(model, version=version)
    return [row for row in store.check_rows(model, version) if start is None or row["window_end"] >= start]


def history_report(model: str, *, version: str | None, since: str | None = None,
                   tracking_uri: str | None = None) -> str:
    """One version's drift report, self-contained HTML (report.html): what `history --html` writes and
    what each check attaches to its run and to the version's LoggedModel."""
    if version is None:
        raise InputError("--html writes the report of one version: give --version")
    start = parse_window_end(since, option="--since") if since else None
    return _report(TrackingStore.open(tracking_uri, read_only=True), model, version, start)


def _report(store: TrackingStore, model: str, version: str, start: datetime | None = None,
            rows: list[dict[str, Any]] | None = None) -> str:
    """The report from the version's history rows (read here unless given) and the latest window's full
    record."""
    rows = _history(store, model, version, start) if rows is None else rows
    latest = store.audit_record(decision_id=rows[-1]["run_id"]) if rows else None
    return render_report(rows, latest, model=model, version=version, metrics=HEADLINE_METRICS)


def _attach_report(store: TrackingStore, ref: VersionRef, run_id: str,
                   prior_rows: list[dict[str, Any]] | None = None) -> None:
    """Once the check has landed: attach the report to its run and refresh it on the version's model.
    ``prior_rows``, the history the check was decided on, spares reading the history again (a check
    over 3,000 earlier ones reads them in seconds) unless a later window was checked before this one
    (a backfill) or there are none (a check landed by sync): then the history is read.
    The check is recorded by then, so no failure here (MLflow's, or the report's own) may fail or spool
    it: it is reported on stderr, and the next check of the version attaches a fresh report."""
    try:
        rows = None
        if prior_rows is not None and store.newest_check_id(ref) == run_id:
            rows = [*prior_rows, store.check_row(run_id)]
        store.attach_report(ref, run_id, _report(store, ref.name, ref.version, rows=rows))
    except Exception as exc:  # noqa: BLE001 - whatever it was, the recorded check stands
        print(f"warning: the drift report was not attached to run {run_id}: {exc}", file=sys.stderr)


def audit(decision_id: str | None = None, *, model: str | None = None, version: str | None = None,
          window_id: str | None = None, tracking_uri: str | None = None) -> dict[str, Any]:
    """The full record of one decision: the decision, the evidence and where they live in MLflow. Found
    by a unique prefix of its decision id or its run id, or by model, version and window id."""
    if (decision_id is None) == (window_id is None) or (window_id is not None and not (model and version)):
        raise InputError("give --decision-id, or --model, --version and --window-id")
    store = TrackingStore.open(tracking_uri, read_only=True)
    if window_id is not None:
        store.require_model(model)
        asked = f"window {window_id!r} of {model} version {version}"
    else:
        asked = f"a decision id starting {decision_id!r} or a run id {decision_id!r} (run ids go whole)"
    record = store.audit_record(decision_id=decision_id, model=model, version=version, window_id=window_id)
    if record is None:
        raise InputError(f"no recorded decision for {asked} in this store ({store.shown_uri}); "
                         f"`drift-decider history --model NAME` lists them")
    evidence = record.pop("evidence")
    return {**record, "held": held_rules(record["decision"]), "evidence": evidence}


@dataclass(frozen=True)
class PromotionOutcome:
    model: str
    candidate: str
    alias: str
    previous_holder: str | None
    passed: bool
    moved: bool
    decision: dict[str, Any]
    values: dict[str, float]
    incumbent_values: dict[str, float] | None
    run_id: str | None
    already_held: bool = False        # the candidate held the alias already: nothing was gated or written

    @property
    def undo(self) -> str | None:
        """The command that puts the alias back where it was, after a move."""
        if not self.moved or self.previous_holder is None:
            return None
        return (f"drift-decider rollback --model {shlex.quote(self.model)} --alias {shlex.quote(self.alias)} "
                f"--to {shlex.quote(self.previous_holder)}")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "candidate": self.candidate, "alias": self.alias,
                "previous_holder": self.previous_holder, "passed": self.passed, "alias_moved": self.moved,
                "already_held": self.already_held, "undo": self.undo,
                "action": self.decision["action"], "rule_id": self.decision.get("rule_id"),
                "decision_id": self.decision.get("decision_id"), "run_id": self.run_id,
                "metrics": self.values, "incumbent_metrics": self.incumbent_values, "decision": self.decision}


def promote(model: str, candidate: str, alias: str, current_path: str | Path, policy_path: str | Path, *,
            tracking_uri: str | None = None, dry_run: bool = False, seed: int = 0, progress: bool = False,
            spool_dir: str | Path | None = None, catalog_path: str | Path | None = None,
            queries_path: str | Path | None = None, index_path: str | Path | None = None,
            allow_id_mismatch: bool = False) -> PromotionOutcome:
    """Gate moving ``alias`` to the candidate version on the policy, judged on current production data.

    The candidate's reference is measured against the current data, and so is the version now holding
    the alias, for comparison. The gate passes when the policy's decision is ``none`` in enforce mode.
    The decision is recorded on the candidate; the alias moves only when the gate passes.
    """
    require_alias(alias)
    policy = load_policy(policy_path)
    if problem := policy.not_a_gate():
        raise InputError(f"{policy_path}: {problem}")
    current = load_current(current_path, catalog_path=catalog_path, queries_path=queries_path, index_path=index_path)
    store = TrackingStore.open(tracking_uri)
    ref = store.version(model, version=candidate)
    seen = store.alias_state(model, alias)     # moved at the end only if still so (registry.move_alias)
    holder = seen.holder
    if holder == ref.version:       # nothing to gate: recording a run would name the holder its own predecessor
        return PromotionOutcome(model, ref.version, alias, holder, True, False,
                                {"action": "none", "explanation": f"version {holder} already holds {alias!r}"},
                                {}, None, None, already_held=True)
    window = make_window(current.embeddings, None, parse_window_end(None), also=(current.catalog, current.queries))
    window = Window(f"promote-{alias}-v{ref.version}-{window.dataset_digest}", window.window_end,
                    window.dataset_name, window.dataset_digest, window.source)
    candidate_reference = _reference_fitting(store, ref, current)
    evidence = build_evidence(candidate_reference, current, seed=seed, now=window.window_end, progress=progress,
                              allow_id_mismatch=allow_id_mismatch)
    incumbent_values, incumbent_note = None, "no other version holds the alias"
    if holder is not None and holder != ref.version:
        incumbent_values, incumbent_note = _incumbent_values(store, model, holder, current, seed, window.window_end)
    decision = _gate(policy, evidence.values(), window, {"model": model, "candidate": ref.version, "alias": alias,
                                                         "previous_holder": holder or "",
                                                         "window_id": window.window_id})
    record = decision.to_dict()
    passed = decision.action == "none" and decision.mode == "enforce"
    if dry_run:
        return PromotionOutcome(model, ref.version, alias, holder, passed, False, record, evidence.values(),
                                incumbent_values, None)
    evidence_record = {**evidence.to_dict(),
                       "incumbent": {"version": holder, "values": incumbent_values, "note": incumbent_note}}
    payload = CheckPayload(values=evidence.values(), inputs=evidence.inputs, evidence=evidence_record,
                           decision=record)
    gate_tags = {"drift_decider.promotion.alias": alias, "drift_decider.promotion.previous_holder": holder or "",
                 "drift_decider.promotion.passed": str(passed).lower()}
    run_id, _ = store.land_check(ref, window, payload, step=1, spool_dir=spool_dir,
                                 kind="promotion", extra_tags=gate_tags)
    store.publish_promotion(ref, alias, seen, record, run_id, gate_tags, passed=passed)
    return PromotionOutcome(model, ref.version, alias, holder, passed, passed, record, evidence.values(),
                            incumbent_values, run_id)


def require_alias(alias: str) -> None:
    """InputError (exit 2) for an alias MLflow would refuse, before anything is measured or recorded."""
    if problem := alias_problem(alias):
        raise InputError(problem)


def _gate(policy: Policy, values: dict[str, float], window: Window, context: dict[str, str]) -> Decision:
    """A promotion gate's decision: the policy on the candidate's evidence alone (a gate has no history)."""
    return evaluate(policy, values, PolicyState(), window.window_end, context=context)


def rollback(model: str, alias: str, to_version: str, *, tracking_uri: str | None = None) -> str | None:
    """Move ``alias`` back to ``to_version`` (the undo `promote` prints), without a gate: the version
    held it before. Compare-and-set like a promotion (InFlightError, exit 4, when another move
    races it). Returns the version that held the alias before. Refused: an alias that is not set, and
    a version newer than its holder other than the one the holder's gate replaced (moving forward is a
    promotion)."""
    require_alias(alias)
    return TrackingStore.open(tracking_uri).roll_back(model, alias, to_version, token=f"rollback-{uuid.uuid4().hex}")


def _incumbent_values(store: TrackingStore, model: str, holder: str, current: CurrentData, seed: int,
                      now: datetime) -> tuple[dict[str, float] | None, str]:
    """The alias holder's metrics on the same data, for comparison; skipped (with the reason) when it
    has no reference or lives in another dimension, which must not block a new model's promotion."""
    try:
        reference = store.load_reference(store.version(model, version=holder))
    except InputError as exc:
        return None, f"not compared: {exc}"
    if reference.profile.dim != current.embeddings.dim:
        return None, (f"not compared: version {holder} has {reference.profile.dim} dimensions, the data "
                      f"{current.embeddings.dim}")
    try:          # after catalogue turnover the holder may not know today's ids: that is why one promotes
        return build_evidence(reference, current, seed=seed, now=now).values(), f"compared with version {holder}"
    except InputError as exc:
        return None, f"not compared: {exc}"


# Reviewing policies: what `drift-decider policy validate|test|explain|backtest` do, without MLflow.

MAX_INPUT_BYTES = 50_000_000


def validate_policies(paths: Sequence[str | Path], *, strict: bool = False) -> dict[str, Any]:
    """Load each policy strictly and lint it: ``{"ok", "files": [report per file]}``. A file that does not
    load is reported (``error``), not raised; ``strict`` counts a lint warning as a failure."""
    reports, failed = [], False
    for path in paths:
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            failed = True
            reports.append({"file": str(path), "ok": False, "error": str(exc), "warnings": []})
            continue
        warnings = [str(w) for w in lint(policy)]
        failed |= strict and bool(warnings)
        reports.append({"file": str(path), "ok": not (strict and warnings), "policy": policy.name,
                        "version": policy.version, "sha256": policy.sha256, "rules": len(policy.rules),
                        "mode": policy.mode, "warnings": warnings})
    return {"ok": not failed, "files": reports}


@dataclass(frozen=True)
class PolicyTestRun:
    """One policy test file's outcome: its result, or the error that kept it from running."""

    path: str
    result: TestFileResult | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok

    def to_dict(self) -> dict[str, Any]:
        return self.result.to_dict() if self.result is not None else {"file": self.path, "ok": False,
                                                                      "error": self.error}


def run_policy_tests(paths: Sequence[str | Path]) -> list[PolicyTestRun]:
    """Run policy test files (kind: PolicyTest); a file that does not load is a failed run, not raised."""
    runs = []
    for path in paths:
        try:
            runs.append(PolicyTestRun(str(path), run_test_file(path)))
        except PolicyError as exc:
            runs.append(PolicyTestRun(str(path), None, str(exc)))
    return runs


def explain(policy_path: str | Path, metrics_path: str | Path, *, history_path: str | Path | None = None,
            now: str | datetime | None = None, context: Mapping[str, str] | None = None) -> Decision:
    """The policy's decision on a metrics file after the checks of a history file, with the reasons
    (``Decision.explain``). The file is a JSON object of metric to number, an evidence report (its
    ``values``) or what `check`, `promote` and `audit` print with ``--json`` (their ``metrics``)."""
    policy = load_policy(policy_path)
    metrics = read_json_file(metrics_path, "metrics")
    for key in ("values", "metrics"):
        if isinstance(metrics, dict) and isinstance(metrics.get(key), dict):
            metrics = metrics[key]
            break
    _refuse_unknown_metrics(metrics, str(metrics_path))
    metrics = clean_metrics(metrics, str(metrics_path))
    rows = (history_rows(read_json_file(history_path, "history"), f"{history_path}: history") if history_path
            else [])
    moment = now if now is not None else datetime.now(timezone.utc)
    with _naming_file(history_path):
        records = records_from_dicts(rows)
    state = PolicyState().after_all(policy, records)
    return evaluate(policy, metrics, state, parse_time(moment, "--now"), context=dict(context or {}))


@dataclass(frozen=True)
class BacktestResult:
    """A policy replayed over recorded checks: each replayed step, and counts over them."""

    policy: dict[str, str]                # name, version, sha256
    history_checks: int                   # checks before --since, taken as recorded
    summary: dict[str, Any]
    steps: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "policy": self.policy, "history_checks": self.history_checks, "summary": self.summary,
                "steps": self.steps}


def backtest(policy_path: str | Path, history_path: str | Path, *, since: str | datetime | None = None,
             as_policy_mode: bool = False) -> BacktestResult:
    """Replay a version's recorded checks (a `history --json` file) through a policy: what it would have
    decided, each check counted as enforced (or in the policy's own mode) in the history of the next."""
    policy = load_policy(policy_path)
    start = parse_time(since, "--since") if since else None
    with _naming_file(history_path):
        before, recorded = recorded_from_rows(read_json_file(history_path, "history"), start)
    steps = [step.to_dict() for step in replay(policy, recorded, history=before, as_enforced=not as_policy_mode)]
    return BacktestResult({"name": policy.name, "version": policy.version, "sha256": policy.sha256}, len(before),
                          summary(steps), steps)


@contextmanager
def _naming_file(path: str | Path | None) -> Iterator[None]:
    """InputErrors about a file's content, prefixed with the file (a history check's error names the
    check, and this says in which file)."""
    try:
        yield
    except InputError as exc:
        if path is None or str(exc).startswith(str(path)):
            raise
        raise InputError(f"{path}: {exc}") from None


def _refuse_unknown_metrics(metrics: Any, path: str) -> None:
    """A misspelt key would read as a missing metric and fire no rule, silently: name it instead."""
    if not isinstance(metrics, dict):
        return
    unknown = [problem for problem in map(unknown_metric, metrics) if problem]
    if unknown:
        raise InputError(f"{path}: {unknown[0]}" + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""))


def read_json_file(path: str | Path, what: str) -> Any:
    """A JSON input file, refused clearly when it is not a regular file, too large or not JSON."""
    raw = read_limited(path, MAX_INPUT_BYTES)
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError as exc:      # not JSON, not UTF-8, or a number past Python's 4,300 digits
        raise InputError(f"{path}: {what} file is not valid JSON: {exc}") from None
    except RecursionError:      # json.loads recurses once per nesting level
        raise InputError(f"{path}: {what} file nests lists or objects too deeply to be a {what} file") from None


# Registry automation (`drift-decider serve`, drift_decider.automation): what it reads of the registry,
# and the webhooks it registers. Its jobs call set_reference, promote and check above.

def version_states(model: str, *, tracking_uri: str | None = None) -> list[VersionState]:
    """Every version of ``model``, oldest first: whether it has a reference, its gates and rollbacks."""
    return TrackingStore.open(tracking_uri, read_only=True).version_states(model)


def version_state(model: str, version: str, *, tracking_uri: str | None = None) -> VersionState:
    """One version of ``model``: whether it has a reference, its gates and rollbacks."""
    return TrackingStore.open(tracking_uri, read_only=True).version_state(model, version)


def alias_holder(model: str, alias: str, *, tracking_uri: str | None = None) -> str | None:
    """The version holding ``alias`` now, or None when it is unset."""
    return TrackingStore.open(tracking_uri, read_only=True).alias_state(model, alias).holder


def register_webhooks(name: str, url: str, events: Sequence[str], secret: str, *, description: str = "",
                      tracking_uri: str | None = None) -> dict[str, Any]:
    """Create (or update, by name) the webhook MLflow calls on ``events``, signed with ``secret``; its
    id, url, events and status. MLflow keeps the secret encrypted; it is never returned or printed."""
    if not secret:
        raise InputError("a webhook needs a secret: deliveries are verified by their HMAC signature")
    return TrackingStore.open(tracking_uri).register_webhook(name, url, list(events), secret, description)
