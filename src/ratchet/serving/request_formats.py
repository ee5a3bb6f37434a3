"""Request bodies in the formats clients already speak, turned into named columns.

- ours (``POST /predict``): ``{"inputs": [{col: value, …}, …]}`` (records) or
  ``{"inputs": {col: [values…]}}`` (columnar);
- MLflow (``POST /invocations``): exactly one of ``dataframe_split``,
  ``dataframe_records``, ``instances``, ``inputs`` (+ optional ``params``), or a CSV body;
- Open Inference Protocol v2 (``POST /v2/models/{name}/infer``): named tensors, one per
  column (shape ``[n]`` or ``[n, 1]``), or one ``[n, k]`` tensor for all columns in
  signature order.

Everything here is pure: bytes and a list of expected column names in, a
:class:`ParsedRequest` out, or a :class:`BadRequest` that says what is wrong and where.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ratchet.errors import InvalidInput


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()  # a field absent from one record of several


class BadRequest(InvalidInput):
    """A body that is not in the expected format (HTTP 422, or 413 when too large)."""

    def __init__(self, message: str, *, status: int = 422,
                 problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problems = problems or [{"loc": ["body"], "msg": message, "type": "format"}]


@dataclass
class ParsedRequest:
    columns: dict[str, list[Any]]
    n_rows: int
    params: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None  # a client-chosen id (OIP ``id``), echoed back


def decode_json(body: bytes) -> Any:
    if not body:
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:  # e.g. 100,000 nested brackets: the decoder recurses
        raise BadRequest("the request body is nested too deeply") from None


# ----------------------------------------------------------------------------- ours
def parse_native(payload: Any, names: Sequence[str]) -> ParsedRequest:
    if not isinstance(payload, Mapping) or "inputs" not in payload:
        raise BadRequest('expected {"inputs": [{column: value, ...}, ...]} or '
                         '{"inputs": {column: [values, ...]}}')
    unknown = sorted(set(payload) - {"inputs", "params"})
    if unknown:
        raise BadRequest(f"unknown top-level field(s): {', '.join(unknown)}; "
                         "expected 'inputs' (and optionally 'params')")
    return ParsedRequest(*_table(payload["inputs"], names, "inputs"),
                         params=_params(payload.get("params")))


# ----------------------------------------------------------------------------- MLflow
_MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_mlflow(body: bytes, content_type: str, names: Sequence[str]) -> ParsedRequest:
    if content_type.split(";")[0].strip().lower() == "text/csv":
        return _parse_csv(body)
    payload = decode_json(body)
    if not isinstance(payload, Mapping):
        raise BadRequest(f"expected a JSON object with one of {', '.join(_MLFLOW_KEYS)}")
    present = [k for k in _MLFLOW_KEYS if k in payload]
    if len(present) != 1:
        raise BadRequest(f"expected exactly one of {', '.join(_MLFLOW_KEYS)}; got "
                         f"{', '.join(present) if present else 'none'}")
    unknown = sorted(set(payload) - {present[0], "params"})
    if unknown:
        raise BadRequest(f"unknown top-level field(s): {', '.join(unknown)}")
    key, value = present[0], payload[present[0]]
    if key == "dataframe_split":
        if not isinstance(value, Mapping) or not isinstance(value.get("data"), list):
            raise BadRequest('dataframe_split: expected {"columns": [...], "data": [[...], ...]}',
                             problems=[_loc(["dataframe_split", "data"], "expected a list of rows")])
        extra = sorted(set(value) - {"columns", "data", "index"})
        if extra:
            raise BadRequest(f"dataframe_split: unknown field(s) {', '.join(extra)}; expected "
                             "columns, data (and optionally index)")
        if not isinstance(value.get("index", []), list):
            raise BadRequest("dataframe_split.index: expected a list of row labels")
        columns = value.get("columns", list(names))
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise BadRequest("dataframe_split.columns: expected a list of column names")
        table = _rows_to_columns(value["data"], columns, "dataframe_split.data")
    else:
        table = _table(value, names, key)
    return ParsedRequest(*table, params=_params(payload.get("params")))


def _parse_csv(body: bytes) -> ParsedRequest:
    import io

    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise BadRequest(f"the CSV body could not be parsed: {exc}") from None
    frame = frame.astype(object).where(frame.notna(), None)
    return ParsedRequest({str(c): frame[c].tolist() for c in frame.columns}, len(frame))


# ----------------------------------------------------------------------------- OIP v2
_OIP_NUMERIC = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                "INT64", "FP16", "FP32", "FP64"}


def parse_oip(payload: Any, names: Sequence[str]) -> ParsedRequest:
    if not isinstance(payload, Mapping) or not isinstance(payload.get("inputs"), list) \
            or not payload["inputs"]:
        raise BadRequest('expected {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("id: expected a string")
    tensors = []
    for i, tensor in enumerate(payload["inputs"]):
        at = ["inputs", i]
        if not isinstance(tensor, Mapping):
            raise BadRequest(f"inputs[{i}]: expected a tensor object",
                             problems=[_loc(at, "expected a tensor object")])
        name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
        if not isinstance(name, str):
            raise BadRequest(f"inputs[{i}].name: expected a string",
                             problems=[_loc([*at, "name"], "expected a string")])
        if not isinstance(shape, list) or not shape or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise BadRequest(f"inputs[{i}].shape: expected a list of non-negative integers",
                             problems=[_loc([*at, "shape"], "expected non-negative integers")])
        if datatype != "BYTES" and datatype not in _OIP_NUMERIC:
            raise BadRequest(f"inputs[{i}].datatype: unknown datatype {datatype!r}",
                             problems=[_loc([*at, "datatype"], f"unknown datatype {datatype!r}")])
        data = _flatten(tensor.get("data"), f"inputs[{i}].data")
        expected = math.prod(shape)
        if len(data) != expected:
            raise BadRequest(f"inputs[{i}]: shape {shape} needs {expected} values, "
                             f"data has {len(data)}",
                             problems=[_loc([*at, "data"], "length does not match shape")])
        tensors.append((name, shape, data))
    params = _params(payload.get("parameters"))
    if len(tensors) == 1 and names and tensors[0][0] not in names and len(tensors[0][1]) == 2:
        # One [n, k] tensor holding every column, in signature order.
        _, (n, k), data = tensors[0]
        if k != len(names):
            raise BadRequest(f"inputs[0]: a [rows, columns] tensor needs {len(names)} columns "
                             f"({', '.join(names)}), got {k}")
        columns = {c: data[j::k] for j, c in enumerate(names)}
        return ParsedRequest(columns, n, params=params, request_id=request_id)
    columns = {}
    n_rows = None
    for i, (name, shape, data) in enumerate(tensors):
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise BadRequest(f"inputs[{i}] ({name}): a column tensor must have shape [n] or "
                             f"[n, 1], got {shape}")
        if n_rows is not None and shape[0] != n_rows:
            raise BadRequest(f"inputs[{i}] ({name}): {shape[0]} rows, but earlier tensors have "
                             f"{n_rows}")
        if name in columns:  # the later tensor would silently replace the earlier one
            raise BadRequest(f"inputs[{i}] ({name}): an earlier tensor has the same name",
                             problems=[_loc(["inputs", i, "name"], "duplicate tensor name")])
        n_rows = shape[0]
        columns[name] = data
    return ParsedRequest(columns, n_rows or 0, params=params, request_id=request_id)


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise BadRequest(f"{where}: expected a list")
    if not any(isinstance(x, list) for x in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for x in stack[-1]:
            if isinstance(x, list):
                stack.append(iter(x))
                break
            flat.append(x)
        else:
            stack.pop()
    return flat


# ----------------------------------------------------------------------------- shared
def _table(value: Any, names: Sequence[str], where: str) -> tuple[dict[str, list[Any]], int]:
    """Records, columns ({col: [...]}) or rows of values in signature order."""
    if isinstance(value, Mapping):
        columns = {}
        n_rows = None
        for name, values in value.items():
            if not isinstance(values, list):
                values = [values]  # one record given as an object of scalars
            if n_rows is not None and len(values) != n_rows:
                raise BadRequest(f"{where}: column {name!r} has {len(values)} values, others "
                                 f"have {n_rows}", problems=[_loc([where, name],
                                                                  "column lengths differ")])
            n_rows = len(values)
            columns[str(name)] = values
        return columns, n_rows or 0
    if not isinstance(value, list):
        raise BadRequest(f"{where}: expected a list of records or an object of columns")
    if not value:
        raise BadRequest(f"{where}: no rows")
    if all(isinstance(r, Mapping) for r in value):
        return _records_to_columns(value, where)
    if all(isinstance(r, list) for r in value):
        return _rows_to_columns(value, list(names), where)
    raise BadRequest(f"{where}: every row must be an object (record) or a list of values in "
                     f"the order {', '.join(names)}")


def _records_to_columns(records: list[Mapping[str, Any]], where: str
                        ) -> tuple[dict[str, list[Any]], int]:
    n = len(records)
    if n == 1:
        return {str(k): [v] for k, v in records[0].items()}, 1
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r))
    # A field absent from some records is MISSING there (reported by validation as
    # missing in that row), not null.
    return {str(k): [r.get(k, MISSING) for r in records] for k in keys}, n


def _rows_to_columns(rows: list[Any], names: list[str], where: str
                     ) -> tuple[dict[str, list[Any]], int]:
    width = len(names)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise BadRequest(f"{where}[{i}]: expected a list of {width} values "
                             f"({', '.join(names)}), got {got}",
                             problems=[_loc([where, i], f"expected {width} values")])
    return {name: [row[j] for row in rows] for j, name in enumerate(names)}, len(rows)


def _params(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest("params: expected an object")
    return dict(value)


def _loc(loc: list[Any], msg: str, kind: str = "format") -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}
