"""Benchmark ``batch``: ``ratchet predict`` on 10,000,000 rows vs a pyarrow + model.predict floor.

    .venv/bin/python bench/batch_bench.py                  # 10,000,000 rows (~800 MB Parquet)
    .venv/bin/python bench/batch_bench.py --rows 200000    # a smoke run
    .venv/bin/python bench/batch_bench.py --skip-ratchet   # the floor only

Prints one JSON document on stdout (progress on stderr). The model is the serving
benchmark's (``serving_bench.make_model``: scikit-learn LogisticRegression, 10 float
features f0..f9, fitted on a NumPy array), registered as ``bench-model@champion`` in a
temporary RATCHET_HOME through ratchet's Python API. The input is a seeded Parquet file of
``--rows`` rows x f0..f9 (float64): training rows drawn at random with a little Gaussian
jitter (2% of each feature's spread), so they look like the training data and few fall
outside the signature's ranges; written in chunks of ``--chunk-rows`` (one row group
each), so generating it takes bounded memory.

Measured, each in a fresh process whose output goes to files (after ``os.sync()``, with
the input already in the page cache from being written):

- ``ratchet``: ``ratchet predict bench-model@champion input.parquet -o scored.parquet
  --json`` (its defaults: validation, prediction log on; ``--also-no-log`` adds a run with
  ``--no-log`` as ``ratchet_no_log``);
- ``floor``: ``bench/serving_scenarios/batch_floor.py``: pyarrow ``iter_batches``
  (``pre_buffer=False``: bounded memory) + ``np.column_stack`` + ``model.predict`` +
  ``ParquetWriter`` (inputs + ``prediction``), 100,000-row batches like ratchet's default.

Per process: wall time (process start to exit, imports included, the same for both),
rows/s, peak RSS (the process's VmHWM, polled every 20 ms); then the output's row
count and its predictions on the first rows are checked against ``model.predict``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
from harness import check, ratio, write_json
from run import git_commit, machine_info
from serving_bench import (
    COLUMNS,
    MODEL_URI,
    RATCHET_CLI,
    SCENARIOS,
    SEED,
    BenchError,
    child_env,
    installed,
    make_model,
    ratchet_cli_problem,
    ratchet_python,
    register_ratchet,
)

ROWS = 10_000_000
CHUNK_ROWS = 1_000_000
CHECK_ROWS = 10_000  # predictions compared with model.predict on the first rows
CHILD_TIMEOUT_S = 3_600


def log(message: str) -> None:
    print(f"[batch_bench] {message}", file=sys.stderr, flush=True)


def generate_input(path: Path, rows: int, chunk_rows: int, train: Any) -> dict[str, Any]:
    """Write ``rows`` seeded rows of f0..f9 to ``path``, one chunk (row group) at a time:
    random training rows plus 2% jitter."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    rng = np.random.default_rng(SEED + 1)
    spread = train.std(axis=0) * 0.02
    schema = pa.schema([pa.field(c, pa.float64()) for c in COLUMNS])
    tmp = path.with_name(path.name + ".tmp")
    done = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        while done < rows:
            n = min(chunk_rows, rows - done)
            block = train[rng.integers(0, len(train), n)] + rng.standard_normal(
                (n, len(COLUMNS))) * spread
            writer.write_table(pa.Table.from_arrays(
                [pa.array(block[:, i]) for i in range(len(COLUMNS))], schema=schema),
                row_group_size=n)
            done += n
    os.replace(tmp, path)
    return {"rows": rows, "chunk_rows": chunk_rows, "size_mb": path.stat().st_size / 1e6,
            "generate_s": time.perf_counter() - started}


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path, name: str) -> dict[str, Any]:
    """Run ``cmd`` to completion; its wall time and peak RSS (VmHWM, polled)."""
    m = harness.run_measured(cmd, env, cwd, name, CHILD_TIMEOUT_S)
    if m.exit_code is None:
        raise BenchError(f"{name} still running after {CHILD_TIMEOUT_S}s; killed")
    if m.exit_code != 0:
        raise BenchError(f"{name} exited with {m.exit_code}: {' '.join(cmd)}\n"
                         f"{m.stderr_tail()}")
    return {"command": cmd, "wall_s": m.wall_s, "peak_rss_mb": m.peak_rss_mb,
            "cpu_s": m.cpu_s, "stdout_tail": m.stdout[-500:], "stderr_tail": m.stderr[-500:]}


