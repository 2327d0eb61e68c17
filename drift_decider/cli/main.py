"""The `drift-decider` command line: a thin click shell over drift_decider.api.

Each command imports ``api`` when it runs, so that `--help` and option errors answer at once instead
of after loading numpy and the measurement code.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import click

from drift_decider import __version__
from drift_decider.cli.policy_commands import policy_group
from drift_decider.cli.serve_commands import serve_commands
from drift_decider.errors import DriftDeciderError, ExitCode, InputError, error_message, exit_code
from drift_decider.cli.table import fmt, render_table

# What each exit code means, once: the legend of `drift-decider --help` and the labels of each command's epilog.
_EXIT_MEANINGS = {
    ExitCode.OK: ("success (whatever the decision)", "success"),
    ExitCode.FAILURE: ("runtime failure (e.g. MLflow unreachable or refused a write)", "runtime failure"),
    ExitCode.BAD_INPUT: ("bad input or usage (missing file, NaN rows, dimension mismatch, invalid policy)",
                         "bad input"),
    ExitCode.GATED: ("`check --fail-on-action` and the decision is not `none`, or `promote --fail-on-block` and\n"
                     "     the gate blocked",
                     "decision not `none` (--fail-on-action) or gate blocked (--fail-on-block)"),
    ExitCode.IN_FLIGHT: ("another check holds the same window (check waited for it, then spooled its own; `sync`\n"
                         "     deferred an entry), an earlier window of the same model version is still being checked\n"
                         "     (check waited for it, then wrote nothing: run it again once that one has landed, after\n"
                         "     `drift-decider sync` where it failed), or `promote` lost the alias to a concurrent\n"
                         "     promotion (the alias was not moved)",
                         "a concurrent check or promotion"),
}
EXIT_CODES = ("\b\nExit codes (each command's help names the ones it can return):\n"
              + "".join(f"  {code:d}  {legend}\n" for code, (legend, _) in _EXIT_MEANINGS.items()))
# `sync`'s worst entry status decides its exit code, in this order of precedence
_SYNC_EXIT = (("unreachable", ExitCode.FAILURE), ("skipped", ExitCode.BAD_INPUT), ("deferred", ExitCode.IN_FLIGHT))


_INVOKED = "drift_decider.invoked"


def exit_codes(*codes: ExitCode) -> str:
    """A subcommand's epilog: the codes it can return in one line; the legend is shown once, in
    `drift-decider --help`, instead of in full under every command."""
    labels = (f"{code:d} {_EXIT_MEANINGS[ExitCode(code)][1]}" for code in codes)
    return f"Exit codes: {', '.join(labels)} (see drift-decider --help)."


def _bars(as_json: bool = False) -> bool:
    """Progress bars only on a terminal: piped or logged stderr would collect every redrawn frame."""
    return not as_json and sys.stderr.isatty()


def _dumps(value: Any) -> str:
    """JSON for stdout; times as ISO 8601 with a `T` and an offset (naive ones are UTC, as --window-end)."""
    return json.dumps(value, indent=2, default=_json_value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    return str(value)


class _Cli(click.Group):
    """Turns our errors into a one-line message and the documented exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # ours, or a bug or an environment failure: say so
            click.echo(f"error: {error_message(exc)}", err=True)
            if not isinstance(exc, DriftDeciderError) and os.environ.get("DRIFT_DECIDER_DEBUG"):
                traceback.print_exc()
            ctx.exit(exit_code(exc))


