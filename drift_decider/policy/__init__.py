"""The policy engine: versioned YAML rules turn metric values and the state of earlier checks into a Decision.

Pure by design (no MLflow, no clock, no hidden state): the caller hands in metrics, a PolicyState
folded from the history and ``now``, so the same inputs always give the same decision and decision id.
"""

from drift_decider.policy.decision import Decision, RuleOutcome
from drift_decider.policy.engine import evaluate
from drift_decider.policy.records import ACTIONS, CheckRecord, records_from_dicts
from drift_decider.policy.lint import LintWarning, lint
from drift_decider.policy.model import Policy, Rule
from drift_decider.policy.load import load_policy, parse_policy
from drift_decider.policy.state import PolicyState

__all__ = ["ACTIONS", "CheckRecord", "Decision", "LintWarning", "Policy", "PolicyState", "Rule",
           "RuleOutcome", "evaluate", "lint", "load_policy", "parse_policy", "records_from_dicts"]
