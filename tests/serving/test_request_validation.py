from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratchet.errors import InvalidInput
from ratchet.packaging.signature import ColumnSpec, Signature
from ratchet.serving.request_formats import (
    MISSING,
    BadRequest,
    ParsedRequest,
    decode_json,
    parse_native,
)
from ratchet.serving.request_validation import (
    FLAG,
    IGNORE,
    MAX_REPORTED_PROBLEMS,
    OUT_OF_RANGE,
    REJECT,
    UNKNOWN_CATEGORY,
    RequestInvalid,
    RequestValidator,
    ValidatedRequest,
    ValidationPolicy,
    validate_mapping,
)

VECTORIZE_FROM_ROWS = 512  # the module's threshold for the NumPy path

SIG = Signature(inputs=(
    ColumnSpec("age", "int64", False, 18.0, 80.0),
    ColumnSpec("income", "float64", True, 0.0, 1000.0),
    ColumnSpec("plan", "category", False, categories=("basic", "pro", "team")),
    ColumnSpec("active", "bool"),
    ColumnSpec("note", "string", True),
    ColumnSpec("seen", "datetime64[ns]"),
    ColumnSpec("blob", "object", True),
))

ROW: dict[str, Any] = {"age": 30, "income": 50.5, "plan": "pro", "active": True,
                       "note": "hi", "seen": "2024-01-01T10:00:00", "blob": 7}


def columns(*rows: dict[str, Any]) -> dict[str, list[Any]]:
    return {name: [r[name] for r in rows] for name in rows[0]}


def rows(n: int, **changes: Any) -> dict[str, list[Any]]:
    """n copies of ROW as columns; changes maps column -> {row: value} or a whole list."""
    data = {name: [value] * n for name, value in ROW.items()}
    for name, change in changes.items():
        if isinstance(change, dict):
            for i, value in change.items():
                data[name][i] = value
        else:
            data[name] = change
    return data


def validate(data: dict[str, Any], policy: ValidationPolicy | None = None,
             signature: Signature | None = SIG, n: int | None = None,
             allowed_extra: tuple[str, ...] = ()) -> ValidatedRequest:
    if n is None:
        n = len(next(iter(data.values())))
    validator = RequestValidator(signature, policy, allowed_extra=allowed_extra)
    return validator.validate(ParsedRequest(data, n))


def problems_of(data: dict[str, Any], policy: ValidationPolicy | None = None,
                signature: Signature | None = SIG) -> RequestInvalid:
    with pytest.raises(RequestInvalid) as info:
        validate(data, policy, signature)
    exc = info.value
    assert isinstance(exc, BadRequest) and isinstance(exc, InvalidInput)
    assert exc.status == 422
    assert 0 < len(exc.problems) <= MAX_REPORTED_PROBLEMS <= exc.total or (
        len(exc.problems) == exc.total)
    for p in exc.problems:
        assert set(p) == {"loc", "msg", "type"}
    return exc


def only_problem(data: dict[str, Any], policy: ValidationPolicy | None = None,
                 signature: Signature | None = SIG) -> dict[str, Any]:
    exc = problems_of(data, policy, signature)
    assert exc.total == 1 and len(exc.problems) == 1, exc.problems
    return exc.problems[0]


def assert_problem(problem: dict[str, Any], row: int | None, column: str, kind: str,
                   *fragments: str) -> None:
    loc = ["body", "inputs", column] if row is None else ["body", "inputs", row, column]
    assert problem["loc"] == loc
    assert problem["type"] == kind
    prefix = (f"row {row}, " if row is not None else "") + f"column {column!r}: "
    assert problem["msg"].startswith(prefix), problem["msg"]
    for fragment in fragments:
        assert fragment in problem["msg"], (fragment, problem["msg"])


# ----------------------------------------------------------------------------- accepted
def test_a_valid_request_is_conformed_in_signature_order() -> None:
    data = columns(ROW, {**ROW, "age": 45.0, "plan": "basic", "active": "false",
                         "income": None, "note": None})
    data = {k: data[k] for k in reversed(list(data))}  # request order does not matter
    out = validate(data)
    assert list(out.columns) == SIG.input_names
    assert out.n_rows == 2
    assert out.columns["age"] == [30, 45] and all(type(v) is int for v in out.columns["age"])
    assert out.columns["income"] == [50.5, None]
    assert out.columns["plan"] == ["pro", "basic"]
    assert out.columns["active"] == [True, False]
    assert out.flags is None and out.flag_counts == Counter() and out.extras == {}


