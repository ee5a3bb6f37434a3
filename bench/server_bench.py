"""Benchmark ``server``: ``ratchet server`` vs ``mlflow server``, SQLite and PostgreSQL.

    .venv/bin/python bench/server_bench.py                    # full run (~15 min on 2 cores)
    .venv/bin/python bench/server_bench.py --quick            # 10,000 runs, 2,000 points
    .venv/bin/python bench/server_bench.py --runs 20000 --only ratchet --backend sqlite
    .venv/bin/python bench/server_bench.py --out bench/results/server.json

Prints one JSON document on stdout (progress on stderr). For each tool and backend, in one
run on one machine, every server bound to 127.0.0.1 on a free port:

1. **populate**: the tool's database is bulk-loaded with ``--runs`` seeded runs x 20
   metrics x 20 params (``server_scenarios/populate_{mlflow,ratchet}.py``: each tool's own
   schema and store create the tables and the experiment, then SQL inserts / ``COPY``).
   Populated SQLite files are cached under ``bench/.cache/server`` (keyed by tool version,
   schema, data and script); PostgreSQL databases (``bench_<tool>_<hex>``) are created,
   loaded and dropped in every run;
2. **start-up**: the server is started once (unmeasured: bytecode caches, page cache) and
   stopped, then started again: spawn → first ``200`` from ``GET /health``;
3. **idle memory**: after a few light requests, RSS summed over the server's process tree
   (psutil, once the tree's RSS has settled), with USS and PSS;
4. **logging**: 10,000 points one call at a time (MLflow ``mlflow.log_metric``; ratchet
   ``ratchet.log_metric``, which queues and sends in batches: timed until the run has
   ended, i.e. every point acknowledged by the server), and in batches of 1,000
   (``MlflowClient.log_batch`` / ``ratchet.log_batch``), points/s; points read back.
   Supplementary: MLflow's own async mode (``log_metric(..., synchronous=False)``, timed
   until ``flush_async_logging`` returned), not its default;
5. **search**: ``search_runs`` with ``metrics.m3 > 0.5 and params.p1 = 'x'`` ordered by
   ``metrics.m5 DESC``, first page of 100, ~30 calls after 2 warm-ups, p50/p95; every page
   is checked against the expected run names;
6. memory again after the load; the server is stopped (SIGTERM to its process group,
   SIGKILL after 20 s), its database dropped.

MLflow (``mlflow==3.17.2`` + ``psycopg2-binary``, and psutil for the memory probe) lives in
``bench/.venv-mlflow-server``, created with ``harness.install_venv`` on first use; ratchet's
side runs in the project's venv. Every child runs with MLFLOW_DISABLE_TELEMETRY=true,
DO_NOT_TRACK=1 and no inherited RATCHET_* / MLFLOW_* settings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from harness import check, ratchet_python, ratio, write_json
from run import git_commit, machine_info

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SCENARIOS = BENCH / "server_scenarios"
CACHE = BENCH / ".cache" / "server"
RESULTS = BENCH / "results" / "server.json"
MLFLOW_VENV = BENCH / ".venv-mlflow-server"
MLFLOW_REQUIREMENTS = ("mlflow==3.17.2", "psycopg2-binary==2.9.13", "psutil==7.2.2")
RATCHET_CLI = REPO / ".venv" / "bin" / "ratchet"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql+{driver}://postgres@127.0.0.1:5432/{db}"

TOOLS = ("mlflow", "ratchet")
BACKENDS = ("sqlite", "postgresql")
DROPPED_PREFIXES = ("RATCHET_", "MLFLOW_", "UVICORN_", "WEB_CONCURRENCY", "GUNICORN_")

# The goals, and what MLflow measured on this machine before (for reference).
GOAL_LOG_SPEEDUP = 10.0
GOAL_SEARCH_P50_MS = 100.0
GOAL_RSS_FRACTION = 0.10
GOAL_STARTUP_S = 2.0
REFERENCE = {"mlflow_single_points_per_s": 139, "mlflow_batch_points_per_s": 6600,
             "mlflow_idle_rss_mb": 3000, "mlflow_idle_processes": 15}

READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 20
TIMING_NOTE = ("ratchet's remote client queues log_metric points and sends them in batches "
               "from a background thread; log_single is timed from the first call until the "
               "run has ended, when every point has been sent and acknowledged by the server "
               "(durable in its database). MLflow's log_metric is one synchronous request.")


class BenchError(Exception):
    """One contender could not be measured; the message says why."""


def log(message: str) -> None:
    print(f"[server_bench] {message}", file=sys.stderr, flush=True)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = harness.child_env(DROPPED_PREFIXES, {"MLFLOW_ENABLE_ASYNC_LOGGING": "false"})
    env.update(extra or {})
    return env


def mlflow_python() -> Path:
    return MLFLOW_VENV / "bin" / "python"


def ensure_mlflow_venv() -> dict[str, str | None]:
    pins = dict(r.split("==") for r in MLFLOW_REQUIREMENTS)
    if not (mlflow_python().exists()
            and harness.installed(mlflow_python(), list(pins), child_env()) == pins):
        log(f"installing {' '.join(MLFLOW_REQUIREMENTS)} into "
            f"{MLFLOW_VENV.relative_to(REPO)} (one-time)")
        harness.install_venv(MLFLOW_VENV, list(MLFLOW_REQUIREMENTS), child_env())
    return harness.installed(mlflow_python(), [*pins, "sqlalchemy", "uvicorn", "fastapi"],
                             child_env())


def uncommitted_sources() -> list[str]:
    """Files under src/ that differ from the commit (the numbers are the work tree's)."""
    out = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
                         capture_output=True, text=True)
    return [line[3:] for line in out.stdout.splitlines()] if out.returncode == 0 else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_json(cmd: list[str], env: dict[str, str], cwd: Path, timeout_s: float,
             what: str) -> dict[str, Any]:
    """Run a scenario script; its last JSON line on stdout."""
    try:
        out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                             timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        # The search prints its summary after every call: keep what was measured.
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        partial = [line for line in stdout.splitlines() if line.startswith("{")]
        if partial:
            return {**json.loads(partial[-1]), "timed_out_after_s": timeout_s}
        raise BenchError(f"{what}: no answer within {timeout_s:.0f}s") from None
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = "\n".join(out.stderr.strip().splitlines()[-12:])
        raise BenchError(f"{what}: exit {out.returncode}\n{tail}")
    return dict(json.loads(lines[-1]))


