"""Presentation of recorded checks as a self-contained HTML report (no MLflow here: plain rows in, text out)."""
