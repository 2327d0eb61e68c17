"""MLflow as the system of record. The only layer that imports mlflow."""
