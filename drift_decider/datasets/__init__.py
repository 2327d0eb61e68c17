"""Real data for examples, tests and benchmarks (no network: the data ships in examples/)."""
