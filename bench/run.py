"""ratchet vs MLflow, side by side in one command: ``make bench`` (``python bench/run.py``).

Creates ``bench/.venv-mlflow`` on first use (MLflow never enters the project's virtualenv),
runs every scenario for both tools as separate subprocesses, each in a fresh temporary
directory with its own SQLite file, and prints ONE JSON document to stdout (progress goes
to stderr). The same document is written to ``bench/results/latest.json``.

    python bench/run.py                 # full sizes (several minutes on 2 cores)
    python bench/run.py --quick         # small sizes, a smoke run
    python bench/run.py --only search_runs --only import_time
    python bench/run.py --skip-mlflow   # ratchet only; ratio targets are reported as skipped
    python bench/run.py --only data_log --only data_validation   # the data scenarios

The data scenarios run ``bench/data_bench.py`` (ratchet vs ``dvc add``; DVC lives in
``bench/.venv-dvc``, created on first use) and ``bench/validation_bench.py``. The
``pipelines`` scenario runs ``bench/pipeline_bench.py`` (per-step overhead, ratchet vs
Prefect 3 vs Metaflow; each incumbent in its own ``bench/.venv-*``, created on first use).
The ``serving`` scenario runs ``bench/serving_bench.py`` (ratchet serve vs ``mlflow models
serve`` vs bare FastAPI, with wrk; MLflow in ``bench/.venv-mlflow-serve``) and
``bench/batch_bench.py`` (``ratchet predict`` on 10M rows vs a pyarrow floor). The
``drift`` scenario runs ``bench/drift_bench.py`` (``dataset_drift`` vs Evidently's data
drift preset in ``bench/.venv-evidently`` vs a NumPy floor; always with Evidently). The ``ui`` scenario
runs ``bench/ui_bench.py`` (the dashboard vs the MLflow UI in Chromium; MLflow in
``bench/.venv-mlflow-ui``; its data built once into ``bench/.cache/ui``, which takes
most of an hour at 100,000 runs: build it first with ``bench/ui_data.py`` and
``bench/ui_mlflow_load.py``). The ``features`` scenario runs ``bench/features_bench.py``
(the feature store's training set and online lookups vs Feast in ``bench/.venv-feast``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results" / "latest.json"
MLFLOW_VENV = BENCH / ".venv-mlflow"
MLFLOW_REQUIREMENT = "mlflow==3.17.2"
SUBPROCESS_TIMEOUT_S = 1800

SCENARIOS = ("log_metric_single", "log_batch", "search_runs", "import_time", "data_log",
             "data_validation", "pipelines", "serving", "drift", "ui", "features")
MLFLOW_SCENARIOS = frozenset(SCENARIOS[:4])

# name -> size, for full runs and for --quick smoke runs
FULL = {"log_metric_single": 10_000, "sync_full": 2_000, "log_batch": 10_000,
        "search_runs": 10_000, "search_runs_big": 100_000, "reps": 5, "import_reps": 5,
        "data_log_mb": 1024, "data_log_reps": 3, "validation_rows": 1_000_000,
        "validation_reps": 3, "pipeline_reps": 5, "serving_requests": 5_000,
        "serving_warmup_requests": 500, "serving_duration_s": 10, "serving_warmup_s": 3,
        "batch_rows": 10_000_000, "drift_rows": 1_000_000, "ui_runs": 100_000,
        "features_entity_rows": 1_000_000}
QUICK = {"log_metric_single": 300, "sync_full": 200, "log_batch": 2_000,
         "search_runs": 2_000, "search_runs_big": 10_000, "reps": 3, "import_reps": 3,
         "data_log_mb": 100, "data_log_reps": 1, "validation_rows": 100_000,
         "validation_reps": 3, "pipeline_reps": 1, "serving_requests": 1_000,
         "serving_warmup_requests": 200, "serving_duration_s": 3, "serving_warmup_s": 1,
         "batch_rows": 200_000, "drift_rows": 100_000, "ui_runs": 1_000,
         "features_entity_rows": 100_000}

QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
             "NML_DISABLE_USAGE_LOGGING": "1", "MLFLOW_ENABLE_ASYNC_LOGGING": "false"}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    """The environment of every subprocess: telemetry off, no inherited store settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RATCHET_", "MLFLOW_TRACKING_", "MLFLOW_REGISTRY_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cached bytecode for both tools alike
    env.update(QUIET_ENV)
    return env


