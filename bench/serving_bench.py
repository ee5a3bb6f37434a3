"""Benchmark ``serving``: ratchet's online server vs ``mlflow models serve`` vs bare FastAPI.

    .venv/bin/python bench/serving_bench.py                  # full run (~3 min on 2 cores)
    .venv/bin/python bench/serving_bench.py --quick          # short: 1,000 requests, 3 s wrk
    .venv/bin/python bench/serving_bench.py --skip-ratchet   # incumbents and floors only
    .venv/bin/python bench/serving_bench.py --only ratchet --only bare --duration 5
    .venv/bin/python bench/serving_bench.py --out bench/results/serving.json
    .venv/bin/python bench/serving_bench.py --rounds 3     # alternate the servers 3 times

Prints one JSON document on stdout (progress on stderr). One run, one machine, the same
model, payload and clients for every contender:

- the model: scikit-learn ``LogisticRegression`` fitted on a NumPy array of 10 float
  features (``make_classification``, seed 0), pickled once in the project's venv;
- the payload: one row, ``{"inputs": [{"f0": ..., ..., "f9": ...}]}`` (MLflow:
  ``{"dataframe_records": [...]}`` with the same record);
- contenders (each server on 127.0.0.1, a free port, one worker unless named ``_w2``):
  ``ratchet`` (``ratchet serve bench-model@champion``, the model registered through
  ratchet's Python API in a temporary RATCHET_HOME; micro-batching on, the default),
  ``ratchet_nobatch`` (``--no-batching``: one model call per request) and ``ratchet_w2``
  (``--workers 2``);
  ``mlflow`` (``mlflow models serve --env-manager local`` from ``bench/.venv-mlflow-serve``,
  created on first use; never installed into the project's venv); ``bare_constant`` (a
  FastAPI route returning a constant: the HTTP floor), ``bare_model`` (a FastAPI route
  that parses the body, builds a NumPy row and calls ``model.predict``: the bare endpoint
  the goals compare with) and ``bare_model_w2``, served by uvicorn in the project's venv
  with the options ratchet uses (``UVICORN_OPTIONS``); ``inprocess``: ``model.predict``
  on one NumPy row / a one-row DataFrame in this process (the model floor);
- sequential latency: a keep-alive ``http.client`` connection, 500 warm-up requests, then
  5,000 timed ones (p50/p99); throughput: ``wrk -t2 -c32`` for 3 s (discarded), then 10 s
  (req/s, wrk's p50/p99, non-2xx and socket errors).

Each server is stopped by its process group (SIGTERM, then wait for every process in it).
Telemetry is off in every child (MLFLOW_DISABLE_TELEMETRY, DO_NOT_TRACK,
NML_DISABLE_USAGE_LOGGING).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import http.client
import json
import math
import os
import pickle
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness import check, ratchet_python, ratio, write_json
from run import git_commit, machine_info

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SCENARIOS = BENCH / "serving_scenarios"
RATCHET_CLI = REPO / ".venv" / "bin" / "ratchet"
MLFLOW_VENV = BENCH / ".venv-mlflow-serve"
MLFLOW_VERSION = "3.17.2"  # the same MLflow as bench/run.py's tracking scenarios
WRK = "/usr/bin/wrk"

FEATURES = 10
COLUMNS = [f"f{i}" for i in range(FEATURES)]
SEED = 0
MODEL_NAME = "bench-model"
MODEL_URI = f"{MODEL_NAME}@champion"

# What `ratchet serve` passes to uvicorn (per the serving contract); the bare endpoints
# get the same, so the comparison is of the code behind the socket, not of server options.
UVICORN_OPTIONS = ("--loop", "uvloop", "--http", "httptools", "--no-access-log",
                   "--log-level", "warning")

GOAL_P50_EXTRA_MS = 0.3       # ratchet p50 <= bare endpoint p50 + 0.3 ms
GOAL_RPS_OVER_BARE = 1.2      # ratchet req/s >= 1.2x the bare endpoint's (micro-batching)
GOAL_RPS_OVER_MLFLOW = 20.0   # ratchet req/s >= 20x MLflow's
GOAL_SCALING_VS_BARE = 0.9    # ratchet's 2-worker speed-up >= 90% of the bare endpoint's

# Inherited settings that could point a tool at another store, server or worker count.
DROPPED_PREFIXES = ("RATCHET_", "MLFLOW_", "UVICORN_", "WEB_CONCURRENCY")

SERVERS = ("bare_constant", "bare_model", "bare_model_w2", "ratchet", "ratchet_nobatch",
           "ratchet_w2", "mlflow")
CONTENDERS = ("inprocess", *SERVERS)
GROUPS = {"ratchet": ("ratchet", "ratchet_nobatch", "ratchet_w2"), "mlflow": ("mlflow",),
          "bare": ("bare_constant", "bare_model", "bare_model_w2"), "inprocess": ("inprocess",)}
ONLY_CHOICES = sorted(set(CONTENDERS) | set(GROUPS))

READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 20


class BenchError(Exception):
    """A contender could not be measured; its message says why."""


def log(message: str) -> None:
    print(f"[serving_bench] {message}", file=sys.stderr, flush=True)


def mlflow_python() -> Path:
    return MLFLOW_VENV / "bin" / "python"


def child_env(extra: dict[str, str] | None = None,
              path_first: Path | None = None) -> dict[str, str]:
    """Telemetry off, no inherited tool settings; ``path_first`` (a venv's bin) leads PATH."""
    return harness.child_env(DROPPED_PREFIXES, extra, path_first)


def installed(python: Path, dists: list[str]) -> dict[str, str | None]:
    return harness.installed(python, dists, child_env())


def ensure_mlflow_venv(sklearn_version: str, numpy_version: str) -> None:
    """Create or fix ``bench/.venv-mlflow-serve``: MLflow plus the project's scikit-learn and
    NumPy versions (the pickled model must load there exactly as it was fitted)."""
    pins = {"mlflow": MLFLOW_VERSION, "scikit-learn": sklearn_version, "numpy": numpy_version}
    py = mlflow_python()
    if py.exists() and installed(py, list(pins)) == pins:
        return
    requirements = [f"{d}=={v}" for d, v in pins.items()]
    log(f"installing {' '.join(requirements)} into {MLFLOW_VENV.relative_to(REPO)} (one-time)")
    try:
        harness.install_venv(MLFLOW_VENV, requirements, child_env())
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None


def ratchet_cli_problem(command: str) -> str | None:
    """Why ``ratchet <command>`` cannot run here, or None when it can."""
    if not RATCHET_CLI.exists():
        return (f"{RATCHET_CLI} does not exist: install the project first "
                "(`uv pip install -e '.[dev]'` into .venv)")
    out = subprocess.run([str(RATCHET_CLI), command, "--help"], capture_output=True, text=True,
                         env=child_env(), timeout=120)
    if out.returncode != 0:
        last = (out.stderr or out.stdout).strip().splitlines()
        detail = next((line.strip(" │╭╮╰╯─") for line in last if "No such command" in line),
                      last[-1] if last else f"exit {out.returncode}")
        return f"`ratchet {command} --help` failed: {detail.strip().rstrip('.')}"
    return None


# --- the model ------------------------------------------------------------------------


def make_model(workdir: Path) -> tuple[Any, Any]:
    """Fit the benchmark model on a NumPy array; write model.pkl, train.npy (the training
    features: ratchet's input example, so its signature's ranges are the training data's,
    as a user passing ``input_example=X_train`` gets) and example.npy (5 rows, for checks)."""
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=5_000, n_features=FEATURES, n_informative=6,
                               random_state=SEED)
    model = LogisticRegression(max_iter=1_000).fit(X, y)
    with open(workdir / "model.pkl", "wb") as f:
        pickle.dump(model, f)
    np.save(workdir / "train.npy", X)
    np.save(workdir / "example.npy", X[:5])
    return model, X


