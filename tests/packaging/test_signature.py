from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratchet.errors import InvalidInput, ValidationFailed
from ratchet.packaging import ColumnSpec, Signature, infer_signature
from ratchet.packaging.signature import MAX_CATEGORIES, SignatureMismatch


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [31.0, np.nan, 45.5, 22.0],
            "visits": [1, 2, 3, 4],
            "plan": ["free", "pro", None, "free"],
            "region": pd.Categorical(["eu", "us", "eu", "apac"]),
            "active": [True, False, True, True],
            "seen": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]),
        }
    )


def by_name(sig: Signature) -> dict[str, ColumnSpec]:
    return {c.name: c for c in sig.inputs}


def test_infer_dtypes_nullability_categories_ranges(frame: pd.DataFrame) -> None:
    cols = by_name(infer_signature(frame))
    assert list(cols) == list(frame.columns)
    assert cols["age"] == ColumnSpec("age", "float64", True, 22.0, 45.5, None)
    assert cols["visits"] == ColumnSpec("visits", "int64", False, 1.0, 4.0, None)
    assert cols["plan"].dtype == "string"
    assert cols["plan"].nullable is True
    assert cols["plan"].categories == ("free", "pro")
    assert cols["region"].dtype == "category"
    assert cols["region"].categories == ("apac", "eu", "us")
    assert cols["active"].dtype == "bool"
    assert cols["active"].min is None
    assert cols["seen"].dtype.startswith("datetime64")


def test_free_text_has_no_categories() -> None:
    texts = pd.DataFrame({"note": [f"text {i}" for i in range(MAX_CATEGORIES + 1)]})
    assert infer_signature(texts).inputs[0].categories is None
    assert infer_signature(texts.head(MAX_CATEGORIES)).inputs[0].categories is not None


def test_outputs_from_arrays_series_and_lists() -> None:
    X = np.zeros((3, 2))
    assert [c.name for c in infer_signature(X).inputs] == ["f0", "f1"]
    named = infer_signature(X, feature_names=["a", "b"])
    assert named.input_names == ["a", "b"]
    assert infer_signature(X, np.array([0, 1, 1])).outputs == (
        ColumnSpec("prediction", "int64", False, 0.0, 1.0, None),
    )
    proba = infer_signature(X, np.full((3, 2), 0.5)).outputs
    assert [c.name for c in proba] == ["prediction_0", "prediction_1"]
    labels = infer_signature(X, ["cat", "dog", "cat"]).outputs[0]
    assert labels.dtype == "string"
    assert labels.categories == ("cat", "dog")
    assert infer_signature(X, pd.Series([1.5, 2.5, 3.5], name="price")).outputs[0].name == "price"


def test_records_and_arrow_inputs(frame: pd.DataFrame) -> None:
    records = [{"a": 1.5, "b": "x"}, {"a": None, "b": "y"}]
    cols = by_name(infer_signature(records))
    assert cols["a"].dtype == "float64"
    assert cols["a"].nullable
    assert cols["b"].categories == ("x", "y")
    table = pa.table({"a": [1.5, None], "b": ["x", "y"]})
    assert infer_signature(table).inputs == infer_signature(records).inputs


def test_to_dict_round_trip_is_json(frame: pd.DataFrame) -> None:
    sig = infer_signature(frame, np.array([0.1, 0.2, 0.3, 0.4]))
    text = json.dumps(sig.to_dict(), allow_nan=False)
    assert Signature.from_dict(json.loads(text)) == sig


@pytest.mark.parametrize(
    "bad",
    [
        "nope",
        {"inputs": "x"},
        {"inputs": [{"name": "a"}]},
        {"inputs": [{"name": "a", "dtype": "float64", "min": "low"}]},
        {"inputs": [{"name": "a", "dtype": "x"}, {"name": "a", "dtype": "x"}]},
    ],
)
def test_from_dict_rejects_garbage(bad: object) -> None:
    with pytest.raises(InvalidInput, match="signature"):
        Signature.from_dict(bad)


def test_validate_reorders_drops_extras_and_casts(frame: pd.DataFrame) -> None:
    sig = infer_signature(frame)
    request = frame[list(reversed(frame.columns))].copy()
    request["extra"] = 1
    request["visits"] = request["visits"].astype(str)  # "1", "2": safely castable
    out = sig.validate(request)
    assert list(out.columns) == list(frame.columns)
    assert out["visits"].dtype == np.int64
    pd.testing.assert_frame_equal(out, frame, check_dtype=False)
    assert isinstance(out["region"].dtype, pd.CategoricalDtype)
    assert list(out["region"].cat.categories) == ["apac", "eu", "us"]


