"""The champion's baseline — what a performance-drop trigger compares with — comes from its
recorded evaluation: the gate score at promotion, a hand-set champion's held-out score from
its training run, or else its first labeled window, stated as such; and while nothing
fires, the controller says why, trigger by trigger (``ratchet ct status``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import ratchet
from ratchet.cli.main import app
from ratchet.ct.controller import CHAMPION
from ratchet.ct.policy import MonitorPolicy, Trigger
from ratchet.serving.traffic_plan import TrafficPlan
from tests.ct.test_controller import INPUTS, LABEL, MODEL, Scene, _scene, frame

HERE = "tests.ct.test_baselines"


@pytest.fixture
def bare(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Scene:
    """An empty store, as the controller tests' fixture of that name makes it."""
    home = workspace / ".ratchet"
    monkeypatch.setenv("RATCHET_HOME", str(home))
    monkeypatch.setenv("RATCHET_DB", f"sqlite:///{home / 'ratchet.db'}")
    monkeypatch.setenv("RATCHET_ARTIFACTS", str(home / "artifacts"))
    return _scene(home)
DROP = (Trigger("performance", metric="accuracy", drop=0.1), Trigger("manual"))
WATCH = MonitorPolicy(rows=100, min_rows=50, multivariate=False)


@ratchet.step(dataset={"output": "ctm-train"})
def training_window(data: str) -> pd.DataFrame:
    return ratchet.data.get(data).to_pandas()


@ratchet.step(model={"output": MODEL})
def fit_and_score(train: pd.DataFrame) -> Any:
    """Fits on the older rows and logs its score on the newest 100 (a held-out score)."""
    fitted, held = train.iloc[:-100], train.iloc[-100:]
    model = LogisticRegression().fit(fitted[INPUTS], fitted[LABEL].astype(int))
    ratchet.log_metrics({"holdout_accuracy": model.score(held[INPUTS], held[LABEL]),
                         "training_accuracy": 1.0})
    return model


@ratchet.pipeline(experiment="ctm-ct")
def scored_training(data: str) -> Any:
    return fit_and_score(training_window(data))


def hand_set(scene: Scene, pipeline: str) -> int:
    """A champion registered and aliased by hand (no controller cycle made it)."""
    from ratchet.data.catalog import DataClient
    from ratchet.pipelines.pipeline_definition import load_pipeline
    from ratchet.pipelines.runner import PipelineRunner

    workspace = scene.registry.tracking.workspace
    data = DataClient(workspace).log(frame(500, seed=1), "ctm-initial")
    run = PipelineRunner(load_pipeline(pipeline), {"data": f"{data.name}@{data.version}"},
                         workspace=workspace).run()
    version = int(max(o.model[1] for s in run.steps for o in s.outputs if o.model))
    scene.registry.set_alias(MODEL, CHAMPION, version, reason="test: set by hand")
    scene.deployments.ensure(MODEL, TrafficPlan.single(f"{MODEL}@{CHAMPION}"))
    return version


def test_a_hand_set_champion_is_judged_against_its_training_runs_holdout_score(
        bare: Scene) -> None:
    """Served decayed traffic from the start, the first window is already bad: measured
    against itself nothing would fire; against the held-out score its training run
    recorded, the drop fires at once."""
    hand_set(bare, f"{HERE}:scored_training")
    bare.serve(100, flipped=True)  # the concept changed before the first window
    controller = bare.controller(triggers=DROP, monitor=WATCH)
    result = controller.tick()
    assert result.steps[0][1] == "training", result.describe()
    from ratchet.ct.timeline import list_events

    fired = list_events(MODEL, kinds=["trigger"],
                        workspace=bare.registry.workspace)[0].evidence["fired"]
    trigger = [f for f in fired if f["kind"] == "performance"]
    assert "training run" in trigger[0]["reason"] and "holdout_accuracy" in trigger[0]["reason"]
    assert trigger[0]["evidence"]["baseline"] > 0.8  # not the training score of 1.0
    assert trigger[0]["evidence"]["baseline"] < 1.0


