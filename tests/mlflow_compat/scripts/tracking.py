"""Tracking through the real MLflow client: experiments (the Default one too), runs, params,
tags, metrics one by one and in batches, NaN and infinities, metric history, search with
filters, order and page tokens, delete and restore, and the errors MLflow's API defines.

Usage: python tracking.py PREFIX   (names made here start with PREFIX). Needs only
mlflow-skinny: MlflowClient and the fluent API, no pandas.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import mlflow
from _report import emit, number, raised, results, step
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType

prefix = sys.argv[1]
client = MlflowClient()
state: dict[str, Any] = {}


def history(run_id: str, key: str) -> list[list[Any]]:
    points = client.get_metric_history(run_id, key)
    return [[p.step, number(p.value)] for p in sorted(points, key=lambda p: (p.step, p.timestamp))]


def run_view(run_id: str) -> dict[str, Any]:
    run = client.get_run(run_id)
    info = run.info
    return {"run_id": info.run_id, "run_name": info.run_name,
            "experiment_id": info.experiment_id, "status": info.status,
            "lifecycle_stage": info.lifecycle_stage, "artifact_uri": info.artifact_uri,
            "start_time": info.start_time, "end_time": info.end_time, "user_id": info.user_id,
            "params": run.data.params,
            "metrics": {k: number(v) for k, v in run.data.metrics.items()},
            "tags": run.data.tags}


@step("default_experiment")
def _() -> Any:
    experiment = client.get_experiment("0")
    default_run = client.create_run("0", run_name=f"{prefix}-in-default")
    client.set_terminated(default_run.info.run_id)
    return {"experiment_id": experiment.experiment_id, "name": experiment.name,
            "lifecycle_stage": experiment.lifecycle_stage,
            "by_name": client.get_experiment_by_name("Default").experiment_id,
            "run": run_view(default_run.info.run_id)}


@step("experiments")
def _() -> Any:
    name = f"{prefix}-exp"
    experiment_id = client.create_experiment(name, tags={"team": "compat"})
    state["experiment_id"] = experiment_id
    got = client.get_experiment(experiment_id)
    also = f"{prefix}-other"
    client.create_experiment(also)
    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'",
                                      order_by=["name ASC"])
    return {"experiment_id": experiment_id, "name": got.name, "tags": got.tags,
            "artifact_location": got.artifact_location,
            "lifecycle_stage": got.lifecycle_stage,
            "by_name": client.get_experiment_by_name(name).experiment_id,
            "missing_by_name": client.get_experiment_by_name(f"{prefix}-no-such") is None,
            "duplicate": raised(lambda: client.create_experiment(name)),
            "missing_id": raised(lambda: client.get_experiment("987654321")),
            "searched": [e.name for e in found]}


@step("experiment_tags")
def _() -> Any:
    experiment_id = state["experiment_id"]
    client.set_experiment_tag(experiment_id, "stage", "test")
    if hasattr(client, "delete_experiment_tag"):  # 3.x
        client.set_experiment_tag(experiment_id, "gone", "soon")
        client.delete_experiment_tag(experiment_id, "gone")
    return client.get_experiment(experiment_id).tags


@step("experiment_delete_restore")
def _() -> Any:
    experiment_id = client.create_experiment(f"{prefix}-doomed")
    client.delete_experiment(experiment_id)
    deleted = client.get_experiment(experiment_id).lifecycle_stage
    pattern = f"name = '{prefix}-doomed'"
    active = [e.name for e in client.search_experiments(ViewType.ACTIVE_ONLY, filter_string=pattern)]
    gone = [e.name for e in client.search_experiments(ViewType.DELETED_ONLY, filter_string=pattern)]
    client.restore_experiment(experiment_id)
    return {"deleted_stage": deleted, "active_while_deleted": active,
            "deleted_only": gone,
            "restored_stage": client.get_experiment(experiment_id).lifecycle_stage}


@step("fluent_run")
def _() -> Any:
    mlflow.set_experiment(f"{prefix}-exp")
    with mlflow.start_run(run_name="fluent") as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"layers": 3, "optimizer": "adam"})
        mlflow.set_tag("owner", "compat")
        mlflow.set_tags({"purpose": "suite", "release.candidate": "yes"})
        for step_ in range(25):
            mlflow.log_metric("loss", 1.0 / (step_ + 1), step=step_)
        mlflow.log_metrics({"acc": 0.875, "f1": 0.5}, step=1)
        mlflow.log_metric("nan_metric", float("nan"))
        mlflow.log_metric("pos_inf", float("inf"))
        mlflow.log_metric("neg_inf", float("-inf"), step=2)
    run_id = run.info.run_id
    state["fluent_run_id"] = run_id
    return {"run": run_view(run_id), "loss": history(run_id, "loss"),
            "nan_metric": history(run_id, "nan_metric"), "pos_inf": history(run_id, "pos_inf"),
            "neg_inf": history(run_id, "neg_inf"),
            # MLflow's rule: a param's value never changes.
            "param_changed": raised(lambda: client.log_param(run_id, "alpha", 0.7)),
            "param_same_again": raised(lambda: client.log_param(run_id, "alpha", 0.5)),
            "missing_run": raised(lambda: client.get_run("0" * 32))}


@step("log_batch")
def _() -> Any:
    run = client.create_run(state["experiment_id"], run_name="batch")
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric("m", float(i) / 10, now + i, i) for i in range(1000)]
    params = [Param(f"p{i}", str(i)) for i in range(50)]
    tags = [RunTag(f"t{i}", f"v{i}") for i in range(20)]
    client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    client.log_batch(run_id, metrics=[Metric("m2", float("nan"), now, 0),
                                      Metric("m2", 2.5, now, 1)])
    # Past MLflow's 1000 metrics a call, the client splits the batch itself.
    client.log_batch(run_id, metrics=[Metric("x", 1.0, now, i) for i in range(1001)])
    # A retried request sends the very same points again: stored once (as MLflow does).
    again = [Metric("d", 1.0, now, 0), Metric("d", 2.0, now, 1)]
    client.log_batch(run_id, metrics=again)
    client.log_batch(run_id, metrics=again)
    client.log_metric(run_id, "e", 3.0, timestamp=now, step=0)
    client.log_metric(run_id, "e", 3.0, timestamp=now, step=0)
    client.set_terminated(run_id, "FAILED")
    view = run_view(run_id)
    return {"run": {k: view[k] for k in ("status", "run_name", "experiment_id")},
            "params": len(view["params"]), "param_p7": view["params"].get("p7"),
            "tags": sorted(k for k in view["tags"] if k.startswith("t")),
            "latest_m": view["metrics"].get("m"), "m_points": len(history(run_id, "m")),
            "m_first": history(run_id, "m")[:3], "m2": history(run_id, "m2"),
            "x_points": len(history(run_id, "x")),
            "repeated": [history(run_id, "d"), history(run_id, "e")]}


@step("search_runs")
def _() -> Any:
    experiment_id = client.create_experiment(f"{prefix}-search")
    state["search_experiment_id"] = experiment_id
    ids = {}
    for i in range(7):
        run = client.create_run(experiment_id, run_name=f"search-{i}",
                                tags={"idx": str(i)})
        run_id = run.info.run_id
        ids[f"search-{i}"] = run_id
        client.log_batch(run_id, metrics=[Metric("score", float(i), int(time.time() * 1000), 0)],
                         params=[Param("parity", "even" if i % 2 == 0 else "odd")])
        client.set_terminated(run_id, "KILLED" if i == 5 else "FINISHED")
    state["search_ids"] = ids

    def names(filter_string: str = "", order_by: list[str] | None = None,
              view: int = ViewType.ACTIVE_ONLY) -> list[str]:
        found = client.search_runs([experiment_id], filter_string, view, 100,
                                   order_by or ["metrics.score ASC"])
        return [r.info.run_name for r in found]

    pages, token, walked = [], None, []
    while True:
        page = client.search_runs([experiment_id], "", ViewType.ACTIVE_ONLY, 3,
                                  ["metrics.score DESC"], token)
        pages.append(len(page))
        walked += [r.info.run_name for r in page]
        token = page.token
        if not token or len(pages) > 10:
            break
    return {
        "ids": ids,
        "all_ascending": names(),
        "even_above_2_desc": names("metrics.score > 2 and params.parity = 'even'",
                                   ["metrics.score DESC"]),
        "killed": names("attributes.status = 'KILLED'"),
        "finished_count": len(names("attributes.status = 'FINISHED'")),
        "tag_eq": names("tags.idx = '3'"),
        "name_like": names("attributes.run_name LIKE 'search-1%'"),
        "name_eq": names("run_name = 'search-4'"),
        "score_le_1_by_name_desc": names("metrics.score <= 1", ["attributes.run_name DESC"]),
        "run_id_in": names(f"attributes.run_id IN ('{ids['search-2']}', '{ids['search-6']}')"),
        "param_ne": len(names("params.parity != 'even'")),
        "pages": pages, "walked": walked,
        "bad_filter": raised(lambda: client.search_runs([experiment_id], "metrics.score >>> 1")),
    }


@step("run_delete_restore")
def _() -> Any:
    experiment_id = state["search_experiment_id"]
    run_id = state["search_ids"]["search-0"]
    client.delete_run(run_id)
    deleted_stage = client.get_run(run_id).info.lifecycle_stage
    active = len(client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY))
    deleted = [r.info.run_id for r in
               client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)]
    every = len(client.search_runs([experiment_id], run_view_type=ViewType.ALL))
    client.restore_run(run_id)
    return {"deleted_stage": deleted_stage, "active": active, "deleted": deleted == [run_id],
            "all": every, "restored_stage": client.get_run(run_id).info.lifecycle_stage,
            "active_after": len(client.search_runs([experiment_id]))}


@step("update_run")
def _() -> Any:
    run = client.create_run(state["experiment_id"], run_name="before")
    run_id = run.info.run_id
    client.update_run(run_id, name="after")
    client.set_tag(run_id, "temporary", "x")
    client.delete_tag(run_id, "temporary")
    client.set_terminated(run_id, "FINISHED")
    view = run_view(run_id)
    return {"run_name": view["run_name"], "tag_runName": view["tags"].get("mlflow.runName"),
            "status": view["status"], "has_temporary": "temporary" in view["tags"],
            "ended": view["end_time"] is not None}


results["prefix"] = {"ok": True, "value": prefix}
emit()
