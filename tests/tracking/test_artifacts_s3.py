"""Runs, models and datasets with the artifacts on S3 (moto_server over HTTP) and the
metadata in SQLite: configured only by ``RATCHET_ARTIFACTS=s3://...`` and the standard AWS
variables, as a user configures it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ratchet
from ratchet.hashing import hash_bytes
from tests import s3_server as s3_fixtures
from tests.s3_server import S3Bucket

s3, s3_server = s3_fixtures.s3, s3_fixtures.s3_server  # the fixtures this module uses


@pytest.fixture
def s3_workspace(s3: S3Bucket, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    monkeypatch.setenv("RATCHET_ARTIFACTS", s3.url("team/ratchet"))
    return s3


def _stored_keys(s3: S3Bucket) -> list[str]:
    return sorted(s3.fs().find(f"{s3.name}/team/ratchet"))


def test_run_artifacts_and_models_on_s3(s3_workspace: S3Bucket, workspace: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X.a + X.b > 0).astype(int)
    report = workspace / "report.txt"
    report.write_text("auc 0.91\n")

    with ratchet.start_run(experiment="churn") as run:
        ratchet.log_artifact(report, "reports/report.txt")
        mv = ratchet.log_model(LogisticRegression().fit(X, y), name="churn", input_example=X)

    keys = _stored_keys(s3_workspace)
    assert keys and all("/blobs/" in k for k in keys), keys  # nothing left in tmp/
    digest = hash_bytes(b"auc 0.91\n")
    assert f"{s3_workspace.name}/team/ratchet/blobs/{digest[:2]}/{digest[2:]}" in keys
    assert not (workspace / ".ratchet" / "artifacts").exists()  # nothing went local

    client = ratchet.TrackingClient()
    assert client.read_artifact(run.id, "reports/report.txt") == b"auc 0.91\n"
    assert [e.path for e in client.list_artifacts(run.id, "reports")] == ["reports/report.txt"]
    out = client.download_artifacts(run.id, "reports", workspace / "down")
    assert (out / "report.txt").read_text() == "auc 0.91\n"

    ratchet.models.set_alias("churn", "champion", version=mv.version)
    model = ratchet.models.load("models:/churn@champion")
    assert (model.predict(X) == LogisticRegression().fit(X, y).predict(X)).all()


def test_dataset_on_s3(s3_workspace: S3Bucket) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"id": np.arange(5_000), "x": rng.normal(size=5_000),
                          "plan": rng.choice(["basic", "pro"], 5_000)})
    v1 = ratchet.data.log(frame, name="churn")
    assert v1.row_count == 5_000
    key = f"{s3_workspace.name}/team/ratchet/blobs/{v1.digest[:2]}/{v1.digest[2:]}"
    assert key in _stored_keys(s3_workspace)

    back = ratchet.data.get("churn@1")
    pd.testing.assert_frame_equal(back.to_pandas(), frame, check_dtype=False)
    assert back.to_arrow(columns=["plan"]).num_rows == 5_000
    back.verify()
    assert back.profile.column("plan").distinct == 2
