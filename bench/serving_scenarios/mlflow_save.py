"""Save the benchmark model as an MLflow model (run in the MLflow serving venv).

    python mlflow_save.py --workdir /tmp/x      # writes /tmp/x/mlflow-model

Reads ``model.pkl`` and ``example.npy`` from the workdir (written by serving_bench.py in
the project's venv with the same scikit-learn version), saves the model with
``mlflow.sklearn.save_model`` and a signature inferred from a one-row DataFrame of columns
f0..f9 (so ``mlflow models serve`` checks requests against a schema too, as ratchet does),
loads it back as a pyfunc model to check its predictions, and times ``pyfunc.predict`` on
a one-row DataFrame in-process. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow.models import infer_signature


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()

    with open(args.workdir / "model.pkl", "rb") as f:
        model = pickle.load(f)  # our own file, written by serving_bench.py
    example = np.load(args.workdir / "example.npy")
    frame = pd.DataFrame(example, columns=[f"f{i}" for i in range(example.shape[1])])
    out = args.workdir / "mlflow-model"
    started = time.perf_counter()
    mlflow.sklearn.save_model(model, str(out),
                              signature=infer_signature(frame, model.predict(example)))
    save_s = time.perf_counter() - started

    pyfunc = mlflow.pyfunc.load_model(str(out))
    got = np.asarray(pyfunc.predict(frame))
    if not np.array_equal(got, model.predict(example)):
        raise SystemExit(f"MLflow pyfunc predicts {got!r}, the original "
                         f"{model.predict(example)!r}")
    one = frame.head(1)
    for _ in range(200):
        pyfunc.predict(one)
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter_ns()
        pyfunc.predict(one)
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    print(json.dumps({
        "model_dir": str(out), "save_s": save_s, "mlflow": mlflow.__version__,
        "sklearn": sklearn.__version__, "numpy": np.__version__,
        "pyfunc_predict_one_row": {
            "reps": args.reps, "p50_ms": times[len(times) // 2] / 1e6,
            "p99_ms": times[int(len(times) * 0.99)] / 1e6,
            "mean_ms": statistics.fmean(times) / 1e6,
        },
    }))


if __name__ == "__main__":
    main()
