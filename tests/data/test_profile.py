"""Profiles are checked field by field against pandas / numpy computed on the same data."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratchet.columns import CATEGORICAL_MAX_DISTINCT, FLOAT, statistical_kind
from ratchet.data.profile import (
    QUANTILE_PROBS,
    ColumnProfile,
    DatasetProfile,
    infer_semantic_type,
    profile_parquet,
    profile_table,
    type_family,
)
from ratchet.errors import InvalidInput, NotFound

N = 2_000
WEIRD = 'weird "name" é'


def _mixed_table(n: int = N, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    f = rng.normal(10.0, 3.0, n)
    f[rng.random(n) < 0.03] = np.nan
    f[:2] = [np.inf, -np.inf]
    cats = np.array(["red", "green", "blue", "amber"])
    return pa.table(
        {
            "i": pa.array(rng.integers(-500, 500, n), mask=rng.random(n) < 0.05),
            "k": pa.array(rng.integers(0, 5, n)),
            "f": pa.array(f, mask=rng.random(n) < 0.04),
            "b": pa.array(rng.random(n) < 0.3, mask=rng.random(n) < 0.1),
            "cat": pa.array(
                cats[rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])], mask=rng.random(n) < 0.02
            ),
            "id": pa.array([f"cust-{j:06d}" for j in rng.permutation(n)]),
            "text": pa.array(
                [f"review {j}: " + "great product, would buy again " * 3 for j in range(n)]
            ),
            "ts": pa.array(
                (np.datetime64("2024-01-01T00:00:00", "us") + rng.integers(0, 10**12, n)).astype(
                    "datetime64[us]"
                )
            ),
            "d": pa.array(
                [dt.date(2024, 1, 1) + dt.timedelta(days=int(x)) for x in rng.integers(0, 365, n)]
            ),
            "empty": pa.array([None] * n, pa.float64()),
            "const": pa.array([42] * n),
            WEIRD: pa.array(rng.exponential(2.0, n)),
        }
    )


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, DatasetProfile, Path]:
    table = _mixed_table()
    path = tmp_path_factory.mktemp("profile") / "mixed.parquet"
    pq.write_table(table, path, row_group_size=500)  # several row groups, as in real files
    return table.to_pandas(), profile_parquet(path), path


def _finite(s: pd.Series) -> np.ndarray:
    a = s.dropna().to_numpy(dtype=float)
    return a[np.isfinite(a)]


def test_semantic_types(mixed: tuple[pd.DataFrame, DatasetProfile, Path]) -> None:
    _, profile, _ = mixed
    assert {c.name: c.semantic_type for c in profile.columns} == {
        "i": "numeric",
        "k": "categorical",
        "f": "numeric",
        "b": "boolean",
        "cat": "categorical",
        "id": "identifier",
        "text": "text",
        "ts": "datetime",
        "d": "datetime",
        "empty": "empty",
        "const": "constant",
        WEIRD: "numeric",
    }
    assert profile.rows == N
    assert profile.column("d").arrow_type == "date32[day]"
    assert profile.column("ts").arrow_type == "timestamp[us]"


@pytest.mark.parametrize("name", ["i", "k", "f", "const", WEIRD])
def test_numeric_columns_match_numpy(
    mixed: tuple[pd.DataFrame, DatasetProfile, Path], name: str
) -> None:
    df, profile, _ = mixed
    c = profile.column(name)
    a = _finite(df[name])
    assert c.count == N
    assert c.nulls == N - len(a)  # NaN and ±inf count as missing
    assert c.distinct == len(np.unique(a)) and c.distinct_exact
    assert c.min == a.min() and c.max == a.max()
    assert c.mean == pytest.approx(a.mean(), rel=1e-9)
    assert c.std == pytest.approx(a.std(ddof=1), rel=1e-9, abs=1e-12)
    assert c.quantiles is not None and len(c.quantiles) == 101
    np.testing.assert_allclose(c.quantiles, np.quantile(a, QUANTILE_PROBS), rtol=1e-9, atol=1e-9)
    assert c.histogram is not None
    assert sum(c.histogram["counts"]) == len(a)
    if a.min() < a.max():
        counts, edges = np.histogram(a, bins=20)
        assert c.histogram["counts"] == counts.tolist()
        np.testing.assert_array_equal(c.histogram["edges"], edges)


def test_nan_and_infinity_are_missing(mixed: tuple[pd.DataFrame, DatasetProfile, Path]) -> None:
    df, profile, _ = mixed
    f = profile.column("f")
    raw = df["f"]
    assert f.nulls == int(raw.isna().sum() + np.isinf(raw.fillna(0)).sum())
    assert f.min is not None and math.isfinite(f.min)


def test_discrete_numerics_get_top(mixed: tuple[pd.DataFrame, DatasetProfile, Path]) -> None:
    df, profile, _ = mixed
    k = profile.column("k")
    expected = df["k"].value_counts()
    assert dict(k.top or ()) == {str(v): int(n) for v, n in expected.items()}
    assert k.other_count == 0
    assert profile.column("const").top == (("42", N),)
    assert profile.column("i").top is None  # 1,000 distinct values: not discrete


def test_categorical_and_boolean_top(mixed: tuple[pd.DataFrame, DatasetProfile, Path]) -> None:
    df, profile, _ = mixed
    cat = profile.column("cat")
    vc = df["cat"].value_counts()
    assert cat.top == tuple((str(v), int(n)) for v, n in vc.items())  # most frequent first
    assert cat.other_count == 0 and cat.distinct == 4 and cat.nulls == int(df["cat"].isna().sum())
    assert (cat.min, cat.max) == ("amber", "red")
    assert cat.mean_length == pytest.approx(df["cat"].dropna().str.len().mean())

    b = profile.column("b")
    vals = df["b"].dropna().astype(int)
    assert dict(b.top or ()) == {"true": int(vals.sum()), "false": int((vals == 0).sum())}
    assert b.mean == pytest.approx(vals.mean()) and b.std == pytest.approx(vals.std())
    assert (b.min, b.max) == (0.0, 1.0) and b.quantiles is None and b.histogram is None


def test_strings_without_top(mixed: tuple[pd.DataFrame, DatasetProfile, Path]) -> None:
    df, profile, _ = mixed
    for name in ("id", "text"):
        c = profile.column(name)
        assert c.top is None and c.other_count is None and c.histogram is None
        assert c.distinct == N and c.nulls == 0
        assert (c.min, c.max) == (df[name].min(), df[name].max())
        assert c.mean_length == pytest.approx(df[name].str.len().mean())  # ASCII: bytes = chars


def test_datetimes(mixed: tuple[pd.DataFrame, DatasetProfile, Path]) -> None:
    df, profile, _ = mixed
    ts = profile.column("ts")
    assert ts.min == df["ts"].min().isoformat() and ts.max == df["ts"].max().isoformat()
    assert ts.mean is None and ts.histogram is None and ts.top is None
    epoch = df["ts"].astype("int64").to_numpy() / 1e6  # datetime64[us] -> seconds
    assert ts.quantiles is not None
    np.testing.assert_allclose(ts.quantiles, np.quantile(epoch, QUANTILE_PROBS), rtol=1e-12)
    d = profile.column("d")
    assert d.min == min(df["d"]).isoformat() and d.max == max(df["d"]).isoformat()
    assert d.distinct == df["d"].nunique()


def test_empty_and_constant(mixed: tuple[pd.DataFrame, DatasetProfile, Path]) -> None:
    _, profile, _ = mixed
    e = profile.column("empty")
    assert (e.nulls, e.distinct, e.min, e.mean, e.quantiles, e.histogram, e.top) == (
        N,
        0,
        None,
        None,
        None,
        None,
        None,
    )
    c = profile.column("const")
    assert c.distinct == 1 and c.std == 0.0
    assert c.histogram == {"edges": [42.0, 42.0], "counts": [N]}


def test_table_and_file_profiles_agree(mixed: tuple[pd.DataFrame, DatasetProfile, Path]) -> None:
    _, from_file, path = mixed
    assert profile_table(pq.read_table(path)) == from_file


def test_json_round_trip(mixed: tuple[pd.DataFrame, DatasetProfile, Path]) -> None:
    _, profile, _ = mixed
    text = json.dumps(profile.to_dict(), allow_nan=False)
    back = DatasetProfile.from_dict(json.loads(text))
    assert back == profile
    assert ColumnProfile.from_dict(profile.columns[0].to_dict()) == profile.columns[0]


def test_column_not_found_lists_columns(mixed: tuple[pd.DataFrame, DatasetProfile, Path]) -> None:
    _, profile, _ = mixed
    with pytest.raises(NotFound, match=r"'nope'.*'i', 'k'"):
        profile.column("nope")


def test_malformed_dict() -> None:
    with pytest.raises(InvalidInput, match="malformed"):
        DatasetProfile.from_dict({"rows": 1, "columns": [{"name": "x"}]})
    with pytest.raises(InvalidInput, match="malformed"):
        DatasetProfile.from_dict({"columns": []})


def test_awkward_names_and_types() -> None:
    names = ['a"b', "with space", "ünïcødé 列", "'single'", "select", ""]
    table = pa.table({n: pa.array([1.0, 2.0, None]) for n in names})
    profile = profile_table(table)
    assert [c.name for c in profile.columns] == names
    assert all(c.nulls == 1 and c.mean == 1.5 for c in profile.columns)

    extra = pa.table(
        {
            "dict": pa.array(["x", "y", "x", None]).dictionary_encode(),
            "big": pa.array(["p", "q", None, "p"], pa.large_string()),
            "tz": pa.array([0, 3_600_000_000, None, 0], pa.timestamp("us", tz="Europe/Paris")),
            "dec": pa.array([1, 2, 3, None], pa.decimal128(20, 2)),
            "lst": pa.array([[1], [1, 2], None, [1]]),
            "null": pa.nulls(4),
        }
    )
    p = profile_table(extra)
    assert p.column("dict").arrow_type == "string"  # profiled as its values
    assert p.column("dict").top == (("x", 2), ("y", 1))
    assert p.column("big").top == (("p", 2), ("q", 1))
    assert p.column("tz").max == "1970-01-01T01:00:00+00:00"  # reported in UTC
    # Three distinct numbers are codes by the contract's rule, as drift tests them.
    assert p.column("dec").mean == 2.0 and p.column("dec").semantic_type == "categorical"
    assert (p.column("lst").semantic_type, p.column("lst").distinct) == ("other", 2)
    assert (p.column("null").semantic_type, p.column("null").nulls) == ("empty", 4)


def test_empty_table_and_no_columns() -> None:
    p = profile_table(pa.table({"x": pa.array([], pa.int64()), "s": pa.array([], pa.string())}))
    assert p.rows == 0
    assert all(c.semantic_type == "empty" and c.count == 0 for c in p.columns)
    assert profile_table(pa.table({})).columns == ()


def test_directory_of_parquet_files(tmp_path: Path) -> None:
    for part in range(3):
        pq.write_table(
            pa.table({"x": pa.array(range(part * 10, part * 10 + 10))}),
            tmp_path / f"p{part}.parquet",
        )
    p = profile_parquet(tmp_path)
    assert p.rows == 30 and p.column("x").max == 29.0 and p.column("x").distinct == 30


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        profile_parquet(tmp_path / "missing.parquet")
    bogus = tmp_path / "bogus.parquet"
    bogus.write_text("not parquet")
    with pytest.raises(InvalidInput, match="not readable as Parquet"):
        profile_parquet(bogus)
    with pytest.raises(InvalidInput, match=r"pyarrow\.Table"):
        profile_table({"x": [1]})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="bins"):
        profile_table(pa.table({"x": [1]}), bins=0)


def test_large_data_uses_estimates(tmp_path: Path) -> None:
    n = 3_000_000
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2_000_000, n)
    ints = pa.array(a)
    table = pa.table(
        {"u": ints, "s": pc.cast(ints, pa.string()), "g": pa.array(rng.integers(0, 7, n))}
    )
    path = tmp_path / "large.parquet"
    pq.write_table(table, path)
    p = profile_parquet(path, exact_distinct_max_rows=1_000_000)
    truth = np.count_nonzero(np.bincount(a))
    for name in ("u", "s"):
        c = p.column(name)
        assert not c.distinct_exact
        assert abs(c.distinct - truth) / truth < 0.03
    assert p.column("s").semantic_type == "text"  # 2/3 distinct, short: free-form
    g = p.column("g")  # the value table makes a low-cardinality count exact again
    # 7 distinct numbers: numeric (the contract's rule: categorical at most 5).
    assert (g.distinct, g.distinct_exact, g.semantic_type) == (7, True, "numeric")
    # Sampled quantiles: ends exact, interior within a small rank error.
    q = np.asarray(p.column("u").quantiles)
    assert (q[0], q[-1]) == (a.min(), a.max())
    ranks = np.searchsorted(np.sort(a), q[1:-1]) / n
    assert np.max(np.abs(ranks - np.asarray(QUANTILE_PROBS[1:-1]))) < 0.01


def test_semantic_rules() -> None:
    def sem(family: str, **kw: object) -> str:
        args: dict = {"non_null": 1000, "distinct": 500, "distinct_exact": True} | kw
        return infer_semantic_type(family, **args)

    assert sem("numeric", non_null=0, distinct=0) == "empty"
    assert sem("string", distinct=1) == "constant"
    # The column contract's rule (the one drift applies): at most 5 distinct values.
    assert sem("numeric", is_integer=True, distinct=CATEGORICAL_MAX_DISTINCT) == "categorical"
    assert sem("numeric", is_integer=True, distinct=CATEGORICAL_MAX_DISTINCT + 1) == "numeric"
    assert sem("numeric", is_integer=True, distinct=20) == "numeric"
    assert sem("numeric", distinct=3) == "categorical"  # codes stored as floats, too
    for distinct in (2, 5, 6, 50):
        kind = sem("numeric", distinct=distinct)
        assert kind == statistical_kind(FLOAT, distinct)
    assert sem("string", distinct=1000) == "identifier"
    assert sem("string", distinct=975, distinct_exact=False) == "identifier"
    assert sem("string", distinct=50, non_null=50) == "categorical"  # too few rows to tell
    assert sem("string", distinct=600) == "text"
    assert sem("string", distinct=30, mean_length=80.0) == "text"
    assert sem("string", distinct=30, mean_length=8.0) == "categorical"
    assert sem("other", distinct=30) == "other"
    assert type_family("timestamp[ns, tz=UTC]") == "datetime"
    assert type_family("dictionary<values=string, indices=int32, ordered=0>") == "string"
    assert type_family("decimal128(10, 2)") == "numeric"
    assert type_family("list<item: int64>") == "other"


def test_top_k_and_high_cardinality_categorical(tmp_path: Path) -> None:
    # 12,000 categories over 240,000 rows: categorical, beyond the shared value-table pass.
    rng = np.random.default_rng(5)
    codes = rng.zipf(1.5, 240_000) % 12_000
    labels = pc.cast(pa.array(codes), pa.string())
    p = profile_table(pa.table({"c": pc.binary_join_element_wise("c", labels, "")}), top_k=5)
    c = p.column("c")
    vc = pd.Series(codes).value_counts()
    assert c.semantic_type == "categorical"
    assert [n for _, n in c.top or ()] == vc.iloc[:5].tolist()
    assert c.other_count == 240_000 - vc.iloc[:5].sum()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.integers(-50, 50) | st.floats(-1e6, 1e6, allow_nan=False, width=32),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 25),
)
def test_histogram_matches_numpy(values: list[float], bins: int) -> None:
    a = np.asarray(values, dtype=float)
    h = profile_table(pa.table({"x": a}), bins=bins).column("x").histogram
    assert h is not None
    if a.min() == a.max():
        assert h == {"edges": [a[0], a[0]], "counts": [len(a)]}
    else:
        counts, edges = np.histogram(a, bins=bins)
        assert h["counts"] == counts.tolist()
        np.testing.assert_array_equal(h["edges"], edges)
