"""The OIP binary tensor data extension, parsed: pure bytes in, columns out."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from ratchet.serving.request_formats import BadRequest, ParseLimits, parse_oip_body

NAMES = ["age", "income", "plan"]


def binary(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, str]:
    text = json.dumps(header).encode()
    return b"".join([text, *chunks]), str(len(text))


def tensor(name: str, shape: list[int], datatype: str, size: int) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype,
            "parameters": {"binary_data_size": size}}


def strings(*values: str) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


@pytest.mark.parametrize("datatype, values", [
    ("BOOL", [True, False, True]), ("UINT8", [0, 7, 255]), ("INT8", [-128, 0, 127]),
    ("UINT16", [1, 2, 65535]), ("INT16", [-5, 0, 5]), ("UINT32", [1, 2, 3]),
    ("INT32", [-1, 0, 1]), ("UINT64", [1, 2, 3]), ("INT64", [-(2**40), 0, 2**40]),
    ("FP16", [0.5, 1.5, -2.0]), ("FP32", [0.25, 1.5, -2.0]), ("FP64", [0.1, 1e300, -2.0]),
])
def test_every_numeric_datatype_is_read_little_endian(datatype: str,
                                                       values: list[Any]) -> None:
    from ratchet.serving.request_formats import OIP_DTYPES

    raw = np.array(values, dtype=OIP_DTYPES[datatype]).tobytes()
    assert OIP_DTYPES[datatype][0] in "<?iu"  # never the machine's order
    body, length = binary({"inputs": [tensor("age", [3], datatype, len(raw))]}, raw)
    assert parse_oip_body(body, length, NAMES).columns == {"age": values}


def test_binary_and_json_tensors_mixed_and_a_binary_matrix() -> None:
    ages = np.array([30, 40], dtype="<i8").tobytes()
    body, length = binary({"id": "q1", "inputs": [
        tensor("age", [2], "INT64", 16),
        {"name": "income", "shape": [2], "datatype": "FP64", "data": [1.5, 2.5]},
        tensor("plan", [2, 1], "BYTES", 16)]}, ages, strings("pro", "basic"))
    parsed = parse_oip_body(body, length, NAMES)
    assert parsed.columns == {"age": [30, 40], "income": [1.5, 2.5], "plan": ["pro", "basic"]}
    assert parsed.request_id == "q1" and parsed.n_rows == 2
    matrix = np.array([[30, 1.5, 0], [40, 2.5, 1]], dtype="<f8").tobytes()
    body, length = binary({"inputs": [tensor("x", [2, 3], "FP64", 48)]}, matrix)
    assert parse_oip_body(body, length, NAMES).columns == {
        "age": [30.0, 40.0], "income": [1.5, 2.5], "plan": [0.0, 1.0]}


def test_empty_strings_and_zero_rows() -> None:
    body, length = binary({"inputs": [tensor("plan", [2], "BYTES", 8)]}, strings("", ""))
    assert parse_oip_body(body, length, NAMES).columns == {"plan": ["", ""]}
    body, length = binary({"inputs": [tensor("age", [0], "INT64", 0)]})
    parsed = parse_oip_body(body, length, NAMES)
    assert parsed.columns == {"age": []} and parsed.n_rows == 0


def test_without_the_header_the_body_is_json() -> None:
    payload = {"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "data": [3]}]}
    assert parse_oip_body(json.dumps(payload).encode(), None, NAMES).columns == {"age": [3]}
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_oip_body(json.dumps(payload).encode() + b"\x00\x01", None, NAMES)


def test_rows_over_the_limit_are_413_before_decoding() -> None:
    raw = np.zeros(5, dtype="<i8").tobytes()
    body, length = binary({"inputs": [tensor("age", [5], "INT64", 40)]}, raw)
    with pytest.raises(BadRequest) as caught:
        parse_oip_body(body, length, NAMES, limits=ParseLimits(max_rows=4))
    assert caught.value.status == 413


@pytest.mark.parametrize("parameters, outputs, expected", [
    ({}, None, (None, False)),
    ({"binary_data_output": True}, None, (None, True)),
    ({"binary_data_output": True}, [{"name": "prediction"}], ({"prediction": True}, True)),
    ({"binary_data_output": True},
     [{"name": "prediction", "parameters": {"binary_data": False}}],
     ({"prediction": False}, True)),
    ({}, [{"name": "probabilities", "parameters": {"binary_data": True}},
          {"name": "prediction"}], ({"probabilities": True, "prediction": False}, False)),
])
def test_requested_outputs_and_their_encoding(parameters: dict[str, Any], outputs: Any,
                                              expected: tuple[Any, bool]) -> None:
    header: dict[str, Any] = {"inputs": [{"name": "age", "shape": [1], "datatype": "INT64",
                                          "data": [1]}], "parameters": parameters}
    if outputs is not None:
        header["outputs"] = outputs
    parsed = parse_oip_body(json.dumps(header).encode(), None, NAMES)
    assert (parsed.outputs, parsed.binary_outputs) == expected


@pytest.mark.parametrize("outputs, parameters, fragment", [
    ([{"name": "prediction", "parameters": {"classification": 2}}], {},
     "classification extension is not supported"),
    ([{"name": "prediction", "parameters": {"binary_data": "yes"}}], {},
     "expected true or false"),
    ([{"nom": "prediction"}], {}, "outputs[0]: expected"),
    (None, {"binary_data_output": 1}, "binary_data_output: expected true or false"),
])
def test_bad_output_requests(outputs: Any, parameters: dict[str, Any], fragment: str) -> None:
    header: dict[str, Any] = {"inputs": [{"name": "age", "shape": [1], "datatype": "INT64",
                                          "data": [1]}], "parameters": parameters}
    if outputs is not None:
        header["outputs"] = outputs
    with pytest.raises(BadRequest) as caught:
        parse_oip_body(json.dumps(header).encode(), None, NAMES)
    assert fragment in str(caught.value) and caught.value.status == 422


def test_too_many_binary_tensors_are_413_before_decoding() -> None:
    header = {"inputs": [tensor(f"c{i}", [1], "INT64", 8) for i in range(5)]}
    body, length = binary(header, b"\x00" * 40)
    with pytest.raises(BadRequest) as caught:
        parse_oip_body(body, length, NAMES, limits=ParseLimits(max_columns=4))
    assert caught.value.status == 413 and "5 tensors" in str(caught.value)
