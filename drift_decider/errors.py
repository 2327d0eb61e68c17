"""Errors users can act on. Each carries the process exit code the CLI returns for it."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?<=://)[^/\s]*@")     # the user:password@ of a URL, up to its last @


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``: a tracking URI may carry
    them (http://user:pass@host), and MLflow repeats the URI in its errors."""
    return _USERINFO.sub("***@", text)


class DriftDeciderError(Exception):
    """Base class: a failure with a message written for the person who ran the command.

    The message is redacted here, once, because messages are printed, spooled and re-raised.
    """

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class InputError(DriftDeciderError):
    """Bad input data or usage (missing file, NaN rows, wrong shape, dimension mismatch). Exit 2."""

    exit_code = 2


class PolicyError(DriftDeciderError):
    """A policy file that cannot be trusted: parse error, unknown key, bad type. Exit 2.

    ``location`` is ``file:line:column`` when known, so editors can jump to it.
    """

    exit_code = 2

    def __init__(self, message: str, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class TrackingError(DriftDeciderError):
    """MLflow could not be reached or refused a write. Exit 1."""

    exit_code = 1


class InFlightError(TrackingError):
    """Another check is recording the same window, or an earlier window of the same version, right now;
    run again once it has landed. Exit 4."""

    exit_code = 4
