"""`ratchet check` never passes on a holdout that cannot say anything: labels the candidate
has never seen, or no rows at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ratchet.cli.main import app
from ratchet.config import load_settings
from tests.serving.conftest import churn_frame, register_churn


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / ".ratchet"))
    register_churn(load_settings())
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_labels_outside_the_models_classes_fail_with_the_reason(project: Path) -> None:
    X, y = churn_frame(300, seed=31)
    X.assign(churned=y.map({0: "stayed", 1: "left"})).to_csv(project / "h.csv", index=False)
    code, out = invoke("check", "churn/1", "--data", "h.csv", "--label", "churned",
                       "--champion", "churn/2")
    assert code == 1, out
    assert "| model | ❌ |" in out
    assert "none of the holdout's labels ('left', 'stayed') is among the candidate's " \
           "classes (0, 1)" in out
    assert "0.0000 vs 0.0000" not in out


def test_an_empty_holdout_fails_the_data_check(project: Path) -> None:
    X, y = churn_frame(50, seed=32)
    X.assign(churned=y).head(0).to_csv(project / "empty.csv", index=False)
    code, out = invoke("check", "churn/1", "--data", "empty.csv", "--label", "churned")
    assert code == 1, out
    assert "| data | ❌ | the holdout has no rows" in out


def test_matching_labels_still_pass(project: Path) -> None:
    X, y = churn_frame(400, seed=33)
    X.assign(churned=y).to_csv(project / "ok.csv", index=False)
    code, out = invoke("check", "churn/1", "--data", "ok.csv", "--label", "churned")
    assert code == 0, out
