"""EmbeddingProfile: exact moments, exact mergeable sample, safe persistence, bounded reading."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drift_decider.errors import InputError
from drift_decider.measure.profile import EmbeddingProfile


def _data(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) * np.linspace(0.5, 2.0, d) + 1.0 + shift).astype(np.float32)


def test_moments_match_numpy_on_all_rows():
    x = _data(5_000, 12, 0)
    p = EmbeddingProfile.from_array(x, seed=3, chunk_rows=700, sample_rows=100)
    x64 = x.astype(np.float64)
    assert p.count == 5_000 and p.dim == 12
    np.testing.assert_allclose(p.mean, x64.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(p.covariance, np.cov(x64, rowvar=False, bias=True), rtol=1e-4, atol=1e-6)
    assert p.mean_norm == pytest.approx(np.linalg.norm(x64, axis=1).mean(), rel=1e-9)
    halves = [p.half(0), p.half(1)]
    assert halves[0][0] + halves[1][0] == 5_000 and min(halves[0][0], halves[1][0]) > 2_300


def test_sample_is_uniform_without_replacement():
    x = np.arange(20_000, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    p = EmbeddingProfile.from_array(x, seed=11, chunk_rows=3_000, sample_rows=2_000)
    picked = p.sample[:, 0]
    assert len(np.unique(picked)) == 2_000
    # each row is kept with probability 0.1: the deciles of the row index must hold ~200 each
    counts = np.bincount((picked // 2_000).astype(int), minlength=10)
    expected = 200
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9  # chi-square(9) 0.999 quantile


@pytest.mark.parametrize("split", [1, 1_234, 4_999])
def test_merge_equals_profile_of_union(split):
    x = _data(5_000, 8, 1)
    a, b = x[:split], x[split:]
    union = EmbeddingProfile.from_array(x, seed=5, chunk_rows=1_000, sample_rows=300)
    # the parts share the union's sketch spec, as every set compared with one reference does
    kwargs = dict(seed=5, chunk_rows=611, sample_rows=300, sketch_spec=union.sketch.spec)
    merged = EmbeddingProfile.from_array(a, **kwargs).merge(
        EmbeddingProfile.from_array(b, row_offset=split, **kwargs))
    assert merged.count == union.count
    np.testing.assert_array_equal(merged.half_counts, union.half_counts)
    np.testing.assert_allclose(merged.half_means, union.half_means, rtol=1e-9, atol=1e-12)
    # float32 products per chunk: agreement to float32 precision of the matrix's scale
    np.testing.assert_allclose(merged.half_m2, union.half_m2, rtol=0, atol=1e-6 * np.abs(union.half_m2).max())
    np.testing.assert_array_equal(merged.sample_keys, union.sample_keys)
    np.testing.assert_array_equal(merged.sample, union.sample)
    assert merged.norm_sum == pytest.approx(union.norm_sum, rel=1e-12)
    sa, su = merged.sketch, union.sketch
    assert sa.count == su.count == 5_000
    # features come from float32 products: equal to float32 precision of their scale
    np.testing.assert_allclose(sa.feature_mean, su.feature_mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(sa.feature_m2, su.feature_m2, rtol=0, atol=1e-6 * np.abs(su.feature_m2).max())
    np.testing.assert_array_equal(sa.histograms, su.histograms)
    np.testing.assert_allclose(sa.tail_sums, su.tail_sums, rtol=1e-12, atol=1e-9)


def test_sample_of_repeated_rows_is_a_row_sample_not_a_value_sample():
    """Each of 10 values repeated 100 times: a uniform row sample of 100 holds ~10 copies of each
    value; a sample keyed by content would hold all 100 copies of one value or none."""
    x = np.repeat(np.arange(10, dtype=np.float32), 100)[:, None] * np.ones((1, 4), np.float32)
    p = EmbeddingProfile.from_array(x, seed=3, sample_rows=100, chunk_rows=64)
    copies = np.bincount(p.sample[:, 0].astype(int), minlength=10)
    assert copies.sum() == 100 and (copies >= 1).all() and copies.max() <= 30


def test_merge_refuses_incompatible_profiles():
    x = _data(100, 4, 2)
    with pytest.raises(InputError, match="cannot be merged"):
        EmbeddingProfile.from_array(x, seed=1).merge(EmbeddingProfile.from_array(x, seed=2))


def test_save_load_roundtrip_without_pickle(tmp_path):
    p = EmbeddingProfile.from_array(_data(1_000, 6, 3), seed=9, sample_rows=50)
    path = p.save(tmp_path / "ref.profile")
    q = EmbeddingProfile.load(path)
    assert (q.count, q.dim, q.seed, q.sample_rows) == (p.count, p.dim, p.seed, p.sample_rows)
    np.testing.assert_array_equal(q.half_m2, p.half_m2)
    np.testing.assert_array_equal(q.sample, p.sample)
    assert q.sketch.spec == p.sketch.spec and q.sketch.count == p.sketch.count
    np.testing.assert_array_equal(q.sketch.feature_m2, p.sketch.feature_m2)
    np.testing.assert_array_equal(q.sketch.histograms, p.sketch.histograms)
    with np.load(path, allow_pickle=False) as data:  # readable by a plain, pickle-free reader
        assert set(data.files) >= {"header", "sample"}


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(InputError, match="not a drift-decider profile"):
        EmbeddingProfile.load(bad)
    with pytest.raises(InputError, match="not found"):
        EmbeddingProfile.load(tmp_path / "missing.npz")
    (tmp_path / "junk").write_bytes(b"not a zip")
    with pytest.raises(InputError):
        EmbeddingProfile.load(tmp_path / "junk")


def test_bad_input_is_an_input_error():
    with pytest.raises(InputError, match="2-D"):
        EmbeddingProfile.from_array(np.zeros(5), seed=0)
    x = _data(50, 3, 4)
    x[17, 1] = np.nan
    with pytest.raises(InputError, match="row 17"):
        EmbeddingProfile.from_array(x, seed=0, chunk_rows=8)


def test_memmap_input_gives_the_same_profile(tmp_path):
    x = _data(3_000, 5, 6)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    a = EmbeddingProfile.from_array(mapped, seed=1, chunk_rows=512)
    b = EmbeddingProfile.from_array(x, seed=1, chunk_rows=512)
    np.testing.assert_array_equal(a.half_m2, b.half_m2)
    np.testing.assert_array_equal(a.sample, b.sample)


def test_worker_count_does_not_change_the_profile():
    x = _data(4_000, 6, 7)
    one = EmbeddingProfile.from_array(x, seed=2, chunk_rows=300, sample_rows=200, workers=1)
    three = EmbeddingProfile.from_array(x, seed=2, chunk_rows=300, sample_rows=200, workers=3)
    np.testing.assert_array_equal(one.half_m2, three.half_m2)
    np.testing.assert_array_equal(one.sample, three.sample)
    assert one.norm_sum == three.norm_sum
    np.testing.assert_array_equal(one.sketch.feature_m2, three.sketch.feature_m2)
    np.testing.assert_array_equal(one.sketch.histograms, three.sketch.histograms)


def test_format_1_profile_loads_without_sketches(tmp_path):
    """A profile saved before sketches existed still loads; merging it with a sketched one is refused."""
    p = EmbeddingProfile.from_array(_data(500, 4, 8), seed=1, sample_rows=50, sketch_spec=None)
    header = {"format": "drift-decider.profile", "version": 1, "count": p.count, "dim": p.dim, "seed": p.seed,
              "sample_rows": p.sample_rows, "norm_sum": p.norm_sum}
    path = tmp_path / "old.profile"
    with path.open("wb") as fh:
        np.savez(fh, header=np.array(json.dumps(header)), half_counts=p.half_counts, half_means=p.half_means,
                 half_m2=p.half_m2, sample=p.sample, sample_keys=p.sample_keys)
    old = EmbeddingProfile.load(path)
    assert old.sketch is None and old.count == 500
    with pytest.raises(InputError, match="format-1"):
        old.merge(EmbeddingProfile.from_array(_data(10, 4, 9), seed=1, sample_rows=50))


def test_load_rejects_a_sketch_that_does_not_match_its_header(tmp_path):
    p = EmbeddingProfile.from_array(_data(500, 4, 8), seed=1, sample_rows=50)
    path = p.save(tmp_path / "p.profile")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["sketch_histograms"] = arrays["sketch_histograms"][:, :-1]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match="not a drift-decider profile"):
        EmbeddingProfile.load(tmp_path / "bad.npz")


def test_rows_without_ids_keep_the_keys_of_their_row_numbers():
    """A plain array's rows are keyed by row number, as before ids were used (values of the previous
    implementation, _RowKeys(seed=7)), so single-process profiles of .npy files did not change."""
    from drift_decider.measure.row_keys import row_keys

    assert row_keys(7, np.arange(3)).tolist() == [14747125356601916714, 6806217478837400258, 13166369281174977629]
    x = _data(3_000, 5, 4)
    by_number = EmbeddingProfile.from_array(x, seed=7, sample_rows=200)
    by_id = EmbeddingProfile.from_array(x, seed=7, sample_rows=200, ids=np.arange(3_000))
    np.testing.assert_array_equal(by_number.sample_keys, by_id.sample_keys)
    assert by_number.sketch.spec == by_id.sketch.spec


@pytest.mark.parametrize("ids", [np.arange(10_000, 14_000) * 3, np.array([f"item-{i}" for i in range(4_000)])])
def test_rows_keyed_by_id_give_one_profile_in_any_order_and_split(ids):
    x = _data(4_000, 6, 5)
    whole = EmbeddingProfile.from_array(x, seed=2, sample_rows=1_500, ids=ids)
    order = np.random.default_rng(0).permutation(len(x))
    shuffled = EmbeddingProfile.from_array(x[order], seed=2, sample_rows=1_500, ids=ids[order], chunk_rows=333)
    parts = [EmbeddingProfile.from_array(x[order][rows], seed=2, sample_rows=1_500, ids=ids[order][rows],
                                         sketch_spec=whole.sketch.spec)
             for rows in (slice(0, 1_111), slice(1_111, None))]
    for p in (shuffled, parts[1].merge(parts[0])):
        np.testing.assert_array_equal(p.half_counts, whole.half_counts)
        np.testing.assert_array_equal(p.sample_keys, whole.sample_keys)
        np.testing.assert_array_equal(p.sample, whole.sample)
        np.testing.assert_allclose(p.half_means, whole.half_means, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(p.sketch.histograms, whole.sketch.histograms)
    assert shuffled.sketch.spec == whole.sketch.spec


def test_the_sketch_pilot_is_the_first_thousand_rows_of_the_sample():
    from drift_decider.measure.sketch import SketchSpec

    x = _data(5_000, 6, 6)
    p = EmbeddingProfile.from_array(x, seed=3, sample_rows=1_200, ids=np.arange(5_000) + 77)
    assert p.sketch.spec == SketchSpec.from_rows(p.sample[:1_000], seed=3)


def test_sample_up_to_keeps_only_rows_keyed_at_most_the_limit():
    p = EmbeddingProfile.from_array(_data(1_000, 4, 7), seed=1, sample_rows=300)
    cut = p.sample_up_to(int(p.sample_keys[99]))
    np.testing.assert_array_equal(cut.sample_keys, p.sample_keys[:100])
    np.testing.assert_array_equal(cut.sample, p.sample[:100])
    assert cut.count == p.count
