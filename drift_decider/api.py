"""The Python API: measure, set a reference, check a window. The CLI is a thin shell over these.

Every function validates all local input (policy, embeddings) before it talks to MLflow, and writes
to MLflow only after every measurement and the decision exist, so bad input never leaves a trace.
"""

from __future__ import annotations

import shlex
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from drift_decider import spool
from drift_decider.spool import SpoolEntry
from drift_decider.errors import InFlightError, InputError, TrackingError, redact
from drift_decider.evidence import EvidenceReport
from drift_decider.evidence_builder import CurrentData, ReferenceData, build_evidence, measure_noise
from drift_decider.loading import EmbeddingSet, check_same_dim, load_embeddings
from drift_decider.noise import NoiseFloor, Sibling
from drift_decider.measure import measure, require_window_rows
from drift_decider.policy import History, Policy, evaluate, load_policy
from drift_decider.policy.decision import held_rules
from drift_decider.window import Window, make_window, parse_window_end


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
    return measure(reference.vectors, current.vectors, seed=seed, progress=progress)


def register(model: str, *, tracking_uri: str | None = None) -> str:
    """Register a new version of ``model`` (created if new) backed by an external LoggedModel, the first
    step on an empty store: `reference set` then gives it a reference. Returns the version."""
    from drift_decider.tracking.connection import connect, resolve_tracking_uri
    from drift_decider.tracking.registry import ensure_experiment, register_external_model

    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    return register_external_model(client, uri, model, experiment_id=ensure_experiment(client)).version


def set_reference(model: str, version: str, embeddings_path: str | Path, *, queries_path: str | Path | None = None,
                  sibling_paths: Sequence[str | Path] = (), sibling_query_paths: Sequence[str | Path] = (),
                  tracking_uri: str | None = None, seed: int = 0, progress: bool = False) -> str:
    """Summarise the reference once and store it with the model version; returns its URI.

    Embeddings with ids also keep a seeded id-keyed item sample (structure metrics); ``queries_path``
    keeps a query sample (score and ranking metrics); ``sibling_paths`` (refits that saw no new data,
    with ids) give the noise floor that checks judge each metric against.
    """
    from drift_decider.tracking.connection import connect
    from drift_decider.tracking.reference_store import store_reference
    from drift_decider.tracking.registry import resolve_version

    embeddings = load_embeddings(embeddings_path)
    queries = load_embeddings(queries_path) if queries_path else None
    if queries is not None:
        check_same_dim(embeddings.dim, queries, str(embeddings.path))
    siblings = load_siblings(sibling_paths, sibling_query_paths, embeddings)
    reference = ReferenceData.from_arrays(embeddings.vectors, embeddings.ids,
                                          None if queries is None else queries.vectors, seed=seed, progress=progress)
    if siblings:
        reference = replace(reference, noise=measure_noise(reference, siblings, seed=seed))
    client = connect(tracking_uri)
    return store_reference(client, resolve_version(client, model, version=version, attach=True), reference)


MIN_BASELINE_CHECKS = 3


def set_noise_floor_from_checks(model: str, version: str, *, checks: int, tracking_uri: str | None = None) -> str:
    """For a version without sibling refits: take the noise floor from its first ``checks`` recorded checks,
    a baseline period the team knows was healthy (as NannyML derives thresholds from reference chunks).
    Stored with the reference like a sibling floor; later checks are judged against it. Returns its label.
    """
    from drift_decider.tracking.connection import connect, resolve_tracking_uri
    from drift_decider.tracking.reference_store import load_reference, store_reference
    from drift_decider.tracking.registry import resolve_version

    if checks < MIN_BASELINE_CHECKS:
        raise InputError(f"--first-checks {checks}: a baseline floor needs at least {MIN_BASELINE_CHECKS} checks")
    rows = history(model, version=version, tracking_uri=tracking_uri)
    if len(rows) < checks:
        raise InputError(f"{model} version {version} has {len(rows)} recorded checks; --first-checks {checks} "
                         f"needs that many")
    floor = NoiseFloor.from_measurements("baseline checks", [row["metrics"] for row in rows[:checks]])
    if not floor.samples:
        raise InputError(f"the first {checks} checks of {model} version {version} have no paired metrics (they "
                         f"need a reference and current embeddings with ids) to take a floor from")
    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    ref = resolve_version(client, model, version=version)
    with tempfile.TemporaryDirectory() as tmp:
        reference = load_reference(client, uri, ref, Path(tmp))
    if reference.noise is not None:
        raise InputError(f"{model} version {version} already has a noise floor ({reference.noise.label}); it is kept")
    store_reference(client, ref, replace(reference, noise=floor))
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
        sibling_queries = load_embeddings(query_paths[number]) if query_paths else None
        if sibling_queries is not None:
            check_same_dim(reference.dim, sibling_queries, str(reference.path))
        siblings.append(Sibling(items.ids, np.asarray(items.vectors, dtype=np.float32),
                                None if sibling_queries is None else np.asarray(sibling_queries.vectors)))
    return siblings


