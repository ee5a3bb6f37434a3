"""Benchmark ``drift``: ratchet's ``dataset_drift`` vs Evidently's data drift preset vs a NumPy floor.

    .venv/bin/python bench/drift_bench.py                    # 1,000,000 x 50 vs 1,000,000 (~5 min)
    .venv/bin/python bench/drift_bench.py --quick            # 100,000 rows (~1 min)
    .venv/bin/python bench/drift_bench.py --skip-evidently   # ratchet and the floor only
    .venv/bin/python bench/drift_bench.py --only evidently --only floor --rows 200000

Prints one JSON document on stdout (progress and a summary on stderr); ``bench/run.py
--only drift`` runs it and folds the document into ``bench/results/latest.json``.

The data (``bench/drift_scenarios/generate.py``): seeded reference and current Parquet
files of ``--ref-rows`` / ``--rows`` rows x 50 columns (40 numeric: normal, lognormal,
uniform, integer-valued; 10 categorical strings with 3-30 categories), written in chunks.
13 columns drift by design (10 numeric shifted or rescaled, 3 categorical with changed
frequencies), 3 more by a trivial amount that no distance test at threshold 0.1 should
flag; the manifest next to the files lists them.

Contenders, each a fresh process (``bench/drift_scenarios/run_*.py``) that reads both files
with ``pandas.read_parquet`` and prints one JSON line:

- ``ratchet``: ``ratchet.monitoring.drift.dataset_drift(reference_df, current_df)`` with
  its defaults, in the project's ``.venv``;
- ``evidently``: ``Report([DataDriftPreset()]).run(current, reference)`` with its defaults
  (column types declared from the manifest), in ``bench/.venv-evidently`` (Evidently
  0.7.23 with pandas 2.3.3: it needs pandas < 3), created with uv on first use;
- ``floor``: the same tests as Evidently's automatic choice at this size (normalized
  Wasserstein for numeric columns, Jensen-Shannon for categorical ones and for numeric
  ones with at most 5 distinct values, threshold 0.1) in straight NumPy/SciPy, one thread
  (``--floor-workers`` to change), in the project's ``.venv``.

Per contender: the process's wall time (start to exit, imports included), the drift
computation alone (``compute_s``, timed inside the process), import and read times, and
peak RSS (the process's VmHWM, polled every 20 ms; not wait4's ru_maxrss, which on Linux
carries the parent's high-water mark into a child). Then: speed and memory ratios, the
agreement of the flagged sets (Jaccard, pairwise and against the designed set), the
statistics compared column by column where two contenders used the same test, and the
goals of issue 6 as checks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import harness
from harness import check, ratchet_python, ratio, write_json
from run import git_commit, machine_info

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SCENARIOS = BENCH / "drift_scenarios"
EVIDENTLY_VENV = BENCH / ".venv-evidently"
# The newest Evidently on the index here; it needs pandas < 3. pyarrow as in the project's
# venv, so both read the same files with the same reader.
EVIDENTLY_REQUIREMENTS = ("evidently==0.7.23", "pandas==2.3.3", "pyarrow==26.0.1")
ROWS = 1_000_000
QUICK_ROWS = 100_000
CHILD_TIMEOUT_S = 3_600
CONTENDERS = ("floor", "ratchet", "evidently")
GOAL_SPEEDUP_VS_EVIDENTLY = 20.0
GOAL_OVER_FLOOR = 2.0

DROPPED_PREFIXES = ("RATCHET_", "MLFLOW_TRACKING_", "MLFLOW_REGISTRY_", "EVIDENTLY_")

WARM_IMPORTS = {
    "floor": "import numpy, pandas, pyarrow.parquet, scipy.spatial.distance",
    "ratchet": "import pandas, pyarrow.parquet, ratchet.monitoring.drift",
    "evidently": "import pandas, pyarrow.parquet, evidently.presets",
}


class BenchError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[drift_bench] {message}", file=sys.stderr, flush=True)


def evidently_python() -> Path:
    return EVIDENTLY_VENV / "bin" / "python"


def python_for(contender: str) -> Path:
    return evidently_python() if contender == "evidently" else ratchet_python()


def child_env() -> dict[str, str]:
    """Telemetry off (Evidently phones home unless DO_NOT_TRACK is set), no inherited
    ratchet/MLflow/Evidently settings."""
    return harness.child_env(DROPPED_PREFIXES)


def installed(python: Path, dists: list[str]) -> dict[str, str | None]:
    return harness.installed(python, dists, child_env())


def ensure_evidently_venv() -> None:
    """Create or fix ``bench/.venv-evidently`` so it holds the pinned versions (uv)."""
    pins = dict(r.split("==") for r in EVIDENTLY_REQUIREMENTS)
    py = evidently_python()
    if py.exists() and installed(py, list(pins)) == pins:
        return
    log(f"installing {' '.join(EVIDENTLY_REQUIREMENTS)} into "
        f"{EVIDENTLY_VENV.relative_to(REPO)} (one-time)")
    try:
        harness.install_venv(EVIDENTLY_VENV, list(EVIDENTLY_REQUIREMENTS), child_env())
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None


def ratchet_problem() -> str | None:
    """Why the ratchet contender cannot run (None when it can)."""
    code = "from ratchet.monitoring.drift import dataset_drift"
    out = subprocess.run([str(ratchet_python()), "-c", code], capture_output=True, text=True,
                         env=child_env(), cwd=REPO)
    if out.returncode == 0:
        return None
    last = (out.stderr.strip().splitlines() or ["(no error output)"])[-1]
    return f"`{code}` fails in {ratchet_python()}: {last}"


def warm_up(contender: str, data: Path) -> None:
    """Untimed: import once (bytecode compiled, files in the page cache)."""
    subprocess.run([str(python_for(contender)), "-c", WARM_IMPORTS[contender]], check=True,
                   env=child_env(), cwd=data, stdout=subprocess.DEVNULL)


def read_through(*paths: Path) -> None:
    """Untimed: bring the data files into the page cache."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(16 << 20):
                pass


