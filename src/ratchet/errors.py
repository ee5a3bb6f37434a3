"""One error hierarchy for the whole package.

Every error a user can cause is a ``RatchetError``: the CLI prints its message on one
line and exits non-zero, a server maps it to an HTTP status. Messages say what was
wrong, where, and what to do.
"""

from __future__ import annotations


class RatchetError(Exception):
    """Base of every error ratchet raises on purpose."""

    http_status = 400
    exit_code = 1


class NotFound(RatchetError):
    """The thing asked for does not exist."""

    http_status = 404


class AlreadyExists(RatchetError):
    """Creating something whose unique name is taken."""

    http_status = 409


class Conflict(RatchetError):
    """The write contradicts what is already recorded (e.g. a param changing value)."""

    http_status = 409


class InvalidInput(RatchetError):
    """The caller passed something malformed; the message points at it."""

    http_status = 422


class ValidationFailed(RatchetError):
    """Data or a model failed a declared check."""

    http_status = 422


class IntegrityError(RatchetError):
    """Stored content does not match its recorded hash: corruption or tampering."""

    http_status = 500


class Untrusted(RatchetError):
    """Loading this would execute arbitrary code; the caller must trust it explicitly."""

    http_status = 403


class ConfigError(RatchetError):
    """The configuration file or environment is wrong."""


class StoreUnavailable(ConfigError):
    """The metadata store cannot be reached or read (server down, no such database, a file
    that is not a database)."""

    http_status = 503


class StepFailed(RatchetError):
    """A pipeline step raised (after its retries). The user's exception is ``__cause__``,
    with its own traceback; ``step`` names the step and ``run_id`` the pipeline run."""

    http_status = 500

    def __init__(self, message: str, *, step: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.run_id = run_id


class StepTimeout(RatchetError, TimeoutError):
    """A step ran longer than its ``timeout=``."""

    http_status = 504


__all__ = [
    "AlreadyExists",
    "ConfigError",
    "Conflict",
    "IntegrityError",
    "InvalidInput",
    "NotFound",
    "RatchetError",
    "StepFailed",
    "StepTimeout",
    "StoreUnavailable",
    "Untrusted",
    "ValidationFailed",
]
