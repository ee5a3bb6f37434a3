"""Benchmark ``estimation``: ratchet's calibrated label-free estimator against NannyML's CBPE
on the synthetic datasets NannyML ships.

    .venv/bin/python bench/estimation_bench.py                  # binary, multiclass, regression
    .venv/bin/python bench/estimation_bench.py --only binary
    .venv/bin/python bench/estimation_bench.py --keep           # keep the temp folder

Prints one JSON document on stdout (progress on stderr) and writes it to
``bench/results/estimation.json`` (``--output`` to change).

How it runs:

1. ``bench/.venv-nannyml`` is created on first use (uv, else ``python -m venv`` + pip) with
   the pins of ``NANNYML_REQUIREMENTS`` (statsmodels: nannyml imports it but does not
   declare it). NannyML never enters the project's venv.
2. In that venv this script runs again (``--nannyml-side DIR``): for each dataset it loads
   NannyML's data (``load_synthetic_binary_classification_dataset`` /
   ``load_synthetic_multiclass_classification_dataset``), fits ``nml.CBPE`` on the
   reference with the chunk size of NannyML's own tutorials (5,000 binary, 6,000
   multiclass) and the metrics roc_auc, f1, precision, recall, accuracy, estimates the
   analysis period (targets joined, so NannyML reports realized values too), and writes
   the reference and analysis rows (Parquet) and NannyML's per-chunk estimates (JSON).
   Telemetry off: ``NML_DISABLE_USAGE_LOGGING=1``, ``DO_NOT_TRACK=1``.
3. Here, in the project's python: ``fit_performance_estimator`` on the same reference
   (probabilities and labels), ``.estimate(proba, y_pred)`` on the same chunks (NannyML's
   own chunk boundaries), realized metrics by ``classification_metrics`` and the
   uncalibrated ``estimate_classification_performance`` for contrast.

Reported per dataset and metric: the largest and mean |ratchet - NannyML| over chunks
(reference and analysis), the largest |estimate - realized| of each estimator, and the
check "ratchet within 0.005 of NannyML on every chunk".

Regression (``load_synthetic_car_price_dataset``, chunks of 6,000): NannyML's DLE
(LightGBM, ``tune_hyperparameters=False``) and ratchet's ``fit_loss_estimator``
(scikit-learn's HistGradientBoostingRegressor), both fitted on the reference's features
and prediction. Different learners, so no 0.005 check: the relative differences to
NannyML and to the realized MAE / RMSE are reported. NannyML 0.13.1 needs pandas'
``future.infer_string`` off to fit DLE on text columns under pandas 3.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness
from harness import check, write_json

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
NANNYML_VENV = BENCH / ".venv-nannyml"
NANNYML_REQUIREMENTS = ["nannyml==0.13.1", "statsmodels==0.15.0", "pyarrow==26.0.1"]
DROPPED_PREFIXES = ("RATCHET_", "MLFLOW_", "NML_")
METRICS = ["roc_auc", "f1", "precision", "recall", "accuracy"]
TOLERANCE = 0.005
DATASETS: dict[str, dict[str, Any]] = {
    "binary": {"loader": "load_synthetic_binary_classification_dataset", "chunk_size": 5000,
               "problem_type": "classification_binary", "y_true": "work_home_actual",
               "classes": [0, 1], "proba": {1: "y_pred_proba"}},
    "multiclass": {"loader": "load_synthetic_multiclass_classification_dataset",
                   "chunk_size": 6000, "problem_type": "classification_multiclass",
                   "y_true": "y_true",
                   "classes": ["highstreet_card", "prepaid_card", "upmarket_card"],
                   "proba": {c: f"y_pred_proba_{c}" for c in
                             ["highstreet_card", "prepaid_card", "upmarket_card"]}},
    "regression": {"loader": "load_synthetic_car_price_dataset", "chunk_size": 6000,
                   "problem_type": "regression", "y_true": "y_true",
                   "features": ["car_age", "km_driven", "price_new", "accident_count",
                                "door_count", "fuel", "transmission"]},
}
REGRESSION_METRICS = ["mae", "rmse"]


def log(message: str) -> None:
    print(f"[estimation] {message}", file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    return harness.child_env(DROPPED_PREFIXES)


def nannyml_python() -> Path:
    return NANNYML_VENV / "bin" / "python"


def ensure_nannyml_venv() -> dict[str, str | None]:
    """Create or fix ``bench/.venv-nannyml`` so it holds the pinned versions."""
    pins = dict(r.split("==") for r in NANNYML_REQUIREMENTS)
    py = nannyml_python()
    if py.exists() and harness.installed(py, list(pins), child_env()) == pins:
        return dict(pins)
    log(f"installing {' '.join(NANNYML_REQUIREMENTS)} into {NANNYML_VENV.relative_to(REPO)} "
        "(one-time)")
    try:
        harness.install_venv(NANNYML_VENV, list(NANNYML_REQUIREMENTS), child_env())
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    return dict(pins)


# ----------------------------------------------------------------------------- NannyML side
def nannyml_side(out: Path, names: list[str]) -> None:
    """Runs in bench/.venv-nannyml: the data and NannyML's estimates, written to ``out``."""
    import warnings

    import pandas as pd

    warnings.filterwarnings("ignore")
    pd.set_option("future.infer_string", False)  # nannyml 0.13.1 reshapes text columns
    import nannyml as nml

    for name in names:
        spec = DATASETS[name]
        if spec["problem_type"] == "regression":
            _nannyml_dle(nml, spec, out / name)
            continue
        reference, analysis, targets = getattr(nml, spec["loader"])()
        analysis = analysis.merge(targets, on="id")  # realized values for the comparison
        proba = spec["proba"]
        estimator = nml.CBPE(
            y_pred_proba=proba[1] if spec["problem_type"] == "classification_binary" else
            {str(c): col for c, col in proba.items()},
            y_pred="y_pred", y_true=spec["y_true"], metrics=METRICS,
            chunk_size=spec["chunk_size"], problem_type=spec["problem_type"])
        estimator.fit(reference)
        frame = estimator.estimate(analysis).to_df()
        chunks = []
        for _, row in frame.iterrows():
            chunks.append({
                "period": row[("chunk", "period")],
                "start": int(row[("chunk", "start_index")]),
                "end": int(row[("chunk", "end_index")]),
                "estimated": {m: _float(row[(m, "value")]) for m in METRICS},
                "realized": {m: _float(row[(m, "realized")]) for m in METRICS}})
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        keep = ["y_pred", spec["y_true"], *proba.values()]
        reference[keep].to_parquet(folder / "reference.parquet")
        analysis[keep].to_parquet(folder / "analysis.parquet")
        calibrated = (bool(estimator.needs_calibration) if spec["problem_type"] ==
                      "classification_binary" else
                      {c: type(k).__name__ != "NoopCalibrator"
                       for c, k in estimator._calibrators.items()})
        (folder / "nannyml.json").write_text(json.dumps({
            "chunk_size": spec["chunk_size"], "chunks": chunks,
            "calibrated": calibrated, "rows": {"reference": len(reference),
                                               "analysis": len(analysis)}}))