def register_ratchet(workdir: Path, home: Path) -> dict[str, Any]:
    """Register model.pkl as bench-model@champion in ``home`` via ratchet's Python API."""
    cmd = [str(ratchet_python()), str(SCENARIOS / "register_ratchet.py"),
           "--workdir", str(workdir), "--name", MODEL_NAME]
    return _json_child(cmd, child_env({"RATCHET_HOME": str(home)}), workdir,
                       "registering the model in ratchet")


def save_mlflow(workdir: Path) -> dict[str, Any]:
    cmd = [str(mlflow_python()), str(SCENARIOS / "mlflow_save.py"), "--workdir", str(workdir)]
    return _json_child(cmd, child_env(path_first=MLFLOW_VENV / "bin"), workdir,
                       "saving the model with mlflow.sklearn.save_model")


def _json_child(cmd: list[str], env: dict[str, str], cwd: Path, what: str) -> dict[str, Any]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise BenchError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- timing helpers -------------------------------------------------------------------


def _pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def _latency_summary(ns: list[int]) -> dict[str, float]:
    ms = sorted(v / 1e6 for v in ns)
    return {"n": len(ms), "p50_ms": _pct(ms, 0.50), "p90_ms": _pct(ms, 0.90),
            "p99_ms": _pct(ms, 0.99), "mean_ms": statistics.fmean(ms), "min_ms": ms[0],
            "max_ms": ms[-1]}


