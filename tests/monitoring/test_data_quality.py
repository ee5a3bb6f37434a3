"""Data quality: exact counts on a frame with planted problems, as a plain frame and as the
prediction log stores it, agreement with serving's validation, reference missing rates."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ratchet.errors import InvalidInput
from ratchet.monitoring.data_quality import quality_report
from ratchet.packaging.signature import ColumnSpec, Signature, infer_signature
from ratchet.serving.prediction_log import LoggedRequest, to_table

COLUMN_KEYS = {"column", "missing", "missing_rate", "out_of_range", "unknown_categories",
               "type_violations", "null_violations", "reference_missing_rate", "issues"}


def training(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(3, 0.5, n)
    income[rng.choice(n, 10, replace=False)] = np.nan  # 2% missing: nullable
    frame = pd.DataFrame({"age": rng.integers(18, 81, n), "income": income,
                          "plan": rng.choice(["basic", "pro", "team"], n),
                          "vip": rng.random(n) < 0.2,
                          "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(
                              rng.integers(0, 365, n), unit="D")})
    frame.loc[[0, 1], "age"] = [18, 80]  # the recorded ranges: exactly [18, 80] ...
    frame.loc[[0, 1], "income"] = [0.5, 500.0]  # ... and [0.5, 500]
    return frame


def planted(n: int = 400, seed: int = 1) -> pd.DataFrame:
    """Production rows: age has 6 out-of-range, 4 wrong-type and 5 missing values; income
    15% missing (2% in training) and 2 negative; plan 7 unknown and 3 missing; vip 2
    wrong-type values among true/false/1/0 of every type; signup absent; referrer extra."""
    rng = np.random.default_rng(seed)
    age: list[Any] = rng.integers(18, 81, n).tolist()
    age[0:6] = [10, 10, 10, 95, 95, 200]
    age[6:10] = ["abc", "n/a", "forty", 41.5]  # 41.5 cannot be an int64
    age[10:15] = [None] * 5
    age[15:17] = [18, 80]                       # the bounds themselves are in range
    age[17:19] = [42, 33.0]                     # an int as a float is fine
    income = rng.lognormal(3, 0.5, n).clip(0.5, 500)
    income[20:80] = np.nan
    income[80:82] = [-5.0, -0.01]
    plan: list[Any] = rng.choice(["basic", "pro", "team"], n).tolist()
    plan[100:107] = ["gold"] * 5 + ["platinum"] * 2
    plan[107:110] = [None] * 3
    vip: list[Any] = rng.choice([True, False, "true", "False", 1, 0, "1"], n).tolist()
    vip[200:202] = ["yes", "maybe"]
    return pd.DataFrame({"age": pd.Series(age, dtype=object), "income": income,
                         "plan": pd.Series(plan, dtype=object),
                         "vip": pd.Series(vip, dtype=object),
                         "referrer": rng.choice(["ads", "search"], n)})


def as_logged(frame: pd.DataFrame) -> pd.DataFrame:
    """The same rows as the prediction log gives them back: input.<name> columns (a column
    of mixed kinds stored as text) next to the log's own columns and the outputs."""
    inputs = {c: [None if pd.isna(v) else v for v in frame[c].tolist()] for c in frame}
    entry = LoggedRequest("batch-1", 1_714_557_600_000, "churn", "churn-model", 3, "primary",
                          4.0, inputs=inputs, outputs={"prediction": [0] * len(frame)})
    return to_table([entry]).to_pandas()


def check_planted(report: Any) -> None:
    assert report.rows == 400
    assert report.missing_columns == ("signup",)
    assert report.extra_columns == ("referrer",)
    assert [c.column for c in report.columns] == ["age", "income", "plan", "vip", "referrer"]
    age, income, plan = report.column("age"), report.column("income"), report.column("plan")
    vip, referrer = report.column("vip"), report.column("referrer")
    assert (age.missing, age.out_of_range, age.type_violations, age.null_violations) == \
        (5, 6, 4, 5)
    assert age.missing_rate == pytest.approx(5 / 400)
    assert age.unknown_categories is None and age.expected_dtype == "int64"
    assert (income.missing, income.out_of_range, income.null_violations,
            income.type_violations) == (60, 2, 0, 0)
    assert income.reference_missing_rate == pytest.approx(10 / 500)
    assert income.missing_rate_change == pytest.approx(60 / 400 - 10 / 500)
    assert (plan.missing, plan.unknown_categories, plan.null_violations,
            plan.type_violations, plan.out_of_range) == (3, 7, 3, 0, None)
    assert (vip.type_violations, vip.null_violations, vip.missing) == (2, 0, 0)
    assert referrer.expected_dtype is None and referrer.type_violations is None
    assert referrer.issues == ()
    assert len(age.issues) == 3 and len(income.issues) == 2 and len(plan.issues) == 2
    assert len(vip.issues) == 1
    assert report.issues == 9  # 8 column sentences + the missing column


