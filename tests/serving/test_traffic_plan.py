from __future__ import annotations

import math
import random
import subprocess
import sys
import zlib
from collections import Counter
from typing import Any

import pytest

from ratchet.errors import InvalidInput
from ratchet.serving.traffic_plan import (
    CANARY,
    PRIMARY,
    SHADOW,
    Router,
    TrafficPlan,
    Variant,
    bucket,
)

RUN_ID = "0123456789abcdef0123456789abcdef"

PLANS: list[dict[str, Any]] = [
    {"kind": "single", "model": "churn@champion"},
    {"kind": "single", "model": f"runs:/{RUN_ID}/model"},
    {"kind": "split", "key": None, "variants": [
        {"name": "a", "model": "churn/3", "weight": 50.0},
        {"name": "b", "model": "churn/4", "weight": 50.0}]},
    {"kind": "split", "key": "customer_id", "variants": [
        {"name": "control", "model": "models:/churn/3", "weight": 80.0},
        {"name": "treat_1", "model": "churn@challenger", "weight": 20.0},
        {"name": "drained", "model": "churn/latest", "weight": 0.0}]},
    {"kind": "shadow", "model": "churn@champion", "shadow": "churn/7"},
    {"kind": "canary", "model": "churn@champion", "canary": "churn/7", "percent": 10.0,
     "key": None},
    {"kind": "canary", "model": "churn/1", "canary": "churn/2", "percent": 0.0,
     "key": "user"},
    {"kind": "canary", "model": "churn/1", "canary": "churn/2", "percent": 100.0,
     "key": None},
]


def invalid(data: Any, *fragments: str) -> str:
    with pytest.raises(InvalidInput) as info:
        TrafficPlan.from_dict(data)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# ----------------------------------------------------------------------------- JSON
@pytest.mark.parametrize("data", PLANS, ids=lambda d: d["kind"])
def test_round_trip(data: dict[str, Any]) -> None:
    plan = TrafficPlan.from_dict(data)
    assert plan.kind == data["kind"]
    assert plan.to_dict() == data
    again = TrafficPlan.from_dict(plan.to_dict())
    assert again == plan
    assert hash(again) == hash(plan)  # frozen: usable as a dict key / cache key


def test_single_plan() -> None:
    plan = TrafficPlan.single("  churn@champion ")
    assert plan.variants == (Variant(PRIMARY, "churn@champion", 1.0),)
    assert plan.shadow is None and plan.key is None
    assert plan.to_dict() == {"kind": "single", "model": "churn@champion"}
    assert plan.all_variants == plan.variants


def test_split_from_mapping_names_variants_a_b_c() -> None:
    plan = TrafficPlan.split({"churn/3": 70, "churn/4": 20, "churn/5": 10}, key="customer_id")
    assert [(v.name, v.model, v.weight) for v in plan.variants] == [
        ("a", "churn/3", 70.0), ("b", "churn/4", 20.0), ("c", "churn/5", 10.0)]
    assert plan.key == "customer_id"
    assert TrafficPlan.from_dict(plan.to_dict()) == plan


def test_split_from_tuples_keeps_names() -> None:
    plan = TrafficPlan.split([("old", "churn/3", 1), ("new", "churn/4", 3)])
    assert [(v.name, v.model, v.weight) for v in plan.variants] == [
        ("old", "churn/3", 1.0), ("new", "churn/4", 3.0)]
    assert plan.key is None
    assert all(isinstance(v.weight, float) for v in plan.variants)


def test_split_from_a_large_mapping_names_past_z() -> None:
    plan = TrafficPlan.split({f"churn/{i + 1}": 1 for i in range(28)})
    names = [v.name for v in plan.variants]
    assert names[:3] == ["a", "b", "c"] and names[25] == "z"
    assert names[26:] == ["v26", "v27"]


