"""The automation config (`drift-decider serve --config FILE`): which registry events run which jobs.

Read with the policy files' strict YAML reader (no anchors, tags or duplicate keys; bounded size), so
every mistake is reported at ``file:line:column`` before the receiver starts or MLflow is called.
Relative paths are relative to the config file, not to wherever the receiver happens to be started.
"""

from __future__ import annotations

import os
import re
import string
import urllib.parse
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from drift_decider import api
from drift_decider.errors import InputError, PolicyError
from drift_decider.inputs.files import FileRefused, read_limited
from drift_decider.policy import load_policy
from drift_decider.policy.located_yaml import Located, LocatedList, load_yaml, read_text
from drift_decider.policy.yaml_fields import Fields, suggest, type_name

API_VERSION = "drift-decider/v1"
VERSION_CREATED = "model_version.created"
ALIAS_CREATED = "model_version_alias.created"
# what each event may run, and the placeholders its templates may use
JOBS_OF_EVENT = {VERSION_CREATED: ("reference", "promote"), ALIAS_CREATED: ("check",)}
PLACEHOLDERS = {VERSION_CREATED: {"model", "version", "today"}, ALIAS_CREATED: {"model", "version", "today", "alias"}}
# the input files of each job, as `drift-decider reference set` / `promote` / `check` name them
FILES = {"reference": ("embeddings", "queries"), "promote": ("current", "catalog", "queries", "index"),
         "check": ("current", "catalog", "queries", "index")}
REQUIRED = {"reference": ("embeddings",), "promote": ("alias", "policy", "current"),
            "check": ("alias", "policy", "current")}
DEFAULT_MAX_AGE_SECONDS = 300.0     # Standard Webhooks' usual tolerance; MLflow's retries end well within it
MAX_SECRET_BYTES = 4096             # a secret file holds one line
_WEBHOOK_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,61}[A-Za-z0-9]"     # MLflow's own rule for webhook names


@dataclass(frozen=True)
class Job:
    """One job a registry event runs: ``kind`` is reference, promote or check (the api call it makes)."""

    kind: str
    where: str                        # file:line:col of the job in the config, for messages
    files: dict[str, str]             # option -> path template, e.g. current -> /data/prod/{today}/items.npz
    siblings: tuple[str, ...] = ()
    alias: str | None = None
    policy: Path | None = None
    window_id: str = "{today}"

    def path(self, option: str, values: dict[str, str], base: Path) -> Path | None:
        """An input file for one event: the template filled in, relative to the config's folder."""
        template = self.files.get(option)
        return None if template is None else base / template.format(**values)


@dataclass(frozen=True)
class ModelJobs:
    name: str
    on: dict[str, tuple[Job, ...]]    # event -> its jobs, run in the order written


@dataclass(frozen=True)
class Config:
    path: Path
    url: str                          # where MLflow posts deliveries (what `webhooks register` registers)
    listen: tuple[str, int]           # where the receiver binds
    listen_at: str                    # file:line:col of `listen` (or of `url`, its default), for bind errors
    secret_env: str | None
    secret_file: Path | None
    max_age_seconds: float            # deliveries with an older (or later) timestamp are refused: replays
    state_dir: Path
    webhook_name: str
    tracking_uri: str | None
    models: dict[str, ModelJobs]

    @property
    def base(self) -> Path:
        return self.path.parent

    @property
    def route(self) -> str:
        return urllib.parse.urlsplit(self.url).path or "/"

    def events(self) -> list[str]:
        """The events some model has jobs for: the only ones the webhook subscribes to."""
        return sorted({event for model in self.models.values() for event, jobs in model.on.items() if jobs})

    def secret(self) -> str:
        """The shared webhook secret, from the environment variable or file the config names (never
        from the config itself, which is committed and printed)."""
        # the variable's name and the file's path are not shown: a secret pasted into either would be
        if self.secret_env is not None:
            value = os.environ.get(self.secret_env, "")
            where = "the environment variable receiver.secret_env names"
        else:
            where = "the file receiver.secret_file names"
            try:
                value = read_limited(self.secret_file, MAX_SECRET_BYTES).decode("utf-8").strip()
            except FileRefused as exc:      # a FIFO would hang the start; the path is not shown
                raise InputError(f"cannot read the webhook secret ({where}): {exc.reason}") from None
            except UnicodeDecodeError:
                raise InputError(f"the webhook secret ({where}) is not UTF-8 text") from None
        if len(value) < 16:
            problem = "unset" if not value else "shorter than 16 characters"
            raise InputError(f"the webhook secret ({where}) is {problem}: give a long random string, the same one "
                             f"MLflow signs with")
        return value