def test_without_a_recorded_evaluation_the_first_window_is_the_baseline_and_says_so(
        bare: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    hand_set(bare, "tests.ct.test_controller:training")  # logs no held-out score
    bare.serve(100, flipped=True)
    controller = bare.controller(triggers=DROP, monitor=WATCH)
    assert controller.tick().state == "watching"
    watch = controller.store.get(MODEL).data["watch"]
    assert watch["baseline"]["accuracy"] < 0.3  # the decayed window, stated as such
    assert "first labeled window" in watch["baseline_source"]
    performance = next(line for line in watch["why"] if line.startswith("accuracy"))
    assert "first labeled window" in performance and "allows 0.1" in performance
    assert any(line.startswith("manual: nobody asked") for line in watch["why"])

    monkeypatch.chdir(bare.home.parent)
    shown = CliRunner().invoke(app, ["ct", "status", MODEL])
    assert shown.exit_code == 0, shown.output
    assert "why no retrain" in shown.output and "first labeled window" in shown.output


def test_a_champion_with_too_few_labels_says_what_it_waits_for(bare: Scene) -> None:
    hand_set(bare, "tests.ct.test_controller:training")
    controller = bare.controller(triggers=(Trigger("drift"), *DROP), monitor=WATCH)
    bare.serve(20)  # fewer rows than a monitor window needs
    controller.tick()
    why = controller.store.get(MODEL).data["watch"]["why"]
    assert why[0] == "drift: no monitor verdict yet: 20 of the 50 served rows a verdict needs"
    assert why[1].startswith("accuracy dropping by 0.1: no accuracy yet: 0 labeled rows")


def test_while_labels_are_late_a_calibrated_estimate_stands_in(bare: Scene) -> None:
    """The champion keeps a label-free estimator fit on held-out rows; with no label in
    the window yet, the performance trigger reads the estimate and says so."""
    from ratchet.monitoring.estimation import fit_performance_estimator, save_estimator

    version = hand_set(bare, f"{HERE}:scored_training")
    model = bare.registry.load(f"models:/{MODEL}/{version}")
    held = frame(300, seed=7)
    save_estimator(bare.registry, MODEL, version, fit_performance_estimator(
        model.predict_proba(held[INPUTS]), held[LABEL], [0, 1], source="test holdout"))
    bare.world.label_delay_ms = 10**12  # no label arrives during the test
    bare.serve(100)
    controller = bare.controller(triggers=DROP, monitor=WATCH)
    assert controller.tick().state == "watching"
    watch = controller.store.get(MODEL).data["watch"]
    assert watch["last_metrics"]["accuracy"] > 0.85  # the estimate, close to the truth
    line = next(line for line in watch["why"] if line.startswith("accuracy"))
    assert "(estimated, no labels yet)" in line and "training run" in line


def test_one_row_a_day_is_watched_with_no_lookback_set_and_bounded_by_one(
        bare: Scene) -> None:
    """With no data.lookback the controller reads back as far as its windows need; a
    lookback set by hand bounds the rows' age, and ct status says so."""
    from datetime import timedelta

    import numpy as np

    from ratchet.ct.policy import DataPolicy
    from tests.ct.test_controller import T0

    hand_set(bare, f"{HERE}:scored_training")
    decayed = frame(100, flipped=True, seed=9)
    day = 86_400_000
    times = T0 + np.arange(100) * day
    bare.world.serve(decayed[INPUTS], times, decayed[LABEL].to_numpy(), 0)
    bare.world.now = int(times[-1]) + day
    data = DataPolicy(label=LABEL, rows=400, holdout=150, min_rows=200)
    assert data.lookback is None
    result = bare.controller(triggers=DROP, monitor=WATCH, data=data).tick()
    assert result.steps[0][1] == "training", result.describe()  # 100 days watched

    bare.registry.set_alias(MODEL, CHAMPION, 1, reason="test: back to v1")
    bounded = DataPolicy(label=LABEL, rows=400, holdout=150, min_rows=200,
                         lookback=timedelta(days=30))
    controller = bare.controller(triggers=DROP, monitor=WATCH, data=bounded,
                                 holder="second")
    controller.store.release(MODEL, "main")
    controller.tick()
    why = controller.store.get(MODEL).data["watch"]["why"]
    assert any("within data.lookback (30d)" in line for line in why), why


def test_a_busy_log_is_read_once_per_tick_even_for_a_champion_with_few_rows(
        bare: Scene) -> None:
    """Only traffic extends the read: a champion set a moment ago has served few rows, but
    older spans of a busy log would not hold more of them."""
    hand_set(bare, f"{HERE}:scored_training")
    bare.serve(300)  # busy: more rows than a monitor window, all within 30 days
    hand_set(bare, "tests.ct.test_controller:training")  # a new champion: none of them
    reads: list[int] = []
    logged = bare.world.logged

    def counted(since_ms: int) -> Any:
        reads.append(since_ms)
        return logged(since_ms)

    bare.world.logged = counted  # type: ignore[method-assign]
    bare.controller(triggers=DROP, monitor=WATCH).tick()
    assert len(reads) == 1  # not six spans back to a century
