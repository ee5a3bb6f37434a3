"""How an :class:`~ratchet.serving.inference.Answer` is written on the wire: ratchet's JSON
(``/predict``), MLflow's scoring protocol (``/invocations``) and the Open Inference
Protocol v2 (JSON, or the binary tensor data extension), plus OIP's model metadata.

The counterpart of ``request_formats`` (which reads the three request formats); the
OpenAPI document that describes both is ``api_schema``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ratchet.serving.inference import Answer
    from ratchet.serving.request_formats import ParsedRequest
    from ratchet.serving.served_model import ServedModel


# ----------------------------------------------------------------------------- ours, MLflow
def predictions(answer: Answer) -> list[Any]:
    """The ``predictions`` list: one value per row, or a list per row for several targets."""
    outputs = answer.outputs
    if "prediction" in outputs:
        return outputs["prediction"]
    names = sorted(k for k in outputs if k.startswith("prediction_"))
    return [list(row) for row in zip(*(outputs[k] for k in names), strict=True)]


def native_answer(answer: Answer, _parsed: ParsedRequest) -> dict[str, Any]:
    """The ``/predict`` response body."""
    out: dict[str, Any] = {"request_id": answer.request_id,
                           "model_name": answer.model.ref.name,
                           "model_version": answer.model.ref.version,
                           "predictions": predictions(answer)}
    model = answer.model
    if model.classes is not None and f"proba_{model.classes[0]}" in answer.outputs:
        columns = [answer.outputs[f"proba_{c}"] for c in model.classes]
        out["classes"] = model.classes
        out["probabilities"] = [list(row) for row in zip(*columns, strict=True)]
    if answer.row_models is not None:
        out["model_versions"] = [m.ref.version for m in answer.row_models]
    if answer.flags is not None:
        out["flags"] = [marks or [] for marks in answer.flags]
    return out


def mlflow_answer(answer: Answer, _parsed: ParsedRequest) -> dict[str, Any]:
    """The ``/invocations`` response body (MLflow's scoring protocol)."""
    return {"predictions": predictions(answer)}


def encode(rendered: dict[str, Any] | BinaryReply) -> tuple[bytes, dict[str, str]]:
    """A rendered answer's body and headers: JSON, or OIP's binary data layout."""
    if isinstance(rendered, dict):
        return json.dumps(rendered).encode(), {}
    return rendered.body, {"content-type": "application/octet-stream",
                           "inference-header-content-length": str(rendered.header_length)}


# ----------------------------------------------------------------------------- OIP
_OIP_TYPES = {"int": "INT64", "uint": "UINT64", "float": "FP64", "bool": "BOOL"}


def _oip_type(dtype: str) -> str:
    for prefix, name in _OIP_TYPES.items():
        if dtype.startswith(prefix):
            return name
    return "BYTES"


def prediction_datatype(model: ServedModel) -> str:
    """What the ``prediction`` output holds: the classes' type for a classifier (INT64 for
    integer labels, BYTES for strings), else the signature's output type, else FP64."""
    if model.classes is not None:
        return _datatype(model.classes)
    outputs = model.signature.outputs if model.signature else ()
    if len(outputs) == 1:
        return _oip_type(outputs[0].dtype)
    return "FP64"


def oip_metadata(name: str, model: ServedModel) -> dict[str, Any]:
    inputs = [{"name": c.name, "datatype": _oip_type(c.dtype), "shape": [-1]}
              for c in (model.signature.inputs if model.signature else ())]
    lookup = model.feature_lookup
    if lookup is not None:  # called with entity keys (+ request fields), not its features
        # Keys typed as their sources have them; a request field no signature types is
        # described as a number (what on-demand request data almost always is).
        given = {i["name"]: i for i in inputs}
        kinds = lookup.key_kinds()
        inputs = [given.get(name) or {
            "name": name, "shape": [-1],
            "datatype": ("INT64" if kinds.get(name) == "integer" else
                         "BYTES" if name in kinds else "FP64")}
            for name in lookup.request_columns]
    outputs = [{"name": "prediction", "datatype": prediction_datatype(model), "shape": [-1]}]
    if model.classes is not None:
        outputs.append({"name": "probabilities", "datatype": "FP64",
                        "shape": [-1, len(model.classes)]})
    return {"name": name, "versions": [str(model.ref.version)],
            "platform": f"ratchet-{model.model.flavor}", "inputs": inputs, "outputs": outputs}


def oip_output_names(model: ServedModel) -> tuple[str, ...]:
    return ("prediction", "probabilities") if model.classes is not None else ("prediction",)


class BinaryReply:
    """An OIP response in the binary data extension's layout: a JSON header of
    ``header_length`` bytes, then each binary output's raw data."""

    def __init__(self, body: bytes, header_length: int) -> None:
        self.body = body
        self.header_length = header_length


def oip_response(name: str, answer: Answer, parsed: ParsedRequest
                 ) -> dict[str, Any] | BinaryReply:
    values = predictions(answer)
    n = len(values)
    model = answer.model
    if values and isinstance(values[0], list):  # several regression targets
        width = len(values[0])
        flat = [v for row in values for v in row]
        shape, datatype = [n, width], _coerce(flat, "FP64")
        outputs: list[dict[str, Any]] = [{"name": "prediction", "shape": shape,
                                          "datatype": datatype, "data": flat}]
    else:
        outputs = [{"name": "prediction", "shape": [n],
                    "datatype": _coerce(values, prediction_datatype(model)),
                    "data": values}]
    if model.classes is not None and f"proba_{model.classes[0]}" in answer.outputs:
        columns = [answer.outputs[f"proba_{c}"] for c in model.classes]
        flat = [float(p) for row in zip(*columns, strict=True) for p in row]
        outputs.append({"name": "probabilities", "shape": [n, len(columns)],
                        "datatype": "FP64", "data": flat,
                        "parameters": {"classes": [str(c) for c in model.classes]}})
    if parsed.outputs is not None:
        known = {o["name"]: o for o in outputs}  # names checked by oip_output_names
        outputs = [known[o] for o in parsed.outputs if o in known]
    header = {"model_name": name, "model_version": str(model.ref.version),
              "id": parsed.request_id or answer.request_id, "outputs": outputs,
              "parameters": {"request_id": answer.request_id}}
    chunks = []
    for output in outputs:
        binary = (parsed.outputs or {}).get(output["name"], parsed.binary_outputs)
        if binary:
            chunk = _to_binary(output["data"], output["datatype"])
            del output["data"]
            output["parameters"] = {**output.get("parameters", {}),
                                    "binary_data_size": len(chunk)}
            chunks.append(chunk)
    if not chunks:
        return header
    text = json.dumps(header).encode()
    return BinaryReply(b"".join([text, *chunks]), len(text))


def _coerce(values: list[Any], declared: str) -> str:
    """``declared`` when every value is of that type (FP64 also takes integers), else the
    type the values have: what the response says is always what it holds."""
    actual = _datatype(values)
    if not values or actual == declared or (declared == "FP64" and actual == "INT64"):
        return declared
    return actual


def _to_binary(values: list[Any], datatype: str) -> bytes:
    import struct

    import numpy as np

    from ratchet.serving.request_formats import OIP_DTYPES

    if datatype == "BYTES":
        parts = []
        for value in values:
            raw = str(value).encode()
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.asarray(values, dtype=OIP_DTYPES[datatype]).tobytes()


def _datatype(values: list[Any]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"
