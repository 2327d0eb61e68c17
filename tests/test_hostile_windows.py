"""Windows below the minimum row count exit 2 naming the file, for check and promote, and leave MLflow as
it was (issue 16: #8: one- and two-row windows were decided `none` and moved the version's decision
tags). Real sqlite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from drift_decider.measure.distribution import MIN_WINDOW_ROWS
from drift_decider.tracking.connection import connect
from support import POLICY, movielens_items, register_with_reference, run_cli, write_items

GATE = POLICY.parent / "promotion-gate.yaml"


def _state(uri: str) -> tuple[int, list[dict[str, str]], dict[str, str]]:
    client = connect(uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments]) if experiments else []
    model = client.get_registered_model("recsys")
    return len(runs), [dict(v.tags) for v in client.search_model_versions("name = 'recsys'")], dict(model.aliases)


def test_small_windows_are_refused_and_the_minimum_is_accepted(tmp_path: Path, sqlite_uri: str) -> None:
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    before = _state(sqlite_uri)
    for rows in (1, 2, MIN_WINDOW_ROWS - 1):
        window = write_items(tmp_path / f"rows-{rows}.npz", ids[:rows], vectors[:rows])
        checked = run_cli("check", "--model", "recsys", "--version", version, "--current", window, "--policy",
                          POLICY, "--window-id", f"w{rows}", "--tracking-uri", sqlite_uri, expect=2)
        promoted = run_cli("promote", "--model", "recsys", "--candidate", version, "--alias", "champion",
                           "--current", window, "--policy", GATE, "--tracking-uri", sqlite_uri, expect=2)
        for result in (checked, promoted):
            assert f"error: {window}: {rows} row(s); a window needs at least {MIN_WINDOW_ROWS}" in result.output
    assert _state(sqlite_uri) == before
    enough = write_items(tmp_path / "enough.npz", ids[:MIN_WINDOW_ROWS], vectors[:MIN_WINDOW_ROWS])
    run_cli("check", "--model", "recsys", "--version", version, "--current", enough, "--policy", POLICY,
            "--window-id", "enough", "--tracking-uri", sqlite_uri)
    assert _state(sqlite_uri)[0] == before[0] + 1


@pytest.mark.parametrize("rows", [1, 9])
def test_measure_command_still_reports_small_sets_as_insufficient(tmp_path: Path, rows: int) -> None:
    """`measure` decides nothing, so it keeps saying which metrics lack data instead of refusing."""
    ids, vectors = movielens_items()
    reference = write_items(tmp_path / "ref.npz", ids, vectors)
    current = write_items(tmp_path / "cur.npz", ids[:rows], vectors[:rows])
    assert "not computed: " in run_cli("measure", "--reference", reference, "--current", current).output


def test_a_window_id_past_the_limit_is_refused_before_measuring(tmp_path: Path, sqlite_uri: str) -> None:
    from drift_decider.inputs.windows import MAX_WINDOW_ID_CHARS

    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    window = write_items(tmp_path / "w.npz", ids, vectors)
    before = _state(sqlite_uri)
    result = run_cli("check", "--model", "recsys", "--version", version, "--current", window, "--policy", POLICY,
                     "--window-id", "w" * (MAX_WINDOW_ID_CHARS + 1), "--tracking-uri", sqlite_uri, expect=2)
    assert f"at most {MAX_WINDOW_ID_CHARS}" in result.output
    assert _state(sqlite_uri) == before


@pytest.mark.parametrize("end, says", [("1969-12-31T23:59:59Z", "is before 1970-01-01T00:00:00Z"),
                                       ("0001-01-01T00:00:00Z", "is before 1970-01-01T00:00:00Z"),
                                       ("3026-11-25T00:00:00Z", "is more than 38 hours after now")])
def test_a_window_end_before_1970_or_to_come_is_refused_before_anything_is_claimed(
        tmp_path: Path, sqlite_uri: str, end: str, says: str) -> None:
    """MLflow stores times as milliseconds since 1970: such a check used to claim its window, fail to
    write, spool itself and hold every later window of the version back (review r19, F8). A typo
    far in the future was recorded, and the version's published decision stayed on it for good
    (review s8, hostile #1)."""
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    window = write_items(tmp_path / "w.npz", ids, vectors)
    before = _state(sqlite_uri)
    result = run_cli("check", "--model", "recsys", "--version", version, "--current", window, "--policy", POLICY,
                     "--window-id", "old", "--window-end", end, "--tracking-uri", sqlite_uri, "--spool-dir",
                     tmp_path / "spool", expect=2)
    assert says in result.output, result.output
    assert _state(sqlite_uri) == before and not list((tmp_path / "spool").glob("*.json"))
    run_cli("check", "--model", "recsys", "--version", version, "--current", window, "--policy", POLICY,
            "--window-id", "new", "--window-end", "2026-11-26T00:00:00Z", "--tracking-uri", sqlite_uri)


def test_a_reference_below_the_minimum_is_refused(tmp_path: Path, sqlite_uri: str) -> None:
    """Checks against a one-row reference were decided `none` on the few metrics left (review r19, F10)."""
    from drift_decider import api

    version = api.register("tiny", tracking_uri=sqlite_uri)
    ids, vectors = movielens_items()
    small = write_items(tmp_path / "small.npz", ids[:MIN_WINDOW_ROWS - 1], vectors[:MIN_WINDOW_ROWS - 1])
    result = run_cli("reference", "set", "--model", "tiny", "--version", version, "--embeddings", small,
                     "--tracking-uri", sqlite_uri, expect=2)
    assert f"{small}: {MIN_WINDOW_ROWS - 1} row(s); a reference needs at least {MIN_WINDOW_ROWS}" in result.output


@pytest.mark.parametrize("window_id, says", [("", "--window-id is empty"), ("a\nb", "control character '\\n'")])
def test_an_empty_or_multi_line_window_id_is_refused(tmp_path: Path, sqlite_uri: str, window_id: str,
                                                     says: str) -> None:
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    window = write_items(tmp_path / "w.npz", ids, vectors)
    result = run_cli("check", "--model", "recsys", "--version", version, "--current", window, "--policy", POLICY,
                     "--window-id", window_id, "--tracking-uri", sqlite_uri, expect=2)
    assert says in result.output


@pytest.mark.parametrize("option, value, says", [
    ("--window-id", "", "--window-id is empty"),
    ("--window-end", "1969-12-31T23:59:59Z", "is before 1970-01-01T00:00:00Z"),
    ("--window-end", "yesterday", "--window-end"),
    ("--window-end", "9999-12-31T23:59:59Z", "is more than 38 hours after now"),
])
@pytest.mark.parametrize("engine", ["local", "spark"])
def test_window_options_are_refused_before_any_input_is_read(tmp_path: Path, option: str, value: str, says: str,
                                                             engine: str) -> None:
    """Review s7, B8: the local engine read every input (index included) and Spark ran its whole job
    before a bad window id or end was refused. A current file that does not exist proves nothing was read."""
    missing = tmp_path / "not-there.npz"
    result = run_cli("check", "--model", "recsys", "--version", "1", "--current", missing, "--policy", POLICY,
                     option, value, "--engine", engine, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                     expect=2)
    assert says in result.output and str(missing) not in result.output, result.output
    assert not (tmp_path / "mlflow.db").exists()
