"""`ratchet check` as CI runs it: a better candidate passes, a worse one, a broken holdout
and a failing schema each fail with a Markdown report and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ratchet.cli.main import app
from ratchet.config import load_settings
from ratchet.data.schema import infer_schema, save_schema
from tests.serving.conftest import churn_frame, register_churn


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / ".ratchet"))
    register_churn(load_settings())  # v1 (C=1), v2 (C=0.01, weaker), v3
    X, y = churn_frame(4_000, seed=21)  # enough rows for v1's edge over v2 to be sure
    X.assign(churned=y).to_parquet(tmp_path / "holdout.parquet")
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_a_better_candidate_passes_and_writes_the_report(project: Path) -> None:
    code, out = invoke("check", "churn/1", "--data", "holdout.parquet", "--label", "churned",
                       "--champion", "churn/2", "--report", "check.md")
    assert code == 0, out
    report = (project / "check.md").read_text()
    assert report.startswith("## ratchet check: ✅ passed")
    assert "| champion | ✅ |" in report and "scores on the holdout" in report
    assert "Candidate `churn/1` vs champion `churn/2`" in report
    assert "better with 95% confidence); improvement in [+" in report


def test_an_edge_the_holdout_cannot_show_fails_and_says_why(project: Path) -> None:
    """On 300 rows v1's edge over v2 is within chance: the paired test says so."""
    X, y = churn_frame(300, seed=24)
    X.assign(churned=y).to_parquet(project / "small.parquet")
    code, out = invoke("check", "churn/1", "--data", "small.parquet", "--label", "churned",
                       "--champion", "churn/2")
    assert code == 1 and "not better with 95% confidence" in out, out
    code, out = invoke("check", "churn/1", "--data", "small.parquet", "--label", "churned",
                       "--champion", "churn/2", "--confidence", "0.5")
    assert "with 50% confidence" in out


def test_a_worse_candidate_fails_the_build(project: Path) -> None:
    code, out = invoke("check", "churn/2", "--data", "holdout.parquet", "--label", "churned",
                       "--champion", "churn/1")
    assert code == 1
    assert "## ratchet check: ❌ failed" in out and "needs to be better" in out


def test_a_holdout_the_signature_rejects_fails_the_model_check(project: Path) -> None:
    X, y = churn_frame(200, seed=22)
    X.assign(plan="gold", churned=y).to_csv(project / "odd.csv", index=False)
    code, out = invoke("check", "churn/1", "--data", "odd.csv", "--label", "churned")
    assert code == 1 and "| model | ❌ |" in out and "unknown category 'gold'" in out


def test_a_schema_failure_fails_the_data_check(project: Path) -> None:
    X, y = churn_frame(300, seed=23)
    schema = infer_schema(X.assign(churned=y).assign(age=X.age.clip(18, 40)))
    save_schema(schema, project / "schema.yaml")
    code, out = invoke("check", "churn/1", "--data", "holdout.parquet", "--label", "churned",
                       "--schema", "schema.yaml")
    assert code == 1 and "| data | ❌ |" in out and "age" in out


def test_usage_mistakes_are_one_line_errors(project: Path) -> None:
    code, out = invoke("check", "churn/1", "--data", "holdout.parquet", "--label", "nope")
    assert code != 0 and "no label column 'nope'" in out and "Traceback" not in out
    pd.DataFrame({"a": [1]}).to_json(project / "x.json")
    code, out = invoke("check", "churn/1", "--data", "x.json", "--label", "a")
    assert code != 0 and "use a .parquet or .csv" in out
