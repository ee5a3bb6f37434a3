"""The dashboard benchmark's workspace, built once and cached on disk.

    .venv/bin/python bench/ui_data.py ROOT                 # 100,000 runs (~8-15 min once)
    .venv/bin/python bench/ui_data.py ROOT --small         # 1,000 runs, 10,000 steps (~10 s)
    .venv/bin/python bench/ui_data.py ROOT --runs 20000

    from ui_data import build                             # sys.path: bench/
    built = build(Path("/tmp/ui-bench"), runs=1_000)      # -> Built (home, ids, names)
    ws = built.workspace()                                 # a ratchet Workspace on it

Three experiments, written through ratchet's own store API (``workspace.stores.tracking``:
``create_run``, ``log_params``, ``log_batch``, ``set_run_status``; no SQL):

- ``bench-ui``: ``runs`` finished runs x 20 params (``p0``..``p19``; ``p1`` in x/y/z/w) x 20
  metrics (``m0``..``m19``, one point each), the runs table's workload. The filtered,
  sorted page is ``FILTER`` ordered by ``ORDER_BY`` (~12.5 % of the runs match).
- ``bench-ui-history``: one run whose metric ``loss`` has ``history_steps`` (1,000,000)
  steps, the long chart's workload.
- ``bench-ui-compare``: ``compare_runs`` (100) runs x 20 params x 20 metrics, plus
  ``loss`` and ``accuracy`` histories of ``COMPARE_STEPS`` steps each, the compare page's.

The values are seeded (stdlib ``random``): ``bench/ui_mlflow_load.py`` imports the
generators below (standard library only at module level) to give MLflow the same data.

The build goes into ``ROOT/ratchet-<runs>-<steps>-<compare>-<key>.partial`` and is renamed
when complete, with ``built.json`` inside; ``key`` hashes ``DATA_VERSION`` and ratchet's
schema, so a changed generator or schema builds anew. An interrupted build resumes where it
stopped (runs found by name; a run is complete once it is ``finished``). A complete build
is reused as is (``build`` returns in milliseconds). ``--workers N`` writes the runs from
N processes (SQLite serializes the commits; the Python around them runs in parallel).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ratchet.workspace import Workspace

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

SEED = 20261217
DATA_VERSION = 1  # bump when the generators below change: cached builds are keyed by it
N_PARAMS = 20
N_METRICS = 20
P1_VALUES = ("x", "y", "z", "w")
BASE_TIME_MS = 1_760_000_000_000

EXPERIMENT = "bench-ui"
HISTORY_EXPERIMENT = "bench-ui-history"
COMPARE_EXPERIMENT = "bench-ui-compare"
HISTORY_RUN = "long-history"
HISTORY_KEY = "loss"
COMPARE_KEYS = ("loss", "accuracy")
COMPARE_STEPS = 1_000

# The runs table's filtered, sorted page: ~1/2 have m3 > 0.5 and ~1/4 have p1 = 'x'.
FILTER = "metrics.m3 > 0.5 and params.p1 = 'x'"
ORDER_BY = "metrics.m5 DESC"

DEFAULT_RUNS = 100_000
DEFAULT_HISTORY_STEPS = 1_000_000
DEFAULT_COMPARE_RUNS = 100
SMALL = {"runs": 1_000, "history_steps": 10_000, "compare_runs": 100}
HISTORY_CHUNK = 50_000  # points per log_batch call for the long history
PROGRESS_EVERY = 5_000


# --- the data (standard library only: MLflow's loader imports these too) ---------------


@dataclass(frozen=True)
class SeedRun:
    index: int
    name: str
    start_time: int
    params: tuple[str, ...]     # p0..p19
    metrics: tuple[float, ...]  # m0..m19, one point each at step 0

    @property
    def end_time(self) -> int:
        return self.start_time + 900

    def param_dict(self) -> dict[str, str]:
        return {f"p{k}": v for k, v in enumerate(self.params)}

    def metric_points(self) -> list[tuple[str, float, int, int]]:
        return [(f"m{k}", v, 0, self.start_time + 500) for k, v in enumerate(self.metrics)]


def seed_runs(n: int, *, seed: int = SEED, prefix: str = "run-") -> Iterator[SeedRun]:
    """The runs table's runs: the same values, in the same order, for both tools."""
    rng = random.Random(seed)
    rand, choice, randrange = rng.random, rng.choice, rng.randrange
    for i in range(n):
        params = tuple(choice(P1_VALUES) if k == 1 else f"v{k}-{randrange(50)}"
                       for k in range(N_PARAMS))
        metrics = tuple(rand() for _ in range(N_METRICS))
        yield SeedRun(i, f"{prefix}{i:07d}", BASE_TIME_MS + i * 1000, params, metrics)


