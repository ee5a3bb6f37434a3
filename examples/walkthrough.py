"""The training loop as a pipeline (`python examples/walkthrough.py`; `make demo` runs the
continuous-training demo, `examples/rainfall/demo.py`).

A ratchet pipeline versions the breast-cancer data that ships with scikit-learn (train
and test splits become dataset versions), trains four scikit-learn candidates as
independent steps (run side by side; each registers its model as a new version and
records which dataset versions it read), and returns their test metrics. The best
candidate becomes `champion`; it is loaded back by alias and predicts. The pipeline then
runs again: nothing changed, so every step is served from the cache. Finally the
champion's lineage and where everything lives are printed. Runs on the embedded defaults
(SQLite + local files in ./.ratchet).
"""

from __future__ import annotations

import time

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ratchet

MODEL = "cancer-classifier"
TARGET = "target"


def candidates() -> dict[str, object]:
    return {
        "logreg-C0.1": make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500)),
        "logreg-C10": make_pipeline(StandardScaler(), LogisticRegression(C=10.0, max_iter=500)),
        "forest": RandomForestClassifier(n_estimators=100, max_depth=6, random_state=0),
        "boosting": GradientBoostingClassifier(n_estimators=100, random_state=0),
    }


@ratchet.step(outputs=("train", "test"),
              dataset={"train": "breast-cancer-train", "test": "breast-cancer-test"})
def load_data(test_size: float = 0.25):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size,
                                                        random_state=0, stratify=y)
    return X_train.assign(**{TARGET: y_train}), X_test.assign(**{TARGET: y_test})


@ratchet.step(outputs=("model", "metrics"), model={"model": MODEL})
def train_candidate(name: str, train: pd.DataFrame, test: pd.DataFrame):
    model = candidates()[name]
    ratchet.log_params({"model": name, **{k: v for k, v in model.get_params().items()
                                          if isinstance(v, int | float | str)}})
    model.fit(train.drop(columns=TARGET), train[TARGET])
    X_test, y_test = test.drop(columns=TARGET), test[TARGET]
    metrics = {"auc": float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])),
               "accuracy": float(accuracy_score(y_test, model.predict(X_test)))}
    ratchet.log_metrics(metrics)  # into this step's tracking run
    return model, metrics


@ratchet.pipeline(experiment="breast-cancer")
def training(test_size: float = 0.25):
    train, test = load_data(test_size)
    return {name: train_candidate(name, train, test)[1] for name in candidates()}


def main() -> None:
    started = time.perf_counter()
    result = training.run()
    seconds = time.perf_counter() - started
    train_out = result.step("load_data").outputs[1]
    print(f"Pipeline run {result.run_id[:12]}: {len(result.steps)} steps "
          f"{result.status} in {seconds:.1f} s; data versioned as "
          f"breast-cancer-train@{train_out.dataset[1] if train_out.dataset else '?'} "
          f"(hash {train_out.digest[:12]})")
    versions = {}
    for name, metrics in result.output.items():
        record = result.step(next(s.node for s in result.steps
                                  if s.params.get("name") == name))
        model_out = next(o for o in record.outputs if o.name == "model")
        assert model_out.model is not None
        versions[name] = model_out.model[1]
        print(f"  step {record.node:<18} {name:<12} auc={metrics['auc']:.4f}  "
              f"-> {MODEL} v{model_out.model[1]}")

    best = max(result.output, key=lambda n: result.output[n]["auc"])
    champion = versions[best]
    auc = result.output[best]["auc"]
    ratchet.models.set_alias(MODEL, "champion", champion,
                             reason=f"highest test AUC ({auc:.4f}) in pipeline run "
                                    f"{result.run_id}")
    print(f"champion -> {MODEL} v{champion} ({best}, auc={auc:.4f})")

    test = result.load("load_data", "test")
    loaded = ratchet.models.load(f"models:/{MODEL}@champion")
    sample = test.drop(columns=TARGET).head(5)
    print(f"champion predictions for 5 test rows: {loaded.predict(sample).tolist()} "
          f"(truth: {test[TARGET].head(5).tolist()})")
    print(f"probability of class 1: "
          f"{[round(float(p), 3) for p in loaded.predict_proba(sample)[:, 1]]}")

    started = time.perf_counter()
    again = training.run()
    print(f"Ran the pipeline again: {sum(s.status == 'cached' for s in again.steps)} of "
          f"{len(again.steps)} steps served from the cache in "
          f"{time.perf_counter() - started:.2f} s")

    lineage = ratchet.models.get_lineage(f"models:/{MODEL}@champion")
    code = lineage.run.code if lineage.run else None
    if lineage.run is not None:
        used = ", ".join(f"{i.name}@{i.version} ({i.role})" for i in lineage.run.inputs)
        print(f"champion was trained on: {used}")
    settings = ratchet.models.client().tracking.settings
    print("\nWhere everything is:")
    print(f"  metadata store : {settings.db_url}")
    print(f"  artifact store : {settings.artifacts_uri}")
    version = ratchet.models.get_version(MODEL, champion)
    print(f"  champion files : runs:/{version.run_id}/{version.artifact_path} "
          f"(content hash {version.content_hash[:16]}...)")
    if code is not None:
        print(f"  trained from   : {code.entry_point} at commit "
              f"{(code.git_commit or 'none')[:12]} (dirty={code.git_dirty})")
    print(f"  try            : ratchet pipeline show {result.run_id[:12]}; "
          "ratchet models lineage cancer-classifier@champion")


if __name__ == "__main__":
    main()