tracking_uri_option = click.option(
    "--tracking-uri", envvar=None, default=None, metavar="URI",
    help="MLflow tracking URI. Default: $MLFLOW_TRACKING_URI, else MLflow's default sqlite:///mlflow.db "
         "in the working folder. Credentials come from MLFLOW_TRACKING_USERNAME/PASSWORD or "
         "MLFLOW_TRACKING_TOKEN, as in MLflow.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
spool_option = click.option(
    "--spool-dir", default=None, type=click.Path(file_okay=False),
    help="Where a check MLflow could not take is saved whole for `drift-decider sync`. Default: "
         "$DRIFT_DECIDER_SPOOL_DIR, else .drift-decider/spool in the working folder.")


def evidence_options(command):
    """--catalog/--queries/--index: the optional inputs of structure, score and index-health metrics."""
    for option in reversed((
        click.option("--catalog", default=None, type=click.Path(),
                     help="Current item catalogue with ids (.npz/.parquet; with --engine spark a Parquet file or "
                          "directory). Default: --current, if it has ids. Enables structure metrics (k-NN "
                          "overlap, Procrustes, movement)."),
        click.option("--queries", default=None, type=click.Path(dir_okay=False),
                     help="A sample of today's query embeddings; needs item ids (--catalog, or --current with "
                          "ids). With reference queries (`reference set --queries`) it enables score metrics "
                          "(top-k similarity distribution); it also makes index recall use real queries."),
        click.option("--index", default=None, type=click.Path(exists=False),
                     help="The serving ANN index directory (hnswlib/faiss, written by ServingIndex.save) or "
                          "a .npz snapshot of the ids and vectors it was built from. Enables index health."),
    )):
        command = option(command)
    return command


seed_option = click.option("--seed", default=0, show_default=True, type=int,
                           help="Seed for every random choice (subsamples, permutations, projections).")


def engine_options(command):
    """--engine/--spark-master: profile Parquet tables on Spark (docs/spark.md) instead of in this process."""
    command = click.option("--spark-master", default="local[*]", show_default=True,
                           help="Spark master for --engine spark when no session is active (spark-submit "
                                "and Databricks provide one).")(command)
    return click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
                        help="spark: profile the inputs where they are, on Spark (pip install "
                             "'drift-decider[spark]'); the numbers are the local engine's.")(command)


@click.group(cls=_Cli, epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drift-decider")
def cli() -> None:
    """Decide what to do about embedding drift in a recommender, and keep the proof in MLflow.

    \b
    Typical flow, from an empty store:
      drift-decider register --model recsys
      drift-decider reference set --model recsys --version 1 --embeddings items.npz
      drift-decider check --model recsys --version 1 --current items-today.npz \\
          --policy policies/recommender-default.yaml
      drift-decider history --model recsys --version 1

    Start with `drift-decider demo` to see a whole season of drift on a local MLflow store.
    """
    # When the command began: a check launched with others waits about as long as it took from here to
    # claim its window, for the others to claim theirs (api.check ``launched_at``).
    click.get_current_context().meta[_INVOKED] = time.monotonic()
    # MLflow prints download bars and run URLs on stdout, which would corrupt --json output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


@cli.command(epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT))
@click.option("--reference", required=True, type=click.Path(), help="Reference embeddings "
              "(.npy, .npz or .parquet; with --engine spark a Parquet file or directory).")