def test_planted_problems_are_counted_exactly() -> None:
    train = training()
    signature = infer_signature(train)
    report = quality_report(planted(), signature, train)
    check_planted(report)
    age = report.column("age")
    assert age.issues[0] == ("4 values (1.0%) not of type int64, e.g. 'abc', 'n/a', 'forty' "
                             "(and 1 more distinct)")
    assert age.issues[2].startswith("6 values (1.5%) outside the training range [18, 80], "
                                    "e.g. 10, 95, 200")
    assert "7 unknown categories (1.8%), e.g. 'gold', 'platinum'" in report.column("plan").issues
    assert report.column("income").issues[-1] == \
        "missing rate 15.0%, up from 2.0% in the reference"
    assert "column 'signup' is missing" in report.messages
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {"rows", "columns", "missing_columns", "extra_columns", "issues"}
    assert all(set(c) >= COLUMN_KEYS for c in data["columns"])
    assert data["issues"] == 9 and data["missing_columns"] == ["signup"]


def test_the_prediction_log_shape_gives_the_same_counts() -> None:
    train = training()
    logged = as_logged(planted())
    assert logged["input.age"].iloc[:3].tolist() == ["10", "10", "10"]  # mixed kinds: text
    assert logged["input.vip"].iloc[200] == "yes"
    # Detected from the input.<name> columns; timestamp, output.prediction... are ignored.
    check_planted(quality_report(logged, infer_signature(train), train))
    explicit = quality_report(logged, infer_signature(train), train, prefix="input.")
    assert explicit.to_dict() == quality_report(logged, infer_signature(train),
                                                train).to_dict()
    # prefix="" takes every column as named: no input matches the signature.
    plain = quality_report(logged, infer_signature(train), prefix="")
    assert set(plain.missing_columns) == {"age", "income", "plan", "vip", "signup"}
    assert "timestamp" in plain.extra_columns and "input.age" in plain.extra_columns
    # A reference read from the log too.
    both = quality_report(logged, None, as_logged(planted(seed=2)))
    assert both.missing_columns == () and both.column("income").reference_missing_rate == 0.15


def test_rows_that_pass_serving_validation_have_no_issues() -> None:
    train = training()
    signature = infer_signature(train)
    clean = training(300, seed=7).sample(frac=1, random_state=0)
    clean["age"] = clean["age"].clip(18, 80)
    clean["income"] = clean["income"].clip(0.5, 500)
    signature.validate(clean)  # serving accepts it
    report = quality_report(clean, signature, train)
    assert report.issues == 0, report.messages
    assert all(c.type_violations == 0 and not c.null_violations for c in report.columns)
    # Rows serving rejects are type violations here.
    wrong = clean.astype({"age": object})
    wrong.iloc[3, wrong.columns.get_loc("age")] = "old"
    with pytest.raises(Exception, match="expected int64"):
        signature.validate(wrong)
    assert quality_report(wrong, signature).column("age").type_violations == 1