def compare_runs(n: int) -> Iterator[SeedRun]:
    return seed_runs(n, seed=SEED + 1, prefix="compare-")


def history(steps: int, *, seed: int = SEED + 2) -> Iterator[tuple[int, float, int]]:
    """A training curve with noise and a slow oscillation: (step, value, timestamp)."""
    rng = random.Random(seed)
    gauss = rng.gauss
    scale = max(steps / 20, 1.0)
    for i in range(steps):
        value = 1.0 / (1.0 + i / scale) + 0.05 * math.sin(i / (scale / 3)) + gauss(0, 0.01)
        yield i, value, BASE_TIME_MS + i


def compare_history(run_index: int, key: str) -> Iterator[tuple[int, float, int]]:
    """Each compare run's ``loss``/``accuracy`` curve: its own rate and noise."""
    rng = random.Random(SEED + 3 + run_index * 7 + COMPARE_KEYS.index(key))
    rate = 0.002 + 0.004 * rng.random()
    floor = 0.05 + 0.2 * rng.random()
    for i in range(COMPARE_STEPS):
        decay = floor + (1 - floor) * math.exp(-rate * i) + rng.gauss(0, 0.01)
        yield i, (decay if key == "loss" else 1.0 - decay), BASE_TIME_MS + i * 10


def expected_page(n: int, size: int = 100) -> list[str]:
    """Run names of the filtered, sorted page over ``n`` seeded runs, in order."""
    hits = [(r.metrics[5], r.name) for r in seed_runs(n)
            if r.metrics[3] > 0.5 and r.params[1] == "x"]
    hits.sort(reverse=True)
    return [name for _, name in hits[:size]]


# --- the ratchet build ------------------------------------------------------------------


@dataclass
class Built:
    """What a complete build holds, and where (``built.json`` in ``home``)."""

    home: str
    db_url: str
    artifacts: str
    runs: int
    history_steps: int
    compare_runs: int
    experiment_ids: dict[str, str]
    history_run_id: str
    compare_run_ids: list[str]
    build_s: float
    phases_s: dict[str, float] = field(default_factory=dict)
    cached: bool = False

    def workspace(self) -> Workspace:
        from ratchet.config import Settings
        from ratchet.workspace import Workspace

        return Workspace(Settings(home=Path(self.home), db_url=self.db_url,
                                  artifacts_uri=self.artifacts))

    def env(self) -> dict[str, str]:
        """The ``RATCHET_*`` variables that point ``ratchet ui``/``server`` at it."""
        return {"RATCHET_HOME": self.home, "RATCHET_DB": self.db_url,
                "RATCHET_ARTIFACTS": self.artifacts}


def cache_key() -> str:
    h = hashlib.sha256(f"ui-data-{DATA_VERSION}".encode())
    store = REPO / "src" / "ratchet" / "store"
    for path in sorted([store / "schema.py", *store.glob("migrations/**/*.py")]):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


def log(message: str) -> None:
    print(f"[ui_data] {message}", file=sys.stderr, flush=True)