# --- databases ------------------------------------------------------------------------


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)  # database names made here: [a-z0-9_] only


def pg_version() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else None
    except Exception:
        return None


def digest(paths: list[Path], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for path in sorted(paths):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def cache_key(tool: str, runs: int, mlflow_version: str | None) -> str:
    common = [SCENARIOS / "data.py", SCENARIOS / f"populate_{tool}.py"]
    if tool == "mlflow":
        return f"mlflow-{digest(common, str(mlflow_version))}-{runs}"
    store = REPO / "src" / "ratchet" / "store"
    schema = [store / "schema.py", store / "database.py", *store.glob("migrations/**/*.py")]
    return f"ratchet-{digest(common + schema, '')}-{runs}"


@dataclass
class Database:
    backend: str
    server_url: str             # what the server is given
    workdir: Path
    pg_name: str | None = None

    def drop(self) -> None:
        if self.pg_name:
            with contextlib.suppress(Exception):
                pg_admin(f"DROP DATABASE IF EXISTS {self.pg_name} WITH (FORCE)")
            self.pg_name = None


def populate(tool: str, backend: str, workdir: Path, runs: int, use_cache: bool,
             mlflow_version: str | None) -> tuple[Database, dict[str, Any]]:
    """A database of ``runs`` seeded runs for ``tool``: from the cache, or loaded now."""
    python = mlflow_python() if tool == "mlflow" else ratchet_python()
    script = [str(python), str(SCENARIOS / f"populate_{tool}.py"), "--runs", str(runs)]
    if tool == "mlflow":
        script += ["--artifact-root", str(workdir / "artifacts")]
    if backend == "sqlite":
        path = workdir / f"{tool}.db"
        db = Database(backend, f"sqlite:///{path}", workdir)
        cached = CACHE / f"{cache_key(tool, runs, mlflow_version)}.db"
        if use_cache and cached.exists():
            t0 = time.perf_counter()
            shutil.copyfile(cached, path)
            return db, {"cached": True, "copy_s": time.perf_counter() - t0,
                        "cache_file": str(cached.relative_to(REPO))}
        result = run_json([*script, "--db-url", db.server_url], child_env(), workdir, 1800,
                          f"populate {tool}/{backend}")
        if use_cache:
            CACHE.mkdir(parents=True, exist_ok=True)
            for stale in CACHE.glob(f"{tool}-*-{runs}.db"):
                stale.unlink()  # one file per tool and size: the current schema's
            tmp = cached.with_suffix(".tmp")
            shutil.copyfile(path, tmp)
            tmp.replace(cached)
        return db, {"cached": False, **result}
    name = f"bench_{tool}_{secrets.token_hex(4)}"
    pg_admin(f"CREATE DATABASE {name}")
    driver = "psycopg2" if tool == "mlflow" else "psycopg"
    db = Database(backend, PG_URL.format(driver=driver, db=name), workdir, pg_name=name)
    try:
        result = run_json([*script, "--db-url", db.server_url], child_env(), workdir, 1800,
                          f"populate {tool}/{backend}")
    except BaseException:
        db.drop()
        raise
    return db, {"cached": False, "database": name, **result}


# --- servers ---------------------------------------------------------------------------


class Server:
    """One server in its own process group, stopped by that group."""

    def __init__(self, tool: str, db: Database, workers: int | None) -> None:
        self.tool, self.db, self.workers = tool, db, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.known_pids: set[int] = set()
        self.log_path = db.workdir / f"{tool}-server.log"

    def command(self) -> tuple[list[str], dict[str, str]]:
        if self.tool == "mlflow":
            cmd = [str(MLFLOW_VENV / "bin" / "mlflow"), "server", "--backend-store-uri",
                   self.db.server_url, "--default-artifact-root",
                   str(self.db.workdir / "artifacts"), "--artifacts-destination",
                   str(self.db.workdir / "mlartifacts"), "--host", "127.0.0.1", "--port",
                   str(self.port)]
            if self.workers:
                cmd += ["--workers", str(self.workers)]
            # mlflow execs uvicorn and its job runner from its own venv
            env = child_env({"PATH": f"{MLFLOW_VENV / 'bin'}{os.pathsep}{os.environ['PATH']}"})
            return cmd, env
        cmd = [str(RATCHET_CLI), "server", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers:
            cmd += ["--workers", str(self.workers)]
        home = self.db.workdir / "server-home"
        return cmd, child_env({"RATCHET_HOME": str(home), "RATCHET_DB": self.db.server_url,
                               "RATCHET_ARTIFACTS": str(self.db.workdir / "server-artifacts")})

    def start(self) -> float:
        """Spawn the server; seconds until ``GET /health`` first answered 200."""
        cmd, env = self.command()
        with open(self.log_path, "ab") as logf:
            started = time.perf_counter()
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.db.workdir, stdout=logf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.tool} server exited ({self.proc.returncode}) before "
                                 f"answering /health:\n{self.log_tail()}")
            if health(self.port):
                return time.perf_counter() - started
            if time.perf_counter() - started > READY_TIMEOUT_S:
                raise BenchError(f"{self.tool} server: no /health within {READY_TIMEOUT_S}s"
                                 f"\n{self.log_tail()}")
            time.sleep(0.01)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def memory(self, settle_s: float) -> dict[str, Any]:
        assert self.proc is not None
        out = run_json([str(mlflow_python()), str(SCENARIOS / "proctree.py"),
                        str(self.proc.pid), "--settle-s", str(settle_s)], child_env(),
                       self.db.workdir, settle_s + 60, f"{self.tool} memory")
        self.known_pids.update(p["pid"] for p in out["per_process"])
        return out

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after STOP_TIMEOUT_S; then any process
        of the tree seen earlier that left the group."""
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
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for pid in self.known_pids:
            if pid_alive(pid) and pid_in_workdir(pid, self.db.workdir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.proc = None
        self.known_pids.clear()


def health(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def pid_in_workdir(pid: int, workdir: Path) -> bool:
    """Still one of ours (not a reused pid): its working directory is the contender's."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).is_relative_to(workdir)
    except OSError:
        return False


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


