"""Registry automation: `drift-decider serve` receives MLflow's webhooks and runs the configured jobs
(set a reference, gate a promotion, check a window) through ``drift_decider.api``, exactly as the CLI
would; a reconcile pass catches up what deliveries missed. A shell above the API, like the CLI."""
