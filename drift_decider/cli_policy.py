"""``drift-decider policy validate|test|explain|backtest``: review, test and dry-run decision policies.

Exit codes (all four commands): 0 ok; 2 invalid policy, failing policy test or bad input;
1 unexpected runtime failure.
"""

from __future__ import annotations

import json
import stat
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import click

from drift_decider.errors import DriftDeciderError, InputError, PolicyError
from drift_decider.policy import History, evaluate, lint, load_policy
from drift_decider.catalog import metric_keys
from drift_decider.policy.fields import suggest
from drift_decider.policy.history import history_rows, parse_time
from drift_decider.policy.backtest import recorded_from_rows, replay, summary
from drift_decider.policy.testing import run_test_file
from drift_decider.table import render_table

EXIT_HELP = "Exit codes: 0 ok; 2 invalid policy, failing policy test or bad input; 1 unexpected failure."
MAX_INPUT_BYTES = 50_000_000
FILE = click.Path(dir_okay=False)


def _guard(body: Callable[[], int], as_json: bool) -> None:
    """Run a command body, mapping errors to exit codes and clear messages instead of tracebacks."""
    try:
        code = body()
    except DriftDeciderError as exc:
        _emit_error(str(exc), exc.exit_code, as_json)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: report, exit 1
        _emit_error(f"unexpected failure: {type(exc).__name__}: {exc}", 1, as_json)
    else:
        sys.exit(code)


def _emit_error(message: str, code: int, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"ok": False, "error": message}))
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group("policy", help=f"Validate, test, explain and backtest decision policies.\n\n{EXIT_HELP}")
def policy_group() -> None:
    """Command group; the subcommands do the work."""


@policy_group.command("validate", help="Check policy files strictly and warn about rules that cannot fire."
                      f"\n\n{EXIT_HELP}")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 2).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def validate_cmd(files: tuple[str, ...], strict: bool, as_json: bool) -> None:
    def body() -> int:
        reports, failed = [], False
        for name in files:
            try:
                policy = load_policy(name)
            except PolicyError as exc:
                failed = True
                reports.append({"file": name, "ok": False, "error": str(exc), "warnings": []})
                continue
            warnings = [str(w) for w in lint(policy)]
            failed |= strict and bool(warnings)
            reports.append({"file": name, "ok": not (strict and warnings), "policy": policy.name,
                            "version": policy.version, "sha256": policy.sha256, "rules": len(policy.rules),
                            "mode": policy.mode, "warnings": warnings})
        if as_json:
            click.echo(json.dumps({"ok": not failed, "files": reports}, indent=2))
        else:
            for report in reports:
                if "error" in report:
                    click.echo(report["error"], err=True)
                    continue
                for warning in report["warnings"]:
                    click.echo(warning, err=True)
                click.echo(f"{report['file']}: ok: policy {report['policy']} v{report['version']}, "
                           f"{report['rules']} rules, mode {report['mode']}, sha256 {report['sha256'][:12]}")
        return 2 if failed else 0
    _guard(body, as_json)


@policy_group.command("test", help="Run policy test files (kind: PolicyTest); see docs/policies.md."
                      f"\n\n{EXIT_HELP}")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def test_cmd(files: tuple[str, ...], as_json: bool) -> None:
    def body() -> int:
        results, failed = [], False
        for name in files:
            try:
                result = run_test_file(name)
            except PolicyError as exc:
                failed = True
                results.append({"file": name, "ok": False, "error": str(exc)})
                if not as_json:
                    click.echo(str(exc), err=True)
                continue
            failed |= not result.ok
            results.append(result.to_dict())
            if not as_json:
                for failure in result.failures:
                    click.echo(failure.render(), err=True)
                verdict = "ok" if result.ok else f"FAILED ({len(result.failures)} failing expectations)"
                click.echo(f"{name}: {verdict}: {result.scenarios} scenarios, "
                           f"{result.expectations} expectations")
        if as_json:
            click.echo(json.dumps({"ok": not failed, "files": results}, indent=2))
        return 2 if failed else 0
    _guard(body, as_json)


@policy_group.command("explain", help=f"Evaluate a policy on metrics (and history) and show why.\n\n"
                      f"METRICS is a JSON object of metric name to number (or an evidence report with a "
                      f"'values' object); HISTORY is a JSON list of check records.\n\n{EXIT_HELP}")
@click.option("--policy", "policy_path", required=True, type=FILE, help="Policy YAML file.")
@click.option("--metrics", "metrics_path", required=True, type=FILE, help="Metrics JSON.")
@click.option("--history", "history_path", type=FILE, help="History JSON (list of checks).")
@click.option("--now", help="Decision time, ISO-8601 (default: the current UTC time).")
@click.option("--context", "context", multiple=True, metavar="KEY=VALUE",
              help="Context such as model=recsys (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the full decision record as JSON.")