# --- one contender -----------------------------------------------------------------------


def client(tool: str, server: Server, phase: str, args: argparse.Namespace,
           timeout_s: float) -> dict[str, Any]:
    opts = ["--points", str(args.points), "--batch", str(args.batch), "--reps",
            str(args.batch_reps), "--calls", str(args.search_calls), "--max-s",
            str(args.search_max_s), "--runs", str(args.runs)]
    workdir = server.db.workdir
    if tool == "mlflow":
        cmd = [str(mlflow_python()), str(SCENARIOS / "client_mlflow.py"), phase,
               "--uri", server.url, *opts]
        env = child_env()
    else:
        cmd = [str(ratchet_python()), str(SCENARIOS / "client_ratchet.py"), phase, *opts]
        env = child_env({"RATCHET_TRACKING_URI": server.url,
                         "RATCHET_HOME": str(workdir / "client-home")})
        if args.ratchet_token:
            env["RATCHET_TRACKING_TOKEN"] = args.ratchet_token
    return run_json(cmd, env, workdir, timeout_s, f"{tool} {phase}")


def measure(tool: str, backend: str, args: argparse.Namespace, tmp: Path,
            mlflow_version: str | None) -> dict[str, Any]:
    workdir = tmp / f"{tool}-{backend}"
    workdir.mkdir(parents=True)
    out: dict[str, Any] = {"tool": tool, "backend": backend}
    log(f"{tool}/{backend}: populating {args.runs:,} runs")
    db, out["populate"] = populate(tool, backend, workdir, args.runs, not args.no_cache,
                                   mlflow_version)
    try:
        pop = out["populate"]
        log(f"{tool}/{backend}: populated "
            + (f"from the cache ({pop['copy_s']:.1f}s)" if pop["cached"]
               else f"in {pop['total_s']:.1f}s"))
        workers = args.mlflow_workers if tool == "mlflow" else args.ratchet_workers
        server = Server(tool, db, workers)
        with running(server):
            out["first_start_s"] = server.start()  # unmeasured: warms caches
        with running(Server(tool, db, workers)) as server:
            out["startup_s"] = server.start()
            out["server_command"] = server.command()[0]
            log(f"{tool}/{backend}: up in {out['startup_s']:.2f}s "
                f"(first start {out['first_start_s']:.2f}s)")
            out["warm"] = client(tool, server, "warm", args, 300)
            out["idle_memory"] = server.memory(settle_s=60)
            log(f"{tool}/{backend}: idle RSS {out['idle_memory']['rss_mb']:.0f} MB in "
                f"{out['idle_memory']['processes']} processes")
            phases = [("log_single", 1800), ("log_batch", 600),
                      ("search", args.search_max_s + 900)]
            if tool == "mlflow" and not args.no_mlflow_async:
                phases.insert(1, ("log_single_async", 1800))
            for phase, timeout in phases:
                try:
                    out[phase] = client(tool, server, phase, args, timeout)
                except BenchError as exc:  # the other phases still count
                    log(f"{tool}/{backend}: {phase} FAILED: {exc}")
                    out[phase] = {"error": str(exc), "correct": False}
                    continue
                summary = (f"p50 {out[phase]['p50_ms']:.1f} ms, p95 {out[phase]['p95_ms']:.1f}"
                           f" ms over {out[phase]['calls']} calls" if phase == "search"
                           else f"{out[phase]['rate']:,.0f} points/s")
                ok = "" if out[phase]["correct"] else " WRONG RESULT"
                log(f"{tool}/{backend}: {phase}: {summary}{ok}")
            out["memory_after_load"] = server.memory(settle_s=10)
    finally:
        db.drop()
    return out


