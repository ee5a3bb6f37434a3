"""MLflow's search grammars on ratchet's: run filters and order_by translated to ratchet's
filter language, and the experiment filter, order and page tokens (pure functions)."""

from __future__ import annotations

import pytest

from ratchet.server.mlflow.protocol import MlflowError
from ratchet.server.mlflow.search_translation import (
    experiment_filter,
    experiment_order,
    like_matcher,
    matches,
    page_offset,
    page_token,
    run_filter,
    run_order_by,
    sort_experiments,
)
from ratchet.store.records import Experiment
from ratchet.store.run_filter import parse_filter


@pytest.mark.parametrize(("mlflow", "ratchet"), [
    ("metrics.x > 0", "metrics.x > 0.0"),
    ("params.p = 'v' and tags.`t` LIKE '%a'", "params.p = 'v' and tags.t like '%a'"),
    ("attributes.status = 'FINISHED'", "attributes.status = 'finished'"),
    ("tags.mlflow.runName = 'first'", "attributes.run_name = 'first'"),
    ("tags.`mlflow.runName` ILIKE 'fi%'", "attributes.run_name ilike 'fi%'"),
    ("run_id IN ('a', 'b')", "attributes.run_id in ('a', 'b')"),
    ("attributes.run_name = 'x' AND attributes.start_time >= 5",
     "attributes.run_name = 'x' and attributes.start_time >= 5.0"),
    ("attributes.user_id = 'ann'", "attributes.user = 'ann'"),
    ("parameter.lr = '0.1'", "params.lr = '0.1'"),
    ("parameters.lr = '0.1' or metrics.a < 1", "params.lr = '0.1' or metrics.a < 1.0"),
    # Words inside quotes are values, never entities.
    ("params.p = 'datasets.name'", "params.p = 'datasets.name'"),
    ("params.p = 'parameter.x'", "params.p = 'parameter.x'"),
])
def test_mlflow_run_filters_become_ratchet_filters(mlflow: str, ratchet: str) -> None:
    translated = run_filter(mlflow)
    assert translated == ratchet
    assert parse_filter(translated) is not None  # ratchet's parser reads it back


def test_an_empty_run_filter_is_no_filter() -> None:
    assert run_filter(None) is None and run_filter("  ") is None


@pytest.mark.parametrize(("text", "says"), [
    ("datasets.name = 'train'", "datasets"),
    ("dataset.digest = 'abc'", "not supported"),
    ("metrics.x > 'a'", "Invalid filter"),
    ("attributes.artifact_uri = 'x'", "unknown attribute"),
    ("attributes.status = 'WAITING'", "unknown run status"),
    ("metrics.x >", "Invalid filter"),
])
def test_bad_or_unsupported_run_filters_are_invalid_parameter_values(text: str,
                                                                      says: str) -> None:
    with pytest.raises(MlflowError) as caught:
        run_filter(text)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert says in str(caught.value)


def test_run_order_by_maps_mlflow_spellings() -> None:
    assert run_order_by(["metrics.auc DESC", "attributes.start_time ASC", "run_name",
                         "tags.mlflow.runName DESC", "params.`my p`"]) == [
        "metrics.auc DESC", "attributes.start_time ASC", "attributes.run_name ASC",
        "attributes.run_name DESC", "params.`my p` ASC"]
    with pytest.raises(MlflowError, match="order_by"):
        run_order_by(["metrics.auc SIDEWAYS"])


def _exp(experiment_id: str, name: str, created: int, tags: dict[str, str] | None = None,
         deleted_at: int | None = None) -> Experiment:
    return Experiment(experiment_id, name, None, "active", created, tags or {}, deleted_at)


EXPERIMENTS = [_exp("0", "Default", 100), _exp("a1", "churn-model", 200, {"team": "x"}),
               _exp("b2", "Churn-2", 300, {"team": "y"}), _exp("c3", "fraud", 400)]


@pytest.mark.parametrize(("text", "names"), [
    ("", ["Default", "churn-model", "Churn-2", "fraud"]),
    ("name = 'fraud'", ["fraud"]),
    ("name != 'fraud'", ["Default", "churn-model", "Churn-2"]),
    ("name LIKE 'churn%'", ["churn-model"]),
    ("name ILIKE 'churn%'", ["churn-model", "Churn-2"]),
    ("attributes.name LIKE '%-_'", ["Churn-2"]),
    ("tags.team = 'x'", ["churn-model"]),
    ("tags.`team` != 'x'", ["Churn-2"]),
    ("tags.team IS NULL", ["Default", "fraud"]),
    ("tags.team IS NOT NULL and name ilike '%2'", ["Churn-2"]),
    ("creation_time >= 200 AND creation_time < 400", ["churn-model", "Churn-2"]),
    ("last_update_time > 300", ["fraud"]),
    ("experiment_id IN ('0', 'c3')", ["Default", "fraud"]),
    ("name = 'it''s'", []),
])
def test_experiment_filters_select_as_mlflow_does(text: str, names: list[str]) -> None:
    terms = experiment_filter(text)
    assert [e.name for e in EXPERIMENTS if matches(e, terms)] == names


@pytest.mark.parametrize("text", [
    "name = fraud", "nom = 'x'", "runs.x = 'y'", "creation_time > 'x'",
    "name < 'x'", "name = 'a' or name = 'b'", "name = 'a' and", "name IN ('a')",
    "creation_time LIKE '1%'", "name IS NULL", "experiment_id IN ('a'", "name ~ 'x'",
])
def test_bad_experiment_filters_are_invalid_parameter_values(text: str) -> None:
    with pytest.raises(MlflowError) as caught:
        experiment_filter(text)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_experiment_order_with_mlflows_default_tie_break() -> None:
    newest_first = sort_experiments(EXPERIMENTS, experiment_order([]))
    assert [e.name for e in newest_first] == ["fraud", "Churn-2", "churn-model", "Default"]
    by_name = sort_experiments(EXPERIMENTS, experiment_order(["name ASC"]))
    assert [e.name for e in by_name] == ["Churn-2", "Default", "churn-model", "fraud"]
    by_id = sort_experiments(EXPERIMENTS, experiment_order(["attributes.experiment_id DESC"]))
    assert [e.experiment_id for e in by_id] == ["c3", "b2", "a1", "0"]
    for bad in (["name UP"], ["size"], ["name ASC extra"]):
        with pytest.raises(MlflowError):
            experiment_order(bad)


def test_like_is_sql_like_not_a_regex() -> None:
    assert like_matcher("a.c%", ignore_case=False)("a.cde")
    assert not like_matcher("a.c%", ignore_case=False)("abcde")
    assert like_matcher("A_C", ignore_case=True)("abc")
    assert not like_matcher("A_C", ignore_case=False)("abc")


def test_page_tokens_belong_to_their_search() -> None:
    token = page_token(20, "query-a")
    assert page_offset(token, "query-a") == 20
    assert page_offset(None, "query-a") == 0
    with pytest.raises(MlflowError, match="different search"):
        page_offset(token, "query-b")
    with pytest.raises(MlflowError, match="not one this search issued"):
        page_offset("garbage!!", "query-a")