@click.option("--current", required=True, type=click.Path(), help="Current embeddings, same dimension.")
@click.option("--alpha", default=0.01, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Significance level of the per-test verdict (the table only; --json gives the p-values).")
@seed_option
@json_option
@engine_options
def measure(reference: str, current: str, alpha: float, seed: int, as_json: bool, engine: str,
            spark_master: str) -> None:
    """Measure drift between two embedding files (no MLflow involved).

    Tests (metrics with a p-value) get a verdict at --alpha: `drift` when p < alpha. Other metrics
    are sizes of a change, with no verdict of their own.
    """
    from drift_decider import api

    report = (api.measure_tables(reference, current, seed=seed, spark_master=spark_master) if engine == "spark"
              else api.measure_files(reference, current, seed=seed, progress=_bars(as_json)))
    if as_json:
        click.echo(_dumps(report.to_dict()))
        return
    click.echo(f"reference n={report.inputs.get('n_reference')}  current n={report.inputs.get('n_current')}  "
               f"dim={report.inputs.get('dim')}  seed={seed}")
    click.echo(f"{'metric':<26}{'value':>12}{'p-value':>12}  verdict at alpha={alpha:g}")
    for result in report.results:
        value = "-" if result.value is None else f"{result.value:.4g}"
        p_value = "-" if result.p_value is None else f"{result.p_value:.3g}"
        click.echo(f"{result.name:<26}{value:>12}{p_value:>12}  {_verdict(result, alpha)}")


def _verdict(result, alpha: float) -> str:
    if result.status != "ok":
        return f"not computed: {result.detail.get('reason', result.status)}"
    if result.p_value is None:
        return "-"
    return "drift" if result.p_value < alpha else "no drift"


@cli.command(epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT))
@click.option("--model", required=True, help="Registered model name (created if new).")
@json_option
@tracking_uri_option
def register(model: str, as_json: bool, tracking_uri: str | None) -> None:
    """Register a new version of a model that lives outside MLflow, the first step on an empty store.

    Creates the registered model if it is new, and a version backed by an external LoggedModel (the
    page its metrics land on). Give it a reference next with `reference set`. A model you already
    log with an MLflow flavour has versions: use those.

    \b
    Example:
      drift-decider register --model recsys
      drift-decider reference set --model recsys --version 1 --embeddings items.npz
    """
    from drift_decider import api

    version = api.register(model, tracking_uri=tracking_uri)
    if as_json:
        click.echo(_dumps({"model": model, "version": version}))
    else:
        click.echo(f"registered {model} version {version}; next: drift-decider reference set --model "
                   f"{shlex.quote(model)} --version {version} --embeddings ITEMS")


@cli.group(cls=_Cli)
def reference() -> None:
    """Manage the reference embeddings stored with a model version."""


@reference.command("set", epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT))
@click.option("--model", required=True, help="Registered model name.")
@click.option("--version", required=True, help="Model version the reference belongs to.")
@click.option("--embeddings", required=True, type=click.Path(),
              help="Reference item embeddings (.npy is memory-mapped; .npz/.parquet may carry ids, which "
                   "enable structure metrics; with --engine spark a Parquet file or directory with ids).")
@click.option("--queries", default=None, type=click.Path(dir_okay=False),
              help="A sample of query embeddings at registration time (enables score and ranking metrics).")
@click.option("--sibling", "siblings", multiple=True, type=click.Path(),
              help="Item embeddings with ids from a refit that saw no new data (another seed, a subsample or "
                   "bootstrap of the training set; with --engine spark a Parquet file or directory). Repeat "
                   "for several; they give the noise floor each metric is judged against. Without one, the "
                   "default policy does not retrain on structure or rankings.")
@click.option("--sibling-queries", "sibling_queries", multiple=True, type=click.Path(dir_okay=False),
              help="The --queries users embedded by each sibling's own tower, in --sibling order (optional; "
                   "without them the reference queries stand in).")
@click.option("--replace", is_flag=True,
              help="Replace the reference the version has (refused without it: the checks recorded so far were "
                   "judged against that one, and its queries and noise floor would be lost).")
@seed_option
@tracking_uri_option
@engine_options
def reference_set(model: str, version: str, embeddings: str, queries: str | None, siblings: tuple[str, ...],
                  sibling_queries: tuple[str, ...], replace: bool, seed: int, tracking_uri: str | None, engine: str,
                  spark_master: str) -> None:
    """Summarise the reference once and store it as an artifact of the model version.

    Stores a mergeable profile (moments, sketches, a seeded sample) and, when the embeddings carry
    ids, a seeded id-keyed item sample; checks download this instead of the original vectors. With
    --sibling, every paired metric is measured between the reference and each sibling refit, and
    that noise floor is stored too: checks then log each metric's `.noise_units` beside it.

    \b
    Example:
      drift-decider reference set --model recsys --version 3 --embeddings items.npz \\
          --queries queries.npy --sibling items-seed1.npz --sibling items-seed2.npz
    """
    from drift_decider import api

    if engine == "spark" and (queries or sibling_queries):
        raise click.UsageError("--engine spark reads item tables: --queries and --sibling-queries need the local "
                               "engine")
    uri = (api.set_reference_table(model, version, embeddings, sibling_paths=siblings, tracking_uri=tracking_uri,
                                   seed=seed, spark_master=spark_master, replace_existing=replace) if engine == "spark"
           else api.set_reference(model, version, embeddings, queries_path=queries, sibling_paths=siblings,
                                  sibling_query_paths=sibling_queries, tracking_uri=tracking_uri, seed=seed,
                                  progress=_bars(), replace_existing=replace))
    click.echo(f"reference for {model} version {version} stored at {uri}")


