"""The drift benchmark's data: seeded reference and current Parquet files, written in chunks.

    .venv/bin/python bench/drift_scenarios/generate.py --dir DIR --rows 1000000 [--ref-rows N]

Writes ``DIR/reference.parquet``, ``DIR/current.parquet`` and ``DIR/manifest.json`` (the
columns, their kinds and distributions, which ones drift and how). 50 columns:

- 40 numeric: ``n00``-``n11`` normal, ``n12``-``n21`` lognormal, ``n22``-``n29`` uniform,
  ``n30``-``n39`` integer-valued (Poisson, uniform integers, binomial, and ``n38`` with
  only 5 distinct values, which Evidently treats differently: see below);
- 10 categorical (strings): ``c0``-``c9`` with 3, 5, 8, 10, 12, 15, 20, 25, 30 and 4
  categories, Zipf-like frequencies.

In ``current``, 13 columns drift clearly (the designed drifted set): 10 numeric shifted or
rescaled (``n00 n01 n02 n12 n13 n22 n23 n30 n35 n38``) and 3 categorical with changed
frequencies (``c0 c4 c8``), each sized so that the distance tests chosen at this size
(normalized Wasserstein and Jensen-Shannon, threshold 0.1) land well above 0.1. Three more
columns move by a trivial amount (``n03`` +0.02 sd, ``n14`` x1.02, ``c1`` one percentage
point): their distances stay well below 0.1, so none of the contenders should flag them;
a p-value test (KS, chi-square) at a million rows would. Nulls, at the same rate on both
sides: ``n05`` 1%, ``n25`` 2%, ``c5`` 2%.

Deterministic: chunk ``i`` of a side is drawn from ``SeedSequence([seed, side, i])`` with a
fixed chunk size (``CHUNK_ROWS``), so the same seed and row counts give the same files.
Each chunk is one Parquet row group; memory stays bounded by one chunk. Categorical
columns are plain Arrow strings (``pd.read_parquet`` gives strings, not ``category``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GENERATOR_VERSION = 1
SEED = 20_240_611
CHUNK_ROWS = 250_000
REFERENCE, CURRENT = 0, 1

Draw = Callable[[np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class Column:
    name: str
    kind: str                   # "numeric" | "categorical"
    dist: str                   # human description of the reference distribution
    reference: Draw
    current: Draw               # the same as reference unless the column drifts
    drift: str | None = None    # "drifted" | "trivial" | None
    change: str = ""            # human description of the change in current
    null_rate: float = 0.0


def _normal(mu: float, sd: float) -> Draw:
    return lambda rng, n: rng.normal(mu, sd, n)


def _lognormal(mu: float, sigma: float) -> Draw:
    return lambda rng, n: rng.lognormal(mu, sigma, n)


def _uniform(lo: float, hi: float) -> Draw:
    return lambda rng, n: rng.uniform(lo, hi, n)


def _poisson(lam: float) -> Draw:
    return lambda rng, n: rng.poisson(lam, n).astype(np.int64)


def _integers(lo: int, hi: int) -> Draw:  # inclusive bounds
    return lambda rng, n: rng.integers(lo, hi + 1, n, dtype=np.int64)


def _binomial(trials: int, p: float) -> Draw:
    return lambda rng, n: rng.binomial(trials, p, n).astype(np.int64)


def _levels(probs: list[float]) -> Draw:
    p = np.asarray(probs) / np.sum(probs)
    return lambda rng, n: rng.choice(len(p), size=n, p=p).astype(np.int64)


def _zipf(k: int, s: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** s
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def _categories(probs: np.ndarray) -> Draw:
    """Category codes 0..k-1 (turned into strings when written)."""
    p = np.asarray(probs, dtype=np.float64) / np.sum(probs)
    return lambda rng, n: rng.choice(len(p), size=n, p=p).astype(np.int32)


def columns() -> list[Column]:
    """The 50 columns, in file order."""
    cols: list[Column] = []
    # --- 12 normal
    normal_params = [(10.0, 2.0), (0.0, 1.0), (100.0, 15.0), (5.0, 0.5), (-3.0, 4.0),
                     (50.0, 10.0), (0.0, 0.1), (1_000.0, 250.0), (2.5, 1.5), (-20.0, 5.0),
                     (0.0, 30.0), (7.0, 3.0)]
    for i, (mu, sd) in enumerate(normal_params):
        name = f"n{i:02d}"
        ref = _normal(mu, sd)
        cur, drift, change, nulls = ref, None, "", 0.0
        if i == 0:
            cur, drift, change = _normal(mu + 0.3 * sd, sd), "drifted", "mean +0.3 sd"
        elif i == 1:
            cur, drift, change = _normal(mu, 1.5 * sd), "drifted", "sd x1.5"
        elif i == 2:
            cur, drift, change = _normal(mu - 0.2 * sd, sd), "drifted", "mean -0.2 sd"
        elif i == 3:
            cur, drift, change = _normal(mu + 0.02 * sd, sd), "trivial", "mean +0.02 sd"
        elif i == 5:
            nulls = 0.01
        cols.append(Column(name, "numeric", f"normal({mu:g}, {sd:g})", ref, cur, drift,
                           change, nulls))
    # --- 10 lognormal
    lognormal_params = [(0.0, 0.5), (1.0, 0.25), (0.0, 1.0), (2.0, 0.5), (-1.0, 0.75),
                        (3.0, 0.3), (0.5, 0.6), (0.0, 0.2), (1.5, 0.9), (4.0, 0.4)]
    for j, (mu, sigma) in enumerate(lognormal_params):
        name = f"n{12 + j:02d}"
        ref = _lognormal(mu, sigma)
        cur, drift, change = ref, None, ""
        if j == 0:
            cur, drift, change = _lognormal(mu + 0.3, sigma), "drifted", "x1.35 (log-mean +0.3)"
        elif j == 1:
            cur, drift, change = _lognormal(mu, sigma * 1.6), "drifted", "log-sd x1.6"
        elif j == 2:
            cur, drift, change = _lognormal(mu + 0.02, sigma), "trivial", "x1.02 (log-mean +0.02)"
        cols.append(Column(name, "numeric", f"lognormal({mu:g}, {sigma:g})", ref, cur, drift,
                           change))
    # --- 8 uniform
    uniform_params = [(0.0, 1.0), (0.0, 10.0), (-5.0, 5.0), (100.0, 200.0), (0.0, 0.01),
                      (-1.0, 1.0), (10.0, 1_000.0), (3.0, 4.0)]
    for j, (lo, hi) in enumerate(uniform_params):
        name = f"n{22 + j:02d}"
        ref = _uniform(lo, hi)
        cur, drift, change, nulls = ref, None, "", 0.0
        if j == 0:
            cur, drift, change = _uniform(lo + 0.2, hi + 0.2), "drifted", "range +0.2"
        elif j == 1:
            cur, drift, change = _uniform(lo, hi * 1.3), "drifted", "upper bound x1.3"
        elif j == 3:
            nulls = 0.02
        cols.append(Column(name, "numeric", f"uniform({lo:g}, {hi:g})", ref, cur, drift,
                           change, nulls))
    # --- 10 integer-valued
    integer_cols: list[tuple[str, Draw, Draw, str | None, str]] = [
        ("poisson(3)", _poisson(3), _poisson(4), "drifted", "poisson(4)"),
        ("poisson(1)", _poisson(1), _poisson(1), None, ""),
        ("poisson(8)", _poisson(8), _poisson(8), None, ""),
        ("poisson(20)", _poisson(20), _poisson(20), None, ""),
        ("poisson(50)", _poisson(50), _poisson(50), None, ""),
        ("integers 18..90", _integers(18, 90), _integers(23, 95), "drifted", "+5 (23..95)"),
        ("integers 0..1000", _integers(0, 1000), _integers(0, 1000), None, ""),
        ("integers 1..12", _integers(1, 12), _integers(1, 12), None, ""),
        ("5 levels 0..4 p=.40/.25/.15/.12/.08", _levels([.40, .25, .15, .12, .08]),
         _levels([.15, .20, .25, .20, .20]), "drifted", "p=.15/.20/.25/.20/.20"),
        ("binomial(20, 0.3)", _binomial(20, 0.3), _binomial(20, 0.3), None, ""),
    ]
    for j, (dist, ref, cur, drift, change) in enumerate(integer_cols):
        cols.append(Column(f"n{30 + j:02d}", "numeric", dist, ref, cur, drift, change))
    # --- 10 categorical
    for i, k in enumerate([3, 5, 8, 10, 12, 15, 20, 25, 30, 4]):
        name = f"c{i}"
        p = _zipf(k)
        if k == 3:
            p = np.array([0.6, 0.3, 0.1])
        q, drift, change, nulls = p, None, "", 0.0
        if i == 0:
            q, drift, change = np.array([0.35, 0.35, 0.30]), "drifted", "p=.35/.35/.30"
        elif i == 1:
            q = p.copy()
            q[0] -= 0.01
            q[1] += 0.01
            drift, change = "trivial", "1 point moved from the first category to the second"
        elif i == 4:
            q, drift, change = p[::-1].copy(), "drifted", "frequencies reversed"
        elif i == 5:
            nulls = 0.02
        elif i == 8:
            q = p.copy()
            q[-5:] *= 8
            q = q / q.sum()
            drift, change = "drifted", "the 5 rarest categories x8"
        probs = ", ".join(f"{x:.3f}" for x in p[:4]) + (", ..." if k > 4 else "")
        cols.append(Column(name, "categorical", f"{k} categories, p = {probs}",
                           _categories(p), _categories(q), drift, change, nulls))
    return cols


def _labels(k: int) -> pa.Array:
    return pa.array([f"cat_{j:02d}" for j in range(k)], type=pa.string())


def _chunk(cols: list[Column], side: int, index: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(np.random.SeedSequence([seed, side, index]))
    arrays: list[pa.Array] = []
    for col in cols:
        draw = col.reference if side == REFERENCE else col.current
        values = draw(rng, n)
        mask = rng.random(n) < col.null_rate if col.null_rate else None
        if col.kind == "categorical":
            k = _n_categories(col)
            codes = pa.array(values.astype(np.int32), mask=mask)
            arrays.append(pa.DictionaryArray.from_arrays(codes, _labels(k)).cast(pa.string()))
        else:
            arrays.append(pa.array(values, mask=mask))
    return pa.Table.from_arrays(arrays, names=[c.name for c in cols])


def _n_categories(col: Column) -> int:
    return int(col.dist.split()[0])


def write_side(path: Path, cols: list[Column], side: int, rows: int, seed: int) -> float:
    """Write one side, chunk by chunk; its size in MB."""
    tmp = path.with_name(path.name + ".tmp")
    done, index = 0, 0
    writer: pq.ParquetWriter | None = None
    try:
        while done < rows:
            n = min(CHUNK_ROWS, rows - done)
            table = _chunk(cols, side, index, n, seed)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=n)
            done += n
            index += 1
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, path)
    return path.stat().st_size / 1e6


def manifest(cols: list[Column], rows: int, ref_rows: int, seed: int) -> dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION, "seed": seed, "chunk_rows": CHUNK_ROWS,
        "rows_current": rows, "rows_reference": ref_rows,
        "numeric_columns": [c.name for c in cols if c.kind == "numeric"],
        "categorical_columns": [c.name for c in cols if c.kind == "categorical"],
        "expected_drifted": [c.name for c in cols if c.drift == "drifted"],
        "trivially_shifted": [c.name for c in cols if c.drift == "trivial"],
        "columns": [{"name": c.name, "kind": c.kind, "reference": c.dist,
                     "current": c.change or "same", "drift": c.drift,
                     "null_rate": c.null_rate} for c in cols],
    }


def generate(directory: Path, rows: int, ref_rows: int | None = None,
             seed: int = SEED, force: bool = False) -> dict[str, Any]:
    """Write the two files and the manifest into ``directory`` (reused when a manifest for
    the same rows, seed and generator version is already there); the manifest."""
    ref_rows = rows if ref_rows is None else ref_rows
    directory.mkdir(parents=True, exist_ok=True)
    cols = columns()
    wanted = manifest(cols, rows, ref_rows, seed)
    mpath = directory / "manifest.json"
    ref_path, cur_path = directory / "reference.parquet", directory / "current.parquet"
    if not force and mpath.exists() and ref_path.exists() and cur_path.exists():
        found = json.loads(mpath.read_text())
        if {k: found.get(k) for k in wanted} == wanted:
            found["reused"] = True
            return dict(found)
    mpath.unlink(missing_ok=True)
    started = time.perf_counter()
    ref_mb = write_side(ref_path, cols, REFERENCE, ref_rows, seed)
    cur_mb = write_side(cur_path, cols, CURRENT, rows, seed)
    wanted.update(reference_mb=round(ref_mb, 1), current_mb=round(cur_mb, 1),
                  generate_s=round(time.perf_counter() - started, 2))
    tmp = mpath.with_name(mpath.name + ".tmp")
    tmp.write_text(json.dumps(wanted, indent=2) + "\n")
    os.replace(tmp, mpath)
    wanted["reused"] = False
    return wanted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000, help="current rows")
    parser.add_argument("--ref-rows", type=int, help="reference rows (default: --rows)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    args = parser.parse_args(argv)
    if args.rows < 1 or (args.ref_rows is not None and args.ref_rows < 1):
        parser.error("--rows and --ref-rows must be >= 1")
    doc = generate(args.dir, args.rows, args.ref_rows, args.seed, args.force)
    print(json.dumps({k: v for k, v in doc.items() if k != "columns"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
