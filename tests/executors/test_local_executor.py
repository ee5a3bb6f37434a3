"""LocalExecutor (threads and processes) and ``resolve_executor``.

Concurrency is shown by tasks that can only finish together (a barrier), never by
wall-clock thresholds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratchet.errors import InvalidInput, StepTimeout
from ratchet.executors import Executor, Resources, resolve_executor
from ratchet.executors.local import LocalExecutor

WAIT_S = 60


class ModelDiverged(Exception):
    """A user exception type defined in this module (pickled by reference)."""


def diverge() -> None:
    raise ModelDiverged("loss is nan at epoch 3")


def meet(mine: Path, other: Path) -> int:
    """Mark ``mine``, wait (at most a minute) for ``other``: returns this process's pid."""
    mine.touch()
    deadline = time.monotonic() + WAIT_S
    while not other.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other.name} never started: the tasks ran one at a time")
        time.sleep(0.01)
    return os.getpid()


@pytest.fixture
def threads() -> Iterator[LocalExecutor]:
    ex = LocalExecutor(workers=2)
    yield ex
    ex.shutdown()


@pytest.fixture
def processes() -> Iterator[LocalExecutor]:
    ex = LocalExecutor(workers=2, processes=True)
    yield ex
    ex.shutdown()


def test_threads_run_concurrently(threads: LocalExecutor) -> None:
    barrier = threading.Barrier(2, timeout=WAIT_S)  # broken unless both wait at once
    futures = [threads.submit(barrier.wait, name=f"t{i}") for i in range(2)]
    assert sorted(f.result(timeout=WAIT_S) for f in futures) == [0, 1]
    assert threads.parallelism == 2
    assert threads.describe() == "local(threads=2)"


def test_threads_run_in_this_process(threads: LocalExecutor) -> None:
    assert threads.submit(os.getpid).result(timeout=WAIT_S) == os.getpid()


def test_processes_run_a_closure(processes: LocalExecutor) -> None:
    factor = 7  # captured: the closure only travels because cloudpickle ships it by value

    def scaled() -> tuple[int, int]:
        return factor * 6, os.getpid()

    value, pid = processes.submit(scaled, name="closure").result(timeout=WAIT_S)
    assert value == 42
    assert pid != os.getpid()
    assert processes.describe() == "local(processes=2)"


def test_processes_run_concurrently(processes: LocalExecutor, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    futures = [processes.submit(lambda: meet(a, b)), processes.submit(lambda: meet(b, a))]
    pids = [f.result(timeout=WAIT_S) for f in futures]
    assert len(set(pids)) == 2


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_exceptions_propagate_with_their_type(mode: str, request: pytest.FixtureRequest) -> None:
    ex: LocalExecutor = request.getfixturevalue(mode)
    with pytest.raises(ModelDiverged, match="loss is nan"):
        ex.submit(diverge, name="train").result(timeout=WAIT_S)
    with pytest.raises(ZeroDivisionError):
        ex.submit(lambda: 1 / 0).result(timeout=WAIT_S)


def test_processes_report_an_exception_raised_in_a_closure(processes: LocalExecutor) -> None:
    column = "age"

    def check() -> None:
        raise KeyError(column)

    with pytest.raises(KeyError) as caught:
        processes.submit(check).result(timeout=WAIT_S)
    assert type(caught.value) is KeyError
    assert caught.value.args == ("age",)


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_timeout_raises_step_timeout(mode: str, request: pytest.FixtureRequest,
                                     tmp_path: Path) -> None:
    ex: LocalExecutor = request.getfixturevalue(mode)
    release = tmp_path / "release"

    def stuck() -> str:
        deadline = time.monotonic() + WAIT_S
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return "finished"

    future = ex.submit(stuck, timeout=0.2, name="step 'stuck'")
    with pytest.raises(StepTimeout, match="step 'stuck' did not finish within its timeout"):
        future.result(timeout=WAIT_S)
    release.touch()  # the work was left running; let it end so shutdown() is quick


def test_a_task_within_its_timeout_returns(threads: LocalExecutor) -> None:
    assert threads.submit(lambda: "ok", timeout=30).result(timeout=WAIT_S) == "ok"
    with pytest.raises(ValueError, match="bad"):
        threads.submit(lambda: int("bad"), timeout=30).result(timeout=WAIT_S)


def test_shutdown_then_reuse() -> None:
    ex = LocalExecutor(workers=1)
    assert ex.submit(lambda: 1).result(timeout=WAIT_S) == 1
    ex.shutdown()
    ex.shutdown()  # idempotent
    assert ex.submit(lambda: 2).result(timeout=WAIT_S) == 2  # a fresh pool
    ex.shutdown()


def test_context_manager_shuts_down() -> None:
    with LocalExecutor(workers=1) as ex:
        assert ex.submit(lambda: 3).result(timeout=WAIT_S) == 3
    assert isinstance(ex, LocalExecutor) and ex._pool is None


@pytest.mark.parametrize(("spec", "processes", "workers"), [
    ("local", False, os.cpu_count() or 1),
    ("threads", False, os.cpu_count() or 1),
    ("local:3", False, 3),
    ("processes", True, os.cpu_count() or 1),
    ("processes:2", True, 2),
    (" LOCAL:2", False, 2),
])
def test_resolve_executor_local_specs(spec: str, processes: bool, workers: int) -> None:
    ex = resolve_executor(spec)
    assert isinstance(ex, LocalExecutor)
    assert (ex.processes, ex.workers) == (processes, workers)


def test_resolve_executor_defaults_and_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RATCHET_EXECUTOR", raising=False)
    default = resolve_executor(None)
    assert isinstance(default, LocalExecutor) and not default.processes
    monkeypatch.setenv("RATCHET_EXECUTOR", "processes:2")
    from_env = resolve_executor(None)
    assert isinstance(from_env, LocalExecutor) and from_env.processes
    mine = LocalExecutor(workers=1)
    assert resolve_executor(mine) is mine


@pytest.mark.parametrize(("spec", "message"), [
    ("local:0", "positive integer"),
    ("local:-1", "positive integer"),
    ("local:two", "positive integer"),
    ("processes:", None),  # an empty count means the default
    ("bogus", "unknown executor 'bogus'"),
    ("", "unknown executor"),
])
def test_resolve_executor_parse_errors(spec: str, message: str | None) -> None:
    if message is None:
        assert isinstance(resolve_executor(spec), LocalExecutor)
        return
    with pytest.raises(InvalidInput, match=message):
        resolve_executor(spec)


def test_resolve_executor_rejects_other_types() -> None:
    with pytest.raises(InvalidInput, match="got int"):
        resolve_executor(4)  # type: ignore[arg-type]


def test_invalid_workers_and_resources() -> None:
    with pytest.raises(InvalidInput, match="workers="):
        LocalExecutor(workers=0)
    with pytest.raises(InvalidInput, match="cpus="):
        Resources(cpus=-1)
    with pytest.raises(InvalidInput, match="gpus="):
        Resources(gpus=True)
    with pytest.raises(InvalidInput, match="memory="):
        Resources(memory=0)
    assert Resources(cpus=0.5, memory=2**30).cpus == 0.5


def test_local_executor_is_an_executor() -> None:
    assert issubclass(LocalExecutor, Executor)
    assert LocalExecutor.name == "local"
