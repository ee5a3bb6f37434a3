"""Benchmark ``mlflow_api``: the official MLflow client against ``mlflow server`` and
against ``ratchet server``, the same program and workload on both, in one run.

    .venv/bin/python bench/mlflow_api_bench.py            # full run (~10 min, mostly MLflow)
    .venv/bin/python bench/mlflow_api_bench.py --quick    # a smoke run (~2 min)
    .venv/bin/python bench/mlflow_api_bench.py --only ratchet --scenario log_metric

Both servers are started (each on 127.0.0.1 and a free port, in its own process group,
each with a fresh SQLite database in a temp dir) and waited for until ``GET /health``
answers; then, scenario by scenario, ``bench/mlflow_api_client.py`` runs in MLflow's venv
once per tool (a fresh process each time, ``MLFLOW_TRACKING_URI`` the only difference):

- ``log_metric``: 10,000 ``mlflow.log_metric`` calls, synchronous, one run (points/s);
- ``log_batch``: 10,000 points in ``MlflowClient.log_batch`` calls of 1,000 (MLflow's
  limit), median of 3 fresh runs (points/s);
- ``search``: 10,000 runs seeded through the client (``create_run`` + ``log_batch``), then
  ``search_runs`` with a filter, ``order_by`` and ``max_results``, median of 5 (s);
- ``model``: ``mlflow.sklearn.log_model(..., registered_model_name=...)``, an alias, and
  ``mlflow.pyfunc.load_model("models:/NAME@champion")``, median of 3 (s).

For the logging scenarios a third contender, ``floor``, runs the same client against a
null server that answers every request at once: the MLflow client's own cost per call, the
ceiling any server reaches with it (``max_possible_ratio`` = floor / MLflow).

Every answer is checked (points read back, run names and order, predictions) before its
number counts. Goals: ratchet >= 5x MLflow on both logging scenarios, faster (> 1x) on the
others. The machine is shared: each scenario records the load average and the CPU seconds
of the client, of each server's process group and of everything else on the machine.

MLflow 3.17.2 (+ scikit-learn for the model) lives in ``bench/.venv-mlflow`` (created or
completed with ``harness.install_venv`` on first use); ``mlflow server`` runs from there
with ``--serve-artifacts`` and a local artifacts directory, ``ratchet server`` from the
project's venv. One JSON document on stdout and in ``bench/results/mlflow_api.json``;
progress on stderr. Servers are stopped by their process group (SIGTERM, SIGKILL after
20 s) and waited for, also on Ctrl+C / SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
from harness import check, ratchet_python, ratio, write_json
from run import git_commit, machine_info
from server_bench import free_port, group_alive, health, uncommitted_sources

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CLIENT = BENCH / "mlflow_api_client.py"
RESULTS = BENCH / "results" / "mlflow_api.json"
MLFLOW_VENV = BENCH / ".venv-mlflow"
MLFLOW_REQUIREMENTS = ("mlflow==3.17.2", "scikit-learn==1.9.1")
RATCHET_CLI = REPO / ".venv" / "bin" / "ratchet"
DROPPED_PREFIXES = ("RATCHET_", "MLFLOW_", "UVICORN_", "WEB_CONCURRENCY", "GUNICORN_")

TOOLS = ("mlflow", "ratchet")
FLOOR_SCENARIOS = ("log_metric", "log_batch")  # the null server stores nothing to search
SCENARIOS = ("log_metric", "log_batch", "search", "model")
# name -> (what is compared, key in the client's result, unit, higher is better, goal)
MEASURES = {
    "log_metric": ("rate", "points/s", True, 5.0),
    "log_batch": ("rate", "points/s", True, 5.0),
    "search": ("median_s", "s", False, 1.0),
    "model": ("total_s", "s", False, 1.0),
}
# Parts reported beside the compared number (ratios only, no goal of their own).
PARTS = {"model": ("register_s", "load_s"), "search": ("seed_s",)}
FULL = {"points": 10_000, "batch_points": 10_000, "chunk": 1_000, "runs": 10_000, "batch_reps": 3, "search_reps": 5,
        "model_reps": 3}
QUICK = {"points": 500, "batch_points": 2_000, "chunk": 1_000, "runs": 1_000, "batch_reps": 1, "search_reps": 3,
         "model_reps": 1}
READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 20
CLIENT_TIMEOUT_S = 1800
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A server or scenario could not be measured; the message says why."""


def log(message: str) -> None:
    print(f"[mlflow_api_bench] {message}", file=sys.stderr, flush=True)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return harness.child_env(DROPPED_PREFIXES, {"MLFLOW_ENABLE_ASYNC_LOGGING": "false",
                                                **(extra or {})})


