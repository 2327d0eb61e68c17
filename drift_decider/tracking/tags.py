"""Names of the tags drift-decider writes; one place, so readers and writers never disagree."""

PREFIX = "drift_decider."

# on runs and model versions: the decision
DECISION = PREFIX + "decision"
RULE = PREFIX + "rule"
DECIDED_AT = PREFIX + "decided_at"
DECISION_ID = PREFIX + "decision_id"
POLICY = PREFIX + "policy"
POLICY_SHA256 = PREFIX + "policy_sha256"
RUN_ID = PREFIX + "run_id"
MODE = PREFIX + "mode"
HELD = PREFIX + "held"                  # on runs: rules that matched but were held back, and why
# on model versions only: all the tags above and WINDOW_ID as one JSON object, written first, so a
# reader of this one tag never sees a mixture of two decisions (the others can lag it while a
# publish is written or after one failed midway; the next check or `sync` completes them)
LATEST = PREFIX + "latest"

# on runs only: what the check was about
MODEL = PREFIX + "model"
VERSION = PREFIX + "version"
WINDOW_ID = PREFIX + "window_id"
WINDOW_END = PREFIX + "window_end"
KIND = PREFIX + "kind"                  # "check" | "promotion"
COMPLETE = PREFIX + "complete"          # "true" once metrics, artifact and decision are all written
ATTEMPT = PREFIX + "attempt"            # random id of the write attempt, set when the run is created

# params of check runs: where the window sits in time, as numbers the runs charts can take as an axis
# (params, not metrics: they would join the metric rows that history and the policy read)
WINDOW_END_MS = PREFIX + "window_end_ms"          # the window's end, milliseconds since the epoch
WINDOW_INDEX = PREFIX + "window_index"            # the step of its metric points: 1 + the checks before it

# on model versions only
LOGGED_MODEL_ID = PREFIX + "logged_model_id"
REFERENCE_URI = PREFIX + "reference_uri"
REFERENCE_SHA256 = PREFIX + "reference_sha256"
REFERENCE_ROWS = PREFIX + "reference_rows"
REFERENCE_DIM = PREFIX + "reference_dim"
REFERENCE_NOISE = PREFIX + "reference_noise_floor"   # the noise floor's label, or "none"
# the alias a `rollback` moved away from this version (one tag per alias, valued with the version
# it went back to): the automation's reconcile pass never gates this version, nor an older one, for it
ROLLED_BACK = PREFIX + "rolled_back."
# the gate's outcome per alias ("passed" or "blocked"), so gates for two aliases do not overwrite each other
GATED = PREFIX + "promotion.gated."
# the version a passed gate moved the alias away from, per alias: where `rollback` may move it forward to
REPLACED = PREFIX + "promotion.replaced."

DECISION_ARTIFACT = "drift_decider/decision.json"
EVIDENCE_ARTIFACT = "drift_decider/evidence.json"
REPORT_ARTIFACT = "drift_decider/report.html"     # on check runs and the version's LoggedModel
REFERENCE_ARTIFACT_DIR = "drift_decider/reference"