def ratchet_python() -> Path:
    candidate = REPO / ".venv" / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


def mlflow_python() -> Path:
    return MLFLOW_VENV / "bin" / "python"


def _check(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, env=child_env(), **kwargs)


def ensure_mlflow_venv() -> str:
    """Create ``bench/.venv-mlflow`` with MLflow if it is missing; return MLflow's version."""
    py = mlflow_python()
    probe = [str(py), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"]
    if py.exists():
        found = subprocess.run(probe, capture_output=True, text=True, env=child_env())
        if found.returncode == 0:
            return found.stdout.strip()
    log(f"creating {MLFLOW_VENV.relative_to(REPO)} with {MLFLOW_REQUIREMENT} (one-time)")
    base = shutil.which("python3") or sys.executable
    _check([base, "-m", "venv", "--clear", str(MLFLOW_VENV)])
    _check([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uv"])
    _check([str(MLFLOW_VENV / "bin" / "uv"), "pip", "install", "--quiet", "--python", str(py),
            MLFLOW_REQUIREMENT])
    return _check(probe, capture_output=True).stdout.strip()


def package_version(python: Path, dist: str) -> str | None:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                         env=child_env())
    return out.stdout.strip() if out.returncode == 0 else None


def run_tool(tool: str, scenario: str, n: int, reps: int, keep: bool,
             extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One scenario for one tool in a fresh subprocess and temp dir; its JSON result."""
    python = ratchet_python() if tool == "ratchet" else mlflow_python()
    script = BENCH / f"scenarios_{tool}.py"
    workdir = Path(tempfile.mkdtemp(prefix=f"ratchet-bench-{tool}-{scenario}-"))
    cmd = [str(python), str(script), scenario, "--n", str(n), "--workdir", str(workdir),
           "--reps", str(reps), *extra]
    log(f"{tool} {scenario} n={n} {' '.join(extra)}".rstrip())
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(),
                              cwd=workdir, timeout=SUBPROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"tool": tool, "error": f"timed out after {SUBPROCESS_TIMEOUT_S}s"}
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    wall = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        log(f"{tool} {scenario} FAILED (exit {proc.returncode}):\n{tail}")
        return {"tool": tool, "error": f"exit {proc.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["process_wall_s"] = wall
    return result


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


OPS = {">=": float.__ge__, ">": float.__gt__, "<=": float.__le__, "<": float.__lt__}


def check(name: str, value: float | None, op: str, target: float) -> dict[str, Any]:
    """A target: ``value op target``; pass is None when the value was not measured."""
    passed = None if value is None else OPS[op](float(value), float(target))
    return {"name": name, "value": value, "op": op, "target": target, "pass": passed}


def _get(result: dict[str, Any] | None, key: str) -> float | None:
    if not result or "error" in result:
        return None
    value = result.get(key)
    return float(value) if value is not None else None


def scenario_log_metric_single(sizes: dict[str, int], mlflow: bool,
                               keep: bool) -> dict[str, Any]:
    n = sizes["log_metric_single"]
    r = run_tool("ratchet", "log_metric_single", n, 1, keep)
    full = run_tool("ratchet", "log_metric_single", sizes["sync_full"], 1, keep,
                    ("--sync", "full"))
    m = run_tool("mlflow", "log_metric_single", n, 1, keep) if mlflow else None
    ratio = _ratio(_get(r, "rate"), _get(m, "rate"))
    return {
        "unit": "points/s (higher is better)",
        "what": f"{n} points, one log_metric call each, one run, committed per call",
        "ratchet": r, "mlflow": m,
        "ratchet_value": _get(r, "rate"), "mlflow_value": _get(m, "rate"), "ratio": ratio,
        "target": "ratchet >= 20x MLflow points/s",
        "checks": [check("ratio vs MLflow", ratio, ">=", 20)],
        "supplementary": {
            "ratchet_synchronous_full": full,
            "ratio_synchronous_full_vs_mlflow": _ratio(_get(full, "rate"), _get(m, "rate")),
            "note": "ratchet's default is WAL + synchronous=NORMAL (a commit survives a "
                    "process crash, not a power loss); MLflow's SQLite default is the rollback "
                    "journal + synchronous=FULL (fsync per commit). The synchronous_full "
                    "variant forces PRAGMA synchronous=FULL on ratchet for a like-for-like "
                    "durability comparison.",
        },
    }


def scenario_log_batch(sizes: dict[str, int], mlflow: bool, keep: bool) -> dict[str, Any]:
    n, reps = sizes["log_batch"], sizes["reps"]
    r = run_tool("ratchet", "log_batch", n, reps, keep)
    m = run_tool("mlflow", "log_batch", n, reps, keep) if mlflow else None
    ratio = _ratio(_get(r, "rate"), _get(m, "rate"))
    return {
        "unit": "points/s (higher is better), from the median of the repetitions",
        "what": f"{n} points (10 keys x {n // 10} steps) per repetition into a fresh run; "
                "ratchet: one log_batch call; MLflow: ceil(n/1000) log_batch calls "
                "(MLflow caps a call at 1000 metrics), total time counted",
        "ratchet": r, "mlflow": m,
        "ratchet_value": _get(r, "rate"), "mlflow_value": _get(m, "rate"), "ratio": ratio,
        "target": "ratchet >= 5x MLflow points/s",
        "checks": [check("ratio vs MLflow", ratio, ">=", 5)],
    }


def scenario_search_runs(sizes: dict[str, int], mlflow: bool, keep: bool) -> dict[str, Any]:
    n, big, reps = sizes["search_runs"], sizes["search_runs_big"], sizes["reps"]
    r = run_tool("ratchet", "search_runs", n, reps, keep)
    r_big = run_tool("ratchet", "search_runs", big, reps, keep)
    m = run_tool("mlflow", "search_runs", n, reps, keep) if mlflow else None
    ratio = _ratio(_get(m, "median_s"), _get(r, "median_s"))
    consistent = None
    if _get(r, "n_results") is not None and _get(m, "n_results") is not None:
        consistent = _get(r, "n_results") == _get(m, "n_results")
    return {
        "unit": "seconds per search, median (lower is better); ratio = MLflow / ratchet",
        "what": f"filter {r.get('filter')!r}, order_by {r.get('order_by')}, max_results 1000, "
                f"over {n} seeded runs (ratchet also over {big})",
        "ratchet": r, "ratchet_big": r_big, "mlflow": m,
        "ratchet_value": _get(r, "median_s"), "mlflow_value": _get(m, "median_s"),
        "ratio": ratio, "same_result_count": consistent,
        "target": f"ratchet >= 10x faster than MLflow at {n} runs; ratchet < 0.1 s at "
                  f"{big} runs",
        "checks": [
            check(f"speed-up vs MLflow at {n} runs", ratio, ">=", 10),
            check(f"ratchet seconds at {big} runs", _get(r_big, "median_s"), "<", 0.1),
        ],
    }


def _startup_times(python: Path, code: str, reps: int, cwd: Path) -> list[float]:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        subprocess.run([str(python), "-c", code], check=True, env=child_env(), cwd=cwd,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def scenario_import_time(sizes: dict[str, int], mlflow: bool, keep: bool) -> dict[str, Any]:
    reps = sizes["import_reps"]
    cases: dict[str, tuple[Path, str]] = {
        "ratchet_baseline": (ratchet_python(), "pass"),
        "ratchet": (ratchet_python(), "import ratchet"),
        "ratchet_client": (ratchet_python(), "import ratchet.tracking.client"),
    }
    if mlflow:
        cases["mlflow_baseline"] = (mlflow_python(), "pass")
        cases["mlflow"] = (mlflow_python(), "import mlflow")
    cwd = Path(tempfile.mkdtemp(prefix="ratchet-bench-import-"))
    log(f"import_time: {reps} fresh processes per case, after one warm-up each")
    try:
        for python, code in cases.values():  # warm-up: page cache, bytecode
            _startup_times(python, code, 1, cwd)
        raw: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(reps):  # interleaved, so drift hits every case alike
            for name, (python, code) in cases.items():
                raw[name] += _startup_times(python, code, 1, cwd)
    finally:
        if not keep:
            shutil.rmtree(cwd, ignore_errors=True)
    med = {name: statistics.median(ts) for name, ts in raw.items()}

    def side(name: str, baseline: str) -> dict[str, Any] | None:
        if name not in med:
            return None
        return {"code": cases[name][1], "raw_s": med[name], "baseline_s": med[baseline],
                "net_s": med[name] - med[baseline], "times_s": [round(x, 4) for x in raw[name]]}

    r = side("ratchet", "ratchet_baseline")
    rc = side("ratchet_client", "ratchet_baseline")
    m = side("mlflow", "mlflow_baseline")
    assert r is not None
    ratio = _ratio(m["net_s"] if m else None, r["net_s"])
    return {
        "unit": "seconds of wall clock per fresh process, median; net = raw - `python -c pass`",
        "what": "python -c 'import ratchet' vs python -c 'import mlflow'",
        "ratchet": r, "mlflow": m,
        "ratchet_value": r["net_s"], "mlflow_value": m["net_s"] if m else None, "ratio": ratio,
        "target": "ratchet import < 0.3 s",
        "checks": [check("ratchet net import seconds", r["net_s"], "<", 0.3),
                   check("ratchet raw process seconds", r["raw_s"], "<", 0.3)],
        "supplementary": {
            "ratchet_tracking_client": rc,
            "note": "`import ratchet` is lazy; `import ratchet.tracking.client` is what a "
                    "script that logs a metric pays before its first call.",
        },
    }


def _run_json(cmd: list[str], label: str) -> dict[str, Any]:
    """A bench script's JSON document from stdout; its progress goes straight to stderr."""
    log(label)
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=child_env(),
                              cwd=REPO, timeout=SUBPROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {SUBPROCESS_TIMEOUT_S}s"}
    if proc.returncode != 0:
        log(f"{label} FAILED (exit {proc.returncode}); its stderr is above")
        return {"error": f"exit {proc.returncode}"}
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        return {"error": f"no JSON on stdout: {exc}"}
    result["process_wall_s"] = time.perf_counter() - started
    return result


def _file_value(doc: dict[str, Any], kind: str, op: str, field: str) -> float | None:
    value = doc.get("files", {}).get(kind, {}).get(op, {}).get(field)
    return float(value) if value is not None else None


def scenario_data_log(sizes: dict[str, int], mlflow: bool, keep: bool,
                      dvc: bool = True) -> dict[str, Any]:
    cmd = [str(ratchet_python()), str(BENCH / "data_bench.py"), "--compact",
           "--size-mb", str(sizes["data_log_mb"]), "--reps", str(sizes["data_log_reps"])]
    cmd += ["--skip-dvc"] if not dvc else []
    cmd += ["--keep"] if keep else []
    doc = _run_json(cmd, f"data_log: ~{sizes['data_log_mb']} MB CSV and Parquet, ratchet vs "
                         f"{'dvc add vs ' if dvc else ''}the pyarrow read floor")
    r = _file_value(doc, "csv", "ratchet_cold", "mb_per_s")
    d = _file_value(doc, "csv", "dvc_add", "mb_per_s")
    return {
        "unit": "MB/s of input file (higher is better); headline = CSV, ratio = ratchet / "
                "dvc add",
        "what": f"DataClient.log of a ~{sizes['data_log_mb']} MB CSV of mixed columns and of "
                "the same rows as Parquet (hash + profile + store, fresh store) vs `dvc add` "
                "of the same file and vs reading it once with pyarrow; full detail per file "
                "under ratchet.files",
        "ratchet": doc, "baseline": "dvc",
        "ratchet_value": r, "mlflow_value": None, "dvc_value": d, "ratio": _ratio(r, d),
        "target": "ratchet within 2x of the pyarrow read floor and faster than dvc add "
                  "(CSV and Parquet); ratchet's peak RSS < half the CSV's size",
        "checks": doc.get("checks", []),
    }


def scenario_data_validation(sizes: dict[str, int], mlflow: bool,
                             keep: bool) -> dict[str, Any]:
    rows, reps = sizes["validation_rows"], sizes["validation_reps"]
    cmd = [str(ratchet_python()), str(BENCH / "validation_bench.py"), "--rows", str(rows),
           "--reps", str(reps)]
    doc = _run_json(cmd, f"data_validation: {rows:,} rows x 30 columns, 60 checks")
    value = _get(doc, "validate_s_median")
    return {
        "unit": "seconds per ratchet.data.validate call, median (lower is better)",
        "what": f"{rows:,} rows x 30 columns, 60 checks (+ dtype/nullability), ~1% failing "
                "rows in 4 columns; peak RSS in ratchet.peak_rss_mb_validate",
        "ratchet": doc, "baseline": None,
        "ratchet_value": value, "mlflow_value": None, "ratio": None,
        "peak_rss_mb": _get(doc, "peak_rss_mb_validate") or _get(doc, "peak_rss_mb_process"),
        "target": "none set: seconds and peak memory are reported",
        "checks": [],
    }


# --- pipelines: bench/pipeline_bench.py (ratchet vs Prefect vs Metaflow) -------------------


def scenario_pipelines(sizes: dict[str, int], mlflow: bool, keep: bool) -> dict[str, Any]:
    reps = sizes["pipeline_reps"]
    cmd = [str(ratchet_python()), str(BENCH / "pipeline_bench.py"), "--compact",
           "--reps", str(reps)]
    cmd += ["--keep"] if keep else []
    doc = _run_json(cmd, f"pipelines: 20-step linear pipeline, cold and cached, ratchet vs "
                         f"Prefect vs Metaflow, {reps} repetition(s)")

    def per_step(tool: str, phase: str = "cold") -> float | None:
        value = doc.get("tools", {}).get(tool, {}).get(phase, {}).get("per_step_ms")
        return float(value) if value is not None else None

    r, p = per_step("ratchet"), per_step("prefect")
    return {
        "unit": "ms of overhead per step, cold run, median (lower is better); ratio = "
                "Prefect / ratchet; cached runs and Metaflow under ratchet.tools",
        "what": "a linear pipeline of 20 trivial steps, local executor, one process per run, "
                "imports and one-time start-up excluded (reported under ratchet.tools)",
        "ratchet": doc, "baseline": "prefect",
        "ratchet_value": r, "mlflow_value": None, "prefect_value": p,
        "metaflow_value": per_step("metaflow"), "ratio": _ratio(p, r),
        "target": "ratchet < 10 ms per step; Prefect and Metaflow >= 20x ratchet's overhead",
        "checks": doc.get("checks", []),
    }


# --- end pipelines -----------------------------------------------------------------------


# --- serving: bench/serving_bench.py (online) + bench/batch_bench.py (batch) -------------


def scenario_serving(sizes: dict[str, int], mlflow: bool, keep: bool) -> dict[str, Any]:
    cmd = [str(ratchet_python()), str(BENCH / "serving_bench.py"), "--compact",
           "--requests", str(sizes["serving_requests"]),
           "--warmup-requests", str(sizes["serving_warmup_requests"]),
           "--duration", str(sizes["serving_duration_s"]),
           "--warmup-seconds", str(sizes["serving_warmup_s"])]
    cmd += ["--skip-mlflow"] if not mlflow else []
    cmd += ["--keep"] if keep else []
    online = _run_json(cmd, "serving: ratchet serve vs mlflow models serve vs bare FastAPI "
                            f"({sizes['serving_requests']} sequential requests, wrk "
                            f"{sizes['serving_duration_s']}s)")
    rows = sizes["batch_rows"]
    batch_cmd = [str(ratchet_python()), str(BENCH / "batch_bench.py"), "--compact",
                 "--rows", str(rows), *(["--keep"] if keep else [])]
    batch = _run_json(batch_cmd, f"serving: ratchet predict on {rows:,} rows vs the pyarrow "
                                 "+ model.predict floor")

    def rps(name: str) -> float | None:
        value = online.get("contenders", {}).get(name, {}).get("rps")
        return float(value) if value is not None else None

    r, m = rps("ratchet"), rps("mlflow")
    return {
        "unit": "req/s with wrk, 32 connections, 1 worker (higher is better); ratio = "
                "ratchet / mlflow models serve; latencies, floors and batch under ratchet",
        "what": "one-row requests to the same scikit-learn LogisticRegression: ratchet serve, "
                "mlflow models serve, bare FastAPI (constant / model.predict), in-process "
                "predict; and ratchet predict over a Parquet file vs a pyarrow floor",
        "ratchet": {"online": online, "batch": batch},
        "ratchet_value": r, "mlflow_value": m, "ratio": _ratio(r, m),
        "bare_value": rps("bare_model"),
        "batch_rows_per_s": batch.get("summary", {}).get("ratchet", {}).get("rows_per_s"),
        "batch_peak_rss_mb": batch.get("summary", {}).get("ratchet", {}).get("peak_rss_mb"),
        "target": "ratchet p50 <= bare endpoint p50 + 0.5 ms; req/s >= 70% of the bare "
                  "endpoint's and >= 20x MLflow's; near-linear scaling with --workers; batch: "
                  "rows/s and peak memory reported",
        "checks": online.get("checks", []) + batch.get("checks", []),
    }


# --- drift: bench/drift_bench.py (ratchet vs Evidently vs a NumPy floor) ------------------


def scenario_drift(sizes: dict[str, int], mlflow: bool, keep: bool) -> dict[str, Any]:
    rows = sizes["drift_rows"]
    cmd = [str(ratchet_python()), str(BENCH / "drift_bench.py"), "--compact",
           "--rows", str(rows), *(["--keep"] if keep else [])]
    doc = _run_json(cmd, f"drift: {rows:,} x 50 columns vs {rows:,} reference rows, ratchet "
                         "vs Evidently's DataDriftPreset vs a NumPy floor")

    def compute_s(name: str) -> float | None:
        value = doc.get("contenders", {}).get(name, {}).get("compute_s")
        return float(value) if value is not None else None

    r, e = compute_s("ratchet"), compute_s("evidently")
    return {
        "unit": "seconds of drift computation (lower is better); ratio = Evidently / ratchet; "
                "wall times, peak RSS, the floor and agreement under ratchet",
        "what": f"dataset_drift over {rows:,} rows x 50 columns (40 numeric, 10 categorical) "
                f"vs a {rows:,}-row reference, against Evidently's DataDriftPreset and a "
                "NumPy floor of the same tests, each in a fresh process",
        "ratchet": doc, "baseline": "evidently",
        "ratchet_value": r, "mlflow_value": None, "evidently_value": e,
        "floor_value": compute_s("floor"), "ratio": _ratio(e, r),
        "target": "ratchet >= 20x faster than Evidently, within 2x of the NumPy floor, peak "
                  "memory lower than Evidently's; same flagged columns",
        "checks": doc.get("checks", []),
    }


# --- ui: bench/ui_bench.py (the dashboard vs the MLflow UI in Chromium) --------------------


def scenario_ui(sizes: dict[str, int], mlflow: bool, keep: bool) -> dict[str, Any]:
    runs = sizes["ui_runs"]
    cmd = [str(ratchet_python()), str(BENCH / "ui_bench.py"), "--compact", "--runs", str(runs)]
    cmd += ["--small"] if runs < 100_000 else []
    cmd += [] if mlflow else ["--only", "ratchet"]
    doc = _run_json(cmd, f"ui: dashboard vs MLflow UI at {runs:,} runs (Chromium)")

    def tti(tool: str) -> float | None:
        value = doc.get("tools", {}).get(tool, {}).get("runs_filtered", {}).get("tti_ms_p50")
        return float(value) if value is not None else None

    r, m = tti("ratchet"), tti("mlflow")
    return {
        "unit": "ms, p50 (lower is better); headline = the filtered, sorted runs page's time "
                "to interactive; ratio = MLflow / ratchet; every page under ratchet.tools",
        "what": f"runs table ({runs:,} runs x 20 x 20) first load and filtered+sorted, a "
                "1,000,000-step chart, a compare of 100 runs: server time and Chromium",
        "ratchet": doc, "ratchet_value": r, "mlflow_value": m, "ratio": _ratio(m, r),
        "target": "ratchet server p50 < 150 ms, TTI < 1.5 s, chart < 1 s, compare < 2 s",
        "checks": doc.get("checks", []),
    }


# --- features: bench/features_bench.py (ratchet's feature store vs Feast) -------------------


def scenario_features(sizes: dict[str, int], mlflow: bool, keep: bool) -> dict[str, Any]:
    scale = "full" if sizes["features_entity_rows"] >= 1_000_000 else "small"
    cmd = [str(ratchet_python()), str(BENCH / "features_bench.py"), "--compact",
           "--scale", scale, *(["--keep"] if keep else [])]
    doc = _run_json(cmd, f"features: training set of {sizes['features_entity_rows']:,} entity "
                         "rows x 5 views x 10 features, online lookups on SQLite and Redis, "
                         "ratchet vs Feast (bench/.venv-feast)")
    summary = doc.get("summary", {})
    offline = summary.get("offline", {})
    return {
        "unit": "seconds for the training set (lower is better); ratio = Feast / ratchet; "
                "online p50/p99 per store under ratchet.summary.online",
        "what": "point-in-time training set (5 views x 10 features, TTL 2 days) over Parquet "
                "files, Feast's file offline store vs ratchet.features.training_set; then "
                "materialize and 10,000 single-entity lookups of 10 features, SQLite and Redis",
        "ratchet": doc, "baseline": "feast",
        "ratchet_value": offline.get("ratchet_join_s"), "mlflow_value": None,
        "feast_value": offline.get("feast_join_s"), "ratio": offline.get("speedup"),
        "target": "training set >= 20x faster than Feast's file store, memory bounded by the "
                  "data; online p50 <= Feast's on SQLite, <= 1 ms on Redis",
        "checks": doc.get("checks", []),
    }


RUNNERS = {
    "log_metric_single": scenario_log_metric_single,
    "log_batch": scenario_log_batch,
    "search_runs": scenario_search_runs,
    "import_time": scenario_import_time,
    "data_log": scenario_data_log,
    "data_validation": scenario_data_validation,
    "pipelines": scenario_pipelines,
    "serving": scenario_serving,
    "drift": scenario_drift,
    "ui": scenario_ui,
    "features": scenario_features,
}


def machine_info() -> dict[str, Any]:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sqlite3

    return {"cpus": os.cpu_count(), "cpu_model": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "tmpdir": tempfile.gettempdir()}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", action="append", choices=SCENARIOS, metavar="NAME",
                        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}")
    parser.add_argument("--skip-mlflow", action="store_true",
                        help="ratchet only; ratio targets are reported with pass=null")
    parser.add_argument("--skip-dvc", action="store_true",
                        help="data_log without DVC; its DVC targets are reported with pass=null")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (debugging)")
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help=f"where to write the JSON too (default {RESULTS.relative_to(REPO)})")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    sizes = QUICK if args.quick else FULL
    selected = [name for name in SCENARIOS if not args.only or name in args.only]
    with_mlflow = not args.skip_mlflow and any(n in MLFLOW_SCENARIOS for n in selected)
    mlflow_version = ensure_mlflow_venv() if with_mlflow else None
    doc: dict[str, Any] = {
        "schema": "ratchet-bench/1",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/run.py", *(argv if argv is not None
                                                         else sys.argv[1:])]),
        "quick": args.quick,
        "sizes": sizes,
        "machine": machine_info(),
        "versions": {
            "ratchet": package_version(ratchet_python(), "ratchet-mlops"),
            "ratchet_git_commit": git_commit(),
            "mlflow": mlflow_version,
            "mlflow_requirement": MLFLOW_REQUIREMENT if with_mlflow else None,
            "sqlalchemy_ratchet_venv": package_version(ratchet_python(), "sqlalchemy"),
            "sqlalchemy_mlflow_venv": (package_version(mlflow_python(), "sqlalchemy")
                                       if with_mlflow else None),
            "pyarrow_ratchet_venv": package_version(ratchet_python(), "pyarrow"),
            "duckdb_ratchet_venv": package_version(ratchet_python(), "duckdb"),
        },
        "scenarios": {},
    }
    for name in selected:
        if name == "data_log":
            result = scenario_data_log(sizes, with_mlflow, args.keep, dvc=not args.skip_dvc)
            doc["versions"]["dvc"] = result["ratchet"].get("versions", {}).get("dvc")
        elif name == "pipelines":  # the incumbents' versions, from their own venvs
            result = scenario_pipelines(sizes, with_mlflow, args.keep)
            found = result["ratchet"].get("versions", {})
            doc["versions"].update(prefect=found.get("prefect"), metaflow=found.get("metaflow"))
        elif name == "features":  # Feast in its own venv (bench/.venv-feast)
            result = scenario_features(sizes, with_mlflow, args.keep)
            feast_venv = result["ratchet"].get("versions", {}).get("feast_venv") or {}
            doc["versions"]["feast"] = feast_venv.get("feast")
        elif name == "ui":  # its own MLflow venv (bench/.venv-mlflow-ui)
            result = scenario_ui(sizes, not args.skip_mlflow, args.keep)
        elif name == "serving":  # its own MLflow venv (bench/.venv-mlflow-serve)
            result = scenario_serving(sizes, not args.skip_mlflow, args.keep)
            found = result["ratchet"]["online"].get("versions", {}).get("mlflow_venv") or {}
            doc["versions"]["mlflow_serving"] = found.get("mlflow")
        else:
            result = RUNNERS[name](sizes, with_mlflow, args.keep)
        result["pass"] = _overall([c["pass"] for c in result["checks"]])
        doc["scenarios"][name] = result
    verdicts = [c["pass"] for s in doc["scenarios"].values() for c in s["checks"]]
    doc["summary"] = {"checks_passed": sum(v is True for v in verdicts),
                      "checks_failed": sum(v is False for v in verdicts),
                      "checks_skipped": sum(v is None for v in verdicts),
                      "all_passed": _overall(verdicts)}
    doc["total_s"] = time.perf_counter() - started

    text = json.dumps(doc, indent=2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    print(text)
    _print_table(doc, args.output)
    return 0


def _overall(verdicts: list[bool | None]) -> bool | None:
    if any(v is False for v in verdicts):
        return False
    if verdicts and all(v is True for v in verdicts):
        return True
    return None


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.{digits}g}"


def _print_table(doc: dict[str, Any], output: Path) -> None:
    log(f"done in {doc['total_s']:.0f}s; results in {output}")
    for name, s in doc["scenarios"].items():
        checks = "; ".join(
            f"{c['name']}: {_fmt(c['value'])} {c['op']} {c['target']} -> "
            f"{'PASS' if c['pass'] else 'FAIL' if c['pass'] is False else 'skipped'}"
            for c in s["checks"])
        other = s.get("baseline", "mlflow")
        versus = f"  {other} {_fmt(s.get(f'{other}_value'))}" if other else ""
        log(f"{name:18} ratchet {_fmt(s['ratchet_value'])}{versus}"
            f"  ratio {_fmt(s['ratio'])}  [{checks}]")


if __name__ == "__main__":
    sys.exit(main())
