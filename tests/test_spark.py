"""The Spark engine on a real local[2] session: the profile and every metric equal the single-process
path on the same rows and ids, and so does the decision, however the rows are partitioned; bad rows
fail the job naming their partition, row and id; partials ship only what can be in the sample."""

from __future__ import annotations

import os
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
])
def test_bad_rows_fail_the_job_naming_partition_row_and_id(spark, damage, message):
    x, ids = _side(3, 0.0)
    x, ids, bad = x[:600], ids[:600], 432
    damaged = {"nan": [float("nan")] * DIM, "null_vector": None, "width": x[bad, :-1].tolist()}
    rows = [(None if damage == "null_id" and i == bad else str(ids[i]),
             damaged[damage] if damage in damaged and i == bad else x[i].tolist()) for i in range(len(x))]
    if damage == "duplicate_id":
        rows = rows + rows
    df = spark.createDataFrame(rows, "item_id string, embedding array<float>").repartition(3)
    with pytest.raises(InputError, match=message):
        profile_dataframe(df, seed=0, sample_rows=len(rows), name="current")


def test_a_table_without_ids_is_refused_with_the_reason(spark):
    df = spark.createDataFrame([([1.0, 2.0],)], "embedding array<float>")
    with pytest.raises(InputError, match="sampled by their id"):
        profile_dataframe(df, seed=0)


def test_a_reference_set_on_spark_checks_as_the_local_engine_measures(sides, tables, sqlite_uri):
    """`reference set --engine spark` stores the profile the file gives; a check against it sees the
    distribution metrics measure() gives on the same rows and ids, and names the paired families it lacks."""
    from drift_decider import api
    from drift_decider.tracking.store import TrackingStore

    (x, ids, _), (y, cur_ids, _) = sides
    version = api.register("recsys", tracking_uri=sqlite_uri)
    api.set_reference_table("recsys", version, tables / "reference.parquet", tracking_uri=sqlite_uri, seed=3)
    store = TrackingStore.open(sqlite_uri)
    stored = store.load_reference(store.version("recsys", version=version)).profile
    local = EmbeddingProfile.from_array(x, seed=3, ids=ids)
    np.testing.assert_array_equal(stored.sample_keys, local.sample_keys)
    assert stored.sketch.spec == local.sketch.spec
    outcome = api.check("recsys", tables / "current.parquet", POLICY, version=version, tracking_uri=sqlite_uri,
                        seed=3, dry_run=True, allow_id_mismatch=True)
    expected = measure(x, y, seed=3, reference_ids=ids, current_ids=cur_ids).values()
    assert {k: outcome.values[k] for k in expected} == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert "structure" in outcome.not_measured