def _nannyml_dle(nml: Any, spec: dict[str, Any], folder: Path) -> None:
    reference, analysis, targets = getattr(nml, spec["loader"])()
    analysis = analysis.merge(targets, on="id")
    estimator = nml.DLE(feature_column_names=spec["features"], y_pred="y_pred",
                        y_true=spec["y_true"], metrics=REGRESSION_METRICS,
                        chunk_size=spec["chunk_size"], tune_hyperparameters=False)
    estimator.fit(reference)
    frame = estimator.estimate(analysis).to_df()
    chunks = [{"period": row[("chunk", "period")],
               "start": int(row[("chunk", "start_index")]),
               "end": int(row[("chunk", "end_index")]),
               "estimated": {m: _float(row[(m, "value")]) for m in REGRESSION_METRICS},
               "realized": {m: _float(row[(m, "realized")]) for m in REGRESSION_METRICS}}
              for _, row in frame.iterrows()]
    folder.mkdir(parents=True, exist_ok=True)
    keep = [*spec["features"], "y_pred", spec["y_true"]]
    reference[keep].to_parquet(folder / "reference.parquet")
    analysis[keep].to_parquet(folder / "analysis.parquet")
    (folder / "nannyml.json").write_text(json.dumps({
        "chunk_size": spec["chunk_size"], "chunks": chunks,
        "rows": {"reference": len(reference), "analysis": len(analysis)}}))


