"""MLflow's tracking REST API (``/api/2.0/mlflow/experiments|runs|metrics|artifacts``) on
ratchet's tracking store: what MLflow's client logs becomes ratchet experiments and runs.

Each route declares its level, reads its fields with ``Fields`` (MLflow's proto types),
checks the caller's permission on the experiment it touches (a run's experiment for run
routes), calls the store and answers a proto3-JSON message (``tracking_messages``).
Searches answer only what the caller may read.

MLflow's client retries a POST after a 429 or 5xx, so metric points are written once:
points identical to stored ones (key, step, timestamp, value) are skipped, as MLflow's
primary key over them does (``log_batch(skip_logged=True)``). Params already logged with the same value
are accepted again; a changed value is INVALID_PARAMETER_VALUE.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

# Module level, not lazy: FastAPI reads the handlers' annotations from this module.
from fastapi import Depends, Request, Response

from ratchet.errors import InvalidInput, NotFound
from ratchet.server.mlflow import search_translation as search
from ratchet.server.mlflow import tracking_messages as msg
from ratchet.server.mlflow.locations import run_artifact_uri
from ratchet.server.mlflow.protocol import Fields, invalid, message, missing
from ratchet.server.mlflow.requests import (
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    default_experiment,
    experiment_by_id,
    may_read_experiment,
    reply,
    request_fields,
    require_experiment,
)
from ratchet.server.permissions import client_address, declare, principal
from ratchet.store.records import CodeVersion, Experiment, Metric

if TYPE_CHECKING:
    from ratchet.store.tracking_store import TrackingStore
    from ratchet.workspace import Workspace

API = "/api/2.0/mlflow"
# MLflow's limits on one log-batch call (mlflow.utils.validation).
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTRIES = 1000
MAX_SEARCH_RESULTS = 50_000
MAX_BULK_RUNS = 100
MAX_BULK_RESULTS_PER_RUN = 2500
MAX_EXPERIMENT_RESULTS = 50_000
DEFAULT_EXPERIMENT_RESULTS = 1000
LOGGED_MODELS_TAG = "mlflow.log-model.history"
VIEW_TYPES = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
# Tags MLflow's client sets that ratchet also keeps in a run's columns.
_CODE_TAGS = {"mlflow.user": "user", "mlflow.source.name": "entry_point",
              "mlflow.source.git.commit": "git_commit", "mlflow.source.git.branch": "git_branch"}



def router(workspace: Workspace) -> Any:
    from fastapi import APIRouter

    api = APIRouter()
    tracking = workspace.stores.tracking
    logged_models = workspace.stores.logged_models

    def audit(request: Request, action: str, experiment: str) -> None:
        workspace.stores.audit.record(principal(request).name, f"mlflow.{action}",
                                      kind="experiment", resource=experiment,
                                      client=client_address(request))

    def run_experiment(request: Request, run_id: str, level: str, *,
                       active: bool | None = None) -> str:
        """The name of ``run_id``'s experiment, once the caller may ``level`` it. A write
        needs an active run (as MLflow: a deleted run takes no metrics, params or tags)
        unless ``active=False`` (deleting and restoring)."""
        name, deleted_at = tracking.run_owner(run_id)
        require_experiment(request, level, name)
        if deleted_at is not None and (level == "write" if active is None else active):
            raise invalid(f"The run {run_id} must be in the 'active' state. Current state "
                          "is deleted.")
        return name

    # ------------------------------------------------------------------ experiments
    @api.post(f"{API}/experiments/create", openapi_extra=declare("write"))
    def create_experiment(request: Request, fields: Fields = Depends(request_fields)
                          ) -> Response:
        name = fields.required("name")
        if fields.string("artifact_location"):
            raise invalid("artifact_location cannot be chosen on this server: it stores every "
                          "experiment's artifacts itself (mlflow-artifacts:/<experiment_id>)")
        require_experiment(request, "write", name)
        tags = _tag_map(fields.objects("tags"), "tags")
        if name == DEFAULT_EXPERIMENT_NAME:
            default_experiment(workspace)  # MLflow always has it, with id 0: name taken
        exp = tracking.create_experiment(name, tags=tags or None)
        audit(request, "create_experiment", exp.name)
        return reply({"experiment_id": exp.experiment_id})

    @api.get(f"{API}/experiments/get", openapi_extra=declare("read"))
    def get_experiment(request: Request, fields: Fields = Depends(request_fields)
                       ) -> Response:
        exp = experiment_by_id(workspace, fields.required("experiment_id"))
        require_experiment(request, "read", exp.name)
        return reply({"experiment": msg.experiment(exp)})

    @api.get(f"{API}/experiments/get-by-name", openapi_extra=declare("read"))
    def get_experiment_by_name(request: Request, fields: Fields = Depends(request_fields)
                               ) -> Response:
        name = fields.required("experiment_name")
        require_experiment(request, "read", name)
        exp = _experiment_named(workspace, name)
        if exp is None:
            raise missing(f"Could not find experiment with name '{name}'")
        return reply({"experiment": msg.experiment(exp)})

    def search_experiments(request: Request, fields: Fields) -> Response:
        max_results = fields.integer("max_results", default=DEFAULT_EXPERIMENT_RESULTS)
        assert max_results is not None
        if not 1 <= max_results <= MAX_EXPERIMENT_RESULTS:
            raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied: "
                          f"it must be between 1 and {MAX_EXPERIMENT_RESULTS}")
        view = _view_type(fields, "view_type")
        text, order_by = fields.string("filter") or "", fields.strings("order_by")
        terms = search.experiment_filter(text)
        order = search.experiment_order(order_by)
        query = json.dumps([text, order_by, view])
        offset = search.page_offset(fields.string("page_token"), query)
        default_experiment(workspace)  # MLflow always has it: a first search lists it
        found = [e for e in tracking.list_experiments(include_deleted=view != "ACTIVE_ONLY")
                 if (view != "DELETED_ONLY" or e.deleted_at is not None)
                 and search.matches(e, terms) and may_read_experiment(request, e.name)]
        ordered = search.sort_experiments(found, order)
        page = ordered[offset:offset + max_results]
        token = search.page_token(offset + max_results, query) \
            if len(ordered) > offset + max_results else None
        return reply(message(experiments=[msg.experiment(e) for e in page],
                                    next_page_token=token))

    # MLflow's client POSTs a search; its UI and older callers GET it.
    @api.api_route(f"{API}/experiments/search", methods=["GET", "POST"],
                   openapi_extra=declare("read"))
    def search_experiments_route(request: Request, fields: Fields = Depends(request_fields)
                   ) -> Response:
        return search_experiments(request, fields)

    @api.post(f"{API}/experiments/delete", openapi_extra=declare("write"))
    def delete_experiment(request: Request, fields: Fields = Depends(request_fields)
                          ) -> Response:
        exp = experiment_by_id(workspace, fields.required("experiment_id"))
        require_experiment(request, "write", exp.name)
        if exp.experiment_id == DEFAULT_EXPERIMENT_ID:
            raise invalid("Cannot delete the default experiment '0': runs logged without "
                          "an experiment land there")
        workspace.stores.deletion.delete_experiment(exp.experiment_id)
        audit(request, "delete_experiment", exp.name)
        return reply({})

    @api.post(f"{API}/experiments/restore", openapi_extra=declare("write"))
    def restore_experiment(request: Request, fields: Fields = Depends(request_fields)
                           ) -> Response:
        exp = experiment_by_id(workspace, fields.required("experiment_id"))
        require_experiment(request, "write", exp.name)
        workspace.stores.deletion.restore_experiment(exp.experiment_id)
        audit(request, "restore_experiment", exp.name)
        return reply({})

    @api.post(f"{API}/experiments/update", openapi_extra=declare("write"))
    def update_experiment(request: Request, fields: Fields = Depends(request_fields)
                          ) -> Response:
        exp = experiment_by_id(workspace, fields.required("experiment_id"))
        new_name = fields.required("new_name")
        require_experiment(request, "write", exp.name)
        require_experiment(request, "write", new_name)
        if new_name != exp.name:
            tracking.rename_experiment(exp.experiment_id, new_name)
            audit(request, "rename_experiment", exp.name)
        return reply({})

    @api.post(f"{API}/experiments/set-experiment-tag", openapi_extra=declare("write"))
    def set_experiment_tag(request: Request, fields: Fields = Depends(request_fields)
                           ) -> Response:
        exp = experiment_by_id(workspace, fields.required("experiment_id"))
        key, value = fields.required("key"), fields.string("value") or ""
        require_experiment(request, "write", exp.name)
        tracking.set_experiment_tags(exp.experiment_id, {key: value})
        return reply({})

    @api.post(f"{API}/experiments/delete-experiment-tag", openapi_extra=declare("write"))
    def delete_experiment_tag(request: Request, fields: Fields = Depends(request_fields)
                              ) -> Response:
        exp = experiment_by_id(workspace, fields.required("experiment_id"))
        key = fields.required("key")
        require_experiment(request, "write", exp.name)
        tracking.delete_experiment_tag(exp.experiment_id, key)
        return reply({})

    # ------------------------------------------------------------------ runs
    @api.post(f"{API}/runs/create", openapi_extra=declare("write"))
    def create_run(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        exp = experiment_by_id(workspace, fields.string("experiment_id",
                                                        default=DEFAULT_EXPERIMENT_ID) or "0")
        require_experiment(request, "write", exp.name)
        if exp.deleted_at is not None:
            raise invalid(f"The experiment {exp.experiment_id} must be in the 'active' state "
                          "to create a run in it; it is deleted")
        tags = _tag_map(fields.objects("tags"), "tags")
        name, tagged = fields.string("run_name"), tags.get(msg.RUN_NAME_TAG)
        if name and tagged and name != tagged:
            raise invalid(f"Both 'run_name' argument and 'mlflow.runName' tag are specified, "
                          f"but with different values (run_name='{name}', "
                          f"mlflow.runName='{tagged}').")
        name = name or tagged
        parent = tags.get("mlflow.parentRunId")
        if parent is not None:
            try:
                tracking.require_run(parent)
            except NotFound:
                parent = None  # MLflow keeps a dangling parent tag; ratchet's link must exist
        code = _code_version(fields.string("user_id"), tags)
        run = tracking.create_run(exp.experiment_id, name=name, parent_run_id=parent,
                                  code=code, tags=tags or None,
                                  start_time=fields.integer("start_time"))
        audit(request, "create_run", exp.name)
        return reply({"run": msg.run(run, ())})

    @api.post(f"{API}/runs/update", openapi_extra=declare("write"))
    def update_run(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = _run_id(fields)
        run_experiment(request, run_id, "write")
        status, end_time = fields.string("status"), fields.integer("end_time")
        new_name = fields.string("run_name")
        if new_name:
            _rename_run(tracking, run_id, new_name)
        if status is not None or end_time is not None:
            current = tracking.get_run(run_id, include_deleted=True)
            target = msg.ratchet_status(status) if status is not None else current.status
            tracking.set_run_status(run_id, target, error=current.error, end_time=end_time)
        return reply({"run_info": msg.run_info(tracking.get_run(run_id,
                                                                include_deleted=True))})

    @api.get(f"{API}/runs/get", openapi_extra=declare("read"))
    def get_run(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = _run_id(fields)
        run_experiment(request, run_id, "read")
        run = tracking.get_run(run_id, include_deleted=True)
        latest = tracking.latest_metric_points([run_id])[run_id]
        outputs = logged_models.outputs_of_run(run_id)
        return reply({"run": msg.run(run, latest, outputs, logged_models.inputs_of_run(run_id))})

    @api.post(f"{API}/runs/delete", openapi_extra=declare("write"))
    def delete_run(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = _run_id(fields)
        name = run_experiment(request, run_id, "write", active=False)
        workspace.stores.deletion.delete_run(run_id)
        audit(request, "delete_run", name)
        return reply({})

    @api.post(f"{API}/runs/restore", openapi_extra=declare("write"))
    def restore_run(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = _run_id(fields)
        name = run_experiment(request, run_id, "write", active=False)
        workspace.stores.deletion.restore_run(run_id)
        audit(request, "restore_run", name)
        return reply({})

    @api.post(f"{API}/runs/log-metric", openapi_extra=declare("write"))
    def log_metric(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = _run_id(fields)
        point = _metric_point(fields, "")
        run_experiment(request, run_id, "write")
        write_metrics(workspace, run_id, [point], [fields.data])
        return reply({})

    @api.post(f"{API}/runs/log-parameter", openapi_extra=declare("write"))
    def log_param(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = _run_id(fields)
        key, value = fields.required("key"), fields.string("value", default="")
        run_experiment(request, run_id, "write")
        tracking.log_params(run_id, {key: value})
        return reply({})

    @api.post(f"{API}/runs/set-tag", openapi_extra=declare("write"))
    def set_tag(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = _run_id(fields)
        key, value = fields.required("key"), fields.string("value", default="") or ""
        run_experiment(request, run_id, "write")
        if key == msg.RUN_NAME_TAG and value:
            _rename_run(tracking, run_id, value)
        else:
            tracking.set_tags(run_id, {key: value})
        return reply({})

    @api.post(f"{API}/runs/delete-tag", openapi_extra=declare("write"))
    def delete_tag(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = _run_id(fields)
        key = fields.required("key")
        run_experiment(request, run_id, "write")
        try:
            tracking.delete_tag(run_id, key)
        except NotFound:
            raise missing(f"No tag with name: {key} in run with id {run_id}") from None
        return reply({})

    @api.post(f"{API}/runs/log-batch", openapi_extra=declare("write"))
    def log_batch(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = _run_id(fields)
        metrics, params = fields.objects("metrics"), fields.objects("params")
        tags = fields.objects("tags")
        _check_batch_limits(len(metrics), len(params), len(tags))
        points = [_metric_point(Fields(m, where=f"metrics[{i}]"), f"metrics[{i}].")
                  for i, m in enumerate(metrics)]
        param_values = _key_values(params, "params")
        tag_values = _key_values(tags, "tags")
        run_experiment(request, run_id, "write")
        if param_values:
            tracking.log_params(run_id, param_values)
        if points:
            write_metrics(workspace, run_id, points, metrics)
        if tag_values:
            new_name = tag_values.pop(msg.RUN_NAME_TAG, None)
            if new_name:
                _rename_run(tracking, run_id, new_name)
            if tag_values:
                tracking.set_tags(run_id, tag_values)
        return reply({})

    @api.post(f"{API}/runs/log-model", openapi_extra=declare("write"))
    def log_model(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = _run_id(fields)
        model = _model_json(fields.required("model_json"))
        run_experiment(request, run_id, "write")
        run = tracking.get_run(run_id)
        history = _logged_models(run.tags.get(LOGGED_MODELS_TAG))
        if model not in history:  # a retried call records the model once
            tracking.set_tags(run_id, {LOGGED_MODELS_TAG: json.dumps([*history, model])})
        return reply({})

    @api.post(f"{API}/runs/log-inputs", openapi_extra=declare("write"))
    def log_inputs(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = _run_id(fields)
        datasets = [msg.dataset_input(d) for d in fields.objects("datasets")]
        model_ids = [_model_input(m) for m in fields.objects("models")]
        run_experiment(request, run_id, "write")
        for model_id in model_ids:  # reading a model needs read on its experiment
            experiment = experiment_by_id(workspace, logged_models.get(model_id).experiment_id)
            require_experiment(request, "read", experiment.name)
        for dataset in datasets:
            tracking.log_input(run_id, dataset)
        logged_models.record_inputs(run_id, model_ids)
        return reply({})

    def search_runs(request: Request, fields: Fields) -> Response:
        max_results = fields.integer("max_results", default=1000)
        assert max_results is not None
        if not 1 <= max_results <= MAX_SEARCH_RESULTS:
            raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied: "
                          f"it must be at most {MAX_SEARCH_RESULTS}")
        view = _view_type(fields, "run_view_type")
        readable = []
        for experiment_id in dict.fromkeys(fields.strings("experiment_ids")):
            try:
                exp = experiment_by_id(workspace, experiment_id)
            except NotFound:
                continue  # as MLflow: an unknown experiment holds no runs
            if may_read_experiment(request, exp.name):
                readable.append(exp.experiment_id)
        if not readable:
            return reply({})
        try:
            runs, token = tracking.search_runs(
                readable, filter=search.run_filter(fields.string("filter")),
                order_by=search.run_order_by(fields.strings("order_by")),
                max_results=max_results, page_token=fields.string("page_token"),
                include_deleted=view != "ACTIVE_ONLY")
        except InvalidInput as exc:
            raise invalid(str(exc)) from None
        if view == "DELETED_ONLY":  # the store lists active and deleted together
            runs = [r for r in runs if r.deleted_at is not None]
        latest = tracking.latest_metric_points([r.run_id for r in runs])
        return reply(message(runs=[msg.run(r, latest[r.run_id]) for r in runs],
                             next_page_token=token))

    # MLflow's client POSTs a search; its UI and older callers GET it.
    @api.api_route(f"{API}/runs/search", methods=["GET", "POST"],
                   openapi_extra=declare("read"))
    def search_runs_route(request: Request, fields: Fields = Depends(request_fields)
                   ) -> Response:
        return search_runs(request, fields)

    # ------------------------------------------------------------------ metrics, artifacts
    @api.get(f"{API}/metrics/get-history", openapi_extra=declare("read"))
    def get_metric_history(request: Request, fields: Fields = Depends(request_fields)
                           ) -> Response:
        run_id = _run_id(fields)
        key = fields.required("metric_key")
        max_results = fields.integer("max_results")
        if max_results is not None and max_results <= 0:
            raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied. "
                          "It must be a positive integer.")
        run_experiment(request, run_id, "read")
        query = json.dumps([run_id, key, max_results])
        offset = search.page_offset(fields.string("page_token"), query)
        # One page (and one point more, to know whether another follows) from the store.
        page = tracking.metric_history(run_id, key, offset=offset,
                                       limit=None if max_results is None else max_results + 1)
        token = None
        if max_results is not None and len(page) > max_results:
            page = page[:max_results]
            token = search.page_token(offset + max_results, query)
        return reply(message(metrics=[msg.metric(p) for p in page], next_page_token=token))

    @api.get(f"{API}/metrics/get-history-bulk-interval", openapi_extra=declare("read"))
    def get_metric_history_bulk_interval(request: Request,
                                         fields: Fields = Depends(request_fields)) -> Response:
        run_ids = list(dict.fromkeys(fields.strings("run_ids")))
        key = fields.required("metric_key")
        if not run_ids:
            raise invalid("Missing value for required parameter 'run_ids'.")
        if len(run_ids) > MAX_BULK_RUNS:
            raise invalid(f"GetMetricHistoryBulkInterval request must specify at most "
                          f"{MAX_BULK_RUNS} run_ids. Received {len(run_ids)} run_ids.")
        max_results = fields.integer("max_results", default=MAX_BULK_RESULTS_PER_RUN)
        assert max_results is not None
        if not 1 <= max_results <= MAX_BULK_RESULTS_PER_RUN:
            raise invalid(f"max_results must be between 1 and {MAX_BULK_RESULTS_PER_RUN}.")
        start, end = fields.integer("start_step"), fields.integer("end_step")
        if (start is None) != (end is None):
            raise invalid("If either start step or end step are specified, both must be "
                          "specified.")
        if start is not None and end is not None and start > end:
            raise invalid("end_step must be greater than start_step. Found "
                          f"start_step={start} and end_step={end}.")
        for run_id in run_ids:
            run_experiment(request, run_id, "read")
        found = []
        for run_id in run_ids:
            for point in sampled_history(tracking.metric_history(run_id, key), max_results,
                                         start, end):
                found.append({**msg.metric(point), "run_id": run_id})
        return reply(message(metrics=found))

    @api.get(f"{API}/artifacts/list", openapi_extra=declare("read"))
    def list_artifacts(request: Request, fields: Fields = Depends(request_fields)
                       ) -> Response:
        run_id = _run_id(fields)
        path = _artifact_dir(fields.string("path") or "")
        run_experiment(request, run_id, "read")
        run = tracking.get_run(run_id, include_deleted=True)
        entries = tracking.list_artifacts(run_id, path)
        return reply(message(root_uri=run_artifact_uri(run.experiment_id, run_id),
                                    files=artifact_listing(entries, path)))

    return api


# ---------------------------------------------------------------------------- helpers
def _model_input(item: Mapping[str, Any]) -> str:
    model_id = item.get("model_id")
    if not isinstance(model_id, str) or not model_id:
        raise invalid("Invalid value for parameter 'models': each needs a 'model_id' string")
    return model_id


def _run_id(fields: Fields) -> str:
    """``run_id`` (MLflow 1.x clients send ``run_uuid``)."""
    run_id = fields.string("run_id") or fields.string("run_uuid")
    if not run_id:
        raise invalid("Missing value for required parameter 'run_id'. See the API docs for "
                      "more information about request parameters.")
    return run_id


def _experiment_named(workspace: Workspace, name: str) -> Experiment | None:
    """The experiment with this name (not an id), active or deleted; the Default one is
    made when first asked for, as MLflow always has it."""
    tracking = workspace.stores.tracking
    found = tracking.find_experiment(name)
    if found is not None and found.name == name:
        return found
    if found is not None:  # the name is another experiment's id (that one wins the lookup)
        return next((e for e in tracking.list_experiments(include_deleted=True)
                     if e.name == name), None)
    if name == DEFAULT_EXPERIMENT_NAME:
        return default_experiment(workspace)
    return None


def _rename_run(tracking: TrackingStore, run_id: str, name: str) -> None:
    """MLflow's ``mlflow.runName`` tag is the run's name: ratchet keeps it in the run
    (answered as the tag), so a rename from either side shows on both."""
    tracking.set_run_name(run_id, name)


def _view_type(fields: Fields, name: str) -> str:
    value = fields.data.get(name)
    if value is None or value == "":
        return "ACTIVE_ONLY"
    by_number = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}
    if isinstance(value, int) and not isinstance(value, bool) and value in by_number:
        return by_number[value]
    if isinstance(value, str) and value.upper() in VIEW_TYPES:
        return value.upper()
    if isinstance(value, str) and value.isdigit() and int(value) in by_number:
        return by_number[int(value)]
    raise invalid(f"Invalid value {value!r} for parameter '{name}': use one of "
                  f"{', '.join(VIEW_TYPES)}")


def _tag_map(items: Sequence[dict[str, Any]], where: str) -> dict[str, str]:
    tags = {}
    for i, item in enumerate(items):
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not key:
            raise invalid(f"Missing value for required parameter '{where}[{i}].key'.")
        if not isinstance(value, str):
            raise invalid(f"Invalid value {value!r} for parameter '{where}[{i}].value': "
                          "it must be a string")
        tags[key] = value
    return tags


def _key_values(items: Sequence[dict[str, Any]], where: str) -> dict[str, str]:
    """Params or tags of a batch; one key twice with different values is refused."""
    values: dict[str, str] = {}
    for i, item in enumerate(items):
        one = _tag_map([item], f"{where}[{i}]")
        for key, value in one.items():
            if key in values and values[key] != value and where == "params":
                raise invalid(f"Duplicate parameter keys have been submitted: {key!r} with "
                              f"values {values[key]!r} and {value!r}")
            values[key] = value
    return values


def _code_version(user_id: str | None, tags: dict[str, str]) -> CodeVersion:
    """ratchet's code columns from MLflow's system tags (the tags are kept as well)."""
    found = {column: tags.get(tag) or None for tag, column in _CODE_TAGS.items()}
    return CodeVersion(user=user_id or found["user"], entry_point=found["entry_point"],
                       git_commit=found["git_commit"], git_branch=found["git_branch"])


def write_metrics(workspace: Workspace, run_id: str, points: Sequence[MetricPoint],
                  sent: Sequence[Mapping[str, Any]]) -> int:
    """Log the run's metric points once (a retried call writes nothing twice); those MLflow
    3 sent with a ``model_id`` are also the logged model's metrics, as in MLflow's store.
    A retry that wrote no point records none of them again."""
    from ratchet.store.logged_model_store import LoggedModelMetric

    by_model: dict[str, list[LoggedModelMetric]] = {}
    for (key, value, step, timestamp), raw in zip(points, sent, strict=True):
        fields = Fields(raw)
        model_id = fields.string("model_id")
        if model_id:
            by_model.setdefault(model_id, []).append(LoggedModelMetric(
                key, value, step, timestamp, run_id=run_id,
                dataset_name=fields.string("dataset_name"),
                dataset_digest=fields.string("dataset_digest")))
    models = workspace.stores.logged_models
    for model_id in by_model:
        models.get(model_id)  # NotFound before anything is written
    written = workspace.stores.tracking.log_batch(run_id, points, skip_logged=True)
    if written:
        for model_id, found in by_model.items():
            models.log_metrics(model_id, found)
    return written


MetricPoint = tuple[str, float, int, int]  # key, value, step, timestamp


def _metric_point(fields: Fields, where: str) -> tuple[str, float, int, int]:
    key = fields.required("key")
    value = fields.number("value")
    if value is None:
        raise invalid(f"Missing value for required parameter '{where}value'.")
    timestamp = fields.integer("timestamp")
    if timestamp is None:
        raise invalid(f"Missing value for required parameter '{where}timestamp'.")
    step = fields.integer("step", default=0)
    assert step is not None
    return key, value, step, timestamp


def _check_batch_limits(metrics: int, params: int, tags: int) -> None:
    for count, limit, what in ((metrics, MAX_BATCH_METRICS, "metrics"),
                               (params, MAX_BATCH_PARAMS, "params"),
                               (tags, MAX_BATCH_TAGS, "tags")):
        if count > limit:
            raise invalid(f"A batch logging request can contain at most {limit} {what}. Got "
                          f"{count} {what}. Please split up {what} across multiple requests "
                          "and try again.")
    total = metrics + params + tags
    if total > MAX_BATCH_ENTRIES:
        raise invalid(f"A batch logging request can contain at most {MAX_BATCH_ENTRIES} "
                      f"metrics, params, and tags in total. Got {total} entries.")


def _model_json(text: str) -> dict[str, Any]:
    try:
        model = json.loads(text)
    except ValueError:
        raise invalid(f"Malformed model info. {text[:200]!r} is not valid JSON.") from None
    if not isinstance(model, dict):
        raise invalid("Malformed model info: model_json must be a JSON object")
    absent = {"artifact_path", "flavors", "utc_time_created", "run_id"} - set(model)
    if absent:
        raise invalid(f"Model json is missing mandatory fields: {sorted(absent)}")
    return model


def _logged_models(value: str | None) -> list[Any]:
    if not value:
        return []
    try:
        history = json.loads(value)
    except ValueError:
        return []
    return history if isinstance(history, list) else []


def _artifact_dir(path: str) -> str:
    from ratchet.artifacts.paths import normalize_artifact_path

    if not path:
        return ""
    try:
        return normalize_artifact_path(path)
    except InvalidInput as exc:
        raise invalid(f"Invalid path {path!r}: {exc}") from None


def artifact_listing(entries: Iterable[Any], directory: str) -> list[dict[str, Any]]:
    """The direct children of ``directory`` among a run's artifact paths: files with
    their size, and directories (once each) for deeper paths. A file listed as the
    directory itself (MLflow lists a file path as empty) is left out."""
    prefix = f"{directory}/" if directory else ""
    files: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not entry.path.startswith(prefix):
            continue
        rest = entry.path[len(prefix):]
        head, sep, _ = rest.partition("/")
        path = prefix + head
        if sep:
            files.setdefault(path, {"path": path, "is_dir": True})
        else:
            files[path] = message(path=path, is_dir=False, file_size=entry.size)
    return [files[p] for p in sorted(files)]


def sampled_history(history: Sequence[Metric], max_steps: int, start: int | None,
                    end: int | None) -> list[Metric]:
    """The points of at most ``max_steps`` evenly spaced steps of ``history`` between
    ``start`` and ``end`` (inclusive; default: all), keeping the first and last step: the
    chart MLflow's UI draws of a long history."""
    inside = [p for p in history if (start is None or start <= p.step)
              and (end is None or p.step <= end)]
    steps = sorted({p.step for p in inside})
    if len(steps) > max_steps:
        if max_steps == 1:
            steps = [steps[-1]]
        else:
            stride = (len(steps) - 1) / (max_steps - 1)
            steps = sorted({steps[round(i * stride)] for i in range(max_steps)})
    wanted = set(steps)
    return sorted((p for p in inside if p.step in wanted), key=lambda p: (p.step, p.timestamp))


__all__ = ["artifact_listing", "router", "sampled_history", "write_metrics"]
