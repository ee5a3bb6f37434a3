"""What every MLflow route shares: reading a request's fields, answering a message,
checking the caller's permission on the experiment or model a request touches, and the
``Default`` experiment with id ``0``.

MLflow's client sends a GET's fields as query parameters (repeated fields repeat the
parameter) and every other method's as a JSON body; ``request_fields`` reads either into
``Fields``, parsing the JSON off the event loop (the guard bounds its size).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# At module level, not lazily: FastAPI resolves ``request_fields``'s annotation from this
# module's globals (as in ``server/app.py``); this module is only imported by the server.
from fastapi import Request

from ratchet.errors import AlreadyExists, NotFound
from ratchet.safe_load import load_json
from ratchet.server.mlflow.protocol import Fields, invalid
from ratchet.server.permissions import principal

if TYPE_CHECKING:
    from fastapi.responses import JSONResponse

    from ratchet.server.auth import Principal
    from ratchet.store.records import Experiment
    from ratchet.workspace import Workspace

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"


async def request_fields(request: Request) -> Fields:
    """A FastAPI dependency: the request's fields (query string for GET, JSON otherwise)."""
    from starlette.concurrency import run_in_threadpool

    where = f"{request.method} {request.url.path}"
    if request.method in ("GET", "HEAD"):
        multi: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            multi.setdefault(key, []).append(value)
        single = {k: v[-1] for k, v in multi.items()}
        return Fields(single, multi={k: v for k, v in multi.items() if len(v) > 1},
                      where=where)
    body = await request.body()
    if not body.strip():
        return Fields({}, where=where)
    data = await run_in_threadpool(load_json, body, f"{where}: the body")
    if not isinstance(data, dict):
        raise invalid(f"{where}: the body must be a JSON object")
    return Fields(data, where=where)


def reply(payload: dict[str, Any], status: int = 200) -> JSONResponse:
    """An answer; ``allow_nan`` is off: doubles are encoded with ``protocol.double``."""
    import json

    from fastapi.responses import Response

    return Response(json.dumps(payload, allow_nan=False, separators=(",", ":")),  # type: ignore[return-value]
                    status_code=status, media_type="application/json")


def caller(request: Request) -> Principal:
    return principal(request)


def require_experiment(request: Request, level: str, experiment_name: str) -> None:
    """``Forbidden`` unless the caller has ``level`` on the experiment (role or grant)."""
    principal(request).require(level, "experiment", experiment_name)


def require_model(request: Request, level: str, model_name: str) -> None:
    principal(request).require(level, "model", model_name)


def may_read_experiment(request: Request, experiment_name: str) -> bool:
    return principal(request).can("read", "experiment", experiment_name)


def may_read_model(request: Request, model_name: str) -> bool:
    return principal(request).can("read", "model", model_name)


def default_experiment(workspace: Workspace) -> Experiment:
    """MLflow's ``Default`` experiment, id ``0``: the one a run without an experiment
    lands in. Made on first use (by whichever process gets there first)."""
    tracking = workspace.stores.tracking
    found = tracking.find_experiment(DEFAULT_EXPERIMENT_ID)
    if found is not None and found.experiment_id == DEFAULT_EXPERIMENT_ID:
        return found
    try:
        return tracking.create_experiment(DEFAULT_EXPERIMENT_NAME,
                                          experiment_id=DEFAULT_EXPERIMENT_ID)
    except AlreadyExists:
        found = tracking.find_experiment(DEFAULT_EXPERIMENT_ID)
        if found is not None and found.experiment_id == DEFAULT_EXPERIMENT_ID:
            return found
        raise invalid(f"an experiment named {DEFAULT_EXPERIMENT_NAME!r} exists with id "
                      f"{found.experiment_id if found else '?'}, so MLflow's Default "
                      "experiment (id 0) cannot be made; rename that experiment") from None


def experiment_by_id(workspace: Workspace, experiment_id: str, *,
                     include_deleted: bool = True) -> Experiment:
    """The experiment with this id (not a name: MLflow's ids are never names); ``0`` is
    the Default experiment, made when first asked for."""
    if experiment_id == DEFAULT_EXPERIMENT_ID:
        return default_experiment(workspace)
    found = workspace.stores.tracking.find_experiment(experiment_id)
    if found is None or found.experiment_id != experiment_id:
        raise NotFound(f"No Experiment with id={experiment_id} exists")
    if found.deleted_at is not None and not include_deleted:
        raise NotFound(f"Experiment with id={experiment_id} is deleted")
    return found


__all__ = ["DEFAULT_EXPERIMENT_ID", "DEFAULT_EXPERIMENT_NAME", "caller", "default_experiment",
           "experiment_by_id", "may_read_experiment", "may_read_model", "reply",
           "request_fields", "require_experiment", "require_model"]
