"""Errors users can act on, and the process exit codes: each error carries the code the CLI returns
for it, and ``exit_code`` is the one mapping from any failure to a code."""

from __future__ import annotations

import enum
import re
from pathlib import Path


class ExitCode(enum.IntEnum):
    """Every exit code of `drift-decider`, defined here only (`drift-decider --help` explains them)."""

    OK = 0
    FAILURE = 1            # runtime failure (MLflow unreachable or refused a write), or a bug
    BAD_INPUT = 2          # bad input or usage, invalid policy, failing policy test
    GATED = 3              # `check --fail-on-action` not `none`, `promote --fail-on-block` blocked
    IN_FLIGHT = 4          # a concurrent check or promotion holds what this one needed

_USERINFO = re.compile(r"(?<=://)\S*@")     # the user:password@ of a URL, up to its last @ (a password may hold /)


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``: a tracking URI may carry
    them (http://user:pass@host), and MLflow repeats the URI in its errors."""
    return _USERINFO.sub("***@", text)


class DriftDeciderError(Exception):
    """Base class: a failure with a message written for the person who ran the command.

    The message is redacted here, once, because messages are printed, spooled and re-raised.
    """

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class InputError(DriftDeciderError):
    """Bad input data or usage (missing file, NaN rows, wrong shape, dimension mismatch). Exit 2."""

    exit_code = ExitCode.BAD_INPUT


class PolicyError(DriftDeciderError):
    """A policy file that cannot be trusted: parse error, unknown key, bad type. Exit 2.

    ``location`` is ``file:line:column`` when known, so editors can jump to it.
    """

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class TrackingError(DriftDeciderError):
    """MLflow could not be reached or refused a write. Exit 1."""

    exit_code = ExitCode.FAILURE
    spool_path: Path | None = None      # where the check was saved whole for `sync`, when it was


class InFlightError(TrackingError):
    """Another check is recording the same window, or an earlier window of the same version, right now;
    run again once it has landed. Exit 4."""

    exit_code = ExitCode.IN_FLIGHT


def exit_code(error: BaseException) -> ExitCode:
    """The exit code for a failure: the error's own, FAILURE for anything unforeseen."""
    return error.exit_code if isinstance(error, DriftDeciderError) else ExitCode.FAILURE


def error_message(error: BaseException) -> str:
    """The one line a user reads about a failure (redacted: an unforeseen error may repeat a URI)."""
    if isinstance(error, DriftDeciderError):
        return str(error)
    return f"unexpected failure: {type(error).__name__}: {redact(str(error))}"
