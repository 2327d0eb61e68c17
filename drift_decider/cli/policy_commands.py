"""``drift-decider policy validate|test|explain|backtest``: review, test and dry-run decision policies.

A shell over the policy functions of ``drift_decider.api``; all four commands share one set of exit
codes (EXIT_HELP).
"""

from __future__ import annotations

import json
import sys
from typing import Callable

import click

from drift_decider.errors import ExitCode, InputError, error_message, exit_code
from drift_decider.cli.table import render_table

EXIT_HELP = (f"Exit codes: {ExitCode.OK:d} ok; {ExitCode.BAD_INPUT:d} invalid policy, failing policy test or bad "
             f"input; {ExitCode.FAILURE:d} unexpected failure.")
FILE = click.Path(dir_okay=False)


def _guard(body: Callable[[], ExitCode], as_json: bool) -> None:
    """Run a command body; a failure becomes its exit code and one clear message (JSON with --json)
    instead of a traceback."""
    try:
        code = body()
    except Exception as exc:  # noqa: BLE001 - the last line of defence: report, exit with its code
        if as_json:
            click.echo(json.dumps({"ok": False, "error": error_message(exc)}))
        else:
            click.echo(f"error: {error_message(exc)}", err=True)
        sys.exit(exit_code(exc))
    sys.exit(code)


def _failed_if(failed: bool) -> ExitCode:
    return ExitCode.BAD_INPUT if failed else ExitCode.OK


@click.group("policy", help=f"Validate, test, explain and backtest decision policies.\n\n{EXIT_HELP}")
def policy_group() -> None:
    """Command group; the subcommands do the work."""


@policy_group.command("validate", help="Check policy files strictly and warn about rules that cannot fire."
                      f"\n\n{EXIT_HELP}")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 2).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def validate_cmd(files: tuple[str, ...], strict: bool, as_json: bool) -> None:
    def body() -> ExitCode:
        from drift_decider import api      # loaded when a command runs: `--help` stays instant

        validated = api.validate_policies(files, strict=strict)
        if as_json:
            click.echo(json.dumps(validated, indent=2))
        else:
            for report in validated["files"]:
                if "error" in report:
                    click.echo(report["error"], err=True)
                    continue
                for warning in report["warnings"]:
                    click.echo(warning, err=True)
                click.echo(f"{report['file']}: ok: policy {report['policy']} v{report['version']}, "
                           f"{report['rules']} rules, mode {report['mode']}, sha256 {report['sha256'][:12]}")
        return _failed_if(not validated["ok"])
    _guard(body, as_json)


@policy_group.command("test", help="Run policy test files (kind: PolicyTest); see docs/policies.md."
                      f"\n\n{EXIT_HELP}")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def test_cmd(files: tuple[str, ...], as_json: bool) -> None:
    def body() -> ExitCode:
        from drift_decider import api

        runs = api.run_policy_tests(files)
        if as_json:
            click.echo(json.dumps({"ok": all(run.ok for run in runs), "files": [run.to_dict() for run in runs]},
                                  indent=2))
        for run in [] if as_json else runs:
            if run.result is None:
                click.echo(run.error, err=True)
                continue
            for failure in run.result.failures:
                click.echo(failure.render(), err=True)
            verdict = "ok" if run.ok else f"FAILED ({len(run.result.failures)} failing expectations)"
            click.echo(f"{run.path}: {verdict}: {run.result.scenarios} scenarios, "
                       f"{run.result.expectations} expectations")
        return _failed_if(not all(run.ok for run in runs))
    _guard(body, as_json)


@policy_group.command("explain", help=f"Evaluate a policy on metrics (and history) and show why.\n\n"
                      f"METRICS is a JSON object of metric name to number (or an evidence report with a "
                      f"'values' object); HISTORY is a JSON list of check records.\n\n{EXIT_HELP}")
@click.option("--policy", "policy_path", required=True, type=FILE, help="Policy YAML file.")
@click.option("--metrics", "metrics_path", required=True, type=FILE,
              help="Metrics JSON: an object of metric to number, the check's evidence.json artifact, or what "
                   "`check`, `promote` or `audit` print with --json.")
@click.option("--history", "history_path", type=FILE, help="History JSON (list of checks).")
@click.option("--now", help="Decision time, ISO-8601 (default: the current UTC time).")
@click.option("--context", "context", multiple=True, metavar="KEY=VALUE",
              help="Context such as model=recsys (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the full decision record as JSON.")
def explain_cmd(policy_path: str, metrics_path: str, history_path: str | None, now: str | None,
                context: tuple[str, ...], as_json: bool) -> None:
    def body() -> ExitCode:
        from drift_decider import api

        ctx = {}
        for item in context:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise InputError(f"--context {item!r}: expected KEY=VALUE")
            ctx[key] = value
        decision = api.explain(policy_path, metrics_path, history_path=history_path, now=now, context=ctx)
        click.echo(json.dumps(decision.to_dict(), indent=2) if as_json else decision.explain())
        return ExitCode.OK
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
    def body() -> ExitCode:
        from drift_decider import api

        result = api.backtest(policy_path, history_path, since=since, as_policy_mode=as_policy_mode)
        steps, totals, before = result.steps, result.summary, result.history_checks
        if as_json:
            click.echo(json.dumps(result.to_dict(), indent=2))
            return ExitCode.OK
        if not steps:
            click.echo("warning: no check to replay" + (f" ({before} recorded before --since)" if since
                                                         else ": the history has no checks"), err=True)
        click.echo(render_table(["decided at", "window", "recorded", "backtest", "rule"],
                                [[row["decided_at"], row["window_id"], row["recorded"]["action"],
                                  row["action"] + ("" if row["same"] else "  *"), row["rule_id"] or "-"]
                                 for row in steps]))
        click.echo(f"{result.policy['name']} v{result.policy['version']} over {_plural(totals['checks'], 'check')} "
                   f"(after {before} recorded): {_counts(totals['actions'])}; recorded: "
                   f"{_counts(totals['recorded_actions'])}; same decision on {totals['same']}, same decision "
                   f"id on {totals['same_decision_id']}")
        return ExitCode.OK
    _guard(body, as_json)


def _counts(actions: dict[str, int]) -> str:
    return ", ".join(f"{action} {n}" for action, n in actions.items()) or "none"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