def template_values(model: str, version: str, alias: str | None = None, today: date | None = None) -> dict[str, str]:
    """What a job's templates are filled in with; every value is a name the config or MLflow checked."""
    values = {"model": model, "version": version,
              "today": (today or datetime.now(timezone.utc).date()).isoformat()}
    return {**values, "alias": alias} if alias is not None else values


def load_config(path: str | Path) -> Config:
    """Read and check the whole config, policies included; PolicyError (exit 2) at file:line:col."""
    path = Path(path).resolve()
    name = str(path)
    doc = Fields(load_yaml(read_text(path), name), f"{name}:1:1", "automation config",
                 ("apiVersion", "kind", "tracking_uri", "receiver", "models"),
                 ("apiVersion", "kind", "receiver", "models"))
    for key, expected in (("apiVersion", API_VERSION), ("kind", "Automation")):
        if doc.raw(key) != expected:
            raise doc.fail(key, f"expected {expected!r}, got {doc.raw(key)!r}")
    receiver = doc.sub("receiver", "receiver", ("url", "listen", "secret_env", "secret_file", "max_age", "state_dir",
                                                "webhook_name"), ("url",))
    url = receiver.string("url")
    try:
        parts = urllib.parse.urlsplit(url)
        url_port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:         # a port that is not a number in 0-65535, a broken [IPv6] host
        raise receiver.fail("url", f"{url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise receiver.fail("url", f"{url!r} is not an http(s) URL with a host and no query")
    if (receiver.has("secret_env")) == (receiver.has("secret_file")):
        raise PolicyError("receiver: give exactly one of secret_env (an environment variable's name) or "
                          "secret_file (a file holding the secret)", receiver.pos)
    secret_file = receiver.string("secret_file")
    secret_env = receiver.string("secret_env")
    if secret_env is not None and not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,127}", secret_env):
        # not echoed: a value that is no variable name may be the secret itself, pasted in by mistake
        raise receiver.fail("secret_env", "expected the NAME of an environment variable (A-Z, 0-9 and _, as "
                                          "DRIFT_DECIDER_WEBHOOK_SECRET), not the secret; the value is not shown")
    max_age = receiver.duration_seconds("max_age")
    if max_age is not None and max_age < 60:
        raise receiver.fail("max_age", "must be at least 1m: MLflow's clock, its retries and the network all "
                                       "take from the window")
    models = doc.raw("models")
    if not isinstance(models, Located) or not models:
        got = "an empty mapping" if isinstance(models, Located) else type_name(models)
        raise doc.fail("models", f"expected a mapping of model name to its events, got {got}")
    return Config(path=path, url=url, listen=_listen(receiver, parts.hostname, url_port),
                  listen_at=receiver.at("listen" if receiver.has("listen") else "url"),
                  secret_env=secret_env,
                  secret_file=None if secret_file is None else path.parent / secret_file,
                  max_age_seconds=DEFAULT_MAX_AGE_SECONDS if max_age is None else max_age,
                  state_dir=path.parent / receiver.string("state_dir", ".drift-decider/serve"),
                  webhook_name=receiver.string("webhook_name", "drift-decider", pattern=_WEBHOOK_NAME),
                  tracking_uri=doc.string("tracking_uri"),
                  models={model: _model(model, value, models.value_pos[model], path.parent)
                          for model, value in models.items()})