def test_shadowed_plan() -> None:
    plan = TrafficPlan.shadowed("churn@champion", "churn/7")
    assert plan.kind == "shadow"
    assert plan.variants == (Variant(PRIMARY, "churn@champion", 1.0),)
    assert plan.shadow == Variant(SHADOW, "churn/7", 0.0)
    assert plan.all_variants == (*plan.variants, plan.shadow)
    assert plan.to_dict() == {"kind": "shadow", "model": "churn@champion", "shadow": "churn/7"}


def test_canary_plan() -> None:
    plan = TrafficPlan.canary("churn@champion", "churn/7", 10, key="user")
    assert plan.variants == (Variant(PRIMARY, "churn@champion", 90.0),
                             Variant(CANARY, "churn/7", 10.0))
    assert plan.key == "user" and plan.shadow is None
    assert plan.to_dict() == {"kind": "canary", "model": "churn@champion", "canary": "churn/7",
                              "percent": 10.0, "key": "user"}


@pytest.mark.parametrize("percent", [0, 0.5, 33.3, 100])
def test_canary_percent_bounds_are_inclusive(percent: float) -> None:
    plan = TrafficPlan.canary("churn/1", "churn/2", percent)
    assert plan.variants[1].weight == percent
    assert plan.variants[0].weight == pytest.approx(100 - percent)


def test_model_references_are_stripped() -> None:
    plan = TrafficPlan.from_dict({"kind": "shadow", "model": " churn/1 ", "shadow": "churn/2\n"})
    assert plan.variants[0].model == "churn/1" and plan.shadow is not None
    assert plan.shadow.model == "churn/2"


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("data", [None, [], "single", 3])
def test_not_an_object(data: Any) -> None:
    invalid(data, "plan:", "expected an object with a 'kind'")


@pytest.mark.parametrize("kind", [None, "", "ab", "Single", ["single"]])
def test_unknown_kind(kind: Any) -> None:
    invalid({"kind": kind, "model": "churn/1"}, "plan:", "'kind' must be one of",
            "single, split, shadow, canary", repr(kind))


def test_missing_kind() -> None:
    invalid({"model": "churn/1"}, "'kind' must be one of", "None")


@pytest.mark.parametrize(("data", "fields"), [
    ({"kind": "single", "model": "churn/1", "key": "user"}, "key"),
    ({"kind": "single", "model": "churn/1", "shadow": "churn/2"}, "shadow"),
    ({"kind": "shadow", "model": "churn/1", "shadow": "churn/2", "percent": 5}, "percent"),
    ({"kind": "shadow", "model": "churn/1", "shadow": "churn/2", "key": "k"}, "key"),
    ({"kind": "canary", "model": "churn/1", "canary": "churn/2", "percent": 5, "weight": 1},
     "weight"),
    ({"kind": "split", "variants": [], "model": "churn/1", "zzz": 1}, "model, zzz"),
])
def test_unknown_fields_are_named(data: dict[str, Any], fields: str) -> None:
    message = invalid(data, f"unknown field(s) for a {data['kind']} plan: {fields}", "known:")
    assert "kind" in message.split("known:")[1]


def test_custom_where_prefixes_messages() -> None:
    with pytest.raises(InvalidInput, match=r"^deployment churn\.plan\.model:"):
        TrafficPlan.from_dict({"kind": "single"}, where="deployment churn.plan")


@pytest.mark.parametrize(("data", "field"), [
    ({"kind": "single"}, "plan.model"),
    ({"kind": "single", "model": None}, "plan.model"),
    ({"kind": "single", "model": ""}, "plan.model"),
    ({"kind": "single", "model": "   "}, "plan.model"),
    ({"kind": "single", "model": 3}, "plan.model"),
    ({"kind": "shadow", "model": "churn/1"}, "plan.shadow"),
    ({"kind": "shadow", "shadow": "churn/1"}, "plan.model"),
    ({"kind": "canary", "model": "churn/1", "percent": 5}, "plan.canary"),
    ({"kind": "canary", "canary": "churn/1", "percent": 5}, "plan.model"),
])
def test_missing_model_names_the_field(data: dict[str, Any], field: str) -> None:
    invalid(data, f"{field}:", "expected a model reference like")