def test_no_signature_passes_everything_through() -> None:
    data = {"anything": [1, "x", None]}
    out = validate(data, signature=None)
    assert out.columns == data and out.n_rows == 3 and out.flags is None


def test_validate_mapping_uses_the_same_rules() -> None:
    validator = RequestValidator(SIG)
    out = validate_mapping(validator, rows(2), 2)
    assert out.columns["age"] == [30, 30]
    with pytest.raises(RequestInvalid):
        validate_mapping(validator, rows(2, age={1: "x"}), 2)


# ----------------------------------------------------------------------------- sizes
def test_too_many_rows_is_413() -> None:
    policy = ValidationPolicy(max_rows=3)
    assert validate(rows(3), policy).n_rows == 3
    with pytest.raises(BadRequest) as info:
        validate(rows(4), policy)
    assert not isinstance(info.value, RequestInvalid)
    assert info.value.status == 413
    assert "4 rows in one request; the limit is 3" in str(info.value)
    assert info.value.problems[0]["loc"] == ["body"]


def test_the_row_limit_applies_before_anything_else() -> None:
    with pytest.raises(BadRequest) as info:
        validate({"nonsense": [1] * 11}, ValidationPolicy(max_rows=10))
    assert info.value.status == 413


def test_zero_rows_is_422() -> None:
    with pytest.raises(BadRequest) as info:
        validate({name: [] for name in ROW}, n=0)
    assert info.value.status == 422 and "no rows" in str(info.value)
    with pytest.raises(BadRequest, match="no rows"):
        validate({}, signature=None, n=0)


# ----------------------------------------------------------------------------- columns
def test_missing_column() -> None:
    data = rows(2)
    del data["plan"]
    assert_problem(only_problem(data), None, "plan", "missing", "missing")


def test_every_missing_column_is_reported() -> None:
    exc = problems_of({"age": [30]})
    assert exc.total == 6
    assert [p["loc"][-1] for p in exc.problems] == SIG.input_names[1:]
    assert {p["type"] for p in exc.problems} == {"missing"}


@pytest.mark.parametrize("column", list(ROW))
def test_missing_in_one_row(column: str) -> None:
    problem = only_problem(rows(3, **{column: {1: MISSING}}))
    assert_problem(problem, 1, column, "missing", "missing in this row")


def test_missing_in_a_row_from_parsed_records() -> None:
    records = [ROW, {k: v for k, v in ROW.items() if k != "age"}, ROW]
    parsed = parse_native({"inputs": records}, SIG.input_names)
    with pytest.raises(RequestInvalid) as info:
        RequestValidator(SIG).validate(parsed)
    assert info.value.problems == [{"loc": ["body", "inputs", 1, "age"],
                                    "msg": "row 1, column 'age': missing in this row",
                                    "type": "missing"}]


def test_extra_column_rejected_by_default() -> None:
    problem = only_problem({**rows(1), "zip": ["12345"]})
    assert_problem(problem, None, "zip", "extra", "not an input of the model",
                   "(inputs: age, income, plan, active, note, seen, blob)")


def test_extra_columns_ignored_by_policy() -> None:
    out = validate({**rows(1), "zip": ["12345"]}, ValidationPolicy(extra_columns=IGNORE))
    assert "zip" not in out.columns and out.extras == {}


@pytest.mark.parametrize("extra_policy", [REJECT, IGNORE])
def test_allowed_extra_columns_are_kept_aside(extra_policy: str) -> None:
    data = {**rows(2), "customer_id": ["c1", "c2"]}
    out = validate(data, ValidationPolicy(extra_columns=extra_policy),
                   allowed_extra=("customer_id", "unused"))
    assert "customer_id" not in out.columns
    assert out.extras == {"customer_id": ["c1", "c2"]}


def test_allowed_extra_does_not_allow_other_columns() -> None:
    exc = problems_of({**rows(1), "customer_id": ["c"], "zip": ["1"]})
    assert [p["loc"] for p in exc.problems] == [["body", "inputs", "customer_id"],
                                                ["body", "inputs", "zip"]]
    with pytest.raises(RequestInvalid) as info:
        validate({**rows(1), "customer_id": ["c"], "zip": ["1"]},
                 allowed_extra=("customer_id",))
    assert [p["loc"] for p in info.value.problems] == [["body", "inputs", "zip"]]


# ----------------------------------------------------------------------------- types
@pytest.mark.parametrize("value", ["30", "thirty", True, False, [30], {"v": 30}, 30.5, -0.1,
                                   float("inf"), float("-inf")])
