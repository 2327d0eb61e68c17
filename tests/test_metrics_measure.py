"""measure(): the report's shape, determinism, sample bookkeeping and input errors."""

from __future__ import annotations

import numpy as np
import pytest

from drift_decider.measure.metric_names import CATALOG
from drift_decider.errors import InputError
from drift_decider.measure.distribution import MeasureOptions, measure
from drift_decider.measure.profile import EmbeddingProfile

DRIFT_NAMES = [s.name for s in CATALOG if s.family == "drift"]


def _pair(n: int = 400, d: int = 8, shift: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((n, d)).astype(np.float32) + 2.0
    cur = rng.standard_normal((n, d)).astype(np.float32) + 2.0 + shift
    return ref, cur


def test_report_has_every_catalogue_drift_metric():
    ref, cur = _pair()
    report = measure(ref, cur, seed=1)
    assert [r.name for r in report.results] == DRIFT_NAMES
    tests = {s.name for s in CATALOG if s.family == "drift" and s.test}
    for r in report.results:
        assert r.status == "ok", r
        assert (r.p_value is not None) == (r.name in tests)
    assert report.inputs["n_reference"] == 400 and report.inputs["dim"] == 8
    assert report.inputs["seed"] == 1
    assert report.inputs["mmd_rows_per_side"] == [400, 400]


def test_same_seed_same_numbers_other_seed_other_permutations():
    ref, cur = _pair(shift=0.05)
    a, b = measure(ref, cur, seed=4), measure(ref, cur, seed=4)
    assert a.to_dict() == b.to_dict()
    c = measure(ref, cur, seed=5)
    assert c.values()["mmd2.p_value"] != a.values()["mmd2.p_value"] or \
        c.values()["domain_classifier.auc"] != a.values()["domain_classifier.auc"]


def test_clear_shift_is_detected_by_every_test():
    ref, cur = _pair(shift=0.5)
    values = measure(ref, cur, seed=0).values()
    for name in ("mmd2", "domain_classifier.auc", "pc_drift_share"):
        assert values[f"{name}.p_value"] < 0.01, name
    assert values["mean_shift.euclidean"] > 0.3


def test_profile_reference_gives_same_as_array_when_sample_holds_all_rows():
    ref, cur = _pair()
    profile = EmbeddingProfile.from_array(ref, seed=0)
    assert measure(profile, cur, seed=0).to_dict() == measure(ref, cur, seed=0).to_dict()


def test_sample_caps_are_reported():
    ref, cur = _pair(n=600)
    opts = MeasureOptions(sample_rows=300, mmd_rows=100, classifier_rows=150)
    report = measure(ref, cur, options=opts)
    assert report.inputs["reference_sample_rows"] == 300
    assert report.inputs["mmd_rows_per_side"] == [100, 100]
    by_name = {r.name: r for r in report.results}
    assert by_name["mmd2"].detail["rows_per_side"] == [100, 100]
    assert by_name["domain_classifier.auc"].detail["rows_per_side"] == [150, 150]
    assert by_name["norm_ks"].detail["rows_per_side"] == [300, 300]


def test_too_few_rows_says_insufficient_data():
    ref, cur = _pair(n=6)
    report = measure(ref, cur)
    missing = report.insufficient()
    for name in ("mmd2", "domain_classifier.auc", "pc_drift_share", "norm_ks", "pca_recon_ratio"):
        assert name in missing and missing[name]
    assert "mmd2" not in report.values()


@pytest.mark.parametrize("bad, match", [
    (np.zeros((10, 3), np.float32), "dimension mismatch"),
    (np.zeros((0, 8), np.float32), "no rows"),
    (np.zeros(8, np.float32), "2-D"),
])
def test_bad_current_is_an_input_error(bad, match):
    ref, _ = _pair()
    with pytest.raises(InputError, match=match):
        measure(ref, bad)


def test_bad_seed_and_options_are_input_errors():
    ref, cur = _pair()
    with pytest.raises(InputError, match="seed"):
        measure(ref, cur, seed=-1)
    with pytest.raises(InputError, match="mmd_permutations"):
        MeasureOptions(mmd_permutations=0)


def test_progress_bar_only_when_asked(capsys):
    ref, cur = _pair()
    measure(ref, cur, options=MeasureOptions(chunk_rows=100))
    assert capsys.readouterr().err == ""
    measure(ref, cur, options=MeasureOptions(chunk_rows=100), progress=True)
    err = capsys.readouterr().err
    assert "profiling reference" in err and "profiling current" in err


def test_measure_table_gives_a_verdict_per_test_at_alpha(tmp_path) -> None:
    from click.testing import CliRunner

    from drift_decider.cli.main import cli

    rng = np.random.default_rng(0)
    np.save(tmp_path / "ref.npy", rng.standard_normal((600, 8)).astype(np.float32))
    np.save(tmp_path / "cur.npy", (rng.standard_normal((600, 8)) + 0.5).astype(np.float32))
    out = CliRunner().invoke(cli, ["measure", "--reference", str(tmp_path / "ref.npy"), "--current",
                                   str(tmp_path / "cur.npy"), "--alpha", "0.01"]).output
    lines = {parts[0]: line.rstrip() for line in out.splitlines() if (parts := line.split())}
    assert "verdict at alpha=0.01" in out and " ok" not in out
    assert lines["mmd2"].endswith(" drift") and lines["norm_ratio"].endswith(" -")