def load_current(current_path: str | Path, *, catalog_path: str | Path | None = None,
                 queries_path: str | Path | None = None, index_path: str | Path | None = None) -> CurrentData:
    """Load and validate every local input of a check before anything talks to MLflow."""
    from drift_decider.ann_index import ServingIndex

    embeddings = load_embeddings(current_path)
    current = CurrentData(embeddings, catalog=load_embeddings(catalog_path) if catalog_path else None,
                          queries=load_embeddings(queries_path) if queries_path else None,
                          index=ServingIndex.load(index_path) if index_path else None)
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


def check(model: str, current_path: str | Path, policy_path: str | Path, *, version: str | None = None,
          alias: str | None = None, tracking_uri: str | None = None, window_id: str | None = None,
          window_end: str | None = None, dry_run: bool = False, seed: int = 0, progress: bool = False,
          spool_dir: str | Path | None = None, catalog_path: str | Path | None = None,
          queries_path: str | Path | None = None, index_path: str | Path | None = None,
          allow_id_mismatch: bool = False, launched_at: float | None = None) -> CheckOutcome:
    """Measure one window against the version's reference, decide with the policy, record in MLflow.
    Ids matching less than half the reference's items are refused unless ``allow_id_mismatch``.
    ``launched_at`` (``time.monotonic()`` when the check's process was launched; default: this call)
    sets how long the decision waits for checks of earlier windows launched with it (decide_in_order).

    Idempotent per (version, window id): a window decided before returns its recorded decision.
    """
    from drift_decider.tracking import history as tracking_history
    from drift_decider.tracking.connection import connect, resolve_tracking_uri
    from drift_decider.tracking.landing import (claim_window, decide_in_order, land_check, release_window,
                                                spool_undecided)
    from drift_decider.tracking.recorder import CheckPayload
    from drift_decider.tracking.reference_store import load_reference
    from drift_decider.tracking.registry import find_experiment, resolve_version

    launched_at = time.monotonic() if launched_at is None else launched_at
    if (version is None) == (alias is None):
        raise InputError("give exactly one of --version or --alias")
    policy = load_policy(policy_path)
    current = load_current(current_path, catalog_path=catalog_path, queries_path=queries_path, index_path=index_path)
    window = make_window(current.embeddings, window_id, parse_window_end(window_end),
                         also=(current.catalog, current.queries))
    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    ref = resolve_version(client, model, version=version, alias=alias)
    experiment_id = find_experiment(client)
    if experiment_id is not None:
        earlier = tracking_history.check_runs(client, experiment_id, ref, window_id=window.window_id)
        if earlier:
            return _recorded_outcome(client, ref, window, earlier[-1])
    with tempfile.TemporaryDirectory() as tmp:
        reference = load_reference(client, uri, ref, Path(tmp))
    check_same_dim(reference.profile.dim, current.embeddings, f"the reference of {ref.name} version {ref.version}")
    require_window_rows(current.embeddings.n, str(current.embeddings.path))

    def measured() -> EvidenceReport:
        return build_evidence(reference, current, seed=seed, now=window.window_end, progress=progress,
                              allow_id_mismatch=allow_id_mismatch)

    if dry_run:
        evidence = measured()
        runs = tracking_history.check_runs(client, experiment_id, ref) if experiment_id else []
        decision = _decide(policy, evidence.values(), evidence.inputs, ref.name, ref.version, window,
                           [run for run in runs if tracking_history.window_end_of(run) < window.window_end])
        return CheckOutcome(ref.name, ref.version, window, decision, evidence.values(), run_id=None)
    # Checks of one version behave as if run one after another: the window is claimed before measuring
    # (a concurrent check of it waits for this one's record), and the decision waits for earlier windows.
    attempt = uuid.uuid4().hex
    recorded = claim_window(client, ref, window, attempt)
    if recorded is not None:
        return _recorded_outcome(client, ref, window, recorded)
    claimed_at = time.monotonic()
    try:
        evidence = measured()
    except BaseException:
        release_window(client, ref, window, attempt)
        raise
    payload = CheckPayload(values=evidence.values(), inputs=evidence.inputs, evidence=evidence.to_dict(),
                           decision=None)
    try:
        decision, prior = decide_in_order(client, ref, window, lambda prior: _decide(
            policy, evidence.values(), evidence.inputs, ref.name, ref.version, window, prior),
            settle_until=claimed_at + (claimed_at - launched_at))
    except InFlightError:
        release_window(client, ref, window, attempt)
        raise
    except TrackingError as exc:      # MLflow failed reading the history: keep the measurement for sync
        raise spool_undecided(client, ref, window, payload, spool_dir=spool.spool_dir(spool_dir), attempt=attempt,
                              policy_path=str(Path(policy_path).resolve()), policy_sha256=policy.sha256,
                              exc=exc) from exc
    except BaseException:
        release_window(client, ref, window, attempt)
        raise
    payload = replace(payload, decision=decision)
    landed = land_check(client, ref, window, payload, step=len(prior) + 1, spool_dir=spool.spool_dir(spool_dir),
                        attempt=attempt)
    if landed.recorded_by is not None:      # our claim went stale and another check recorded the window
        return _recorded_outcome(client, ref, window, landed.recorded_by)
    return CheckOutcome(ref.name, ref.version, window, payload.decision, payload.values, run_id=landed.run_id)