def test_int_column_type_errors(value: Any) -> None:
    problem = only_problem(rows(3, age={2: value}))
    assert_problem(problem, 2, "age", "type")
    if isinstance(value, float) and math.isinf(value):
        assert problem["msg"].endswith(f"expected a finite number, got {value!r}")
    else:
        assert problem["msg"].endswith(f"expected an integer, got {value!r}")


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30, 2.0**63, -1e19, 1e300])
def test_int_column_values_that_do_not_fit(value: int | float) -> None:
    spec = Signature(inputs=(ColumnSpec("n", "int64"),))
    problem = only_problem({"n": [1, value]}, signature=spec)
    # Long numbers are cut short in messages.
    assert_problem(problem, 1, "n", "type", str(int(value))[:50], "does not fit in int64")


def test_int_column_edges_that_fit() -> None:
    spec = Signature(inputs=(ColumnSpec("n", "int64"),))
    out = validate({"n": [2**63 - 1, -(2**63), -(2.0**63), 0.0, -0.0]}, signature=spec)
    assert out.columns["n"] == [2**63 - 1, -(2**63), -(2**63), 0, 0]
    assert all(type(v) is int for v in out.columns["n"])


def test_integral_floats_are_ints_and_the_request_list_is_untouched() -> None:
    data = rows(3, age=[30.0, 31, 1e1 * 4])
    original = list(data["age"])
    out = validate(data)
    assert out.columns["age"] == [30, 31, 40]
    assert [type(v) for v in out.columns["age"]] == [int, int, int]
    assert data["age"] == original and type(data["age"][0]) is float


@pytest.mark.parametrize("value", ["1.5", "x", True, None, [1.0], {"a": 1}])
def test_float_column_type_errors(value: Any) -> None:
    spec = Signature(inputs=(ColumnSpec("x", "float64", False),))
    problem = only_problem({"x": [1.0, value]}, signature=spec)
    if value is None:
        assert_problem(problem, 1, "x", "null", "null, but the training data had none")
    else:
        assert_problem(problem, 1, "x", "type", f"expected a number, got {value!r}")


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_infinity_is_not_a_number_a_model_can_use(value: float) -> None:
    # JSON parsers accept Infinity and 1e400; a float column without bounds used to pass it.
    spec = Signature(inputs=(ColumnSpec("x", "float64", True),))
    problem = only_problem({"x": [1.0, value]}, signature=spec)
    assert_problem(problem, 1, "x", "type", f"expected a finite number, got {value!r}")
    # Not an out-of-range flag either, whatever the policy.
    with pytest.raises(RequestInvalid):
        validate({"income": [value]}, ValidationPolicy(out_of_range=FLAG),
                 Signature(inputs=(SIG.inputs[1],)))


def test_infinity_from_a_json_body_is_rejected() -> None:
    payload = decode_json(b'{"inputs": [{"x": 1e400}, {"x": 2}, {"x": -Infinity}]}')
    parsed = parse_native(payload, ["x"])
    with pytest.raises(RequestInvalid) as info:
        RequestValidator(Signature(inputs=(ColumnSpec("x", "float64"),))).validate(parsed)
    assert [p["loc"] for p in info.value.problems] == [["body", "inputs", 0, "x"],
                                                       ["body", "inputs", 2, "x"]]


def test_float_column_huge_json_integer_does_not_fit() -> None:
    spec = Signature(inputs=(ColumnSpec("x", "float64"),))
    problem = only_problem({"x": [10**400]}, signature=spec)
    assert_problem(problem, 0, "x", "type", "does not fit in float64")
    assert validate({"x": [10**300, 2**63]}, signature=spec).columns["x"] == [10**300, 2**63]


def test_float_column_keeps_ints_and_floats() -> None:
    out = validate(rows(3, income=[1, 2.5, 0]))
    assert out.columns["income"] == [1, 2.5, 0]


def test_numpy_scalars_in_a_list_are_numbers() -> None:
    spec = Signature(inputs=(ColumnSpec("n", "int64", True), ColumnSpec("x", "float64")))
    out = validate({"n": [np.int32(3), np.float64(4.0), np.float32("nan")],
                    "x": [np.float32(1.5), np.int64(2), np.uint8(7)]}, signature=spec)
    assert out.columns["n"][:2] == [3, 4] and math.isnan(out.columns["n"][2])
    assert out.columns["x"] == [1.5, 2, 7]
    assert [type(v) for v in out.columns["x"]] == [float, int, int]
    # A NumPy NaN is a null (not a number that slips past the null rule) ...
    problem = only_problem({"n": [1], "x": [np.float64("nan")]}, signature=spec)
    assert_problem(problem, 0, "x", "null")
    # ... and NumPy infinities and bools are rejected like their Python twins.
    exc = problems_of({"n": [np.bool_(True), np.uint64(2**64 - 1)],
                       "x": [np.float32("inf"), 1.0]}, signature=spec)
    assert [(p["loc"][2], p["loc"][3], p["type"]) for p in exc.problems] == [
        (0, "n", "type"), (1, "n", "type"), (0, "x", "type")]
    assert "does not fit in int64" in exc.problems[1]["msg"]
    assert "finite" in exc.problems[2]["msg"]