def inspect_output(path: Path, model: Any, input_path: Path) -> dict[str, Any]:
    """Row count, columns and size of a scored output (a file or a directory of files), and
    whether its predictions on the first rows are the model's."""
    import numpy as np
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    if not path.exists():
        raise BenchError(f"no output at {path}")
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    rows = dataset.count_rows()
    columns = dataset.schema.names
    size = sum(f.stat().st_size for f in files)
    candidates = [c for c in columns if c == "prediction"] or [
        c for c in columns if "prediction" in c.lower() and "proba" not in c.lower()]
    check: bool | None = None
    column = candidates[0] if candidates else None
    if column is not None and len(files) == 1:
        first = next(pq.ParquetFile(input_path).iter_batches(batch_size=CHECK_ROWS))
        X = np.column_stack([first.column(c).to_numpy() for c in COLUMNS])
        got = pq.read_table(files[0], columns=[column]).column(column)
        got_head = got.slice(0, len(X)).to_numpy(zero_copy_only=False)
        check = bool(np.array_equal(got_head.astype(np.int64), model.predict(X)))
    return {"rows": rows, "columns": columns, "files": len(files), "size_mb": size / 1e6,
            "prediction_column": column, "predictions_match_first_rows": check}


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    versions: dict[str, Any] = {
        "project_venv": installed(ratchet_python(), ["ratchet-mlops", "scikit-learn", "numpy",
                                                     "pandas", "pyarrow"]),
        "ratchet_git_commit": git_commit(), "python": platform.python_version()}
    workdir = Path(tempfile.mkdtemp(prefix="ratchet-bench-batch-"))  # 0700
    result: dict[str, Any] = {}
    try:
        model, train = make_model(workdir)
        input_path = workdir / "input.parquet"
        log(f"writing {args.rows:,} rows x {len(COLUMNS)} float64 columns to "
            f"{input_path.name} in chunks of {args.chunk_rows:,}")
        result["input"] = generate_input(input_path, args.rows, args.chunk_rows, train)
        log(f"input: {result['input']['size_mb']:.0f} MB in {result['input']['generate_s']:.1f}s")
        home = workdir / ".ratchet"
        if not args.skip_ratchet:
            log("registering bench-model@champion in a temporary RATCHET_HOME")
            result["setup"] = register_ratchet(workdir, home)

        runs: dict[str, list[dict[str, Any]]] = {"floor": []}
        if not args.skip_ratchet:
            runs["ratchet"] = []
            if args.also_no_log:
                runs["ratchet_no_log"] = []
        for rep in range(args.reps):
            for name in runs:  # interleaved, so drift hits both alike
                out = workdir / f"scored-{name}.parquet"
                if out.is_dir():
                    shutil.rmtree(out)
                else:
                    out.unlink(missing_ok=True)
                if name == "floor":
                    cmd = [str(ratchet_python()), str(SCENARIOS / "batch_floor.py"),
                           "--model", str(workdir / "model.pkl"), "--input", str(input_path),
                           "--output", str(out), "--batch-rows", str(args.floor_batch_rows)]
                    env = child_env()
                else:
                    cmd = [str(RATCHET_CLI), "predict", MODEL_URI, str(input_path), "-o",
                           str(out), "--json"]
                    cmd += ["--no-log"] if name == "ratchet_no_log" else []
                    env = child_env({"RATCHET_HOME": str(home)},
                                    path_first=RATCHET_CLI.parent)
                log(f"rep {rep + 1}/{args.reps} {name}: {' '.join(cmd)}")
                measured = run_measured(cmd, env, workdir, f"{name}-{rep}")
                measured["output"] = inspect_output(out, model, input_path)
                measured["rows_per_s"] = args.rows / measured["wall_s"]
                with contextlib.suppress(ValueError, IndexError, KeyError):
                    report = json.loads((workdir / f"{name}-{rep}.stdout").read_text())
                    if name == "floor":
                        measured["op_s"] = report["op_s"]
                    else:
                        measured["report"] = report  # ratchet predict --json
                        measured["op_s"] = report["seconds"]
                log(f"rep {rep + 1}/{args.reps} {name}: {measured['wall_s']:.1f}s, "
                    f"{measured['rows_per_s']:,.0f} rows/s, peak RSS "
                    f"{measured['peak_rss_mb']:.0f} MB, {measured['output']['rows']:,} rows "
                    f"out")
                runs[name].append(measured)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    summary = {name: summarize(rs, args.rows) for name, rs in runs.items()}
    r, f = summary.get("ratchet"), summary["floor"]
    ratios = {
        "ratchet_rows_per_s_over_floor": ratio(r["rows_per_s"] if r else None,
                                                f["rows_per_s"]),
        "ratchet_peak_rss_over_floor": ratio(r["peak_rss_mb"] if r else None,
                                              f["peak_rss_mb"]),
        "ratchet_op_rows_per_s_over_floor_op": ratio(r["op_rows_per_s"] if r else None,
                                                      f["op_rows_per_s"]),
        "ratchet_no_log_rows_per_s_over_floor": ratio(
            summary["ratchet_no_log"]["rows_per_s"] if "ratchet_no_log" in summary else None,
            f["rows_per_s"]),
    }
    checks = []
    for name, s in summary.items():
        checks.append(check(f"{name}: output rows == input rows", s["output_rows_min"],
                            "==", args.rows))
        checks.append(check(f"{name}: predictions on the first {CHECK_ROWS:,} rows match "
                            "model.predict", s["predictions_match"], "==", 1))
    verdicts = [c["pass"] for c in checks]
    return {
        "schema": "ratchet-bench-batch/1",
        "benchmark": "batch",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/batch_bench.py", *sys.argv[1:]]),
        "what": f"score {args.rows:,} rows x {len(COLUMNS)} float64 features from Parquet to "
                "Parquet with the serving benchmark's LogisticRegression",
        "unit": "rows/s of input (higher is better), from process wall time; peak RSS in MB "
                "(lower is better)",
        "rows": args.rows, "reps": args.reps, "machine": machine_info(), "versions": versions,
        **result, "summary": summary, "runs": runs, "ratios": ratios, "checks": checks,
        "goals": "none set: rows/s and peak memory are reported (issue 5)",
        "goals_met": (False if False in verdicts
                      else True if verdicts and None not in verdicts else None),
        "notes": NOTES,
        "total_s": round(time.perf_counter() - started, 1),
    }


