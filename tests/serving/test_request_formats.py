from __future__ import annotations

import json
from typing import Any

import pytest

from ratchet.errors import InvalidInput
from ratchet.serving.request_formats import (
    MISSING,
    BadRequest,
    ParsedRequest,
    decode_json,
    parse_mlflow,
    parse_native,
    parse_oip,
)
from ratchet.workspace import Workspace

NAMES = ["age", "income", "plan"]


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def bad(call: Any, *args: Any, fragments: tuple[str, ...] = ()) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        call(*args)
    exc = info.value
    assert isinstance(exc, InvalidInput)
    assert exc.status == 422
    assert exc.problems, "a 422 always lists its problems"
    for problem in exc.problems:
        assert set(problem) == {"loc", "msg", "type"}
        assert problem["loc"][0] == "body"
        assert isinstance(problem["msg"], str) and problem["msg"]
    for fragment in fragments:
        assert fragment in str(exc), (fragment, str(exc))
    return exc


# ----------------------------------------------------------------------------- JSON
@pytest.mark.parametrize(("raw", "fragment"), [
    (b"", "empty"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (b'{"inputs": "\xe9"}', "not valid JSON"),
    (b"{", "not valid JSON"),
    (b"{'a': 1}", "not valid JSON"),
    (b'{"a": 1} trailing', "not valid JSON"),
    (b"9" * 5000, "not valid JSON"),  # above Python's int digit limit
    (b"[" * 100_000, "nested too deeply"),
])
def test_decode_json_errors(raw: bytes, fragment: str) -> None:
    exc = bad(decode_json, raw, fragments=(fragment,))
    assert exc.problems == [{"loc": ["body"], "msg": str(exc), "type": "format"}]


def test_decode_json_accepts_what_json_accepts() -> None:
    assert decode_json(b'{"a": [1, 2.5, null, "x"]}') == {"a": [1, 2.5, None, "x"]}
    assert decode_json('{"é": 1}'.encode()) == {"é": 1}
    # JSON parsers accept these; validation must deal with them (see test_request_validation).
    assert decode_json(b"[NaN, Infinity, -Infinity, 1e400]")[1:] == [float("inf"),
                                                                      float("-inf"),
                                                                      float("inf")]


def test_bad_request_defaults() -> None:
    exc = BadRequest("nope")
    assert exc.status == 422 and exc.http_status == 422
    assert exc.problems == [{"loc": ["body"], "msg": "nope", "type": "format"}]
    big = BadRequest("too big", status=413)
    assert big.status == 413
    custom = BadRequest("x", problems=[{"loc": ["body", "a"], "msg": "m", "type": "t"}])
    assert custom.problems[0]["loc"] == ["body", "a"]


# ----------------------------------------------------------------------------- ours
def test_native_records() -> None:
    parsed = parse_native({"inputs": [{"age": 30, "income": 1.5, "plan": "pro"},
                                      {"age": 40, "income": 2.5, "plan": "basic"}]}, NAMES)
    assert parsed == ParsedRequest({"age": [30, 40], "income": [1.5, 2.5],
                                    "plan": ["pro", "basic"]}, 2)
    assert parsed.params == {} and parsed.request_id is None


def test_native_one_record() -> None:
    parsed = parse_native({"inputs": [{"age": 30, "plan": None}]}, NAMES)
    assert parsed.columns == {"age": [30], "plan": [None]} and parsed.n_rows == 1


def test_native_records_with_absent_fields_are_missing_there() -> None:
    parsed = parse_native({"inputs": [{"age": 30, "plan": "pro"},
                                      {"income": 2.0, "age": None},
                                      {"plan": "basic", "extra": 1}]}, NAMES)
    assert parsed.n_rows == 3
    assert parsed.columns == {
        "age": [30, None, MISSING],
        "plan": ["pro", MISSING, "basic"],
        "income": [MISSING, 2.0, MISSING],
        "extra": [MISSING, MISSING, 1],
    }
    assert parsed.columns["age"][1] is None  # null is not missing
    assert repr(MISSING) == "<missing>"


def test_native_columns() -> None:
    parsed = parse_native({"inputs": {"age": [30, 40, 50], "plan": ["a", "b", "c"]}}, NAMES)
    assert parsed.columns == {"age": [30, 40, 50], "plan": ["a", "b", "c"]}
    assert parsed.n_rows == 3


def test_native_columns_of_scalars_is_one_record() -> None:
    parsed = parse_native({"inputs": {"age": 30, "plan": "pro"}}, NAMES)
    assert parsed.columns == {"age": [30], "plan": ["pro"]} and parsed.n_rows == 1


def test_native_columns_of_different_lengths() -> None:
    exc = bad(parse_native, {"inputs": {"age": [1, 2], "plan": ["a"]}}, NAMES,
              fragments=("column 'plan' has 1 values, others have 2",))
    assert exc.problems[0]["loc"] == ["body", "inputs", "plan"]


def test_native_empty_columns_object_has_no_rows() -> None:
    parsed = parse_native({"inputs": {}}, NAMES)
    assert parsed.columns == {} and parsed.n_rows == 0


def test_native_rows_as_lists_in_signature_order() -> None:
    parsed = parse_native({"inputs": [[30, 1.5, "pro"], [40, None, "basic"]]}, NAMES)
    assert parsed.columns == {"age": [30, 40], "income": [1.5, None], "plan": ["pro", "basic"]}
    assert parsed.n_rows == 2


def test_native_row_of_the_wrong_width() -> None:
    exc = bad(parse_native, {"inputs": [[30, 1.5, "pro"], [40, 2.0]]}, NAMES,
              fragments=("inputs[1]: expected a list of 3 values (age, income, plan), got 2",))
    assert exc.problems[0]["loc"] == ["body", "inputs", 1]


@pytest.mark.parametrize(("inputs", "fragment"), [
    ([], "no rows"),
    ("x", "expected a list of records or an object of columns"),
    (3, "expected a list of records or an object of columns"),
    (None, "expected a list of records or an object of columns"),
    ([1, 2, 3], "every row must be an object (record) or a list of values in the order "
                "age, income, plan"),
    ([{"age": 1}, [1, 2, 3]], "every row must be an object"),
])
def test_native_bad_inputs(inputs: Any, fragment: str) -> None:
    bad(parse_native, {"inputs": inputs}, NAMES, fragments=(fragment,))


@pytest.mark.parametrize("payload", [None, [], [{"age": 1}], {"rows": []}, "inputs"])
def test_native_needs_an_inputs_object(payload: Any) -> None:
    bad(parse_native, payload, NAMES, fragments=('expected {"inputs"',))


def test_native_unknown_top_level_fields() -> None:
    bad(parse_native, {"inputs": [{"age": 1}], "zeta": 1, "alpha": 2}, NAMES,
        fragments=("unknown top-level field(s): alpha, zeta",))


def test_native_params() -> None:
    parsed = parse_native({"inputs": [{"age": 1}], "params": {"threshold": 0.3}}, NAMES)
    assert parsed.params == {"threshold": 0.3}
    assert parse_native({"inputs": [{"age": 1}], "params": None}, NAMES).params == {}
    bad(parse_native, {"inputs": [{"age": 1}], "params": [1]}, NAMES,
        fragments=("params: expected an object",))


# ----------------------------------------------------------------------------- MLflow
def mlflow(payload: Any, content_type: str = "application/json") -> ParsedRequest:
    return parse_mlflow(body(payload), content_type, NAMES)


def test_mlflow_dataframe_split_with_columns() -> None:
    parsed = mlflow({"dataframe_split": {"columns": ["plan", "age"],
                                         "data": [["pro", 30], ["basic", 40]]}})
    assert parsed.columns == {"plan": ["pro", "basic"], "age": [30, 40]}
    assert parsed.n_rows == 2


def test_mlflow_dataframe_split_index_is_ignored() -> None:
    parsed = mlflow({"dataframe_split": {"index": [7, 8], "columns": ["age"],
                                         "data": [[1], [2]]}})
    assert parsed.columns == {"age": [1, 2]}


def test_mlflow_dataframe_split_without_columns_uses_signature_order() -> None:
    parsed = mlflow({"dataframe_split": {"data": [[30, 1.5, "pro"]]}})
    assert parsed.columns == {"age": [30], "income": [1.5], "plan": ["pro"]}


@pytest.mark.parametrize(("value", "fragment"), [
    ([[1, 2, 3]], "dataframe_split: expected"),
    ({"columns": ["age"]}, "dataframe_split: expected"),
    ({"columns": ["age"], "data": "x"}, "dataframe_split: expected"),
    ({"columns": "age", "data": [[1]]}, "dataframe_split.columns: expected a list"),
    ({"columns": None, "data": [[1]]}, "dataframe_split.columns: expected a list"),
    ({"columns": ["age", 3], "data": [[1, 2]]}, "dataframe_split.columns: expected a list"),
    ({"columns": ["age", "plan"], "data": [[1, "a"], [2]]},
     "dataframe_split.data[1]: expected a list of 2 values (age, plan), got 1"),
    ({"columns": ["age"], "data": [{"age": 1}]},
     "dataframe_split.data[0]: expected a list of 1 values (age), got dict"),
])
def test_mlflow_dataframe_split_errors(value: Any, fragment: str) -> None:
    exc = bad(mlflow, {"dataframe_split": value}, fragments=(fragment,))
    if "data[" in fragment:
        assert exc.problems[0]["loc"][:2] == ["body", "dataframe_split.data"]


def test_mlflow_dataframe_split_data_problem_location() -> None:
    exc = bad(mlflow, {"dataframe_split": {"columns": ["age"]}})
    assert exc.problems == [{"loc": ["body", "dataframe_split", "data"],
                             "msg": "expected a list of rows", "type": "format"}]


def test_mlflow_dataframe_records() -> None:
    parsed = mlflow({"dataframe_records": [{"age": 1, "plan": "a"}, {"age": 2}]})
    assert parsed.columns == {"age": [1, 2], "plan": ["a", MISSING]}
    assert parsed.n_rows == 2


def test_mlflow_instances_records_lists_and_columns() -> None:
    records = mlflow({"instances": [{"age": 1, "income": 2.0, "plan": "a"}]})
    lists = mlflow({"instances": [[1, 2.0, "a"]]})
    columns = mlflow({"instances": {"age": [1], "income": [2.0], "plan": ["a"]}})
    expected = {"age": [1], "income": [2.0], "plan": ["a"]}
    assert records.columns == lists.columns == columns.columns == expected
    assert records.n_rows == lists.n_rows == columns.n_rows == 1


def test_mlflow_inputs() -> None:
    assert mlflow({"inputs": {"age": [1, 2]}}).columns == {"age": [1, 2]}
    assert mlflow({"inputs": [{"age": 3}]}).columns == {"age": [3]}
    assert mlflow({"inputs": [[1, 2.0, "x"]]}).columns == {"age": [1], "income": [2.0],
                                                           "plan": ["x"]}


def test_mlflow_params() -> None:
    parsed = mlflow({"dataframe_records": [{"age": 1}], "params": {"k": 3}})
    assert parsed.params == {"k": 3}
    bad(mlflow, {"instances": [{"age": 1}], "params": "k=3"}, fragments=("params:",))


@pytest.mark.parametrize("payload", [
    {},
    {"params": {}},
    {"dataframe_records": [{"age": 1}], "instances": [{"age": 1}]},
    {"dataframe_split": {"data": []}, "inputs": [], "instances": []},
])
def test_mlflow_exactly_one_format_key(payload: dict[str, Any]) -> None:
    present = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs")
               if k in payload]
    bad(mlflow, payload, fragments=(
        "expected exactly one of dataframe_split, dataframe_records, instances, inputs; got "
        + (", ".join(present) if present else "none"),))