@reference.command("noise", epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT))
@click.option("--model", required=True, help="Registered model name.")
@click.option("--version", required=True, help="Model version whose reference gets the floor.")
@click.option("--first-checks", "checks", required=True, type=click.IntRange(min=1),
              help="How many of the version's first recorded checks form the baseline (at least 3).")
@tracking_uri_option
def reference_noise(model: str, version: str, checks: int, tracking_uri: str | None) -> None:
    """Take the noise floor from a healthy baseline period, for a version without sibling refits.

    The values of each paired metric over the version's first N checks become its floor, stored with
    the reference exactly like a floor from `reference set --sibling`; checks after it log each
    metric's `.noise_units`. Choose checks you know were healthy: a drift inside the baseline raises
    the floor and hides itself. A version that already has a floor keeps it (exit 2).

    \b
    Example:
      drift-decider reference noise --model recsys --version 3 --first-checks 7
    """
    from drift_decider import api

    label = api.set_noise_floor_from_checks(model, version, checks=checks, tracking_uri=tracking_uri)
    click.echo(f"noise floor for {model} version {version}: {label}")


@cli.command(epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT, ExitCode.GATED, ExitCode.IN_FLIGHT))
@click.option("--model", required=True, help="Registered model name.")
@click.option("--version", default=None, help="Model version to check (or use --alias).")
@click.option("--alias", default=None, help="Alias naming the version to check, e.g. champion.")
@click.option("--current", required=True, type=click.Path(),
              help="Embeddings of the current window (.npy, .npz or .parquet; with --engine spark a Parquet "
                   "file or directory with ids, and --catalog too).")
@click.option("--policy", "policy_path", required=True, type=click.Path(dir_okay=False),
              help="Policy YAML, e.g. policies/recommender-default.yaml.")
@click.option("--window-id", default=None, help="Id of the window; the same id is never decided twice. "
              "Default: derived from the data's digest.")
@click.option("--window-end", default=None, metavar="ISO8601", help="End of the window (UTC if no offset). "
              "Default: now. Used as the metrics' timestamp and as the policy's clock.")
@click.option("--dry-run", is_flag=True, help="Measure and decide, but write nothing to MLflow (a window "
              "decided before returns its recorded decision).")
@click.option("--fail-on-action", is_flag=True, help="Exit 3 when the decision is not `none` (for CI gates).")
@click.option("--allow-id-mismatch", is_flag=True, help="Check even when under half of this window's ids are "
              "items the version learned (refused by default: usually another id column).")
@click.option("--data-growth", type=float, default=None, metavar="SHARE",
              help="Training interactions that arrived between the version's training cutoff and this check, "
                   "as a share of those it was trained on (0.3: 30 % more data than it saw). Logged as "
                   "data.growth; part of the window's digest. The default policy retrains past 0.25 (a "
                   "convention tied to siblings on 80 % of the data: data_growth_max). No embedding metric "
                   "can see this.")
