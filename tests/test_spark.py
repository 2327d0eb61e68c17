"""The Spark engine on a real local[2] session: the profile and every metric equal the single-process
path on the same rows and ids, and so does the decision, however the rows are partitioned; bad rows
fail the job naming their partition, row and id; partials ship only what can be in the sample."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drift_decider.errors import InputError
from drift_decider.measure.distribution import MeasureOptions, measure
from drift_decider.measure.profile import EmbeddingProfile
from drift_decider.policy import PolicyState, evaluate, load_policy
from support import check_args, run_cli

if os.environ.get("CI") != "true":
    pytest.importorskip("pyspark", reason="the Spark engine's extra is not installed: pip install '.[spark]'")

from drift_decider.measure.spark_profile import measure_dataframes, partials_frame, profile_dataframe  # noqa: E402

POLICY = Path(__file__).resolve().parents[1] / "drift_decider" / "policies" / "recommender-default.yaml"
OPTIONS = MeasureOptions(sample_rows=1_500, mmd_rows=400, mmd_permutations=50, classifier_rows=400)
N, DIM = 6_000, 12


@pytest.fixture(scope="session")
def spark():
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("drift-decider-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1000").getOrCreate())
    yield session
    session.stop()


def _side(seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, DIM)) * np.linspace(0.5, 2.0, DIM) + shift).astype(np.float32)
    ids = np.array([f"item-{i}" for i in rng.permutation(2 * N)[:N]])
    return x, ids


def _frame(spark, x: np.ndarray, ids: np.ndarray, tmp_path: Path, name: str):
    path = tmp_path / f"{name}.parquet"
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1]).cast(pa.list_(pa.float32()))
    pq.write_table(pa.table({"item_id": ids, "embedding": vectors}), path)
    return spark.read.parquet(str(path))


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spark")


@pytest.fixture(scope="module")
def sides(spark, tables):
    tmp = tables
    (x, ids), (y, cur_ids) = _side(1, 0.0), _side(2, 0.15)
    return (x, ids, _frame(spark, x, ids, tmp, "reference")), (y, cur_ids, _frame(spark, y, cur_ids, tmp, "current"))


@pytest.fixture(scope="module")
def single_process(sides):
    """The single-process profile of the reference and measure() report, to compare with."""
    (x, ids, _), (y, cur_ids, _) = sides
    return (EmbeddingProfile.from_array(x, seed=4, ids=ids, sample_rows=OPTIONS.sample_rows),
            measure(x, y, seed=4, options=OPTIONS, reference_ids=ids, current_ids=cur_ids))


@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_same_profile_metrics_and_decision_however_partitioned(sides, single_process, partitions):
    (_, _, ref_df), (_, _, cur_df) = sides
    local_ref, single = single_process
    ref = profile_dataframe(ref_df.repartition(partitions), seed=4, sample_rows=OPTIONS.sample_rows)
    np.testing.assert_array_equal(ref.half_counts, local_ref.half_counts)
    np.testing.assert_allclose(ref.half_means, local_ref.half_means, rtol=1e-6, atol=1e-9)
    # float32 products per chunk (Arrow batches here, 16,384-row chunks there): equal to 1e-6 of the
    # matrix's scale, as the single-process path is with another chunk size (test_profile)
    np.testing.assert_allclose(ref.half_m2, local_ref.half_m2, rtol=0, atol=1e-6 * np.abs(local_ref.half_m2).max())
    assert ref.norm_sum == pytest.approx(local_ref.norm_sum, rel=1e-9)
    np.testing.assert_array_equal(ref.sample_keys, local_ref.sample_keys)
    np.testing.assert_array_equal(ref.sample, local_ref.sample)
    assert ref.sketch.spec == local_ref.sketch.spec
    np.testing.assert_array_equal(ref.sketch.histograms, local_ref.sketch.histograms)

    report = measure_dataframes(ref, cur_df.repartition(partitions), seed=4, options=OPTIONS)
    assert report.inputs == single.inputs
    values, expected = report.values(), single.values()
    assert values.keys() == expected.keys()
    for key, value in expected.items():
        assert values[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key
    policy, now = load_policy(POLICY), datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert (evaluate(policy, values, PolicyState(), now).to_dict()["action"]
            == evaluate(policy, expected, PolicyState(), now).to_dict()["action"])


def test_the_api_measures_parquet_tables_as_measure_files_does(sides, tables):
    from drift_decider import api

    local = api.measure_files(tables / "reference.parquet", tables / "current.parquet", seed=2)
    on_spark = api.measure_tables(tables / "reference.parquet", tables / "current.parquet", seed=2)
    assert on_spark.values() == pytest.approx(local.values(), rel=1e-6, abs=1e-12)


def test_vector_and_numeric_columns_give_the_array_columns_profile(spark, sides):
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    (x, ids, ref_df), _ = sides
    expected = profile_dataframe(ref_df, seed=0, sample_rows=300)
    as_vector = ref_df.select("item_id", array_to_vector("embedding").alias("features"))
    as_columns = ref_df.select("item_id", *[F.col("embedding")[i].alias(f"f{i}") for i in range(DIM)])
    for profile in (profile_dataframe(as_vector, seed=0, sample_rows=300, column="features"),
                    profile_dataframe(as_columns, seed=0, sample_rows=300, column=[f"f{i}" for i in range(DIM)])):
        np.testing.assert_array_equal(profile.sample, expected.sample)
        np.testing.assert_allclose(profile.mean, expected.mean, rtol=1e-6)
        assert profile.sketch.spec == expected.sketch.spec


def test_partials_ship_only_rows_that_can_be_in_the_sample(sides):
    (_, _, ref_df), _ = sides
    import pickle

    frame = partials_frame(ref_df.repartition(8), seed=0, sample_rows=200)
    partials = [pickle.loads(bytes(row[0])) for row in frame.collect()]
    assert len(partials) == 8 and sum(p.count for p in partials) == N
    # without the cut every partition would ship its own 200 smallest keys (1,600 rows)
    assert sum(len(p.sample) for p in partials) == 200


@pytest.mark.parametrize("damage, message", [
    ("nan", r"current: partition \d+, row \d+ \(id 'item-\d+'\) contains NaN or inf"),
    ("width", r"current: partition \d+, row \d+ \(id 'item-\d+'\) has 11 dimensions, not 12"),
    ("null_id", r"current: partition \d+, row \d+ has a null id"),
    ("null_vector", r"current: partition \d+, row \d+ \(id 'item-\d+'\) has a null vector"),
    ("duplicate_id", r"current: ids are not unique"),
    ("huge", r"current: partition \d+, row \d+ \(id 'item-\d+'\) holds values beyond ±.*overflow float32"),
])
def test_bad_rows_fail_the_job_naming_partition_row_and_id(spark, damage, message):
    x, ids = _side(3, 0.0)
    x, ids, bad = x[:600], ids[:600], 432
    damaged = {"nan": [float("nan")] * DIM, "null_vector": None, "width": x[bad, :-1].tolist(), "huge": [1e30] * DIM}
    rows = [(None if damage == "null_id" and i == bad else str(ids[i]),
             damaged[damage] if damage in damaged and i == bad else x[i].tolist()) for i in range(len(x))]
    if damage == "duplicate_id":
        rows = rows + rows
    df = spark.createDataFrame(rows, "item_id string, embedding array<float>").repartition(3)
    with pytest.raises(InputError, match=message):
        profile_dataframe(df, seed=0, sample_rows=len(rows), name="current")


def test_binary_ids_are_keyed_as_their_text_and_refused_when_they_are_not_utf8(spark):
    """Binary ids hold text as the single-process reader reads them; bytes that are not UTF-8 fail
    the job naming partition and row (they crashed on the executors before)."""
    x, ids = _side(3, 0.0)
    x, ids = x[:600], ids[:600]
    text = spark.createDataFrame([(str(i), v.tolist()) for i, v in zip(ids, x)],
                                 "item_id string, embedding array<float>")
    binary = spark.createDataFrame([(str(i).encode(), v.tolist()) for i, v in zip(ids, x)],
                                   "item_id binary, embedding array<float>").repartition(3)
    as_text, as_binary = (profile_dataframe(df, seed=0, sample_rows=200) for df in (text, binary))
    assert np.array_equal(as_text.sample_keys, as_binary.sample_keys)
    bad = [(b"\xff\xfe" if i == 432 else str(ids[i]).encode(), x[i].tolist()) for i in range(len(x))]
    df = spark.createDataFrame(bad, "item_id binary, embedding array<float>").repartition(3)
    with pytest.raises(InputError, match=r"current: partition \d+, row \d+ has a binary id that is not UTF-8 text"):
        profile_dataframe(df, seed=0, name="current")


def test_an_id_column_that_is_neither_numbers_nor_text_is_refused(spark):
    df = spark.createDataFrame([(True, [1.0, 2.0])], "item_id boolean, embedding array<float>")
    with pytest.raises(InputError, match="id column 'item_id' is boolean; expected integers or strings"):
        profile_dataframe(df, seed=0)


def test_a_table_without_ids_is_refused_with_the_reason(spark):
    df = spark.createDataFrame([([1.0, 2.0],)], "embedding array<float>")
    with pytest.raises(InputError, match="sampled by their id"):
        profile_dataframe(df, seed=0)


def test_a_reference_set_on_spark_checks_as_one_set_from_the_file(sides, tables, sqlite_uri):
    """`reference set --engine spark` stores the profile, item sample and ids the file gives: a check
    against it measures every metric (distribution and structure) as a check against the local
    reference does, and the profile equals the file's."""
    from drift_decider import api
    from drift_decider.tracking.store import TrackingStore

    (x, ids, _), _ = sides
    on_spark, local = api.register("recsys", tracking_uri=sqlite_uri), api.register("recsys", tracking_uri=sqlite_uri)
    api.set_reference_table("recsys", on_spark, tables / "reference.parquet", tracking_uri=sqlite_uri, seed=3)
    api.set_reference("recsys", local, tables / "reference.parquet", tracking_uri=sqlite_uri, seed=3)
    store = TrackingStore.open(sqlite_uri)
    stored = store.load_reference(store.version("recsys", version=on_spark)).profile
    profile = EmbeddingProfile.from_array(x, seed=3, ids=ids)
    np.testing.assert_array_equal(stored.sample_keys, profile.sample_keys)
    assert stored.sketch.spec == profile.sketch.spec
    outcomes = [api.check("recsys", tables / "current.parquet", POLICY, version=version, tracking_uri=sqlite_uri,
                          seed=3, dry_run=True, allow_id_mismatch=True) for version in (on_spark, local)]
    assert "knn_turnover" in outcomes[0].values and "structure" not in outcomes[0].not_measured
    assert outcomes[0].values == pytest.approx(outcomes[1].values, rel=1e-6, abs=1e-12)
    assert outcomes[0].not_measured == outcomes[1].not_measured