def test_mlflow_unknown_top_level_fields() -> None:
    bad(mlflow, {"instances": [{"age": 1}], "columns": ["age"]},
        fragments=("unknown top-level field(s): columns",))


@pytest.mark.parametrize("payload", [[{"age": 1}], "x", 3, None])
def test_mlflow_not_an_object(payload: Any) -> None:
    bad(mlflow, payload, fragments=("expected a JSON object with one of",))


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff", b"[" * 50_000])
def test_mlflow_bad_json(raw: bytes) -> None:
    bad(parse_mlflow, raw, "application/json", NAMES)


def test_mlflow_csv() -> None:
    raw = b"age,income,plan\n30,1.5,pro\n40,,basic\n"
    parsed = parse_mlflow(raw, "text/csv", NAMES)
    assert parsed.n_rows == 2
    # Cells stay text (the validator reads them as their column's kind); empty is null.
    assert parsed.columns == {"age": ["30", "40"], "income": ["1.5", None],
                              "plan": ["pro", "basic"]}
    assert parsed.text_cells


@pytest.mark.parametrize("content_type", ["text/csv; charset=utf-8", "TEXT/CSV",
                                          " text/csv ;header=present"])
def test_mlflow_csv_content_type_variants(content_type: str) -> None:
    assert parse_mlflow(b"age\n1\n", content_type, NAMES).columns == {"age": ["1"]}


def test_mlflow_csv_header_only_has_no_rows() -> None:
    parsed = parse_mlflow(b"age,plan\n", "text/csv", NAMES)
    assert parsed.n_rows == 0 and parsed.columns == {"age": [], "plan": []}


@pytest.mark.parametrize("raw", [b"", b"a,b\n1,2,3,4\n5\n\"unterminated", b"a\n\xff\xfe\n"])
def test_mlflow_csv_errors(raw: bytes) -> None:
    bad(parse_mlflow, raw, "text/csv", NAMES, fragments=("the CSV body could not be parsed",))


def test_mlflow_json_body_with_csv_like_content_type_is_json() -> None:
    parsed = parse_mlflow(body({"inputs": [{"age": 1}]}), "application/json; format=pandas",
                          NAMES)
    assert parsed.columns == {"age": [1]}


# ----------------------------------------------------------------------------- OIP v2
def tensor(name: str, data: Any, shape: list[int] | None = None,
           datatype: str = "FP64") -> dict[str, Any]:
    return {"name": name, "shape": shape if shape is not None else [len(data)],
            "datatype": datatype, "data": data}


def test_oip_per_column_tensors() -> None:
    parsed = parse_oip({"inputs": [tensor("age", [30, 40], datatype="INT64"),
                                   tensor("income", [1.5, 2.5]),
                                   tensor("plan", ["pro", "basic"], datatype="BYTES")]}, NAMES)
    assert parsed.columns == {"age": [30, 40], "income": [1.5, 2.5], "plan": ["pro", "basic"]}
    assert parsed.n_rows == 2 and parsed.request_id is None and parsed.params == {}


def test_oip_n_by_1_tensors_with_nested_data() -> None:
    parsed = parse_oip({"inputs": [tensor("age", [[30], [40]], [2, 1], "INT32"),
                                   tensor("income", [1.5, 2.5], [2, 1])]}, NAMES)
    assert parsed.columns == {"age": [30, 40], "income": [1.5, 2.5]}
    assert parsed.n_rows == 2


def test_oip_deeply_nested_data_is_flattened() -> None:
    parsed = parse_oip({"inputs": [tensor("age", [[[1]], [[2]], [[3]]], [3, 1])]}, NAMES)
    assert parsed.columns == {"age": [1, 2, 3]}


def test_oip_one_matrix_in_signature_order() -> None:
    parsed = parse_oip({"inputs": [tensor("input-0", [[30, 1.5, 0], [40, 2.5, 1]], [2, 3])]},
                       NAMES)
    assert parsed.columns == {"age": [30, 40], "income": [1.5, 2.5], "plan": [0, 1]}
    assert parsed.n_rows == 2
    flat = parse_oip({"inputs": [tensor("x", [30, 1.5, 0, 40, 2.5, 1], [2, 3])]}, NAMES)
    assert flat.columns == parsed.columns


def test_oip_matrix_of_the_wrong_width() -> None:
    bad(parse_oip, {"inputs": [tensor("x", [1, 2, 3, 4], [2, 2])]}, NAMES,
        fragments=("a [rows, columns] tensor needs 3 columns (age, income, plan), got 2",))


def test_oip_one_n_by_1_tensor_named_after_a_column_is_that_column() -> None:
    parsed = parse_oip({"inputs": [tensor("age", [[1], [2]], [2, 1])]}, NAMES)
    assert parsed.columns == {"age": [1, 2]}


def test_oip_without_signature_takes_tensors_by_name() -> None:
    parsed = parse_oip({"inputs": [tensor("x", [[1], [2]], [2, 1])]}, [])
    assert parsed.columns == {"x": [1, 2]} and parsed.n_rows == 2


def test_oip_zero_rows() -> None:
    parsed = parse_oip({"inputs": [tensor("age", [], [0])]}, NAMES)
    assert parsed.columns == {"age": []} and parsed.n_rows == 0


def test_oip_id_is_echoed_and_parameters_are_params() -> None:
    payload = {"id": "req-1", "parameters": {"p": 1}, "inputs": [tensor("age", [1])]}
    parsed = parse_oip(payload, NAMES)
    assert parsed.request_id == "req-1" and parsed.params == {"p": 1}
    matrix = parse_oip({**payload, "inputs": [tensor("x", [1, 2, 3], [1, 3])]}, NAMES)
    assert matrix.request_id == "req-1" and matrix.params == {"p": 1}


@pytest.mark.parametrize("parameters", ["x", [1], 3])
def test_oip_bad_parameters(parameters: Any) -> None:
    for inputs in ([tensor("age", [1])], [tensor("x", [1, 2, 3], [1, 3])]):
        bad(parse_oip, {"inputs": inputs, "parameters": parameters}, NAMES,
            fragments=("params: expected an object",))


@pytest.mark.parametrize("request_id", [3, 1.5, True, ["a"], {"a": 1}])
def test_oip_non_string_id(request_id: Any) -> None:
    bad(parse_oip, {"id": request_id, "inputs": [tensor("age", [1])]}, NAMES,
        fragments=("id: expected a string",))


@pytest.mark.parametrize("payload", [None, [], {}, {"inputs": []}, {"inputs": {"age": [1]}},
                                     {"inputs": "age"}])
def test_oip_needs_a_list_of_tensors(payload: Any) -> None:
    bad(parse_oip, payload, NAMES, fragments=('expected {"inputs": [{"name", "shape"',))


@pytest.mark.parametrize(("tensor_value", "loc", "fragment"), [
    ("age", ["body", "inputs", 0], "inputs[0]: expected a tensor object"),
    ({"shape": [1], "datatype": "FP64", "data": [1]}, ["body", "inputs", 0, "name"],
     "inputs[0].name: expected a string"),
    ({"name": 3, "shape": [1], "datatype": "FP64", "data": [1]},
     ["body", "inputs", 0, "name"], "inputs[0].name"),
    ({"name": "age", "datatype": "FP64", "data": [1]}, ["body", "inputs", 0, "shape"],
     "inputs[0].shape: expected [rows] or [rows, columns] (non-negative integers)"),
    (tensor("age", [1], []), ["body", "inputs", 0, "shape"], "inputs[0].shape"),
    (tensor("age", [1], [-1]), ["body", "inputs", 0, "shape"], "inputs[0].shape"),
    (tensor("age", [1], [1.0]), ["body", "inputs", 0, "shape"], "inputs[0].shape"),
    (tensor("age", [1], [True]), ["body", "inputs", 0, "shape"], "inputs[0].shape"),
    (tensor("age", [1], datatype="FLOAT"), ["body", "inputs", 0, "datatype"],
     "inputs[0].datatype: unknown datatype 'FLOAT'"),
    ({"name": "age", "shape": [1], "data": [1]}, ["body", "inputs", 0, "datatype"],
     "unknown datatype None"),
    (tensor("age", [1, 2, 3], [2]), ["body", "inputs", 0, "data"],
     "inputs[0]: shape [2] needs 2 values, data has 3"),
    (tensor("age", [[1, 2], [3]], [2, 2]), ["body", "inputs", 0, "data"],
     "shape [2, 2] needs 4 values, data has 3"),
])
def test_oip_tensor_errors(tensor_value: Any, loc: list[Any], fragment: str) -> None:
    exc = bad(parse_oip, {"inputs": [tensor_value]}, NAMES, fragments=(fragment,))
    assert exc.problems[0]["loc"] == loc


@pytest.mark.parametrize("data", [None, "1,2", {"a": 1}, 3])
def test_oip_data_must_be_a_list(data: Any) -> None:
    bad(parse_oip, {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64",
                                "data": data}]}, NAMES,
        fragments=("inputs[0].data: expected a list",))


