"""One check's evidence: every metric of the check, each noise-sensitive one beside the version's own
refit noise (its noise floor). Never imports mlflow."""
