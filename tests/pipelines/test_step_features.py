"""``@ratchet.step(model=..., features=[...])``: a model output trained on the feature store."""

from __future__ import annotations

import pytest

import ratchet
from ratchet.errors import InvalidInput


def test_features_are_kept_on_the_steps_options() -> None:
    @ratchet.step(model="eta", features=["driver_stats:trips", "ratios"],
                  full_feature_names=True)
    def fit(frame: object) -> object:
        return frame

    assert fit.options.features == ("driver_stats:trips", "ratios")
    assert fit.options.full_feature_names is True


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"features": ["driver_stats:trips"]}, "give model= too"),
    ({"model": "eta", "features": "driver_stats:trips"}, "list of 'view:feature'"),
    ({"model": "eta", "features": []}, "list of 'view:feature'"),
    ({"model": "eta", "features": ["a", 3]}, "list of 'view:feature'"),
    ({"model": "eta", "features": ["a"], "full_feature_names": "yes"}, "True or False"),
])
def test_wrong_features_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ratchet.step(**kwargs)(lambda frame: frame)  # type: ignore[call-overload]
