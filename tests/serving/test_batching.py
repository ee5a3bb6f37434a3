"""Micro-batching: concurrent requests share a model call, each gets its own rows back, and
a request that makes the model raise costs no other request anything."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path
from typing import Any

import httpx
import pytest

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.serving.batching import MicroBatcher
from ratchet.serving.served_model import ModelVersionRef, ServedModel
from tests.serving.conftest import ROW, churn_frame, running_server


def _served(registry: RegistryClient, version: int) -> ServedModel:
    return ServedModel(ModelVersionRef("churn", version),
                       registry.load(f"models:/churn/{version}"))


def _requests(n: int) -> list[dict[str, list[Any]]]:
    X, _ = churn_frame(n * 3, seed=7)
    return [{c: X[c].iloc[i * 3:i * 3 + 1 + i % 3].tolist() for c in X.columns}
            for i in range(n)]


def _same(got: list[Any], expected: list[Any]) -> bool:
    """Labels equal; probabilities equal to the last few bits (a matrix product over more
    rows may sum in another order)."""
    if len(got) != len(expected):
        return False
    for a, b in zip(got, expected, strict=True):
        if isinstance(a, BaseException) or a.keys() != b.keys():
            return False
        for name in a:
            if name.startswith("proba_"):
                if a[name] != pytest.approx(b[name], rel=1e-12, abs=1e-15):
                    return False
            elif a[name] != b[name]:
                return False
    return True


def _gather(batcher: MicroBatcher, model: ServedModel,
            requests: list[dict[str, list[Any]]]) -> list[Any]:
    async def run() -> list[Any]:
        try:
            return await asyncio.gather(
                *(batcher.predict(model, r, len(r["age"])) for r in requests),
                return_exceptions=True)
        finally:
            batcher.close()
    return asyncio.run(run())


def test_concurrent_requests_share_one_call_and_get_their_own_rows(
        churn_registry: RegistryClient) -> None:
    model = _served(churn_registry, 1)
    requests = _requests(20)
    expected = [model.predict(r) for r in requests]
    batcher = MicroBatcher(max_wait_ms=10_000, max_batch_rows=1_000)
    answers = _gather(batcher, model, requests)
    assert _same(answers, expected)
    # All 20 were runnable in the same loop pass: one call.
    assert batcher.calls == 1 and batcher.batched == 20

    # One request goes alone; the 19 sent after it share one more call.
    later = MicroBatcher(max_wait_ms=10_000, max_batch_rows=1_000)

    async def staggered() -> list[Any]:
        try:
            first = asyncio.ensure_future(later.predict(model, requests[0], 1))
            for _ in range(3):
                await asyncio.sleep(0)  # the first call is on its way
            assert later.calls == 1
            rest = await asyncio.gather(*(later.predict(model, r, len(r["age"]))
                                          for r in requests[1:]))
            return [await first, *rest]
        finally:
            later.close()

    assert _same(asyncio.run(staggered()), expected)
    assert later.calls == 2 and later.batched == 19


def test_batches_stop_at_max_rows_and_no_batching_is_one_call_each(
        churn_registry: RegistryClient) -> None:
    model = _served(churn_registry, 1)
    requests = _requests(12)  # 1, 2 or 3 rows each: 24 rows
    expected = [model.predict(r) for r in requests]
    capped = MicroBatcher(max_wait_ms=10_000, max_batch_rows=6)
    assert _same(_gather(capped, model, requests), expected)
    assert capped.calls >= 1 + (24 - 1) // 6
    unbatched = MicroBatcher(max_batch_rows=1)  # what --no-batching builds
    assert _same(_gather(unbatched, model, requests), expected)
    assert unbatched.calls == 12 and unbatched.batched == 0


def test_a_request_that_makes_the_model_raise_fails_alone(
        churn_registry: RegistryClient) -> None:
    model = _served(churn_registry, 3)  # its encoder raises on a plan it never saw
    requests = _requests(8)
    bad = {"age": [30], "income": [50.0], "plan": ["gold"]}
    requests.insert(4, bad)
    batcher = MicroBatcher(max_wait_ms=10_000, max_batch_rows=1_000)
    answers = _gather(batcher, model, requests)
    assert isinstance(answers[4], ValueError) and "gold" in str(answers[4])
    good = [a for i, a in enumerate(answers) if i != 4]
    assert _same(good, [model.predict(r) for i, r in enumerate(requests) if i != 4])
    assert batcher.calls == 1 and batcher.batched == 9  # together, then each alone


def test_served_concurrently_a_bad_request_never_fails_the_others(
        churn_registry: RegistryClient, serving_settings: Settings, tmp_path: Path) -> None:
    """End to end: v3 behind `ratchet serve` with unknown plans flagged (so they reach the
    model, which raises on them): under concurrent load every good request gets 200."""
    good_body = {"inputs": [ROW]}
    bad_body = {"inputs": [{**ROW, "plan": "gold"}]}
    with running_server(serving_settings, tmp_path, "churn/3", "--deployment", "churn3",
                        "--unknown-category", "flag", "--batch-wait-ms", "5") as url:
        def post(body: dict[str, Any]) -> int:
            with httpx.Client(base_url=url, timeout=30) as client:
                return sum(client.post("/predict", json=body).status_code == 200
                           for _ in range(10))

        bodies = [bad_body if i % 4 == 0 else good_body for i in range(16)]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            ok = list(pool.map(post, bodies))
        assert httpx.get(f"{url}/health/ready").status_code == 200
    assert ok == [0 if i % 4 == 0 else 10 for i in range(16)]


@pytest.mark.parametrize("wait, rows", [(-1.0, 8), (1.0, 0)])
def test_bad_settings_are_refused(wait: float, rows: int) -> None:
    with pytest.raises(ValueError):
        MicroBatcher(max_wait_ms=wait, max_batch_rows=rows)
