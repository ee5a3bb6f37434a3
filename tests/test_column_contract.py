"""The column contract (``ratchet.columns``): its rules, and the property that the request
validator and the data-quality counter judge every frame alike."""

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
from hypothesis.extra import numpy as hnp

from ratchet import columns
from ratchet.columns import (
    BOOL_TEXT,
    CATEGORICAL,
    CATEGORICAL_MAX_DISTINCT,
    NUMERIC,
    BadValue,
    ColumnRule,
    dtype_name,
    family,
    is_null,
    number_from_text,
    read_text_cells,
    statistical_kind,
    to_bool,
)
from ratchet.monitoring.data_quality import quality_report
from ratchet.packaging.signature import ColumnSpec, Signature
from ratchet.serving.request_formats import ParsedRequest
from ratchet.serving.request_validation import (
    IGNORE,
    REJECT,
    RequestInvalid,
    RequestValidator,
    ValidationPolicy,
    validate_mapping,
)

STRICT = ValidationPolicy(unknown_category=REJECT, out_of_range=REJECT, extra_columns=IGNORE,
                          max_rows=100_000)


# ----------------------------------------------------------------------------- kinds
def test_families_of_dtype_names() -> None:
    assert [family(d) for d in ("int8", "uint64", "float32", "bool", "string", "category",
                                "datetime64[ns, UTC]", "object", "timedelta64[ns]")] == [
        "integer", "integer", "float", "boolean", "text", "text", "datetime", "other", "other"]


def test_dtype_name_of_observed_data() -> None:
    assert dtype_name(pd.Series([1, 2])) == "int64"
    assert dtype_name(pd.Series([1, None], dtype="Int64")) == "int64"
    assert dtype_name(pd.Series(["a", None], dtype=object)) == "string"
    assert dtype_name(pd.Series([1, 2.5], dtype=object)) == "float64"
    assert dtype_name(pd.Series(["a", 1], dtype=object)) == "object"
    assert dtype_name(pd.Series(["a"], dtype="category")) == "category"
    assert dtype_name(pd.Series([True, False])) == "bool"


def test_one_rule_for_numeric_or_categorical() -> None:
    assert statistical_kind("integer", CATEGORICAL_MAX_DISTINCT) == CATEGORICAL
    assert statistical_kind("float", CATEGORICAL_MAX_DISTINCT + 1) == NUMERIC
    assert statistical_kind("float") == NUMERIC  # distinct unknown
    assert statistical_kind("integer", 50, max_distinct=100) == CATEGORICAL
    assert statistical_kind("boolean", 2) == CATEGORICAL
    assert statistical_kind("text", 10_000) == CATEGORICAL


def test_profiles_and_drift_apply_the_same_kind_rule() -> None:
    import pyarrow as pa

    from ratchet.data.profile import profile_table
    from ratchet.monitoring.drift import column_drift

    rng = np.random.default_rng(0)
    for distinct in (3, CATEGORICAL_MAX_DISTINCT, CATEGORICAL_MAX_DISTINCT + 1, 40):
        values = rng.integers(0, distinct, 2_000).astype(float)
        values[:distinct] = np.arange(distinct)  # every value present
        profiled = profile_table(pa.table({"x": values})).column("x").semantic_type
        tested = column_drift(values, values, column="x").kind
        assert profiled == tested == statistical_kind("float", distinct)


# ----------------------------------------------------------------------------- values
def test_the_one_table_of_boolean_text() -> None:
    assert dict(BOOL_TEXT) == {"true": True, "false": False, "1": True, "0": False}
    with pytest.raises(TypeError):
        BOOL_TEXT["yes"] = True  # type: ignore[index]
    assert [to_bool(v) for v in (" TRUE ", "False", "1", "0", 1, 0.0, np.bool_(True))] == [
        True, False, True, False, True, False, True]
    assert [to_bool(v) for v in ("yes", "1.0", "", 2, 0.5, None)] == [None] * 6


def test_labels_use_the_table() -> None:
    from ratchet.packaging.labels import class_matcher

    match = class_matcher([False, True])
    assert [match(v) for v in ("TRUE", "false", "1", "0", "yes")] == [1, 0, 1, 0, None]


