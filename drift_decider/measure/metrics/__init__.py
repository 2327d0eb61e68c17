"""Drift statistics between reference and current embeddings. Never imports mlflow."""

from drift_decider.measure.metrics.result import MetricResult

__all__ = ["MetricResult"]
