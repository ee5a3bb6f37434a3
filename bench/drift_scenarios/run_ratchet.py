"""ratchet: ``ratchet.monitoring.drift.dataset_drift`` over the two Parquet files.

    .venv/bin/python bench/drift_scenarios/run_ratchet.py --data DIR

Reads both files with ``pandas.read_parquet`` and calls ``dataset_drift(reference_df,
current_df)`` with its defaults (automatic choice of test per column; its own thread
count). What the benchmark expects from the result: ``.to_dict()`` with a ``"columns"``
list of per-column dicts (``column``, ``kind``, ``test``, ``statistic``, ``p_value``,
``threshold``, ``drifted``), and ``.drifted_columns``, ``.share``, ``.drift``.
Exits with status 3 and a clear message when ``ratchet.monitoring.drift`` is missing.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from common import Clock, emit, log, number, parse_args, vm_hwm_mb

MISSING = 3


def per_column(doc: Any) -> dict[str, dict[str, Any]]:
    """Per-column results from ``to_dict()``: a ``columns`` list (or name -> dict)."""
    cols = doc.get("columns") if isinstance(doc, dict) else doc
    if isinstance(cols, dict):
        cols = [{"column": name, **value} for name, value in cols.items()]
    out: dict[str, dict[str, Any]] = {}
    for c in cols or []:
        out[str(c["column"])] = {
            "kind": c.get("kind"), "test": c.get("test"),
            "statistic": number(c.get("statistic")), "p_value": number(c.get("p_value")),
            "threshold": number(c.get("threshold")), "drifted": bool(c.get("drifted"))}
    return out


def main() -> None:
    args = parse_args("ratchet")
    clock = Clock()
    import pandas as pd

    try:
        from ratchet.monitoring.drift import dataset_drift
    except ImportError as exc:
        log(f"error: cannot benchmark ratchet: `from ratchet.monitoring.drift import "
            f"dataset_drift` failed ({exc}). The drift benchmark needs "
            "ratchet.monitoring.drift.dataset_drift(reference_df, current_df) in the "
            "project's venv; run bench/drift_bench.py with --only evidently --only floor "
            "to measure the others.")
        sys.exit(MISSING)
    import ratchet

    clock.lap("import_s")
    reference = pd.read_parquet(args.data / "reference.parquet")
    current = pd.read_parquet(args.data / "current.parquet")
    clock.lap("read_s")
    hwm_after_read = vm_hwm_mb()

    started = time.perf_counter()
    report = dataset_drift(reference, current)
    call_s = time.perf_counter() - started
    doc = report.to_dict()
    compute_s = time.perf_counter() - started
    clock.lap("compute_s")

    flagged = [str(c) for c in report.drifted_columns]
    emit({"tool": "ratchet",
          "versions": {"ratchet": getattr(ratchet, "__version__", None),
                       "pandas": pd.__version__},
          "rows_reference": len(reference), "rows_current": len(current),
          "import_s": clock.laps["import_s"], "read_s": clock.laps["read_s"],
          "compute_s": compute_s, "compute_detail": {"dataset_drift_s": call_s,
                                                     "to_dict_s": compute_s - call_s},
          "columns": per_column(doc), "flagged": flagged, "share": float(report.share),
          "drift": bool(report.drift), "hwm_after_read_mb": hwm_after_read,
          "hwm_end_mb": vm_hwm_mb()})


if __name__ == "__main__":
    main()
