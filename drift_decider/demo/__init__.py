"""Demo and fixtures apart from the core: the demo job, scenarios with a known right action, and the
shipped MovieLens data they use (no network: the data ships in examples/)."""
