"""The automation config is refused at file:line:col before anything runs (exit 2), and deliveries are
verified as MLflow signs them: its own signing function's output is accepted, anything else refused,
and a delivery id is remembered across a restart of the receiver."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from drift_decider.automation.deliveries import SeenDeliveries, refusal
from support import GATE, GOOD_AUTOMATION as GOOD, POLICY, run_cli



@pytest.mark.parametrize("change, where, says", [
    ("      - reference:", "9:9", "not 'refrence' (did you mean 'reference'?)"),
    ("items/v{version}.npz", "10:23", "unknown placeholder {versoin}"),
    ("prod/{today}.npz", "14:20", "unknown placeholder {today!r}"),
    ("  url: http://127.0.0.1:8787/hook", "4:8", "is not an http(s) URL"),
    ("          alias: champion", "12:18", "may hold only letters, digits, '_' and '-'"),
    ("  url: http://[::1]:8787/hook", "4:8", "Invalid IPv6 URL"),
])
def test_a_bad_config_is_refused_at_its_line_and_column(tmp_path: Path, change: str, where: str, says: str) -> None:
    broken = {"      - reference:": "      - refrence:", "items/v{version}.npz": "items/v{versoin}.npz",
              "prod/{today}.npz": "prod/{today!r}.npz", "  url: http://127.0.0.1:8787/hook": "  url: ftp://h/x",
              "          alias: champion": "          alias: ../champion",
              "  url: http://[::1]:8787/hook": "  url: http://[::1:8787/hook"}[change]
    if change.startswith("  url: http://["):
        change = "  url: http://127.0.0.1:8787/hook"
    config = tmp_path / "automation.yaml"
    config.write_text(GOOD.replace(change, broken))
    output = run_cli("webhooks", "reconcile", "--config", config, expect=2).output
    assert f"{config}:{where}:" in output and says in output, output


def test_a_broken_policy_is_named_at_its_own_line_before_any_event(tmp_path: Path) -> None:
    policy = tmp_path / "gate.yaml"
    policy.write_text("apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: g, version: '1'}\nrules: 3\n")
    config = tmp_path / "automation.yaml"
    config.write_text(GOOD.replace(str(GATE), "gate.yaml"))
    output = run_cli("serve", "--config", config, expect=2).output
    assert f"{policy}:4:8:" in output, output


def test_the_secret_comes_from_the_environment_and_must_be_set(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "automation.yaml"
    config.write_text(GOOD)
    monkeypatch.delenv("DD_TEST_SECRET", raising=False)
    output = run_cli("serve", "--config", config, expect=2).output
    assert "the environment variable receiver.secret_env names) is unset" in output, output
    config.write_text(GOOD.replace("  secret_env: DD_TEST_SECRET\n", ""))
    assert "exactly one of secret_env" in run_cli("serve", "--config", config, expect=2).output


@pytest.mark.parametrize("field", ["secret_env", "secret_file"])
def test_a_secret_pasted_where_its_name_or_path_goes_is_not_printed(tmp_path: Path, field: str) -> None:
    """Review s8 #7: an upper-case base32 secret reads as a variable name, anything as a path; the
    messages named the variable and the file, and so printed the secret into the service's log."""
    pasted = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    config = tmp_path / "automation.yaml"
    config.write_text(GOOD.replace("  secret_env: DD_TEST_SECRET\n", f"  {field}: {pasted}\n"))
    output = run_cli("serve", "--config", config, expect=2).output
    assert f"receiver.{field} names" in output and pasted not in output, output


def test_deliveries_signed_as_mlflow_signs_them_are_accepted_and_nothing_else() -> None:
    secret, body, now = "a-secret-of-some-length", '{"entity": "model_version", "action": "created"}', time.time()
    stamp = str(int(now))
    signature = _generate_hmac_signature(secret, "d-1", stamp, body)
    assert refusal(secret, "d-1", stamp, signature, body.encode(), 300, now) is None
    assert refusal(secret, "d-1", stamp, f"v1,bm9wZQ== {signature}", body.encode(), 300, now) is None  # rotation
    assert "does not match" in refusal("another-secret-of-length", "d-1", stamp, signature, body.encode(), 300, now)
    assert "does not match" in refusal(secret, "d-2", stamp, signature, body.encode(), 300, now)
    assert "does not match" in refusal(secret, "d-1", stamp, signature, body.encode() + b" ", 300, now)
    assert "outside" in refusal(secret, "d-1", stamp, signature, body.encode(), 300, now + 301)
    assert "missing" in refusal(secret, "d-1", stamp, None, body.encode(), 300, now)


def test_delivery_ids_are_remembered_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "deliveries.log"
    seen = SeenDeliveries(path, 300)
    now = int(time.time())
    assert seen.first_time("d-1", now) and not seen.first_time("d-1", now)
    assert seen.first_time("d-old", now - 3600)
    restarted = SeenDeliveries(path, 300)
    assert not restarted.first_time("d-1", now)
    assert restarted.first_time("d-old", now - 3600)      # beyond the window: refused by its timestamp instead


def test_the_config_in_docs_automation_loads_as_printed(tmp_path: Path) -> None:
    """docs/automation.md's example, next to the shipped policies it names: it loads, subscribes to its
    two events and reads the secret from the variable it names."""
    import re
    import shutil

    from drift_decider.automation.config import load_config

    docs = (POLICY.parents[1] / "docs" / "automation.md").read_text()
    (tmp_path / "automation.yaml").write_text(re.search(r"```yaml\n(.*?)```", docs, re.S).group(1))
    shutil.copytree(POLICY.parent, tmp_path / "policies")
    config = load_config(tmp_path / "automation.yaml")
    assert config.events() == ["model_version.created", "model_version_alias.created"]
    assert config.listen == ("127.0.0.1", 8787) and config.route == "/mlflow-webhook"
    assert config.secret_env == "DRIFT_DECIDER_WEBHOOK_SECRET" and config.max_age_seconds == 300


def test_a_promote_job_with_a_policy_that_cannot_gate_is_refused_at_its_line(tmp_path: Path) -> None:
    """Review s7: promote refuses policies whose rules need earlier checks; a config naming one for a
    promote job loaded, and failed that job at every event instead."""
    config = tmp_path / "automation.yaml"
    config.write_text(GOOD.replace(str(GATE), str(POLICY)))
    output = run_cli("webhooks", "reconcile", "--config", config, expect=2).output
    assert f"{config}:13:19:" in output and "a promotion gate decides once, on no history" in output, output


def test_a_secret_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Review s8, hostile #7: `serve` hung at the start reading a FIFO given as secret_file."""
    import os

    os.mkfifo(tmp_path / "secret")
    config = tmp_path / "automation.yaml"
    config.write_text(GOOD.replace("  secret_env: DD_TEST_SECRET\n", f"  secret_file: {tmp_path / 'secret'}\n"))
    output = run_cli("serve", "--config", config, expect=2).output
    assert "receiver.secret_file names): not a regular file" in output, output