# ----------------------------------------------------------------------------- measuring
def run_measured(cmd: list[str], cwd: Path, name: str) -> dict[str, Any]:
    """Run ``cmd`` to completion; its wall time, peak RSS (VmHWM, polled) and output."""
    m = harness.run_measured(cmd, child_env(), cwd, name, CHILD_TIMEOUT_S)
    if m.exit_code is None:
        return {"error": f"still running after {CHILD_TIMEOUT_S}s; killed"}
    code, stdout = m.exit_code, m.stdout
    result: dict[str, Any] = {"command": cmd, "exit_code": code, "wall_s": m.wall_s,
                              "peak_rss_polled_mb": m.peak_rss_mb, "cpu_s": m.cpu_s}
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        result["error"] = f"exit {code}: {m.stderr_tail()}"
        return result
    result.update(json.loads(lines[-1]))
    # The child's own last reading of VmHWM (just before exit) may exceed the last poll.
    result["peak_rss_mb"] = max(result["peak_rss_polled_mb"], result.get("hwm_end_mb") or 0)
    return result


def contender_cmd(name: str, data: Path, floor_workers: int) -> list[str]:
    cmd = [str(python_for(name)), str(SCENARIOS / f"run_{name}.py"), "--data", str(data)]
    return cmd + (["--workers", str(floor_workers)] if name == "floor" else [])


# ----------------------------------------------------------------------------- analysis
def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[-1].get("error") if runs else "not run", "runs": runs}

    def med(key: str) -> float | None:
        values = [r[key] for r in ok if r.get(key) is not None]
        return statistics.median(values) if values else None

    last = ok[-1]
    hwm_read = med("hwm_after_read_mb")
    peak = max(r["peak_rss_mb"] for r in ok)
    return {
        "wall_s": med("wall_s"), "compute_s": med("compute_s"), "import_s": med("import_s"),
        "read_s": med("read_s"), "cpu_s": med("cpu_s"), "peak_rss_mb": peak,
        "rss_after_read_mb": hwm_read,
        "compute_added_rss_mb": None if hwm_read is None else peak - hwm_read,
        "wall_s_all": [round(r["wall_s"], 2) for r in ok],
        "compute_s_all": [round(r["compute_s"], 3) for r in ok],
        "compute_detail": last.get("compute_detail"),
        "flagged": last["flagged"], "n_flagged": len(last["flagged"]),
        "share": last.get("share"), "drift": last.get("drift"),
        "tests_used": _count(c.get("test") for c in last["columns"].values()),
        "versions": last.get("versions"), "workers": last.get("workers"),
        "rows_reference": last.get("rows_reference"), "rows_current": last.get("rows_current"),
        **({"count_consistent": last["count_consistent"]} if "count_consistent" in last
           else {}),
        "errors": [r["error"] for r in runs if "error" in r],
        "columns": last["columns"],
        "runs": runs,
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items()))


