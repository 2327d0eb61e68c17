"""Hostile embedding files exit 2 with a message naming the file, never 1 "unexpected failure"
(issue 16: #7, #13). `check` reads every local input before MLflow, so it leaves no store behind."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from click.testing import CliRunner

from drift_decider.cli.main import cli

GOOD = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
POLICY_FILE = Path(__file__).resolve().parents[1] / "policies" / "conservative.yaml"


def npy_bytes(shape: tuple[int, ...]) -> bytes:
    """A .npy header declaring ``shape`` of float32, followed by GOOD's data only."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + GOOD.tobytes()


def zipped(data: bytes, compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as archive:
        archive.writestr("embeddings.npy", data)
    return buf.getvalue()


def good_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, embeddings=GOOD)
    return buf.getvalue()


def object_npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()


def array_npy(values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, values)
    return buf.getvalue()


def npz_with(**members: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, embeddings=GOOD, **members)
    return buf.getvalue()


def raw_member_npz() -> bytes:
    """An archive whose only member is not a .npy (np.load hands such a member over as bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("embeddings", b"not an array")
    return buf.getvalue()


def parquet_with_ids(ids: object) -> Callable[[], bytes]:
    def build() -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(pa.table({"id": ids, "embedding": pa.array(GOOD.tolist(), pa.list_(pa.float32()))}), buf)
        return buf.getvalue()
    return build


# name -> (file contents, what the message says)
CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "truncated.npz": (lambda: good_npz()[:len(good_npz()) // 2], "not a readable .npz (zip) archive"),
    "huge-header.npz": (lambda: zipped(npy_bytes((10**12, 8))), "declares shape (1000000000000, 8)"),
    "huge-header-deflated.npz": (lambda: zipped(npy_bytes((10**12, 8)), zipfile.ZIP_DEFLATED), "declares shape"),
    "huge-header.npy": (lambda: npy_bytes((10**12, 8)), "declares shape (1000000000000, 8)"),
    "random.npy": (lambda: np.random.default_rng(1).bytes(4096), "does not start with NumPy's header"),
    "random.npz": (lambda: np.random.default_rng(2).bytes(4096), "not a readable .npz (zip) archive"),
    "object.npy": (object_npy, "holds Python objects"),
    "object-in.npz": (lambda: zipped(object_npy()), "holds Python objects"),
    "raw-member.npz": (raw_member_npz, "the embeddings are a bytes, not an array"),
    "ids-0d.npz": (lambda: npz_with(ids=np.array(7)), "ids must be a 1-D array (one per vector), got ()"),
    "ids-2d.npz": (lambda: npz_with(ids=np.arange(200).reshape(100, 2)), "ids must be a 1-D array"),
    "ids-null.parquet": (parquet_with_ids([None] + list(range(1, 100))),
                         "id column 'id' has 1 null(s), first at row 0"),
    "ids-list.parquet": (parquet_with_ids([[i] for i in range(100)]), "id column 'id' is list<"),
    "ids-struct.parquet": (parquet_with_ids([{"a": i} for i in range(100)]), "id column 'id' is struct<a: int64>"),
    "ids-binary.parquet": (parquet_with_ids([b"\xff%d" % i for i in range(100)]),
                           "id column 'id' is binary and not UTF-8 text"),
    "huge-values.npy": (lambda: array_npy(np.full((100, 8), 1e300)), "100 row(s) hold values beyond"),
    "int64-max.npy": (lambda: array_npy(np.full((100, 8), np.iinfo(np.int64).max)), "whose squared distances overflow"),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("command", ["measure", "check"])
def test_bad_embedding_file_exits_2_naming_it(tmp_path: Path, name: str, command: str) -> None:
    contents, message = CASES[name]
    bad = tmp_path / name
    bad.write_bytes(contents())
    good = tmp_path / "good.npy"
    np.save(good, GOOD)
    policy = Path(__file__).resolve().parents[1] / "policies" / "conservative.yaml"
    args = (["measure", "--reference", good, "--current", bad] if command == "measure" else
            ["check", "--model", "m", "--version", "1", "--current", bad, "--policy", policy,
             "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--spool-dir", tmp_path / "spool"])
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    assert f"error: {bad}: " in result.output and message in result.output, result.output
    assert "unexpected failure" not in result.output and "pickled" not in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_fifo_as_embeddings_is_refused_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "current.npy"
    os.mkfifo(fifo)
    good = tmp_path / "good.npy"
    np.save(good, GOOD)
    result = CliRunner().invoke(cli, ["measure", "--reference", str(good), "--current", str(fifo)])
    assert result.exit_code == 2 and f"{fifo}: not a regular file" in result.output, result.output


def _snapshot(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("build, message", [
    (lambda d: (d / "idx").mkdir() or (d / "idx" / "index.json").write_text("[1, 2]") and d / "idx",
     "index.json: index metadata must be a JSON object, got list"),
    (lambda d: (d / "idx").mkdir() or (d / "idx" / "index.json").write_text("[" * 100_000) and d / "idx",
     "index.json: unreadable index metadata (RecursionError"),
    (lambda d: (d / "idx").mkdir() or (d / "idx" / "index.json").write_text(
        '{"kind": "hnsw", "metric": "ip", "params": {"ef_search": "64"}}') and d / "idx",
     "index.json: a hnsw index needs params.ef_search, a positive 32-bit integer (got 64)"),
    (lambda d: (d / "idx").mkdir() or (d / "idx" / "index.json").write_text(
        '{"kind": "hnsw", "metric": "ip", "params": {"ef_search": 99999999999999999999}}') and d / "idx",
     "index.json: a hnsw index needs params.ef_search, a positive 32-bit integer (got 99999999999999999999)"),
    (lambda d: (d / "idx").mkdir() or (d / "idx" / "index.json").write_text(
        '{"kind": "exact", "metric": ["ip"]}') and d / "idx",
     "index.json: unknown metric ['ip']; expected one of ip, cosine"),
    (lambda d: (d / "trunc.npz").write_bytes(b"PK\x03\x04garbage") and d / "trunc.npz",
     "not a readable serving index (BadZipFile"),
    (lambda d: _snapshot(d / "text.npz", ids=np.arange(100), vectors=np.full((100, 8), "x")),
     "dtype <U1 is not a real number type"),
    (lambda d: _snapshot(d / "huge.npz", ids=np.arange(100), vectors=np.full((100, 8), 1e300)),
     "100 row(s) hold values beyond"),
    (lambda d: _snapshot(d / "large.npz", ids=np.arange(100), vectors=np.full((100, 8), 1e20)),
     "100 row(s) hold values beyond"),
    (lambda d: _snapshot(d / "nan.npz", ids=np.arange(100), vectors=np.full((100, 8), np.nan)),
     "100 row(s) contain NaN or inf; first at row 0"),
])
def test_a_damaged_serving_index_exits_2_naming_it(tmp_path: Path, build: Callable[[Path], Path],
                                                   message: str) -> None:
    """Review r19, F5: corrupt or foreign index files were 'unexpected failure's."""
    index = build(tmp_path)
    current = tmp_path / "current.npz"
    np.savez(current, embeddings=GOOD, ids=np.arange(100))
    result = CliRunner().invoke(cli, ["check", "--model", "m", "--version", "1", "--current", str(current),
                                      "--index", str(index), "--policy", str(POLICY_FILE), "--tracking-uri",
                                      f"sqlite:///{tmp_path / 'mlflow.db'}", "--spool-dir", str(tmp_path / "spool")])
    assert result.exit_code == 2, result.output
    assert f"error: {index}" in result.output and message in result.output, result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_a_catalogue_without_ids_exits_2_naming_it(tmp_path: Path) -> None:
    """Review s7, B1: `check --catalog` with a file without ids failed with 'unexpected failure: TypeError'
    after claiming the window."""
    current, catalog = tmp_path / "current.npz", tmp_path / "catalog.npy"
    np.savez(current, embeddings=GOOD, ids=np.arange(100))
    np.save(catalog, GOOD)
    result = CliRunner().invoke(cli, ["check", "--model", "m", "--version", "1", "--current", str(current),
                                      "--catalog", str(catalog), "--policy", str(POLICY_FILE), "--tracking-uri",
                                      f"sqlite:///{tmp_path / 'mlflow.db'}", "--spool-dir", str(tmp_path / "spool")])
    assert result.exit_code == 2, result.output
    assert f"error: {catalog}: a catalogue needs item ids" in result.output, result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_binary_ids_are_read_as_the_text_they_hold(tmp_path: Path) -> None:
    """Review s7, B4: ASCII binary ids were stored as text by `reference set`, then refused as bytes by a
    check of the same file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from drift_decider.inputs.embeddings import load_embeddings

    vectors = pa.array(GOOD.tolist(), pa.list_(pa.float32()))
    pq.write_table(pa.table({"id": [b"item-%d" % i for i in range(100)], "embedding": vectors}), tmp_path / "b.parquet")
    pq.write_table(pa.table({"id": [f"item-{i}" for i in range(100)], "embedding": vectors}), tmp_path / "t.parquet")
    binary, text = load_embeddings(tmp_path / "b.parquet"), load_embeddings(tmp_path / "t.parquet")
    assert binary.ids.tolist() == text.ids.tolist() and binary.ids.dtype == text.ids.dtype


