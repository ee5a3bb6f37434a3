"""MLflow's REST wire: proto3-JSON messages, its error codes and statuses, request fields.

MLflow's client speaks protobuf messages as proto3 JSON: fields holding their default
(empty string, 0 for most numbers, empty list, false) are left out, enums travel as their
names (``"FINISHED"``), 64-bit integers may arrive as strings, and a double that is NaN
or infinite is the string ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"``. Errors are
``{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": ...}`` with the status MLflow's
server gives that code; the client decides what to retry and what to raise from both.

Pure functions over plain values: the routes build messages with ``message(...)`` and read
requests with ``Fields``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ratchet.errors import (
    MLFLOW_ERROR_STATUS,
    AlreadyExists,
    BadRequest,
    Conflict,
    ContentTooLarge,
    Forbidden,
    InvalidInput,
    MlflowError,
    NotFound,
    RatchetError,
    Unauthorized,
    Untrusted,
    ValidationFailed,
)

# The path prefixes MLflow's clients call; errors under them answer in MLflow's shape.
MLFLOW_PREFIXES = ("/api/2.0/mlflow/", "/api/2.0/mlflow-artifacts/", "/api/3.0/mlflow/",
                   "/ajax-api/2.0/mlflow/", "/ajax-api/2.0/mlflow-artifacts/")

# error_code -> HTTP status, as MLflow's server answers them (mlflow.exceptions).
STATUS_OF_CODE = MLFLOW_ERROR_STATUS


def invalid(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message)


def missing(message: str) -> MlflowError:
    return MlflowError("RESOURCE_DOES_NOT_EXIST", message)


def error_code_of(exc: Exception) -> str:
    """The MLflow error code for a ratchet error (what MLflow's server answers for the
    same mistake: a taken name is RESOURCE_ALREADY_EXISTS, a changed param
    INVALID_PARAMETER_VALUE)."""
    if isinstance(exc, MlflowError):
        return exc.error_code
    for kind, code in ((NotFound, "RESOURCE_DOES_NOT_EXIST"),
                       (AlreadyExists, "RESOURCE_ALREADY_EXISTS"),
                       (Conflict, "INVALID_PARAMETER_VALUE"),
                       (ContentTooLarge, "INVALID_PARAMETER_VALUE"),
                       (BadRequest, "INVALID_PARAMETER_VALUE"),
                       (InvalidInput, "INVALID_PARAMETER_VALUE"),
                       (ValidationFailed, "INVALID_PARAMETER_VALUE"),
                       (Unauthorized, "UNAUTHENTICATED"),
                       (Forbidden, "PERMISSION_DENIED"),
                       (Untrusted, "PERMISSION_DENIED")):
        if isinstance(exc, kind):
            return code
    status = getattr(exc, "http_status", 500)
    if status == 429:
        return "REQUEST_LIMIT_EXCEEDED"
    if status == 503:
        return "TEMPORARILY_UNAVAILABLE"
    return "INTERNAL_ERROR"


def error_body(exc: Exception) -> tuple[int, dict[str, str]]:
    """The status and body of MLflow's answer to ``exc``."""
    code = error_code_of(exc)
    # A ratchet error's message is written for the caller; anything else may hold internals.
    message = str(exc) if isinstance(exc, RatchetError) \
        else "internal error (logged on the server)"
    return STATUS_OF_CODE[code], {"error_code": code, "message": message}


def is_mlflow_path(path: str) -> bool:
    return path.startswith(MLFLOW_PREFIXES)


# ---------------------------------------------------------------------------- encoding
def double(value: float | None) -> float | str | None:
    """A proto3-JSON double: NaN and the infinities as strings."""
    if value is None:
        return None
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def message(**fields: Any) -> dict[str, Any]:
    """A proto3-JSON message: fields that hold their default (None, "", [], {}, False)
    are left out, as protobuf's JSON printer leaves them out. A number 0 is kept: MLflow's
    messages are proto2 with explicit presence for the numbers that matter (``step``,
    ``timestamp``, ``version``), and a client reading 0 where it wrote 0 is right."""
    return {k: v for k, v in fields.items()
            if v is not None and v is not False and v != "" and v != [] and v != {}}


def key_values(mapping: Mapping[str, str]) -> list[dict[str, str]]:
    """Tags / params as MLflow lists them: ``[{"key": ..., "value": ...}]``."""
    return [{"key": k, "value": v} for k, v in mapping.items()]


# ---------------------------------------------------------------------------- decoding
class Fields:
    """The fields of one request (a JSON body, or the query string of a GET), read with
    the type each field has in MLflow's proto; a wrong type is INVALID_PARAMETER_VALUE
    naming the field."""

    def __init__(self, data: Mapping[str, Any], multi: Mapping[str, list[str]] | None = None,
                 where: str = "request") -> None:
        self.data = data
        self.multi = multi or {}
        self.where = where

    def __contains__(self, name: str) -> bool:
        return name in self.data and self.data[name] is not None

    def string(self, name: str, *, required: bool = False, default: str | None = None
               ) -> str | None:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise invalid(f"Missing value for required parameter '{name}'. See the API "
                              f"docs for more information about request parameters.")
            return default
        if not isinstance(value, str):
            raise invalid(f"Invalid value {value!r} for parameter '{name}' supplied: it "
                          "must be a string")
        return value

    def required(self, name: str) -> str:
        value = self.string(name, required=True)
        assert value is not None
        return value

    def integer(self, name: str, *, required: bool = False, default: int | None = None
                ) -> int | None:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise invalid(f"Missing value for required parameter '{name}'.")
            return default
        if isinstance(value, bool):
            raise invalid(f"Invalid value {value!r} for parameter '{name}': not an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise invalid(f"Invalid value {value!r} for parameter '{name}': not an integer")

    def number(self, name: str, *, required: bool = False) -> float | None:
        """A double: a JSON number or one of proto3's strings ("NaN", "Infinity", …)."""
        value = self.data.get(name)
        if value is None:
            if required:
                raise invalid(f"Missing value for required parameter '{name}'.")
            return None
        return parse_double(value, name)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid(f"Invalid value {value!r} for parameter '{name}': not a boolean")

    def strings(self, name: str) -> list[str]:
        """A repeated string: a JSON list, or a query parameter given once or more."""
        if name in self.multi:
            return list(self.multi[name])
        value = self.data.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(f"Invalid value for parameter '{name}': a list of strings expected")
        return list(value)

    def objects(self, name: str) -> list[dict[str, Any]]:
        """A repeated message: a list of JSON objects."""
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise invalid(f"Invalid value for parameter '{name}': a list of objects expected")
        return list(value)

    def nested(self, name: str) -> Fields:
        value = self.data.get(name)
        if value is None:
            return Fields({}, where=f"{self.where}.{name}")
        if not isinstance(value, dict):
            raise invalid(f"Invalid value for parameter '{name}': an object expected")
        return Fields(value, where=f"{self.where}.{name}")


_SPECIAL_DOUBLES = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf,
                    "inf": math.inf, "-inf": -math.inf}


def parse_double(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise invalid(f"Invalid value {value!r} for parameter '{name}': not a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        special = _SPECIAL_DOUBLES.get(value.strip().lower())
        if special is not None:
            return special
        try:
            return float(value)
        except ValueError:
            pass
    raise invalid(f"Invalid value {value!r} for parameter '{name}': not a number")


__all__ = ["MLFLOW_PREFIXES", "STATUS_OF_CODE", "Fields", "MlflowError", "double",
           "error_body", "error_code_of", "invalid", "is_mlflow_path", "key_values",
           "message", "missing", "parse_double"]