def inprocess_floor(model: Any, row: Any, n: int, warmup: int) -> dict[str, Any]:
    """``model.predict`` in this process: one NumPy row, a one-row DataFrame, and the bare
    endpoint's own work (records -> NumPy row -> predict) without HTTP."""
    import numpy as np
    import pandas as pd

    array = row.reshape(1, -1)
    frame = pd.DataFrame(array, columns=COLUMNS)
    records = [{c: float(v) for c, v in zip(COLUMNS, row, strict=True)}]
    cases = {
        "numpy_row": lambda: model.predict(array),
        "dataframe_row": lambda: model.predict(frame),
        "records_to_numpy": lambda: model.predict(
            np.array([[r[c] for c in COLUMNS] for r in records], dtype=np.float64)),
    }
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        # The model was fitted on an array: a DataFrame with names gets a UserWarning per call.
        warnings.simplefilter("ignore", UserWarning)
        for name, call in cases.items():
            for _ in range(warmup):
                call()
            times = []
            gc.disable()
            try:
                for _ in range(n):
                    t0 = time.perf_counter_ns()
                    call()
                    times.append(time.perf_counter_ns() - t0)
            finally:
                gc.enable()
            out[name] = _latency_summary(times)
    return out


# --- servers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    ready_path: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    startup_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def start(server: Server) -> None:
    """Start ``server`` in its own session (process group) and wait until it answers 200."""
    log(f"{server.name}: starting {' '.join(server.cmd)}")
    with open(server.log_path, "wb") as out:
        started = time.perf_counter()
        server.proc = subprocess.Popen(server.cmd, env=server.env, cwd=server.cwd,
                                       stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = started + READY_TIMEOUT_S
    while True:
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited with {server.proc.returncode} before it "
                             f"was ready; its output:\n{server.log_tail()}")
        if _get_status(server.port, server.ready_path) == 200:
            server.startup_s = time.perf_counter() - started
            return
        if time.perf_counter() > deadline:
            raise BenchError(f"{server.name} not ready on port {server.port} after "
                             f"{READY_TIMEOUT_S}s; its output:\n{server.log_tail()}")
        time.sleep(0.05)