def test_nulls() -> None:
    assert all(is_null(v) for v in (None, float("nan"), np.float32("nan"), pd.NaT, pd.NA))
    assert not any(is_null(v) for v in (0, "", "nan", False, [None], {}))


def test_text_cells() -> None:
    assert [number_from_text(t) for t in ("42", "-1.5", "1e3", "1_000", "abc", "inf")] == [
        42, -1.5, 1000.0, "1_000", "abc", float("inf")]
    cells = read_text_cells(pd.Series(["7", 7, True, None, "x", "7"], dtype=object))
    assert cells.tolist()[:3] == [7, 7, True] and cells.iloc[3] is None
    assert cells.tolist()[4:] == ["x", 7]
    typed = pd.Series([1.0, 2.0])
    assert read_text_cells(typed) is typed


@pytest.mark.parametrize(("dtype", "value", "message"), [
    ("int64", "30", "expected an integer, got '30'"),
    ("int64", True, "expected an integer, got True"),
    ("int64", 2.5, "expected an integer, got 2.5"),
    ("int8", 128, "128 does not fit in int8"),
    ("uint8", -1, "-1 does not fit in uint8"),
    ("int64", float("inf"), "expected a finite number, got inf"),
    ("float32", 1e39, "1e+39 does not fit in float32 (largest magnitude 3.4028235e+38)"),
    ("float64", 10**400, "does not fit in float64"),
    ("float64", "1.5", "expected a number, got '1.5'"),
    ("bool", "yes", "expected true or false, got 'yes'"),
    ("bool", 2, "expected true or false, got 2"),
    ("string", 1.5, "expected a string, got 1.5"),
    ("string", True, "expected a string, got True"),
    ("string", "a\x00b", "text with a NUL character at position 1"),
    ("category", "\ud800", "lone surrogate"),
    ("datetime64[ns]", "yesterday", "expected an ISO 8601 datetime, got 'yesterday'"),
    ("object", {"a": 1}, "expected a single value, got an object"),
    ("object", [1], "expected a single value, got a list"),
])
def test_values_not_of_the_kind(dtype: str, value: Any, message: str) -> None:
    with pytest.raises(BadValue, match=None) as info:
        ColumnRule(dtype).conform(value)
    assert message in str(info.value)


@pytest.mark.parametrize(("dtype", "value", "conformed"), [
    ("int8", 127.0, 127), ("int64", np.int32(3), 3), ("uint64", 2**64 - 1, 2**64 - 1),
    ("float32", 3.4e38, 3.4e38), ("float64", 10**300, 10**300), ("float64", np.nan, None),
    ("bool", " False ", False), ("bool", 1.0, True), ("bool", None, None),
    ("string", 7, "7"), ("category", np.int64(2), "2"), ("string", pd.NA, None),
    ("datetime64[ns]", "2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
    ("datetime64[ns]", pd.NaT, None), ("object", 3, 3), ("object", float("nan"), None),
])
def test_values_of_the_kind(dtype: str, value: Any, conformed: Any) -> None:
    assert ColumnRule(dtype).conform(value) == conformed


def test_ranges_and_categories_are_not_kinds() -> None:
    rule = ColumnRule("int64", min=18, max=80)
    assert rule.conform(95) == 95 and rule.outside(95) and not rule.outside(80)
    codes = ColumnRule("category", categories=("1", "2"))
    assert codes.conform(3) == "3" and codes.unknown("3") and not codes.unknown("2")


def test_judge_tells_one_from_true() -> None:
    judged = ColumnRule("int64", nullable=False, min=0, max=10).judge(
        pd.Series([1, 1.0, True, "1", None, np.inf, 11, 2**70], dtype=object))
    assert judged.bad.tolist() == [False, False, True, True, False, True, False, True]
    assert judged.non_finite.tolist() == [False] * 5 + [True, False, False]
    assert judged.nulls.tolist() == [False] * 4 + [True, False, False, False]
    assert judged.outside is not None and judged.outside.tolist() == [False] * 6 + [True, False]
    text = ColumnRule("category", categories=("1",)).judge(pd.Series([1, True, "1", 1.0]))
    assert text.bad.tolist() == [False, True, False, True]


def test_judge_compares_big_integers_exactly() -> None:
    rule = ColumnRule("int64", max=2.0**53)
    judged = rule.judge(np.array([2**53, 2**53 + 1]))
    assert judged.outside is not None and judged.outside.tolist() == [False, True]
    assert [rule.outside(v) for v in (2**53, 2**53 + 1)] == [False, True]


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.uint64])
@pytest.mark.parametrize(("low", "high"), [(1.0, -1.0), (-1e30, -1e25), (1e25, 1e30),
                                           (-0.5, 0.5), (0.5, 2.5)])