@evidence_options
@seed_option
@json_option
@tracking_uri_option
@spool_option
@engine_options
def check(model: str, version: str | None, alias: str | None, current: str, policy_path: str,
          window_id: str | None, window_end: str | None, dry_run: bool, fail_on_action: bool,
          allow_id_mismatch: bool, data_growth: float | None, seed: int, as_json: bool, tracking_uri: str | None,
          spool_dir: str | None, catalog: str | None, queries: str | None, index: str | None, engine: str,
          spark_master: str) -> None:
    """Check one window of embeddings against a model version's reference and record the decision.

    Logs one MLflow run with every metric (tied to the version's LoggedModel), evaluates the policy
    over this check and the version's earlier checks, and tags run and model version with the decision.
    """
    from drift_decider import api

    outcome = api.check(model, current, policy_path, version=version, alias=alias, tracking_uri=tracking_uri,
                        window_id=window_id, window_end=window_end, dry_run=dry_run, seed=seed,
                        progress=_bars(as_json), spool_dir=spool_dir, catalog_path=catalog, queries_path=queries,
                        index_path=index, allow_id_mismatch=allow_id_mismatch,
                        launched_at=click.get_current_context().meta[_INVOKED], engine=engine,
                        spark_master=spark_master, data_growth=data_growth)
    if as_json:
        click.echo(_dumps(outcome.to_dict()))
    else:
        _print_outcome(outcome)
    if fail_on_action and outcome.action != "none":
        sys.exit(ExitCode.GATED)


def _print_outcome(outcome) -> None:
    where = ("dry run: nothing written" if outcome.run_id is None else
             f"run {outcome.run_id}" + (" (decided earlier; nothing new written)" if outcome.already_recorded else ""))
    click.echo(f"{outcome.model} v{outcome.version}  window {outcome.window.window_id} "
               f"(ends {outcome.window.window_end.isoformat()})")
    click.echo(f"decision: {outcome.action}" + (f"  rule: {outcome.decision.get('rule_id')}"
                                                if outcome.decision.get("rule_id") else ""))
    explanation = outcome.decision.get("explanation")
    if explanation:
        click.echo(f"why: {explanation}")
    if outcome.held:
        click.echo(f"held back: {outcome.held}")
    if outcome.not_measured != "none":
        click.echo(f"not measured: {outcome.not_measured}")
    click.echo(where)



@cli.command(epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT))
@click.option("--workdir", default="drift-decider-demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo's sqlite MLflow store, artifacts and data (created if missing).")
@click.option("--force", is_flag=True, help="Delete an earlier demo in --workdir (its store, artifacts and data, "
              "complete or half-built) and start over.")
@seed_option
@json_option
def demo(workdir: str, force: bool, seed: int, as_json: bool) -> None:
    """Replay a season of drift against a local MLflow store and show every decision.

    Registers a recommender's item embeddings as a model version (with three sibling refits as its
    noise floor), then checks daily windows: a quiet period, a nightly refit with no new data, an index
    going stale, a score-scale shift (a calibration warning: rankings stay, so `none`), an item tower
    exported with its axes shuffled and users turning to what the catalogue lacks.
    """
    from drift_decider.demo.run import run_demo

    result = run_demo(workdir, seed=seed, progress=_bars(as_json), force=force)
    if as_json:
        click.echo(_dumps(result.to_dict()))
    else:
        click.echo(result.table())


