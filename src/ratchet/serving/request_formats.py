"""Request bodies in the formats clients already speak, turned into named columns.

- ours (``POST /predict``): ``{"inputs": [{col: value, …}, …]}`` (records) or
  ``{"inputs": {col: [values…]}}`` (columnar);
- MLflow (``POST /invocations``): exactly one of ``dataframe_split``,
  ``dataframe_records``, ``instances``, ``inputs`` (+ optional ``params``), or a CSV body;
- Open Inference Protocol v2 (``POST /v2/models/{name}[/versions/{v}]/infer``): named
  tensors, one per column (shape ``[n]`` or ``[n, 1]``), or one ``[n, k]`` tensor for all
  columns in signature order; the tensor data in the JSON or, with the binary data
  extension (``Inference-Header-Content-Length``), as raw little-endian bytes after it.

Everything here is pure: bytes and a list of expected column names in, a
:class:`ParsedRequest` out, or a :class:`BadRequest` that says what is wrong and where.

Parsing is bounded by :class:`ParseLimits` *while* it runs, so its cost follows the limits,
not the body: a record with too many fields, a CSV header with too many columns or too many
tensors are refused (413) at the first one that passes the bound, before any work that would
grow with rows x columns.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ratchet.errors import BadRequest, InvalidInput


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()  # a field absent from one record of several


# Columns a request may carry besides the model's inputs (ignored extras, ids, the routing
# key) when the caller gives no limits of its own.
EXTRA_COLUMNS_ALLOWANCE = 1_024
# Rows x columns of the table built from sparse records (each field absent from a record
# is filled in): more than a dense body under the default 16 MB limit can carry.
MAX_CELLS = 10_000_000
# What pandas.read_csv reads as a null by default: CSV cells, like MLflow's scoring server.
CSV_NULLS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                       "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                       "nan", "null"})


@dataclass(frozen=True)
class ParseLimits:
    """Bounds checked while a body is parsed (HTTP 413 when one is passed).

    ``max_columns`` bounds the distinct fields of records, the columns of a CSV header or
    a ``dataframe_split`` and the tensors of an OIP request; ``max_rows`` (None: no bound
    here, the validator's policy still applies) the rows of any format; ``max_cells`` the
    rows x distinct fields of records that do not all have the same fields (every other
    format costs what its body holds).
    """

    max_columns: int = EXTRA_COLUMNS_ALLOWANCE
    max_rows: int | None = None
    max_cells: int = MAX_CELLS

    def __post_init__(self) -> None:
        for name in ("max_columns", "max_rows", "max_cells"):
            value = getattr(self, name)
            if value is None and name == "max_rows":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInput(f"parse limits {name}: expected a positive integer, "
                                   f"got {value!r}")

    @classmethod
    def for_names(cls, names: Sequence[str]) -> ParseLimits:
        """The default for a model with these inputs: room for them and for extras."""
        return _default_limits(len(names))


@functools.lru_cache(maxsize=64)
def _default_limits(n_inputs: int) -> ParseLimits:  # once per model width, not per request
    return ParseLimits(max_columns=n_inputs + EXTRA_COLUMNS_ALLOWANCE)


@dataclass
class ParsedRequest:
    columns: dict[str, list[Any]]
    n_rows: int
    params: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None  # a client-chosen id (OIP ``id``), echoed back
    # Cells are text from a CSV: the validator reads each as its column's kind (a number
    # for a numeric column, null for an empty cell), so one bad cell fails only its row.
    text_cells: bool = False
    # OIP: the outputs asked for (None: all) and how each is sent (True: binary data).
    outputs: dict[str, bool] | None = None
    binary_outputs: bool = False  # the default for outputs not named in ``outputs``


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
def parse_native(payload: Any, names: Sequence[str], *,
                 limits: ParseLimits | None = None) -> ParsedRequest:
    if not isinstance(payload, Mapping) or "inputs" not in payload:
        raise BadRequest('expected {"inputs": [{column: value, ...}, ...]} or '
                         '{"inputs": {column: [values, ...]}}')
    unknown = sorted(set(payload) - {"inputs", "params"})
    if unknown:
        raise BadRequest(f"unknown top-level field(s): {', '.join(unknown)}; "
                         "expected 'inputs' (and optionally 'params')")
    limits = limits or ParseLimits.for_names(names)
    return ParsedRequest(*_table(payload["inputs"], names, "inputs", limits),
                         params=_params(payload.get("params")))


# ----------------------------------------------------------------------------- MLflow
_MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_mlflow(body: bytes, content_type: str, names: Sequence[str], *,
                 limits: ParseLimits | None = None) -> ParsedRequest:
    limits = limits or ParseLimits.for_names(names)
    if content_type.split(";")[0].strip().lower() == "text/csv":
        return parse_csv(body, names, limits=limits)
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
        _check_header(columns, "dataframe_split.columns", names, limits)
        _check_rows(len(value["data"]), "dataframe_split.data", limits)
        table = _rows_to_columns(value["data"], columns, "dataframe_split.data")
    else:
        table = _table(value, names, key, limits)
    return ParsedRequest(*table, params=_params(payload.get("params")))


def parse_csv(body: bytes, names: Sequence[str] = (), *,
              limits: ParseLimits | None = None) -> ParsedRequest:
    """A CSV body with a header line; every cell stays text (``text_cells``) for the
    validator to read as its column's kind, and the pandas null markers become None.

    The header is read first and refused when wider than the limit, before any row is
    parsed; rows are counted as they are read and refused past ``max_rows``.
    """
    import csv
    import io

    limits = limits or ParseLimits.for_names(names)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the CSV body could not be parsed: it is not UTF-8 text ({exc})"
                         ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise BadRequest("the CSV body could not be parsed: it is empty; send a header "
                             "line with the column names, then one line per row")
        _check_header(header, "the CSV header", names, limits)
        width = len(header)
        cells: list[list[str]] = []
        for record in reader:
            if not record:  # a blank line, skipped as pandas does
                continue
            if len(record) != width:
                row = len(cells)
                raise BadRequest(f"the CSV body could not be parsed: row {row} (line "
                                 f"{reader.line_num}) has {len(record)} values; the header "
                                 f"has {width} columns",
                                 problems=[_loc(["csv", row], f"expected {width} values")])
            cells.append(record)
            _check_rows(len(cells), "the CSV body", limits, stopped=True)
    except csv.Error as exc:  # an unterminated quote, a field over csv's size limit, ...
        raise BadRequest(f"the CSV body could not be parsed: line {reader.line_num}: {exc}"
                         ) from None
    if not cells and names and not set(header) & set(names):
        # One line of values ("30,1.5,pro") is a row whose header was left out, not a
        # header with no rows: say what is missing.
        raise BadRequest(f"the CSV body has no header line: its first line "
                         f"{_short(','.join(header))} names none of the model's inputs"
                         f"{_inputs_of(names)}; send the column names on the first line, "
                         "then one line per row",
                         problems=[_loc(["csv", "header"], "missing header line")])
    columns = {name: [None if (v := row[j]) in CSV_NULLS else v for row in cells]
               for j, name in enumerate(header)}
    return ParsedRequest(columns, len(cells), text_cells=True)


# ----------------------------------------------------------------------------- OIP v2
_OIP_NUMERIC = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                "INT64", "FP16", "FP32", "FP64"}


def parse_oip(payload: Any, names: Sequence[str], *,
              limits: ParseLimits | None = None) -> ParsedRequest:
    if not isinstance(payload, Mapping) or not isinstance(payload.get("inputs"), list) \
            or not payload["inputs"]:
        raise BadRequest('expected {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    limits = limits or ParseLimits.for_names(names)
    if len(payload["inputs"]) > limits.max_columns:
        raise BadRequest(f"inputs: {len(payload['inputs']):,} tensors; the limit is "
                         f"{limits.max_columns:,} (one tensor per column{_inputs_of(names)})",
                         status=413, problems=[_loc(["inputs"], "too many tensors", "limit")])
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
        # [n], [n, 1] or [n, k]: more dimensions are never usable here (and a product over
        # millions of dimensions would be a big-integer computation on the event loop).
        if not isinstance(shape, list) or not 1 <= len(shape) <= 2 or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise BadRequest(f"inputs[{i}].shape: expected [rows] or [rows, columns] "
                             "(non-negative integers)",
                             problems=[_loc([*at, "shape"], "expected [rows] or "
                                            "[rows, columns]")])
        if datatype != "BYTES" and datatype not in _OIP_NUMERIC:
            raise BadRequest(f"inputs[{i}].datatype: unknown datatype {datatype!r}",
                             problems=[_loc([*at, "datatype"], f"unknown datatype {datatype!r}")])
        _check_rows(shape[0], f"inputs[{i}]", limits)
        data = _flatten(tensor.get("data"), f"inputs[{i}].data")
        expected = math.prod(shape)
        if len(data) != expected:
            raise BadRequest(f"inputs[{i}]: shape {shape} needs {expected} values, "
                             f"data has {len(data)}",
                             problems=[_loc([*at, "data"], "length does not match shape")])
        tensors.append((name, shape, data))
    params = _params(payload.get("parameters"))
    outputs, binary_default = _oip_outputs(payload.get("outputs"), params)
    if len(tensors) == 1 and names and tensors[0][0] not in names and len(tensors[0][1]) == 2:
        # One [n, k] tensor holding every column, in signature order.
        _, (n, k), data = tensors[0]
        if k != len(names):
            raise BadRequest(f"inputs[0]: a [rows, columns] tensor needs {len(names)} columns "
                             f"({', '.join(names)}), got {k}")
        columns = {c: data[j::k] for j, c in enumerate(names)}
        return ParsedRequest(columns, n, params=params, request_id=request_id,
                             outputs=outputs, binary_outputs=binary_default)
    columns = {}
    n_rows = None
    for i, (name, shape, data) in enumerate(tensors):
        if len(shape) == 2 and shape[1] != 1:
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
    return ParsedRequest(columns, n_rows or 0, params=params, request_id=request_id,
                         outputs=outputs, binary_outputs=binary_default)


def _oip_outputs(value: Any, params: Mapping[str, Any]) -> tuple[dict[str, bool] | None, bool]:
    """The outputs asked for (name -> binary?) and the binary default for the others."""
    default = params.get("binary_data_output", False)
    if not isinstance(default, bool):
        raise BadRequest("parameters.binary_data_output: expected true or false")
    if value is None:
        return None, default
    if not isinstance(value, list) or len(value) > 64:
        raise BadRequest("outputs: expected a list of at most 64 {\"name\", \"parameters\"}")
    outputs: dict[str, bool] = {}
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise BadRequest(f"outputs[{i}]: expected {{\"name\": <output name>}}",
                             problems=[_loc(["outputs", i], "expected an output name")])
        parameters = _params(item.get("parameters"))
        if parameters.get("classification"):
            raise BadRequest(f"outputs[{i}] ({item['name']}): the classification extension is "
                             "not supported; read the 'probabilities' output instead")
        binary = parameters.get("binary_data", default)
        if not isinstance(binary, bool):
            raise BadRequest(f"outputs[{i}].parameters.binary_data: expected true or false")
        outputs[item["name"]] = binary
    return outputs, default


# The binary tensor data extension: NumPy's little-endian dtype for each OIP datatype.
OIP_DTYPES = {"BOOL": "?", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
              "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2",
              "FP32": "<f4", "FP64": "<f8"}
OIP_HEADER_LENGTH = "inference-header-content-length"


def parse_oip_body(body: bytes, header_length: str | None, names: Sequence[str], *,
                   limits: ParseLimits | None = None) -> ParsedRequest:
    """An OIP request: all JSON, or (``header_length`` given: the value of the
    ``Inference-Header-Content-Length`` header) a JSON header of that many bytes followed
    by each binary input's raw data, in the order of ``inputs``."""
    if header_length is None:
        return parse_oip(decode_json(body), names, limits=limits)
    text = header_length.strip()
    if not text.isdigit() or len(text) > 12:
        raise BadRequest(f"Inference-Header-Content-Length: expected a byte count, got "
                         f"{_short(header_length)}")
    size = int(text)
    if not 0 < size <= len(body):
        raise BadRequest(f"Inference-Header-Content-Length is {size}, but the body has "
                         f"{len(body)} bytes; it must be the length of the JSON header, at "
                         "most the body's")
    payload = decode_json(body[:size])
    limits = limits or ParseLimits.for_names(names)
    # Too many tensors: parse_oip refuses them (413) before any is decoded.
    if isinstance(payload, Mapping) and isinstance(payload.get("inputs"), list) \
            and len(payload["inputs"]) <= limits.max_columns:
        payload = dict(payload)
        payload["inputs"] = _binary_inputs(payload["inputs"], memoryview(body)[size:], limits)
    return parse_oip(payload, names, limits=limits)


def _binary_inputs(inputs: list[Any], data: memoryview, limits: ParseLimits) -> list[Any]:
    """``inputs`` with each binary tensor's ``data`` read from ``data``: every size is
    checked against the tensor's shape and what is left of the body before anything is
    decoded, so a request cannot make the server allocate more than it sent."""
    out: list[Any] = []
    offset = 0
    for i, tensor in enumerate(inputs):
        parameters = tensor.get("parameters") if isinstance(tensor, Mapping) else None
        size = parameters.get("binary_data_size") if isinstance(parameters, Mapping) else None
        if size is None:
            out.append(tensor)
            continue
        name = tensor.get("name")
        where = f"inputs[{i}] ({_short(name)})"
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"{where}.parameters.binary_data_size: expected a non-negative "
                             "integer", problems=[_loc(["inputs", i, "parameters"],
                                                       "bad binary_data_size")])
        if "data" in tensor:
            raise BadRequest(f"{where}: has both 'data' and binary_data_size; send one")
        if size > len(data) - offset:
            raise BadRequest(f"{where}: binary_data_size is {size} bytes, but only "
                             f"{len(data) - offset} bytes of binary data are left in the body",
                             problems=[_loc(["inputs", i], "binary data too short")])
        shape, datatype = tensor.get("shape"), tensor.get("datatype")
        if not isinstance(shape, list) or not 1 <= len(shape) <= 2 or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise BadRequest(f"{where}.shape: expected [rows] or [rows, columns] "
                             "(non-negative integers)")
        _check_rows(shape[0], f"inputs[{i}]", limits)
        count = math.prod(shape)
        chunk = data[offset:offset + size]
        offset += size
        values = _decode_binary(chunk, datatype, count, where)
        out.append({**tensor, "data": values})
    if offset != len(data):
        raise BadRequest(f"the body has {len(data) - offset} bytes after the binary data of "
                         "the inputs; each binary input's parameters.binary_data_size must "
                         "give its exact length")
    return out


