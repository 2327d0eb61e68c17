"""Measurement: bounded-memory profiles and sketches of embeddings, the drift statistics between two
sets, and the catalogue of metric names they produce. Never imports mlflow."""
