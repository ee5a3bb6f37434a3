"""The NumPy floor: the same drift tests as Evidently's default choice, straight NumPy/SciPy.

    .venv/bin/python bench/drift_scenarios/run_floor.py --data DIR [--workers 1]

Reads both Parquet files with pandas (as the ratchet contender does), then per column, no
framework and no per-row Python:

- numeric (nulls and infinities dropped): both samples sorted once (``np.sort``); if the
  two together hold at most 5 distinct values (counted on the sorted arrays), the
  Jensen-Shannon distance of the value frequencies (Evidently's rule for such columns);
  otherwise the first Wasserstein distance, exactly (the integral of |F_ref - F_cur| over
  the merged sorted values, scipy's ``_cdf_distance``; for equal sizes the mean absolute
  difference of the sorted samples), divided by ``max(std(reference), 0.001)``;
- categorical (nulls dropped): ``value_counts`` per side (hash-based), aligned on the union
  of categories, Jensen-Shannon distance (``scipy.spatial.distance.jensenshannon``,
  natural log) of the frequencies;
- drifted when the distance is >= 0.1 (Evidently's comparison); dataset drift when at
  least half of the columns drift.

``--workers N`` tests N columns at a time on threads (NumPy's sorts release the GIL); the
default, 1, is the straight single-threaded floor.
"""

from __future__ import annotations

import time

from common import Clock, emit, manifest, number, parse_args, vm_hwm_mb

THRESHOLD = 0.1
FEW_VALUES = 5  # Evidently: a numeric column with <= 5 distinct values gets Jensen-Shannon
DRIFT_SHARE = 0.5


def main() -> None:
    args = parse_args("floor")
    clock = Clock()
    import numpy as np
    import pandas as pd
    import scipy
    from scipy.spatial.distance import jensenshannon

    clock.lap("import_s")
    spec = manifest(args.data)
    reference = pd.read_parquet(args.data / "reference.parquet")
    current = pd.read_parquet(args.data / "current.parquet")
    clock.lap("read_s")
    hwm_after_read = vm_hwm_mb()

    numeric = set(spec["numeric_columns"])

    def finite_sorted(series: pd.Series) -> np.ndarray:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.sort(values[np.isfinite(values)])

    def distinct(sorted_values: np.ndarray) -> int:
        return int(np.count_nonzero(np.diff(sorted_values))) + 1 if len(sorted_values) else 0

    def wasserstein(u: np.ndarray, v: np.ndarray) -> float:
        if len(u) == len(v):
            return float(np.mean(np.abs(u - v)))
        merged = np.concatenate([u, v])
        merged.sort(kind="stable")  # two sorted runs: a merge
        deltas = np.diff(merged)
        u_cdf = np.searchsorted(u, merged[:-1], side="right") / len(u)
        v_cdf = np.searchsorted(v, merged[:-1], side="right") / len(v)
        return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))

    def one(name: str) -> dict[str, object]:
        if name in numeric:
            r, c = finite_sorted(reference[name]), finite_sorted(current[name])
            if distinct(r) <= FEW_VALUES and distinct(c) <= FEW_VALUES and len(
                    keys := np.union1d(np.unique(r), np.unique(c))) <= FEW_VALUES:
                rc = np.diff(np.searchsorted(r, keys, side="right"), prepend=0)
                cc = np.diff(np.searchsorted(c, keys, side="right"), prepend=0)
                test, stat = "jensenshannon", float(jensenshannon(rc / len(r), cc / len(c)))
            else:
                test = "wasserstein"
                stat = wasserstein(r, c) / max(float(np.std(r)), 0.001)
            kind = "numeric"
        else:
            rv = reference[name].value_counts(dropna=True)
            cv = current[name].value_counts(dropna=True)
            keys = rv.index.union(cv.index)
            p = rv.reindex(keys, fill_value=0).to_numpy(dtype=np.float64) / rv.sum()
            q = cv.reindex(keys, fill_value=0).to_numpy(dtype=np.float64) / cv.sum()
            test, stat, kind = "jensenshannon", float(jensenshannon(p, q)), "categorical"
        return {"kind": kind, "test": test, "statistic": number(stat), "p_value": None,
                "threshold": THRESHOLD, "drifted": bool(stat >= THRESHOLD)}

    names = [c for c in reference.columns if c in current.columns]
    started = time.perf_counter()
    if args.workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(args.workers) as pool:
            results = dict(zip(names, pool.map(one, names), strict=True))
    else:
        results = {name: one(name) for name in names}
    compute_s = time.perf_counter() - started
    clock.lap("compute_s")

    flagged = [n for n in names if results[n]["drifted"]]
    share = len(flagged) / len(names) if names else 0.0
    emit({"tool": "floor", "versions": {"numpy": np.__version__, "pandas": pd.__version__,
                                        "scipy": scipy.__version__},
          "workers": args.workers, "rows_reference": len(reference),
          "rows_current": len(current), "import_s": clock.laps["import_s"],
          "read_s": clock.laps["read_s"], "compute_s": compute_s,
          "columns": results, "flagged": flagged, "share": share,
          "drift": share >= DRIFT_SHARE, "hwm_after_read_mb": hwm_after_read,
          "hwm_end_mb": vm_hwm_mb()})


if __name__ == "__main__":
    main()
