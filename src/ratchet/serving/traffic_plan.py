"""Traffic plans: which model versions a deployment serves, and how requests are split.

Four kinds, stored as JSON in the metadata store:

    {"kind": "single", "model": "churn@champion"}
    {"kind": "split", "variants": [{"name": "a", "model": "churn/3", "weight": 50},
                                   {"name": "b", "model": "churn/4", "weight": 50}],
     "key": "customer_id"}
    {"kind": "shadow", "model": "churn@champion", "shadow": "churn/7"}
    {"kind": "canary", "model": "churn@champion", "canary": "churn/7", "percent": 10}

Model references are registry URIs or their shorthand (``churn@champion``, ``churn/3``);
aliases are re-resolved by the server, so an alias move is picked up without a plan change.
With a ``key`` (split and canary), routing is sticky: the same key value always goes to the
same variant (a stable hash, identical across processes and restarts).
"""

from __future__ import annotations

import math
import random
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ratchet.errors import InvalidInput
from ratchet.registry.uris import parse_model_uri

KINDS = ("single", "split", "shadow", "canary")
PRIMARY, SHADOW, CANARY = "primary", "shadow", "canary"
_BUCKETS = 10_000


@dataclass(frozen=True)
class Variant:
    """One routed model: ``weight`` is its share of traffic (0 for a shadow)."""

    name: str
    model: str
    weight: float


@dataclass(frozen=True)
class TrafficPlan:
    kind: str
    variants: tuple[Variant, ...]
    shadow: Variant | None = None
    key: str | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def single(cls, model: str) -> TrafficPlan:
        return cls("single", (Variant(PRIMARY, _model_ref(model, "model"), 1.0),))

    @classmethod
    def split(cls, weights: Mapping[str, float] | Sequence[tuple[str, str, float]], *,
              key: str | None = None) -> TrafficPlan:
        """``{"churn/3": 50, "churn/4": 50}`` (named a, b, …) or ``[(name, model, weight)]``."""
        if isinstance(weights, Mapping):
            items = [(chr(ord("a") + i) if i < 26 else f"v{i}", m, w)
                     for i, (m, w) in enumerate(weights.items())]
        else:
            items = list(weights)
        return cls.from_dict({"kind": "split", "key": key, "variants": [
            {"name": n, "model": m, "weight": w} for n, m, w in items]})

    @classmethod
    def shadowed(cls, model: str, shadow: str) -> TrafficPlan:
        return cls.from_dict({"kind": "shadow", "model": model, "shadow": shadow})

    @classmethod
    def canary(cls, model: str, canary: str, percent: float, *,
               key: str | None = None) -> TrafficPlan:
        return cls.from_dict({"kind": "canary", "model": model, "canary": canary,
                              "percent": percent, "key": key})

    # ------------------------------------------------------------------ JSON
    @classmethod
    def from_dict(cls, data: Any, where: str = "plan") -> TrafficPlan:
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{where}: expected an object with a 'kind', got {data!r}")
        kind = data.get("kind")
        if kind not in KINDS:
            raise InvalidInput(f"{where}: 'kind' must be one of {', '.join(KINDS)}; got {kind!r}")
        known = {"single": {"model"}, "split": {"variants", "key"},
                 "shadow": {"model", "shadow"},
                 "canary": {"model", "canary", "percent", "key"}}[kind] | {"kind"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"{where}: unknown field(s) for a {kind} plan: "
                               f"{', '.join(unknown)} (known: {', '.join(sorted(known))})")
        key = _key(data.get("key"), where)
        if kind == "single":
            return cls.single(_model_ref(data.get("model"), f"{where}.model"))
        if kind == "shadow":
            primary = _model_ref(data.get("model"), f"{where}.model")
            shadow = _model_ref(data.get("shadow"), f"{where}.shadow")
            return cls("shadow", (Variant(PRIMARY, primary, 1.0),), Variant(SHADOW, shadow, 0.0))
        if kind == "canary":
            percent = data.get("percent")
            if isinstance(percent, bool) or not isinstance(percent, int | float) or not (
                    0 <= percent <= 100):
                raise InvalidInput(f"{where}.percent: must be a number from 0 to 100, "
                                   f"got {percent!r}")
            primary = _model_ref(data.get("model"), f"{where}.model")
            canary = _model_ref(data.get("canary"), f"{where}.canary")
            return cls("canary", (Variant(PRIMARY, primary, 100.0 - percent),
                                  Variant(CANARY, canary, float(percent))), None, key)
        raw = data.get("variants")
        if not isinstance(raw, list) or len(raw) < 2:
            raise InvalidInput(f"{where}.variants: a split needs a list of at least two "
                               f"{{name, model, weight}} objects")
        variants = []
        for i, v in enumerate(raw):
            at = f"{where}.variants[{i}]"
            if not isinstance(v, Mapping):
                raise InvalidInput(f"{at}: expected an object with name, model and weight")
            name, weight = v.get("name"), v.get("weight")
            if not isinstance(name, str) or not name.isidentifier():
                raise InvalidInput(f"{at}.name: must be an identifier like 'a', got {name!r}")
            # NaN and inf (which JSON parsers accept) would break the router's bounds.
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
                    0 <= weight <= sys.float_info.max):
                raise InvalidInput(f"{at}.weight: must be a finite number >= 0, got {weight!r}")
            variants.append(Variant(name, _model_ref(v.get("model"), f"{at}.model"),
                                    float(weight)))
        names = [v.name for v in variants]
        if len(set(names)) != len(names) or SHADOW in names:
            raise InvalidInput(f"{where}.variants: names must be unique and not 'shadow': {names}")
        total = sum(v.weight for v in variants)
        if total <= 0:
            raise InvalidInput(f"{where}.variants: the weights add up to 0")
        if total == math.inf:
            raise InvalidInput(f"{where}.variants: the weights are too large; use percentages")
        return cls("split", tuple(variants), None, key)

    def to_dict(self) -> dict[str, Any]:
        primary = self.variants[0].model
        if self.kind == "single":
            return {"kind": "single", "model": primary}
        if self.kind == "shadow":
            assert self.shadow is not None
            return {"kind": "shadow", "model": primary, "shadow": self.shadow.model}
        if self.kind == "canary":
            return {"kind": "canary", "model": primary, "canary": self.variants[1].model,
                    "percent": self.variants[1].weight, "key": self.key}
        return {"kind": "split", "key": self.key, "variants": [
            {"name": v.name, "model": v.model, "weight": v.weight} for v in self.variants]}

    # ------------------------------------------------------------------ helpers
    @property
    def all_variants(self) -> tuple[Variant, ...]:
        return (*self.variants, self.shadow) if self.shadow else self.variants

    def with_models(self, models: Mapping[str, str]) -> TrafficPlan:
        """The same plan with variant models replaced by name (e.g. pinned versions)."""
        def swap(v: Variant) -> Variant:
            return Variant(v.name, models.get(v.name, v.model), v.weight)
        return TrafficPlan(self.kind, tuple(swap(v) for v in self.variants),
                           swap(self.shadow) if self.shadow else None, self.key)

    def describe(self) -> str:
        if self.kind == "single":
            return self.variants[0].model
        if self.kind == "shadow":
            assert self.shadow is not None
            return f"{self.variants[0].model} (shadow: {self.shadow.model})"
        total = sum(v.weight for v in self.variants)
        shares = ", ".join(f"{v.name}={v.model} {100 * v.weight / total:g}%"
                           for v in self.variants)
        return shares + (f" (sticky on {self.key!r})" if self.key else "")