def _get_status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def _get_text(port: int, path: str) -> str | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        return body if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is still in process group ``pgid`` (Linux /proc)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def stop(server: Server) -> None:
    """SIGTERM the server's process group, wait for all of it; SIGKILL what outlives that."""
    proc = server.proc
    if proc is None:
        return
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log(f"{server.name}: still running {STOP_TIMEOUT_S}s after SIGTERM; SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait()
    killed = False
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            if killed:
                log(f"{server.name}: processes of group {pgid} outlived SIGKILL; giving up")
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + 5
        time.sleep(0.05)
    server.proc = None


# --- clients --------------------------------------------------------------------------


def sequential(port: int, path: str, body: bytes, n: int, warmup: int,
               expect: Any = None) -> dict[str, Any]:
    """``n`` POSTs one after another on one keep-alive connection, after ``warmup``."""
    headers = {"Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    statuses: Counter[int] = Counter()
    socket_errors = 0
    first_body: bytes | None = None

    def one() -> int | None:
        nonlocal conn, socket_errors, first_body
        try:
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            socket_errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            return None
        if first_body is None and response.status == 200:
            first_body = data
        return response.status

    try:
        for _ in range(warmup):
            one()
        times: list[int] = []
        gc.disable()
        try:
            for _ in range(n):
                t0 = time.perf_counter_ns()
                status = one()
                times.append(time.perf_counter_ns() - t0)
                if status is not None:
                    statuses[status] += 1
        finally:
            gc.enable()
    finally:
        conn.close()
    result: dict[str, Any] = _latency_summary(times)
    result.update(warmup=warmup, statuses={str(k): v for k, v in sorted(statuses.items())},
                  non_2xx=sum(v for k, v in statuses.items() if not 200 <= k < 300),
                  socket_errors=socket_errors)
    result["errors"] = result["non_2xx"] + socket_errors
    result["response_example"] = first_body.decode(errors="replace")[:300] if first_body else None
    if expect is not None:
        result["prediction_ok"] = _prediction_ok(first_body, expect)
    return result


def _prediction_ok(body: bytes | None, expect: Any) -> bool:
    try:
        found = json.loads(body or b"")["predictions"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return False
    if isinstance(found, dict):  # e.g. {"prediction": 1, ...}
        found = found.get("prediction", found)
    return bool(found == expect)


def run_wrk(port: int, path: str, body_file: Path, threads: int, connections: int,
            duration_s: int) -> dict[str, Any]:
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s",
           "-s", str(SCENARIOS / "post.lua"), f"http://127.0.0.1:{port}{path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60,
                          env=child_env({"WRK_BODY_FILE": str(body_file)}))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(f"wrk failed (exit {proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    raw = json.loads(lines[-1])
    seconds = raw["duration_us"] / 1e6
    socket_errors = sum(raw[f"errors_{k}"] for k in ("connect", "read", "write", "timeout"))
    lat = raw["latency_us"]
    return {"threads": threads, "connections": connections, "duration_s": seconds,
            "requests": raw["requests"], "rps": raw["requests"] / seconds if seconds else None,
            "p50_ms": lat["p50"] / 1e3, "p90_ms": lat["p90"] / 1e3, "p99_ms": lat["p99"] / 1e3,
            "p999_ms": lat["p999"] / 1e3, "mean_ms": lat["mean"] / 1e3,
            "max_ms": lat["max"] / 1e3, "non_2xx": raw["errors_status"],
            "socket_errors": socket_errors, "errors": raw["errors_status"] + socket_errors,
            "raw": raw}


# --- one contender --------------------------------------------------------------------


@dataclass
class Plan:
    requests: int
    warmup_requests: int
    duration_s: int
    warmup_s: int
    threads: int
    connections: int


def measure(server: Server, path: str, body_file: Path, plan: Plan, *, sequential_too: bool,
            expect: Any, after: Any = None) -> dict[str, Any]:
    """Start the server, time it sequentially and under wrk, stop it; one result dict."""
    result: dict[str, Any] = {"command": server.cmd, "port": server.port, "path": path}
    body = body_file.read_bytes()
    try:
        start(server)
        result["startup_s"] = server.startup_s
        if sequential_too:
            log(f"{server.name}: {plan.warmup_requests} warm-up + {plan.requests} sequential "
                "requests")
            seq = sequential(server.port, path, body, plan.requests, plan.warmup_requests,
                             expect)
            result["sequential"] = seq
            if seq.get("prediction_ok") is False:
                raise BenchError(f"{server.name} answered {seq['response_example']!r}; "
                                 f"expected the prediction {expect!r}")
        log(f"{server.name}: wrk warm-up {plan.warmup_s}s, then {plan.duration_s}s "
            f"(-t{plan.threads} -c{plan.connections})")
        _check_alive(server)
        result["wrk_warmup"] = run_wrk(server.port, path, body_file, plan.threads,
                                       plan.connections, plan.warmup_s)
        result["wrk"] = run_wrk(server.port, path, body_file, plan.threads, plan.connections,
                                plan.duration_s)
        _check_alive(server)
        if after is not None:
            result.update(after(server))
    except BenchError as exc:
        result["error"] = str(exc)
        log(f"{server.name} FAILED: {exc}")
    finally:
        stop(server)
    timed_seq, timed_wrk = result.get("sequential"), result.get("wrk")
    warm = result.get("wrk_warmup")
    result.update(
        p50_ms=timed_seq["p50_ms"] if timed_seq else None,
        p99_ms=timed_seq["p99_ms"] if timed_seq else None,
        rps=timed_wrk["rps"] if timed_wrk else None,
        wrk_p50_ms=timed_wrk["p50_ms"] if timed_wrk else None,
        wrk_p99_ms=timed_wrk["p99_ms"] if timed_wrk else None,
        errors=((timed_seq["errors"] if timed_seq else 0)
                + (timed_wrk["errors"] if timed_wrk else 0)) if (timed_seq or timed_wrk)
        else None,
        warmup_errors=warm["errors"] if warm else None)
    if "error" not in result:
        log(f"{server.name}: p50 {_fmt(result['p50_ms'])} ms, p99 {_fmt(result['p99_ms'])} ms "
            f"sequential; {_fmt(result['rps'])} req/s (wrk p50 {_fmt(result['wrk_p50_ms'])} "
            f"ms, p99 {_fmt(result['wrk_p99_ms'])} ms); errors {result['errors']}")
    return result


def _answered(result: dict[str, Any]) -> int:
    """POSTs the server answered during a measurement (sequential and wrk, warm-ups too)."""
    seq = result.get("sequential") or {}
    total = seq.get("warmup", 0) + sum(seq.get("statuses", {}).values())
    return total + sum((result.get(k) or {}).get("requests", 0) for k in ("wrk_warmup", "wrk"))


def _check_alive(server: Server) -> None:
    """A server that died mid-measurement (e.g. signalled by another process) voids it."""
    code = server.proc.poll() if server.proc is not None else None
    if code is not None:
        raise BenchError(f"{server.name} exited with {code} during the measurement; its "
                         f"output:\n{server.log_tail()}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def uvicorn_server(name: str, app: str, workdir: Path, workers: int) -> Server:
    port = free_port()
    cmd = [str(ratchet_python()), "-m", "uvicorn", app, "--app-dir", str(SCENARIOS),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
           *UVICORN_OPTIONS]
    env = child_env({"BENCH_MODEL_PATH": str(workdir / "model.pkl"),
                     "BENCH_FEATURES": str(FEATURES)}, path_first=REPO / ".venv" / "bin")
    return Server(name, cmd, env, workdir, port, "/health", workdir / f"{name}.log")


def ratchet_server(name: str, workdir: Path, home: Path, workers: int,
                   *extra: str) -> Server:
    port = free_port()
    cmd = [str(RATCHET_CLI), "serve", MODEL_URI, "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), *extra]
    env = child_env({"RATCHET_HOME": str(home)}, path_first=REPO / ".venv" / "bin")
    return Server(name, cmd, env, workdir, port, "/health/ready", workdir / f"{name}.log")


def mlflow_server(workdir: Path) -> Server:
    port = free_port()
    # `mlflow models serve --env-manager local` execs `uvicorn` from PATH: the venv's bin
    # goes first, so it is MLflow's own uvicorn that serves.
    cmd = [str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m",
           str(workdir / "mlflow-model"), "--env-manager", "local", "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    env = child_env(path_first=MLFLOW_VENV / "bin")
    return Server("mlflow", cmd, env, workdir, port, "/ping", workdir / "mlflow.log")


def ratchet_after(home: Path) -> Any:
    """After the timed part: what /metrics says about requests and prediction-log drops."""

    def after(server: Server) -> dict[str, Any]:
        text = _get_text(server.port, "/metrics")
        if text is None:
            return {"metrics": None}
        sums: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith("ratchet_"):
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in ("ratchet_requests_total", "ratchet_prediction_log_dropped_total",
                        "ratchet_prediction_log_rows_total", "ratchet_validation_failures_total"):
                with contextlib.suppress(ValueError):
                    sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return {"metrics": sums}

    return after


def prediction_log_rows(home: Path) -> dict[str, Any]:
    """Rows in ratchet's prediction log under ``home`` (after the server has stopped)."""
    import pyarrow.parquet as pq

    files = sorted(home.rglob("predictions/deployment=*/*/*.parquet"))
    rows = 0
    for f in files:
        with contextlib.suppress(Exception):
            rows += pq.read_metadata(f).num_rows
    return {"files": len(files), "rows": rows}


# --- the whole run ----------------------------------------------------------------------


def selected_contenders(args: argparse.Namespace) -> list[str]:
    chosen: set[str] = set()
    for name in args.only or CONTENDERS:
        chosen.update(GROUPS.get(name, (name,)))
    if args.skip_mlflow:
        chosen.discard("mlflow")
    if args.skip_ratchet:
        chosen -= set(GROUPS["ratchet"])
    return [c for c in CONTENDERS if c in chosen]


def run(args: argparse.Namespace, contenders: list[str]) -> dict[str, Any]:
    import numpy as np
    import sklearn

    started = time.perf_counter()
    plan = Plan(args.requests, args.warmup_requests, args.duration, args.warmup_seconds,
                args.threads, args.connections)
    project = installed(ratchet_python(), ["ratchet-mlops", "scikit-learn", "numpy", "pandas",
                                           "fastapi", "starlette", "uvicorn", "uvloop",
                                           "httptools", "pydantic"])
    versions: dict[str, Any] = {"project_venv": project, "ratchet_git_commit": git_commit(),
                                "python": platform.python_version(), "wrk": _wrk_version()}
    if "mlflow" in contenders:
        ensure_mlflow_venv(sklearn.__version__, np.__version__)
        versions["mlflow_venv"] = installed(
            mlflow_python(), ["mlflow", "scikit-learn", "numpy", "pandas", "fastapi",
                              "starlette", "uvicorn", "uvloop", "httptools", "pydantic"])

    workdir = Path(tempfile.mkdtemp(prefix="ratchet-bench-serving-"))  # 0700
    results: dict[str, Any] = {}
    rounds: list[dict[str, Any]] = []
    setup: dict[str, Any] = {}
    payload: dict[str, Any] = {}
    try:
        model, X = make_model(workdir)
        row = X[0]
        expect = int(model.predict(row.reshape(1, -1))[0])
        record = {c: float(v) for c, v in zip(COLUMNS, row, strict=True)}
        payload = {"inputs": [record]}
        ours = workdir / "body-inputs.json"
        ours.write_text(json.dumps(payload))
        mlflow_body = workdir / "body-dataframe-records.json"
        mlflow_body.write_text(json.dumps({"dataframe_records": [record]}))
        home = workdir / ".ratchet"

        if "inprocess" in contenders:
            log(f"inprocess: model.predict, {plan.warmup_requests} warm-up + {plan.requests} "
                "calls per case")
            floor = inprocess_floor(model, row, plan.requests, plan.warmup_requests)
            results["inprocess"] = {
                **floor, "p50_ms": floor["numpy_row"]["p50_ms"],
                "p99_ms": floor["numpy_row"]["p99_ms"], "rps": None, "errors": 0}
            log("inprocess: " + ", ".join(f"{k} p50 {v['p50_ms']:.4f} ms"
                                          for k, v in floor.items()))
        if any(c.startswith("ratchet") for c in contenders):
            log("ratchet: registering bench-model@champion in a temporary RATCHET_HOME")
            setup["ratchet"] = register_ratchet(workdir, home)
        if "mlflow" in contenders:
            log("mlflow: saving the model with mlflow.sklearn.save_model")
            setup["mlflow"] = save_mlflow(workdir)

        for round_no in range(args.rounds):
            this: dict[str, Any] = {}
            rounds.append(this)
            if args.rounds > 1:
                log(f"round {round_no + 1} of {args.rounds}")
            for name in contenders:
                if name == "inprocess":
                    continue
                if name.startswith("bare"):
                    app = ("bare_app:constant_app" if name == "bare_constant"
                           else "bare_app:model_app")
                    server = uvicorn_server(name, app, workdir,
                                            2 if name.endswith("_w2") else 1)
                    this[name] = measure(server, "/predict", ours, plan,
                                         sequential_too=not name.endswith("_w2"),
                                         expect=None if name == "bare_constant" else expect)
                elif name.startswith("ratchet"):
                    workers = 2 if name.endswith("_w2") else 1
                    server = ratchet_server(name, workdir, home, workers,
                                            *(["--no-batching"] if name.endswith("_nobatch")
                                              else []))
                    before = prediction_log_rows(home)
                    this[name] = measure(server, "/predict", ours, plan,
                                         sequential_too=not name.endswith("_w2"),
                                         expect=expect, after=ratchet_after(home))
                    this[name]["workers"] = workers
                    after = prediction_log_rows(home)
                    this[name]["prediction_log"] = {
                        "rows_added": after["rows"] - before["rows"],
                        "files_added": after["files"] - before["files"],
                        "requests_answered": _answered(this[name])}
                elif name == "mlflow":
                    this[name] = measure(mlflow_server(workdir), "/invocations",
                                         mlflow_body, plan, sequential_too=True, expect=expect)
        results.update(_median_round(rounds))
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    ratios, checks = analyse(results)
    if len(rounds) > 1:
        ratios["per_round"] = [analyse({**results, **r})[0] for r in rounds]
    verdicts = [c["pass"] for c in checks]
    return {
        "schema": "ratchet-bench-serving/1",
        "benchmark": "serving",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/serving_bench.py", *sys.argv[1:]]),
        "what": "one scikit-learn LogisticRegression (10 float features, fitted on a NumPy "
                "array), one-row requests; sequential latency over one keep-alive connection "
                "and throughput with wrk, per contender",
        "unit": "p50_ms/p99_ms: sequential latency in ms (lower is better); rps: wrk "
                "requests/s (higher is better); errors: non-2xx + socket errors",
        "plan": {"requests": plan.requests, "warmup_requests": plan.warmup_requests,
                 "wrk_duration_s": plan.duration_s, "wrk_warmup_s": plan.warmup_s,
                 "wrk_threads": plan.threads, "wrk_connections": plan.connections,
                 "uvicorn_options_bare": list(UVICORN_OPTIONS), "payload": payload},
        "machine": machine_info(), "versions": versions, "setup": setup,
        "contenders": results, "ratios": ratios,
        "goals": {"ratchet_p50_minus_bare_p50_ms_at_most": GOAL_P50_EXTRA_MS,
                  "ratchet_rps_over_bare_at_least": GOAL_RPS_OVER_BARE,
                  "ratchet_rps_over_mlflow_at_least": GOAL_RPS_OVER_MLFLOW,
                  "ratchet_scaling_over_bare_scaling_at_least": GOAL_SCALING_VS_BARE},
        "checks": checks,
        "goals_met": (False if False in verdicts
                      else True if verdicts and None not in verdicts else None),
        "notes": NOTES,
        "total_s": round(time.perf_counter() - started, 1),
    }


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per contender, the round with its median req/s (its p50 etc. come with it), plus every
    round's req/s and p50: on a shared machine one round can land on a busy minute."""
    if len(rounds) == 1:
        return rounds[0]
    merged: dict[str, Any] = {}
    for name in rounds[0]:
        runs = [r[name] for r in rounds if name in r]
        ok = [r for r in runs if "error" not in r and r.get("rps") is not None]
        if not ok:
            merged[name] = runs[0]
            continue
        ok.sort(key=lambda r: r["rps"])
        merged[name] = {**ok[len(ok) // 2], "rounds_rps": [r.get("rps") for r in runs],
                        "rounds_p50_ms": [r.get("p50_ms") for r in runs],
                        "errors": sum(r.get("errors") or 0 for r in runs)}
    return merged


def _wrk_version() -> str | None:
    try:
        out = subprocess.run([WRK, "--version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0] if first else None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def analyse(results: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    def get(name: str, key: str) -> float | None:
        found = results.get(name)
        if not found or "error" in found:
            return None
        value = found.get(key)
        return None if value is None else float(value)

    ratchet_scaling = ratio(get("ratchet_w2", "rps"), get("ratchet", "rps"))
    bare_scaling = ratio(get("bare_model_w2", "rps"), get("bare_model", "rps"))
    ratios = {
        "ratchet_p50_minus_bare_p50_ms": _diff(get("ratchet", "p50_ms"),
                                               get("bare_model", "p50_ms")),
        "ratchet_p99_minus_bare_p99_ms": _diff(get("ratchet", "p99_ms"),
                                               get("bare_model", "p99_ms")),
        "ratchet_rps_over_bare": ratio(get("ratchet", "rps"), get("bare_model", "rps")),
        "ratchet_rps_over_mlflow": ratio(get("ratchet", "rps"), get("mlflow", "rps")),
        "ratchet_nobatch_rps_over_bare": ratio(get("ratchet_nobatch", "rps"),
                                               get("bare_model", "rps")),
        "ratchet_rps_over_ratchet_nobatch": ratio(get("ratchet", "rps"),
                                                  get("ratchet_nobatch", "rps")),
        "ratchet_nobatch_p50_minus_bare_p50_ms": _diff(get("ratchet_nobatch", "p50_ms"),
                                                       get("bare_model", "p50_ms")),
        "ratchet_rps_over_bare_constant": ratio(get("ratchet", "rps"),
                                                 get("bare_constant", "rps")),
        "ratchet_scaling_w2_over_w1": ratchet_scaling,
        "bare_scaling_w2_over_w1": bare_scaling,
        "ratchet_scaling_over_bare_scaling": ratio(ratchet_scaling, bare_scaling),
        "mlflow_p50_over_ratchet_p50": ratio(get("mlflow", "p50_ms"), get("ratchet", "p50_ms")),
        "bare_model_rps_over_bare_constant": ratio(get("bare_model", "rps"),
                                                    get("bare_constant", "rps")),
        "bare_model_p50_minus_bare_constant_p50_ms": _diff(get("bare_model", "p50_ms"),
                                                           get("bare_constant", "p50_ms")),
    }
    checks = [
        check("ratchet p50 - bare endpoint p50 (ms, sequential)",
              ratios["ratchet_p50_minus_bare_p50_ms"], "<=", GOAL_P50_EXTRA_MS),
        check("ratchet req/s / bare endpoint req/s (wrk, 1 worker)",
              ratios["ratchet_rps_over_bare"], ">=", GOAL_RPS_OVER_BARE),
        check("ratchet req/s / mlflow models serve req/s (wrk, 1 worker)",
              ratios["ratchet_rps_over_mlflow"], ">=", GOAL_RPS_OVER_MLFLOW),
        check("ratchet 2-worker speed-up / bare endpoint's 2-worker speed-up",
              ratios["ratchet_scaling_over_bare_scaling"], ">=", GOAL_SCALING_VS_BARE),
        check("ratchet errors (non-2xx + socket, all runs)",
              None if all(get(n, "errors") is None for n in GROUPS["ratchet"])
              else sum(get(n, "errors") or 0 for n in GROUPS["ratchet"]),
              "==", 0),
    ]
    return ratios, checks


NOTES = [
    "Everything runs on one machine: wrk (2 threads), the server under test and the "
    "Python client share its CPUs, so absolute numbers are this machine's; compare "
    "contenders within one run.",
    "Sequential latency (p50_ms, p99_ms) is measured from this process with http.client "
    "over one keep-alive connection: it includes the client's own cost, the same for every "
    "contender (bare_constant shows that floor). A Python client tops out near 2,500 req/s "
    "here, so throughput comes from wrk only.",
    "rps = wrk's completed requests / its run time, after a discarded warm-up run on the "
    "same server; wrk counts status > 399 as non_2xx, and connect/read/write/timeout "
    "errors as socket_errors.",
    "The bare endpoints use the same uvicorn options as ratchet serve (uvloop, httptools, "
    "no access log, one worker unless _w2); MLflow runs its own default uvicorn invocation "
    "(`mlflow models serve --env-manager local --workers 1`) from its venv.",
    "MLflow's model carries a signature (columns f0..f9), so it checks requests against a "
    "schema as ratchet does; the bare endpoints check nothing and log nothing.",
    "Scaling: with 2 vCPUs shared with wrk, linear scaling cannot show here; the scaling "
    "goal compares ratchet's 2-worker/1-worker ratio with the bare endpoint's on the same "
    "machine. Both raw ratios are reported.",
    "ratchet runs with its defaults: signature validation on (the model was logged with "
    "input_example=X_train, so ranges are the training data's), prediction logging on, "
    "metrics on; its /predict answers predictions plus class probabilities, model name, "
    "version and request id. The bare endpoint answers predictions only.",
    "ratchet: prediction_log.rows_added counts the Parquet rows its prediction log gained "
    "between server start and stop; requests_answered is what the clients got answers to "
    "(warm-ups included; wrk's in-flight requests at its end are not counted, so "
    "rows_added may be a little higher). metrics holds sums read from /metrics at the end "
    "(with --workers > 1, prometheus-client's multiprocess mode aggregates the workers).",
    "MLflow's venv has MLflow's own dependencies only: its uvicorn runs without uvloop and "
    "httptools unless MLflow pulls them in (versions.mlflow_venv says).",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1,000 requests after 200 warm-up, wrk 1 s warm-up + 3 s")
    parser.add_argument("--requests", type=int, help="sequential requests timed (5000)")
    parser.add_argument("--warmup-requests", type=int, help="sequential warm-up requests (500)")
    parser.add_argument("--duration", type=int, help="wrk seconds, timed run (10)")
    parser.add_argument("--warmup-seconds", type=int, help="wrk seconds, warm-up run (3)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--only", action="append", choices=ONLY_CHOICES, metavar="NAME",
                        help=f"only these contenders (repeatable): {', '.join(ONLY_CHOICES)}")
    parser.add_argument("--skip-mlflow", action="store_true", help="leave MLflow out")
    parser.add_argument("--skip-ratchet", action="store_true",
                        help="leave ratchet out (incumbents and floors only)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every server this many times, alternating (1); each "
                             "contender reports its median round")
    parser.add_argument("--out", type=Path, help="also write the JSON document here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (and logs)")
    parser.add_argument("--compact", action="store_true", help="one-line JSON")
    args = parser.parse_args(argv)
    quick = args.quick
    for name, full, small in (("requests", 5_000, 1_000), ("warmup_requests", 500, 200),
                              ("duration", 10, 3), ("warmup_seconds", 3, 1)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
        if getattr(args, name) < (0 if name == "warmup_requests" else 1):
            parser.error(f"--{name.replace('_', '-')} is too small")

    contenders = selected_contenders(args)
    if not contenders:
        parser.error("nothing selected")
    if any(c in SERVERS for c in contenders) and not os.access(WRK, os.X_OK):
        print(f"error: {WRK} not found: `apt-get install wrk` (Debian package)",
              file=sys.stderr)
        return 2
    if any(c.startswith("ratchet") for c in contenders):
        problem = ratchet_cli_problem("serve")
        if problem:
            print(f"error: cannot benchmark ratchet: {problem}. The ratchet contender needs "
                  "`ratchet serve MODEL_URI --host --port --workers` in the project's venv; "
                  "run with --skip-ratchet to measure the incumbents and floors only.",
                  file=sys.stderr)
            return 2
    try:
        doc = run(args, contenders)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_json(doc, args.out, args.compact)
    for name, r in doc["contenders"].items():
        if "error" in r:
            log(f"{name:14} ERROR {r['error'].splitlines()[0]}")
        else:
            log(f"{name:14} p50 {_fmt(r.get('p50_ms'))} ms  p99 {_fmt(r.get('p99_ms'))} ms  "
                f"{_fmt(r.get('rps'))} req/s  errors {r.get('errors')}")
    for c in doc["checks"]:
        verdict = {True: "PASS", False: "FAIL", None: "skipped"}[c["pass"]]
        log(f"{c['name']}: {_fmt(c['value'])} {c['op']} {c['target']} -> {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
