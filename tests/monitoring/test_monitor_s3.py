"""A monitor whose model, training data and prediction log are on S3 (moto_server over
HTTP). Reports are local files (HTML next to a shared plotly.js): an S3 URL as the report
directory is refused rather than written to a local folder named ``s3:``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ratchet.config import Settings
from ratchet.data.catalog import DataClient
from ratchet.errors import InvalidInput
from ratchet.monitoring.monitor import run_monitor
from ratchet.registry import RegistryClient
from ratchet.workspace import Workspace
from tests import s3_server as s3_fixtures
from tests.monitoring.test_monitor import _serve
from tests.s3_server import S3Bucket
from tests.serving.conftest import _pipeline, churn_frame

s3, s3_server = s3_fixtures.s3, s3_fixtures.s3_server  # the fixtures this module uses


@pytest.fixture
def home(s3: S3Bucket, tmp_path: Path) -> Settings:
    root = tmp_path / "home"
    return Settings(home=root, db_url=f"sqlite:///{root / 'ratchet.db'}",
                    artifacts_uri=s3.url("team/ratchet"))


@pytest.fixture
def registry(home: Settings) -> RegistryClient:
    registry = RegistryClient(Workspace(home))
    X, y = churn_frame(1_000)
    with registry.tracking.start_run(experiment="churn") as run:
        DataClient(registry.workspace).log(X.assign(label=y), name="churn-train", role="train")
        registry.log_model(run.id, _pipeline(1.0, "ignore").fit(X, y), name="churn",
                           input_example=X)
    registry.set_alias("churn", "champion", 1)
    return registry


def test_monitor_reads_everything_from_s3_and_reports_locally(
        home: Settings, registry: RegistryClient, s3: S3Bucket, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rows, labels = churn_frame(200, seed=11)
    _serve(home, rows, labels)
    assert s3.fs().find(f"{s3.name}/team/ratchet/predictions")  # the log went to S3

    run = run_monitor("churn", window="1h", workspace=Workspace(home))
    assert run.result["rows"] == 200 and run.verdict == "ok", run.result
    assert run.result["reference"] == {"dataset": "churn-train", "version": 1, "rows": 1_000}
    assert run.result["performance"]["labeled"] == 200
    assert run.report_html is not None and run.report_html.is_file()
    assert run.report_html.is_relative_to(home.home / "reports" / "churn")
    assert json.loads(run.report_json.read_text())["rows"] == 200  # type: ignore[union-attr]

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput, match="local directory"):
        run_monitor("churn", window="1h", workspace=Workspace(home), report_dir="s3://reports/churn")
    assert not (tmp_path / "s3:").exists()