def test_an_index_snapshot_may_name_its_vectors_as_an_embeddings_file_does(tmp_path: Path) -> None:
    """Newcomer review s7: a snapshot with `ids` and `embeddings`, the layout every other input accepts,
    was unreadable."""
    from drift_decider.inputs.serving_index import ServingIndex

    np.savez(tmp_path / "embeddings.npz", ids=np.arange(100), embeddings=GOOD)
    np.savez(tmp_path / "vectors.npz", ids=np.arange(100), vectors=GOOD)
    first, second = (ServingIndex.load(tmp_path / name) for name in ("embeddings.npz", "vectors.npz"))
    np.testing.assert_array_equal(first.vectors, second.vectors)
    np.testing.assert_array_equal(first.ids, second.ids)


@pytest.mark.parametrize("uri, says", [
    ("http://[::1", "is not a valid URI: Invalid IPv6 URL"),
    ("mysql://bob:hunter2@127.0.0.1:1/db", "needs the Python module MySQLdb, which is not installed here"),
])
def test_a_tracking_uri_that_cannot_be_opened_here_exits_2_without_its_password(uri: str, says: str) -> None:
    """Review s8, hostile #5: a malformed URI, or a database whose driver is missing, crashed every
    command (and a spooled check for such a store stopped `sync` landing any other)."""
    result = CliRunner().invoke(cli, ["history", "--model", "m", "--tracking-uri", uri])
    assert result.exit_code == 2 and says in result.output and "hunter2" not in result.output, result.output


def test_a_metrics_file_with_a_number_past_pythons_digit_limit_exits_2(tmp_path: Path) -> None:
    """Review s8, hostile #6: json.loads refuses integers of over 4,300 digits with a ValueError that
    crashed `policy explain` (exit 1)."""
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"knn_turnover": ' + "9" * 5000 + "}")
    result = CliRunner().invoke(cli, ["policy", "explain", "--policy", str(POLICY_FILE), "--metrics", str(metrics)])
    assert result.exit_code == 2 and f"{metrics}: metrics file is not valid JSON" in result.output, result.output


@pytest.mark.parametrize("name", ["a.b", "it's", "50%"])
def test_a_model_name_mlflow_refuses_for_its_model_page_exits_2(tmp_path: Path, name: str) -> None:
    """Review s8, hostile #10: MLflow's refusal came back as exit 1, which scripts retry."""
    result = CliRunner().invoke(cli, ["register", "--model", name, "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert result.exit_code == 2 and "which MLflow refuses in the name" in result.output, result.output