def mlflow_python() -> Path:
    return MLFLOW_VENV / "bin" / "python"


def ensure_mlflow_venv() -> dict[str, str | None]:
    pins = dict(r.split("==") for r in MLFLOW_REQUIREMENTS)
    if not (mlflow_python().exists()
            and harness.installed(mlflow_python(), list(pins), child_env()) == pins):
        log(f"installing {' '.join(MLFLOW_REQUIREMENTS)} into "
            f"{MLFLOW_VENV.relative_to(REPO)} (one-time)")
        harness.install_venv(MLFLOW_VENV, list(MLFLOW_REQUIREMENTS), child_env())
    return harness.installed(mlflow_python(), [*pins, "sqlalchemy", "uvicorn", "requests"],
                             child_env())


# --- CPU accounting (the machine is shared) ---------------------------------------------


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def group_cpu_s(pgid: int) -> float:
    """CPU seconds of the live processes of a process group (and their reaped children)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        rest = text[text.rfind(")") + 2:].split()
        if int(rest[2]) == pgid:
            total += sum(int(x) for x in rest[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


def group_pids(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rfind(")") + 2:].split()[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


# --- servers -----------------------------------------------------------------------------


class Server:
    """One server in its own process group, stopped by that group."""

    def __init__(self, tool: str, workdir: Path) -> None:
        self.tool, self.workdir = tool, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{tool}-server.log"

    def command(self) -> tuple[list[str], dict[str, str]]:
        if self.tool == "mlflow":
            cmd = [str(MLFLOW_VENV / "bin" / "mlflow"), "server",
                   "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
                   "--serve-artifacts", "--artifacts-destination",
                   str(self.workdir / "mlartifacts"), "--host", "127.0.0.1",
                   "--port", str(self.port)]
            # mlflow execs uvicorn and its job runner from PATH
            return cmd, child_env({"PATH": f"{MLFLOW_VENV / 'bin'}{os.pathsep}"
                                           f"{os.environ.get('PATH', '')}"})
        if self.tool == "floor":
            return ([str(mlflow_python()), str(CLIENT), "null-server", "--port", str(self.port)],
                    child_env())
        cmd = [str(RATCHET_CLI), "server", "--host", "127.0.0.1", "--port", str(self.port)]
        return cmd, child_env({"RATCHET_HOME": str(self.workdir / "ratchet-home")})

    def start(self) -> dict[str, Any]:
        """Spawn the server and wait for ``GET /health``: seconds and processes."""
        cmd, env = self.command()
        with open(self.log_path, "ab") as logf:
            started = time.perf_counter()
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.workdir, stdout=logf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        while not health(self.port):
            if self.proc.poll() is not None:
                raise BenchError(f"{self.tool} server exited ({self.proc.returncode}) before "
                                 f"answering /health:\n{self.log_tail()}")
            if time.perf_counter() - started > READY_TIMEOUT_S:
                raise BenchError(f"{self.tool} server: no /health within {READY_TIMEOUT_S}s"
                                 f"\n{self.log_tail()}")
            time.sleep(0.05)
        return {"startup_s": time.perf_counter() - started, "command": cmd,
                "processes_at_health": len(group_pids(self.proc.pid))}

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after STOP_TIMEOUT_S, wait for the group."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and group_alive(pgid):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=0.2)
        if group_alive(pgid):
            log(f"{self.tool} server: SIGKILL to process group {pgid}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline and group_alive(pgid):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=0.2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None


# --- one scenario against one server ------------------------------------------------------


def client_args(scenario: str, sizes: dict[str, int]) -> list[str]:
    if scenario == "log_metric":
        return ["--points", str(sizes["points"])]
    if scenario == "log_batch":
        return ["--points", str(sizes["batch_points"]), "--chunk", str(sizes["chunk"]),
                "--reps", str(sizes["batch_reps"])]
    if scenario == "search":
        return ["--runs", str(sizes["runs"]), "--reps", str(sizes["search_reps"])]
    if scenario == "model":
        return ["--reps", str(sizes["model_reps"])]
    return []


def run_client(server: Server, scenario: str, sizes: dict[str, int]) -> dict[str, Any]:
    """One fresh client process against ``server``: its result, with the CPU spent by the
    client, the server's process group and the rest of the machine meanwhile."""
    workdir = server.workdir / "client"
    workdir.mkdir(exist_ok=True)
    cmd = [str(mlflow_python()), str(CLIENT), scenario, "--uri", server.url,
           *client_args(scenario, sizes)]
    if server.tool == "floor":
        cmd.append("--no-verify")  # it stores nothing
    load_before = os.getloadavg()
    busy0, server0 = machine_busy_s(), group_cpu_s(server.pgid)
    measured = harness.run_measured(cmd, child_env({"MLFLOW_TRACKING_URI": server.url}),
                                    workdir, f"{scenario}", CLIENT_TIMEOUT_S)
    busy = machine_busy_s() - busy0
    server_cpu = group_cpu_s(server.pgid) - server0
    lines = [line for line in measured.stdout.splitlines() if line.startswith("{")]
    if measured.exit_code != 0 or not lines:
        raise BenchError(f"{server.tool} {scenario}: exit {measured.exit_code}\n"
                         f"{measured.stderr_tail(12)}")
    result = dict(json.loads(lines[-1]))
    result["process"] = {
        "wall_s": measured.wall_s, "client_cpu_s": measured.cpu_s,
        "client_peak_rss_mb": measured.peak_rss_mb, "server_cpu_s": server_cpu,
        # what the rest of the machine used meanwhile (other work on the shared VM)
        "other_cpu_s": max(0.0, busy - measured.cpu_s - server_cpu),
        "other_busy_cores": max(0.0, busy - measured.cpu_s - server_cpu) / measured.wall_s,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    return result


def scenario_doc(name: str, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The per-scenario entry: both tools' values, the ratio (ratchet's advantage: > 1
    means ratchet is better) and the goal check."""
    key, unit, higher_better, goal = MEASURES[name]

    def value(tool: str, field: str) -> float | None:
        res = results.get(tool, {})
        if not res or "error" in res or not res.get("correct"):
            return None  # a wrong answer does not count as a number
        return None if res.get(field) is None else float(res[field])

    m, r = value("mlflow", key), value("ratchet", key)
    advantage = ratio(r, m) if higher_better else ratio(m, r)
    what = (f"{name}: ratchet {key} / mlflow" if higher_better
            else f"{name}: mlflow {key} / ratchet")
    op = ">=" if goal > 1 else ">"
    doc: dict[str, Any] = {"unit": unit, "compared": key, "higher_is_better": higher_better,
                           "mlflow_value": m, "ratchet_value": r, "ratio": advantage,
                           "ratio_means": "ratchet's advantage (> 1: ratchet better)",
                           "target": f"{op} {goal:g}x",
                           "checks": [check(what, advantage, op, goal)]}
    for part in PARTS.get(name, ()):
        doc[f"{part}_ratio"] = ratio(value("mlflow", part), value("ratchet", part))
    for tool in TOOLS:
        if tool in results:
            doc["checks"].append(check(f"{name}: {tool} answer correct",
                                       1.0 if results[tool].get("correct") else 0.0,
                                       "==", 1.0))
    floor = results.get("floor", {})
    if floor and "error" not in floor and key in floor:
        # The client's own ceiling: what a server that costs nothing would get.
        doc["floor_value"] = float(floor[key])
        doc["max_possible_ratio"] = ratio(doc["floor_value"], m)
        doc["ratchet_share_of_floor"] = ratio(r, doc["floor_value"])
    doc.update(results)
    return doc


def describe(tool: str, name: str, res: dict[str, Any]) -> str:
    if "error" in res:
        return f"{tool} {name}: FAILED: {res['error'].splitlines()[0]}"
    key, unit, _, _ = MEASURES[name]
    ok = "" if res.get("correct") or tool == "floor" else " WRONG ANSWER"
    extra = (f" (register {res['register_s']:.2f} s, load {res['load_s']:.2f} s)"
             if name == "model" else f" (seeded in {res['seed_s']:.0f} s)"
             if name == "search" else "")
    proc = res["process"]
    return (f"{tool} {name}: {res[key]:,.3f} {unit}{extra}{ok}; server CPU "
            f"{proc['server_cpu_s']:.1f} s, client CPU {proc['client_cpu_s']:.1f} s, others "
            f"{proc['other_busy_cores']:.2f} cores")


def _interrupted(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="500 single points, 2,000 batch points (1 rep), 1,000 runs "
                             "(3 searches), 1 model round: a smoke run")
    parser.add_argument("--only", action="append", choices=TOOLS,
                        help="one server (repeatable; default both)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS,
                        help="one scenario (repeatable; default all)")
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the null server (the MLflow client's own ceiling)")
    parser.add_argument("--points", type=int, help="points per logging scenario")
    parser.add_argument("--runs", type=int, help="runs seeded for search")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (server logs, databases)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"also write the JSON here (default {RESULTS.relative_to(REPO)})")
    parser.add_argument("--compact", action="store_true", help="one-line JSON")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.points:
        sizes["points"] = sizes["batch_points"] = args.points
    if args.runs:
        sizes["runs"] = args.runs
    tools = [t for t in TOOLS if not args.only or t in args.only]
    scenarios = [s for s in SCENARIOS if not args.scenario or s in args.scenario]

    signal.signal(signal.SIGTERM, _interrupted)  # servers are stopped in the finally
    started_at = dt.datetime.now(dt.UTC)
    versions: dict[str, Any] = {
        "ratchet_git_commit": git_commit(),
        "ratchet_uncommitted": uncommitted_sources(),  # the numbers are the work tree's
        "ratchet_venv": harness.installed(ratchet_python(), ["ratchet-mlops", "fastapi",
                                                            "uvicorn", "sqlalchemy"],
                                         child_env()),
        "mlflow_venv": ensure_mlflow_venv()}
    tmp = Path(tempfile.mkdtemp(prefix="mlflow-api-bench-"))
    servers: dict[str, Server] = {}
    server_info: dict[str, Any] = {}
    results: dict[str, dict[str, Any]] = {s: {} for s in scenarios}
    load_start = os.getloadavg()
    try:
        contenders = [*tools] + ([] if args.no_floor or not set(scenarios) & set(FLOOR_SCENARIOS)
                                 else ["floor"])
        for tool in contenders:  # all up before anything is measured
            workdir = tmp / tool
            workdir.mkdir()
            server = Server(tool, workdir)
            servers[tool] = server
            try:
                server_info[tool] = server.start()
            except BenchError as exc:
                log(f"{tool}: FAILED to start: {exc}")
                server_info[tool] = {"error": str(exc)}
                server.stop()
                del servers[tool]
                continue
            log(f"{tool} server up in {server_info[tool]['startup_s']:.1f} s "
                f"({server_info[tool]['processes_at_health']} processes) at {server.url}")
        for tool, server in servers.items():
            if tool == "floor":
                continue
            try:
                server_info[tool]["warm"] = run_client(server, "warm", sizes)
            except BenchError as exc:
                log(f"{tool} warm-up FAILED: {exc}")
                server_info[tool]["warm"] = {"error": str(exc)}
        for name in scenarios:
            for tool, server in servers.items():
                if tool == "floor" and name not in FLOOR_SCENARIOS:
                    continue
                log(f"{tool} {name} ...")
                try:
                    res = run_client(server, name, sizes)
                except BenchError as exc:
                    res = {"error": str(exc), "correct": False}
                results[name][tool] = res
                log(describe(tool, name, res))
    finally:
        for server in servers.values():
            server.stop()
        for tool in servers:
            server_info[tool]["log_tail"] = servers[tool].log_tail(20)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    scenario_docs = {name: scenario_doc(name, results[name]) for name in scenarios}
    checks = [c for doc in scenario_docs.values() for c in doc["checks"]]
    doc = {
        "benchmark": "mlflow_api",
        "started_at": started_at.isoformat(timespec="seconds"),
        "wall_s": (dt.datetime.now(dt.UTC) - started_at).total_seconds(),
        "machine": {**machine_info(), "loadavg_at_start": load_start,
                    "loadavg_at_end": os.getloadavg(),
                    "note": "shared VM: see each result's process.other_busy_cores"},
        "versions": versions,
        "config": {**sizes, "quick": args.quick, "tools": tools, "scenarios": scenarios,
                   "mlflow_server": "default workers (4), SQLite, --serve-artifacts",
                   "ratchet_server": "default (1 process), SQLite workspace"},
        "summary": {name: {"unit": d["unit"], "mlflow": d["mlflow_value"],
                           "ratchet": d["ratchet_value"], "ratio": d["ratio"],
                           "target": d["target"], "floor": d.get("floor_value"),
                           "max_possible_ratio": d.get("max_possible_ratio")}
                    for name, d in scenario_docs.items()},
        "floor_note": ("floor = the same MLflow client against a null server that answers "
                       "every request at once (bench/mlflow_api_client.py null-server): the "
                       "client's own cost, the best any server can do with it here; "
                       "max_possible_ratio = floor / mlflow."),
        "checks": checks,
        "servers": server_info,
        "scenarios": scenario_docs,
    }
    write_json(doc, args.out, args.compact)
    for c in checks:
        verdict = "PASS" if c["pass"] else "FAIL" if c["pass"] is False else "n/a "
        shown = None if c["value"] is None else round(c["value"], 3)
        log(f"{verdict} {c['name']}: {shown} {c['op']} {c['target']}")
    return 0 if all(c["pass"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