def _decode_binary(chunk: memoryview, datatype: Any, count: int, where: str) -> list[Any]:
    import numpy as np

    if datatype == "BYTES":
        import struct

        values: list[Any] = []
        raw = bytes(chunk)  # at most the body: slicing bytes is cheaper than a memoryview
        prefix = struct.Struct("<I").unpack_from
        at, end = 0, len(raw)
        while at < end:
            if end - at < 4:
                raise BadRequest(f"{where}: BYTES data ends inside a 4-byte length prefix")
            (length,) = prefix(raw, at)
            at += 4
            if length > end - at:
                raise BadRequest(f"{where}: BYTES element {len(values)} says {length} bytes, "
                                 f"only {end - at} are left")
            if len(values) == count:
                raise BadRequest(f"{where}: BYTES data holds more than the {count} elements "
                                 "its shape gives")
            try:
                values.append(raw[at:at + length].decode("utf-8"))
            except UnicodeDecodeError:
                raise BadRequest(f"{where}: BYTES element {len(values)} is not UTF-8 text"
                                 ) from None
            at += length
        if len(values) != count:
            raise BadRequest(f"{where}: shape needs {count} BYTES elements, the binary data "
                             f"holds {len(values)}")
        return values
    dtype = OIP_DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise BadRequest(f"{where}.datatype: unknown datatype {_short(datatype)} (expected "
                         f"BYTES or one of {', '.join(OIP_DTYPES)})")
    itemsize = np.dtype(dtype).itemsize
    if len(chunk) != count * itemsize:
        raise BadRequest(f"{where}: shape needs {count} {datatype} values ({count * itemsize} "
                         f"bytes), binary_data_size is {len(chunk)}",
                         problems=[_loc([where], "binary_data_size does not match shape")])
    return np.frombuffer(chunk, dtype=dtype).tolist()


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
def _table(value: Any, names: Sequence[str], where: str, limits: ParseLimits
           ) -> tuple[dict[str, list[Any]], int]:
    """Records, columns ({col: [...]}) or rows of values in signature order."""
    if isinstance(value, Mapping):
        if len(value) > limits.max_columns:
            raise _too_many_columns(f"{where}: {len(value):,} columns", [where], names, limits)
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
            _check_rows(n_rows, where, limits)
            columns[str(name)] = values
        return columns, n_rows or 0
    if not isinstance(value, list):
        raise BadRequest(f"{where}: expected a list of records or an object of columns")
    if not value:
        raise BadRequest(f"{where}: no rows")
    _check_rows(len(value), where, limits)
    if all(isinstance(r, Mapping) for r in value):
        return _records_to_columns(value, where, names, limits)
    if all(isinstance(r, list) for r in value):
        return _rows_to_columns(value, list(names), where)
    raise BadRequest(f"{where}: every row must be an object (record) or a list of values in "
                     f"the order {', '.join(names)}")