@cli.command(epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT, ExitCode.IN_FLIGHT))
@tracking_uri_option
@spool_option
@json_option
def sync(tracking_uri: str | None, spool_dir: str | None, as_json: bool) -> None:
    """Land checks that were spooled while MLflow was unreachable (each exactly once).

    Each entry goes to the store it was spooled for, unless --tracking-uri names one (credentials
    come from MLFLOW_TRACKING_USERNAME/PASSWORD or _TOKEN). A check that MLflow failed before it
    was decided is decided now, by the policy file it names, if unchanged. An entry whose window (or
    an earlier one) another check is writing right now is left in the spool as `deferred` (exit 4);
    one the store or the policy cannot take is `skipped`, kept, and says why (exit 2); one whose store
    cannot be reached is `unreachable` and kept (exit 1). Entries go in window order, and one store
    being down holds back only its own entries.
    """
    from drift_decider import api

    outcomes = api.sync(tracking_uri=tracking_uri, spool_dir=spool_dir)
    deferred = sum(outcome["status"] == "deferred" for outcome in outcomes)
    if as_json:
        click.echo(_dumps(outcomes))
    else:
        for outcome in outcomes:
            if outcome["status"] in ("deferred", "skipped", "unreachable"):
                click.echo(f"{outcome['entry']}: {outcome['status']}, {outcome['reason']}")
            else:
                click.echo(f"{outcome['entry']}: {outcome['status']} as run {outcome['run_id']} "
                           f"(decision {outcome['decision']})")
        kept = sum(outcome["status"] in ("skipped", "unreachable") for outcome in outcomes)
        click.echo(f"{len(outcomes) - deferred - kept} spooled check(s) synced, {deferred} deferred, "
                   f"{kept} skipped or unreachable (kept in the spool)")
    statuses = {outcome["status"] for outcome in outcomes}
    for status, code in _SYNC_EXIT:
        if status in statuses:
            sys.exit(code)


PLOT_TYPES = (".png", ".svg", ".pdf")


def _output_file(text: str | None, option: str, suffixes: tuple[str, ...]) -> Path | None:
    """An output file option, refused before anything is read when it names a type we cannot write."""
    if text is None:
        return None
    if Path(text).suffix.lower() not in suffixes:
        raise click.BadParameter(f"{text!r}: expected a {', '.join(suffixes)} file", param_hint=option)
    return Path(text)


