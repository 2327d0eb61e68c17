"""The policy engine: versioned YAML rules turn metric values and history into a Decision.

Pure by design (no MLflow, no clock, no hidden state): the caller hands in metrics, history and
``now``, so the same inputs always give the same decision and decision id.
"""

from drift_decider.policy.decision import Decision, RuleOutcome
from drift_decider.policy.engine import evaluate
from drift_decider.policy.history import ACTIONS, CheckRecord, History
from drift_decider.policy.lint import LintWarning, lint
from drift_decider.policy.model import Policy, Rule
from drift_decider.policy.schema import load_policy, parse_policy

__all__ = ["ACTIONS", "CheckRecord", "Decision", "History", "Policy", "Rule", "RuleOutcome", "LintWarning",
           "evaluate", "lint", "load_policy", "parse_policy"]