def summarize(runs: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    median = statistics.median(walls)
    matches = [r["output"]["predictions_match_first_rows"] for r in runs]
    ops = [r["op_s"] for r in runs if r.get("op_s") is not None]
    return {
        "wall_s": median, "wall_s_all": [round(w, 2) for w in walls],
        "op_s": statistics.median(ops) if ops else None,
        "op_rows_per_s": rows / statistics.median(ops) if ops else None,
        "rows_per_s": rows / median,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "output_rows_min": min(r["output"]["rows"] for r in runs),
        "output_size_mb": runs[-1]["output"]["size_mb"],
        "output_columns": runs[-1]["output"]["columns"],
        "predictions_match": (None if None in matches else int(all(matches))),
        "report": runs[-1].get("report"),  # ratchet predict --json (rows, flagged rows, ...)
    }


NOTES = [
    "wall_s is the whole process (interpreter start, imports, model load, scoring, "
    "writing), for ratchet and the floor alike; rows_per_s and the headline ratio use it. "
    "op_s is each one's own timing of the work after its imports (the floor: model load "
    "to rename; ratchet: `seconds` from `ratchet predict --json`), op_rows_per_s from it.",
    "peak_rss_mb is the process's own VmHWM polled every 20 ms (ru_maxrss would carry this "
    "benchmark's own peak into every child on Linux). The floor "
    "reads with pq.ParquetFile(pre_buffer=False, buffer_size=1 MiB): with pyarrow's "
    "default pre_buffer=True, iter_batches keeps what it read cached until the file is "
    "closed (peak RSS grows with the file: 1.1 GB for the 828 MB input).",
    "The floor writes the input columns plus an int64 `prediction` column (snappy, "
    "pyarrow defaults); output_columns / output_size_mb say what ratchet wrote.",
    "The input is in the page cache (it was just written); os.sync() runs untimed before "
    "every measurement. Other processes on the machine add noise: run --reps 3 to see it.",
    "Telemetry off in every child (MLFLOW_DISABLE_TELEMETRY, DO_NOT_TRACK, "
    "NML_DISABLE_USAGE_LOGGING); inherited RATCHET_*/MLFLOW_* settings dropped.",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS, help=f"input rows ({ROWS:,})")
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS,
                        help=f"rows per generated chunk / row group ({CHUNK_ROWS:,})")
    parser.add_argument("--floor-batch-rows", type=int, default=100_000,
                        help="record batch size of the floor (100,000)")
    parser.add_argument("--reps", type=int, default=1, help="repetitions, interleaved (1)")
    parser.add_argument("--skip-ratchet", action="store_true", help="the floor only")
    parser.add_argument("--also-no-log", action="store_true",
                        help="also time `ratchet predict --no-log` (ratchet_no_log)")
    parser.add_argument("--out", type=Path, help="also write the JSON document here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--compact", action="store_true", help="one-line JSON")
    args = parser.parse_args(argv)
    if min(args.rows, args.chunk_rows, args.floor_batch_rows, args.reps) < 1:
        parser.error("--rows, --chunk-rows, --floor-batch-rows and --reps must be >= 1")
    if not args.skip_ratchet:
        problem = ratchet_cli_problem("predict")
        if problem:
            print(f"error: cannot benchmark ratchet: {problem}. This benchmark needs "
                  "`ratchet predict MODEL_URI INPUT -o OUTPUT` in the project's venv; run "
                  "with --skip-ratchet to measure the floor only.", file=sys.stderr)
            return 2
    try:
        doc = run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_json(doc, args.out, args.compact)
    for name, s in doc["summary"].items():
        log(f"{name:8} {s['wall_s']:.1f}s  {s['rows_per_s']:,.0f} rows/s  peak RSS "
            f"{s['peak_rss_mb']:.0f} MB  output {s['output_rows_min']:,} rows, "
            f"{s['output_size_mb']:.0f} MB")
    for c in doc["checks"]:
        verdict = {True: "PASS", False: "FAIL", None: "skipped"}[c["pass"]]
        log(f"{c['name']}: {c['value']} {c['op']} {c['target']} -> {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
