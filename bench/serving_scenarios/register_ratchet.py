"""Register the benchmark model in ratchet's registry (run in the project's venv).

    RATCHET_HOME=/tmp/x/.ratchet python register_ratchet.py --workdir /tmp/x

Reads ``model.pkl`` (the fitted scikit-learn model), ``train.npy`` (its training features)
and ``example.npy`` (5 of those rows) from the workdir, logs the model with
``ratchet.log_model(..., input_example=X_train)`` inside a run (which registers version 1
of ``bench-model``; the example is a NumPy array, so the signature's columns are f0..f9,
their ranges the training data's, and the model is fed arrays), points ``champion`` at it,
loads it back through the registry to check it predicts what the original does, and
times ``LoadedModel.predict`` on one record (the in-process cost of ratchet's signature
checks). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import time
from pathlib import Path

import numpy as np

import ratchet


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--name", default="bench-model")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()

    with open(args.workdir / "model.pkl", "rb") as f:
        model = pickle.load(f)  # our own file, written by serving_bench.py
    train = np.load(args.workdir / "train.npy")
    example = np.load(args.workdir / "example.npy")

    started = time.perf_counter()
    with ratchet.start_run(experiment="bench-serving", name="bench-model"):
        mv = ratchet.log_model(model, name=args.name, input_example=train)
    version = int(mv.version)  # type: ignore[union-attr]
    ratchet.models.set_alias(args.name, args.alias, version=version, reason="benchmark")
    register_s = time.perf_counter() - started

    loaded = ratchet.models.load(f"models:/{args.name}@{args.alias}")
    expected = model.predict(example)
    got = loaded.predict(example)
    if not np.array_equal(np.asarray(got), expected):
        raise SystemExit(f"registered model predicts {got!r}, the original {expected!r}")

    record = [{f"f{i}": float(v) for i, v in enumerate(example[0])}]
    for _ in range(200):
        loaded.predict(record)
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter_ns()
        loaded.predict(record)
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    print(json.dumps({
        "name": args.name, "version": version, "alias": args.alias,
        "uri": f"{args.name}@{args.alias}", "register_s": register_s,
        "signature_inputs": loaded.signature.input_names if loaded.signature else None,
        "input_format": loaded.manifest.input_format,
        "loaded_predict_one_record": {
            "reps": args.reps, "p50_ms": times[len(times) // 2] / 1e6,
            "p99_ms": times[int(len(times) * 0.99)] / 1e6,
            "mean_ms": statistics.fmean(times) / 1e6,
        },
    }))


if __name__ == "__main__":
    main()
