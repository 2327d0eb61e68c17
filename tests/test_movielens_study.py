"""The MovieLens study's parts on the real data, and the drop rule's false-alarm rate."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

STUDY_DIR = Path(__file__).resolve().parents[1] / "examples" / "movielens"
sys.path.insert(0, str(STUDY_DIR))

import analysis  # noqa: E402
from data_windows import Requests, build_requests, equal_count_windows, in_window  # noqa: E402
from recommender import fold_in, recall_at_k, train  # noqa: E402
from shadow import current_catalog  # noqa: E402

from drift_decider.demo.movielens import factorize, load_ratings  # noqa: E402
from drift_decider.measure.metrics.structure import procrustes_fit  # noqa: E402


@pytest.fixture(scope="module")
def ratings():
    return load_ratings()


@pytest.fixture(scope="module")
def requests(ratings):
    return build_requests(ratings)


def test_windows_partition_the_log_into_equal_counts(ratings):
    windows = equal_count_windows(ratings, 24)
    counts = np.array([len(ratings.between(w.start, w.end).user) for w in windows])
    assert counts.sum() == len(ratings.user)
    assert all(a.end == b.start for a, b in zip(windows, windows[1:]))
    # boundaries only move to the next distinct second, so counts stay close to N / 24
    assert np.abs(counts - len(ratings.user) / 24).max() < 0.05 * len(ratings.user) / 24


def test_requests_look_only_backwards(ratings, requests):
    assert len(requests) > 5000
    for i in np.random.default_rng(0).choice(len(requests), 300, replace=False):
        ctx, tgt, seen = requests.context[i], requests.targets[i], requests.seen[i]
        assert set(ratings.user[np.concatenate([ctx, tgt, seen])]) == {requests.user[i]}
        assert ratings.timestamp[ctx].max() <= requests.time[i] <= ratings.timestamp[tgt].min()
        assert set(ctx) <= set(seen) and not set(tgt) & set(seen)


def test_fold_in_of_a_whole_training_history_is_the_users_svd_row(ratings):
    """u = x W S^-1 is SVD's own map from a rating row to a user vector: it must give factorize's users."""
    windows = equal_count_windows(ratings, 24)
    cutoff = windows[6].start
    model = train(ratings, cutoff, seed=0)
    factors = factorize(ratings.before(cutoff), seed=0)
    users = factors.user_ids[:25]
    history = [np.flatnonzero((ratings.user == u) & (ratings.timestamp < cutoff)) for u in users]
    whole = Requests(users, np.full(len(users), cutoff), history, history, history)
    vectors, mask = fold_in(model, ratings, whole)
    assert mask.all()
    np.testing.assert_allclose(vectors, factors.user_vectors[:25], rtol=1e-3, atol=1e-4)


def test_folded_in_queries_beat_random_queries(ratings, requests):
    windows = equal_count_windows(ratings, 24)
    model = train(ratings, windows[6].start, seed=0)
    served = in_window(requests, windows[6])
    queries, mask = fold_in(model, ratings, served)
    served = served.take(mask)
    real = np.nanmean(recall_at_k(model, ratings, served, queries))
    rng = np.random.default_rng(1)
    noise = []
    for _ in range(19):
        random_queries = rng.standard_normal(queries.shape).astype(np.float32)
        noise.append(np.nanmean(recall_at_k(model, ratings, served, random_queries)))
    # a rank test: if fold-in were no better than random directions, P(real beats all 19) = 1/20
    assert real > max(noise)


def test_drop_rule_false_alarm_rate_matches_its_z_level():
    """Under no change the rule flags a window with probability ~ P(Z > 2) = 2.3%."""
    rng = np.random.default_rng(7)
    flags, trials = 0, 2000
    for _ in range(trials):
        points = [analysis.quality_point(w, rng.binomial(1, 0.04, 350).astype(float)) for w in range(3)]
        base = analysis.baseline_from_points(points)
        flags += analysis.first_drop(points, base) is not None
    rate = flags / trials
    assert 0.010 < rate < 0.040


def test_drop_rule_power_on_a_halved_recall_matches_normal_theory():
    rng = np.random.default_rng(8)
    before, after, n, trials = 0.08, 0.04, 400, 400
    found = 0
    for _ in range(trials):
        rates = [before, before, after]
        points = [analysis.quality_point(w, rng.binomial(1, r, n).astype(float)) for w, r in enumerate(rates)]
        found += analysis.first_drop(points, analysis.baseline_from_points(points)) == 2
    se = np.hypot(np.sqrt(before * (1 - before) / (2 * n)), np.sqrt(after * (1 - after) / n))
    expected = stats.norm.sf(analysis.DROP_Z - (before - after) / se)
    assert abs(found / trials - expected) < 0.07


def test_correlations_rank_a_monotone_metric_first():
    loss = list(np.linspace(0, 1, 12))
    rows = [{"a": float(x ** 3), "b": float(np.sin(7 * x)), "b.p_value": 0.5} for x in loss]
    result = analysis.correlations(rows, loss)
    assert result[0].metric == "a" and result[0].spearman == pytest.approx(1.0)
    assert [c.metric for c in result] == ["a", "b"]


def test_procrustes_fit_recovers_a_known_rotation_and_scale():
    rng = np.random.default_rng(3)
    source = rng.standard_normal((200, 8))
    rotation, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    found, scale = procrustes_fit(source, 2.5 * source @ rotation)
    np.testing.assert_allclose(found, rotation, atol=1e-8)
    assert scale == pytest.approx(2.5)


def test_catalogue_refitted_on_the_training_data_is_the_served_model(ratings):
    windows = equal_count_windows(ratings, 24)
    model = train(ratings, windows[6].start, seed=0)
    catalog = current_catalog(ratings, model, windows[6].start, seed=0)
    np.testing.assert_array_equal(catalog.ids, model.item_ids)
    np.testing.assert_allclose(catalog.vectors, model.item_vectors, atol=1e-4)


def test_catalogue_later_holds_new_movies_the_model_cannot_embed(ratings):
    windows = equal_count_windows(ratings, 24)
    model = train(ratings, windows[6].start, seed=0)
    catalog = current_catalog(ratings, model, windows[9].end, seed=0)
    new = model.known(catalog.ids) < 0
    assert new.sum() == len(np.setdiff1d(np.unique(ratings.before(windows[9].end).item), model.item_ids)) > 0


def test_partial_correlation_removes_a_shared_driver():
    """x and y both follow z: high rank correlation, most of it gone once z is held fixed.

    (Partialling ranks linearly leaves a small positive bias, so "most", not "all".)"""
    rng = np.random.default_rng(11)
    pooled, partial = [], []
    for _ in range(300):
        z = rng.standard_normal(40)
        x, y = z + 0.3 * rng.standard_normal(40), z + 0.3 * rng.standard_normal(40)
        pooled.append(stats.spearmanr(x, y)[0])
        partial.append(analysis.partial_spearman(x, y, z))
    assert np.mean(pooled) > 0.7
    assert abs(np.mean(partial)) < 0.2 * np.mean(pooled)


def test_partial_correlation_keeps_a_direct_link():
    rng = np.random.default_rng(12)
    z = rng.standard_normal(200)
    x = rng.standard_normal(200)
    y = x + z + 0.3 * rng.standard_normal(200)
    assert analysis.partial_spearman(x, y, z) > 0.8


def test_reduced_study_end_to_end_records_every_decision_in_mlflow(tmp_path, monkeypatch):
    """One version, two served windows: registered, referenced, checked, measured, plotted."""
    import json

    import study
    from mlflow import MlflowClient

    from drift_decider.policy import ACTIONS
    from drift_decider.tracking import tags

    monkeypatch.chdir(tmp_path)
    workdir = tmp_path / "study"
    config = study.StudyConfig(version_starts=(6,), replay_windows=2)
    summary = study.run_study(workdir, config, log=lambda _: None)
    windows = json.loads((workdir / "results.json").read_text())["windows"]
    assert [w["action"] == study.VALIDATION for w in windows] == [True, True, False, False]
    served = windows[2:]
    assert all(w["action"] in ACTIONS and w["run_id"] for w in served)
    assert all(0.0 <= w["recall_mean"] <= 1.0 and w["n_evaluated"] > 100 for w in windows)

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("movielens-svd", "1")
    assert version.tags[tags.REFERENCE_SHA256]
    for w in served:
        run = client.get_run(w["run_id"])
        assert run.data.tags[tags.DECISION] == w["action"]
        assert run.data.tags[tags.WINDOW_ID] == f"w{w['window']:02d}"
        assert {"knn_jaccard", "index.coverage"} <= set(run.data.metrics)
    assert version.tags[tags.DECISION] == served[-1]["action"]
    assert (workdir / "movielens-study.png").stat().st_size > 10_000
    assert summary["versions"]["1"]["served_windows"] == 2
    with pytest.raises(SystemExit):
        study.run_study(workdir, study.StudyConfig(version_starts=(6,), replay_windows=1), log=lambda _: None)


def test_a_file_as_workdir_is_refused_before_any_work(tmp_path):
    import study

    target = tmp_path / "not-a-folder"
    target.write_text("x")
    with pytest.raises(SystemExit, match="is a file"):
        study.run_study(target, log=lambda _: None)
