"""CLI fixtures: an isolated project directory with its own embedded store, seeded through
the Python API, and a runner that invokes ``ratchet`` in-process."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ratchet.cli.main import app
from ratchet.workspace import Workspace

T0 = 1_714_564_800_000  # 2024-05-01T12:00:00Z


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory whose store lives in ``.ratchet`` under it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / ".ratchet"))
    # Tables as wide as a real terminal, whatever runs the tests (xdist workers, CI): with
    # the 80-column fallback long temporary paths and ids wrap mid-word.
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


Invoke = Callable[..., Result]


@pytest.fixture
def cli(project: Path) -> Invoke:
    """``cli("runs", "show", run_id)``: run ratchet in-process; real bugs propagate."""
    runner = CliRunner()

    def invoke(*args: str, catch_exceptions: bool = False) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=catch_exceptions)

    return invoke


def strict_json(text: str) -> Any:
    """Parse JSON the way jq would: NaN / Infinity literals are rejected."""

    def reject(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def assert_user_error(result: Result, *fragments: str) -> list[str]:
    """Exit 1, nothing on stdout, exactly one ``error:`` line on stderr, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert result.stdout == ""
    lines = result.stderr.rstrip("\n").splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert sum(line.startswith("error:") for line in lines) == 1
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr
    return lines


@dataclass
class Seeded:
    churn_id: str
    other_id: str
    best: str  # churn, finished, auc 0.82 (history 0.80 → 0.82), the model's run
    second: str  # churn, finished, auc 0.75
    child: str  # child of ``best``, running
    failed: str  # other, failed
    run_order: Sequence[str]  # newest first


@pytest.fixture
def seeded(project: Path) -> Seeded:
    """Two experiments, four runs, an artifact, an input, a model with two versions and an
    alias that moved once, all written through the Python API."""
    from ratchet.config import load_settings
    from ratchet.registry.client import RegistryClient
    from ratchet.store.records import CodeVersion, DatasetInput
    from ratchet.tracking.client import TrackingClient

    tracking = TrackingClient(Workspace(load_settings()))
    store = tracking.store
    churn = tracking.create_experiment("churn", description="predict churn [beta]")
    other = tracking.create_experiment("other")
    code = CodeVersion(
        git_commit="0123456789abcdef0123456789abcdef01234567",
        git_branch="main",
        git_dirty=True,
        entry_point="train.py",
    )
    best = store.create_run(churn.experiment_id, name="lgbm-best", code=code, start_time=T0)
    tracking.log_params(best.run_id, {"model": "lgbm", "C": 1.0})
    for step, value in enumerate((0.80, 0.81, 0.82)):
        tracking.log_metric(best.run_id, "auc", value, step=step, timestamp=T0 + step)
    tracking.log_metric(best.run_id, "loss", float("nan"), timestamp=T0)
    tracking.set_tag(best.run_id, "team", "growth")
    tracking.log_input(
        best.run_id, DatasetInput("customers", "ab" * 32, 3, "training", "s3://bucket/c")
    )
    weights = project / "weights.txt"
    weights.write_text("weights v1\n")
    tracking.log_artifact(best.run_id, weights, "model/weights.txt")
    (project / "report.md").write_text("# report\n")
    tracking.log_artifact(best.run_id, project / "report.md")
    tracking.end_run(best.run_id)

    second = store.create_run(churn.experiment_id, name="rf-second", start_time=T0 + 1000)
    tracking.log_metric(second.run_id, "auc", 0.75)
    tracking.end_run(second.run_id)

    child = store.create_run(
        churn.experiment_id, name="fold-1", parent_run_id=best.run_id, start_time=T0 + 2000
    )
    failed = store.create_run(other.experiment_id, name="broken", start_time=T0 + 3000)
    tracking.end_run(failed.run_id, "failed", error="Traceback ...\nValueError: bad input")

    registry = RegistryClient(tracking.workspace)
    for digest in ("a" * 64, "b" * 64):
        registry.store.create_model_version(
            "churn",
            run_id=best.run_id,
            artifact_path="model",
            content_hash=digest,
            flavor="sklearn",
            manifest={"flavor": "sklearn"},
        )
    registry.set_alias("churn", "champion", 1, reason="first model")
    registry.set_alias("churn", "champion", 2, reason="better auc")
    return Seeded(
        churn_id=churn.experiment_id,
        other_id=other.experiment_id,
        best=best.run_id,
        second=second.run_id,
        child=child.run_id,
        failed=failed.run_id,
        run_order=[failed.run_id, child.run_id, second.run_id, best.run_id],
    )
