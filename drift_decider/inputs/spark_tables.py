"""Spark sessions and tables for `--engine spark`: pyspark is imported here, only when asked for."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from drift_decider.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DEFAULT_MASTER = "local[*]"


def spark_session(master: str = DEFAULT_MASTER) -> "SparkSession":
    """The active session (spark-submit, Databricks), else a new one on ``master``. Local workers run
    this interpreter, which has drift-decider installed (the default ``python3`` may not)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError("--engine spark needs pyspark: pip install 'drift-decider[spark]'") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    return (SparkSession.builder.master(master).appName("drift-decider")
            .config("spark.ui.showConsoleProgress", "false").getOrCreate())


def read_table(spark: "SparkSession", path: str | Path) -> "DataFrame":
    """A Parquet file or directory (or a Delta table, where the cluster has Delta) as a DataFrame."""
    text = str(path)
    if "://" not in text and not Path(text).exists():
        raise InputError(f"{path}: not found")
    if "://" not in text and (Path(text) / "_delta_log").is_dir():
        return spark.read.format("delta").load(text)
    return spark.read.parquet(text)