def sync(*, tracking_uri: str | None = None, spool_dir: str | Path | None = None) -> list[dict[str, str]]:
    """Land the checks spooled while MLflow was unavailable, each in the store it was spooled for
    (or ``tracking_uri``); a check measured but not decided is decided first, by the policy it names
    if that file is unchanged. An entry whose window (or an earlier one) another check is writing now
    is left in the spool with status ``deferred``; one the store or policy cannot take, ``skipped``."""
    from drift_decider.tracking.landing import sync_spool

    return sync_spool(spool.spool_dir(spool_dir), tracking_uri, decide=_decide_spooled)


def _decide(policy: Policy, values: dict[str, float], inputs: dict[str, Any], model: str, version: str,
            window: Window, prior: list) -> dict[str, Any]:
    """The decision record of one window on the complete runs before it, in the context a check records."""
    from drift_decider.tracking.history import history_from_runs

    return evaluate(policy, values, history_from_runs(prior), window.window_end,
                    context={"model": model, "version": version, "window_id": window.window_id,
                             "noise_floor": inputs["noise_floor"], "not_measured": inputs["not_measured"]}).to_dict()


def _decide_spooled(entry: SpoolEntry, prior: list) -> dict[str, Any]:
    """Decide a check spooled before its decision, with the policy it named, unless that file changed."""
    policy = load_policy(entry.policy_path)
    if policy.sha256 != entry.policy_sha256:
        raise InputError(f"the policy {entry.policy_path} changed since this window was measured (sha256 "
                         f"{entry.policy_sha256[:12]}, now {policy.sha256[:12]}): restore it to decide the window, "
                         f"or check the window again")
    window = Window(**{**entry.window, "window_end": parse_window_end(entry.window["window_end"])})
    return _decide(policy, entry.payload["values"], entry.payload["inputs"], entry.model, entry.version, window,
                   prior)


def _recorded_outcome(client, ref, window: Window, run) -> CheckOutcome:
    """The outcome of a window decided earlier, as it was recorded (its window end, its data). The
    same window id with different data is refused: the recorded decision is not about these inputs."""
    from drift_decider.tracking.history import window_end_of
    from drift_decider.tracking.recorder import read_decision_record

    recorded = next(iter(run.inputs.dataset_inputs), None) if run.inputs else None
    if recorded is not None and recorded.dataset.digest != window.dataset_digest:
        raise InputError(f"window {window.window_id!r} of {ref.name} version {ref.version} was decided on other "
                         f"data (input digest {recorded.dataset.digest}, from {recorded.dataset.source}); these "
                         f"inputs have digest {window.dataset_digest}. Give this window its own --window-id")
    window = Window(window.window_id, window_end_of(run),
                    recorded.dataset.name if recorded else window.dataset_name,
                    recorded.dataset.digest if recorded else window.dataset_digest,
                    recorded.dataset.source if recorded else window.source)
    return CheckOutcome(ref.name, ref.version, window, read_decision_record(client, run.info.run_id),
                        dict(run.data.metrics), run_id=run.info.run_id, already_recorded=True)


