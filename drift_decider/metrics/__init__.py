"""Drift statistics between reference and current embeddings. Never imports mlflow."""

from drift_decider.metrics.result import MetricResult

__all__ = ["MetricResult"]