def test_validate_accepts_records_json_style(frame: pd.DataFrame) -> None:
    sig = infer_signature(frame)
    out = sig.validate(
        [
            {
                "age": "40",
                "visits": 3.0,
                "plan": "pro",
                "region": "us",
                "active": "true",
                "seen": "2024-05-01T10:00:00Z",
            }
        ]
    )
    row = out.iloc[0]
    assert row["age"] == 40.0
    assert row["visits"] == 3
    assert row["active"] is True or row["active"] == True  # noqa: E712
    assert row["seen"] == pd.Timestamp("2024-05-01 10:00:00")


def test_validate_lists_every_problem(frame: pd.DataFrame) -> None:
    sig = infer_signature(frame)
    request = frame.drop(columns=["seen"]).copy()
    request["age"] = request["age"].astype(object)
    request.loc[3, "age"] = "abc"
    request["visits"] = [1, 2.5, None, 4]
    request["region"] = ["eu", "mars", "us", "eu"]
    request["active"] = ["yes", True, False, True]
    with pytest.raises(ValidationFailed) as info:
        sig.validate(request)
    message = str(info.value)
    assert "column 'age': expected float64, got 'abc' in row 3" in message
    assert "column 'visits': expected int64, got 2.5 in row 1" in message
    assert "column 'visits': null in row 2, but the column is not nullable" in message
    assert "column 'region': unknown category, got 'mars' in row 1" in message
    assert "column 'active': expected bool, got 'yes' in row 0" in message
    assert "column 'seen': missing" in message
    assert isinstance(info.value, SignatureMismatch)
    assert len(info.value.problems) == 6


def test_out_of_range_is_not_an_error(frame: pd.DataFrame) -> None:
    sig = infer_signature(frame)
    request = frame.copy()
    request["age"] = 1e9
    assert sig.validate(request)["age"].iloc[0] == 1e9


def test_validate_array_by_position() -> None:
    sig = infer_signature(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}))
    out = sig.validate(np.array([[5.0, 6.0]]))
    assert list(out.columns) == ["a", "b"]
    assert out.iloc[0].tolist() == [5.0, 6.0]
    with pytest.raises(ValidationFailed, match="2 columns"):
        sig.validate(np.zeros((1, 3)))


def test_nullable_int_column_becomes_float() -> None:
    sig = Signature(inputs=(ColumnSpec("n", "int64", nullable=True),))
    out = sig.validate([{"n": 1}, {"n": None}])
    assert out["n"].dtype == np.float64
    assert np.isnan(out["n"].iloc[1])


def test_large_integers_stay_exact() -> None:
    big = 2**53 + 1
    sig = infer_signature(pd.DataFrame({"id": [big, 1]}))
    assert sig.validate([{"id": big}, {"id": str(big)}])["id"].tolist() == [big, big]
    with pytest.raises(ValidationFailed, match="expected int8"):
        Signature(inputs=(ColumnSpec("n", "int8"),)).validate([{"n": 300}])


def test_unsupported_input_type() -> None:
    sig = Signature(inputs=(ColumnSpec("n", "int64"),))
    with pytest.raises(InvalidInput, match="cannot use a int"):
        sig.validate(3)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=0, max_value=12))
    columns: dict[str, list[object]] = {}
    for i in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["int", "float", "str"]))
        element: st.SearchStrategy[object] = {
            "int": st.integers(min_value=-(2**63), max_value=2**63 - 1),
            "float": st.floats(allow_nan=True, allow_infinity=True),
            # Text as the column contract accepts it: no NUL (C libraries cut there and
            # PostgreSQL refuses it); test_nul_in_training_text_is_named covers NUL.
            "str": st.text(st.characters(blacklist_categories=("Cs",),
                                         blacklist_characters="\x00"), max_size=5),
        }[kind]
        columns[f"{kind}_{i}"] = draw(st.lists(st.none() | element, min_size=n, max_size=n))
    return pd.DataFrame(columns)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_inferred_signature_accepts_its_own_training_frame(df: pd.DataFrame) -> None:
    sig = infer_signature(df)
    json.dumps(sig.to_dict(), allow_nan=False)
    out = sig.validate(df)
    assert list(out.columns) == [str(c) for c in df.columns]
    assert len(out) == len(df)


def test_nul_in_training_text_is_named() -> None:
    """The signature inferred from text holding NUL refuses it as serving does, naming the
    column and row, instead of passing it on to C libraries and the prediction log."""
    frame = pd.DataFrame({"note": ["ok", "cut\x00here"]})
    with pytest.raises(SignatureMismatch, match=r"column 'note'.*NUL character.*row 1"):
        infer_signature(frame).validate(frame)