def test_oip_every_numeric_datatype_is_known() -> None:
    for datatype in ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                     "INT64", "FP16", "FP32", "FP64", "BYTES"):
        assert parse_oip({"inputs": [tensor("age", [1], datatype=datatype)]}, NAMES).n_rows == 1


def test_oip_mismatched_row_counts() -> None:
    bad(parse_oip, {"inputs": [tensor("age", [1, 2]), tensor("income", [1.0, 2.0, 3.0])]},
        NAMES, fragments=("inputs[1] (income): 3 rows, but earlier tensors have 2",))


def test_oip_column_tensor_of_the_wrong_shape() -> None:
    bad(parse_oip, {"inputs": [tensor("age", [1, 2, 3, 4], [2, 2]),
                               tensor("income", [1.0, 2.0])]}, NAMES,
        fragments=("inputs[0] (age): a column tensor must have shape [n] or [n, 1], got [2, 2]",))
    bad(parse_oip, {"inputs": [tensor("age", [1, 2], [2, 1, 1])]}, NAMES,
        fragments=("inputs[0].shape: expected [rows] or [rows, columns]",))


def test_oip_duplicate_tensor_names() -> None:
    exc = bad(parse_oip, {"inputs": [tensor("age", [1]), tensor("age", [2])]}, NAMES,
              fragments=("inputs[1] (age): an earlier tensor has the same name",))
    assert exc.problems[0]["loc"] == ["body", "inputs", 1, "name"]