def test_ranges_bounds_and_dtype_rules() -> None:
    signature = Signature(inputs=(
        ColumnSpec("score", "float64", nullable=True, min=0.0),  # no upper bound
        ColumnSpec("count", "int32", max=10.0),
        ColumnSpec("flag", "bool"),
        ColumnSpec("opt_in", "bool", nullable=True),
        ColumnSpec("at", "datetime64[ns, UTC]", nullable=True),
        ColumnSpec("blob", "object", nullable=True),
        ColumnSpec("tier", "category", categories=("1", "2"))))
    frame = pd.DataFrame({
        "score": [0.0, -1e-9, 1e12, np.inf, np.nan],
        "count": [10, 11, -3, 7, 10],
        "flag": pd.Series([True, False, True, True, False], dtype="boolean"),
        "opt_in": pd.Series(["yes", None, " TRUE ", 0, True], dtype=object),
        "at": ["2024-05-01T10:00:00Z", "yesterday", None, "2024-05-01", "not a date"],
        "blob": [{"a": 1}, [1], None, "x", 3],
        "tier": [1, 2, "2", 3, 1.0]})  # numbers recorded as text categories: "1.0" is not "1"
    report = quality_report(frame, signature)
    score, count, flag = report.column("score"), report.column("count"), report.column("flag")
    at, blob, tier = report.column("at"), report.column("blob"), report.column("tier")
    assert (score.out_of_range, score.type_violations, score.missing) == (1, 0, 1)
    assert (count.out_of_range, count.type_violations) == (1, 0)  # 11 > 10; no lower bound
    assert (flag.type_violations, flag.out_of_range, flag.unknown_categories) == (0, None, None)
    opt_in = report.column("opt_in")
    assert (opt_in.type_violations, opt_in.null_violations, opt_in.missing) == (1, 0, 1)
    assert (at.type_violations, at.null_violations) == (2, 0)
    # An object column takes single values, not an object or a list (as serving does).
    assert (blob.type_violations, blob.null_violations) == (2, 0)
    assert blob.issues == ("2 values (40.0%) not of type object, e.g. {'a': 1}, [1]",)
    # 3 is an unknown code; 1.0 is not a code at all (text and whole numbers only).
    assert (tier.unknown_categories, tier.type_violations) == (1, 1)
    # A datetime column where numbers are expected: every value is a type violation.
    dates = pd.DataFrame({"score": pd.date_range("2024-01-01", periods=3), "count": [1, 2, 3],
                          "flag": [1, 0, 1], "opt_in": [None] * 3, "at": pd.date_range("2024-01-01", periods=3),
                          "blob": [1, 2, 3], "tier": ["1", "1", "2"]})
    assert quality_report(dates, signature).column("score").type_violations == 3
    assert quality_report(dates, signature).issues == 1


def test_without_a_signature_missing_rates_only_and_a_reference_defines_the_columns() -> None:
    frame = pd.DataFrame({"a": [1.0, None, 3.0, None], "b": ["x", "y", None, "z"]})
    report = quality_report(frame)
    assert report.issues == 0 and report.missing_columns == () and report.extra_columns == ()
    a = report.column("a")
    assert (a.missing, a.missing_rate, a.out_of_range, a.type_violations,
            a.reference_missing_rate) == (2, 0.5, None, None, None)
    reference = pd.DataFrame({"a": [1.0] * 9 + [None], "c": [1] * 10})
    compared = quality_report(frame, reference=reference)
    assert compared.missing_columns == ("c",) and compared.extra_columns == ("b",)
    assert compared.column("a").reference_missing_rate == pytest.approx(0.1)
    assert compared.column("a").missing_rate_change == pytest.approx(0.4)
    assert compared.column("a").issues == ("missing rate 50.0%, up from 10.0% in the reference",)
    assert compared.issues == 2
    lenient = quality_report(frame, reference=reference, missing_tolerance=0.5)
    assert lenient.column("a").issues == () and lenient.issues == 1
    empty = quality_report(frame.iloc[:0], reference=reference)
    assert empty.rows == 0 and empty.column("a").missing_rate is None


def test_nulls_in_a_non_nullable_column_are_one_issue_not_two() -> None:
    signature = Signature(inputs=(ColumnSpec("a", "float64"),
                                  ColumnSpec("b", "float64", nullable=True)))
    reference = pd.DataFrame({"a": [1.0] * 10, "b": [1.0] * 10})
    current = pd.DataFrame({"a": [1.0, None] * 5, "b": [1.0, None] * 5})
    report = quality_report(current, signature, reference)
    assert report.column("a").issues == ("5 nulls (50.0%) but the column is not nullable",)
    assert report.column("b").issues == ("missing rate 50.0%, up from 0.0% in the reference",)
    assert report.column("a").missing_rate_change == 0.5 and report.issues == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"current": [1, 2]}, "current must be a pandas DataFrame"),
    ({"reference": {"a": [1]}}, "reference must be a pandas DataFrame"),
    ({"signature": {"inputs": []}}, "signature must be a ratchet Signature"),
    ({"prefix": 1}, "prefix must be a string"),
    ({"missing_tolerance": 2}, "missing_tolerance"),
])
def test_misuse_is_a_clear_error(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"current": pd.DataFrame({"a": [1]}), **kwargs}
    with pytest.raises(InvalidInput, match=message):
        quality_report(**arguments)
    with pytest.raises(InvalidInput, match="no column 'zz'"):
        quality_report(pd.DataFrame({"a": [1]})).column("zz")