def build(root: Path | str, runs: int = DEFAULT_RUNS, *,
          history_steps: int = DEFAULT_HISTORY_STEPS,
          compare_runs_n: int = DEFAULT_COMPARE_RUNS, small: bool = False,
          quiet: bool = False, workers: int = 1) -> Built:
    """The workspace under ``root`` (built now unless a complete one is there).

    An interrupted build's runs are kept: the next call finishes the runs it had started
    and writes the rest. ``workers`` processes write ``bench-ui``'s runs side by side (on
    a machine whose CPUs are shared, the build's Python time is what they split)."""
    if small:
        runs, history_steps, compare_runs_n = (SMALL["runs"], SMALL["history_steps"],
                                               SMALL["compare_runs"])
    root = Path(root).expanduser().resolve()
    final = root / f"ratchet-{runs}-{history_steps}-{compare_runs_n}-{cache_key()}"
    manifest = final / "built.json"
    if manifest.exists():
        doc = json.loads(manifest.read_text())
        doc["cached"] = True
        return Built(**doc)
    partial = final.with_name(final.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    say = (lambda _m: None) if quiet else log
    built = _build_into(partial, final, runs, history_steps, compare_runs_n, say, workers)
    (partial / "built.json").write_text(json.dumps(asdict(built), indent=2) + "\n")
    partial.rename(final)
    say(f"done in {built.build_s:.0f}s: {final}")
    return built


def _open(home: Path) -> Workspace:
    from ratchet.config import Settings
    from ratchet.workspace import Workspace

    return Workspace(Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                              artifacts_uri=str(home / "artifacts")))


def _write_run(tracking: Any, experiment_id: str, r: SeedRun,
               extra: list[tuple[str, float, int, int]] | None = None) -> str:
    """One run as a script would log it: create, params, metrics, finished (last, so a
    finished run is a complete one)."""
    run_id = str(tracking.create_run(experiment_id, name=r.name, start_time=r.start_time).run_id)
    tracking.log_params(run_id, r.param_dict())
    tracking.log_batch(run_id, r.metric_points() + (extra or []))
    tracking.set_run_status(run_id, "finished", end_time=r.end_time)
    return run_id


def _runs_worker(home: str, experiment_id: str, indices: list[int], worker: int,
                 quiet: bool) -> int:
    """Write the seeded runs at ``indices`` (a worker process's share)."""
    tracking = _open(Path(home)).stores.tracking
    wanted = set(indices)
    t0, done = time.perf_counter(), 0
    for r in seed_runs(max(indices) + 1):
        if r.index not in wanted:
            continue
        _write_run(tracking, experiment_id, r)
        done += 1
        if not quiet and (done % PROGRESS_EVERY == 0 or done == len(indices)):
            spent = time.perf_counter() - t0
            log(f"  worker {worker}: {done:,}/{len(indices):,} runs, {done / spent:,.0f} "
                f"runs/s, ~{(len(indices) - done) * spent / done:,.0f}s left")
    return done


def _existing(tracking: Any, experiment_id: str) -> dict[str, Any]:
    """The experiment's runs by name (id, status, what was logged)."""
    found: dict[str, Any] = {}
    token = None
    while True:
        page, token = tracking.search_runs([experiment_id], max_results=50_000,
                                           page_token=token)
        found.update((run.name, run) for run in page)
        if not token:
            return found


