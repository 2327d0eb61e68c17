"""The click command line: a thin shell over drift_decider.api (presentation only)."""

from drift_decider.cli.main import main

__all__ = ["main"]
