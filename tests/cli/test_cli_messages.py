"""What the CLI says matches what it does: unknown models are errors, history says who,
hints name real commands and flags."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

from tests.cli.conftest import Invoke, Seeded, assert_user_error


def test_ct_retrain_of_an_unknown_model_is_an_error(cli: Invoke, seeded: Seeded) -> None:
    assert_user_error(cli("ct", "retrain", "nope"), "no registered model named 'nope'")
    assert_user_error(cli("ct", "approve", "nope"), "'nope'")
    done = cli("ct", "retrain", "churn", "--actor", "ann")
    assert done.exit_code == 0 and "retrain recorded for churn" in done.stdout


def test_deploy_history_says_who_changed_the_plan(cli: Invoke, seeded: Seeded) -> None:
    assert cli("deploy", "create", "web", "--model", "churn@champion").exit_code == 0
    assert cli("deploy", "set-plan", "web", "--model", "churn/1").exit_code == 0
    assert cli("deploy", "rollback", "web").exit_code == 0
    history = json.loads(cli("deploy", "history", "web", "--json").stdout)
    assert len(history) == 3
    assert [r["actor"] for r in history] == [getpass.getuser()] * 3
    table = cli("deploy", "history", "web").stdout
    assert getpass.getuser() in table


def test_overwrite_hints_name_the_flag(cli: Invoke, seeded: Seeded, project: Path) -> None:
    (project / "bundle").mkdir()
    (project / "bundle" / "x").write_text("x")
    lines = assert_user_error(cli("build", "churn/1", "-o", "bundle"), "pass --overwrite")
    assert "overwrite=True" not in lines[0].split("pass --overwrite")[0]
    (project / "in.csv").write_text("a\n1\n")
    (project / "out.csv").write_text("taken\n")
    lines = assert_user_error(cli("predict", "churn/1", "in.csv", "-o", "out.csv"),
                              "out.csv exists; pass --overwrite")


def test_the_controller_hint_names_a_real_command(cli: Invoke, project: Path) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import ratchet

    (project / "policy.yaml").write_text("model: rain\npipeline: flows.py:training\n"
                                         "triggers: [manual]\n")
    with ratchet.start_run(experiment="ct-cli"):
        X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
        ratchet.log_model(LogisticRegression().fit(X, [0, 0, 1, 1]), name="rain",
                          input_example=X)
    lines = assert_user_error(cli("ct", "tick", "policy.yaml"), "no 'champion' alias")
    hint = lines[0].split("(", 1)[1].split(")")[0]  # (ratchet models alias set rain ...)
    assert hint == "ratchet models alias set rain champion VERSION"
    words = hint.split()[1:4]
    assert cli(*words, "--help").exit_code == 0  # the command it names exists


def test_runs_show_metric_and_artifacts_take_id_prefixes(cli: Invoke, seeded: Seeded) -> None:
    prefix = seeded.best[:12]
    shown = cli("runs", "show", prefix, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["run_id"] == seeded.best
    assert "0.82" in cli("runs", "metric", prefix, "auc").stdout
    assert "model/weights.txt" in cli("artifacts", "list", prefix).stdout
    assert_user_error(cli("runs", "show", seeded.best[:3]), "6+ hex digits")
    assert_user_error(cli("runs", "show", "ffffffffffff"), "no run with id 'ffffffffffff'")
    assert_user_error(cli("runs", "show", "%%%%%%%%"), "no run")


def test_an_ambiguous_run_prefix_is_refused(cli: Invoke, seeded: Seeded) -> None:
    first = seeded.run_order[0]  # UUIDv7: ids made together share a creation-time prefix
    n = 0
    while n < len(first) and all(r[n] == first[n] for r in seeded.run_order):
        n += 1
    shared = first[:n]
    if len(shared) < 6:  # the four runs straddle a 4.6-hour boundary: nothing to test
        return
    assert_user_error(cli("runs", "show", shared), "ambiguous")


def test_a_csv_without_header_says_so(cli: Invoke, project: Path) -> None:
    from ratchet.config import load_settings
    from tests.serving.conftest import churn_frame, register_churn

    register_churn(load_settings())
    X, _ = churn_frame(3, seed=5)
    X.head(1).to_csv(project / "one.csv", index=False, header=False)
    assert_user_error(cli("predict", "churn/1", "one.csv", "-o", "out.csv", "--json"),
                      "no rows to score", "first line of a CSV is its header")


def test_models_register_exists_as_the_deploy_hint_says(cli: Invoke, project: Path) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import ratchet

    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    with ratchet.start_run(experiment="reg") as run:
        ratchet.log_model(LogisticRegression().fit(X, [0, 0, 1, 1]), input_example=X)
    uri = f"runs:/{run.run_id}/model"
    assert_user_error(cli("deploy", "create", "web", "--model", uri),
                      "(ratchet models register)")
    done = cli("models", "register", uri, "rain", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["version"] == 1
    again = cli("models", "register", uri, "rain")
    assert again.stdout == f"registered rain version 2 from {uri}\n"
    assert_user_error(cli("models", "register", "churn/1", "rain"), "runs:/ URI")
    assert cli("deploy", "create", "web", "--model", "rain/1").exit_code == 0