def _float(value: Any) -> float | None:
    import math

    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)


# ----------------------------------------------------------------------------- ratchet side
def compare(folder: Path, name: str) -> dict[str, Any]:
    """ratchet's estimates on NannyML's chunks, against NannyML's and the realized ones."""
    import pandas as pd

    from ratchet.monitoring.estimation import fit_performance_estimator
    from ratchet.monitoring.performance import (
        classification_metrics,
        estimate_classification_performance,
    )

    spec = DATASETS[name]
    nml = json.loads((folder / "nannyml.json").read_text())
    frames = {"reference": pd.read_parquet(folder / "reference.parquet"),
              "analysis": pd.read_parquet(folder / "analysis.parquet")}
    if spec["problem_type"] == "regression":
        return compare_dle(frames, nml, spec)
    classes = spec["classes"]
    columns = ([None, spec["proba"][1]] if len(classes) == 2 else
               [spec["proba"][c] for c in classes])

    def proba(frame: pd.DataFrame) -> Any:
        import numpy as np

        if len(classes) == 2:
            positive = frame[columns[1]].to_numpy(dtype=float)
            return np.column_stack([1 - positive, positive])
        return frame[columns].to_numpy(dtype=float)

    ref = frames["reference"]
    estimator = fit_performance_estimator(proba(ref), ref[spec["y_true"]].to_numpy(), classes,
                                          source=f"NannyML's synthetic {name} reference")
    rows = []
    for chunk in nml["chunks"]:
        part = frames[chunk["period"]].iloc[chunk["start"]:chunk["end"] + 1]
        p, y_pred = proba(part), part["y_pred"].to_numpy()
        ours = estimator.estimate(p, y_pred)
        plain = estimate_classification_performance(p, classes, y_pred=y_pred)
        realized = classification_metrics(part[spec["y_true"]].to_numpy(), y_pred, p, classes)
        rows.append({"period": chunk["period"], "start": chunk["start"], "end": chunk["end"],
                     "ratchet": {m: ours[m] for m in METRICS},
                     "nannyml": chunk["estimated"],
                     "uncalibrated": {m: plain[m] for m in METRICS},
                     "realized": {m: realized[m] for m in METRICS},
                     "nannyml_realized": chunk["realized"]})
    per_metric = {}
    for m in METRICS:
        diffs = [abs(r["ratchet"][m] - r["nannyml"][m]) for r in rows]
        per_metric[m] = {
            "max_abs_ratchet_vs_nannyml": max(diffs),
            "mean_abs_ratchet_vs_nannyml": sum(diffs) / len(diffs),
            "max_abs_ratchet_vs_realized": max(abs(r["ratchet"][m] - r["realized"][m])
                                               for r in rows),
            "max_abs_nannyml_vs_realized": max(abs(r["nannyml"][m] - r["realized"][m])
                                               for r in rows),
            "max_abs_uncalibrated_vs_realized": max(abs(r["uncalibrated"][m] -
                                                        r["realized"][m]) for r in rows),
            "max_abs_realized_ratchet_vs_nannyml": max(
                abs(r["realized"][m] - r["nannyml_realized"][m]) for r in rows
                if r["nannyml_realized"][m] is not None)}
    worst = max(v["max_abs_ratchet_vs_nannyml"] for v in per_metric.values())
    calibrated = [c for c, m in zip(estimator._calibrated_classes(), estimator.calibrators,
                                    strict=True) if m is not None]
    return {"chunk_size": nml["chunk_size"], "rows": nml["rows"], "chunks": len(rows),
            "calibrated_classes": {"ratchet": calibrated, "nannyml": nml["calibrated"]},
            "metrics": per_metric,
            "checks": [check(f"{name}: max |ratchet - NannyML| over chunks and metrics",
                             worst, "<=", TOLERANCE)],
            "per_chunk": rows}


