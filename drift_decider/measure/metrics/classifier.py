"""Domain classifier: can a logistic regression tell current rows from reference rows?

The model is fitted on a random half of each side and scores the other half; the AUC on those
held-out rows equals U/(mn) of a Mann-Whitney test whose one-sided p-value is exact, because the
held-out rows never influenced the model. Pooling out-of-fold scores of a K-fold cross-validation
is not valid: each fold's model has learnt the labels of the other folds' rows, and the measured
false-positive rate of Mann-Whitney on pooled 5-fold scores was 0.10-0.15 at alpha 0.05 (see
docs/metrics.md).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import mannwhitneyu
from sklearn.linear_model import LogisticRegression

from drift_decider.measure.metrics.result import MetricResult

MIN_TEST_ROWS = 5   # held-out rows per side below which the test has no resolution


def domain_classifier(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator) -> MetricResult:
    m, n = len(x), len(y)
    if min(m, n) < 2 * MIN_TEST_ROWS:
        return MetricResult.insufficient("domain_classifier.auc",
                                         f"needs at least {2 * MIN_TEST_ROWS} rows per side")
    z = np.concatenate([x, y]).astype(np.float64)
    z -= z.mean(axis=0)               # label-blind standardisation of the pooled rows
    scale = z.std(axis=0)
    z /= np.where(scale > 0, scale, 1.0)
    labels = np.r_[np.zeros(m, dtype=int), np.ones(n, dtype=int)]
    ref_order, cur_order = rng.permutation(m), m + rng.permutation(n)
    train = np.r_[ref_order[: m // 2], cur_order[: n // 2]]
    test_ref, test_cur = ref_order[m // 2:], cur_order[n // 2:]
    model = LogisticRegression(C=1.0, solver="liblinear").fit(z[train], labels[train])
    scores_ref, scores_cur = model.decision_function(z[test_ref]), model.decision_function(z[test_cur])
    result = mannwhitneyu(scores_cur, scores_ref, alternative="greater")
    auc = float(result.statistic) / (len(test_ref) * len(test_cur))
    return MetricResult("domain_classifier.auc", auc, float(result.pvalue),
                        detail={"rows_per_side": [m, n], "train_rows": [m // 2, n // 2],
                                "test_rows": [len(test_ref), len(test_cur)],
                                "model": "logistic regression, C=1, standardised features",
                                "p_value_test": "one-sided Mann-Whitney U on held-out scores"})
