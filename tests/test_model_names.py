"""Model names MLflow accepts but a search filter must quote with care: MLflow's filter parser takes
a backslash literally, so escaping one made a check blind to its own history (`for`, cooldowns and
one run per window silently stopped). Quotes cannot reach a filter: MLflow refuses them in the
LoggedModel name that `register` creates."""

from __future__ import annotations

import json
from pathlib import Path

from support import check_args, register_with_reference, run_cli


def test_checks_of_a_model_with_a_backslash_in_its_name_find_their_history(sqlite_uri: str,
                                                                           tmp_path: Path) -> None:
    name = "back\\slash"
    version, reference = register_with_reference(sqlite_uri, tmp_path, name)
    first = json.loads(run_cli(*check_args(sqlite_uri, version, reference, "w1", model=name)).output)
    again = json.loads(run_cli(*check_args(sqlite_uri, version, reference, "w1", model=name)).output)
    assert again["already_recorded"] and again["decision"]["decision_id"] == first["decision"]["decision_id"]
    second = json.loads(run_cli(*check_args(sqlite_uri, version, reference, "w2", model=name,
                                            window_end="2026-07-02T00:00:00Z")).output)
    assert second["decision"]["inputs"]["history"]["checks"] == 1
    missing = run_cli("check", *check_args(sqlite_uri, "7", reference, "w3", model=name)[1:], expect=2)
    assert f"it has version {version}" in missing.output
