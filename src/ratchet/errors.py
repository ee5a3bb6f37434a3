"""One error hierarchy for the whole package.

Every error a user can cause is a ``RatchetError``: the CLI prints its message on one
line and exits non-zero, a server maps it to an HTTP status. Messages say what was
wrong, where, and what to do.
"""

from __future__ import annotations

from typing import Any


class RatchetError(Exception):
    """Base of every error ratchet raises on purpose.

    ``http_status`` is what a server answers when this error ends a request: 4xx for the
    caller's mistakes (each subclass says which), 500 for a failure on ratchet's side that
    has no more specific class."""

    http_status = 500
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


class BadValue(InvalidInput, ValueError):
    """One value is not of its column's kind (the column contract's verdict, see
    ``ratchet.columns``); ``str(error)`` says why. Callers turn it into a located problem."""


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
    """The configuration file or environment is wrong (the server's, when it answers)."""

    http_status = 500


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


class StepStorageFailed(RatchetError):
    """ratchet could not load a step's inputs or store its outputs (the metadata or the
    artifact store failed: unreachable, locked, removed, corrupted). The step's own code
    did not fail, so this is not retried as a step failure. ``phase`` says which part
    failed ("loading inputs", "storing outputs", "storing logs", "opening the stores"),
    ``step`` names the step, ``run_id`` the pipeline run; the store's error is
    ``__cause__``."""

    http_status = 503

    def __init__(self, message: str, *, step: str, phase: str,
                 run_id: str | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.phase = phase
        self.run_id = run_id


class RemoteStepError(RatchetError):
    """A step's exception that could not travel back from its worker (it does not
    pickle); the message holds its traceback. Raised as ``StepFailed.__cause__``."""

    http_status = 500


class LeaseLost(Conflict):
    """Another controller holds the lease, or the state changed under us."""


class SignatureMismatch(ValidationFailed):
    """A request frame does not match the signature; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(
            f"input does not match the model signature ({count}): " + "; ".join(problems)
        )


class BadRequest(InvalidInput):
    """A request body the server cannot take: malformed (422), too large (413) or cut
    short (400); ``http_status`` is the one given. ``problems`` locates each fault, in
    the shape of FastAPI's ``detail`` (``loc``, ``msg``, ``type``)."""

    def __init__(self, message: str, *, status: int = 422,
                 problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.http_status = status
        self.problems = problems or [{"loc": ["body"], "msg": message, "type": "format"}]

    @property
    def status(self) -> int:
        """The HTTP status (the name serving code used before ``http_status``)."""
        return self.http_status


class RequestInvalid(BadRequest):
    """The request does not match the signature: one entry per offending field and row."""

    def __init__(self, problems: list[dict[str, Any]], total: int) -> None:
        shown = "; ".join(p["msg"] for p in problems[:5])
        more = f" (and {total - 5} more)" if total > 5 else ""
        super().__init__(f"input does not match the model signature: {shown}{more}",
                         problems=problems)
        self.total = total


class Unauthorized(RatchetError):
    """The request carries no valid credentials (no token, or one that is unknown, expired,
    revoked or of a disabled user)."""

    http_status = 401


class Forbidden(RatchetError):
    """The caller is known but lacks the permission this action needs."""

    http_status = 403


class TooManyAttempts(RatchetError):
    """Too many failed attempts from one client; ``retry_after`` is in seconds."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutboundRefused(InvalidInput):
    """An outbound URL whose target is not allowed (a non-public address, a scheme other
    than http(s), too many redirects). The message names the URL (redacted) and why."""


class ContentTooLarge(BadRequest):
    """A request body passed the server's limit (raised from ``receive``, so the app
    answers it quietly; the team server's guard replaces the answer with its own 413)."""

    http_status = 413

    def __init__(self, message: str) -> None:
        super().__init__(message, status=413)


class ModelFailed(RatchetError):
    """The model raised on input that passed validation (a server-side error)."""

    http_status = 500


# MLflow's error codes and the HTTP status MLflow's server answers each with
# (mlflow.exceptions); the codes its clients read to decide what to raise and retry.
MLFLOW_ERROR_STATUS = {
    "INTERNAL_ERROR": 500, "INVALID_STATE": 500, "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503, "REQUEST_LIMIT_EXCEEDED": 429, "RESOURCE_CONFLICT": 409,
    "ENDPOINT_NOT_FOUND": 404, "RESOURCE_DOES_NOT_EXIST": 404, "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401, "BAD_REQUEST": 400, "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_PARAMETER_VALUE": 400,
}


class MlflowError(RatchetError):
    """A refusal of the team server's MLflow API (``ratchet.server.mlflow``) with MLflow's
    ``error_code``; ``http_status`` is the one MLflow's server gives that code."""

    http_status = 400

    def __init__(self, error_code: str, message: str) -> None:
        if error_code not in MLFLOW_ERROR_STATUS:
            raise ValueError(f"unknown MLflow error code {error_code!r}")
        super().__init__(message)
        self.error_code = error_code
        self.http_status = MLFLOW_ERROR_STATUS[error_code]


__all__ = [
    "AlreadyExists",
    "BadRequest",
    "BadValue",
    "ConfigError",
    "Conflict",
    "ContentTooLarge",
    "Forbidden",
    "IntegrityError",
    "InvalidInput",
    "LeaseLost",
    "MlflowError",
    "ModelFailed",
    "NotFound",
    "OutboundRefused",
    "RatchetError",
    "RemoteStepError",
    "RequestInvalid",
    "SignatureMismatch",
    "StepFailed",
    "StepStorageFailed",
    "StepTimeout",
    "StoreUnavailable",
    "TooManyAttempts",
    "Unauthorized",
    "Untrusted",
    "ValidationFailed",
]