def _build_into(home: Path, final: Path, runs: int, history_steps: int, compare_n: int,
                say: Any, workers: int) -> Built:
    started = time.perf_counter()
    ws = _open(home)
    tracking = ws.stores.tracking
    phases: dict[str, float] = {}
    ids = {name: tracking.get_or_create_experiment(name).experiment_id
           for name in (EXPERIMENT, HISTORY_EXPERIMENT, COMPARE_EXPERIMENT)}

    t0 = time.perf_counter()
    have = _existing(tracking, ids[EXPERIMENT])
    todo = [r for r in seed_runs(runs) if r.name not in have]
    for r in seed_runs(runs):  # started by an interrupted build: finish them
        run = have.get(r.name)
        if run is not None and run.status != "finished":
            tracking.log_params(run.run_id, r.param_dict())
            if not run.metrics:
                tracking.log_batch(run.run_id, r.metric_points())
            tracking.set_run_status(run.run_id, "finished", end_time=r.end_time)
    say(f"{EXPERIMENT}: {runs:,} runs x {N_PARAMS} params x {N_METRICS} metrics into {home}"
        f" ({len(have):,} there already; {len(todo):,} to write, {workers} worker(s))")
    if todo:
        indices = [r.index for r in todo]
        shares = [indices[w::workers] for w in range(workers) if indices[w::workers]]
        if len(shares) == 1:
            _runs_worker(str(home), ids[EXPERIMENT], shares[0], 0, say is not log)
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(len(shares)) as pool:
                pool.starmap(_runs_worker, [(str(home), ids[EXPERIMENT], share, w,
                                             say is not log)
                                            for w, share in enumerate(shares)])
    phases["runs_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say(f"{HISTORY_EXPERIMENT}: one run, {HISTORY_KEY!r} with {history_steps:,} steps")
    previous = _existing(tracking, ids[HISTORY_EXPERIMENT]).get(HISTORY_RUN)
    if previous is not None and previous.status == "finished":
        history_run = previous.run_id
    else:
        if previous is not None:
            raise RuntimeError(f"{home}: an interrupted build left the history run "
                               "unfinished; remove the folder and build again")
        history_run = tracking.create_run(ids[HISTORY_EXPERIMENT], name=HISTORY_RUN,
                                          start_time=BASE_TIME_MS).run_id
        tracking.log_params(history_run, {"steps": str(history_steps)})
        chunk: list[tuple[str, float, int, int]] = []
        for step, value, ts in history(history_steps):
            chunk.append((HISTORY_KEY, value, step, ts))
            if len(chunk) == HISTORY_CHUNK:
                tracking.log_batch(history_run, chunk)
                chunk = []
        if chunk:
            tracking.log_batch(history_run, chunk)
        tracking.set_run_status(history_run, "finished", end_time=BASE_TIME_MS + history_steps)
    phases["history_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say(f"{COMPARE_EXPERIMENT}: {compare_n} runs, {' and '.join(COMPARE_KEYS)} with "
        f"{COMPARE_STEPS:,} steps each")
    have = _existing(tracking, ids[COMPARE_EXPERIMENT])
    compare_ids = []
    for r in compare_runs(compare_n):
        run = have.get(r.name)
        if run is not None and run.status != "finished":
            raise RuntimeError(f"{home}: an interrupted build left {r.name} unfinished; "
                               "remove the folder and build again")
        curves = [(key, value, step, ts) for key in COMPARE_KEYS
                  for step, value, ts in compare_history(r.index, key)]
        compare_ids.append(run.run_id if run is not None else
                           _write_run(tracking, ids[COMPARE_EXPERIMENT], r, curves))
    phases["compare_s"] = time.perf_counter() - t0
    tracking.db.dispose()
    # Fold the WAL into the database file: the folder is renamed and copied as one.
    import sqlite3

    with sqlite3.connect(home / "ratchet.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # Paths are the final folder's (the partial one is renamed when complete).
    return Built(home=str(final), db_url=f"sqlite:///{final / 'ratchet.db'}",
                 artifacts=str(final / "artifacts"), runs=runs, history_steps=history_steps,
                 compare_runs=compare_n, experiment_ids=ids, history_run_id=history_run,
                 compare_run_ids=compare_ids, build_s=time.perf_counter() - started,
                 phases_s=phases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="cache folder (builds are kept here)")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--history-steps", type=int, default=DEFAULT_HISTORY_STEPS)
    parser.add_argument("--compare-runs", type=int, default=DEFAULT_COMPARE_RUNS)
    parser.add_argument("--small", action="store_true",
                        help=f"{SMALL['runs']:,} runs, {SMALL['history_steps']:,} steps")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes writing the runs side by side")
    args = parser.parse_args(argv)
    built = build(args.root, args.runs, history_steps=args.history_steps,
                  compare_runs_n=args.compare_runs, small=args.small, workers=args.workers)
    print(json.dumps({k: v for k, v in asdict(built).items() if k != "compare_run_ids"},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
