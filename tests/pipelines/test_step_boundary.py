"""The step boundary: what the user's function raises is a step failure (retried as its
``retry_on`` says); what ratchet's own storage raises around it (loading inputs, storing
outputs) is not: it is reported as ``StepStorageFailed`` and never retried. Every failure
here is real: a removed artifact store, a corrupted blob, a value that cannot be stored.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import ratchet
from ratchet.config import load_settings
from ratchet.errors import (
    IntegrityError,
    InvalidInput,
    StepFailed,
    StepStorageFailed,
)
from ratchet.pipelines import get_pipeline_run
from ratchet.tracking import fluent

BIG = 20_000  # float64 values: 160 kB, past the inline limit, so the blob store holds them


def _artifacts_root() -> Path:
    return Path(load_settings().artifacts_uri)


def test_a_removed_artifact_store_is_reported_as_storage_not_retried(local_workspace_on: Path
                                                                      ) -> None:
    calls: list[int] = []
    root = _artifacts_root()

    @ratchet.step(retries=3, backoff=0)
    def produce(n: int) -> np.ndarray:
        calls.append(n)
        print("computed")
        # The artifact store goes away while the step runs: its directory is replaced by
        # a file, so ratchet cannot write the output (nor the captured output).
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        root.write_text("not a directory any more")
        return np.arange(float(n))

    @ratchet.step
    def after(values: np.ndarray) -> float:
        return float(values.sum())

    @ratchet.pipeline
    def p(n: int = BIG):
        return after(produce(n))

    with pytest.raises(StepStorageFailed) as err:
        p.run()
    failure = err.value
    assert not isinstance(failure, StepFailed)  # the step's code did not fail
    assert calls == [BIG]  # ran once: a storage failure is not retried
    assert failure.step == "produce" and failure.phase == "store the outputs"
    assert failure.http_status == 503
    assert isinstance(failure.__cause__, OSError)  # the store's own error, kept
    assert "ratchet could not store the outputs of step 'produce'" in str(failure)
    assert "did not fail" in str(failure) and f"resume {failure.run_id}" in str(failure)
    run = get_pipeline_run(failure.run_id)
    assert run.status == "failed"
    assert {s.node: (s.status, s.attempts) for s in run.steps} == {
        "produce": ("failed", 1), "after": ("skipped", 0)}
    record = run.step("produce").error or ""
    assert record.startswith("ratchet could not store the outputs of this step")
    assert "OSError" in record or "Error" in record.splitlines()[-1]
    step_run = fluent.client().get_run(run.step("produce").tracking_run_id or "")
    assert step_run.status == "failed"


@pytest.fixture
def table_gone(local_workspace_on: Path) -> Iterator[tuple[str, str]]:
    """(database URL, table) for a step to take away; put back afterwards."""
    from sqlalchemy import create_engine, text

    url = load_settings().db_url
    yield url, "dataset_versions"
    engine = create_engine(url)
    with engine.begin() as conn:
        if conn.dialect.has_table(conn, "dataset_versions_gone"):
            conn.execute(text("ALTER TABLE dataset_versions_gone RENAME TO dataset_versions"))
    engine.dispose()


def test_a_metadata_store_failure_is_reported_as_storage_not_retried(
        table_gone: tuple[str, str]) -> None:
    import pandas as pd
    from sqlalchemy import create_engine, text

    url, table = table_gone
    calls: list[int] = []

    @ratchet.step(dataset="features", retries=2, backoff=0)
    def features(n: int) -> pd.DataFrame:
        calls.append(n)
        # The database loses the table of dataset versions while the step runs.
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_gone"))
        engine.dispose()
        return pd.DataFrame({"x": range(n)})

    @ratchet.pipeline
    def p(n: int = 5):
        return features(n)

    with pytest.raises(StepStorageFailed) as err:
        p.run()
    failure = err.value
    assert calls == [5]
    assert failure.step == "features" and failure.phase == "store the outputs"
    assert table in str(failure.__cause__)  # the database's own error, kept
    run = get_pipeline_run(failure.run_id)  # the rest of the store still records the run
    assert run.status == "failed" and run.step("features").attempts == 1
    assert "ratchet could not store the outputs" in (run.step("features").error or "")


def test_a_corrupted_input_is_reported_as_storage_not_retried(workspace: Path) -> None:
    calls: list[int] = []

    @ratchet.step
    def make(n: int) -> np.ndarray:
        return np.arange(float(n))

    @ratchet.step(retries=2, backoff=0)
    def total(values: np.ndarray, k: int) -> float:
        calls.append(k)
        return float(values.sum()) * k

    @ratchet.pipeline
    def p(n: int = BIG, k: int = 1):
        return total(make(n), k)

    first = p.run()
    assert first.output == float(sum(range(BIG)))
    (_name, digest, size), = first.step("make").outputs[0].files
    blob = fluent.client().blobs.local_path(digest)
    assert blob is not None
    blob.chmod(0o644)
    blob.write_bytes(b"\0" * size)  # same size, other bytes: the store no longer holds it

    with pytest.raises(StepStorageFailed) as err:
        p.run(k=2)  # make is served from the cache; total must load its corrupted output
    failure = err.value
    assert failure.step == "total" and failure.phase == "load the inputs"
    assert isinstance(failure.__cause__, IntegrityError)
    assert calls == [1]  # the function never ran on the bad input, nor was it retried
    run = get_pipeline_run(failure.run_id)
    statuses = {s.node: (s.status, s.attempts) for s in run.steps}
    assert statuses == {"make": ("cached", 0), "total": ("failed", 1)}
    assert "ratchet could not load the inputs" in (run.step("total").error or "")
    assert "IntegrityError" in (run.step("total").error or "")


def test_the_users_exception_is_still_a_retried_step_failure(workspace: Path) -> None:
    calls: list[int] = []

    @ratchet.step(retries=2, backoff=0)
    def flaky(n: int) -> np.ndarray:
        calls.append(n)
        raise ConnectionError(f"the user's service is down (attempt {len(calls)})")

    @ratchet.pipeline
    def p(n: int = BIG):
        return flaky(n)

    with pytest.raises(StepFailed) as err:
        p.run()
    assert len(calls) == 3  # 1 + 2 retries
    assert isinstance(err.value.__cause__, ConnectionError)
    assert "failed after 3 attempt(s)" in str(err.value)
    record = get_pipeline_run(err.value.run_id).step("flaky")
    assert record.attempts == 3 and (record.error or "").startswith("Traceback")


def test_a_returned_value_ratchet_refuses_fails_the_step_once(workspace: Path) -> None:
    calls: list[int] = []

    @ratchet.step(outputs=("a", "b"), retries=3, backoff=0)
    def split(n: int) -> tuple[int, int, int]:
        calls.append(n)
        return n, n, n  # three values for two declared outputs

    @ratchet.pipeline
    def p(n: int = 1):
        a, _b = split(n)
        return a

    with pytest.raises(StepFailed) as err:
        p.run()
    assert not isinstance(err.value, StepStorageFailed)  # the step's fault, not the store's
    assert isinstance(err.value.__cause__, InvalidInput)
    assert "declares outputs=('a', 'b')" in str(err.value)
    assert calls == [1]  # the same code would return the same value: not retried
