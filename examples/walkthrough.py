"""Tracking + registry walkthrough: what `make demo` runs.

Versions the breast-cancer data that ships with scikit-learn (train and test splits),
trains a few scikit-learn models on it, tracks each as a run that records which dataset
versions it read, registers every model, points the `champion` alias at the best one,
loads the champion back by alias and predicts, then prints the champion's lineage and
where everything lives. Runs on the embedded defaults (SQLite + local files in ./.ratchet).
"""

from __future__ import annotations

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ratchet

EXPERIMENT = "breast-cancer"
MODEL = "cancer-classifier"


def candidates() -> dict[str, object]:
    return {
        "logreg-C0.1": make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500)),
        "logreg-C10": make_pipeline(StandardScaler(), LogisticRegression(C=10.0, max_iter=500)),
        "forest": RandomForestClassifier(n_estimators=100, max_depth=6, random_state=0),
        "boosting": GradientBoostingClassifier(n_estimators=100, random_state=0),
    }


def main() -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    train_ds = ratchet.data.log(X_train.assign(target=y_train), name="breast-cancer-train",
                                source="sklearn.datasets.load_breast_cancer")
    test_ds = ratchet.data.log(X_test.assign(target=y_test), name="breast-cancer-test",
                               source="sklearn.datasets.load_breast_cancer")
    print(f"Datasets: {train_ds.ref} ({train_ds.row_count} rows, hash {train_ds.digest[:12]}), "
          f"{test_ds.ref} ({test_ds.row_count} rows)")
    print(f"Training {len(candidates())} models on {len(X_train)} rows "
          f"({X.shape[1]} features)...")

    versions = []
    for name, model in candidates().items():
        with ratchet.start_run(experiment=EXPERIMENT, name=name) as run:
            run.log_input(train_ds, role="train")
            run.log_input(test_ds, role="eval")
            ratchet.log_params({"model": name, **{k: v for k, v in model.get_params().items()
                                                  if isinstance(v, int | float | str)}})
            model.fit(X_train, y_train)
            proba = model.predict_proba(X_test)[:, 1]
            auc = roc_auc_score(y_test, proba)
            ratchet.log_metrics({"auc": auc,
                                 "accuracy": accuracy_score(y_test, model.predict(X_test))})
            mv = ratchet.log_model(model, name=MODEL, input_example=X_train.head())
            versions.append(mv)
            print(f"  run {run.id[:12]}  {name:<12} auc={auc:.4f}  -> {MODEL} v{mv.version}")

    best = ratchet.search_runs("attributes.status = 'finished'",
                               experiments=[EXPERIMENT], order_by=["metrics.auc DESC"],
                               max_results=1)[0]
    champion = next(v for v in versions if v.run_id == best.run_id)
    ratchet.models.set_alias(MODEL, "champion", champion.version,
                             reason=f"highest test AUC ({best.metrics['auc']:.4f})")
    print(f"champion -> {MODEL} v{champion.version} ({best.name}, "
          f"auc={best.metrics['auc']:.4f})")

    loaded = ratchet.models.load(f"models:/{MODEL}@champion")
    sample = X_test.head(5)
    print(f"champion predictions for 5 test rows: {loaded.predict(sample).tolist()} "
          f"(truth: {y_test.head(5).tolist()})")
    print(f"probability of class 1: {[round(float(p), 3) for p in loaded.predict_proba(sample)[:, 1]]}")

    lineage = ratchet.models.lineage(f"models:/{MODEL}@champion")
    code = lineage.run.code if lineage.run else None
    if lineage.run is not None:
        used = ", ".join(f"{i.name}@{i.version} ({i.role})" for i in lineage.run.inputs)
        print(f"champion was trained on: {used}")
    settings = ratchet.models.client().tracking.settings
    print("\nWhere everything is:")
    print(f"  metadata store : {settings.db_url}")
    print(f"  artifact store : {settings.artifacts_uri}")
    print(f"  champion files : runs:/{champion.run_id}/{champion.artifact_path} "
          f"(content hash {champion.content_hash[:16]}...)")
    if code is not None:
        print(f"  trained from   : {code.entry_point} at commit "
              f"{(code.git_commit or 'none')[:12]} (dirty={code.git_dirty})")
    print("  try            : ratchet runs list; ratchet models show cancer-classifier; "
          "ratchet models lineage cancer-classifier@champion")


if __name__ == "__main__":
    main()