def _listen(receiver: Fields, url_host: str, url_port: int) -> tuple[str, int]:
    """``listen: HOST:PORT``, by default the url's own host and port (behind a proxy they differ)."""
    text = receiver.string("listen")
    if text is None:
        return url_host, url_port
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise receiver.fail("listen", f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _model(name: str, node: object, where: str, base: Path) -> ModelJobs:
    events = Fields(node, where, f"model {name!r}", JOBS_OF_EVENT)
    if not events.node:
        raise PolicyError(f"model {name!r} has no events: give {' or '.join(JOBS_OF_EVENT)} and its jobs", where)
    on = {}
    for event in events.node:
        jobs = events.raw(event)
        if not isinstance(jobs, LocatedList) or not jobs:
            raise events.fail(event, f"expected a list of jobs, got {type_name(jobs)}")
        on[event] = tuple(_job(event, job, job_where, base) for job, job_where in zip(jobs, jobs.item_pos))
    return ModelJobs(name, on)


def _job(event: str, node: object, where: str, base: Path) -> Job:
    allowed = JOBS_OF_EVENT[event]
    if not isinstance(node, Located) or len(node) != 1:
        raise PolicyError(f"a job is a mapping with one key, one of {', '.join(allowed)}", where)
    kind = next(iter(node))
    if kind not in allowed:
        raise PolicyError(f"{event} runs {' or '.join(allowed)} jobs, not {kind!r}{suggest(kind, allowed)}",
                          node.key_pos[kind])
    keys = FILES[kind] + {"reference": ("siblings",), "promote": ("alias", "policy"),
                          "check": ("alias", "policy", "window_id")}[kind]
    fields = Fields(node[kind], node.value_pos[kind], f"{kind} job", keys, REQUIRED[kind])
    files = {option: _template(fields, option, event) for option in FILES[kind] if fields.has(option)}
    siblings = fields.raw("siblings")
    if siblings is not None:
        if not isinstance(siblings, LocatedList) or not all(isinstance(item, str) for item in siblings):
            raise fields.fail("siblings", f"expected a list of path templates, got {type_name(siblings)}")
        for item, item_where in zip(siblings, siblings.item_pos):
            _check_placeholders(item, item_where, event)
    policy = None
    if fields.has("policy"):
        policy = base / fields.string("policy")
        if not policy.is_file():      # else the error would name the policy path, not this line
            raise fields.fail("policy", f"{policy} is not a file")
        loaded = load_policy(policy)     # a broken policy fails now, at its own file:line:col, not at the first event
        if kind == "promote" and (problem := loaded.not_a_gate()):
            raise fields.fail("policy", problem)
    window_id = _template(fields, "window_id", event) if fields.has("window_id") else "{today}"
    return Job(kind, where, files, tuple(siblings or ()), _alias(fields), policy, window_id)


def _alias(fields: Fields) -> str | None:
    """An alias MLflow accepts (its own rules), so a bad one fails here and not at every event."""
    alias = fields.string("alias")
    if alias is not None and (problem := api.alias_problem(alias)):
        raise fields.fail("alias", problem)
    return alias


def _template(fields: Fields, key: str, event: str) -> str:
    text = fields.string(key)
    _check_placeholders(text, fields.at(key), event)
    return text


def _check_placeholders(text: str, where: str, event: str) -> None:
    """Only the event's placeholders, plainly: ``{version}``, not ``{version.x}`` or ``{version!r}``."""
    allowed = PLACEHOLDERS[event]
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(text)
                  if name is not None]
    except ValueError as exc:
        raise PolicyError(f"bad template {text!r}: {exc} (write {{{{ and }}}} for a literal brace)", where) from None
    for name, spec, conversion in fields:
        if name not in allowed or spec or conversion:
            raise PolicyError(f"unknown placeholder {{{name}{'!' + conversion if conversion else ''}"
                              f"{':' + spec if spec else ''}}} in {text!r}; {event} jobs may use "
                              f"{', '.join('{' + p + '}' for p in sorted(allowed))}", where)


def check_version(value: object) -> str:
    """A version from a delivery, before it is put into a path: a number, nothing else."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,12}", value):
        raise InputError(f"the delivery's version {str(value)[:40]!r} is not a version number")
    return value