@pytest.mark.parametrize("ref", ["churn/abc", "churn/0", "churn/-1", "models:/", "a/b/c",
                                 "churn@", "runs:/nothex/model", "churn@a@b"])
def test_malformed_model_reference_names_the_field(ref: str) -> None:
    invalid({"kind": "single", "model": ref}, "plan.model:", repr(ref))
    invalid({"kind": "shadow", "model": "churn/1", "shadow": ref}, "plan.shadow:", repr(ref))
    invalid({"kind": "canary", "model": "churn/1", "canary": ref, "percent": 5},
            "plan.canary:", repr(ref))
    invalid({"kind": "split", "variants": [{"name": "a", "model": "churn/1", "weight": 1},
                                           {"name": "b", "model": ref, "weight": 1}]},
            "plan.variants[1].model:", repr(ref))


def test_constructors_validate_too() -> None:
    with pytest.raises(InvalidInput, match=r"^model: .*'churn/x'"):
        TrafficPlan.single("churn/x")
    with pytest.raises(InvalidInput, match=r"plan\.shadow"):
        TrafficPlan.shadowed("churn/1", "")
    with pytest.raises(InvalidInput, match=r"plan\.percent"):
        TrafficPlan.canary("churn/1", "churn/2", 101)
    with pytest.raises(InvalidInput, match=r"plan\.variants:"):
        TrafficPlan.split({"churn/1": 100})
    with pytest.raises(InvalidInput, match=r"plan\.key"):
        TrafficPlan.split({"churn/1": 1, "churn/2": 1}, key="")


@pytest.mark.parametrize("percent", [-1, -0.001, 100.001, 1000, True, False, None, "10",
                                     [10], float("nan"), float("inf"), float("-inf")])
def test_canary_percent_out_of_range_or_not_a_number(percent: Any) -> None:
    invalid({"kind": "canary", "model": "churn/1", "canary": "churn/2", "percent": percent},
            "plan.percent:", "must be a number from 0 to 100", repr(percent))


def test_canary_percent_missing() -> None:
    invalid({"kind": "canary", "model": "churn/1", "canary": "churn/2"}, "plan.percent:", "None")


def split(*variants: Any, **extra: Any) -> dict[str, Any]:
    return {"kind": "split", "variants": list(variants), **extra}


def var(name: Any = "a", model: Any = "churn/1", weight: Any = 1) -> dict[str, Any]:
    return {"name": name, "model": model, "weight": weight}


@pytest.mark.parametrize("variants", [None, [], [var()], {"a": var()}, "ab"])
def test_split_needs_two_variants(variants: Any) -> None:
    invalid({"kind": "split", "variants": variants}, "plan.variants:", "at least two")


def test_split_without_variants() -> None:
    invalid({"kind": "split"}, "plan.variants:", "at least two")


def test_split_variant_not_an_object() -> None:
    invalid(split(var(), "churn/2"), "plan.variants[1]:", "expected an object")


@pytest.mark.parametrize("name", [None, "", "1a", "a-b", "a b", 3, ["a"]])
def test_split_invalid_variant_name(name: Any) -> None:
    invalid(split(var("x"), var(name, "churn/2")), "plan.variants[1].name:", "identifier",
            repr(name))


def test_split_duplicate_names() -> None:
    invalid(split(var("a"), var("a", "churn/2")), "plan.variants:", "unique", "['a', 'a']")


def test_split_name_shadow_is_reserved() -> None:
    invalid(split(var("a"), var("shadow", "churn/2")), "plan.variants:", "not 'shadow'")


@pytest.mark.parametrize("weight", [-1, -0.5, None, "50", True, False, [1],
                                    float("nan"), float("inf"), float("-inf"),
                                    pytest.param(10**400, id="10**400")])
def test_split_invalid_weight(weight: Any) -> None:
    invalid(split(var("a"), var("b", "churn/2", weight)), "plan.variants[1].weight:",
            "finite number >= 0", repr(weight)[:20])


def test_split_weights_that_overflow_are_rejected() -> None:
    invalid(split(var("a", weight=1e308), var("b", "churn/2", 1e308)), "plan.variants:",
            "too large")