# ----------------------------------------------------------------------------- CSV header
@pytest.mark.parametrize("raw", [b"30,1.5,pro\n", b"30,1.5,pro", b"\xef\xbb\xbf52,61.5,basic\r\n"])
def test_csv_without_header_line_says_the_header_is_missing(raw: bytes) -> None:
    """One line of values and nothing else is a row whose header line was left out."""
    exc = bad(parse_mlflow, raw, "text/csv", NAMES,
              fragments=("the CSV body has no header line", "names none of the model's "
                         "inputs (the model takes 3: age, income, plan)"))
    assert "no rows" not in str(exc)
    assert exc.problems == [{"loc": ["body", "csv", "header"], "msg": "missing header line",
                             "type": "format"}]


@pytest.mark.parametrize("raw", [b"age,plan\n", b"Age,income2,plan\n"])
def test_csv_header_naming_an_input_with_no_rows_is_still_a_header(raw: bytes) -> None:
    # The validator answers "the request has no rows" for these: the header is there.
    assert parse_mlflow(raw, "text/csv", NAMES).n_rows == 0


def test_server_answers_a_csv_row_without_header_line_with_the_missing_header(
        churn_registry: Any, serving_settings: Any) -> None:
    from fastapi.testclient import TestClient

    from ratchet.serving import create_app

    with TestClient(create_app("churn@champion", workspace=Workspace(serving_settings))) as client:
        got = client.post("/invocations", content=b"52,61.5,pro\n",
                          headers={"Content-Type": "text/csv"})
    assert got.status_code == 422
    assert "the CSV body has no header line" in got.json()["error"], got.json()