def explain_cmd(policy_path: str, metrics_path: str, history_path: str | None, now: str | None,
                context: tuple[str, ...], as_json: bool) -> None:
    def body() -> int:
        policy = load_policy(policy_path)
        metrics = _read_json(metrics_path, "metrics")
        if isinstance(metrics, dict) and isinstance(metrics.get("values"), dict):
            metrics = metrics["values"]
        _refuse_unknown_metrics(metrics, metrics_path)
        rows = history_rows(_read_json(history_path, "history"), f"{history_path}: history") if history_path else []
        ctx = {}
        for item in context:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise InputError(f"--context {item!r}: expected KEY=VALUE")
            ctx[key] = value
        moment = now if now is not None else datetime.now(timezone.utc)
        decision = evaluate(policy, metrics, History.from_dicts(rows), parse_time(moment, "--now"),
                            context=ctx)
        click.echo(json.dumps(decision.to_dict(), indent=2) if as_json else decision.explain())
        return 0
    _guard(body, as_json)


@policy_group.command("backtest", help=f"Replay recorded checks through a policy: what it would have decided.\n\n"
                      f"HISTORY is a JSON list of one model version's check records, oldest first (as "
                      f"`drift-decider history --model M --version V --json` prints them, or as `policy explain "
                      f"--history` takes them). Each check is decided on its own metrics at its own time and "
                      f"with the context a live check uses; the history it sees holds the decisions replayed "
                      f"before it, counted as enforced, so cooldowns and `for` follow what this policy would have "
                      f"done in charge. Checks before --since are taken as recorded. A `*` marks checks whose "
                      f"action (or recorded rule) differs. Replaying a version's whole history through the policy "
                      f"that recorded it gives back every recorded decision id (a dry-run policy's with "
                      f"--as-policy-mode). Try a new policy version on last quarter before it goes live:\n\n"
                      f"\b\n  drift-decider history --model recsys --version 3 --json > h.json\n"
                      f"  drift-decider policy backtest --policy v2.yaml --history h.json --since 2026-09-01\n\n"
                      f"{EXIT_HELP}")
@click.option("--policy", "policy_path", required=True, type=FILE, help="Policy YAML file.")
@click.option("--history", "history_path", required=True, type=FILE, help="History JSON (list of checks).")
@click.option("--since", help="Replay checks decided at or after this ISO-8601 time (default: all).")
@click.option("--as-policy-mode", is_flag=True,
              help="Record replayed decisions in the policy's own mode, as a live check does (a dry-run "
                   "policy's then start no cooldowns) instead of as enforced.")
@click.option("--json", "as_json", is_flag=True, help="Print every replayed decision and the summary as JSON.")
def backtest_cmd(policy_path: str, history_path: str, since: str | None, as_policy_mode: bool,
                 as_json: bool) -> None:
    def body() -> int:
        policy = load_policy(policy_path)
        before, recorded = recorded_from_rows(_read_json(history_path, "history"),
                                              parse_time(since, "--since") if since else None)
        steps = [step.to_dict() for step in replay(policy, recorded, history=before,
                                                   as_enforced=not as_policy_mode)]
        totals = summary(steps)
        if as_json:
            click.echo(json.dumps({"ok": True, "policy": {"name": policy.name, "version": policy.version,
                                                          "sha256": policy.sha256},
                                   "history_checks": len(before), "summary": totals, "steps": steps}, indent=2))
            return 0
        if not steps:
            click.echo("warning: no check to replay" + (f" ({len(before)} recorded before --since)" if since
                                                         else ": the history has no checks"), err=True)
        click.echo(render_table(["decided at", "window", "recorded", "backtest", "rule"],
                                [[row["decided_at"], row["window_id"], row["recorded"]["action"],
                                  row["action"] + ("" if row["same"] else "  *"), row["rule_id"] or "-"]
                                 for row in steps]))
        click.echo(f"{policy.name} v{policy.version} over {_plural(totals['checks'], 'check')} "
                   f"(after {len(before)} recorded): {_counts(totals['actions'])}; recorded: "
                   f"{_counts(totals['recorded_actions'])}; same decision on {totals['same']}, same decision "
                   f"id on {totals['same_decision_id']}")
        return 0
    _guard(body, as_json)


def _counts(actions: dict[str, int]) -> str:
    return ", ".join(f"{action} {n}" for action, n in actions.items()) or "none"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _refuse_unknown_metrics(metrics: Any, path: str) -> None:
    """A misspelt key would read as a missing metric and fire no rule, silently: name it instead."""
    if not isinstance(metrics, dict):
        return
    known = metric_keys()
    unknown = [key for key in metrics if key not in known]
    if unknown:
        raise InputError(f"{path}: unknown metric {unknown[0]!r}{suggest(str(unknown[0]), known)}"
                         + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""))


def _read_json(path: str, what: str) -> Any:
    p = Path(path)
    try:
        info = p.stat()    # stat never blocks; opening a FIFO would, forever
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path}: {what} file is not a regular file (a FIFO or device could block forever)")
        if info.st_size > MAX_INPUT_BYTES:
            raise InputError(f"{path}: {what} file is larger than {MAX_INPUT_BYTES} bytes")
        return json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} file: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: {what} file is not valid JSON: {exc}") from None