def test_split_all_zero_weights() -> None:
    invalid(split(var("a", weight=0), var("b", "churn/2", 0.0)), "plan.variants:", "add up to 0")


def test_split_some_zero_weights_are_fine() -> None:
    plan = TrafficPlan.from_dict(split(var("a", weight=0), var("b", "churn/2", 5)))
    assert [v.weight for v in plan.variants] == [0.0, 5.0]


@pytest.mark.parametrize("key", ["", 3, True, ["user"], {"a": 1}])
def test_bad_key(key: Any) -> None:
    invalid(split(var("a"), var("b", "churn/2"), key=key), "plan.key:", "field name", repr(key))
    invalid({"kind": "canary", "model": "churn/1", "canary": "churn/2", "percent": 5,
             "key": key}, "plan.key:", repr(key))


# ----------------------------------------------------------------------------- helpers
def test_with_models_pins_by_name() -> None:
    plan = TrafficPlan.canary("churn@champion", "churn@challenger", 20, key="user")
    pinned = plan.with_models({PRIMARY: "churn/3", CANARY: "churn/9"})
    assert [(v.name, v.model, v.weight) for v in pinned.variants] == [
        (PRIMARY, "churn/3", 80.0), (CANARY, "churn/9", 20.0)]
    assert pinned.kind == "canary" and pinned.key == "user"
    assert plan.variants[0].model == "churn@champion"  # the original is unchanged


def test_with_models_leaves_unnamed_variants_and_pins_the_shadow() -> None:
    plan = TrafficPlan.shadowed("churn@champion", "churn@next")
    assert plan.with_models({SHADOW: "churn/8"}) == TrafficPlan.shadowed("churn@champion",
                                                                         "churn/8")
    assert plan.with_models({}) == plan
    assert plan.with_models({"unrelated": "churn/1"}) == plan


def test_with_models_on_a_split() -> None:
    plan = TrafficPlan.split([("a", "churn@x", 1), ("b", "churn@y", 1)], key="k")
    pinned = plan.with_models({"b": "churn/2"})
    assert pinned.to_dict()["variants"] == [
        {"name": "a", "model": "churn@x", "weight": 1.0},
        {"name": "b", "model": "churn/2", "weight": 1.0}]
    assert pinned.key == "k"


def test_describe() -> None:
    assert TrafficPlan.single("churn@champion").describe() == "churn@champion"
    assert TrafficPlan.shadowed("churn/1", "churn/2").describe() == "churn/1 (shadow: churn/2)"
    assert TrafficPlan.canary("churn/1", "churn/2", 10).describe() == (
        "primary=churn/1 90%, canary=churn/2 10%")
    assert TrafficPlan.split({"churn/1": 1, "churn/2": 3}, key="user").describe() == (
        "a=churn/1 25%, b=churn/2 75% (sticky on 'user')")
    assert TrafficPlan.split([("x", "churn/1", 2), ("y", "churn/2", 0)]).describe() == (
        "x=churn/1 100%, y=churn/2 0%")


# ----------------------------------------------------------------------------- routing
def draw(router: Router, n: int) -> Counter[int]:
    return Counter(router.pick_request() for _ in range(n))


@pytest.mark.parametrize("weights", [[50, 50], [90, 10], [1, 2, 3, 4], [70, 0, 30],
                                     [0, 25, 75], [5, 5, 0]])
def test_request_weights_are_respected(weights: list[float]) -> None:
    n = 20_000
    counts = draw(Router(weights, rng=random.Random(1234)), n)
    total = sum(weights)
    for i, w in enumerate(weights):
        p = w / total
        if p == 0:
            assert counts[i] == 0, (weights, counts)
            continue
        # 5 standard deviations: a spurious failure is out of the question for a fixed seed,
        # and a router that ignores the weights is far outside.
        sd = math.sqrt(n * p * (1 - p))
        assert abs(counts[i] - n * p) <= 5 * sd + 1, (weights, i, counts)
    assert set(counts) <= set(range(len(weights)))


