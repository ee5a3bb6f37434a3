"""RayExecutor against a real Ray cluster (``ray_cluster``: 2 CPUs on 127.0.0.1).

No timing assertions: concurrency and queueing are checked from the start and end
timestamps the tasks record, and "killed" from the worker's pid and a marker file.
"""

from __future__ import annotations

import json
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
from concurrent.futures import CancelledError, Future
from pathlib import Path
from typing import Any

import pytest

from ratchet.errors import ConfigError, InvalidInput, StepTimeout
from ratchet.executors import Resources, resolve_executor
from ratchet.executors.ray import RayExecutor
from tests.executors.conftest import (
    RayHead,
    is_loopback,
    kill_all,
    listening_addresses,
    running,
    session_pids,
)

ROOT = Path(__file__).resolve().parents[2]

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


def hold_until(release: Path, started: Path | None = None) -> tuple[float, float, int]:
    """Occupy a CPU until ``release`` exists (never for more than a minute)."""
    start = time.time()
    if started is not None:
        started.touch()
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return start, time.time(), os.getpid()


def occupy_both_cpus(executor: RayExecutor, release: Path) -> list[Future[Any]]:
    """Two tasks that hold the cluster's two CPUs until ``release`` is created."""
    holders: list[Future[Any]] = [
        executor.submit(lambda: hold_until(release), name=f"holder {i}") for i in range(2)]
    wait_for(lambda: all(f.running() for f in holders), TASK_WAIT_S, "both holders to start")
    return holders


def task_context() -> dict[str, object]:
    import ray

    context = ray.get_runtime_context()
    return {"resources": context.get_assigned_resources(), "name": context.get_task_name(),
            "pid": os.getpid()}


@pytest.fixture(scope="module")
def executor(ray_cluster: str) -> Iterator[RayExecutor]:
    # One connection for the module: every new connection is a new Ray job, whose
    # first tasks wait for fresh worker processes.
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

    def scaled(i: int) -> Callable[[], int]:
        return lambda: add_one(i) * factor  # a closure: shipped by value

    futures = [executor.submit(scaled(i), name=f"add {i}") for i in range(4)]
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
    table: dict[str, int] = {}
    future = executor.submit(lambda: table["missing"], name="lookup")
    with pytest.raises(KeyError) as caught:
        future.result(timeout=TASK_WAIT_S)
    assert type(caught.value) is KeyError


def test_tasks_run_concurrently(executor: RayExecutor, tmp_path: Path) -> None:
    assert executor.parallelism == 2
    # Each task marks its start, then waits for both marks: run one after the other,
    # the first would wait for a second that cannot start.
    marks = [tmp_path / "a", tmp_path / "b"]

    def meet(mine: Path, other: Path) -> tuple[float, float, int]:
        return hold_until(release=other, started=mine)

    futures = [executor.submit(lambda: meet(marks[0], marks[1]), name="a"),
               executor.submit(lambda: meet(marks[1], marks[0]), name="b")]
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


def test_timeout_counts_from_the_start_not_the_queue(executor: RayExecutor,
                                                    tmp_path: Path) -> None:
    release = tmp_path / "release"
    holders = occupy_both_cpus(executor, release)
    queued = executor.submit(lambda: record_interval(0.0), timeout=1.0, name="queued")
    time.sleep(2.0)  # queued for twice its timeout
    assert not queued.done()
    release.touch()
    start, _, _ = queued.result(timeout=TASK_WAIT_S)  # ran, no StepTimeout
    assert start >= min(f.result(timeout=TASK_WAIT_S)[1] for f in holders) - 0.05


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
    release, marker = tmp_path / "release", tmp_path / "queued-ran"
    ex = RayExecutor(ray_cluster)
    holders = occupy_both_cpus(ex, release)
    queued = ex.submit(lambda: marker.write_text("ran"), name="queued")
    closing = threading.Thread(target=ex.shutdown)
    closing.start()
    wait_for(queued.cancelled, 30, "shutdown() to cancel the queued task")
    assert closing.is_alive(), "shutdown() returned while tasks were still running"
    release.touch()
    closing.join(timeout=TASK_WAIT_S)
    assert not closing.is_alive()
    assert all(len(f.result(timeout=0)) == 3 for f in holders)
    with pytest.raises(CancelledError):
        queued.result(timeout=0)
    assert not marker.exists()


