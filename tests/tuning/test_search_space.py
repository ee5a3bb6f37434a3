"""Search spaces: what users write becomes Optuna distributions; mistakes name the key."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from ratchet.errors import InvalidInput
from ratchet.tuning.search_space import check_objective_accepts, describe_space, parse_space


def test_every_form_parses() -> None:
    gamma = FloatDistribution(1e-4, 1.0, log=True)
    space = parse_space({
        "C": ("float", 1e-3, 1e2, {"log": True}),
        "alpha": ("float", 0.0, 1.0),
        "depth": ("int", 2, 10),
        "trees": ("int", 100, 500, {"step": 100}),
        "lr": ("float", 0, 1, {"step": 0.25}),
        "kernel": ["rbf", "linear", None],
        "gamma": gamma,
    })
    assert space["C"] == FloatDistribution(1e-3, 1e2, log=True)
    assert space["alpha"] == FloatDistribution(0.0, 1.0)
    assert space["depth"] == IntDistribution(2, 10)
    assert space["trees"] == IntDistribution(100, 500, step=100)
    assert space["lr"] == FloatDistribution(0.0, 1.0, step=0.25)
    assert space["kernel"] == CategoricalDistribution(["rbf", "linear", None])
    assert space["gamma"] is gamma
    assert describe_space(space) == {
        "C": "float[0.001, 100] log", "alpha": "float[0, 1]", "depth": "int[2, 10]",
        "trees": "int[100, 500] step 100", "lr": "float[0, 1] step 0.25",
        "kernel": "choice['rbf', 'linear', None]", "gamma": "float[0.0001, 1] log",
    }


@pytest.mark.parametrize(("spec", "message"), [
    (("float", 1.0, 0.0), "low (1.0) is above high (0.0)"),
    (("float", 0.0, 1.0, {"log": True}), "log range needs low > 0"),
    (("float", 0.1, 1.0, {"log": True, "step": 0.1}), "cannot be combined"),
    (("float", 0.0, 1.0, {"scale": "log"}), "unknown option(s) 'scale'"),
    (("float", 0.0, 1.0, "log"), "4th item must be a dict"),
    (("int", 1.5, 10), "low must be a finite integer"),
    (("int", 1, 10, {"step": 0}), "step must be a positive integer"),
    (("float", 0.0, float("inf")), "high must be a finite number"),
    (("float", "0", 1), "low must be a finite number"),
    (("float", 0.0), "a range is ('float', low, high)"),
    (("a", "b"), "write categorical choices as a list"),
    ([], "at least one value"),
    ([object()], "categorical choices must be None, bool, int, float or str"),
    ({"low": 0, "high": 1}, "cannot read"),
    (3, "cannot read"),
])
def test_bad_specs_name_the_key(spec: object, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_space({"lr": spec})
    assert "space['lr']" in str(info.value)
    assert message in str(info.value)


def test_bad_spaces() -> None:
    with pytest.raises(InvalidInput, match="space is empty"):
        parse_space({})
    with pytest.raises(InvalidInput, match="must be a dict"):
        parse_space([("x", ("float", 0, 1))])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="non-empty strings"):
        parse_space({"": ("float", 0, 1)})


def test_objective_must_accept_the_parameters() -> None:
    def objective(x: float, y: float = 0.0) -> float:
        return x + y

    check_objective_accepts(objective, ["x"])
    check_objective_accepts(objective, ["x", "y"])
    check_objective_accepts(lambda **params: 0.0, ["anything"])
    with pytest.raises(InvalidInput, match=r"cannot be called with the space's parameters"):
        check_objective_accepts(objective, ["x", "z"])
    with pytest.raises(InvalidInput, match="missing a required argument: 'x'"):
        check_objective_accepts(objective, ["y"])


def test_optuna_distributions_pass_through() -> None:
    dist = optuna.distributions.IntDistribution(1, 8, log=True)
    assert parse_space({"n": dist})["n"] is dist