def jaccard(a: set[str], b: set[str]) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def compare(summary: dict[str, dict[str, Any]], spec: dict[str, Any]) -> dict[str, Any]:
    """Flagged-set agreement and column-by-column statistics of the contenders that ran."""
    done = {n: s for n, s in summary.items() if "error" not in s}
    sets = {n: set(s["flagged"]) for n, s in done.items()}
    sets["expected"] = set(spec["expected_drifted"])
    agreement = {}
    for a, b in combinations(sets, 2):
        agreement[f"{a}_vs_{b}"] = {"jaccard": jaccard(sets[a], sets[b]),
                                    f"only_{a}": sorted(sets[a] - sets[b]),
                                    f"only_{b}": sorted(sets[b] - sets[a])}
    statistics_cmp = {}
    for a, b in combinations(done, 2):
        ca, cb = done[a]["columns"], done[b]["columns"]
        same = [c for c in ca if c in cb and ca[c]["test"] == cb[c]["test"]]
        diffs = {c: abs(ca[c]["statistic"] - cb[c]["statistic"]) for c in same
                 if ca[c].get("statistic") is not None and cb[c].get("statistic") is not None}
        worst = max(diffs, key=lambda c: diffs[c]) if diffs else None
        statistics_cmp[f"{a}_vs_{b}"] = {
            "same_test_columns": len(same),
            "max_abs_statistic_diff": diffs[worst] if worst else None,
            "max_diff_column": worst,
            "different_test": {c: [ca[c]["test"], cb[c]["test"]] for c in ca
                               if c in cb and ca[c]["test"] != cb[c]["test"]},
        }
    expected = {c["name"]: c["drift"] for c in spec["columns"]}
    per_column = {
        name: {"designed": expected.get(name),
               **{n: {k: s["columns"][name].get(k) for k in ("test", "statistic",
                                                             "p_value", "drifted")}
                  for n, s in done.items() if name in s["columns"]}}
        for name in expected}
    return {"agreement": agreement, "statistics": statistics_cmp, "per_column": per_column}


