"""Which store methods the team server exposes, and the permission each one needs.

Shared by the server (``ratchet.server.store_routes``) and the remote client
(``ratchet.remote.http_stores``): one table for both ends.

Every public method of every store in ``workspace.stores`` is listed here, either with
its level and the resource it touches, or in ``SERVER_ONLY`` (the server's own use, such
as checking a token). A test fails when a store gains a method that is in neither, so a
new method is never exposed, or left out, by accident.

A resource is ``(kind, argument)``: the method's argument that names an experiment
(``experiment``: a run id, an experiment id or a name), a registered model (``model``) or a
deployment (``deployment``); per-resource grants apply to it. Methods without one are
checked against the caller's role alone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exposed:
    level: str                      # "read", "write" or "admin"
    kind: str | None = None         # "experiment" | "model" | "deployment"
    argument: str | None = None     # the argument naming the resource
    via: str = "name"               # experiment: "run" (a run id), "id_or_name", "ids";
    #                                 deployment: "monitor_result" (a monitor result's id)


R, W, A = "read", "write", "admin"


def _run(level: str) -> Exposed:
    return Exposed(level, "experiment", "run_id", "run")


def _model(level: str, argument: str = "name") -> Exposed:
    return Exposed(level, "model", argument)


def _deployment(level: str, argument: str = "name") -> Exposed:
    return Exposed(level, "deployment", argument)


EXPOSED: dict[str, dict[str, Exposed]] = {
    "tracking": {
        "create_experiment": Exposed(W, "experiment", "name"),
        "get_or_create_experiment": Exposed(W, "experiment", "name"),
        "find_experiment": Exposed(R, "experiment", "name_or_id", "id_or_name"),
        "get_experiment": Exposed(R, "experiment", "name_or_id", "id_or_name"),
        "list_experiments": Exposed(R),
        "run_counts": Exposed(R),
        "create_run": Exposed(W, "experiment", "experiment_id", "id_or_name"),
        "require_run": _run(R),
        "set_run_status": _run(W),
        "resolve_run_id": Exposed(R),
        "get_run": _run(R),
        "child_runs": _run(R),
        "log_params": _run(W),
        "set_tags": _run(W),
        "delete_tag": _run(W),
        "log_metric": _run(W),
        "log_batch": _run(W),
        "metric_history": _run(R),
        "metric_window": _run(R),
        "record_artifacts": _run(W),
        "list_artifacts": _run(R),
        "log_input": _run(W),
        "search_runs": Exposed(R, "experiment", "experiment_ids", "ids"),
        "rename_experiment": Exposed(W, "experiment", "experiment_id", "id_or_name"),
        "set_experiment_tags": Exposed(W, "experiment", "experiment_id", "id_or_name"),
        "delete_experiment_tag": Exposed(W, "experiment", "experiment_id", "id_or_name"),
        "set_run_name": _run(W),
        "forget_artifacts": _run(W),
    },
    "registry": {
        "create_registered_model": _model(W),
        "ensure_registered_model": _model(W),
        "get_registered_model": _model(R),
        "list_registered_models": Exposed(R),
        "update_registered_model": _model(W),
        "set_registered_model_tag": _model(W),
        "create_model_version": _model(W),
        "get_model_version": _model(R),
        "list_model_versions": _model(R),
        "versions_for_run": _run(R),
        "set_model_version_tag": _model(W),
        "update_model_version": _model(W),
        "set_alias": _model(W),
        "delete_alias": _model(W),
        "resolve_alias": _model(R),
        "alias_history": _model(R),
        "alias_version_at": _model(R),
        "delete_registered_model_tag": _model(W),
        "delete_model_version_tag": _model(W),
    },
    "datasets": {
        "add_version": Exposed(W), "record_source": Exposed(W),
        "get_version": Exposed(R), "latest_version": Exposed(R),
        "find_by_digest": Exposed(R), "list_versions": Exposed(R),
        "list_datasets": Exposed(R), "runs_using": Exposed(R), "find_source": Exposed(R),
    },
    "features": {
        **{name: Exposed(W) for name in (
            "register_definition", "record_materialization", "link_training_set")},
        **{name: Exposed(R) for name in (
            "get_definition", "list_definitions", "definition_history", "definitions_count",
            "list_materializations",
            "last_materialization", "training_set_definitions", "training_sets_using")},
    },
    "pipelines": {
        **{name: Exposed(W) for name in (
            "create_pipeline_run", "heartbeat", "start_step", "set_attempts", "finish_step",
            "record_cached", "skip_pending", "finish_pipeline_run", "reap_abandoned")},
        **{name: Exposed(R) for name in (
            "find_cached", "resolve_run_id", "get_pipeline_run", "list_pipeline_runs",
            "step_runs", "producers")},
    },
    "schedules": {
        **{name: Exposed(W) for name in (
            "create_schedule", "delete_schedule", "set_enabled", "claim_firing",
            "record_pipeline_run", "acquire_lease", "renew_lease", "release_lease")},
        **{name: Exposed(R) for name in (
            "get_schedule", "get_schedule_by_id", "list_schedules", "due_schedules",
            "get_lease")},
    },
    "deployments": {
        "create": _deployment(W), "delete": _deployment(W), "set_plan": _deployment(W),
        "get": _deployment(R), "exists": _deployment(R), "current_revision": _deployment(R),
        "history": _deployment(R), "list_deployments": Exposed(R),
        # Each row names its deployment: checked row by row (see store_routes).
        "record_feedback": Exposed(W, "deployment", "rows", "rows"),
        "feedback": _deployment(R, "deployment"),
    },
    "monitor": {
        "add": _deployment(W, "deployment"),
        # A result is its deployment's: a writer kept out of one deployment cannot
        # rewrite that deployment's results or point its report elsewhere.
        "set_report_path": Exposed(W, "deployment", "result_id", "monitor_result"),
        "set_result": Exposed(W, "deployment", "result_id", "monitor_result"),
        "get": Exposed(R, "deployment", "result_id", "monitor_result"),
        "history": _deployment(R, "deployment"), "latest": _deployment(R, "deployment"),
    },
    "ct_state": {
        "get": _model(R, "model"), "list_states": Exposed(R),
        "acquire": _model(W, "model"), "release": _model(W, "model"),
        "commit": Exposed(W, "model", "current", "state"),
        "request": _model(W, "model"),
    },
    "ct_events": {
        "append": _model(W, "model"), "history": _model(R, "model"),
    },
    "deletion": {
        "delete_run": _run(W), "restore_run": _run(W),
        "delete_experiment": Exposed(W, "experiment", "name_or_id", "id_or_name"),
        "restore_experiment": Exposed(W, "experiment", "name_or_id", "id_or_name"),
        "delete_model_version": _model(W), "restore_model_version": _model(W),
        "delete_registered_model": _model(W), "restore_registered_model": _model(W),
        "delete_dataset_version": Exposed(W), "restore_dataset_version": Exposed(W),
        "purge": Exposed(A), "referenced_digests": Exposed(R),
    },
    "auth": {
        name: Exposed(A) for name in (
            "create_user", "get_user", "list_users", "set_role", "disable_user", "enable_user",
            "grant",
            "revoke_grant", "grants_of", "create_token", "list_tokens", "revoke_token")
    },
    "audit": {"list_events": Exposed(A)},
}

# Public methods only the server itself calls.
SERVER_ONLY: dict[str, frozenset[str]] = {
    "auth": frozenset({"verify_token"}),
    "audit": frozenset({"record"}),
    # latest_metric_points: the MLflow API's run messages (many runs' points at once).
    "tracking": frozenset({"experiment_name_of_run", "latest_metric_points", "run_owner"}),
    "replies": frozenset({"claim", "finish", "release", "purge"}),
    # MLflow 3's logged models: reached through the server's MLflow API only.
    "logged_models": frozenset({
        "create", "get", "list_models", "models_of_run", "finalize", "log_params", "set_tags",
        "delete_tag", "log_metrics", "delete", "record_outputs", "outputs_of_run",
        "record_inputs", "inputs_of_run"}),
}

# Arguments the server fills with the authenticated caller, whatever the client sent.
ACTOR_ARGUMENT = "actor"


_STORE_CLASSES = {
    "tracking": "tracking_store:TrackingStore", "registry": "registry_store:RegistryStore",
    "datasets": "dataset_store:DatasetStore", "pipelines": "pipeline_store:PipelineStore",
    "schedules": "schedule_store:ScheduleStore",
    "deployments": "deployment_store:DeploymentStore", "monitor": "monitor_store:MonitorStore",
    "ct_state": "ct_state_store:CTStateStore", "ct_events": "ct_event_store:CTEventStore",
    "deletion": "deletion:DeletionStore", "auth": "auth_store:AuthStore",
    "audit": "audit_store:AuditStore", "replies": "reply_store:ReplyStore",
    "logged_models": "logged_model_store:LoggedModelStore",
    "features": "feature_definition_store:FeatureDefinitionStore",
}


def store_classes() -> dict[str, type]:
    """The class behind each ``workspace.stores.<name>``."""
    import importlib

    found = {}
    for name, where in _STORE_CLASSES.items():
        module, cls = where.split(":")
        found[name] = getattr(importlib.import_module(f"ratchet.store.{module}"), cls)
    return found
