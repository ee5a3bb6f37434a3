"""RayExecutor against a real Ray cluster (``ray_cluster``: 2 CPUs on 127.0.0.1).

No timing assertions: concurrency and queueing are checked from the start and end
timestamps the tasks record, and "killed" from the worker's pid and a marker file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from pathlib import Path

import pytest

from ratchet.errors import ConfigError, InvalidInput, StepTimeout
from ratchet.executors import Resources, resolve_executor
from ratchet.executors.ray import RayExecutor
from tests.executors.conftest import (
    RayHead,
    descendant_pids,
    is_loopback,
    kill_all,
    listening_addresses,
    running,
)

TASK_WAIT_S = 120  # generous: the first task on a fresh cluster starts a worker process


class DataProblem(Exception):
    """A user exception type that only exists in this module (pickled by reference)."""

    def __init__(self, message: str, column: str) -> None:
        super().__init__(message, column)
        self.column = column


def add_one(x: int) -> int:
    return x + 1


def fail_on_column() -> None:
    raise DataProblem("column has nulls", "age")


def record_interval(seconds: float) -> tuple[float, float, int]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time(), os.getpid()


def task_context() -> dict[str, object]:
    import ray

    context = ray.get_runtime_context()
    return {"resources": context.get_assigned_resources(), "name": context.get_task_name(),
            "pid": os.getpid()}


@pytest.fixture
def executor(ray_cluster: str) -> Iterator[RayExecutor]:
    ex = RayExecutor(ray_cluster)
    yield ex
    ex.shutdown()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def test_results_come_back(executor: RayExecutor) -> None:
    factor = 3
    futures = [executor.submit(lambda i=i: add_one(i) * factor, name=f"add {i}")
               for i in range(4)]
    assert [f.result(timeout=TASK_WAIT_S) for f in futures] == [3, 6, 9, 12]
    assert executor.submit(dict, name="empty").result(timeout=TASK_WAIT_S) == {}


def test_exception_keeps_its_type_and_the_worker_traceback(executor: RayExecutor) -> None:
    future = executor.submit(fail_on_column, name="validate")
    with pytest.raises(DataProblem) as caught:
        future.result(timeout=TASK_WAIT_S)
    error = caught.value
    assert type(error) is DataProblem  # not Ray's RayTaskError(DataProblem) wrapper
    assert error.column == "age"
    assert error.args == ("column has nulls", "age")
    notes = "\n".join(getattr(error, "__notes__", []))
    assert "'validate'" in notes
    assert "in fail_on_column" in notes  # the user's frame, from the worker


def test_builtin_exceptions_keep_their_type(executor: RayExecutor) -> None:
    future = executor.submit(lambda: {}["missing"], name="lookup")
    with pytest.raises(KeyError) as caught:
        future.result(timeout=TASK_WAIT_S)
    assert type(caught.value) is KeyError


def test_tasks_run_concurrently(executor: RayExecutor) -> None:
    assert executor.parallelism == 2
    futures = [executor.submit(lambda: record_interval(1.0), name=f"sleep {i}")
               for i in range(2)]
    (start_a, end_a, pid_a), (start_b, end_b, pid_b) = (
        f.result(timeout=TASK_WAIT_S) for f in futures)
    assert pid_a != pid_b
    assert max(start_a, start_b) < min(end_a, end_b), "the two tasks did not overlap"


def test_timeout_kills_the_task(executor: RayExecutor, tmp_path: Path) -> None:
    pid_file, marker = tmp_path / "pid", tmp_path / "finished"
    sleep_s = 2.0

    def slow() -> str:
        pid_file.write_text(str(os.getpid()))
        time.sleep(sleep_s)
        marker.write_text("the task was not killed")
        return "done"

    future = executor.submit(slow, timeout=0.5, name="step 'slow'")
    with pytest.raises(StepTimeout, match="step 'slow' did not finish within its timeout"):
        future.result(timeout=TASK_WAIT_S)
    timed_out_at = time.monotonic()
    if pid_file.exists():  # (under heavy load the kill can come before the first line)
        pid = int(pid_file.read_text())
        wait_for(lambda: not pid_alive(pid), 30, f"the timed-out task's worker {pid} to die")
    time.sleep(max(0.0, timed_out_at + sleep_s + 0.5 - time.monotonic()))
    assert not marker.exists()


def test_timeout_counts_from_the_start_not_the_queue(executor: RayExecutor) -> None:
    blockers = [executor.submit(lambda: record_interval(3.0), name=f"blocker {i}")
                for i in range(2)]
    queued = executor.submit(lambda: record_interval(0.0), timeout=2.0, name="queued")
    start, _, _ = queued.result(timeout=TASK_WAIT_S)  # no StepTimeout after 3 s in queue
    ends = [f.result(timeout=TASK_WAIT_S)[1] for f in blockers]
    assert start >= min(ends) - 0.05, "the queued task did not wait for a free CPU"


def test_resources_reach_ray(executor: RayExecutor) -> None:
    context = executor.submit(task_context, resources=Resources(cpus=2, memory=2**20),
                              name="step 'two cpus'").result(timeout=TASK_WAIT_S)
    assert context["name"] == "step 'two cpus'"
    resources = context["resources"]
    assert isinstance(resources, dict)
    assert resources["CPU"] == 2.0
    assert resources["memory"] == 2**20
    light = executor.submit(task_context, resources=Resources(cpus=0.5),
                            name="half").result(timeout=TASK_WAIT_S)
    assert light["resources"] == {"CPU": 0.5}


@pytest.mark.parametrize(("resources", "message"), [
    (Resources(cpus=3), "CPU=3"),
    (Resources(gpus=1), "GPU=1"),
    (Resources(memory=2**50), "memory=1.05e\\+06 GiB"),
])
def test_infeasible_resources_are_refused(executor: RayExecutor, resources: Resources,
                                          message: str) -> None:
    with pytest.raises(InvalidInput, match=f"'big'.*{message}.*queue it forever"):
        executor.submit(lambda: 1, resources=resources, name="big")


def test_code_on_a_driver_sys_path_entry_reaches_workers(
        executor: RayExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A module importable only through a sys.path entry the driver added (as a user's
    # project or a test directory is): functions in it are pickled by reference.
    name = f"ratchet_ray_probe_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import sys

        def where():
            return __name__, [p for p in sys.path if "ratchet_ray_probe" not in p]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    module = __import__(name)
    module_name, _ = executor.submit(module.where, name="probe").result(timeout=TASK_WAIT_S)
    assert module_name == name


def test_unpicklable_task_is_refused_before_submitting(executor: RayExecutor) -> None:
    lock = threading.Lock()
    with pytest.raises(InvalidInput, match="'holds a lock' cannot be sent to Ray workers"):
        executor.submit(lambda: lock.locked(), name="holds a lock")


def test_shutdown_cancels_queued_tasks_and_waits_for_running_ones(ray_cluster: str,
                                                                  tmp_path: Path) -> None:
    marker = tmp_path / "queued-ran"
    ex = RayExecutor(ray_cluster)
    running = [ex.submit(lambda: record_interval(2.0), name=f"running {i}") for i in range(2)]
    # wait until both CPUs are busy, so the next task is certainly queued
    wait_for(lambda: all(f.running() for f in running), TASK_WAIT_S, "the tasks to start")
    queued = ex.submit(lambda: marker.write_text("ran"), name="queued")
    ex.shutdown()
    assert [f.done() for f in running] == [True, True]
    assert all(len(f.result()) == 3 for f in running)
    assert queued.cancelled()
    with pytest.raises(CancelledError):
        queued.result()
    time.sleep(0.5)
    assert not marker.exists()


def test_future_cancel_stops_a_queued_task(executor: RayExecutor, tmp_path: Path) -> None:
    marker = tmp_path / "queued-ran"
    running = [executor.submit(lambda: record_interval(2.0), name=f"busy {i}")
               for i in range(2)]
    wait_for(lambda: all(f.running() for f in running), TASK_WAIT_S, "the tasks to start")
    queued = executor.submit(lambda: marker.write_text("ran"), name="queued")
    assert queued.cancel()
    for f in running:
        f.result(timeout=TASK_WAIT_S)
    # the freed CPUs would have run the queued task by now, had it not been cancelled
    assert executor.submit(lambda: 1, name="after").result(timeout=TASK_WAIT_S) == 1
    assert not marker.exists()


def test_resolve_executor_with_an_address(ray_cluster: str) -> None:
    ex = resolve_executor(f"ray:{ray_cluster}")
    try:
        assert isinstance(ex, RayExecutor)
        assert ex.describe() == f"ray({ray_cluster})"
        assert ex.submit(lambda: add_one(41), name="answer").result(timeout=TASK_WAIT_S) == 42
        assert ex.parallelism == 2
        assert ex.describe() == f"ray({ray_cluster})"
    finally:
        ex.shutdown()


def test_ray_address_from_the_environment(ray_cluster: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster)
    with resolve_executor("ray") as ex:
        assert ex.submit(lambda: "hi", name="env").result(timeout=TASK_WAIT_S) == "hi"
        assert ex.describe() == f"ray({ray_cluster})"


def test_executors_share_the_process_connection(ray_cluster: str) -> None:
    first, second = RayExecutor(ray_cluster), RayExecutor(f"localhost:{ray_cluster.split(':')[1]}")
    try:
        assert first.submit(lambda: 1, name="a").result(timeout=TASK_WAIT_S) == 1
        assert second.submit(lambda: 2, name="b").result(timeout=TASK_WAIT_S) == 2
        first.shutdown()  # the second one still works: the connection is shared
        assert second.submit(lambda: 3, name="c").result(timeout=TASK_WAIT_S) == 3
    finally:
        first.shutdown()
        second.shutdown()


def test_a_second_cluster_in_one_process_is_refused(executor: RayExecutor) -> None:
    assert executor.submit(lambda: 1, name="a").result(timeout=TASK_WAIT_S) == 1
    other = RayExecutor("127.0.0.1:1")
    with pytest.raises(ConfigError, match="one cluster per process"):
        other.submit(lambda: 1, name="b")


def test_unreachable_address_fails_fast() -> None:
    ex = RayExecutor("127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(ConfigError, match=r"no Ray cluster answers at 127\.0\.0\.1:1"):
        ex.submit(lambda: 1, name="nowhere")
    ex.shutdown()  # nothing to release


def test_the_test_cluster_listens_on_loopback_only(ray_head: RayHead,
                                                   executor: RayExecutor) -> None:
    executor.submit(lambda: 1, name="warm").result(timeout=TASK_WAIT_S)  # start workers
    addresses = listening_addresses(ray_head.pids() | {os.getpid()})
    assert addresses, "found no listening sockets of the Ray cluster"
    assert all(is_loopback(ip) for ip in addresses), addresses


def test_started_for_you_cluster_is_local_and_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_temp_dir: Path) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # Ray writes a token for the local clusters it starts into ~/.ray and sets
    # RAY_AUTH_MODE in this process: keep both out of the real home and environment.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(short_temp_dir))
    before = descendant_pids(os.getpid())
    started: set[int] = set()
    ex = RayExecutor(num_cpus=1)
    try:
        assert ex.describe() == "ray(local)"
        assert ex.submit(lambda: add_one(1), name="local").result(timeout=TASK_WAIT_S) == 2
        assert ex.parallelism == 1
        assert ex.describe().startswith("ray(127.0.0.1:")
        # the session cluster runs in its own session: what is new in ours is this one
        started = {pid for pid in descendant_pids(os.getpid()) - before
                   if _session_of(pid) == os.getsid(0)}
        assert started, "found no processes of the local cluster"
        addresses = listening_addresses(started | {os.getpid()})
        assert addresses and all(is_loopback(ip) for ip in addresses), addresses
    finally:
        ex.shutdown()
        deadline = time.monotonic() + 30
        while any(running(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        leaked = {pid for pid in started if running(pid)}
        kill_all(lambda: {pid for pid in started if running(pid)}, timeout=10)
    assert not leaked, f"processes {sorted(leaked)} of the local cluster outlived shutdown()"


def test_import_ratchet_does_not_import_ray() -> None:
    code = ("import sys, ratchet, ratchet.executors, ratchet.executors.ray; "
            "ratchet.executors.resolve_executor('local'); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_missing_ray_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    with pytest.raises(ConfigError, match=r"pip install 'ratchet-mlops\[ray\]'"):
        RayExecutor()
    with pytest.raises(ConfigError, match=r"pip install 'ratchet-mlops\[ray\]'"):
        resolve_executor("ray:127.0.0.1:6379")


def test_invalid_arguments() -> None:
    with pytest.raises(InvalidInput, match="num_cpus="):
        RayExecutor(num_cpus=0)
    with pytest.raises(InvalidInput, match="address="):
        RayExecutor("  ")
    ex = RayExecutor("127.0.0.1:1")
    with pytest.raises(InvalidInput, match="timeout="):
        ex.submit(lambda: 1, timeout=0)
    with pytest.raises(InvalidInput, match="callable"):
        ex.submit(42)  # type: ignore[arg-type]


@pytest.fixture
def short_temp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rt-ray-"))  # short: Ray's socket paths live in it
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None