@pytest.mark.parametrize("value", [1.5, True, [1], {"a": "b"}])
def test_string_column_type_errors(value: Any) -> None:
    problem = only_problem(rows(2, note={0: value}))
    assert_problem(problem, 0, "note", "type", f"expected a string, got {value!r}")


def test_string_column_takes_ints_as_text() -> None:
    assert validate(rows(2, note=[7, "x"])).columns["note"] == ["7", "x"]


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), (1, True), (0, False), (1.0, True), (0.0, False),
    ("true", True), (" False ", False), ("1", True), ("0", False), ("TRUE", True),
])
def test_bool_column_accepts(value: Any, expected: bool) -> None:
    assert validate(rows(1, active=[value])).columns["active"] == [expected]


@pytest.mark.parametrize("value", [2, -1, 0.5, "yes", "", [True], {"a": 1}])
def test_bool_column_type_errors(value: Any) -> None:
    problem = only_problem(rows(2, active={1: value}))
    assert_problem(problem, 1, "active", "type", f"expected true or false, got {value!r}")


@pytest.mark.parametrize("value", ["2024-01-01", "2024-01-01T10:00:00Z",
                                   "2024-01-01 10:00:00.123+02:00",
                                   dt.datetime(2024, 1, 1), pd.Timestamp("2024-01-01")])
def test_datetime_column_accepts(value: Any) -> None:
    assert validate(rows(1, seen=[value])).columns["seen"] == [value]


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "", "01/02/2024", 1700000000,
                                   1.5, True, dt.date(2024, 1, 1)])
def test_datetime_column_type_errors(value: Any) -> None:
    problem = only_problem(rows(2, seen={1: value}))
    assert_problem(problem, 1, "seen", "type",
                   f"expected an ISO 8601 datetime, got {value!r}")


def test_object_column_passes_any_single_value() -> None:
    out = validate(rows(4, blob=[None, 1.5, "text", True]))
    assert out.columns["blob"] == [None, 1.5, "text", True]


@pytest.mark.parametrize(("value", "what"), [([1, 2], "a list"), ({"x": 1}, "an object")])
def test_object_column_refuses_nested_values(value: Any, what: str) -> None:
    # A list in one row and an object in another cannot even be one Arrow column of the
    # prediction log; no model column of training data held them either.
    problem = only_problem(rows(3, blob={1: value}))
    assert_problem(problem, 1, "blob", "type", f"expected a single value, got {what}")


def test_object_column_not_nullable_refuses_nulls() -> None:
    # The column contract's null rule holds for every kind, object columns included.
    spec = Signature(inputs=(ColumnSpec("blob", "object", False),))
    problem = only_problem({"blob": [1, None]}, signature=spec)
    assert_problem(problem, 1, "blob", "null", "null, but the training data had none")


@pytest.mark.parametrize("value", [pd.NA, pd.NaT, np.float32("nan")])
def test_every_kind_of_missing_value_is_a_null(value: Any) -> None:
    income = validate(rows(1, income=[value])).columns["income"]  # nullable: accepted,
    assert type(income[0]) is float and math.isnan(income[0])  # as the one float NaN
    assert validate(rows(1, note=[value])).columns["note"] == [None]  # as None
    problem = only_problem(rows(1, plan=[value]))  # not nullable: a null, not a type error
    assert_problem(problem, 0, "plan", "null")


# ----------------------------------------------------------------------------- nulls
@pytest.mark.parametrize("null", [None, float("nan")])
@pytest.mark.parametrize("column", ["age", "plan", "active", "seen"])
def test_null_where_training_had_none(null: Any, column: str) -> None:
    problem = only_problem(rows(3, **{column: {2: null}}))
    assert_problem(problem, 2, column, "null", "null, but the training data had none")


