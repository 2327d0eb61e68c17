"""Which MLflow to talk to, and a clear error when it cannot be reached.

The URI comes from ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's own default (a
``sqlite:///mlflow.db`` in the working folder). Credentials (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``,
``MLFLOW_TRACKING_TOKEN``) are read by MLflow itself; we never copy them anywhere.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Iterator

from drift_decider.errors import InputError, TrackingError


def resolve_tracking_uri(explicit: str | None = None) -> str:
    import mlflow

    if explicit:
        uri = explicit
    else:
        uri = mlflow.get_tracking_uri()
    if uri.startswith("file:") or "://" not in uri and not uri.startswith("databricks"):
        raise InputError(f"tracking URI {uri!r} is MLflow's deprecated file store; use a database "
                         "(e.g. sqlite:///mlflow.db) or an http(s):// tracking server")
    return uri


@contextlib.contextmanager
def mlflow_errors(action: str) -> Iterator[None]:
    """Turn MLflow and network failures into a TrackingError that says what we were doing."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        reason = _first_line(str(exc)) or f"{type(exc).__name__} with no message (the server's log has the cause)"
        raise TrackingError(f"MLflow failed while {action}: {reason}") from exc
    except OSError as exc:
        raise TrackingError(f"MLflow could not be reached while {action}: {exc}") from exc


def connect(tracking_uri: str | None = None, *, read_only: bool = False):
    """An MlflowClient for tracking and registry, after a cheap request proves the server answers.

    ``read_only`` commands never create a store: a sqlite file that does not exist is a wrong URI or
    folder (say so), not an empty history.
    """
    uri = resolve_tracking_uri(tracking_uri)
    if read_only and uri.startswith("sqlite:///") and ":memory:" not in uri:
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise InputError(f"no MLflow store at {path} (tracking URI {uri}): give --tracking-uri or set "
                             f"MLFLOW_TRACKING_URI to the store your checks wrote to")
    try:
        client = _client(uri)
        with mlflow_errors(f"connecting to {uri}"):
            client.search_experiments(max_results=1)
    except ImportError as exc:      # a database URI whose driver is not installed (psycopg, MySQLdb, ...)
        raise InputError(f"tracking URI {uri} needs the Python module {exc.name or exc}, which is not installed "
                         f"here: install its database driver") from None
    except ValueError as exc:       # a URI that does not parse (http://[::1)
        raise InputError(f"tracking URI {uri} is not a valid URI: {exc}") from None
    return client


@functools.lru_cache(maxsize=8)
def _client(uri: str):
    """One client per URI and process: a sqlite client checks the schema when created (seconds)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line[:500]