# --- the document ------------------------------------------------------------------------


def value(results: dict[str, Any], tool: str, backend: str, *path: str) -> float | None:
    node: Any = results.get(tool, {}).get(backend)
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return None if node is None else float(node)


def checks_for(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for backend in BACKENDS:
        if backend not in results.get("ratchet", {}) and backend not in results.get("mlflow", {}):
            continue
        for phase in ("log_single", "log_batch"):
            checks.append(check(f"{backend}: {phase} points/s, ratchet / mlflow",
                                ratio(value(results, "ratchet", backend, phase, "rate"),
                                      value(results, "mlflow", backend, phase, "rate")),
                                ">=", GOAL_LOG_SPEEDUP))
        checks.append(check(f"{backend}: ratchet search_runs p50 (ms)",
                            value(results, "ratchet", backend, "search", "p50_ms"),
                            "<", GOAL_SEARCH_P50_MS))
        checks.append(check(f"{backend}: idle RSS, ratchet / mlflow",
                            ratio(value(results, "ratchet", backend, "idle_memory", "rss_mb"),
                                  value(results, "mlflow", backend, "idle_memory", "rss_mb")),
                            "<=", GOAL_RSS_FRACTION))
        checks.append(check(f"{backend}: ratchet start-up (s)",
                            value(results, "ratchet", backend, "startup_s"),
                            "<", GOAL_STARTUP_S))
    for tool, backends in results.items():
        for backend, res in backends.items():
            for phase in ("log_single", "log_single_async", "log_batch", "search"):
                if isinstance(res.get(phase), dict):
                    checks.append(check(f"{backend}: {tool} {phase} result correct",
                                        1.0 if res[phase]["correct"] else 0.0, "==", 1.0))
    return checks


def ratios_for(results: dict[str, Any]) -> dict[str, Any]:
    """ratchet / MLflow for every measured number (informational, beside the checks)."""
    out: dict[str, Any] = {}
    for backend in BACKENDS:
        row = {
            "single_vs_mlflow_sync": ("log_single", "rate", "log_single", "rate"),
            "single_vs_mlflow_async": ("log_single", "rate", "log_single_async", "rate"),
            "batch": ("log_batch", "rate", "log_batch", "rate"),
            "search_p50_speedup": ("search", "p50_ms", "search", "p50_ms"),
            "idle_rss_fraction": ("idle_memory", "rss_mb", "idle_memory", "rss_mb"),
            "idle_pss_fraction": ("idle_memory", "pss_mb", "idle_memory", "pss_mb"),
            "startup_speedup": ("startup_s", None, "startup_s", None),
        }
        values = {}
        for name, (rp, rk, mp, mk) in row.items():
            r = value(results, "ratchet", backend, *(k for k in (rp, rk) if k))
            m = value(results, "mlflow", backend, *(k for k in (mp, mk) if k))
            # speed-ups of times: MLflow's time over ratchet's
            values[name] = ratio(m, r) if name.endswith("speedup") else ratio(r, m)
        if any(v is not None for v in values.values()):
            out[backend] = values
    return out


def summary_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for backend in BACKENDS:
        for tool in TOOLS:
            res = results.get(tool, {}).get(backend)
            if res is None:
                continue
            if "error" in res:
                rows.append({"tool": tool, "backend": backend, "error": res["error"][:300]})
                continue

            def pick(*path: str, res: dict[str, Any] = res) -> Any:
                node: Any = res
                for key in path:
                    node = node.get(key) if isinstance(node, dict) else None
                return None if node is None else round(float(node), 3)

            rows.append({"tool": tool, "backend": backend,
                         "single_points_per_s": pick("log_single", "rate"),
                         "single_async_points_per_s": pick("log_single_async", "rate"),
                         "batch_points_per_s": pick("log_batch", "rate"),
                         "search_p50_ms": pick("search", "p50_ms"),
                         "search_p95_ms": pick("search", "p95_ms"),
                         "idle_rss_mb": pick("idle_memory", "rss_mb"),
                         "idle_pss_mb": pick("idle_memory", "pss_mb"),
                         "idle_processes": pick("idle_memory", "processes"),
                         "startup_s": pick("startup_s")})
    return rows


def _interrupted(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000,
                        help="runs loaded for search_runs (each 20 metrics, 20 params)")
    parser.add_argument("--points", type=int, default=10_000, help="metric points logged")
    parser.add_argument("--batch", type=int, default=1_000, help="points per batch call")
    parser.add_argument("--batch-reps", type=int, default=3, help="batch repetitions (median)")
    parser.add_argument("--search-calls", type=int, default=30)
    parser.add_argument("--search-max-s", type=float, default=180.0,
                        help="stop a tool's timed search calls after this long")
    parser.add_argument("--quick", action="store_true",
                        help="10,000 runs, 2,000 points, 10 search calls (a smoke run)")
    parser.add_argument("--only", action="append", choices=TOOLS, help="one tool (repeatable)")
    parser.add_argument("--backend", action="append", choices=BACKENDS,
                        help="one backend (repeatable; default both)")
    parser.add_argument("--mlflow-workers", type=int, default=None,
                        help="mlflow server --workers (default: MLflow's own, 4)")
    parser.add_argument("--ratchet-workers", type=int, default=None,
                        help="ratchet server --workers (default: ratchet's own, 1)")
    parser.add_argument("--no-mlflow-async", action="store_true",
                        help="skip the supplementary MLflow log_metric(synchronous=False) run")
    parser.add_argument("--ratchet-token", default=None,
                        help="RATCHET_TRACKING_TOKEN for the clients (not needed on loopback)")
    parser.add_argument("--no-cache", action="store_true",
                        help="populate SQLite again instead of copying bench/.cache/server")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"also write the JSON here (default {RESULTS.relative_to(REPO)})")
    parser.add_argument("--compact", action="store_true", help="one-line JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.points, args.search_calls = 10_000, 2_000, 10
    tools = [t for t in TOOLS if not args.only or t in args.only]
    backends = [b for b in BACKENDS if not args.backend or b in args.backend]

    # A SIGTERM runs the finally blocks (servers stopped, databases dropped) as Ctrl+C does.
    signal.signal(signal.SIGTERM, _interrupted)
    started_at = dt.datetime.now(dt.UTC)
    versions: dict[str, Any] = {"ratchet_git_commit": git_commit(),
                                "ratchet_uncommitted": uncommitted_sources(),
                                "postgresql": pg_version()}
    ratchet_versions = harness.installed(ratchet_python(), ["ratchet", "sqlalchemy", "uvicorn",
                                                            "fastapi", "psycopg"], child_env())
    versions["ratchet_venv"] = ratchet_versions
    versions["mlflow_venv"] = ensure_mlflow_venv()  # also the memory probe's psutil
    mlflow_version = versions["mlflow_venv"].get("mlflow")
    tmp = Path(tempfile.mkdtemp(prefix="server-bench-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        for backend in backends:
            for tool in tools:
                try:
                    res = measure(tool, backend, args, tmp, mlflow_version)
                except BenchError as exc:
                    log(f"{tool}/{backend}: FAILED: {exc}")
                    res = {"tool": tool, "backend": backend, "error": str(exc)}
                results.setdefault(tool, {})[backend] = res
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    checks = checks_for(results)
    doc = {
        "benchmark": "server",
        "started_at": started_at.isoformat(timespec="seconds"),
        "wall_s": (dt.datetime.now(dt.UTC) - started_at).total_seconds(),
        "machine": {**machine_info(), "loadavg_at_end": os.getloadavg()},
        "versions": versions,
        "config": {"runs": args.runs, "metrics_per_run": 20, "params_per_run": 20,
                   "points": args.points, "batch": args.batch, "batch_reps": args.batch_reps,
                   "search_calls": args.search_calls, "search_max_s": args.search_max_s,
                   "mlflow_workers": args.mlflow_workers or "default (4)",
                   "ratchet_workers": args.ratchet_workers or "default (1)",
                   "quick": args.quick, "tools": tools, "backends": backends},
        "timing_note": TIMING_NOTE,
        "reference_measured_earlier": REFERENCE,
        "summary": summary_table(results),
        "checks": checks,
        "ratios": ratios_for(results),
        "results": results,
    }
    write_json(doc, args.out, args.compact)
    for row in doc["summary"]:
        log(json.dumps(row))
    for c in checks:
        log(f"{'PASS' if c['pass'] else 'FAIL' if c['pass'] is False else 'n/a '} {c['name']}: "
            f"{c['value'] if c['value'] is None else round(c['value'], 3)} {c['op']} "
            f"{c['target']}")
    return 0 if all(r and "error" not in r for b in results.values() for r in b.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
