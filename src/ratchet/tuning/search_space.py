"""Search spaces: the plain-Python way to say what to tune, turned into Optuna distributions.

    {"C": ("float", 1e-3, 1e2, {"log": True}),   # float range, options log= / step=
     "depth": ("int", 2, 10),                     # int range, options log= / step=
     "kernel": ["rbf", "linear"],                 # a list is a categorical choice
     "gamma": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)}

Every mistake is reported with the key it is under, before any trial runs.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

RANGE_KINDS = ("float", "int")
RANGE_OPTIONS = ("log", "step")
_EXAMPLES = ('("float", 1e-3, 1.0, {"log": True}), ("int", 2, 10), ["a", "b"] '
             "or an optuna distribution")


def parse_space(space: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """Optuna distributions for a space written as tuples, lists and distributions."""
    if not isinstance(space, Mapping):
        raise InvalidInput(f"space must be a dict of parameter name -> range, got "
                           f"{type(space).__name__}")
    if not space:
        raise InvalidInput("space is empty: give at least one parameter to tune, e.g. "
                           '{"C": ("float", 1e-3, 1e2, {"log": True})}')
    parsed = {}
    for key, spec in space.items():
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"space keys must be non-empty strings (they become keyword "
                               f"arguments of the objective), got {key!r}")
        parsed[key] = _parse_one(key, spec)
    return parsed


def _parse_one(key: str, spec: Any) -> BaseDistribution:
    from optuna.distributions import BaseDistribution, CategoricalDistribution

    if isinstance(spec, BaseDistribution):
        return spec
    if isinstance(spec, list):
        if not spec:
            raise InvalidInput(f"space[{key!r}]: a categorical choice needs at least one value")
        for choice in spec:
            # Optuna stores choices as JSON; other types would be silently stringified.
            if choice is not None and not isinstance(choice, bool | int | float | str):
                raise InvalidInput(
                    f"space[{key!r}]: categorical choices must be None, bool, int, float or "
                    f"str, got {type(choice).__name__} ({choice!r}); tune an index or a "
                    "name and build the object inside the objective")
        return CategoricalDistribution(spec)
    if isinstance(spec, tuple) and spec and spec[0] in RANGE_KINDS:
        return _parse_range(key, spec)
    hint = (" (a tuple is a range: write categorical choices as a list)"
            if isinstance(spec, tuple) else "")
    raise InvalidInput(f"space[{key!r}]: cannot read {spec!r} as a range{hint}; "
                       f"use {_EXAMPLES}")


def _parse_range(key: str, spec: tuple[Any, ...]) -> BaseDistribution:
    from optuna.distributions import FloatDistribution, IntDistribution

    kind = spec[0]
    if len(spec) not in (3, 4):
        raise InvalidInput(f"space[{key!r}]: a range is ({kind!r}, low, high) or "
                           f"({kind!r}, low, high, {{options}}), got {spec!r}")
    low: Any = spec[1]
    high: Any = spec[2]
    options: Any = spec[3] if len(spec) == 4 else {}
    if not isinstance(options, Mapping):
        raise InvalidInput(f"space[{key!r}]: the 4th item must be a dict of options "
                           f"(log=, step=), got {options!r}")
    unknown = sorted(set(options) - set(RANGE_OPTIONS))
    if unknown:
        raise InvalidInput(f"space[{key!r}]: unknown option(s) {', '.join(map(repr, unknown))}; "
                           f"known: {', '.join(RANGE_OPTIONS)}")
    want: Any = Integral if kind == "int" else Real
    bounds: tuple[tuple[str, Any], ...] = (("low", low), ("high", high))
    for label, bound in bounds:
        if isinstance(bound, bool) or not isinstance(bound, want) or \
                (kind == "float" and not math.isfinite(bound)):
            raise InvalidInput(f"space[{key!r}]: {label} must be a finite "
                               f"{'integer' if kind == 'int' else 'number'}, got {bound!r}")
    if low > high:
        raise InvalidInput(f"space[{key!r}]: low ({low}) is above high ({high})")
    log = options.get("log", False)
    step = options.get("step")
    if not isinstance(log, bool):
        raise InvalidInput(f"space[{key!r}]: log must be True or False, got {log!r}")
    if log and step is not None:
        raise InvalidInput(f"space[{key!r}]: log=True and step= cannot be combined")
    if log and low <= 0:
        raise InvalidInput(f"space[{key!r}]: a log range needs low > 0, got {low}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, want)
                             or step <= 0):
        raise InvalidInput(f"space[{key!r}]: step must be a positive "
                           f"{'integer' if kind == 'int' else 'number'}, got {step!r}")
    if kind == "int":
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=log,
                             step=float(step) if step is not None else None)


def describe_space(space: Mapping[str, BaseDistribution]) -> dict[str, str]:
    """One short line per parameter, e.g. ``float[0.001, 100] log``, for run params."""
    return {key: describe_distribution(dist) for key, dist in space.items()}


def space_fingerprint(space: Mapping[str, BaseDistribution]) -> dict[str, str]:
    """Exact, comparable form of a space (Optuna's own JSON per distribution): what a
    resumed study must match. ``describe_space`` rounds numbers for people."""
    from optuna.distributions import distribution_to_json

    return {key: distribution_to_json(dist) for key, dist in space.items()}


def describe_distribution(dist: BaseDistribution) -> str:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(dist, CategoricalDistribution):
        return "choice" + repr(list(dist.choices))
    if isinstance(dist, FloatDistribution | IntDistribution):
        kind = "int" if isinstance(dist, IntDistribution) else "float"
        text = f"{kind}[{dist.low:g}, {dist.high:g}]"
        if dist.log:
            text += " log"
        if dist.step is not None and not (kind == "int" and dist.step == 1):
            text += f" step {dist.step:g}"
        return text
    return repr(dist)


def check_objective_accepts(objective: Callable[..., Any], keys: list[str]) -> None:
    """Fail before any trial runs if the objective cannot take the space's parameters."""
    try:
        signature = inspect.signature(objective)
    except (TypeError, ValueError):  # builtins and some C callables have none
        return
    try:
        signature.bind(**dict.fromkeys(keys))
    except TypeError as exc:
        name = getattr(objective, "__qualname__", repr(objective))
        raise InvalidInput(f"objective {name}{signature} cannot be called with the space's "
                           f"parameters ({', '.join(keys)}): {exc}") from None