class Router:
    """Picks a variant index per request or per row; pure and cheap (no I/O)."""

    def __init__(self, weights: Sequence[float], key: str | None = None,
                 rng: random.Random | None = None) -> None:
        total = float(sum(weights))
        if not 0 < total < math.inf:  # also NaN
            raise InvalidInput(f"a router needs finite weights, at least one positive: {weights}")
        bounds, acc = [], 0.0
        for w in weights:
            acc += w / total
            bounds.append(acc)
        # Rounding can leave the sum just under 1: the last positive weight takes the rest,
        # so zero-weight variants after it are never picked.
        last = max(i for i, w in enumerate(weights) if w > 0)
        bounds[last:] = [1.0] * (len(bounds) - last)
        self.bounds = bounds
        self.key = key
        self._random = (rng or random.Random()).random

    def _pick(self, u: float) -> int:
        for i, bound in enumerate(self.bounds):
            if u < bound:
                return i
        return len(self.bounds) - 1

    def pick_request(self) -> int:
        """One draw for a whole request (no key)."""
        return 0 if len(self.bounds) == 1 else self._pick(self._random())

    def pick_rows(self, keys: Sequence[Any]) -> list[int]:
        """A sticky choice per row: the same key value always lands on the same variant."""
        return [self._pick(bucket(k) / _BUCKETS) for k in keys]


def bucket(value: Any) -> int:
    """A stable bucket in [0, 10000) for a key value (CRC32, not Python's salted hash)."""
    # surrogatepass: a lone surrogate (refused by validation later) must not crash routing.
    return zlib.crc32(str(value).encode("utf-8", "surrogatepass")) % _BUCKETS


def _model_ref(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}: expected a model reference like 'churn@champion' or "
                           f"'churn/3', got {value!r}")
    try:
        parse_model_uri(value)
    except InvalidInput as exc:  # say which field holds the malformed reference
        raise InvalidInput(f"{where}: {exc}") from None
    return value.strip()


def _key(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where}.key: must be a field name, got {value!r}")
    return value