@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_a_reference_set_on_spark_keeps_the_files_item_sample_ids_and_noise_floor(spark, tables, monkeypatch,
                                                                                partitions):
    """The item sample (the rows of the smallest id keys: here 2,000 of 6,000), the learned ids and a
    sibling's noise floor equal the local reference's from the same rows, however the tables are split."""
    from drift_decider.evidence import assemble, spark_reference
    from drift_decider.evidence.noise_floor import Sibling

    monkeypatch.setattr(assemble, "ITEM_SAMPLE_ROWS", 2_000)
    monkeypatch.setattr(spark_reference, "ITEM_SAMPLE_ROWS", 2_000)
    x, ids = _side(5, 0.0)
    sibling = x + np.random.default_rng(9).normal(0, 0.1, x.shape).astype(np.float32)
    local = assemble.ReferenceData.from_arrays(x, ids, seed=7)
    local_floor = assemble.measure_noise(local, [Sibling(ids, sibling)], seed=7)
    read = [spark.read.parquet(str(_write_dir(v, ids, tables / f"{name}-{partitions}", partitions)))
            for name, v in (("ref", x), ("sibling", sibling))]
    on_spark = spark_reference.reference_table(read[0], seed=7, name="ref", siblings=[(read[1], "sibling")])
    assert len(on_spark.item_ids) == 2_000
    order = np.argsort(local.item_ids)
    np.testing.assert_array_equal(on_spark.item_ids, local.item_ids[order])
    np.testing.assert_array_equal(on_spark.item_vectors, local.item_vectors[order])
    np.testing.assert_array_equal(on_spark.known_ids, local.known_ids)
    assert on_spark.noise.samples.keys() == local_floor.samples.keys() and local_floor.samples
    for name, values in local_floor.samples.items():
        assert on_spark.noise.samples[name] == pytest.approx(values, rel=1e-6, abs=1e-12), name


