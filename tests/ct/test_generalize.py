"""bench/ct_generalize.py's parts: the rainfall loader returns what it says (the weather
loader checks its file itself: ISLP lives only in the bench's folder), the negative control
is a permutation of real rows on the same clock, the generic pipeline fits any table, and
the policy the bench replays is the docs' first policy with only three names changed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from ct_datasets import loaders  # noqa: E402
from ct_datasets.training import generic_model  # noqa: E402


def test_rainfall_is_daily_in_time_order_with_a_binary_label() -> None:
    frame = loaders.load_rainfall()
    assert frame.columns[0] == loaders.TIME and "rain" in frame.columns
    assert frame[loaders.TIME].is_monotonic_increasing
    assert frame[loaders.TIME].diff().dropna().dt.days.eq(1).all()
    assert set(frame["rain"].unique()) == {0, 1}
    assert len(frame) > 15_000


def test_the_control_permutes_rows_and_keeps_the_clock() -> None:
    import pandas as pd

    frame = loaders.load_rainfall().head(2_000)
    control = loaders.shuffled(frame, seed=0)
    assert control[loaders.TIME].equals(frame[loaders.TIME])
    rest = [c for c in frame.columns if c != loaders.TIME]
    assert not control[rest].equals(frame[rest])            # the order changed
    pd.testing.assert_frame_equal(                          # the same rows, all of them
        control[rest].sort_values(rest).reset_index(drop=True),
        frame[rest].sort_values(rest).reset_index(drop=True))
    assert loaders.shuffled(frame, seed=0).equals(control)  # the seed fixes it
    # no drift by construction: the label's rate in the first and last thirds agree
    third = len(control) // 3
    assert abs(control["rain"].iloc[:third].mean() - control["rain"].iloc[-third:].mean()) \
        < 0.06


def test_generic_model_one_hots_text_and_ignores_unseen_values() -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 400
    hour = rng.choice(["h01", "h02", "h03"], n)
    x = rng.normal(size=n)
    label = np.where((hour == "h02") | (x > 1), "wet", "dry")
    model = generic_model(pd.DataFrame({"hour": hour, "x": x, "label": label}), "label")
    assert model.score(pd.DataFrame({"hour": hour, "x": x}), label) > 0.95
    unseen = model.predict(pd.DataFrame({"hour": ["h99"], "x": [0.0]}))
    assert unseen[0] in {"wet", "dry"}
    with pytest.raises(Exception, match="no label column 'rain'"):
        generic_model(pd.DataFrame({"x": x, "label": label}), "rain")


def test_the_bench_replays_the_docs_first_policy_with_only_names_changed() -> None:
    import ct_generalize
    import yaml

    from ratchet.ct.policy import policy_from_dict

    text = ct_generalize.first_policy_text()
    documented = policy_from_dict(yaml.safe_load(text)).to_dict()
    assert "drift" in documented["triggers"]
    assert any(isinstance(t, dict) and "performance" in t for t in documented["triggers"])
    for case in ct_generalize.CASES:
        replayed = ct_generalize.policy_for(case, text).to_dict()
        assert replayed["data"]["label"] == case.label
        for name in ("model", "pipeline", "deployment"):
            replayed.pop(name, None), documented.pop(name, None)
        replayed["data"]["label"] = documented["data"]["label"]
        assert replayed == documented, case.name