HEADLINE_METRICS = ("mmd2", "norm_ratio", "knn_turnover.noise_units", "rank.overlap_fixed", "rank.fix_gain",
                    "queries.off_catalog_share", "catalog.new_item_share", "index.recall_at_k", "index.coverage")


def history(model: str, *, version: str | None = None, since: str | None = None,
            tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """Every recorded check of a model (or one version), oldest window first, as plain rows."""
    from drift_decider.tracking import history as tracking_history
    from drift_decider.tracking import tags
    from drift_decider.tracking.connection import connect, mlflow_errors
    from drift_decider.tracking.registry import find_experiment, require_model

    start = parse_window_end(since, option="--since") if since else None
    client = connect(tracking_uri, read_only=True)
    with mlflow_errors(f"looking up model {model!r}"):
        require_model(client, model)
    experiment_id = find_experiment(client)
    runs = tracking_history.search_checks(client, experiment_id, model=model, version=version) if experiment_id else []
    rows = []
    for run in runs:
        window_end = tracking_history.window_end_of(run)
        if start is not None and window_end < start:
            continue
        rows.append({"window_end": window_end, "window_id": run.data.tags[tags.WINDOW_ID], "model": model,
                     "version": run.data.tags[tags.VERSION], "action": run.data.tags[tags.DECISION],
                     "rule_id": run.data.tags.get(tags.RULE) or None, "held": run.data.tags.get(tags.HELD, ""),
                     "mode": run.data.tags.get(tags.MODE),
                     "decision_id": run.data.tags[tags.DECISION_ID], "run_id": run.info.run_id,
                     "noise_floor": run.data.params.get("noise_floor"),
                     "not_measured": run.data.params.get("not_measured"), "metrics": dict(run.data.metrics)})
    return rows


def audit(decision_id: str | None = None, *, model: str | None = None, version: str | None = None,
          window_id: str | None = None, tracking_uri: str | None = None) -> dict[str, Any]:
    """The full record of one decision: the decision, the evidence and where they live in MLflow. Found
    by a unique prefix of its decision id or its run id, or by model, version and window id."""
    from drift_decider.tracking import history as tracking_history
    from drift_decider.tracking import tags
    from drift_decider.tracking.connection import connect, mlflow_errors
    from drift_decider.tracking.recorder import read_decision_record, read_json_artifact
    from drift_decider.tracking.registry import find_experiment, require_model

    if (decision_id is None) == (window_id is None) or (window_id is not None and not (model and version)):
        raise InputError("give --decision-id, or --model, --version and --window-id")
    client = connect(tracking_uri, read_only=True)
    experiment_id = find_experiment(client)
    if window_id is not None:
        with mlflow_errors(f"looking up model {model!r}"):
            require_model(client, model)
        runs = (tracking_history.search_checks(client, experiment_id, model=model, version=version,
                                               window_id=window_id) if experiment_id else [])
        run, asked = (runs[-1] if runs else None), f"window {window_id!r} of {model} version {version}"
    else:
        run = tracking_history.find_decision_run(client, experiment_id, decision_id) if experiment_id else None
        asked = f"a decision id starting {decision_id!r} or a run id {decision_id!r} (run ids go whole)"
    if run is None:
        raise InputError(f"no recorded decision for {asked} in this store ({redact(client.tracking_uri)}); "
                         f"`drift-decider history --model NAME` lists them")
    with mlflow_errors(f"reading run {run.info.run_id}"):
        evidence = read_json_artifact(client, run.info.run_id, tags.EVIDENCE_ARTIFACT)
    decision = read_decision_record(client, run.info.run_id)
    return {"run_id": run.info.run_id, "experiment_id": experiment_id, "run_tags": dict(run.data.tags),
            "metrics": dict(run.data.metrics), "params": dict(run.data.params), "decision": decision,
            "held": held_rules(decision), "evidence": evidence}


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
    from drift_decider.tracking.connection import connect, mlflow_errors, resolve_tracking_uri
    from drift_decider.tracking.landing import land_check
    from drift_decider.tracking.recorder import CheckPayload, publish_promotion
    from drift_decider.tracking.reference_store import load_reference
    from drift_decider.tracking.registry import alias_state, move_alias, resolve_version

    policy = load_policy(policy_path)
    current = load_current(current_path, catalog_path=catalog_path, queries_path=queries_path, index_path=index_path)
    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    ref = resolve_version(client, model, version=candidate)
    seen = alias_state(client, model, alias)     # moved at the end only if still so (move_alias)
    holder = seen.holder
    if holder == ref.version:       # nothing to gate: recording a run would name the holder its own predecessor
        return PromotionOutcome(model, ref.version, alias, holder, True, False,
                                {"action": "none", "explanation": f"version {holder} already holds {alias!r}"},
                                {}, None, None, already_held=True)
    window = make_window(current.embeddings, None, parse_window_end(None), also=(current.catalog, current.queries))
    window = Window(f"promote-{alias}-v{ref.version}-{window.dataset_digest}", window.window_end,
                    window.dataset_name, window.dataset_digest, window.source)
    with tempfile.TemporaryDirectory() as tmp:
        candidate_reference = load_reference(client, uri, ref, Path(tmp))
        check_same_dim(candidate_reference.profile.dim, current.embeddings,
                       f"the reference of {model} version {ref.version}")
        require_window_rows(current.embeddings.n, str(current.embeddings.path))
        evidence = build_evidence(candidate_reference, current, seed=seed, now=window.window_end, progress=progress,
                                  allow_id_mismatch=allow_id_mismatch)
        incumbent_values, incumbent_note = None, "no other version holds the alias"
        if holder is not None and holder != ref.version:
            incumbent_values, incumbent_note = _incumbent_values(client, uri, model, holder, current, seed,
                                                                 window.window_end, Path(tmp) / "incumbent")
    decision = evaluate(policy, evidence.values(), History(checks=[]), window.window_end,
                        context={"model": model, "candidate": ref.version, "alias": alias,
                                 "previous_holder": holder or "", "window_id": window.window_id})
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
    run_id = land_check(client, ref, window, payload, step=1, spool_dir=spool.spool_dir(spool_dir),
                        kind="promotion", extra_tags=gate_tags).run_id
    with mlflow_errors(f"recording the promotion decision on {model} version {ref.version}"):
        if passed:      # a promotion that lost the race raises here: its candidate is not tagged
            move_alias(client, model, alias, seen, ref.version, token=run_id)
        publish_promotion(client, ref, record, run_id, gate_tags)
    return PromotionOutcome(model, ref.version, alias, holder, passed, passed, record, evidence.values(),
                            incumbent_values, run_id)


def rollback(model: str, alias: str, to_version: str, *, tracking_uri: str | None = None) -> str | None:
    """Move ``alias`` back to ``to_version`` (the undo `promote` prints), without a gate: the version
    held it before. Compare-and-set like a promotion (InFlightError, exit 4, when another move
    races it). Returns the version that held the alias before."""
    from drift_decider.tracking.connection import connect, mlflow_errors
    from drift_decider.tracking.registry import alias_state, move_alias, require_model, resolve_version

    client = connect(tracking_uri)
    with mlflow_errors(f"moving alias {alias!r} of {model!r}"):
        require_model(client, model)
        target = resolve_version(client, model, version=to_version)
        seen = alias_state(client, model, alias)
        if seen.holder != target.version:
            move_alias(client, model, alias, seen, target.version, token=f"rollback-{uuid.uuid4().hex}")
    return seen.holder


def _incumbent_values(client, uri: str, model: str, holder: str, current: CurrentData, seed: int, now,
                      workdir: Path) -> tuple[dict[str, float] | None, str]:
    """The alias holder's metrics on the same data, for comparison; skipped (with the reason) when it
    has no reference or lives in another dimension, which must not block a new model's promotion."""
    from drift_decider.tracking.reference_store import load_reference
    from drift_decider.tracking.registry import resolve_version

    try:
        reference = load_reference(client, uri, resolve_version(client, model, version=holder), workdir)
    except InputError as exc:
        return None, f"not compared: {exc}"
    if reference.profile.dim != current.embeddings.dim:
        return None, f"not compared: version {holder} has {reference.profile.dim} dimensions, the data {current.embeddings.dim}"
    try:          # after catalogue turnover the holder may not know today's ids: that is why one promotes
        return build_evidence(reference, current, seed=seed, now=now).values(), f"compared with version {holder}"
    except InputError as exc:
        return None, f"not compared: {exc}"
