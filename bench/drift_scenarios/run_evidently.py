"""Evidently: its data drift preset (``DataDriftPreset``) over the two Parquet files.

    bench/.venv-evidently/bin/python bench/drift_scenarios/run_evidently.py --data DIR

Runs in Evidently's own virtualenv (it needs pandas < 3). Reads both files with
``pandas.read_parquet``, declares the column types from the generator's manifest
(``DataDefinition(numerical_columns=..., categorical_columns=...)``, so that Evidently's
type inference cannot turn an integer column into a categorical one), then the documented
0.7 usage::

    Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=dd),
                                    Dataset.from_pandas(reference, data_definition=dd))

with the preset's defaults: automatic test per column, per-column thresholds from the
test, ``drift_share=0.5``. Its automatic choice (``evidently/legacy/calculations/
stattests/registry.py: _get_default_stattest``): with more than 1,000 reference rows,
numeric columns get the Wasserstein distance normed by the reference's std (threshold
0.1) unless reference + current hold at most 5 distinct values, which get Jensen-Shannon;
categorical columns get the Jensen-Shannon distance (threshold 0.1); with 1,000 rows or
fewer, KS / chi-square / Z-test p-values (threshold 0.05). A distance test drifts when
``score >= threshold``, a p-value test when ``p < threshold``.

Timed as ``compute_s``: the two ``Dataset.from_pandas`` calls, ``Report.run`` and
``snapshot.dict()`` (reading the results out); each part is reported apart. The per-column
results are read from the snapshot's ``ValueDrift`` metrics (column, method, threshold,
score); the drifted count is cross-checked against the preset's ``DriftedColumnsCount``.
No HTML is rendered.
"""

from __future__ import annotations

import time
from typing import Any

from common import P_VALUE_TESTS, Clock, emit, manifest, number, parse_args, vm_hwm_mb


def main() -> None:
    args = parse_args("evidently")
    clock = Clock()
    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.calculations.stattests import registry
    from evidently.presets import DataDriftPreset

    clock.lap("import_s")
    spec = manifest(args.data)
    reference = pd.read_parquet(args.data / "reference.parquet")
    current = pd.read_parquet(args.data / "current.parquet")
    clock.lap("read_s")
    hwm_after_read = vm_hwm_mb()

    definition = DataDefinition(numerical_columns=spec["numeric_columns"],
                                categorical_columns=spec["categorical_columns"])
    t0 = time.perf_counter()
    current_ds = Dataset.from_pandas(current, data_definition=definition)
    reference_ds = Dataset.from_pandas(reference, data_definition=definition)
    t1 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_ds, reference_ds)
    t2 = time.perf_counter()
    doc = snapshot.dict()
    t3 = time.perf_counter()
    clock.lap("compute_s")

    # display name -> test id, from Evidently's own registry of stat tests
    names = {t.display_name: t.name for per_type in registry._registered_stat_tests.values()
             for t in per_type.values()}
    kinds = {c: "numeric" for c in spec["numeric_columns"]}
    kinds.update({c: "categorical" for c in spec["categorical_columns"]})
    columns: dict[str, dict[str, Any]] = {}
    count: dict[str, Any] = {}
    for metric in doc["metrics"]:
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            count = metric.get("value") or {}
        elif kind.endswith("ValueDrift"):
            test = names.get(config.get("method"), config.get("method"))
            score, threshold = float(metric["value"]), float(config["threshold"])
            p_value = test in P_VALUE_TESTS
            drifted = score < threshold if p_value else score >= threshold
            columns[config["column"]] = {
                "kind": kinds.get(config["column"]), "test": test,
                "statistic": None if p_value else number(score),
                "p_value": number(score) if p_value else None,
                "threshold": threshold, "drifted": bool(drifted)}
    ordered = [c for c in reference.columns if c in columns]
    flagged = [c for c in ordered if columns[c]["drifted"]]
    share = len(flagged) / len(ordered) if ordered else 0.0
    emit({"tool": "evidently",
          "versions": {"evidently": evidently.__version__, "pandas": pd.__version__},
          "rows_reference": len(reference), "rows_current": len(current),
          "import_s": clock.laps["import_s"], "read_s": clock.laps["read_s"],
          "compute_s": t3 - t0,
          "compute_detail": {"dataset_from_pandas_s": t1 - t0, "report_run_s": t2 - t1,
                             "snapshot_dict_s": t3 - t2},
          "columns": {c: columns[c] for c in ordered}, "flagged": flagged, "share": share,
          "drift": share >= 0.5,
          "evidently_drifted_count": number(count.get("count")),
          "evidently_drifted_share": number(count.get("share")),
          "count_consistent": (count.get("count") is not None
                               and int(count["count"]) == len(flagged)),
          "hwm_after_read_mb": hwm_after_read, "hwm_end_mb": vm_hwm_mb()})


if __name__ == "__main__":
    main()
