"""The server's OpenAPI document: pydantic models and JSON Schemas of the bodies, the error
responses of each route, and the document itself, regenerated from the served model.

Request bodies are parsed by ``request_formats`` and answers written by
``response_formats`` (the models here never run on the hot path); they exist so that
``/openapi.json`` tells clients the truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ratchet.packaging.signature import ColumnSpec
    from ratchet.serving.request_validation import ValidationPolicy
    from ratchet.serving.served_model import ServedModel


# ----------------------------------------------------------------------------- bodies
# Request bodies are documented from the served model's signature (regenerated on every
# /openapi.json, so a plan change is reflected): a client generated from the document
# sends what validation accepts. The columnar form of /predict and CSV bodies for
# /invocations are accepted too; they are described in text, since JSON Schema cannot say
# "all columns the same length".


class PredictResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: int
    predictions: list[Any]
    classes: list[Any] | None = Field(None, description="classifiers: the label of each "
                                      "probability column")
    probabilities: list[list[float]] | None = None
    model_versions: list[int] | None = Field(None, description="per row, when a sticky "
                                             "split sent rows to different versions")
    flags: list[list[str]] | None = Field(None, description="per row, accepted values that "
                                          "were unlike the training data")


class InvocationsResponse(BaseModel):
    predictions: list[Any]


class RejectedFeedback(BaseModel):
    index: int = Field(description="The item's position in the body, from 0.")
    reason: str = Field(description="unknown: this deployment logged no such (request_id, "
                        "row) within the feedback window; label: not one of the model's "
                        "classes.")
    msg: str


class FeedbackResponse(BaseModel):
    recorded: int
    rejected: list[RejectedFeedback] | None = Field(
        None, description="Items not recorded (present only when some were not); a body "
        "none of whose items is recorded is refused: 404 if all are unknown, else 422.")


class Problem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    error: str
    request_id: str | None = None
    detail: list[Problem] | None = None


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[Tensor]
    parameters: dict[str, Any] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "A bearer token is required here (the "
          "server runs with --token-file) and was missing or wrong"},
    413: {"model": ErrorResponse, "description": "Body or row count over the limit"},
    415: {"model": ErrorResponse, "description": "Content-Type is not application/json "
          "(/invocations: or text/csv)"},
    421: {"model": ErrorResponse, "description": "The Host header is not one this server "
          "answers to (--allowed-host)"},
    422: {"model": ErrorResponse, "description": "Input does not match the model signature: "
          "one entry per offending field and row"},
    500: {"model": ErrorResponse, "description": "The model raised on valid input"},
    503: {"model": ErrorResponse, "description": "No model loaded yet, or too many requests "
          "in flight (retry after Retry-After seconds)"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No model of that name is served here"}}
FEEDBACK_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "None of the items names a prediction this "
          "deployment logged within the feedback window (nothing recorded)"}}
MAX_ROW = 2**31 - 1  # rows are 32-bit integers in the store
_SCALAR: dict[str, Any] = {"type": ["string", "number", "integer", "boolean", "null"]}
_REF = "#/components/schemas/{}"


def body(schema: str, description: str = "") -> dict[str, Any]:
    """``openapi_extra`` declaring a request body the handler reads itself."""
    return {"requestBody": {"required": True, "description": description, "content": {
        "application/json": {"schema": {"$ref": _REF.format(schema)}}}}}


def column_schema(spec: ColumnSpec, policy: ValidationPolicy) -> dict[str, Any]:
    """What validation accepts for one column (see request_validation)."""
    import numpy as np

    from ratchet.packaging.signature import BOOL, CATEGORY, STRING
    from ratchet.serving.request_validation import REJECT

    schema: dict[str, Any]
    if spec.dtype.startswith(("int", "uint")):
        info = np.iinfo(np.dtype(spec.dtype))
        schema = {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    elif spec.dtype.startswith("float"):
        schema = {"type": "number"}
    elif spec.dtype in (STRING, CATEGORY):
        schema = {"type": "string"}
        if spec.categories is not None and policy.unknown_category == REJECT:
            schema["enum"] = list(spec.categories)
    elif spec.dtype == BOOL:
        schema = {"type": "boolean"}
    elif spec.dtype.startswith("datetime64"):
        schema = {"type": "string", "format": "date-time"}
    else:
        return {}
    numeric = schema["type"] in ("integer", "number")
    if numeric and policy.out_of_range == REJECT and spec.min is not None \
            and spec.max is not None:
        low, high = spec.min, spec.max
        if schema["type"] == "integer":
            low, high = math.ceil(low), math.floor(high)
        schema["minimum"] = max(schema.get("minimum", low), low)
        schema["maximum"] = min(schema.get("maximum", high), high)
    if spec.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def request_schemas(model: ServedModel | None, policy: ValidationPolicy,
                    extra: Sequence[str]) -> dict[str, Any]:
    """Component schemas for the request bodies, from the served model's signature."""
    names = [c.name for c in model.signature.inputs] if model and model.signature else []
    if names:
        assert model is not None and model.signature is not None
        properties = {c.name: column_schema(c, policy) for c in model.signature.inputs}
        if model.feature_lookup is not None:  # called with entity keys, not its features
            lookup = model.feature_lookup
            names = list(lookup.request_columns)
            properties = {n: properties.get(n, {}) for n in names}
            properties.update({k: {"type": ["integer", "string"],
                                   "description": "An entity key: the server fetches the "
                                                  "model's features for it."}
                               for k in lookup.entity_keys})
        properties.update({k: {} for k in extra})
        record: dict[str, Any] = {
            "type": "object", "properties": properties, "required": names,
            "additionalProperties": policy.extra_columns != "reject",
            "description": f"One row: {', '.join(names)}."}
        row = {"type": "array", "prefixItems": [properties[n] for n in names],
               "minItems": len(names), "maxItems": len(names),
               "description": f"One row as values in the order {', '.join(names)}."}
    else:
        record = {"type": "object", "additionalProperties": _SCALAR}
        row = {"type": "array", "items": _SCALAR}
    rows = {"type": "array", "items": {"$ref": _REF.format("Record")}, "minItems": 1,
            "maxItems": policy.max_rows}
    params = {"type": ["object", "null"], "description": "Ignored by scikit-learn models."}
    return {
        "Record": record,
        "PredictRequest": {
            "type": "object", "required": ["inputs"], "additionalProperties": False,
            "properties": {"inputs": rows, "params": params},
            "description": "Rows as records. The columnar form {\"inputs\": {column: "
                           "[values…]}} is accepted too."},
        "InvocationsRequest": {
            "description": "MLflow's scoring protocol: exactly one input field. A text/csv "
                           "body with a header row is accepted too.",
            "oneOf": [
                _one("dataframe_records", rows, params),
                _one("instances", rows, params),
                _one("dataframe_split", {
                    "type": "object", "required": ["columns", "data"],
                    "additionalProperties": False, "properties": {
                        "columns": {"const": names} if names else {"type": "array"},
                        "index": {"type": "array"},
                        "data": {"type": "array", "items": row, "minItems": 1,
                                 "maxItems": policy.max_rows}}}, params),
            ]},
        "FeedbackItem": {
            "type": "object", "required": ["request_id", "value"],
            "additionalProperties": False, "properties": {
                "request_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$",
                               "description": "The X-Request-ID of the prediction."},
                "row": {"type": "integer", "minimum": 0, "maximum": MAX_ROW, "default": 0,
                        "description": "The row within that request, from 0."},
                "value": {"type": ["string", "number", "integer", "boolean"],
                          "maxLength": 1000, "pattern": "^[^\\u0000]*$",
                          "description": "The true label or value: a finite number, a "
                                         "boolean or a string without NUL; for a "
                                         "classifier, one of its classes."}}},
        "FeedbackRequest": {"oneOf": [
            {"$ref": _REF.format("FeedbackItem")},
            {"type": "object", "required": ["feedback"], "additionalProperties": False,
             "properties": {"feedback": {"type": "array", "minItems": 1, "maxItems": 10_000,
                                         "items": {"$ref": _REF.format("FeedbackItem")}}}}]},
        "InferRequest": {
            "type": "object", "required": ["inputs"],
            "description": "Open Inference Protocol v2: one tensor per column (shape [n] or "
                           "[n, 1]), or one [n, k] tensor with the columns in signature "
                           f"order ({', '.join(names)}).",
            "properties": {"id": {"type": "string"},
                           "inputs": {"type": "array", "minItems": 1,
                                      "items": {"$ref": _REF.format("Tensor")}},
                           "outputs": {"type": "array"}, "parameters": {"type": "object"}}},
    }


def _one(key: str, schema: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [key], "additionalProperties": False,
            "properties": {key: schema, "params": params}}


def install_openapi(app: FastAPI, current: Callable[[], tuple[ServedModel | None,
                                                              Sequence[str]]],
                    policy: ValidationPolicy) -> None:
    """Serve an OpenAPI document whose request bodies follow the current model."""
    import copy

    from fastapi.openapi.utils import get_openapi

    base: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not base:
            base.update(get_openapi(title=app.title, version=app.version, routes=app.routes,
                                    description=app.description))
        schema = copy.deepcopy(base)
        model, extra = current()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(request_schemas(model, policy, extra))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
