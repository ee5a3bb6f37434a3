"""Benchmark ``data_log``: logging a ~1 GB CSV / Parquet file with ratchet vs ``dvc add``.

    .venv/bin/python bench/data_bench.py            # ~1 GB CSV + the same data as Parquet
    .venv/bin/python bench/data_bench.py --quick    # ~100 MB
    .venv/bin/python bench/data_bench.py --size-mb 300 --skip-dvc --phases

Prints one JSON document on stdout (progress on stderr); ``bench/run.py --only data_log``
runs it and folds the document into ``bench/results/latest.json``.

1. A seeded table of mixed columns (ints, floats with nulls, low-cardinality strings,
   high-cardinality id strings, timestamps, bools) is generated once per run into a temp
   dir, as a CSV of about ``--size-mb`` MB and as Parquet (pyarrow's default settings).
2. For each file, every measurement is a fresh process (``os.wait4`` gives its own peak
   RSS); imports happen before the clock starts, so ``op_s`` is the operation alone, and
   ``process_wall_s`` is the whole process as a user would run it:
   - floor: ``pyarrow.csv.read_csv`` / ``pyarrow.parquet.read_table`` (multi-threaded, the
     whole file in memory), and a streaming read (``pyarrow.csv.open_csv`` batches /
     Parquet row group by row group), since ratchet streams;
   - ratchet: ``DataClient.log(path, name=...)`` into a fresh store (``RATCHET_HOME`` in the
     temp dir): cold (hash + profile + store), then the same file again (identical content
     -> the existing version);
   - DVC (``bench/.venv-dvc``, created on first use; never the project's venv): in a fresh
     ``dvc init --no-scm`` repo on the same disk, the file hard-linked into the workspace,
     ``dvc add`` cold, ``dvc add`` again, ``dvc status`` -- once through the CLI (process
     wall) and once through ``dvc.repo.Repo`` in-process (``op_s``, imports excluded).
3. The cold measurements (floor reads, ratchet cold, in-process ``dvc add`` cold) run in
   ``--reps`` interleaved rounds (3; 1 with ``--quick``): each row reports the median
   round and ``op_s_all``; the rest runs once. MB/s = input file size / seconds. Goals,
   as the median of the per-round ratios: ratchet cold ``op_s`` <= 2x the full-read floor,
   and ratchet faster than ``dvc add`` (in-process ``op_s`` of both). ratchet's peak RSS
   (the worst round) is checked against half the CSV's size (bounded memory).

If a ratchet goal fails (or with ``--phases``) a further process times ratchet's phases
one by one: streaming read, read + Parquet write + hash (``write_snapshot``), the hash
alone, the DuckDB profile passes, the fsync + rename into the blob store.

Page cache: the file is read once before each file's measurements, and ``os.sync()`` runs
(untimed) between measurements, so every measurement starts from a warm cache and no
writeback from the previous one. ratchet fsyncs its snapshot before the rename (inside its
time); DVC does not fsync, so the ``dvc_cli_*`` rows also report ``sync_after_s``, the
time the kernel then took to write DVC's data out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DVC_VENV = BENCH / ".venv-dvc"
DVC_REQUIREMENT = "dvc==3.67.1"
FULL_MB = 1024
QUICK_MB = 100
SEED = 20_261_122
CHUNK_ROWS = 1 << 20  # pyarrow's default maximum row group length
CHILD_TIMEOUT_S = 1200
MB = 1_000_000  # MB/s in decimal megabytes, like disk and network rates
MIB = 1 << 20

QUIET_ENV = {"DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
             "NML_DISABLE_USAGE_LOGGING": "1", "DVC_IGNORE_ISATTY": "1"}

CATEGORIES = ["electronics", "books", "garden", "toys", "grocery", "sports", "beauty",
              "automotive", "music", "office", "pets", "baby"]
COUNTRIES = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CN", "CA", "AU", "ES", "IT", "NL",
             "SE", "PL", "MX", "KR", "TR", "AR", "ZA", "NG", "EG", "ID", "VN", "PH"]
STATUSES = ["placed", "shipped", "delivered", "returned"]


def log(message: str) -> None:
    print(f"[data_bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data


def _chunk(index: int, start: int, rows: int) -> Any:
    """Rows ``start .. start + rows`` of the seeded table (same bytes on every run)."""
    import binascii

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng([SEED, index])

    def with_nulls(values: Any, rate: float) -> Any:
        return pa.array(values, mask=rng.random(rows) < rate)

    def pick(choices: list[str], p: Any = None) -> Any:
        codes = rng.choice(len(choices), size=rows, p=p).astype(np.int32)
        return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(choices)).cast(
            pa.string())

    serial = pc.cast(pa.array(np.arange(start, start + rows, dtype=np.int64)), pa.string())
    order_id = pc.binary_join_element_wise("ord-", pc.utf8_lpad(serial, 10, "0"), "")
    hexed = binascii.hexlify(rng.bytes(rows * 16))  # 32 random hex characters per row
    offsets = np.arange(0, rows * 32 + 1, 32, dtype=np.int32)
    session = pa.StringArray.from_buffers(rows, pa.py_buffer(offsets.tobytes()),
                                          pa.py_buffer(hexed))
    weights = np.linspace(3.0, 1.0, len(CATEGORIES))
    seconds = rng.integers(0, 365 * 86_400, rows) + 1_704_067_200  # during 2024
    return pa.table({
        "order_id": order_id,  # unique
        "session": session,  # random, unique in practice
        "user_id": pa.array(rng.integers(1, 2_000_000, rows)),
        "quantity": pa.array(rng.integers(1, 100, rows)),
        "price": with_nulls(np.round(rng.lognormal(3.0, 1.0, rows), 2), 0.05),
        "score": with_nulls(rng.normal(0.0, 1.0, rows), 0.02),
        "discount": with_nulls(np.round(rng.random(rows), 3), 0.10),
        "category": pick(CATEGORIES, weights / weights.sum()),
        "country": pick(COUNTRIES),
        "status": pick(STATUSES, [0.2, 0.3, 0.45, 0.05]),
        "event_time": pa.array(seconds.astype("datetime64[s]")),
        "is_member": pa.array(rng.random(rows) < 0.3),
        "gift": with_nulls(rng.random(rows) < 0.1, 0.01),
    })


def generate(out: Path, target_mb: float) -> dict[str, Any]:
    """``data.csv`` of about ``target_mb`` MB and ``data.parquet`` with the same rows."""
    import io

    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    started = time.perf_counter()
    sample = _chunk(10**6, 0, 20_000)
    buf = io.BytesIO()
    pcsv.write_csv(sample, buf)
    bytes_per_row = len(buf.getvalue()) / sample.num_rows
    total_rows = max(1000, int(target_mb * MB / bytes_per_row))
    csv_path, parquet_path = out / "data.csv", out / "data.parquet"
    csv_writer: Any = None
    pq_writer: Any = None
    try:
        done, index = 0, 0
        while done < total_rows:
            rows = min(CHUNK_ROWS, total_rows - done)
            table = _chunk(index, done, rows)
            if csv_writer is None:
                csv_writer = pcsv.CSVWriter(csv_path, table.schema)
                pq_writer = pq.ParquetWriter(parquet_path, table.schema)  # defaults
            csv_writer.write_table(table)
            pq_writer.write_table(table)
            done, index = done + rows, index + 1
    finally:
        if csv_writer is not None:
            csv_writer.close()
        if pq_writer is not None:
            pq_writer.close()
    schema = sample.schema
    return {"rows": total_rows, "columns": len(schema),
            "schema": {f.name: str(f.type) for f in schema},
            "csv_bytes": csv_path.stat().st_size, "parquet_bytes": parquet_path.stat().st_size,
            "parquet_compression": "snappy (pyarrow default)",
            "generate_s": round(time.perf_counter() - started, 2)}


# --------------------------------------------------------------------------- children


def _rss_mb(field: str = "VmRSS") -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def _kind(path: Path) -> str:
    return "parquet" if path.suffix == ".parquet" else "csv"


def child_read_full(path: Path) -> dict[str, Any]:
    import pyarrow.csv as pcsv
    import pyarrow.dataset  # noqa: F401  (read_table imports it on first use: ~1 s)
    import pyarrow.parquet as pq

    rss_before, cpu = _rss_mb(), _cpu()
    t = time.perf_counter()
    table = pcsv.read_csv(path) if _kind(path) == "csv" else pq.read_table(path)
    op = time.perf_counter() - t
    return {"op_s": op, "op_cpu_s": _cpu() - cpu, "rows": table.num_rows,
            "table_mb": round(table.nbytes / MIB, 1), "rss_mb_before_op": rss_before}


def child_read_stream(path: Path) -> dict[str, Any]:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    rss_before, cpu = _rss_mb(), _cpu()
    rows = 0
    t = time.perf_counter()
    if _kind(path) == "csv":
        for batch in pcsv.open_csv(path):
            rows += batch.num_rows
        how = "pyarrow.csv.open_csv, batches"
    else:
        pf = pq.ParquetFile(path)
        for i in range(pf.metadata.num_row_groups):
            rows += pf.read_row_group(i).num_rows
        how = "pyarrow.parquet.ParquetFile.read_row_group, one at a time"
    return {"op_s": time.perf_counter() - t, "op_cpu_s": _cpu() - cpu, "rows": rows,
            "how": how, "rss_mb_before_op": rss_before}


def _import_ratchet_data() -> Any:
    # What DataClient.log imports lazily, imported before the clock starts.
    import importlib

    for module in ("duckdb", "pyarrow.csv", "pyarrow.parquet", "ratchet.data.profile",
                   "ratchet.data.readers", "ratchet.data.snapshot"):
        importlib.import_module(module)
    from ratchet.data.catalog import DataClient

    client = DataClient()
    # Open (and on first use create) the store before the clock starts.
    client.store.list_datasets()
    return client


def child_ratchet_log(path: Path, name: str) -> dict[str, Any]:
    t = time.perf_counter()
    client = _import_ratchet_data()
    setup = time.perf_counter() - t
    rss_before, cpu = _rss_mb(), _cpu()
    t = time.perf_counter()
    version = client.log(path, name=name)
    op = time.perf_counter() - t
    return {"op_s": op, "op_cpu_s": _cpu() - cpu, "setup_s": setup,
            "rss_mb_before_op": rss_before,
            "ref": version.ref, "version": version.version, "digest": version.digest,
            "rows": version.row_count, "snapshot_bytes": version.size_bytes,
            "ratchet_home": os.environ.get("RATCHET_HOME")}


def child_ratchet_phases(path: Path, workdir: Path) -> dict[str, Any]:
    """ratchet's logging path phase by phase, with the same internals ``DataClient.log`` uses."""
    import ratchet.data.profile as prof
    from ratchet.data.readers import open_source
    from ratchet.data.snapshot import write_snapshot
    from ratchet.hashing import hash_file

    _import_ratchet_data()
    out: dict[str, Any] = {}

    def timed(key: str, fn: Callable[[], Any]) -> Any:
        """Wall and CPU seconds of one phase, and the peak RSS during it (Linux)."""
        name = key.removesuffix("_s")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            reset = True
        except OSError:
            reset = False
        t, cpu = time.perf_counter(), _cpu()
        result = fn()
        out[key] = round(time.perf_counter() - t, 3)
        out[name + "_cpu_s"] = round(_cpu() - cpu, 3)
        out[name + "_peak_rss_mb"] = _rss_mb("VmHWM") if reset else None
        return result

    def read_all() -> int:
        return sum(b.num_rows for b in open_source(path).batches)

    timed("read_s", read_all)
    staged = workdir / "phases-snapshot.parquet"
    src = open_source(path)
    snap = timed("read_write_hash_s",
                 lambda: write_snapshot(src.batches, src.schema, staged))
    out["snapshot_bytes"] = snap.size_bytes
    timed("hash_snapshot_again_s", lambda: hash_file(str(staged)))
    passes: dict[str, float] = {}
    for fname in ("_stats_pass", "_shape_pass", "_top_k_pass"):
        original = getattr(prof, fname)

        def wrapper(*args: Any, _f: Any = original, _n: str = fname, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return _f(*args, **kw)
            finally:
                passes[_n] = passes.get(_n, 0.0) + time.perf_counter() - t

        setattr(prof, fname, wrapper)
    timed("profile_s", lambda: prof.profile_parquet(staged))
    out["profile_passes_s"] = {k.strip("_"): round(v, 3) for k, v in passes.items()}

    def fsync_rename() -> None:
        with open(staged, "rb+") as f:
            os.fsync(f.fileno())
        staged.rename(staged.with_suffix(".adopted"))

    timed("fsync_rename_s", fsync_rename)
    staged.with_suffix(".adopted").unlink()
    # Derived: what the snapshot writer adds on top of reading, and hashing's share.
    out["write_parquet_and_hash_s"] = round(out["read_write_hash_s"] - out["read_s"], 3)
    # The per-phase peak resets (clear_refs) also reset ru_maxrss: the process peak is this.
    peaks = [v for k, v in out.items() if k.endswith("_peak_rss_mb") and v is not None]
    out["peak_rss_mb_phases_max"] = max(peaks) if peaks else None
    return out


def _import_dvc() -> Any:
    import contextlib
    import importlib

    from dvc.repo import Repo

    for module in ("dvc.repo.add", "dvc.repo.status", "dvc.stage", "dvc.output",
                   "dvc_data.hashfile.build", "dvc_data.hashfile.transfer",
                   "dvc_data.hashfile.checkout", "dvc_data.hashfile.state"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    return Repo


def child_dvc(op: str, repo_dir: Path, target: str) -> dict[str, Any]:
    t = time.perf_counter()
    repo_cls = _import_dvc()
    setup = time.perf_counter() - t
    rss_before, cpu = _rss_mb(), _cpu()
    t = time.perf_counter()
    repo = repo_cls(str(repo_dir))
    try:
        if op == "add":
            stages = repo.add(target)
            result: Any = [str(s) for s in stages]
        else:
            result = repo.status()
    finally:
        repo.close()
    return {"op_s": time.perf_counter() - t, "op_cpu_s": _cpu() - cpu, "setup_s": setup,
            "rss_mb_before_op": rss_before, "result": result}


def run_child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["generate", "read_full", "read_stream", "ratchet_log",
                                         "ratchet_phases", "dvc_add", "dvc_status"])
    parser.add_argument("--path", type=Path)
    parser.add_argument("--name", default="bench")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--target-mb", type=float, default=FULL_MB)
    parser.add_argument("--repo", type=Path)
    args = parser.parse_args(argv)
    if args.mode in ("ratchet_log", "ratchet_phases"):
        sys.path.insert(0, str(REPO / "src"))
    if args.mode == "generate":
        result = generate(args.workdir, args.target_mb)
    elif args.mode == "read_full":
        result = child_read_full(args.path)
    elif args.mode == "read_stream":
        result = child_read_stream(args.path)
    elif args.mode == "ratchet_log":
        result = child_ratchet_log(args.path, args.name)
    elif args.mode == "ratchet_phases":
        result = child_ratchet_phases(args.path, args.workdir)
    else:
        result = child_dvc(args.mode.removeprefix("dvc_"), args.repo, str(args.path))
    result["peak_rss_mb_self"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                       1)
    print(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- parent


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RATCHET_", "MLFLOW_TRACKING_", "DVC_"))}
    env.update(QUIET_ENV)
    env.update(extra or {})
    return env


def spawn(cmd: list[str], *, env: dict[str, str], cwd: Path, label: str,
          json_out: bool = True) -> dict[str, Any]:
    """Run ``cmd`` to completion; its JSON (if any), wall time and its own peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        timer = threading.Timer(CHILD_TIMEOUT_S, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage alone
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{label}: exit {proc.returncode}\n{tail}")
    result: dict[str, Any] = {}
    if json_out:
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"{label}: no JSON on stdout\n{stderr[-2000:]}")
        result = json.loads(lines[-1])
    result["process_wall_s"] = wall
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # KiB on Linux
    result["process_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)
    return result


def ratchet_python() -> Path:
    candidate = REPO / ".venv" / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


def dvc_python() -> Path:
    return DVC_VENV / "bin" / "python"


def package_version(python: Path, dist: str) -> str | None:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                         env=child_env())
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_dvc_venv() -> str:
    """Create ``bench/.venv-dvc`` with DVC if it is missing; return DVC's version."""
    found = package_version(dvc_python(), "dvc") if dvc_python().exists() else None
    if found:
        return found
    log(f"creating {DVC_VENV.relative_to(REPO)} with {DVC_REQUIREMENT} (one-time)")
    base = shutil.which("python3") or sys.executable
    env = child_env()
    subprocess.run([base, "-m", "venv", "--clear", str(DVC_VENV)], check=True, env=env)
    subprocess.run([str(dvc_python()), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "uv"], check=True, env=env)
    subprocess.run([str(DVC_VENV / "bin" / "uv"), "pip", "install", "--quiet", "--python",
                    str(dvc_python()), DVC_REQUIREMENT], check=True, env=env)
    version = package_version(dvc_python(), "dvc")
    if not version:
        raise RuntimeError(f"could not install {DVC_REQUIREMENT} into {DVC_VENV}")
    return version


class Bench:
    def __init__(self, workdir: Path, data: Path, with_dvc: bool) -> None:
        self.workdir = workdir
        self.data = data
        self.with_dvc = with_dvc
        self.script = str(Path(__file__).resolve())
        self.dvc_env = child_env({
            "DVC_SITE_CACHE_DIR": str(workdir / "dvc-site-cache"),
            "DVC_GLOBAL_CONFIG_DIR": str(workdir / "dvc-global-config"),
            "DVC_SYSTEM_CONFIG_DIR": str(workdir / "dvc-system-config"),
        })

    def child(self, mode: str, *args: str, python: Path | None = None,
              env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, Any]:
        os.sync()  # no writeback from the previous measurement during this one
        cmd = [str(python or ratchet_python()), self.script, "--child", mode, *args]
        return spawn(cmd, env=env or child_env(), cwd=cwd or self.workdir, label=mode)

    def ratchet(self, path: Path, home: Path) -> dict[str, Any]:
        env = child_env({"RATCHET_HOME": str(home)})
        return self.child("ratchet_log", "--path", str(path), "--name", path.stem, env=env)

    def dvc_repo(self, path: Path, name: str) -> tuple[Path, Path]:
        repo = self.workdir / name
        repo.mkdir()
        dvc = str(DVC_VENV / "bin" / "dvc")
        for cmd in (["init", "--no-scm", "-q"], ["config", "core.analytics", "false"],
                    ["config", "core.check_update", "false"]):
            subprocess.run([dvc, *cmd], check=True, cwd=repo, env=self.dvc_env,
                           capture_output=True)
        target = repo / path.name
        os.link(path, target)  # dvc add replaces the workspace file; the source stays
        return repo, target

    def dvc_cli(self, repo: Path, target: Path, cmd: list[str]) -> dict[str, Any]:
        os.sync()
        result = spawn([str(DVC_VENV / "bin" / "dvc"), *cmd], env=self.dvc_env, cwd=repo,
                       label=f"dvc {' '.join(cmd)}", json_out=False)
        result["op_s"] = result["process_wall_s"]  # the CLI: the whole process is the op
        t = time.perf_counter()
        os.sync()
        result["sync_after_s"] = time.perf_counter() - t
        return result

    def dvc_api(self, mode: str, repo: Path, target: Path) -> dict[str, Any]:
        return self.child(mode, "--repo", str(repo), "--path", target.name,
                          python=dvc_python(), env=self.dvc_env, cwd=repo)

    def measure_file(self, path: Path, reps: int) -> dict[str, Any]:
        """Cold measurements ``reps`` times in interleaved rounds (median), the rest once."""
        kind = _kind(path)
        size = path.stat().st_size
        t = time.perf_counter()
        with path.open("rb") as f:  # warm the page cache: every tool reads from memory
            while f.read(16 * MIB):
                pass
        res: dict[str, Any] = {"file_bytes": size, "warm_read_s": time.perf_counter() - t}
        rounds: dict[str, list[dict[str, Any]]] = {
            "floor_read": [], "floor_stream": [], "ratchet_cold": [], "dvc_add": []}
        for rep in range(reps):
            log(f"{kind} ({size / MB:,.0f} MB), round {rep + 1}/{reps}: pyarrow read, "
                f"streaming read, ratchet log{', dvc add' if self.with_dvc else ''}")
            rounds["floor_read"].append(self.child("read_full", "--path", str(path)))
            rounds["floor_stream"].append(self.child("read_stream", "--path", str(path)))
            home = self.workdir / f"ratchet-home-{kind}-{rep}"
            rounds["ratchet_cold"].append(self.ratchet(path, home))
            if rep == 0:  # the same file again, into the same store
                res["ratchet_again"] = self.ratchet(path, home)
                res["ratchet_store_same_device"] = os.stat(home).st_dev == os.stat(path).st_dev
            else:
                shutil.rmtree(home)
            if not self.with_dvc:
                continue
            repo, target = self.dvc_repo(path, f"dvc-api-{kind}-{rep}")
            rounds["dvc_add"].append(self.dvc_api("dvc_add", repo, target))
            if rep == 0:
                res["dvc_add_again"] = self.dvc_api("dvc_add", repo, target)
                res["dvc_status"] = self.dvc_api("dvc_status", repo, target)
                cache = repo / ".dvc" / "cache"
                res["dvc_cache_same_device"] = os.stat(cache).st_dev == os.stat(path).st_dev
                res["dvc_cache_bytes"] = sum(p.stat().st_size for p in cache.rglob("*")
                                             if p.is_file())
            else:
                shutil.rmtree(repo)
        for key, results in rounds.items():
            if results:
                res[key] = _median_result(results)
        if self.with_dvc:
            log(f"{kind}: dvc CLI: dvc add, dvc add again, dvc status")
            repo, target = self.dvc_repo(path, f"dvc-cli-{kind}")
            res["dvc_cli_add"] = self.dvc_cli(repo, target, ["add", "-q", target.name])
            res["dvc_cli_add_again"] = self.dvc_cli(repo, target, ["add", "-q", target.name])
            res["dvc_cli_status"] = self.dvc_cli(repo, target, ["status", "-q"])
            shutil.rmtree(repo)
        for value in res.values():
            if isinstance(value, dict) and "op_s" in value:
                value["mb_per_s"] = round(size / MB / value["op_s"], 1)
                for field in ("op_s", "op_cpu_s", "process_wall_s", "setup_s", "sync_after_s"):
                    if isinstance(value.get(field), float):
                        value[field] = round(value[field], 3)
        return res

    def phases(self, path: Path) -> dict[str, Any]:
        log(f"{_kind(path)}: ratchet phases")
        env = child_env({"RATCHET_HOME": str(self.workdir / "ratchet-home-phases")})
        return self.child("ratchet_phases", "--path", str(path), "--workdir",
                          str(self.workdir), env=env)


def _median_result(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The repetition with the median ``op_s`` (lower middle for an even count)."""
    ordered = sorted(results, key=lambda r: r["op_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["reps"] = len(results)
    chosen["op_s_all"] = [round(r["op_s"], 3) for r in results]
    chosen["peak_rss_mb_max"] = max(r["peak_rss_mb"] for r in results)
    return chosen


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return round(num / den, 3)


def _op(res: dict[str, Any], key: str, field: str = "op_s") -> float | None:
    value = res.get(key)
    return None if not isinstance(value, dict) else value.get(field)


OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, t: v >= t, ">": lambda v, t: v > t,
    "<=": lambda v, t: v <= t, "<": lambda v, t: v < t,
}


def check(name: str, value: float | None, op: str, target: float) -> dict[str, Any]:
    passed = None if value is None else OPS[op](value, target)
    return {"name": name, "value": value, "op": op, "target": target, "pass": passed}


def _paired(res: dict[str, Any], num: str, den: str) -> float | None:
    """Median over rounds of num/den measured in the same round (a slow spell of the
    machine then slows both sides); the ratio of the medians with a single round."""
    a = res.get(num, {}).get("op_s_all") if isinstance(res.get(num), dict) else None
    b = res.get(den, {}).get("op_s_all") if isinstance(res.get(den), dict) else None
    if not a or not b or len(a) != len(b):
        return _ratio(_op(res, num), _op(res, den))
    return round(statistics.median(x / y for x, y in zip(a, b, strict=True)), 3)


def analyse(kind: str, res: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    size_mb = res["file_bytes"] / MIB
    cold, again = _op(res, "ratchet_cold"), _op(res, "ratchet_again")
    rss = _op(res, "ratchet_cold", "peak_rss_mb_max")
    ratios = {
        # median of the per-round ratios (the checks use these)
        "ratchet_over_floor_read": _paired(res, "ratchet_cold", "floor_read"),
        "ratchet_over_floor_stream": _paired(res, "ratchet_cold", "floor_stream"),
        "dvc_add_over_ratchet": _paired(res, "dvc_add", "ratchet_cold"),
        # ratios of the medians
        "ratchet_over_floor_read_of_medians": _ratio(cold, _op(res, "floor_read")),
        "dvc_add_over_ratchet_of_medians": _ratio(_op(res, "dvc_add"), cold),
        "ratchet_again_over_floor_read": _ratio(again, _op(res, "floor_read")),
        "dvc_add_again_over_ratchet_again": _ratio(_op(res, "dvc_add_again"), again),
        "dvc_cli_add_over_ratchet_process": _ratio(_op(res, "dvc_cli_add"),
                                                   _op(res, "ratchet_cold", "process_wall_s")),
        "ratchet_peak_rss_over_file_size": _ratio(rss, size_mb),
        "dvc_peak_rss_over_file_size": _ratio(_op(res, "dvc_add", "peak_rss_mb_max"), size_mb),
        "floor_read_peak_rss_over_file_size": _ratio(_op(res, "floor_read", "peak_rss_mb_max"),
                                                     size_mb),
    }
    checks = [
        check(f"{kind}: ratchet log s / pyarrow read s", ratios["ratchet_over_floor_read"],
              "<=", 2),
        check(f"{kind}: dvc add s / ratchet log s", ratios["dvc_add_over_ratchet"], ">", 1),
    ]
    if kind == "csv":
        check_rss = check("csv: ratchet peak RSS / file size",
                          ratios["ratchet_peak_rss_over_file_size"], "<", 0.5)
        checks.append(check_rss)
    return ratios, checks


def versions(with_dvc: bool) -> dict[str, Any]:
    py = ratchet_python()
    out: dict[str, Any] = {d: package_version(py, d) for d in
                           ("ratchet-mlops", "pyarrow", "duckdb", "numpy")}
    out["python"] = platform.python_version()
    if with_dvc:
        out["dvc"] = package_version(dvc_python(), "dvc")
        out["dvc_data"] = package_version(dvc_python(), "dvc-data")
        out["dvc_requirement"] = DVC_REQUIREMENT
    return out


def _sanity(kind: str, res: dict[str, Any], rows: int) -> None:
    """Every tool read the whole file, and logging it again found the same version."""
    for key in ("floor_read", "floor_stream", "ratchet_cold", "ratchet_again"):
        if res[key]["rows"] != rows:
            raise RuntimeError(f"{kind}: {key} saw {res[key]['rows']} rows, not {rows}")
    if res["ratchet_again"]["ref"] != res["ratchet_cold"]["ref"]:
        raise RuntimeError(f"{kind}: logging the same file again made a new version "
                           f"({res['ratchet_again']['ref']} after {res['ratchet_cold']['ref']})")


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    target_mb = args.size_mb or (QUICK_MB if args.quick else FULL_MB)
    reps = args.reps or (1 if args.quick else 3)
    with_dvc = not args.skip_dvc
    dvc_version = ensure_dvc_venv() if with_dvc else None
    workdir = Path(tempfile.mkdtemp(prefix="ratchet-bench-data-", dir=args.tmpdir))
    try:
        data = workdir / "data"
        data.mkdir()
        bench = Bench(workdir, data, with_dvc)
        log(f"generating ~{target_mb:,.0f} MB of CSV + the same rows as Parquet in {data}")
        gen = bench.child("generate", "--workdir", str(data), "--target-mb", str(target_mb))
        log(f"generated {gen['rows']:,} rows: CSV {gen['csv_bytes'] / MB:,.0f} MB, Parquet "
            f"{gen['parquet_bytes'] / MB:,.0f} MB in {gen['generate_s']:.0f}s")
        doc: dict[str, Any] = {
            "benchmark": "data_log", "target_mb": target_mb, "quick": args.quick, "reps": reps,
            "data": {k: v for k, v in gen.items() if k not in ("peak_rss_mb_self",)},
            "versions": versions(with_dvc), "dvc_version": dvc_version,
            "workdir": str(workdir), "files": {}, "checks": [],
        }
        for path in (data / "data.csv", data / "data.parquet"):
            kind = _kind(path)
            res = bench.measure_file(path, reps)
            res["ratios"], checks = analyse(kind, res)
            doc["files"][kind] = res
            doc["checks"] += checks
            _sanity(kind, res, gen["rows"])
        ratchet_failed = any(c["pass"] is False for c in doc["checks"])
        if args.phases or (ratchet_failed and not args.no_phases):
            doc["phases"] = {_kind(p): bench.phases(p)
                             for p in (data / "data.csv", data / "data.parquet")}
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    doc["total_s"] = round(time.perf_counter() - started, 1)
    return doc


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return run_child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"~{QUICK_MB} MB instead of "
                        f"~{FULL_MB} MB")
    parser.add_argument("--size-mb", type=float, help="CSV size in MB (overrides --quick)")
    parser.add_argument("--reps", type=int, help="rounds of the cold measurements, median "
                        "reported (default 3; 1 with --quick)")
    parser.add_argument("--skip-dvc", action="store_true", help="no DVC comparison")
    parser.add_argument("--phases", action="store_true",
                        help="always time ratchet's phases (default: only if a goal fails)")
    parser.add_argument("--no-phases", action="store_true", help="never time the phases")
    parser.add_argument("--tmpdir", help="where the temp dir goes (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--compact", action="store_true", help="one-line JSON")
    args = parser.parse_args(argv)
    doc = run(args)
    print(json.dumps(doc, indent=None if args.compact else 2))
    for c in doc["checks"]:
        verdict = {True: "PASS", False: "FAIL", None: "skipped"}[c["pass"]]
        log(f"{c['name']}: {c['value']} {c['op']} {c['target']} -> {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
