"""Calibration under no drift: every p-value of measure() rejects about alpha of the time.

Two random halves of the same real embeddings (MovieLens item factors), many seeded trials; the
number of rejections at alpha = 0.05 must lie in the central 99.9% of Binomial(trials, 0.05).
The full table (500 trials, n = 50, 500, 5,000) is benchmarks/calibration.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from drift_decider.demo.movielens import item_factors
from drift_decider.measure.distribution import TESTS, MeasureOptions, measure
from drift_decider.measure.profile import EmbeddingProfile

ALPHA = 0.05
TRIALS = 200


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    return item_factors()


def _assert_calibrated(rejections: dict[str, int]) -> None:
    low, high = binom.ppf(0.0005, TRIALS, ALPHA), binom.isf(0.0005, TRIALS, ALPHA)
    for name, count in rejections.items():
        assert low <= count <= high, f"{name}: {count}/{TRIALS} rejections, expected in [{low}, {high}]"


def test_false_positive_rate_arrays(pool):
    opts = MeasureOptions(mmd_permutations=100)
    rejections = dict.fromkeys(TESTS, 0)
    for trial in range(TRIALS):
        idx = np.random.default_rng([1, trial]).permutation(len(pool))[:100]
        values = measure(pool[idx[:50]], pool[idx[50:]], seed=trial, options=opts).values()
        for name in TESTS:
            rejections[name] += values[f"{name}.p_value"] <= ALPHA
    _assert_calibrated(rejections)


def test_false_positive_rate_with_a_sampled_reference_profile(pool):
    """The reference is known only through a 40-row sample of its 400 rows (and the current through
    40 of its 300): the tests compare the two uniform samples, so their p-values stay valid."""
    opts = MeasureOptions(mmd_permutations=100, sample_rows=40)
    rejections = dict.fromkeys(TESTS, 0)
    for trial in range(TRIALS):
        idx = np.random.default_rng([2, trial]).permutation(len(pool))[:700]
        profile = EmbeddingProfile.from_array(pool[idx[:400]], seed=trial, sample_rows=40, chunk_rows=128)
        report = measure(profile, pool[idx[400:]], seed=trial, options=opts)
        assert report.inputs["reference_sample_rows"] == 40 and report.inputs["n_reference"] == 400
        values = report.values()
        for name in TESTS:
            rejections[name] += values[f"{name}.p_value"] <= ALPHA
    _assert_calibrated(rejections)