def test_a_reference_set_on_spark_keeps_long_ids_outside_its_sample_and_refuses_repeated_ids(spark, tables,
                                                                                           monkeypatch):
    """Review s7, B2 and B3: the learned ids were cut to the width of the sample's longest id, and an id
    repeated outside the profile's first 10,000 keys was stored, to fail every later check."""
    from drift_decider.evidence import assemble, spark_reference
    from drift_decider.measure.row_keys import row_keys

    monkeypatch.setattr(assemble, "ITEM_SAMPLE_ROWS", 2_000)
    monkeypatch.setattr(spark_reference, "ITEM_SAMPLE_ROWS", 2_000)
    n = 12_000                     # more rows than the profile's 10,000 sample keys
    x = np.random.default_rng(11).standard_normal((n, 8)).astype(np.float32)
    ids = np.array([f"i{i}" for i in range(n)], dtype=object)
    for suffix in range(100):      # a long id whose key puts it outside the 2,000-row item sample
        ids[0] = f"an-item-id-much-longer-than-any-in-the-sample-{suffix}"
        rank = np.argsort(np.argsort(row_keys(7, ids.astype(str))))
        if rank[0] >= 2_000:
            break
    ids = ids.astype(str)
    assert rank[0] >= 2_000
    read = spark.read.parquet(str(_write_dir(x, ids, tables / "long-ids", 3)))
    stored = spark_reference.reference_table(read, seed=7, name="long-ids")
    np.testing.assert_array_equal(stored.known_ids, np.sort(ids))
    repeated = ids.copy()
    last = int(np.argmax(rank))    # the id with the largest key, far outside the profile's 10,000
    repeated[(last + 1) % n] = repeated[last]
    read = spark.read.parquet(str(_write_dir(x, repeated, tables / "repeated-ids", 3)))
    with pytest.raises(InputError, match=r"repeated-ids: ids are not unique \(1 row\(s\) repeat an id"):
        spark_reference.reference_table(read, seed=7, name="repeated-ids")


