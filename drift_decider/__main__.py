"""`python -m drift_decider` runs the CLI (used by tests that need a separate process)."""

from drift_decider.cli.main import main

main()