def test_integer_ranges_on_arrays_match_the_scalar_rule(dtype: Any, low: float,
                                                        high: float) -> None:
    values = np.array([0, 1, 2, 3], dtype=dtype)
    rule = ColumnRule("int64", min=low, max=high)
    judged = rule.judge(values)
    assert judged.outside is not None
    assert judged.outside.tolist() == [rule.outside(int(v)) for v in values]


def test_dtype_bounds_on_arrays() -> None:
    assert ColumnRule("float32").judge(np.array([3.4e38, 1e39, -1e39])).bad.tolist() == [
        False, True, True]
    assert ColumnRule("int8").judge(np.array([-128, 127, 128, -129])).bad.tolist() == [
        False, False, True, True]
    assert ColumnRule("uint64").judge(np.array([2**64 - 1], dtype=np.uint64)).bad.tolist() == [
        False]
    assert ColumnRule("uint8").judge(np.array([-1, 255])).bad.tolist() == [True, False]
    assert columns.float_overflow("float32") == 340282356779733661637539395458142568448


# ----------------------------------------------------------------------------- the property
SPECS = st.builds(
    ColumnSpec,
    name=st.just("c"),
    dtype=st.sampled_from(["int8", "int64", "uint8", "float16", "float32", "float64", "bool",
                           "string", "category", "datetime64[ns]", "object"]),
    nullable=st.booleans(),
    min=st.one_of(st.none(), st.floats(-1e3, 1e3)),
    max=st.one_of(st.none(), st.floats(-1e3, 1e3)),
    categories=st.one_of(st.none(), st.lists(st.sampled_from(["a", "b", "1", "2", "true"]),
                                             min_size=1, max_size=4, unique=True).map(tuple)),
)
VALUES = st.one_of(
    st.none(),
    st.integers(-300, 300), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 2.5, 1e39, -1e39, 65520.0, float("nan")]),
    st.booleans(),
    st.sampled_from(["a", "b", "1", "0", "2", "42", "1.0", " TRUE ", "yes", "", "inf", "a\x00",
                     "2024-01-01T10:00:00", "2024-01-01", "yesterday", "\ud800"]),
    st.text(max_size=4),
    st.sampled_from([dt.datetime(2024, 1, 1), pd.Timestamp("2024-05-01"), pd.NaT]),
    st.sampled_from([{"a": 1}, [1, 2]]),
)


def _frame_column(values: list[Any], typed: bool) -> pd.Series:
    if typed:
        try:
            return pd.Series(values)  # pandas picks a dtype (int64, float64, bool, object ...)
        except (TypeError, ValueError, OverflowError):
            pass
    return pd.Series(values, dtype=object)


def _validator_counts(spec: ColumnSpec, column: Any, n: int) -> tuple[Counter[str], set[int]]:
    """Problems the request validator finds, by kind, and their rows."""
    validator = RequestValidator(Signature(inputs=(spec,)), STRICT)
    try:
        validate_mapping(validator, {"c": column}, n)
    except RequestInvalid as exc:
        assert exc.total == len(exc.problems)  # every problem described (n is small)
        kinds = Counter(p["type"] for p in exc.problems)
        return kinds, {p["loc"][2] for p in exc.problems}
    return Counter(), set()


def _quality_counts(spec: ColumnSpec, frame: pd.DataFrame) -> Counter[str]:
    column = quality_report(frame, Signature(inputs=(spec,)), prefix="").column("c")
    return Counter({"null": column.null_violations or 0,
                    "type": (column.type_violations or 0) + (column.non_finite or 0),
                    "out_of_range": column.out_of_range or 0,
                    "unknown_category": column.unknown_categories or 0})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=SPECS, values=st.lists(VALUES, min_size=1, max_size=12), typed=st.booleans())