def _write(path: Path, write: Callable[[], Any]) -> None:
    """Write an output file, its folder created if missing; a path that cannot hold it is bad input."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write()
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None


@cli.command("history", epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT))
@click.option("--model", required=True, help="Registered model name.")
@click.option("--version", default=None, help="Only this version (default: all versions).")
@click.option("--since", default=None, metavar="ISO8601", help="Only windows ending at or after this time.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Also write a plot of the headline metrics with a marker per decision (.png, .svg or .pdf).")
@click.option("--html", "html_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the version's drift report: one self-contained HTML file (key metrics over "
                   "windows with thresholds, noise floor and decision markers, held rules, the latest "
                   "evidence and rule trace), as each check attaches it in MLflow. Needs --version.")
@json_option
@tracking_uri_option
def history_cmd(model: str, version: str | None, since: str | None, plot_path: str | None, html_path: str | None,
                as_json: bool, tracking_uri: str | None) -> None:
    """Show every recorded check of a model: window, key metrics, decision, rule, run."""
    from drift_decider import api

    html_file, plot_file = _output_file(html_path, "--html", (".html",)), _output_file(plot_path, "--plot", PLOT_TYPES)
    if html_file:       # first: without --version it is refused before anything is printed
        report = api.history_report(model, version=version, since=since, tracking_uri=tracking_uri)
        _write(html_file, lambda: html_file.write_text(report, encoding="utf-8"))
    rows = api.history(model, version=version, since=since, tracking_uri=tracking_uri)
    if plot_file:
        from drift_decider.cli.plots import plot_history

        _write(plot_file, lambda: plot_history(rows, api.HEADLINE_METRICS, plot_file,
                                               f"{model}" + (f" v{version}" if version else "")))
    if as_json:
        click.echo(_dumps(rows))
        return
    shown = [m for m in api.HEADLINE_METRICS if any(m in row["metrics"] for row in rows)]
    click.echo(render_table(["window end", "window", "v"] + shown + ["decision", "rule", "held back", "noise floor",
                                                                     "decision id", "run"],
                            [[row["window_end"].strftime("%Y-%m-%d %H:%M"), row["window_id"], row["version"]]
                             + [fmt(row["metrics"].get(m)) for m in shown]
                             + [row["action"], row["rule_id"] or "-", row["held"] or "-", row["noise_floor"] or "-",
                                row["decision_id"][:12], row["run_id"][:8]]
                             for row in rows]))
    if rows:
        click.echo("drift-decider audit --decision-id ID shows one decision in full")
    if plot_path:
        click.echo(f"plot written to {plot_path}")
    if html_path:
        click.echo(f"report written to {html_path}")


@cli.command(epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT))
@click.option("--decision-id", default=None, metavar="ID", help="A decision id, or a unique prefix of one (at "
              "least 6 hex digits, as `history` shows them), or the check's run id.")
@click.option("--model", default=None, help="With --version and --window-id: the decision of that window.")
@click.option("--version", default=None, help="Model version of --window-id.")
@click.option("--window-id", default=None, help="Window whose decision to show.")
@json_option
@tracking_uri_option
def audit(decision_id: str | None, model: str | None, version: str | None, window_id: str | None, as_json: bool,
          tracking_uri: str | None) -> None:
    """Show one decision's full record, rebuilt from MLflow alone: why, every rule's conditions with
    the value and threshold each compared, and the rules held back.

    \b
    Examples:
      drift-decider audit --decision-id 55c8d8a8
      drift-decider audit --model recsys --version 1 --window-id 2026-11-25
    """
    from drift_decider import api

    record = api.audit(decision_id, model=model, version=version, window_id=window_id, tracking_uri=tracking_uri)
    if as_json:
        click.echo(_dumps(record))
        return
    decision, run_tags = record["decision"], record["run_tags"]
    context = decision.get("inputs", {}).get("context", {})
    click.echo(f"decision {decision['action']}" + (f" by rule {decision['rule_id']}" if decision.get("rule_id") else "")
               + f"  (id {decision['decision_id']})")
    click.echo(f"window {run_tags.get('drift_decider.window_id')} of {run_tags.get('drift_decider.model')} "
               f"version {run_tags.get('drift_decider.version')}, ends {run_tags.get('drift_decider.window_end')}; "
               f"run {record['run_id']}")
    click.echo(f"policy {decision['policy']['name']}@{decision['policy']['version']} "
               f"(sha256 {decision['policy']['sha256'][:12]}), mode {decision.get('mode')}; "
               f"noise floor {context.get('noise_floor', 'none')}")
    if decision.get("explanation"):
        click.echo(f"why: {decision['explanation']}")
    if record["held"]:
        click.echo(f"held back: {record['held']}")
    if context.get("not_measured", "none") != "none":
        click.echo(f"not measured: {context['not_measured']}")
    click.echo(render_table(["rule", "condition", "value", "threshold", "outcome"],
                            [[c.get("rule", "-"), c.get("text", "-"), fmt(c.get("value")), fmt(c.get("threshold")),
                              c.get("outcome", "-")] for c in decision.get("conditions", [])]))


@cli.command(epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT, ExitCode.GATED, ExitCode.IN_FLIGHT))
@click.option("--model", required=True, help="Registered model name.")
@click.option("--candidate", required=True, help="Version that wants the alias.")
@click.option("--alias", default="champion", show_default=True, help="Alias to move when the gate passes.")
@click.option("--current", required=True, type=click.Path(dir_okay=False), help="Current production embeddings.")
@click.option("--policy", "policy_path", required=True, type=click.Path(dir_okay=False),
              help="Gate policy, e.g. policies/promotion-gate.yaml; the gate passes when it decides `none`.")
@click.option("--dry-run", is_flag=True, help="Evaluate the gate; record nothing, move nothing.")
@click.option("--fail-on-block", is_flag=True, help="Exit 3 when the gate blocks (for pipelines).")
@click.option("--allow-id-mismatch", is_flag=True, help="Gate even when under half of the data's ids are items "
              "the candidate learned (refused by default: usually another id column).")
@evidence_options
@seed_option
@json_option
@tracking_uri_option
@spool_option
def promote(model: str, candidate: str, alias: str, current: str, policy_path: str, dry_run: bool,
            fail_on_block: bool, allow_id_mismatch: bool, seed: int, as_json: bool, tracking_uri: str | None,
            spool_dir: str | None,
            catalog: str | None, queries: str | None, index: str | None) -> None:
    """Move ALIAS to the candidate version only if the gate policy passes on current data.

    The gate measures today's production data (--current; --queries and --index too: the shipped
    promotion-gate policy fails closed without index evidence) against the candidate's reference
    (`reference set`), and passes when the policy decides `none`. The decision is recorded on the
    candidate either way; the alias moves only on a pass, and the command to undo it is printed.
    Promoting the version that holds the alias already does nothing.
    """
    from drift_decider import api

    outcome = api.promote(model, candidate, alias, current, policy_path, tracking_uri=tracking_uri,
                          dry_run=dry_run, seed=seed, progress=_bars(as_json), spool_dir=spool_dir,
                          catalog_path=catalog, queries_path=queries, index_path=index,
                          allow_id_mismatch=allow_id_mismatch)
    if as_json:
        click.echo(_dumps(outcome.to_dict()))
    elif outcome.already_held:
        click.echo(f"version {candidate} already holds alias {alias!r}: nothing gated, recorded or moved")
    else:
        _print_promotion(outcome, dry_run)
    if fail_on_block and not outcome.passed:
        sys.exit(ExitCode.GATED)


def _print_promotion(outcome, dry_run: bool) -> None:
    verdict = "PASSED" if outcome.passed else "BLOCKED"
    click.echo(f"gate {verdict}: decision {outcome.decision['action']}"
               + (f" by rule {outcome.decision.get('rule_id')}" if outcome.decision.get("rule_id") else ""))
    if outcome.decision.get("explanation"):
        click.echo(f"why: {outcome.decision['explanation']}")
    if outcome.moved:
        click.echo(f"alias {outcome.alias!r} moved to version {outcome.candidate} "
                   f"(previous holder: {outcome.previous_holder or 'none'})")
        if outcome.undo:
            click.echo(f"undo: {outcome.undo}")
    elif dry_run:
        click.echo("dry run: nothing recorded, alias not moved")
    else:
        click.echo(f"alias {outcome.alias!r} stays on version {outcome.previous_holder or '(unset)'}")


@cli.command(epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT, ExitCode.IN_FLIGHT))
@click.option("--model", required=True, help="Registered model name.")
@click.option("--alias", default="champion", show_default=True, help="Alias to move back.")
@click.option("--to", "to_version", required=True, help="The version that held the alias before.")
@tracking_uri_option
def rollback(model: str, alias: str, to_version: str, tracking_uri: str | None) -> None:
    """Move ALIAS back to an earlier holder without a gate: the undo `promote` prints.

    Only backwards: the alias must be set, and --to older than its holder or the version the
    holder's promotion replaced (moving forward is a promotion, through its gate). The version moved
    away from is tagged, so the registry automation (`serve`, `webhooks reconcile`) never gates it,
    or an older one, for this alias again.

    \b
    Example:
      drift-decider rollback --model recsys --alias champion --to 3
    """
    from drift_decider import api

    before = api.rollback(model, alias, to_version, tracking_uri=tracking_uri)
    click.echo(f"alias {alias!r} of {model} already on version {to_version}" if before == to_version else
               f"alias {alias!r} of {model} moved back to version {to_version} (from {before or '(unset)'})")


cli.add_command(policy_group)
for _command in serve_commands(exit_codes, tracking_uri_option, json_option):
    cli.add_command(_command)


def main() -> None:
    # `timeout`, systemd and Kubernetes stop a process with SIGTERM (a closed terminal: SIGHUP): handled
    # as Ctrl-C, so a check releases the window it claimed instead of holding later windows for an hour
    # (only where the default is in place: `nohup` ignores SIGHUP, and that must hold)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _interrupted)
    cli(prog_name="drift-decider")


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
