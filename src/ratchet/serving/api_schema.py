"""The wire schema of the server: pydantic models that document the bodies in OpenAPI,
the feedback body's parser, and the Open Inference Protocol's metadata and responses.

Request bodies are parsed by ``request_formats`` (the models here never run on the hot
path); they exist so that ``/openapi.json`` tells clients the truth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ratchet.serving.request_formats import BadRequest, ParsedRequest

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ratchet.serving.inference import Answer
    from ratchet.serving.served_model import ServedModel

Scalar = str | float | int | bool | None


# ----------------------------------------------------------------------------- ours
class PredictRequest(BaseModel):
    """Rows as records, or as columns (``{"age": [31, 52]}``)."""

    inputs: list[dict[str, Scalar]] | dict[str, list[Scalar]]
    params: dict[str, Any] | None = None


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


class InvocationsRequest(BaseModel):
    """Exactly one of the four MLflow input fields."""

    model_config = ConfigDict(extra="forbid")
    dataframe_split: dict[str, Any] | None = None
    dataframe_records: list[dict[str, Scalar]] | None = None
    instances: list[Any] | dict[str, list[Scalar]] | None = None
    inputs: list[Any] | dict[str, list[Scalar]] | None = None
    params: dict[str, Any] | None = None


class InvocationsResponse(BaseModel):
    predictions: list[Any]


class FeedbackItem(BaseModel):
    request_id: str = Field(max_length=64)
    row: int = Field(0, ge=0, description="row within the request, from 0")
    value: Scalar = Field(description="the true label or value")


class FeedbackRequest(BaseModel):
    """One item, or ``{"feedback": [items]}``."""

    request_id: str | None = None
    row: int | None = None
    value: Scalar = None
    feedback: list[FeedbackItem] | None = None


class FeedbackResponse(BaseModel):
    recorded: int


class Problem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    error: str
    request_id: str | None = None
    detail: list[Problem] | None = None


# ----------------------------------------------------------------------------- OIP v2
class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[Tensor]
    outputs: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[Tensor]
    parameters: dict[str, Any] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Body or row count over the limit"},
    422: {"model": ErrorResponse, "description": "Input does not match the model signature: "
          "one entry per offending field and row"},
    500: {"model": ErrorResponse, "description": "The model raised on valid input"},
    503: {"model": ErrorResponse, "description": "No model loaded yet"},
}
_DOC_MODELS: list[type[BaseModel]] = [
    PredictRequest, InvocationsRequest, FeedbackRequest, FeedbackItem, InferRequest, Tensor]


def body(model: type[BaseModel], *, csv: bool = False) -> dict[str, Any]:
    """``openapi_extra`` declaring a request body the handler reads itself."""
    content: dict[str, Any] = {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {"requestBody": {"required": True, "content": content}}


def install_openapi(app: FastAPI) -> None:
    """Add the request models (not known to FastAPI, see ``body``) to the components."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in _DOC_MODELS:
                doc = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(doc.pop("$defs", {}))
                components[model.__name__] = doc
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# ----------------------------------------------------------------------------- feedback
def feedback_rows(payload: Any) -> list[tuple[str, int, Any]]:
    if not isinstance(payload, dict):
        raise BadRequest('expected {"request_id", "row", "value"} or {"feedback": [...]}')
    items = payload.get("feedback") if "feedback" in payload else [payload]
    if not isinstance(items, list) or not items:
        raise BadRequest("feedback: expected a non-empty list of {request_id, row, value}")
    rows, problems = [], []
    for i, item in enumerate(items):
        loc: list[Any] = ["body", "feedback", i] if "feedback" in payload else ["body"]
        if not isinstance(item, dict):
            problems.append({"loc": loc, "msg": "expected an object", "type": "type"})
            continue
        unknown = sorted(set(item) - {"request_id", "row", "value"})
        rid, row, value = item.get("request_id"), item.get("row", 0), item.get("value")
        if unknown:
            problems.append({"loc": loc, "msg": f"unknown field(s): {', '.join(unknown)}",
                             "type": "extra"})
        if not isinstance(rid, str) or not 0 < len(rid) <= 64:
            problems.append({"loc": [*loc, "request_id"], "msg": "expected the request id "
                             "(the X-Request-ID of the prediction), at most 64 characters",
                             "type": "type"})
        if isinstance(row, bool) or not isinstance(row, int) or row < 0:
            problems.append({"loc": [*loc, "row"], "msg": "expected a row number >= 0",
                             "type": "type"})
        if "value" not in item or isinstance(value, dict | list) or (
                isinstance(value, float) and value != value):
            problems.append({"loc": [*loc, "value"], "msg": "expected the true label or "
                             "value (a string, number or boolean)", "type": "type"})
        rows.append((rid, row, value))
    if problems:
        raise BadRequest(f"feedback is not valid: {problems[0]['msg']}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                         problems=problems)
    return rows  # type: ignore[return-value]


# ----------------------------------------------------------------------------- OIP
_OIP_TYPES = {"int": "INT64", "uint": "UINT64", "float": "FP64", "bool": "BOOL"}


def _oip_type(dtype: str) -> str:
    for prefix, name in _OIP_TYPES.items():
        if dtype.startswith(prefix):
            return name
    return "BYTES"


def oip_metadata(name: str, model: ServedModel) -> dict[str, Any]:
    inputs = [{"name": c.name, "datatype": _oip_type(c.dtype), "shape": [-1]}
              for c in (model.signature.inputs if model.signature else ())]
    outputs = [{"name": "prediction", "datatype": "BYTES", "shape": [-1]}]
    if model.classes is not None:
        outputs.append({"name": "probabilities", "datatype": "FP64",
                        "shape": [-1, len(model.classes)]})
    return {"name": name, "versions": [str(model.ref.version)],
            "platform": f"ratchet-{model.model.flavor}", "inputs": inputs, "outputs": outputs}


def oip_response(name: str, answer: Answer, parsed: ParsedRequest) -> dict[str, Any]:
    from ratchet.serving.app import _predictions

    predictions = _predictions(answer)
    n = len(predictions)
    outputs: list[dict[str, Any]] = [{"name": "prediction", "shape": [n],
                                      "datatype": _datatype(predictions), "data": predictions}]
    model = answer.model
    if model.classes is not None and f"proba_{model.classes[0]}" in answer.outputs:
        columns = [answer.outputs[f"proba_{c}"] for c in model.classes]
        flat = [p for row in zip(*columns, strict=True) for p in row]
        outputs.append({"name": "probabilities", "shape": [n, len(columns)],
                        "datatype": "FP64", "data": flat,
                        "parameters": {"classes": [str(c) for c in model.classes]}})
    return {"model_name": name, "model_version": str(model.ref.version),
            "id": parsed.request_id or answer.request_id, "outputs": outputs,
            "parameters": {"request_id": answer.request_id}}


def _datatype(values: list[Any]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"