# -- check --engine spark ------------------------------------------------------------------------
END = "2026-07-01T00:00:00Z"


def _write_dir(x: np.ndarray | list[np.ndarray], ids: np.ndarray, path: Path, partitions: int) -> Path:
    """A Parquet directory of ``partitions`` files holding these rows in a shuffled order (as a lake
    table written by another job would)."""
    path.mkdir()
    order = np.random.default_rng(partitions).permutation(len(ids))
    for part, rows in enumerate(np.array_split(order, partitions)):
        vectors = pa.array([x[row] for row in rows], pa.list_(pa.float32()))
        pq.write_table(pa.table({"item_id": ids[rows], "embedding": vectors}), path / f"part-{part}.parquet")
    return path


@pytest.fixture(scope="module")
def window(spark, tables):
    """A version's reference (a local file with ids: profile, item sample, known ids) and today's window:
    5,000 of its items moved a little plus 500 new ones, the catalogue 300 new items more; as one local
    .parquet each and as Parquet directories of 1, 3 and 8 files."""
    x, ids = _side(5, 0.0)
    rng = np.random.default_rng(6)
    fresh = np.array([f"new-{i}" for i in range(800)])
    moved = x[:5_000] + rng.normal(0, 0.05, (5_000, DIM)).astype(np.float32)
    extra = rng.standard_normal((800, DIM)).astype(np.float32)
    cur_x, cur_ids = np.vstack([moved, extra[:500]]), np.concatenate([ids[:5_000], fresh[:500]])
    cat_x, cat_ids = np.vstack([cur_x, extra[500:]]), np.concatenate([cur_ids, fresh[500:]])
    sets = {"ref_items": (x, ids), "today": (cur_x, cur_ids), "catalog": (cat_x, cat_ids)}
    for name, (v, i) in sets.items():
        _frame(spark, v, i, tables, name)
    files = {name: tables / f"{name}.parquet" for name in sets}
    dirs = {(name, n): _write_dir(*sets[name], tables / f"{name}-{n}", n) for n in (1, 3, 8)
            for name in ("today", "catalog")}
    return files, dirs


def _versioned(uri: str, files: dict) -> str:
    from drift_decider import api

    version = api.register("recsys", tracking_uri=uri)
    api.set_reference("recsys", version, files["ref_items"], tracking_uri=uri, seed=7)
    return version