def _records_to_columns(records: list[Mapping[str, Any]], where: str, names: Sequence[str],
                        limits: ParseLimits) -> tuple[dict[str, list[Any]], int]:
    """Columns from records in one pass over their fields: the work is the number of
    fields sent (plus the MISSING fill of a field absent from some records), and the
    first record that brings the distinct fields over the limit stops it."""
    n = len(records)
    first = records[0]
    bound = limits.max_columns
    if len(first) > bound:
        raise _too_many_columns(f"{where}[0]: a record with {len(first):,} fields",
                                [where, 0], names, limits)
    keys = first.keys()
    if all(len(r) == len(first) and r.keys() == keys for r in records):
        # The usual request: the same fields in every record.
        return {str(k): [r[k] for r in records] for k in first}, n
    columns: dict[str, list[Any]] = {}
    for i, record in enumerate(records):
        if len(record) > bound:
            raise _too_many_columns(f"{where}[{i}]: a record with {len(record):,} fields",
                                    [where, i], names, limits)
        for key, value in record.items():
            column = columns.get(key)
            if column is None:
                if len(columns) == bound:
                    raise _too_many_columns(
                        f"{where}[{i}]: field {_short(key)} is distinct field number "
                        f"{bound + 1:,} of the records so far", [where, i], names, limits)
                if (len(columns) + 1) * n > limits.max_cells:
                    raise BadRequest(
                        f"{where}[{i}]: field {_short(key)} makes {len(columns) + 1:,} "
                        f"distinct fields in {n:,} records, a table of more than "
                        f"{limits.max_cells:,} cells; send fewer records per request, or "
                        "the same fields in each", status=413,
                        problems=[_loc([where, i], "too many cells", "limit")])
                # A field absent from some records is MISSING there (reported by
                # validation as missing in that row), not null.
                column = columns[key] = [MISSING] * i
            elif len(column) < i:
                column.extend([MISSING] * (i - len(column)))
            column.append(value)
    for column in columns.values():
        if len(column) < n:
            column.extend([MISSING] * (n - len(column)))
    return {str(k): v for k, v in columns.items()}, n


