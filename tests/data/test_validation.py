"""validate(): every failure, exact counts, examples, severities, and a storable report."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_
import pytest

from ratchet.data.schema import save_schema, set_severity
from ratchet.data.validation import CheckFailure, ValidationReport, validate
from ratchet.errors import InvalidInput, NotFound, ValidationFailed

Check = pa.Check


@pytest.fixture
def schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "id": pa.Column("int64", unique=True),
            "age": pa.Column("int64", Check.in_range(0, 120)),
            "score": pa.Column("float64", Check.in_range(0.0, 1.0), nullable=False),
            "color": pa.Column("str", Check.isin(["red", "blue"]), nullable=True),
            "qty": pa.Column("int64"),
            "region": pa.Column("str"),
        },
        name="people",
    )


@pytest.fixture
def bad() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 2, 3, 3, 3],  # 5 rows share a duplicated id
            "age": [30, -3, 250, 40, -3, 50],  # 3 rows out of range
            "score": [0.5, np.nan, 2.0, np.inf, 0.1, np.nan],  # 2 null, 2 out of range
            "color": ["red", "green", None, "pink", "green", "blue"],  # 3 bad, null allowed
            "qty": [1.5, 2.0, 3.0, 4.0, 5.0, 6.0],  # wrong dtype
            # "region" is missing
        }
    )


def by_key(report: ValidationReport) -> dict[tuple[str | None, str], CheckFailure]:
    return {(f.column, f.check): f for f in report.failures}


def test_reports_every_failure_with_exact_counts_and_examples(schema, bad):
    report = validate(bad, schema)
    got = by_key(report)
    assert set(got) == {
        ("region", "column_in_dataframe"),
        ("id", "field_uniqueness"),
        ("age", "in_range(0, 120)"),
        ("score", "not_nullable"),
        ("score", "in_range(0.0, 1.0)"),
        ("color", "isin(['red', 'blue'])"),
        ("qty", "dtype('int64')"),
    }
    assert (report.rows, report.columns, report.schema_name) == (6, 5, "people")
    assert report.checks_run == 6 + 3 + 5 + 1  # dtypes, checks, non-null columns, unique

    age = got[("age", "in_range(0, 120)")]
    assert age.failing_count == 3 and age.examples == (-3, 250) and age.example_rows == (1, 2)
    assert age.severity == "error"
    assert age.message == "column 'age': 3 rows fail in_range(0, 120), e.g. -3, 250"

    nulls = got[("score", "not_nullable")]
    assert nulls.failing_count == 2 and nulls.examples == (None,) and nulls.example_rows == (1,)
    score = got[("score", "in_range(0.0, 1.0)")]
    assert score.failing_count == 2 and score.examples == (2.0, "Infinity")

    color = got[("color", "isin(['red', 'blue'])")]
    assert color.failing_count == 3 and color.examples == ("green", "pink")
    assert color.message.endswith("e.g. 'green', 'pink'")

    dup = got[("id", "field_uniqueness")]
    assert dup.failing_count == 5 and dup.examples == (2, 3)

    missing = got[("region", "column_in_dataframe")]
    assert missing.failing_count == 1
    assert missing.message == "column 'region': missing from the data (column_in_dataframe)"

    assert "data has float64" in got[("qty", "dtype('int64')")].message
    assert not report.passed and len(report.errors) == 7 and report.warnings == ()


def test_counts_are_exact_and_examples_capped_on_many_failures():
    n = 20_000
    df = pd.DataFrame({"x": np.arange(n) % 1000})  # 0..999 repeating
    report = validate(df, pa.DataFrameSchema({"x": pa.Column(int, Check.lt(900))}), max_examples=3)
    (failure,) = report.failures
    assert failure.failing_count == n // 10
    assert len(failure.examples) == 3 and len(set(failure.examples)) == 3
    assert all(v >= 900 for v in failure.examples)
    assert [df.x[r] for r in failure.example_rows] == list(failure.examples)


def test_warn_checks_are_evaluated_and_reported_as_warnings(schema, bad):
    warned = set_severity(schema, "color", "isin", "warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported in the report, not as Python warnings
        report = validate(bad, warned)
    color = by_key(report)[("color", "isin(['red', 'blue'])")]
    assert color.severity == "warn" and color.failing_count == 3
    assert color in report.warnings and color not in report.errors
    assert report.failures[-1] == color  # errors come first
    # evaluating warn checks must not change the caller's schema
    assert warned.columns["color"].checks[0].raise_warning is True


def test_passed_when_only_warnings():
    schema = pa.DataFrameSchema({"x": pa.Column(int, Check.lt(3, raise_warning=True))})
    report = validate(pd.DataFrame({"x": [1, 5, 7]}), schema)
    assert report.passed and len(report.warnings) == 1 and report.errors == ()
    report.raise_for_errors()  # no error: nothing raised


def test_raise_for_errors_lists_each_error_on_its_own_line(schema, bad):
    report = validate(bad, set_severity(schema, "color", "isin", "warn"))
    with pytest.raises(ValidationFailed) as info:
        report.raise_for_errors()
    lines = str(info.value).splitlines()
    assert lines[0] == (
        "validation FAILED: schema 'people', 6 rows x 5 columns, 15 checks, 6 errors, 1 warning"
    )
    assert lines[1:] == [f"  error: {f.message}" for f in report.errors]
    assert info.value.report is report  # type: ignore[attr-defined]


def test_report_json_round_trip(schema, bad):
    report = validate(bad, set_severity(schema, "color", "isin", "warn"))
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert ValidationReport.from_dict(json.loads(text)) == report
    assert ValidationReport.from_json(report.to_json()) == report
    assert json.loads(report.to_json())["passed"] is False
    with pytest.raises(InvalidInput, match="malformed"):
        ValidationReport.from_dict({"rows": 1})
    with pytest.raises(InvalidInput, match="invalid JSON"):
        ValidationReport.from_json("{")


def test_summary_is_a_table_of_failures(schema, bad):
    text = validate(bad, schema).summary()
    head, columns, *rows = text.splitlines()
    assert head.startswith("validation FAILED: schema 'people'")
    assert columns.split() == ["severity", "column", "check", "failing", "examples"]
    assert any(r.split()[:4] == ["error", "age", "in_range(0,", "120)"] for r in rows)
    assert validate(bad[["id"]].iloc[:1], pa.DataFrameSchema({"id": pa.Column(int)})).summary() == (
        "validation passed: schema None, 1 rows x 1 columns, 2 checks, 0 errors, 0 warnings"
    )


def test_dataframe_level_checks_count_rows_and_show_them():
    df = pd.DataFrame({"lo": [1, 5, 2, 9], "hi": [2, 3, 4, 1]})
    schema = pa.DataFrameSchema(checks=[Check(lambda d: d["lo"] < d["hi"], name="lo_lt_hi")])
    (failure,) = validate(df, schema).failures
    assert failure.column is None and failure.failing_count == 2
    assert failure.examples == ({"lo": 5, "hi": 3}, {"lo": 9, "hi": 1})
    assert failure.example_rows == (1, 3)
    assert failure.message.startswith("dataframe: 2 rows fail lo_lt_hi")


def test_empty_frame_validates():
    schema = pa.DataFrameSchema({"x": pa.Column("int64", Check.ge(0))})
    report = validate(pd.DataFrame({"x": pd.Series([], dtype="int64")}), schema)
    assert report.passed and report.rows == 0 and report.failures == ()


def test_arrow_polars_and_schema_path_inputs(tmp_path):
    df = pd.DataFrame({"x": [1, -1, 2], "s": ["a", "b", "z"]})
    schema = pa.DataFrameSchema(
        {"x": pa.Column("int64", Check.ge(0)), "s": pa.Column("str", Check.isin(["a", "b"]))}
    )
    path = save_schema(schema, tmp_path / "s.yaml")
    expected = validate(df, schema)
    assert len(expected.failures) == 2
    assert validate(pa_.Table.from_pandas(df), path) == expected
    assert validate(df, str(path)) == expected
    pl = pytest.importorskip("polars")
    assert validate(pl.from_pandas(df), schema) == expected


def test_validate_leaves_the_input_untouched(schema, bad):
    before = bad.copy()
    validate(bad, schema)
    pd.testing.assert_frame_equal(bad, before)


def test_non_integer_index_gives_row_positions():
    df = pd.DataFrame({"x": [1, -1, 2]}, index=["a", "b", "c"])
    (failure,) = validate(df, pa.DataFrameSchema({"x": pa.Column(int, Check.ge(0))})).failures
    assert failure.example_rows == (1,)


def test_bad_arguments_are_invalid_input(schema, tmp_path):
    with pytest.raises(InvalidInput, match="expected a pandas DataFrame"):
        validate([1, 2], schema)
    with pytest.raises(InvalidInput, match="schema must be a pandera DataFrameSchema"):
        validate(pd.DataFrame(), {"columns": {}})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="max_examples"):
        validate(pd.DataFrame(), schema, max_examples=-1)
    with pytest.raises(NotFound):
        validate(pd.DataFrame(), tmp_path / "missing.yaml")