def compare_dle(frames: dict[str, Any], nml: dict[str, Any],
                spec: dict[str, Any]) -> dict[str, Any]:
    """ratchet's DLE on NannyML's chunks: relative differences to NannyML's DLE and to the
    realized errors."""
    from ratchet.monitoring.estimation import fit_loss_estimator
    from ratchet.monitoring.performance import regression_metrics

    ref = frames["reference"]
    estimator = fit_loss_estimator(ref[spec["features"]], ref["y_pred"], ref[spec["y_true"]],
                                   source="NannyML's synthetic car price reference")
    rows = []
    for chunk in nml["chunks"]:
        part = frames[chunk["period"]].iloc[chunk["start"]:chunk["end"] + 1]
        ours = estimator.estimate(part[spec["features"]], part["y_pred"])
        realized = regression_metrics(part[spec["y_true"]], part["y_pred"])
        rows.append({"period": chunk["period"], "start": chunk["start"], "end": chunk["end"],
                     "ratchet": {m: ours[m] for m in REGRESSION_METRICS},
                     "nannyml": chunk["estimated"],
                     "realized": {m: realized[m] for m in REGRESSION_METRICS},
                     "nannyml_realized": chunk["realized"]})

    def worst(a: str, b: str, m: str) -> float:
        return max(abs(r[a][m] - r[b][m]) / r[b][m] for r in rows)

    per_metric = {m: {"max_rel_ratchet_vs_nannyml": worst("ratchet", "nannyml", m),
                      "max_rel_ratchet_vs_realized": worst("ratchet", "realized", m),
                      "max_rel_nannyml_vs_realized": worst("nannyml", "realized", m),
                      "max_rel_realized_ratchet_vs_nannyml": worst("realized",
                                                                   "nannyml_realized", m)}
                  for m in REGRESSION_METRICS}
    return {"chunk_size": nml["chunk_size"], "rows": nml["rows"], "chunks": len(rows),
            "metrics": per_metric, "checks": [], "per_chunk": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(DATASETS))
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "estimation.json")
    parser.add_argument("--compact", action="store_true")
    parser.add_argument("--nannyml-side", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = args.only or sorted(DATASETS)
    if args.nannyml_side is not None:
        nannyml_side(args.nannyml_side, names)
        return
    versions = ensure_nannyml_venv()
    workdir = Path(tempfile.mkdtemp(prefix="ratchet-estimation-bench-"))
    try:
        log(f"NannyML on {', '.join(names)} (in {NANNYML_VENV.relative_to(REPO)})")
        # LightGBM prints to stdout: keep it out of the JSON document
        subprocess.run([str(nannyml_python()), __file__, "--nannyml-side", str(workdir),
                        *[a for n in names for a in ("--only", n)]], check=True,
                       env=child_env(), stdout=sys.stderr)
        results = {}
        for name in names:
            log(f"ratchet's estimator on {name}")
            results[name] = compare(workdir / name, name)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    from run import git_commit

    checks = [c for r in results.values() for c in r["checks"]]
    doc = {"benchmark": "estimation", "created_at": dt.datetime.now(dt.UTC).isoformat(),
           "commit": git_commit(), "tolerance": TOLERANCE, "nannyml_venv": versions,
           "datasets": results, "checks": checks,
           "pass": all(c["pass"] for c in checks)}
    write_json(doc, args.output, args.compact)
    for c in checks:
        log(f"{c['name']}: {c['value']:.2e} {c['op']} {c['target']} -> "
            f"{'pass' if c['pass'] else 'FAIL'}")


if __name__ == "__main__":
    main()