def test_check_on_spark_records_what_the_local_check_records_however_partitioned(window, sqlite_uri):
    """Distribution, structure (by the reference's item sample) and new-item share equal the local
    check's on the same rows, and so does the decision; the window digest does not change with the
    partitioning; the check lands in MLflow as a local one does. The reported data growth reaches the
    policy on both engines."""
    from drift_decider import api

    files, dirs = window
    version = _versioned(sqlite_uri, files)
    local = api.check("recsys", files["today"], POLICY, version=version, tracking_uri=sqlite_uri, seed=7,
                      window_end=END, catalog_path=files["catalog"], dry_run=True, data_growth=0.1)
    assert local.values["data.growth"] == 0.1 and "data" not in local.not_measured
    assert "structure" not in local.not_measured and "knn_turnover" in local.values
    assert local.values["catalog.new_item_share"] == pytest.approx(800 / 5_800)
    digests = set()
    for n in (1, 3, 8):
        on_spark = api.check("recsys", dirs["today", n], POLICY, version=version, tracking_uri=sqlite_uri,
                             seed=7, window_end=END, catalog_path=dirs["catalog", n], dry_run=True, engine="spark",
                             data_growth=0.1)
        assert on_spark.values.keys() == local.values.keys()
        for key, value in local.values.items():
            assert on_spark.values[key] == pytest.approx(value, rel=1e-6, abs=1e-12), (n, key)
        assert (on_spark.action, on_spark.decision.get("rule_id"), on_spark.not_measured) == (
            local.action, local.decision.get("rule_id"), local.not_measured)
        digests.add(on_spark.window.dataset_digest)
    assert len(digests) == 1
    out = run_cli(*check_args(sqlite_uri, version, dirs["today", 3], "spark-w1", window_end=END)[:-1],
                  "--catalog", dirs["catalog", 3], "--seed", 7, "--engine", "spark", "--spark-master", "local[2]",
                  "--data-growth", 0.1, "--json")
    recorded = json.loads(out.stdout)
    assert recorded["run_id"] and recorded["metrics"] == pytest.approx(local.values, rel=1e-6, abs=1e-12)
    again = api.check("recsys", dirs["today", 8], POLICY, version=version, tracking_uri=sqlite_uri, seed=7,
                      window_id="spark-w1", catalog_path=dirs["catalog", 8], engine="spark", data_growth=0.1)
    assert again.already_recorded and again.run_id == recorded["run_id"]
    with pytest.raises(InputError, match="was decided on other data"):       # the growth is part of the window
        api.check("recsys", dirs["today", 8], POLICY, version=version, tracking_uri=sqlite_uri, seed=7,
                  window_id="spark-w1", catalog_path=dirs["catalog", 8], engine="spark")


def test_check_on_spark_against_a_reference_set_on_spark(spark, window, tables, sqlite_uri):
    """A reference set on Spark with a sibling (`reference set --engine spark --sibling DIR`) checks a
    Spark window as the local engine does, structure and its noise units included."""
    from drift_decider import api

    files, dirs = window
    x, ids = _side(5, 0.0)
    sibling = _write_dir(x + np.random.default_rng(8).normal(0, 0.05, x.shape).astype(np.float32), ids,
                         tables / "ref-sibling", 3)
    version = api.register("recsys", tracking_uri=sqlite_uri)
    run_cli("reference", "set", "--model", "recsys", "--version", version, "--embeddings", files["ref_items"],
            "--sibling", sibling, "--seed", 7, "--engine", "spark", "--tracking-uri", sqlite_uri)
    args = dict(version=version, tracking_uri=sqlite_uri, seed=7, window_end=END, dry_run=True)
    local = api.check("recsys", files["today"], POLICY, **args)
    on_spark = api.check("recsys", dirs["today", 3], POLICY, engine="spark", **args)
    assert on_spark.values == pytest.approx(local.values, rel=1e-6, abs=1e-12)
    assert on_spark.action == local.action and on_spark.not_measured == local.not_measured
    assert "structure" not in on_spark.not_measured and "knn_turnover.noise_units" in on_spark.values


@pytest.mark.parametrize("table, damage, message", [("current", "nan", "contains NaN or inf"),
                                                    ("catalog", "width", "has 11 dimensions, not 12")])
def test_check_on_spark_refuses_bad_rows_naming_partition_and_row_and_writes_nothing(window, tables, sqlite_uri,
                                                                                  table, damage, message):
    from drift_decider.tracking.connection import connect

    files, dirs = window
    version = _versioned(sqlite_uri, files)
    x, ids = _side(5, 0.0)
    rows = list(x[:600])
    rows[432] = np.full(DIM, np.nan, np.float32) if damage == "nan" else rows[432][:-1]
    bad = _write_dir(rows, ids[:600], tables / f"bad-{table}", 3)
    current, catalog = (bad, dirs["catalog", 3]) if table == "current" else (dirs["today", 3], bad)
    out = run_cli(*check_args(sqlite_uri, version, current, f"bad-{table}")[:-1], "--catalog", catalog,
                  "--engine", "spark", expect=2)
    assert re.search(rf"{re.escape(str(bad))}: partition \d+, row \d+ \(id 'item-\d+'\) {message}", out.output)
    client = connect(sqlite_uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