def test_seeded_routers_agree() -> None:
    a = Router([1, 1, 1], rng=random.Random(7))
    b = Router([1, 1, 1], rng=random.Random(7))
    assert [a.pick_request() for _ in range(200)] == [b.pick_request() for _ in range(200)]


def test_single_variant_router_always_answers_zero() -> None:
    router = Router([1.0], rng=random.Random(0))
    assert {router.pick_request() for _ in range(100)} == {0}
    assert set(router.pick_rows(range(100))) == {0}


def test_zero_weight_variants_are_never_picked_even_at_the_edge() -> None:
    # 7 equal weights add up to 0.9999999999999998, not 1: the drained last variant must
    # not get the remainder.
    weights = [1.0] * 7 + [0.0]
    router = Router(weights)
    edge = math.nextafter(1.0, 0.0)  # the largest value random() can return
    assert router._pick(edge) == 6
    assert router._pick(0.0) == 0
    leading = Router([0.0, 1.0, 0.0])
    assert leading._pick(0.0) == 1 and leading._pick(edge) == 1
    assert set(leading.pick_rows([f"c{i}" for i in range(2000)])) == {1}
    for rng_seed in range(3):
        r = Router([0, 3, 0, 2, 0], rng=random.Random(rng_seed))
        assert set(draw(r, 5000)) == {1, 3}


@pytest.mark.parametrize("weights", [[], [0], [0, 0], [float("nan")], [1, float("nan")],
                                     [float("inf"), 1]])
def test_router_rejects_weights_it_cannot_use(weights: list[float]) -> None:
    with pytest.raises(InvalidInput, match="router needs"):
        Router(weights)


def test_pick_rows_is_sticky_and_identical_across_routers() -> None:
    keys = [f"customer-{i}" for i in range(5000)]
    first = Router([50, 50], key="customer_id", rng=random.Random(1)).pick_rows(keys)
    second = Router([50, 50], key="customer_id", rng=random.Random(2)).pick_rows(keys)
    assert first == second
    # Within one request, repeated keys land on the same variant.
    again = Router([50, 50]).pick_rows(keys[:10] * 3)
    assert again == first[:10] * 3
    # Roughly balanced by the hash (a loose bound: the hash is fixed, not random).
    assert 2000 < sum(first) < 3000


def test_pick_rows_follows_the_weights() -> None:
    keys = list(range(20_000))
    picks = Counter(Router([90, 10]).pick_rows(keys))
    assert 0.08 * 20_000 < picks[1] < 0.12 * 20_000
    assert Router([100, 0]).pick_rows(keys) == [0] * len(keys)
    assert Router([0, 100]).pick_rows(keys) == [1] * len(keys)


def test_pick_rows_growing_a_canary_only_moves_keys_to_it() -> None:
    # Buckets are fixed, so going from 10% to 20% keeps every 10% key on the canary.
    keys = [f"u{i}" for i in range(3000)]
    at10 = Router([90, 10]).pick_rows(keys)
    at20 = Router([80, 20]).pick_rows(keys)
    assert all(b == 1 for a, b in zip(at10, at20, strict=True) if a == 1)
    assert sum(at20) > sum(at10)


def test_bucket_is_crc32_based_and_in_range() -> None:
    assert bucket("customer-42") == zlib.crc32(b"customer-42") % 10_000
    assert bucket(42) == bucket("42")
    assert all(0 <= bucket(f"k{i}") < 10_000 for i in range(1000))
    assert len({bucket(f"k{i}") for i in range(1000)}) > 900


def test_bucket_is_the_same_in_other_processes() -> None:
    code = ("from ratchet.serving.traffic_plan import bucket\n"
            "print(bucket('customer-42'), bucket(12345), bucket('é'))")
    outputs = set()
    for seed in ("0", "1", "random"):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True, env={"PYTHONHASHSEED": seed, "PATH": ""})
        outputs.add(done.stdout.strip())
    assert outputs == {f"{bucket('customer-42')} {bucket(12345)} {bucket('é')}"}
