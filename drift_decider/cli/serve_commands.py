"""`drift-decider serve` and `drift-decider webhooks register|reconcile`: registry automation, a thin
shell over drift_decider.automation (which calls drift_decider.api, like every other command).

Built by ``serve_commands(...)`` from main's exit-code epilog and shared options, so this module
does not import main (which registers these commands).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import click

from drift_decider.errors import ExitCode, redact

CONFIG_HELP = "The automation config (YAML): receiver URL and secret source, models, their events and jobs."
# a pass's worst failed job decides its exit code, in this order of precedence (as `sync`)
_PASS_EXIT = (ExitCode.FAILURE, ExitCode.BAD_INPUT, ExitCode.IN_FLIGHT)


def serve_commands(exit_codes: Callable[..., str], tracking_uri_option: Callable,
                   json_option: Callable) -> list[click.Command]:
    """The commands, to be added to the `drift-decider` group."""
    config_option = click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
                                 help=CONFIG_HELP)

    @click.command(epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT))
    @config_option
    @click.option("--reconcile", is_flag=True, help="Catch up first: run the jobs deliveries missed while the "
                  "receiver was down (see `webhooks reconcile`), before taking deliveries.")
    @click.option("--reconcile-every", default=None, type=click.IntRange(min=1), metavar="SECONDS",
                  help="Also catch up every SECONDS (implies --reconcile), e.g. 3600: deliveries MLflow gave "
                       "up on, jobs that failed until their input arrived, and the daily check of an alias "
                       "holder.")
    @tracking_uri_option
    def serve(config_path: str, reconcile: bool, reconcile_every: int | None, tracking_uri: str | None) -> None:
        """Receive MLflow's registry webhooks and run the configured jobs.

        Each delivery's HMAC signature (X-MLflow-Signature) is verified with the secret the config
        names; a stale timestamp or a delivery id seen before runs nothing. A new model version then
        gets its reference set from the config's location template and is gated for the alias on
        today's production data (the alias moves only when the gate passes); an alias move gets its
        new holder checked. Everything is recorded exactly as the CLI records it. One JSON line per
        delivery and per job result goes to stdout. Stop with Ctrl-C or SIGTERM.

        \b
        Example (next to `mlflow server`; see docs/automation.md):
          export DRIFT_DECIDER_WEBHOOK_SECRET=$(openssl rand -hex 32)
          drift-decider webhooks register --config automation.yaml
          drift-decider serve --config automation.yaml --reconcile-every 3600
        """
        from drift_decider.automation.config import load_config
        from drift_decider.automation.receiver import Receiver, log, serve as run_server
        from drift_decider.automation.reconcile import reconcile as reconcile_pass

        config = load_config(config_path)
        uri = tracking_uri or config.tracking_uri
        receiver = Receiver(config, config.secret(), uri)

        def catch_up() -> None:
            for result in reconcile_pass(config, tracking_uri=uri):
                log({"reconcile": True, **result})

        run_server(receiver, reconcile_every=reconcile_every,
                   reconcile=catch_up if reconcile or reconcile_every else None)

    @click.group("webhooks")
    def webhooks() -> None:
        """Register the receiver's webhook in MLflow, and catch up missed deliveries."""

    @webhooks.command("register", epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT))
    @config_option
    @json_option
    @tracking_uri_option
    def register(config_path: str, as_json: bool, tracking_uri: str | None) -> None:
        """Create (or update) the webhook that sends the config's events to its receiver URL.

        Subscribes to the events some job needs, signed with the config's secret (MLflow stores it
        encrypted with MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY). Running it again updates the webhook of
        the same name. The tracking server caches its webhook list for up to 60 s: register before
        the first version you want handled is created.

        \b
        Example:
          drift-decider webhooks register --config automation.yaml --tracking-uri http://127.0.0.1:5000
        """
        from drift_decider import api
        from drift_decider.automation.config import load_config

        config = load_config(config_path)
        hook = api.register_webhooks(config.webhook_name, config.url, config.events(), config.secret(),
                                     description=f"drift-decider serve --config {config.path.name}",
                                     tracking_uri=tracking_uri or config.tracking_uri)
        hook = {**hook, "url": redact(hook["url"])}     # a receiver behind basic auth has user:password@ in it
        if as_json:
            click.echo(json.dumps(hook, indent=2))
        else:
            click.echo(f"webhook {hook['name']} ({hook['webhook_id']}) {'created' if hook['created'] else 'updated'}:"
                       f" {', '.join(hook['events'])} -> {hook['url']}")

    @webhooks.command("reconcile", epilog=exit_codes(ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT,
                                                     ExitCode.IN_FLIGHT))
    @config_option
    @json_option
    @tracking_uri_option
    def reconcile(config_path: str, as_json: bool, tracking_uri: str | None) -> None:
        """Run once what deliveries missed, by comparing the registry with the recorded decisions.

        Versions without a reference get one; versions newer than the alias holder with no gate
        decision for the alias are gated, oldest first; the holder of an alias with a check job is
        checked on today's window (once per window). Exits with the worst failed job's code.

        \b
        Example (cron, or `serve --reconcile-every`):
          drift-decider webhooks reconcile --config automation.yaml --json
        """
        from drift_decider.automation.config import load_config
        from drift_decider.automation.reconcile import reconcile as reconcile_pass

        config = load_config(config_path)
        results = reconcile_pass(config, tracking_uri=tracking_uri or config.tracking_uri)
        if as_json:
            click.echo(json.dumps(results, indent=2, default=str))
        else:
            for result in results:
                click.echo(_line(result))
            click.echo(f"{len(results)} job(s) run" if results else "nothing owed: the registry is caught up")
        codes = {result.get("exit_code") for result in results if result["status"] == "failed"}
        for code in _PASS_EXIT:
            if code in codes:
                sys.exit(code)

    return [serve, webhooks]


def _line(result: dict[str, Any]) -> str:
    head = f"{result['model']} v{result.get('version', '-')} {result['job']}: {result['status']}"
    if result["status"] != "done":
        return f"{head} ({result.get('error') or result.get('reason')})"
    facts = (f"{key} {result[key]}" for key in ("reference", "action", "passed", "alias_moved", "run_id")
             if result.get(key) is not None)
    return f"{head}, {', '.join(facts)}"
