"""The metric code reads the catalogue of metric names: a MetricResult must be a catalogue row (or a
noise companion of one), and only the catalogue's tests carry p-values."""

from __future__ import annotations

import pytest

from drift_decider.measure.metric_names import CATALOG, metric_keys
from drift_decider.measure.metrics.result import MetricResult


def test_every_catalogue_row_and_companion_is_a_result_name() -> None:
    for key in metric_keys() - {f"{spec.name}.p_value" for spec in CATALOG}:
        assert MetricResult(key, 0.5).flat() == {key: 0.5}


def test_a_name_outside_the_catalogue_is_refused_where_it_is_made() -> None:
    with pytest.raises(ValueError, match="'knn_jacard' is not in the catalogue"):
        MetricResult("knn_jacard", 0.3)
    with pytest.raises(ValueError, match="not in the catalogue"):
        MetricResult.insufficient("index.recal_at_k", "too few rows")


def test_only_tests_carry_p_values() -> None:
    assert MetricResult("mmd2", 0.01, p_value=0.2).flat() == {"mmd2": 0.01, "mmd2.p_value": 0.2}
    with pytest.raises(ValueError, match="'knn_jaccard' is not a test"):
        MetricResult("knn_jaccard", 0.3, p_value=0.5)
