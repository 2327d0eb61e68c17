"""Domain classifier: can a logistic regression tell current rows from reference rows?

Scores are out-of-fold (stratified K-fold), so no row is scored by a model that saw it. The AUC
equals U/(mn) of the Mann-Whitney test on those scores, whose one-sided p-value is reported.
Out-of-fold scores are not exactly independent across folds; calibration is checked empirically
(tests/test_calibration.py, benchmarks/calibration.py).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import mannwhitneyu
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from drift_decider.metrics.result import MetricResult


def domain_classifier(x: np.ndarray, y: np.ndarray, *, folds: int, rng: np.random.Generator) -> MetricResult:
    m, n = len(x), len(y)
    if min(m, n) < folds:
        return MetricResult.insufficient("domain_classifier.auc",
                                         f"needs at least {folds} rows per side for {folds}-fold CV")
    z = np.concatenate([x, y]).astype(np.float64)
    z -= z.mean(axis=0)               # label-blind standardisation of the pooled rows
    scale = z.std(axis=0)
    z /= np.where(scale > 0, scale, 1.0)
    labels = np.r_[np.zeros(m, dtype=int), np.ones(n, dtype=int)]
    scores = np.empty(m + n)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(rng.integers(2**31)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for train, test in splitter.split(z, labels):
            model = LogisticRegression(C=1.0, max_iter=200).fit(z[train], labels[train])
            scores[test] = model.decision_function(z[test])
    auc = float(roc_auc_score(labels, scores))
    p_value = float(mannwhitneyu(scores[m:], scores[:m], alternative="greater").pvalue)
    return MetricResult("domain_classifier.auc", auc, p_value,
                        detail={"rows_per_side": [m, n], "folds": folds, "model": "logistic regression, C=1",
                                "p_value_test": "one-sided Mann-Whitney U on out-of-fold scores"})