@pytest.mark.parametrize("null", [None, float("nan")])
def test_nulls_in_nullable_columns_pass(null: Any) -> None:
    nullable = Signature(inputs=tuple(
        ColumnSpec(c.name, c.dtype, True, c.min, c.max, c.categories) for c in SIG.inputs))
    out = validate(rows(2, **{name: {1: null} for name in ROW}), signature=nullable)
    assert out.flags is None  # a null is not out of range or an unknown category either
    assert out.columns["active"][1] is None  # bools are conformed: None for a null
    for name in ("age", "income", "plan", "note", "seen", "blob"):
        assert out.columns[name][1] is null, name  # the null as sent
    assert out.columns["age"][0] == 30


# ----------------------------------------------------------------------------- policies
def test_unknown_category_rejected_by_default() -> None:
    problem = only_problem(rows(2, plan={1: "gold"}))
    assert_problem(problem, 1, "plan", UNKNOWN_CATEGORY,
                   "unknown category 'gold' (known: 'basic', 'pro', 'team')")


def test_unknown_category_message_shows_ten_known() -> None:
    cats = tuple(f"c{i:02d}" for i in range(12))
    spec = Signature(inputs=(ColumnSpec("c", "category", categories=cats),))
    problem = only_problem({"c": ["zz"]}, signature=spec)
    assert "'c09' …)" in problem["msg"] and "c10" not in problem["msg"]


def test_category_codes_sent_as_numbers() -> None:
    spec = Signature(inputs=(ColumnSpec("c", "category", categories=("1", "2")),))
    assert validate({"c": [1, "2"]}, signature=spec).columns["c"] == ["1", "2"]
    assert_problem(only_problem({"c": [3]}, signature=spec), 0, "c", UNKNOWN_CATEGORY,
                   "unknown category '3'")


def test_unknown_category_flagged_and_counted() -> None:
    policy = ValidationPolicy(unknown_category=FLAG)
    out = validate(rows(4, plan={1: "gold", 3: "silver"}), policy)
    assert out.columns["plan"] == ["pro", "gold", "pro", "silver"]
    assert out.flags == [None, ["plan:unknown_category"], None, ["plan:unknown_category"]]
    assert out.flag_counts == Counter({("plan", UNKNOWN_CATEGORY): 2})


def test_out_of_range_flagged_by_default() -> None:
    out = validate(rows(4, age={0: 17, 2: 81.0}, income={2: 1000.5, 3: 0}))
    assert out.flags == [["age:out_of_range"], None,
                         ["age:out_of_range", "income:out_of_range"], None]
    assert out.flag_counts == Counter({("age", OUT_OF_RANGE): 2, ("income", OUT_OF_RANGE): 1})
    assert out.columns["age"] == [17, 30, 81, 30]


def test_range_bounds_are_inclusive() -> None:
    policy = ValidationPolicy(out_of_range=REJECT)
    assert validate(rows(2, age=[18, 80], income=[0.0, 1000]), policy).flags is None


def test_out_of_range_rejected_by_policy() -> None:
    exc = problems_of(rows(3, age={0: 17, 2: 81}, income={1: -0.5}),
                      ValidationPolicy(out_of_range=REJECT))
    assert exc.total == 3
    assert_problem(exc.problems[0], 0, "age", OUT_OF_RANGE,
                   "17 is outside the training range [18, 80]")
    assert_problem(exc.problems[1], 2, "age", OUT_OF_RANGE, "81 is outside")
    assert_problem(exc.problems[2], 1, "income", OUT_OF_RANGE,
                   "-0.5 is outside the training range [0, 1000]")


def test_one_sided_range() -> None:
    spec = Signature(inputs=(ColumnSpec("x", "float64", min=0.0),))
    policy = ValidationPolicy(out_of_range=REJECT)
    assert validate({"x": [1e300]}, policy, spec).flags is None
    assert_problem(only_problem({"x": [-1]}, policy, spec), 0, "x", OUT_OF_RANGE, "[0, inf]")


def test_flags_and_unknowns_together_in_signature_order() -> None:
    policy = ValidationPolicy(unknown_category=FLAG)
    out = validate(rows(2, plan={0: "gold"}, age={0: 99}), policy)
    assert out.flags == [["age:out_of_range", "plan:unknown_category"], None]