def analyse(summary: dict[str, dict[str, Any]],
            comparison: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    def get(name: str, key: str) -> float | None:
        s = summary.get(name)
        return None if not s or "error" in s else s.get(key)

    ratios = {
        "evidently_over_ratchet_compute": ratio(get("evidently", "compute_s"),
                                                 get("ratchet", "compute_s")),
        "evidently_over_ratchet_wall": ratio(get("evidently", "wall_s"),
                                              get("ratchet", "wall_s")),
        "ratchet_over_floor_compute": ratio(get("ratchet", "compute_s"),
                                             get("floor", "compute_s")),
        "ratchet_over_floor_wall": ratio(get("ratchet", "wall_s"), get("floor", "wall_s")),
        "ratchet_over_evidently_peak_rss": ratio(get("ratchet", "peak_rss_mb"),
                                                  get("evidently", "peak_rss_mb")),
        "ratchet_over_floor_peak_rss": ratio(get("ratchet", "peak_rss_mb"),
                                              get("floor", "peak_rss_mb")),
        "evidently_over_floor_compute": ratio(get("evidently", "compute_s"),
                                               get("floor", "compute_s")),
        "evidently_over_floor_wall": ratio(get("evidently", "wall_s"),
                                            get("floor", "wall_s")),
    }

    def agree(a: str, b: str) -> float | None:
        pair = comparison["agreement"].get(f"{a}_vs_{b}") or comparison["agreement"].get(
            f"{b}_vs_{a}")
        return pair["jaccard"] if pair else None

    checks = [
        check("Evidently / ratchet drift computation time",
              ratios["evidently_over_ratchet_compute"], ">=", GOAL_SPEEDUP_VS_EVIDENTLY),
        check("ratchet / NumPy floor drift computation time",
              ratios["ratchet_over_floor_compute"], "<=", GOAL_OVER_FLOOR),
        check("ratchet / Evidently peak RSS", ratios["ratchet_over_evidently_peak_rss"], "<",
              1.0),
        check("ratchet vs Evidently flagged columns (Jaccard)", agree("ratchet", "evidently"),
              "==", 1.0),
        check("ratchet vs the designed drifted columns (Jaccard)",
              agree("ratchet", "expected"), "==", 1.0),
        check("floor vs Evidently flagged columns (Jaccard; the floor reproduces Evidently)",
              agree("floor", "evidently"), "==", 1.0),
    ]
    return ratios, checks


NOTES = [
    "compute_s is the drift computation alone, timed inside each process after both files "
    "are read: ratchet = dataset_drift() + to_dict(); Evidently = 2 x Dataset.from_pandas + "
    "Report([DataDriftPreset()]).run() + snapshot.dict() (parts in compute_detail); floor = "
    "its per-column loop. wall_s is the whole process (interpreter start, imports, reading "
    "both Parquet files, computing, printing), measured by the driver. The goal checks use "
    "compute_s; the wall ratios are reported next to them.",
    "peak_rss_mb is the process's VmHWM (polled every 20 ms, and read by the process itself "
    "just before it exits): it includes both DataFrames. rss_after_read_mb is VmHWM right "
    "after reading; compute_added_rss_mb = peak - that. The contenders read the same files "
    "with pandas.read_parquet but not the same pandas: the project's venv has pandas 3 "
    "(string columns as its str dtype), Evidently's pandas 2.3 (Python object strings), "
    "which costs Evidently memory and time before its computation starts.",
    "Tests: Evidently's automatic choice with > 1,000 reference rows is normalized "
    "Wasserstein (numeric, threshold 0.1; numeric columns with <= 5 distinct values get "
    "Jensen-Shannon on value frequencies instead) and Jensen-Shannon distance (categorical, "
    "threshold 0.1), drifted when the score is >= the threshold. The floor reproduces that "
    "rule exactly. statistics.*.max_abs_statistic_diff compares the statistics of each pair "
    "on the columns where both used the same test; different_test lists the others (e.g. "
    "n38, 5 distinct values: Jensen-Shannon for Evidently and the floor).",
    "Evidently's column types are declared from the manifest (DataDefinition) so that its "
    "type inference cannot make an integer column categorical; ratchet and the floor take "
    "the kind from the dtype (numbers numeric, strings categorical), which gives the same "
    "split here.",
    "Threads: ratchet's dataset_drift uses its default worker threads; the floor is single-"
    "threaded unless --floor-workers is given; Evidently uses one thread for its Python "
    "loop (NumPy/BLAS may use more inside).",
    "Every child gets DO_NOT_TRACK=1, EVIDENTLY_DISABLE_TELEMETRY=1, "
    "MLFLOW_DISABLE_TELEMETRY=true and NML_DISABLE_USAGE_LOGGING=1, and no inherited "
    "RATCHET_/MLFLOW_TRACKING_/EVIDENTLY_ variables. Each contender is imported once, "
    "untimed, before the measurements; the data files are in the page cache; os.sync() runs "
    "before each measurement.",
]


# ----------------------------------------------------------------------------- driver
def run(args: argparse.Namespace, contenders: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    versions: dict[str, Any] = {
        "project_venv": installed(ratchet_python(), ["ratchet-mlops", "numpy", "pandas",
                                                     "scipy", "pyarrow"]),
        "ratchet_git_commit": git_commit(), "python": platform.python_version()}
    if "evidently" in contenders:
        ensure_evidently_venv()
        versions["evidently_venv"] = installed(evidently_python(), [
            "evidently", "pandas", "numpy", "scipy", "pyarrow", "scikit-learn"])
        versions["evidently_requirements"] = list(EVIDENTLY_REQUIREMENTS)

    workdir = Path(tempfile.mkdtemp(prefix="ratchet-bench-drift-"))  # 0700
    data = args.data_dir.resolve() if args.data_dir else workdir / "data"
    try:
        log(f"data: {args.rows:,} current rows vs {args.ref_rows:,} reference rows x 50 "
            f"columns in {data}")
        gen = subprocess.run([str(ratchet_python()), str(SCENARIOS / "generate.py"),
                              "--dir", str(data), "--rows", str(args.rows),
                              "--ref-rows", str(args.ref_rows), "--seed", str(args.seed)],
                             env=child_env(), capture_output=True, text=True)
        if gen.returncode != 0:
            raise BenchError(f"generate.py failed:\n{gen.stderr[-2000:]}")
        spec = json.loads((data / "manifest.json").read_text())
        reused = json.loads(gen.stdout.strip().splitlines()[-1]).get("reused")
        log(f"data: reference {spec['reference_mb']} MB, current {spec['current_mb']} MB "
            + ("(reused)" if reused else f"written in {spec['generate_s']} s"))
        read_through(data / "reference.parquet", data / "current.parquet")
        for name in contenders:
            warm_up(name, workdir)

        runs: dict[str, list[dict[str, Any]]] = {n: [] for n in contenders}
        for rep in range(args.reps):
            for name in contenders:  # interleaved, so drift in the machine hits all alike
                cmd = contender_cmd(name, data, args.floor_workers)
                log(f"rep {rep + 1}/{args.reps} {name}: {' '.join(cmd)}")
                res = run_measured(cmd, workdir, f"{name}-{rep}")
                runs[name].append(res)
                if "error" in res:
                    log(f"rep {rep + 1}/{args.reps} {name} FAILED: {res['error']}")
                else:
                    log(f"rep {rep + 1}/{args.reps} {name}: wall {res['wall_s']:.1f}s, "
                        f"compute {res['compute_s']:.2f}s, peak RSS "
                        f"{res['peak_rss_mb']:.0f} MB, {len(res['flagged'])} columns "
                        f"flagged")
    finally:
        if args.keep:
            log(f"kept {workdir}" + (f" and {data}" if args.data_dir else ""))
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    summary = {name: summarize(rs) for name, rs in runs.items()}
    comparison = compare(summary, spec)
    ratios, checks = analyse(summary, comparison)
    verdicts = [c["pass"] for c in checks]
    for s in summary.values():  # raw per-run results without the big per-column tables
        for r in s.get("runs", []):
            r.pop("columns", None)
    return {
        "schema": "ratchet-bench-drift/1",
        "benchmark": "drift",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/drift_bench.py", *sys.argv[1:]]),
        "quick": args.quick, "reps": args.reps,
        "what": f"drift report over {args.rows:,} current rows vs {args.ref_rows:,} "
                "reference rows x 50 columns (40 numeric, 10 categorical); ratchet "
                "dataset_drift vs Evidently DataDriftPreset vs a NumPy floor",
        "unit": "seconds (lower is better); ratios as named; peak RSS in MB",
        "data": {k: v for k, v in spec.items() if k != "columns"},
        "data_columns": spec["columns"],
        "machine": machine_info(), "versions": versions,
        "contenders": {n: {k: v for k, v in s.items() if k != "columns"}
                       for n, s in summary.items()},
        "ratios": ratios, **comparison,
        "goals": {"evidently_over_ratchet_compute_at_least": GOAL_SPEEDUP_VS_EVIDENTLY,
                  "ratchet_over_floor_compute_at_most": GOAL_OVER_FLOOR,
                  "ratchet_peak_rss_below_evidently": True},
        "checks": checks,
        "goals_met": (False if False in verdicts
                      else True if verdicts and None not in verdicts else None),
        "notes": NOTES + ([f"--quick ({args.rows:,} rows): the verdicts are not the spec's, "
                           "which is 1,000,000 x 50 vs 1,000,000."] if args.quick else [])
                 + (["With <= 1,000 reference rows Evidently and ratchet switch to p-value "
                     "tests (KS, chi-square); the floor implements only the large-sample "
                     "tests, so its flags and times are not comparable at this size."]
                    if args.ref_rows <= 1_000 else []),
        "total_s": round(time.perf_counter() - started, 1),
    }


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_summary(doc: dict[str, Any]) -> None:
    log(f"{doc['what']}")
    for name, s in doc["contenders"].items():
        if "error" in s:
            log(f"{name:9} FAILED: {s['error']}")
            continue
        log(f"{name:9} wall {_fmt(s['wall_s'], '.1f')}s  compute {_fmt(s['compute_s'])}s  "
            f"import {_fmt(s['import_s'])}s  read {_fmt(s['read_s'])}s  peak RSS "
            f"{_fmt(s['peak_rss_mb'], '.0f')} MB  flagged {s['n_flagged']}: "
            f"{' '.join(s['flagged'])}")
    r = doc["ratios"]
    log(f"Evidently/ratchet compute {_fmt(r['evidently_over_ratchet_compute'], '.1f')}x, "
        f"wall {_fmt(r['evidently_over_ratchet_wall'], '.1f')}x; ratchet/floor compute "
        f"{_fmt(r['ratchet_over_floor_compute'])}x; ratchet/Evidently peak RSS "
        f"{_fmt(r['ratchet_over_evidently_peak_rss'])}")
    for pair, a in doc["agreement"].items():
        diff = {k: v for k, v in a.items() if k.startswith("only_") and v}
        log(f"flagged {pair}: Jaccard {a['jaccard']:.2f}" + (f" {diff}" if diff else ""))
    for pair, s in doc["statistics"].items():
        log(f"statistics {pair}: {s['same_test_columns']} columns with the same test, max "
            f"|diff| {_fmt(s['max_abs_statistic_diff'], '.2e')} ({s['max_diff_column']}); "
            f"different tests: {s['different_test'] or 'none'}")
    for c in doc["checks"]:
        verdict = {True: "PASS", False: "FAIL", None: "skipped"}[c["pass"]]
        value = "-" if c["value"] is None else f"{c['value']:.3g}"
        log(f"{c['name']}: {value} {c['op']} {c['target']} -> {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int,
                        help=f"current rows (default {ROWS:,}; --quick: {QUICK_ROWS:,})")
    parser.add_argument("--ref-rows", type=int, help="reference rows (default: --rows)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_ROWS:,} rows on each side (a smoke run)")
    parser.add_argument("--skip-evidently", action="store_true",
                        help="ratchet and the floor only (Evidently's checks: pass null)")
    parser.add_argument("--only", action="append", choices=CONTENDERS, metavar="NAME",
                        help=f"run only this contender (repeatable): {', '.join(CONTENDERS)}")
    parser.add_argument("--reps", type=int, default=1,
                        help="repetitions, interleaved; medians reported (1)")
    parser.add_argument("--floor-workers", type=int, default=1,
                        help="threads for the NumPy floor (1: the straight floor)")
    parser.add_argument("--seed", type=int, default=20_240_611, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path,
                        help="generate the data here and keep it (reused when it matches)")
    parser.add_argument("--out", type=Path, help="also write the JSON document here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--compact", action="store_true", help="one-line JSON")
    args = parser.parse_args(argv)
    args.rows = args.rows or (QUICK_ROWS if args.quick else ROWS)
    args.ref_rows = args.ref_rows or args.rows
    if min(args.rows, args.ref_rows, args.reps, args.floor_workers) < 1:
        parser.error("--rows, --ref-rows, --reps and --floor-workers must be >= 1")
    contenders = [c for c in CONTENDERS if (not args.only or c in args.only)
                  and not (c == "evidently" and args.skip_evidently)]
    if not contenders:
        parser.error("no contender left to run")
    if "ratchet" in contenders:
        problem = ratchet_problem()
        if problem:
            print(f"error: cannot benchmark ratchet: {problem}. This benchmark needs "
                  "ratchet.monitoring.drift.dataset_drift(reference_df, current_df) in the "
                  "project's venv; run with --only evidently --only floor to measure the "
                  "others.", file=sys.stderr)
            return 2
    try:
        doc = run(args, contenders)
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_json(doc, args.out, args.compact)
    print_summary(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
