from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import jensenshannon

from ratchet.data.profile import QUANTILE_PROBS, DatasetProfile, profile_table
from ratchet.data.profile_compare import (
    OTHER_BUCKET,
    bin_masses_from_quantiles,
    category_distributions,
    cdf_from_quantiles,
    compare_profiles,
    js_distance,
    js_divergence,
    ks_from_quantiles,
    psi,
    wasserstein_from_quantiles,
)

N = 20_000


def _frame(
    seed: int, *, shift: float = 0.0, mix: tuple[float, ...] = (0.5, 0.3, 0.2), nulls: float = 0.0
) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "x": pa.array(rng.normal(shift, 1.0, N), mask=rng.random(N) < nulls),
            "c": pa.array(rng.choice(["a", "b", "c"], N, p=mix)),
            "k": pa.array(rng.integers(0, 5, N)),
            "flag": pa.array(rng.random(N) < 0.3),
            "t": pa.array(np.arange(N).astype("datetime64[s]")),
            "s": pa.array([f"id-{j}" for j in range(N)]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> DatasetProfile:
    return profile_table(_frame(1))


def _by_name(comparisons: list) -> dict:
    return {c.column: c for c in comparisons}


def test_identical_profiles_are_the_same(reference: DatasetProfile) -> None:
    result = compare_profiles(reference, reference)
    assert [c.column for c in result] == list(reference.column_names)
    for c in result:
        assert (c.status, c.changed) == ("same", False), c
        for key in ("ks_approx", "psi", "js_distance", "wasserstein", "null_rate_change"):
            if key in c.statistics:
                assert c.statistics[key] == pytest.approx(0.0, abs=1e-12), (c.column, key)


def test_resampled_data_is_the_same(reference: DatasetProfile) -> None:
    result = compare_profiles(reference, profile_table(_frame(2)))
    assert not any(c.changed for c in result), [c for c in result if c.changed]


def test_shifted_normal_is_flagged(reference: DatasetProfile) -> None:
    x = _by_name(compare_profiles(reference, profile_table(_frame(3, shift=1.0))))["x"]
    s = x.statistics
    assert x.changed and x.status == "changed"
    assert s["psi"] is not None and s["psi"] > 0.5
    assert s["wasserstein_normalized"] == pytest.approx(1.0, abs=0.05)
    assert s["mean_shift_in_std"] == pytest.approx(1.0, abs=0.05)
    # KS between N(0,1) and N(1,1) is 2Φ(0.5) - 1 ≈ 0.383.
    assert s["ks_approx"] == pytest.approx(2 * scipy.stats.norm.cdf(0.5) - 1, abs=0.02)


def test_category_mix_change_is_flagged(reference: DatasetProfile) -> None:
    c = _by_name(compare_profiles(reference, profile_table(_frame(4, mix=(0.2, 0.3, 0.5)))))["c"]
    assert c.changed
    assert c.statistics["js_distance"] is not None and c.statistics["js_distance"] > 0.2
    assert c.statistics["psi"] is not None and c.statistics["psi"] > 0.2
    assert (c.statistics["new_categories"], c.statistics["missing_categories"]) == (0.0, 0.0)


def test_null_rate_change_is_flagged(reference: DatasetProfile) -> None:
    x = _by_name(compare_profiles(reference, profile_table(_frame(5, nulls=0.2))))["x"]
    assert x.changed
    assert x.statistics["null_rate_change"] == pytest.approx(0.2, abs=0.02)


def test_schema_changes() -> None:
    ref = profile_table(
        pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"], "gone": [1.0, 2.0, 3.0], "n": [1, 2, 3]})
    )
    cur = profile_table(
        pa.table(
            {
                "a": [1.5, 2.5, 3.5],  # int -> float: same family, compared
                "b": [1, 2, 3],  # string -> int: type changed
                "new": [True, False, True],
                "n": pa.nulls(3),  # an all-null window has Arrow type null: compatible
            }
        )
    )
    got = {
        c.column: (c.status, c.changed, c.reference_type, c.current_type)
        for c in compare_profiles(ref, cur)
    }
    assert got["b"] == ("type_changed", True, "string", "int64")
    assert got["gone"] == ("removed", True, "double", None)
    assert got["new"] == ("added", True, None, "bool")
    assert got["a"][2:] == ("int64", "double")
    assert got["n"][:2] == ("changed", True)  # the null rate went from 0 to 1
    assert list(got) == ["a", "b", "gone", "n", "new"]


def test_new_and_missing_categories() -> None:
    ref = profile_table(pa.table({"c": ["a"] * 50 + ["b"] * 50}))
    cur = profile_table(pa.table({"c": ["a"] * 50 + ["z"] * 50}))
    (c,) = compare_profiles(ref, cur)
    assert (c.statistics["new_categories"], c.statistics["missing_categories"]) == (1.0, 1.0)
    assert c.changed and c.statistics["js_divergence"] == pytest.approx(0.5)


def test_accepts_dicts_and_is_json_safe(reference: DatasetProfile) -> None:
    other = profile_table(_frame(6, shift=0.3, nulls=0.1))
    result = compare_profiles(reference.to_dict(), other.to_dict())
    assert result == compare_profiles(reference, other)
    json.dumps([c.to_dict() for c in result], allow_nan=False)


# --------------------------------------------------------------------------- building blocks


def test_cdf_from_quantiles() -> None:
    q = [0.0, 1.0, 1.0, 3.0]  # an atom at 1 carrying probability 1/3
    p = [0.0, 1 / 3, 2 / 3, 1.0]
    x = [-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(cdf_from_quantiles(q, x, p), [0, 0, 1 / 6, 2 / 3, 5 / 6, 1, 1])
    np.testing.assert_allclose(
        cdf_from_quantiles(q, x, p, left=True), [0, 0, 1 / 6, 1 / 3, 5 / 6, 1, 1]
    )


def test_psi_and_js_known_values() -> None:
    assert psi([50, 50], [50, 50]) == 0.0
    expected = (0.65 - 0.5) * math.log(0.65 / 0.5) + (0.35 - 0.5) * math.log(0.35 / 0.5)
    assert psi([0.5, 0.5], [0.65, 0.35]) == pytest.approx(expected)
    assert psi([1, 0], [0, 1]) > 10  # empty bins are floored, not infinite
    p, q = [10, 20, 70], [30, 30, 40]
    assert js_distance(p, q) == pytest.approx(jensenshannon(np.array(p) / 100, np.array(q) / 100))
    assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)


def test_category_distributions_pool_the_unknown() -> None:
    labels, r, c = category_distributions([("a", 60), ("b", 30)], 10, [("a", 50), ("c", 40)], 10)
    # "b" and "c" are each known on one side only: pooled with the remainders.
    assert labels == ["a", OTHER_BUCKET]
    assert r.tolist() == [60, 40] and c.tolist() == [50, 50]
    labels, r, c = category_distributions([("a", 60), ("b", 40)], 0, [("a", 50), ("c", 50)], 0)
    assert labels == ["a", "b", "c"] and r.tolist() == [60, 40, 0] and c.tolist() == [50, 0, 50]


def test_bin_masses_rebin_a_distribution() -> None:
    q = np.linspace(0.0, 10.0, 101)  # uniform on [0, 10]
    m = bin_masses_from_quantiles(q, [2.0, 4.0, 6.0])
    np.testing.assert_allclose(m, [0.4, 0.6])  # below 2 joins the first bin, above 6 the last
    assert m.sum() == pytest.approx(1.0)


def test_wasserstein_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5_000), rng.gamma(2.0, 1.0, 4_000)
    qa, qb = np.quantile(a, QUANTILE_PROBS), np.quantile(b, QUANTILE_PROBS)
    assert wasserstein_from_quantiles(qa, qb) == pytest.approx(
        scipy.stats.wasserstein_distance(a, b), rel=0.03
    )
    assert wasserstein_from_quantiles(qa, qa + 2.5) == pytest.approx(2.5)
    assert wasserstein_from_quantiles([0, 1], [1, 0]) == pytest.approx(0.5)  # crossing


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng, n, s: rng.normal(s, 1.0, n),
        lambda rng, n, s: rng.exponential(1.0, n) + s,
        lambda rng, n, s: rng.standard_t(3, n) + s,
        lambda rng, n, s: rng.lognormal(0.0, 1.0, n) * (1 + s),
    ],
)
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_ks_approx_matches_scipy(draw, shift: float) -> None:
    rng = np.random.default_rng(int(shift * 10) + 1)
    a, b = draw(rng, 5_000, 0.0), draw(rng, 3_000, shift)
    pa_, pb = profile_table(pa.table({"v": a})), profile_table(pa.table({"v": b}))
    qa, qb = pa_.column("v").quantiles, pb.column("v").quantiles
    assert qa is not None and qb is not None
    assert ks_from_quantiles(qa, qb) == pytest.approx(
        scipy.stats.ks_2samp(a, b).statistic, abs=0.03
    )


_values = arrays(
    np.float64,
    st.integers(2, 200),
    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values, _values)
def test_ks_approx_is_a_distance(a: np.ndarray, b: np.ndarray) -> None:
    qa = profile_table(pa.table({"v": a})).column("v").quantiles
    qb = profile_table(pa.table({"v": b})).column("v").quantiles
    assert qa is not None and qb is not None
    assert ks_from_quantiles(qa, qa) == 0.0
    d = ks_from_quantiles(qa, qb)
    assert 0.0 <= d <= 1.0
    assert d == pytest.approx(ks_from_quantiles(qb, qa))