def test_a_rejected_request_reports_every_kind_at_once() -> None:
    data = {**rows(3, age={0: "x"}, income={1: float("inf")}, plan={2: "gold"},
                   active={0: None}, seen={1: MISSING}), "zip": [1, 2, 3]}
    del data["note"]
    exc = problems_of(data)
    got = [(p["loc"][2:], p["type"]) for p in exc.problems]
    assert got == [(["zip"], "extra"), ([0, "age"], "type"), ([1, "income"], "type"),
                   ([2, "plan"], UNKNOWN_CATEGORY), ([0, "active"], "null"),
                   (["note"], "missing"), ([1, "seen"], "missing")]
    message = str(exc)
    assert message.startswith("input does not match the model signature: column 'zip'")
    assert "row 0, column 'age': expected an integer, got 'x'" in message
    assert "(and 2 more)" in message


def test_problems_are_capped_but_all_counted() -> None:
    n = 250
    exc = problems_of(rows(n, age=["x"] * n, plan=["gold"] * n))
    assert exc.total == 2 * n
    assert len(exc.problems) == MAX_REPORTED_PROBLEMS
    assert [p["loc"][2] for p in exc.problems] == list(range(MAX_REPORTED_PROBLEMS))
    assert {p["loc"][3] for p in exc.problems} == {"age"}
    assert f"(and {2 * n - 5} more)" in str(exc)


@pytest.mark.parametrize(("field", "value"), [
    ("unknown_category", IGNORE), ("unknown_category", "warn"), ("out_of_range", IGNORE),
    ("out_of_range", None), ("extra_columns", FLAG), ("extra_columns", "allow"),
    ("max_rows", 0), ("max_rows", -5), ("max_rows", 1.5), ("max_rows", "100"),
])
def test_policy_rejects_bad_choices(field: str, value: Any) -> None:
    with pytest.raises(InvalidInput, match=f"validation policy {field}: expected"):
        ValidationPolicy(**{field: value})


def test_policy_defaults() -> None:
    policy = ValidationPolicy()
    assert (policy.unknown_category, policy.out_of_range, policy.extra_columns,
            policy.max_rows) == (REJECT, FLAG, REJECT, 10_000)


# ----------------------------------------------------------------------------- NumPy path
def test_numpy_path_is_used_for_big_arrays_and_agrees() -> None:
    n = VECTORIZE_FROM_ROWS
    spec = Signature(inputs=(ColumnSpec("x", "float64", False, 0.0, 10.0),))
    array = np.linspace(0.0, 10.0, n)
    array[[3, 200]] = [11.0, -1.0]
    big = validate({"x": array}, signature=spec)
    assert isinstance(big.columns["x"], np.ndarray)  # the vectorized path answered
    small = validate({"x": array.tolist()}, signature=spec)
    assert isinstance(small.columns["x"], list)
    assert big.flags == small.flags
    assert big.flag_counts == small.flag_counts == Counter({("x", OUT_OF_RANGE): 2})
    assert big.flags is not None and big.flags[3] == ["x:out_of_range"]


def test_numpy_path_reports_like_the_python_path() -> None:
    n = 600
    spec = Signature(inputs=(ColumnSpec("age", "int64", False, 18.0, 80.0),))
    array = np.full(n, 30.0)
    array[[5, 7, 9, 11]] = [np.nan, 2.5, np.inf, 99.0]
    policy = ValidationPolicy(out_of_range=REJECT)
    with pytest.raises(RequestInvalid) as vectorized:
        validate({"age": array}, policy, spec)
    with pytest.raises(RequestInvalid) as python:
        validate({"age": array.tolist()}, policy, spec)
    assert vectorized.value.problems == python.value.problems
    assert [p["msg"] for p in python.value.problems] == [
        "row 5, column 'age': null, but the training data had none",
        "row 7, column 'age': expected an integer, got 2.5",
        "row 9, column 'age': expected a finite number, got inf",
        "row 11, column 'age': 99 is outside the training range [18, 80]",
    ]


def test_numpy_path_for_pandas_series_and_small_arrays() -> None:
    spec = Signature(inputs=(ColumnSpec("x", "float64", False),))
    series = pd.Series(np.arange(1000, dtype=float))
    series[999] = np.inf
    problem = only_problem({"x": series}, signature=spec)
    assert_problem(problem, 999, "x", "type", "expected a finite number, got inf")
    small = np.arange(10, dtype=float)
    small[4] = -np.inf
    assert_problem(only_problem({"x": small}, signature=spec), 4, "x", "type", "got -inf")


def test_numpy_path_uint64_that_does_not_fit_in_int64() -> None:
    spec = Signature(inputs=(ColumnSpec("id", "int64"),))
    array = np.arange(VECTORIZE_FROM_ROWS, dtype=np.uint64)
    array[10] = 2**64 - 1
    for values in (array, array.tolist()):
        problem = only_problem({"id": values}, signature=spec)
        assert_problem(problem, 10, "id", "type", f"{2**64 - 1} does not fit in int64")