def _rows_to_columns(rows: list[Any], names: list[str], where: str
                     ) -> tuple[dict[str, list[Any]], int]:
    width = len(names)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise BadRequest(f"{where}[{i}]: expected a list of {width} values "
                             f"({_shown_names(names)}), got {got}",
                             problems=[_loc([where, i], f"expected {width} values")])
    return {name: [row[j] for row in rows] for j, name in enumerate(names)}, len(rows)


def _check_header(header: list[str], where: str, names: Sequence[str],
                  limits: ParseLimits) -> None:
    if len(header) > limits.max_columns:
        raise _too_many_columns(f"{where}: {len(header):,} columns", [], names, limits)
    if len(set(header)) != len(header):  # the later column would replace the earlier one
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise BadRequest(f"{where}: column {_short(name)} appears more than once",
                                 problems=[_loc([name], "duplicate column")])
            seen.add(name)


def _check_rows(n: int, where: str, limits: ParseLimits, *, stopped: bool = False) -> None:
    """Refuse more than ``max_rows``; ``stopped``: counting stopped at the first one over."""
    if limits.max_rows is not None and n > limits.max_rows:
        count = f"more than {limits.max_rows:,}" if stopped else f"{n:,}"
        raise BadRequest(f"{where}: {count} rows in one request; the limit is "
                         f"{limits.max_rows:,} (send smaller requests or use `ratchet "
                         "predict` for batches)", status=413,
                         problems=[_loc([where], "too many rows", "limit")])


def _too_many_columns(what: str, loc: list[Any], names: Sequence[str],
                      limits: ParseLimits) -> BadRequest:
    return BadRequest(f"{what}; the limit is {limits.max_columns:,} columns per request"
                      f"{_inputs_of(names)}", status=413,
                      problems=[_loc(loc, "too many columns", "limit")])


def _inputs_of(names: Sequence[str]) -> str:
    return f" (the model takes {len(names)}: {_shown_names(names)})" if names else ""


def _shown_names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:10])
    return shown + (f", … ({len(names) - 10} more)" if len(names) > 10 else "")


def _short(value: Any, limit: int = 60) -> str:
    """A value for a message: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _params(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest("params: expected an object")
    return dict(value)


def _loc(loc: list[Any], msg: str, kind: str = "format") -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}
