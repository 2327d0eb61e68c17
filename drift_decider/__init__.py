"""drift-decider: decide what to do about embedding drift, and keep the proof in MLflow."""

__version__ = "0.1.0"