def test_numpy_path_counts_every_problem_beyond_the_cap() -> None:
    n = 1000
    spec = Signature(inputs=(ColumnSpec("n", "int64", False, 0.0, 10.0),))
    array = np.full(n, 1.5)  # 1000 type errors
    array[:300] = np.nan  # 300 nulls first
    array[-100:] = 50.0  # 100 out of range
    for policy, expected in ((ValidationPolicy(out_of_range=REJECT), n),
                             (ValidationPolicy(out_of_range=FLAG), n - 100)):
        with pytest.raises(RequestInvalid) as vectorized:
            validate({"n": array}, policy, spec)
        with pytest.raises(RequestInvalid) as python:
            validate({"n": array.tolist()}, policy, spec)
        assert vectorized.value.total == python.value.total == expected
        assert vectorized.value.problems == python.value.problems
        assert [p["loc"][2] for p in vectorized.value.problems] == list(range(100))


def test_numpy_non_numeric_arrays_take_the_python_path() -> None:
    spec = Signature(inputs=(ColumnSpec("n", "int64"),))
    bools = np.ones(VECTORIZE_FROM_ROWS, dtype=bool)
    exc = problems_of({"n": bools}, signature=spec)
    assert exc.total == VECTORIZE_FROM_ROWS
    assert exc.problems[0]["msg"] == "row 0, column 'n': expected an integer, got True"
    mixed = np.array([1] * (VECTORIZE_FROM_ROWS - 1) + ["x"], dtype=object)
    assert_problem(only_problem({"n": mixed}, signature=spec), VECTORIZE_FROM_ROWS - 1,
                   "n", "type", "got 'x'")


# ----------------------------------------------------------------------------- property
def _dtype_min(dtype: str) -> int:
    import numpy as np

    return int(np.iinfo(np.dtype(dtype)).min)


def _dtype_max(dtype: str) -> int:
    import numpy as np

    return int(np.iinfo(np.dtype(dtype)).max)


def _expected(values: list[Any], spec: ColumnSpec, reject_range: bool
              ) -> tuple[list[tuple[int, str]], list[int]]:
    """An independent statement of the numeric rules: one verdict per row."""
    integer = spec.dtype.startswith(("int", "uint"))
    low = -math.inf if spec.min is None else spec.min
    high = math.inf if spec.max is None else spec.max
    problems: list[tuple[int, str]] = []
    flagged: list[int] = []
    for i, v in enumerate(values):
        if isinstance(v, float) and math.isnan(v):
            if not spec.nullable:
                problems.append((i, "null"))
            continue
        if isinstance(v, float) and math.isinf(v):
            problems.append((i, "type"))
            continue
        if integer and (v != int(v) or not _dtype_min(spec.dtype) <= int(v)
                        <= _dtype_max(spec.dtype)):
            problems.append((i, "type"))
            continue
        if v < low or v > high:
            if reject_range:
                problems.append((i, OUT_OF_RANGE))
            else:
                flagged.append(i)
    return problems, flagged


_ARRAY_DTYPES = ["float64", "float32", "int64", "int32", "uint64", "uint8"]


@st.composite
def numeric_cases(draw: st.DrawFn) -> tuple[np.ndarray, ColumnSpec, ValidationPolicy]:
    n = draw(st.integers(VECTORIZE_FROM_ROWS, VECTORIZE_FROM_ROWS + 200))
    array_dtype = draw(st.sampled_from(_ARRAY_DTYPES))
    spec_dtype = draw(st.sampled_from(["int64", "float64", "int32", "float32"]))
    low = draw(st.none() | st.integers(-60, 20).map(float))
    high = draw(st.none() | st.integers(20, 100).map(float))
    spec = ColumnSpec("x", spec_dtype, draw(st.booleans()), low, high)
    policy = ValidationPolicy(out_of_range=draw(st.sampled_from([REJECT, FLAG])))
    seed = draw(st.integers(0, 2**32 - 1))
    # How many rows break a rule: none, a few, or more than a response reports.
    n_special = draw(st.sampled_from([0, 1, 3, 30, 150, n]))
    rng = np.random.default_rng(seed)
    unsigned = array_dtype.startswith("uint")
    base = rng.integers(0 if unsigned else -5, 60, n)  # mostly inside [low, high]
    special_pos = rng.choice(n, size=min(n_special, n), replace=False)
    if array_dtype.startswith("float"):
        values = base.astype(np.float64)
        pool = np.array([np.nan, np.inf, -np.inf, 0.5, -7.25, 1e19, -1e19, 2.0**63,
                         -(2.0**63), 9.2e18, 250.0, -250.0, 3.0, np.nan])
        values[special_pos] = rng.choice(pool, size=len(special_pos))
        array = values.astype(array_dtype)
    else:
        info = np.iinfo(array_dtype)
        pool_ints = [info.min, info.max, 0, 200 if info.max >= 200 else 150]
        if not unsigned:
            pool_ints += [-250, -1]
        if array_dtype == "uint64":
            pool_ints += [2**63, 2**63 - 1]
        array = base.astype(array_dtype)
        array[special_pos] = rng.choice(np.array(pool_ints, dtype=array_dtype),
                                        size=len(special_pos))
    return array, spec, policy