def test_request_validator_and_data_quality_agree_on_every_frame(
        spec: ColumnSpec, values: list[Any], typed: bool) -> None:
    frame = pd.DataFrame({"c": _frame_column(values, typed)})
    n = len(frame)
    kinds, rows = _validator_counts(spec, frame["c"].tolist(), n)
    quality = _quality_counts(spec, frame)
    assert +kinds == +quality, (spec, frame["c"].tolist())
    # The same rows: those the contract's judgement marks, which data quality counts.
    judged = ColumnRule.of(spec).judge(frame["c"])
    marked = judged.bad | (judged.nulls if not spec.nullable else False)
    for extra in (judged.outside, judged.unknown):
        if extra is not None:
            marked = marked | extra
    assert rows == set(np.flatnonzero(marked).tolist())


NUMBER_SPECS = st.builds(
    ColumnSpec, name=st.just("c"),
    dtype=st.sampled_from(["int8", "int64", "uint8", "uint64", "float16", "float32", "float64"]),
    nullable=st.booleans(), min=st.one_of(st.none(), st.floats(-1e5, 1e5)),
    max=st.one_of(st.none(), st.floats(-1e5, 1e5)))
ARRAYS = st.one_of(
    hnp.arrays(np.float64, st.integers(512, 600),
               elements=st.one_of(st.floats(-1e6, 1e6), st.sampled_from(
                   [np.nan, np.inf, -np.inf, 1e39, 2.0**63, 0.5, 70000.0]))),
    hnp.arrays(st.sampled_from([np.int64, np.int16, np.uint64, np.uint8]), st.integers(512, 600)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=NUMBER_SPECS, array=ARRAYS)
def test_vectorized_and_scalar_paths_and_data_quality_agree(spec: ColumnSpec,
                                                            array: np.ndarray) -> None:
    """Batch scoring's NumPy path, the per-value path and data quality on one column."""
    n = len(array)
    validator = RequestValidator(Signature(inputs=(spec,)), STRICT)
    outcomes = []
    for column in (array, array.tolist()):
        try:
            validator.validate(ParsedRequest({"c": column}, n))
            outcomes.append((0, []))
        except RequestInvalid as exc:
            outcomes.append((exc.total, exc.problems))
    assert outcomes[0] == outcomes[1]
    quality = _quality_counts(spec, pd.DataFrame({"c": array}))
    assert outcomes[0][0] == sum(quality.values())


def test_the_prediction_log_reads_text_stored_numbers() -> None:
    """A log column of mixed kinds is text: "42" there is 42; in a plain frame, as in a
    JSON request, text is not a number."""
    spec = ColumnSpec("age", "int64", min=0, max=100)
    signature = Signature(inputs=(spec,))
    values = ["42", "abc", "41.5", "7"]
    plain = quality_report(pd.DataFrame({"age": values}), signature).column("age")
    logged = quality_report(pd.DataFrame({"input.age": values}), signature).column("age")
    assert (plain.type_violations, logged.type_violations) == (4, 2)
    assert math.isclose(logged.missing_rate or 0.0, 0.0)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c\x00", "1", ""]),
                                 st.text(max_size=3).filter(lambda t: t.isprintable())),
                       min_size=1, max_size=20),
       categories=st.one_of(st.none(), st.just(("a", "1"))))
def test_arrow_strings_are_judged_like_python_strings(values: list[Any],
                                                      categories: tuple[str, ...] | None) -> None:
    rule = ColumnRule("category", categories=categories)
    arrow = rule.judge(pd.Series(values, dtype="string[pyarrow]"))
    plain = rule.judge(pd.Series(values, dtype=object))
    assert arrow.bad.tolist() == plain.bad.tolist()
    assert arrow.nulls.tolist() == plain.nulls.tolist()
    assert (arrow.unknown is None) == (plain.unknown is None)
    if arrow.unknown is not None and plain.unknown is not None:
        assert arrow.unknown.tolist() == plain.unknown.tolist()
