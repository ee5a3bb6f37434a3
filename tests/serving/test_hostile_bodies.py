"""Request bodies built to stall or crash the server: refused early, with what and where.

Parsing is bounded while it runs (columns, distinct record fields, tensors, rows), so a
body that passes the byte limit but would make the work explode is refused at the first
column, record or tensor past the bound; values a dtype cannot hold, nested values and
text that is not valid Unicode are refused at validation, naming row and column; a model
without a signature is refused at load, with the reason on the readiness endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ratchet.config import Settings
from ratchet.errors import InvalidInput
from ratchet.packaging.signature import ColumnSpec, Signature
from ratchet.registry import RegistryClient
from ratchet.serving import create_app
from ratchet.serving.app import ServingConfig
from ratchet.serving.request_formats import (
    MISSING,
    BadRequest,
    ParsedRequest,
    ParseLimits,
    decode_json,
    parse_csv,
    parse_mlflow,
    parse_native,
    parse_oip,
)
from ratchet.serving.request_validation import RequestInvalid, RequestValidator
from ratchet.workspace import Workspace
from tests.serving.conftest import ROW, churn_frame, wait_until

NAMES = ["age", "income", "plan"]
CHURN = Signature(inputs=(
    ColumnSpec("age", "int64", False, 18.0, 80.0),
    ColumnSpec("income", "float64", False, 0.0, 100.0),
    ColumnSpec("plan", "category", False, categories=("basic", "pro", "team")),
))


def refused(call: Any, *args: Any, status: int, fragments: tuple[str, ...] = (),
            **kwargs: Any) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        call(*args, **kwargs)
    exc = info.value
    assert exc.status == status, (exc.status, str(exc))
    for fragment in fragments:
        assert fragment in str(exc), (fragment, str(exc))
    return exc


def wide_csv(columns: int, rows: int = 1) -> bytes:
    header = ",".join(f"c{i}" for i in range(columns))
    row = ",".join("1" for _ in range(columns))
    return "\n".join([header] + [row] * rows).encode() + b"\n"


# ----------------------------------------------------------------------------- parse bounds
@pytest.mark.parametrize("columns", [50_000, 200_000])
def test_a_csv_header_wider_than_the_limit_is_refused_before_any_row(columns: int) -> None:
    # 50,000 columns (0.44 MB) blocked the event loop 15.6 s in pandas.
    exc = refused(parse_mlflow, wide_csv(columns), "text/csv", NAMES, status=413,
                  fragments=(f"the CSV header: {columns:,} columns; the limit is 1,027 columns "
                             "per request (the model takes 3: age, income, plan)",))
    assert exc.problems[0]["type"] == "limit"
    # The validator's own limits are tighter (extras are rejected by default).
    refused(parse_mlflow, wide_csv(columns), "text/csv", NAMES, status=413,
            limits=RequestValidator(CHURN).parse_limits,
            fragments=("the limit is 67 columns",))


def test_records_with_ever_new_fields_stop_at_the_first_record_past_the_bound() -> None:
    # 5,000 records x 10 distinct fields each (0.7 MB): a MemoryError before, as each of
    # the 50,000 columns was filled for every record.
    records = [{f"k{i}_{j}": j for j in range(10)} for i in range(5_000)]
    body = json.dumps({"inputs": records}).encode()
    exc = refused(parse_native, decode_json(body), NAMES, status=413,
                  fragments=("inputs[102]: field 'k102_7' is distinct field number 1,028 of "
                             "the records so far; the limit is 1,027 columns per request",))
    assert exc.problems[0]["loc"] == ["body", "inputs", 102]
    # The same through the MLflow formats, and with a validator's limits.
    for key in ("dataframe_records", "instances"):
        refused(parse_mlflow, json.dumps({key: records}).encode(), "application/json", NAMES,
                status=413, fragments=(f"{key}[102]: field",))
    limits = RequestValidator(CHURN).parse_limits
    assert limits == ParseLimits(max_columns=67, max_rows=10_000)
    refused(parse_native, decode_json(body), NAMES, limits=limits, status=413,
            fragments=("inputs[6]: field 'k6_7' is distinct field number 68",))


def test_sparse_records_cannot_build_a_huge_table() -> None:
    # A few distinct fields early, then millions of empty records ("{}," is 3 bytes): each
    # field would be filled in for every record (6 x 2,000,000 cells here).
    empty: dict[str, Any] = {}
    records = [{f"k{i}": 1} for i in range(6)] + [empty] * 1_999_994
    exc = refused(parse_native, {"inputs": records}, NAMES, status=413,
                  fragments=("inputs[5]: field 'k5' makes 6 distinct fields in 2,000,000 "
                             "records, a table of more than 10,000,000 cells",))
    assert exc.problems[0]["loc"] == ["body", "inputs", 5]
    refused(parse_native, {"inputs": [{"a": 1}, {"b": 1}, {"c": 1}]}, NAMES, status=413,
            limits=ParseLimits(max_cells=8), fragments=("inputs[2]: field 'c' makes 3",))
    # The same fields in every record cost what was sent: no cell bound needed.
    assert parse_native({"inputs": [ROW] * 4}, NAMES,
                        limits=ParseLimits(max_cells=1)).n_rows == 4


def test_one_record_with_too_many_fields_is_named() -> None:
    records = [ROW, ROW, {f"f{i}": i for i in range(50_000)}]
    refused(parse_native, {"inputs": records}, NAMES, status=413,
            fragments=("inputs[2]: a record with 50,000 fields; the limit is 1,027",))
    refused(parse_native, {"inputs": records[2:]}, NAMES, status=413,
            fragments=("inputs[0]: a record with 50,000 fields",))


def test_wide_columnar_split_and_tensor_bodies_are_refused() -> None:
    wide = {f"c{i}": [1] for i in range(5_000)}
    refused(parse_native, {"inputs": wide}, NAMES, status=413,
            fragments=("inputs: 5,000 columns; the limit is 1,027",))
    split = {"dataframe_split": {"columns": list(wide), "data": [[1] * 5_000]}}
    refused(parse_mlflow, json.dumps(split).encode(), "application/json", NAMES, status=413,
            fragments=("dataframe_split.columns: 5,000 columns",))
    tensors = [{"name": f"c{i}", "shape": [1], "datatype": "INT64", "data": [1]}
               for i in range(5_000)]
    refused(parse_oip, {"inputs": tensors}, NAMES, status=413,
            fragments=("inputs: 5,000 tensors; the limit is 1,027",))
    # A shape of a million dimensions would be a big-integer product on the event loop.
    many_dims = [{"name": "age", "shape": [2] * 1_000_000, "datatype": "INT64", "data": [1]}]
    refused(parse_oip, {"inputs": many_dims}, NAMES, status=422,
            fragments=("inputs[0].shape: expected [rows] or [rows, columns]",))


def test_rows_are_bounded_while_parsing_in_every_format() -> None:
    limits = ParseLimits(max_columns=10, max_rows=3)
    csv = b"age,income,plan\n" + b"30,1.5,pro\n" * 1_000
    refused(parse_csv, csv, NAMES, limits=limits, status=413,
            fragments=("the CSV body: more than 3 rows in one request; the limit is 3",))
    records = [ROW] * 4
    refused(parse_native, {"inputs": records}, NAMES, limits=limits, status=413,
            fragments=("inputs: 4 rows in one request; the limit is 3",))
    refused(parse_native, {"inputs": {"age": [1] * 4}}, NAMES, limits=limits, status=413)
    split = {"dataframe_split": {"columns": NAMES, "data": [[1, 2.0, "pro"]] * 4}}
    refused(parse_mlflow, json.dumps(split).encode(), "application/json", NAMES,
            limits=limits, status=413, fragments=("dataframe_split.data: 4 rows",))
    tensor = {"name": "age", "shape": [4], "datatype": "INT64", "data": [1] * 4}
    refused(parse_oip, {"inputs": [tensor]}, NAMES, limits=limits, status=413,
            fragments=("inputs[0]: 4 rows",))
    assert parse_csv(b"age\n1\n2\n3\n", NAMES, limits=limits).n_rows == 3


def test_a_csv_row_of_the_wrong_width_and_duplicate_headers_are_named() -> None:
    refused(parse_csv, b"age,plan\n1,pro\n2,pro,x,y\n", NAMES, status=422,
            fragments=("row 1 (line 3) has 4 values; the header has 2 columns",))
    refused(parse_csv, b"age,plan,age\n1,pro,2\n", NAMES, status=422,
            fragments=("column 'age' appears more than once",))
    refused(parse_mlflow, json.dumps({"dataframe_split": {"columns": ["age", "age"],
                                                          "data": [[1, 2]]}}).encode(),
            "application/json", NAMES, status=422, fragments=("appears more than once",))


def _records_reference(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys = dict.fromkeys(k for r in records for k in r)
    return {k: [r.get(k, MISSING) for r in records] for k in keys}


def test_sparse_records_become_the_same_columns_as_before() -> None:
    records: list[dict[str, Any]] = [
        {"a": 1}, {"b": 2}, {"a": 3, "c": 4}, {}, {"c": 5, "b": 6, "a": 7}, {"d": None}]
    parsed = parse_native({"inputs": records}, NAMES)
    assert parsed.n_rows == len(records)
    assert parsed.columns == _records_reference(records)
    assert list(parsed.columns) == ["a", "b", "c", "d"]  # first-seen order


# ----------------------------------------------------------------------------- values
FLOATS = Signature(inputs=(ColumnSpec("f32", "float32"), ColumnSpec("f16", "float16"),
                           ColumnSpec("f64", "float64")))


@pytest.mark.parametrize(("column", "value", "fragment"), [
    ("f32", 1e39, "1e+39 does not fit in float32 (largest magnitude 3.4028235e+38)"),
    ("f32", -1e39, "-1e+39 does not fit in float32"),
    ("f32", 10**39, "does not fit in float32"),
    ("f32", 3.4028235677973366e38, "does not fit in float32"),  # rounds to infinity
    ("f16", 70_000, "does not fit in float16 (largest magnitude 65504)"),
    ("f16", 65_520.0, "does not fit in float16"),
    ("f64", 10**400, "does not fit in float64"),
])
def test_numbers_a_float_dtype_cannot_hold_are_refused(column: str, value: Any,
                                                        fragment: str) -> None:
    good = {"f32": 1.0, "f16": 1.0, "f64": 1.0}
    data = {k: [v, value if k == column else v] for k, v in good.items()}
    for given in (data, {k: pd.Series(v * 300) for k, v in data.items()}):  # both paths
        n = len(next(iter(given.values())))
        with pytest.raises(RequestInvalid) as info:
            RequestValidator(FLOATS).validate(ParsedRequest(dict(given), n))
        problem = info.value.problems[0]
        assert problem["loc"] == ["body", "inputs", 1, column]
        assert problem["msg"].startswith(f"row 1, column {column!r}: ")
        assert fragment in problem["msg"], problem["msg"]


def test_the_largest_float32_and_float16_values_still_pass() -> None:
    edge = {"f32": [3.4028234663852886e38, -3.4028235e38], "f16": [65504.0, -65519.0],
            "f64": [1.7976931348623157e308, 0.0]}
    out = RequestValidator(FLOATS).validate(ParsedRequest(edge, 2))
    assert out.columns["f32"] == edge["f32"]


@pytest.mark.parametrize(("dtype", "value"), [
    ("int8", 128), ("int8", -129), ("int16", 32_768), ("int32", 2**31), ("int32", -(2**31) - 1),
    ("uint8", -1), ("uint8", 256), ("uint16", -5), ("uint32", 2**32), ("uint64", -1),
])
def test_integers_out_of_their_dtype_range_are_refused(dtype: str, value: int) -> None:
    validator = RequestValidator(Signature(inputs=(ColumnSpec("n", dtype),)))
    with pytest.raises(RequestInvalid) as info:
        validator.validate(ParsedRequest({"n": [1, value]}, 2))
    assert [p["loc"] for p in info.value.problems] == [["body", "inputs", 1, "n"]]
    assert f"{value} does not fit in {dtype}" in info.value.problems[0]["msg"]


TEXT = Signature(inputs=(ColumnSpec("note", "string", True),
                         ColumnSpec("plan", "category", categories=("basic", "pro")),
                         ColumnSpec("blob", "object", True)))


@pytest.mark.parametrize(("raw", "fragment"), [
    (r'"\ud800"', "text with a lone surrogate '\\ud800' at position 0, which is not valid "
                  "Unicode"),
    (r'"ok \udfff tail"', "lone surrogate '\\udfff' at position 3"),
    (r'"a\u0000b"', "text with a NUL character at position 1"),
])
@pytest.mark.parametrize("column", ["note", "plan", "blob"])
def test_text_that_is_not_valid_unicode_or_holds_nul_is_refused(raw: str, fragment: str,
                                                                column: str) -> None:
    good = {"note": '"hi"', "plan": '"pro"', "blob": '"x"'}
    second = {**good, column: raw}
    records = ["{" + ", ".join(f'"{k}": {v}' for k, v in row.items()) + "}"
               for row in (good, second)]
    body = '{"inputs": [' + ", ".join(records) + "]}"
    parsed = parse_native(decode_json(body.encode()), TEXT.input_names)
    with pytest.raises(RequestInvalid) as info:
        RequestValidator(TEXT).validate(parsed)
    problem, = info.value.problems
    assert problem["loc"] == ["body", "inputs", 1, column]
    assert fragment in problem["msg"], problem["msg"]
    json.dumps(info.value.problems)  # the 422 body itself can be written


def test_valid_surrogate_pairs_and_other_scripts_pass() -> None:
    parsed = parse_native(decode_json(b'{"inputs": [{"note": "\\ud83d\\ude00 caf\\u00e9", '
                                      b'"plan": "pro", "blob": "\xe2\x82\xac"}]}'),
                          TEXT.input_names)
    out = RequestValidator(TEXT).validate(parsed)
    assert out.columns["note"] == ["\U0001F600 café"] and out.columns["blob"] == ["€"]


def test_without_a_signature_a_value_must_still_be_one_plain_value() -> None:
    validator = RequestValidator(None)
    for payload, fragment in (({"x": {"a": 1}}, "expected a single value, got an object"),
                              ({"x": [[1, 2]]}, "expected a single value, got a list"),
                              ({"x": ["\ud800"]}, "lone surrogate")):
        with pytest.raises(RequestInvalid) as info:
            validator.validate(parse_native({"inputs": payload}, []))
        assert info.value.problems[0]["loc"] == ["body", "inputs", 0, "x"]
        assert fragment in info.value.problems[0]["msg"]


def test_an_allowed_extra_column_is_checked_too() -> None:
    validator = RequestValidator(CHURN, allowed_extra=("customer_id",))
    with pytest.raises(RequestInvalid) as info:
        validator.validate(parse_native({"inputs": [{**ROW, "customer_id": "\ud800"}]},
                                        NAMES))
    assert info.value.problems[0]["loc"] == ["body", "inputs", 0, "customer_id"]


# ----------------------------------------------------------------------------- CSV cells
def test_one_bad_csv_cell_fails_only_its_row() -> None:
    """Issue 13: row 300 with age=x reported rows 0..499 as "expected an integer, got '70'"."""
    X, _ = churn_frame(500)
    X["income"] = X["income"].clip(0, 100)
    X["age"] = X["age"].astype(object)
    X.loc[300, "age"] = "x"
    body = X.to_csv(index=False).encode()
    with pytest.raises(RequestInvalid) as info:
        RequestValidator(CHURN).validate(parse_mlflow(body, "text/csv", NAMES))
    assert info.value.total == 1
    assert info.value.problems == [{"loc": ["body", "inputs", 300, "age"], "type": "type",
                                    "msg": "row 300, column 'age': expected an integer, "
                                           "got 'x'"}]


def test_csv_cells_are_read_as_their_columns_kind() -> None:
    sig = Signature(inputs=(ColumnSpec("n", "int64", True), ColumnSpec("x", "float32", True),
                            ColumnSpec("code", "string", True), ColumnSpec("ok", "bool")))
    body = b"n,x,code,ok\n7,1.5,007,true\n,NA,,0\n8.0,1e39,1_0,1\n1_000,nan,NA,False\n"
    with pytest.raises(RequestInvalid) as info:
        RequestValidator(sig).validate(parse_csv(body, sig.input_names))
    assert [(p["loc"][2], p["loc"][3]) for p in info.value.problems] == [(3, "n"), (2, "x")]
    assert "expected an integer, got '1_000'" in info.value.problems[0]["msg"]
    assert "1e+39 does not fit in float32" in info.value.problems[1]["msg"]
    out = RequestValidator(sig).validate(parse_csv(body.rsplit(b"\n", 3)[0] + b"\n",
                                                   sig.input_names))
    # Text stays text ("007" is not 7); empty cells and pandas' NA markers are nulls.
    assert out.columns == {"n": [7, None], "x": [1.5, None], "code": ["007", None],
                           "ok": [True, False]}


# ----------------------------------------------------------------------------- end to end
FAST = ServingConfig(poll_interval_s=0.05, log_flush_interval_s=0.1, startup_wait_s=10)


@pytest.fixture
def client(churn_registry: RegistryClient, serving_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app("churn@champion", workspace=Workspace(serving_settings),
                               config=FAST)) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200, what="ready")
        yield client


def test_the_server_refuses_hostile_bodies_with_what_and_where(client: TestClient) -> None:
    r = client.post("/invocations", content=wide_csv(50_000),
                    headers={"Content-Type": "text/csv"})
    assert r.status_code == 413 and "the CSV header: 50,000 columns" in r.json()["error"]
    records = [{f"k{i}_{j}": j for j in range(10)} for i in range(5_000)]
    r = client.post("/predict", json={"inputs": records})
    # The server passes the model's own limits: its 3 inputs + 64 extra fields.
    assert r.status_code == 413 and "inputs[6]: field 'k6_7'" in r.json()["error"]
    assert "the limit is 67 columns" in r.json()["error"]
    # One bad CSV cell: only its row is reported.
    X, _ = churn_frame(500)
    X["age"] = X["age"].astype(object)
    X.loc[300, "age"] = "x"
    r = client.post("/invocations", content=X.to_csv(index=False),
                    headers={"Content-Type": "text/csv"})
    assert r.status_code == 422, r.text
    assert [p["loc"] for p in r.json()["detail"]] == [["body", "inputs", 300, "age"]]
    # A lone surrogate and a NUL: 422 naming row and column, and the server still answers.
    for raw in (b'"\\ud800"', b'"p\\u0000ro"'):
        body = b'{"inputs": [{"age": 52, "income": 61.5, "plan": "pro"}, ' \
               b'{"age": 52, "income": 61.5, "plan": ' + raw + b"}]}"
        r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "inputs", 1, "plan"]
    r = client.post("/predict", json={"inputs": [{**ROW, "income": {"a": 1}}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "inputs", 0,
                                                                     "income"]
    assert client.post("/predict", json={"inputs": [ROW]}).status_code == 200


def test_a_model_without_a_signature_is_refused_with_the_reason(
        serving_settings: Settings) -> None:
    from sklearn.linear_model import LogisticRegression


    registry = RegistryClient(Workspace(serving_settings))
    X, y = churn_frame()
    with registry.tracking.start_run(experiment="bare") as run:
        registry.log_model(run.id, LogisticRegression().fit(X[["age", "income"]].to_numpy(), y),
                           name="bare")  # no input_example, no signature
    assert registry.load("models:/bare/1").signature is None
    config = ServingConfig(poll_interval_s=0.05, log_flush_interval_s=0.1, startup_wait_s=0.5)
    with TestClient(create_app("bare/1", workspace=Workspace(serving_settings), config=config)) as client:
        ready = wait_until(lambda: (r := client.get("/health/ready")).json().get("error") and r,
                           what="a load error")
        assert ready.status_code == 503
        reason = ready.json()["error"]
        assert "model bare/1 has no input signature" in reason
        assert "log it again with input_example=" in reason
        r = client.post("/predict", json={"inputs": [{"x": {"a": 1}}]})
        assert r.status_code == 503 and "no input signature" in r.json()["error"]
        r = client.post("/invocations", json={"instances": [[50, 60.0]]})
        assert r.status_code == 503


def test_served_model_refuses_a_model_without_a_signature(
        tmp_path: Path, serving_settings: Settings) -> None:
    from sklearn.linear_model import LogisticRegression

    from ratchet.packaging.directory import load_model, save_model
    from ratchet.serving.served_model import ModelVersionRef, ServedModel

    X, y = churn_frame()
    save_model(LogisticRegression().fit(X[["age"]].to_numpy(), y), tmp_path / "m")
    with pytest.raises(InvalidInput, match=r"model m/3 has no input signature"):
        ServedModel(ModelVersionRef("m", 3), load_model(tmp_path / "m"))