def test_future_cancel_stops_a_queued_task(executor: RayExecutor, tmp_path: Path) -> None:
    release, marker = tmp_path / "release", tmp_path / "queued-ran"
    holders = occupy_both_cpus(executor, release)
    queued = executor.submit(lambda: marker.write_text("ran"), name="queued")
    assert queued.cancel()
    release.touch()
    for f in holders:
        f.result(timeout=TASK_WAIT_S)
    # Ray runs tasks in submission order: had the queued task survived, it would have
    # run before this one
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


def test_the_test_cluster_listens_on_loopback_only(ray_head: RayHead,
                                                   executor: RayExecutor) -> None:
    executor.submit(lambda: 1, name="warm").result(timeout=TASK_WAIT_S)  # start workers
    addresses = listening_addresses(ray_head.pids() | {os.getpid()})
    assert addresses, "found no listening sockets of the Ray cluster"
    assert all(is_loopback(ip) for ip in addresses), addresses


# Run in a fresh process: Ray allows one cluster connection per process, and this one
# must start (and stop) its own cluster.
STARTED_FOR_YOU = """
import json, os
from ratchet.executors.ray import RayExecutor
from tests.executors.conftest import descendant_pids, listening_addresses

ex = RayExecutor(num_cpus=1)
report = {"before": ex.describe()}
report["value"] = ex.submit(lambda: 41 + 1, name="local").result(timeout=120)
report["parallelism"] = ex.parallelism
report["after"] = ex.describe()
pids = descendant_pids(os.getpid())
report["pids"] = sorted(pids)
report["listening"] = sorted(listening_addresses(pids | {os.getpid()}))
ex.shutdown()
print(json.dumps(report))
"""


def test_started_for_you_cluster_is_local_and_stopped(tmp_path: Path,
                                                      short_temp_dir: Path) -> None:
    env = {key: value for key, value in os.environ.items()
           if key not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    # Ray writes an auth token for the local clusters it starts into ~/.ray.
    env.update(HOME=str(tmp_path), RAY_TMPDIR=str(short_temp_dir))
    proc = subprocess.Popen([sys.executable, "-c", STARTED_FOR_YOU], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        leftovers = kill_all(lambda: session_pids(proc.pid), timeout=30)
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["before"] == "ray(local)"
    assert report["after"].startswith("ray(127.0.0.1:")
    assert report["value"] == 42
    assert report["parallelism"] == 1
    assert report["pids"], "the local cluster started no processes"
    assert report["listening"], "found no listening sockets of the local cluster"
    assert all(is_loopback(ip) for ip in report["listening"]), report["listening"]
    assert not leftovers, f"processes {sorted(leftovers)} of the local cluster did not stop"
    assert not [pid for pid in report["pids"] if running(pid)]


def test_unreachable_address_fails_fast() -> None:
    code = ("from ratchet.executors.ray import RayExecutor\n"
            "RayExecutor('127.0.0.1:1').submit(lambda: 1, name='nowhere')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "ConfigError: no Ray cluster answers at 127.0.0.1:1" in proc.stderr


def test_import_ratchet_does_not_import_ray() -> None:
    code = ("import sys, ratchet, ratchet.executors, ratchet.executors.ray; "
            "ratchet.executors.resolve_executor('local'); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_missing_ray_is_a_config_error() -> None:
    # in a fresh process: hiding Ray from this one would break its live connection
    code = ("import sys; sys.modules['ray'] = None  # `import ray` now fails\n"
            "from ratchet.errors import ConfigError\n"
            "from ratchet.executors import resolve_executor\n"
            "for spec in ('ray', 'ray:127.0.0.1:6379'):\n"
            "    try:\n"
            "        resolve_executor(spec)\n"
            "    except ConfigError as exc:\n"
            "        print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120).stdout.splitlines()
    assert len(out) == 2
    assert all("pip install 'ratchet-mlops[ray]'" in line for line in out)


def test_ray_client_addresses_are_refused() -> None:
    with pytest.raises(ConfigError, match="Ray Client addresses"):
        RayExecutor("ray://10.0.0.5:10001").submit(lambda: 1)


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