def _run(values: Any, spec: ColumnSpec, policy: ValidationPolicy
         ) -> tuple[RequestInvalid | None, ValidatedRequest | None]:
    try:
        return None, validate({"x": values}, policy, Signature(inputs=(spec,)), n=len(values))
    except RequestInvalid as exc:
        return exc, None


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(numeric_cases())
def test_numpy_and_python_paths_agree(case: tuple[np.ndarray, ColumnSpec,
                                                  ValidationPolicy]) -> None:
    array, spec, policy = case
    as_list = array.tolist()
    expected, expected_flags = _expected(as_list, spec, policy.out_of_range == REJECT)
    vector_exc, vector_ok = _run(array, spec, policy)
    python_exc, python_ok = _run(as_list, spec, policy)
    assert vector_ok is None or isinstance(vector_ok.columns["x"], np.ndarray)
    if not expected:
        assert vector_exc is None and python_exc is None, (vector_exc, python_exc)
        assert vector_ok is not None and python_ok is not None
        flags = None if not expected_flags else [
            ["x:out_of_range"] if i in set(expected_flags) else None for i in range(len(array))]
        assert vector_ok.flags == python_ok.flags == flags
        assert vector_ok.flag_counts == python_ok.flag_counts
        # The same values reach the model (ints for an int column, NaN where null).
        np.testing.assert_array_equal(np.asarray(vector_ok.columns["x"], dtype=float),
                                      np.asarray(python_ok.columns["x"], dtype=float))
        return
    assert vector_exc is not None and python_exc is not None
    shown = expected[:MAX_REPORTED_PROBLEMS]
    for exc in (vector_exc, python_exc):
        assert exc.total == len(expected)
        assert [(p["loc"][2], p["type"]) for p in exc.problems] == shown
        assert all(p["loc"] == ["body", "inputs", p["loc"][2], "x"] for p in exc.problems)
    assert vector_exc.problems == python_exc.problems  # messages too
    assert str(vector_exc) == str(python_exc)


def test_narrow_integer_columns_are_checked_against_their_own_range() -> None:
    import numpy as np

    from ratchet.packaging.signature import ColumnSpec, Signature
    from ratchet.serving.request_formats import ParsedRequest
    from ratchet.serving.request_validation import RequestInvalid, RequestValidator

    validator = RequestValidator(Signature((ColumnSpec("n", "int8"), ColumnSpec("u", "uint8"))))
    ok = validator.validate(ParsedRequest({"n": [127, -128], "u": [0, 255]}, 2))
    assert ok.columns == {"n": [127, -128], "u": [0, 255]}
    for columns in ({"n": [128], "u": [0]}, {"n": [0], "u": [-1]}, {"n": [0], "u": [256.0]}):
        with pytest.raises(RequestInvalid, match="does not fit in"):
            validator.validate(ParsedRequest(columns, 1))
    big = {"n": np.full(600, 200, dtype=np.int64), "u": np.zeros(600, dtype=np.int64)}
    with pytest.raises(RequestInvalid, match="200 does not fit in int8"):
        validator.validate(ParsedRequest(big, 600))


def test_datetimes_pandas_cannot_read_are_rejected() -> None:
    from ratchet.packaging.signature import ColumnSpec, Signature
    from ratchet.serving.request_formats import ParsedRequest
    from ratchet.serving.request_validation import RequestInvalid, RequestValidator

    validator = RequestValidator(Signature((ColumnSpec("at", "datetime64[ns]"),)))
    validator.validate(ParsedRequest({"at": ["2024-01-05T10:00:00+02:00"]}, 1))
    with pytest.raises(RequestInvalid, match="expected an ISO 8601 datetime"):
        validator.validate(ParsedRequest({"at": ["2024-W01-1"]}, 1))
