"""MLflow 3's logged models (``/api/2.0/mlflow/logged-models``) and run outputs
(``/runs/outputs``), over ``workspace.stores.logged_models``.

A logged model's files are artifacts ``models/<model_id>/...`` of its holder run (its source
run, or a run made for it in the same experiment: see ``ratchet.store.logged_model_store``);
its ``artifact_uri`` is ``mlflow-artifacts:/<exp>/models/<model_id>/artifacts``, which the
artifact proxy maps back to that run. Permissions are the experiment's: read to get, search
and list; write to create and change.

Search takes MLflow's filter grammar for logged models (``name``, ``model_id``,
``model_type``, ``status``, ``source_run_id``, the timestamps, ``params.*``, ``tags.*``,
``metrics.*``; clauses joined by ``AND``), evaluated over the experiments' models (pure
functions below), with ``order_by`` and offset page tokens bound to the query.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# At module level, not lazily: FastAPI reads the handlers' annotations from these globals.
from fastapi import APIRouter, Depends, Request, Response

from ratchet.errors import NotFound
from ratchet.server.mlflow.locations import logged_model_artifact_uri
from ratchet.server.mlflow.protocol import Fields, double, invalid, key_values, message
from ratchet.server.mlflow.requests import (
    experiment_by_id,
    may_read_experiment,
    reply,
    request_fields,
    require_experiment,
)

if TYPE_CHECKING:
    from ratchet.store.logged_model_store import LoggedModel
    from ratchet.workspace import Workspace

API = "/api/2.0/mlflow"
STATUS_NAMES = {"pending": "LOGGED_MODEL_PENDING", "ready": "LOGGED_MODEL_READY",
                "failed": "LOGGED_MODEL_UPLOAD_FAILED"}
_STATUS_OF_WIRE = {**{v: k for k, v in STATUS_NAMES.items()}, "1": "pending", "2": "ready",
                   "3": "failed", "PENDING": "pending", "READY": "ready",
                   "UPLOAD_FAILED": "failed", "FAILED": "failed"}
DEFAULT_MAX_RESULTS = 100
MAX_RESULTS = 10_000


# ---------------------------------------------------------------------------- messages
def model_message(model: LoggedModel) -> dict[str, Any]:
    """MLflow's ``LoggedModel`` message (``{"info": ..., "data": ...}``)."""
    info = message(
        model_id=model.model_id, experiment_id=model.experiment_id, name=model.name,
        creation_timestamp_ms=model.created_at, last_updated_timestamp_ms=model.updated_at,
        artifact_uri=logged_model_artifact_uri(model.experiment_id, model.model_id),
        status=STATUS_NAMES[model.status], model_type=model.model_type,
        source_run_id=model.source_run_id, status_message=model.status_message,
        tags=key_values(model.tags))
    metrics = [message(key=m.key, value=double(m.value), timestamp=m.timestamp, step=m.step,
                       dataset_name=m.dataset_name, dataset_digest=m.dataset_digest,
                       model_id=model.model_id, run_id=m.run_id) for m in model.metrics]
    return {"info": info, "data": message(params=key_values(model.params), metrics=metrics)}


def wire_status(value: object) -> str:
    """A status as the client sends it (enum name or number) -> ratchet's."""
    found = _STATUS_OF_WIRE.get(str(value).strip().upper()) if value is not None else None
    if found is None:
        raise invalid(f"Invalid value {value!r} for parameter 'status': use one of "
                      f"{', '.join(STATUS_NAMES.values())}")
    return found


def pairs(fields: Fields, name: str) -> dict[str, str]:
    """Repeated ``{"key", "value"}`` messages (params, tags) as a mapping."""
    found: dict[str, str] = {}
    for item in fields.objects(name):
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise invalid(f"Invalid value for parameter '{name}': each needs a string 'key' "
                          "and 'value'")
        found[key] = value
    return found


# ---------------------------------------------------------------------------- search
@dataclass(frozen=True)
class Clause:
    kind: str  # attribute | params | tags | metrics
    key: str
    op: str
    value: str | float


_ATTRIBUTES = {"name": "name", "model_id": "model_id", "model_type": "model_type",
               "status": "status", "source_run_id": "source_run_id",
               "creation_timestamp": "created_at", "creation_time": "created_at",
               "last_updated_timestamp": "updated_at", "last_updated_time": "updated_at"}
_NUMERIC = {"created_at", "updated_at"}
_KINDS = {"params": "params", "param": "params", "parameters": "params", "tags": "tags",
          "tag": "tags", "metrics": "metrics", "metric": "metrics", "attributes": "attribute",
          "attribute": "attribute", "attr": "attribute"}
_TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op><=|>=|!=|=|<|>)
  | (?P<word>(?:`[^`]+`|[A-Za-z_]\w*(?:\.\w+)*)(?:\.`[^`]+`|\.[A-Za-z_]\w*(?:\.\w+)*)?
            |-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
)""", re.VERBOSE)


def parse_filter(text: str | None) -> list[Clause]:
    """MLflow's logged-model filter: ``<key> <op> <value>`` clauses joined by ``AND``."""
    if not text or not text.strip():
        return []
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise invalid(f"Invalid filter {text!r}: cannot read it at {text[position:][:20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    clauses: list[Clause] = []
    index = 0
    while index < len(tokens):
        if index + 3 > len(tokens):
            raise invalid(f"Invalid filter {text!r}: a clause is '<key> <op> <value>'")
        (key_kind, key), (op_kind, op), (value_kind, raw) = tokens[index:index + 3]
        upper_op = op.upper()
        if op_kind == "word" and upper_op in ("LIKE", "ILIKE"):
            op_kind, op = "op", upper_op
        if key_kind != "word" or op_kind != "op" or value_kind == "op":
            raise invalid(f"Invalid filter {text!r}: a clause is '<key> <op> <value>'")
        clauses.append(_clause(key, op, raw, value_kind, text))
        index += 3
        if index < len(tokens):
            if tokens[index][1].upper() != "AND":
                raise invalid(f"Invalid filter {text!r}: clauses are joined by AND only")
            index += 1
            if index == len(tokens):
                raise invalid(f"Invalid filter {text!r}: it ends with AND")
    return clauses


def _clause(key: str, op: str, raw: str, value_kind: str, text: str) -> Clause:
    prefix, dot, rest = key.partition(".")
    if dot and prefix.strip("`").lower() in _KINDS:
        kind, name = _KINDS[prefix.strip("`").lower()], rest.strip("`")
    else:
        kind, name = "attribute", key.strip("`")
    value: str | float
    if value_kind == "string":
        value = bytes(raw[1:-1], "utf-8").decode("unicode_escape") if "\\" in raw else raw[1:-1]
    else:
        try:
            value = float(raw)
        except ValueError:
            raise invalid(f"Invalid filter {text!r}: {raw!r} is not a quoted string or a "
                          "number") from None
    if kind == "attribute":
        if name not in _ATTRIBUTES:
            raise invalid(f"Invalid logged model search key '{name}' in filter {text!r}; use "
                          f"one of {', '.join(sorted(_ATTRIBUTES))}, params.*, tags.*, "
                          "metrics.*")
        name = _ATTRIBUTES[name]
        if name == "status" and isinstance(value, str):
            value = wire_status(value)
    numeric = kind == "metrics" or (kind == "attribute" and name in _NUMERIC)
    if numeric and (op in ("LIKE", "ILIKE") or isinstance(value, str)):
        if op in ("LIKE", "ILIKE"):
            raise invalid(f"Invalid filter {text!r}: {op} compares strings, not {name}")
        try:
            value = float(value)
        except ValueError:
            raise invalid(f"Invalid filter {text!r}: {name} compares with a number") from None
    if not numeric and not isinstance(value, str):
        raise invalid(f"Invalid filter {text!r}: {name} compares with a quoted string")
    if not numeric and op in ("<", "<=", ">", ">="):
        raise invalid(f"Invalid filter {text!r}: {op} compares numbers, not {name}")
    return Clause(kind, name, op, value)


def _lhs(model: LoggedModel, clause: Clause) -> str | float | None:
    if clause.kind == "params":
        return model.params.get(clause.key)
    if clause.kind == "tags":
        return model.tags.get(clause.key)
    if clause.kind == "metrics":
        found = [m.value for m in model.metrics if m.key == clause.key]
        return found[-1] if found else None
    value = getattr(model, clause.key)
    return float(value) if clause.key in _NUMERIC else value


def _like(pattern: str, text: str, fold: bool) -> bool:
    translated = "".join("*" if c == "%" else "?" if c == "_" else
                         "[" + c + "]" if c in "*?[" else c for c in pattern)
    if fold:
        return fnmatch.fnmatchcase(text.lower(), translated.lower())
    return fnmatch.fnmatchcase(text, translated)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "LIKE": lambda a, b: _like(b, a, False), "ILIKE": lambda a, b: _like(b, a, True),
}


def matches(model: LoggedModel, clauses: Sequence[Clause]) -> bool:
    for clause in clauses:
        lhs = _lhs(model, clause)
        if lhs is None or (isinstance(lhs, float) and math.isnan(lhs)):
            return False
        if not _COMPARE[clause.op](lhs, clause.value):
            return False
    return True


def sort_models(models: list[LoggedModel], order_by: Sequence[dict[str, Any]]
                ) -> list[LoggedModel]:
    """Ordered by each ``{"field_name", "ascending"}`` in turn (missing values last), then
    newest first, then by id: a stable order for paging."""
    ordered = sorted(models, key=lambda m: m.model_id)
    ordered.sort(key=lambda m: m.created_at, reverse=True)
    for item in reversed(order_by):
        field_name = item.get("field_name")
        if not isinstance(field_name, str) or not field_name:
            raise invalid("Invalid order_by: each needs a 'field_name'")
        ascending = item.get("ascending", True) is not False
        clause = _order_clause(field_name)
        present = [m for m in ordered if _lhs(m, clause) is not None]
        absent = [m for m in ordered if _lhs(m, clause) is None]
        present.sort(key=lambda m: _sort_key(_lhs(m, clause)), reverse=not ascending)
        ordered = present + absent
    return ordered


def _order_clause(field_name: str) -> Clause:
    prefix, dot, rest = field_name.partition(".")
    kind = _KINDS.get(prefix.strip("`").lower()) if dot else None
    if kind is not None and kind != "attribute":
        return Clause(kind, rest.strip("`"), "=", "")
    name = rest.strip("`") if kind == "attribute" else field_name.strip("`")
    if name not in _ATTRIBUTES:
        raise invalid(f"Invalid order_by field '{field_name}': use one of "
                      f"{', '.join(sorted(_ATTRIBUTES))}, params.*, tags.*, metrics.*")
    return Clause("attribute", _ATTRIBUTES[name], "=", "")


def _sort_key(value: Any) -> Any:
    return (1, 0.0) if isinstance(value, float) and math.isnan(value) else (0, value)


def page_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"offset": offset, "query": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def token_offset(token: str | None, fingerprint: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset, same = int(data["offset"]), data["query"] == fingerprint
    except (ValueError, KeyError, TypeError):
        raise invalid(f"Invalid page_token {token[:20]!r}: not one this search issued") \
            from None
    if not same or offset < 0:
        raise invalid("Invalid page_token: it belongs to a different search (pass the same "
                      "experiment_ids, filter and order_by)")
    return offset


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- routes

def router(workspace: Workspace) -> APIRouter:
    from ratchet.server.permissions import declare

    api = APIRouter(tags=["mlflow"])
    models = workspace.stores.logged_models
    tracking = workspace.stores.tracking

    def model_for(request: Request, model_id: str, level: str, *,
                  include_deleted: bool = False) -> LoggedModel:
        """The model, after checking ``level`` on its experiment."""
        model = models.get(model_id, include_deleted=include_deleted)
        experiment = experiment_by_id(workspace, model.experiment_id)
        require_experiment(request, level, experiment.name)
        return model

    @api.post(f"{API}/logged-models", openapi_extra=declare("write"))
    def create_logged_model(request: Request, fields: Fields = Depends(request_fields)
                            ) -> Response:
        experiment = experiment_by_id(workspace, fields.required("experiment_id"),
                                      include_deleted=False)
        require_experiment(request, "write", experiment.name)
        source_run_id = fields.string("source_run_id")
        if source_run_id is not None:
            source = tracking.get_run(source_run_id)
            require_experiment(request, "read",
                               experiment_by_id(workspace, source.experiment_id).name)
        model = models.create(experiment.experiment_id, name=fields.string("name"),
                              source_run_id=source_run_id,
                              model_type=fields.string("model_type"),
                              params=pairs(fields, "params"), tags=pairs(fields, "tags"))
        return reply({"model": model_message(model)})

    @api.post(f"{API}/logged-models/search", openapi_extra=declare("read"))
    def search_logged_models(request: Request, fields: Fields = Depends(request_fields)
                             ) -> Response:
        experiment_ids = fields.strings("experiment_ids")
        if not experiment_ids:
            raise invalid("Missing value for required parameter 'experiment_ids'.")
        names = [experiment_by_id(workspace, e).name for e in experiment_ids]
        for name in names:
            require_experiment(request, "read", name)
        clauses = parse_filter(fields.string("filter"))
        order_by = fields.objects("order_by")
        if fields.objects("datasets"):
            raise invalid("searching logged models by dataset is not supported by this server")
        max_results = fields.integer("max_results", default=DEFAULT_MAX_RESULTS)
        assert max_results is not None
        if not 1 <= max_results <= MAX_RESULTS:
            raise invalid(f"Invalid value {max_results} for parameter 'max_results': use 1 "
                          f"to {MAX_RESULTS}")
        query = fingerprint(sorted(experiment_ids), fields.string("filter"), order_by)
        offset = token_offset(fields.string("page_token"), query)
        found = sort_models([m for m in models.list_models(experiment_ids)
                             if matches(m, clauses)], order_by)
        page = found[offset:offset + max_results]
        following = offset + len(page)
        return reply(message(models=[model_message(m) for m in page],
                             next_page_token=page_token(following, query)
                             if following < len(found) else None))

    @api.get(f"{API}/logged-models/{{model_id}}", openapi_extra=declare("read"))
    def get_logged_model(model_id: str, request: Request,
                         fields: Fields = Depends(request_fields)) -> Response:
        model = model_for(request, model_id, "read",
                          include_deleted=fields.boolean("allow_deleted"))
        return reply({"model": model_message(model)})

    @api.patch(f"{API}/logged-models/{{model_id}}", openapi_extra=declare("write"))
    def finalize_logged_model(model_id: str, request: Request,
                              fields: Fields = Depends(request_fields)) -> Response:
        model_for(request, model_id, "write")
        status = wire_status(fields.data.get("status"))
        return reply({"model": model_message(models.finalize(model_id, status))})

    @api.delete(f"{API}/logged-models/{{model_id}}", openapi_extra=declare("write"))
    def delete_logged_model(model_id: str, request: Request) -> Response:
        model_for(request, model_id, "write")
        models.delete(model_id)
        return reply({})

    @api.patch(f"{API}/logged-models/{{model_id}}/tags", openapi_extra=declare("write"))
    def set_logged_model_tags(model_id: str, request: Request,
                              fields: Fields = Depends(request_fields)) -> Response:
        model_for(request, model_id, "write")
        models.set_tags(model_id, pairs(fields, "tags"))
        return reply({})

    @api.delete(f"{API}/logged-models/{{model_id}}/tags/{{tag_key:path}}",
                openapi_extra=declare("write"))
    def delete_logged_model_tag(model_id: str, tag_key: str, request: Request) -> Response:
        model_for(request, model_id, "write")
        models.delete_tag(model_id, tag_key)
        return reply({})

    @api.post(f"{API}/logged-models/{{model_id}}/params", openapi_extra=declare("write"))
    def log_logged_model_params(model_id: str, request: Request,
                                fields: Fields = Depends(request_fields)) -> Response:
        model_for(request, model_id, "write")
        models.log_params(model_id, pairs(fields, "params"))
        return reply({})

    @api.get(f"{API}/logged-models/{{model_id}}/artifacts/directories",
             openapi_extra=declare("read"))
    def list_logged_model_artifacts(model_id: str, request: Request,
                                    fields: Fields = Depends(request_fields)) -> Response:
        from ratchet.artifacts.paths import normalize_artifact_path
        from ratchet.server.mlflow.artifact_routes import children

        model = model_for(request, model_id, "read")
        relative = fields.string("artifact_directory_path")
        base = model.artifact_path
        if relative and relative.strip("/"):
            base = f"{base}/{normalize_artifact_path(relative.strip('/'))}"
        entries = tracking.list_artifacts(model.artifact_run_id, prefix=base)
        return reply(message(root_uri=logged_model_artifact_uri(model.experiment_id, model_id),
                             files=children(entries, base)))

    @api.post(f"{API}/runs/outputs", openapi_extra=declare("write"))
    def log_outputs(request: Request, fields: Fields = Depends(request_fields)) -> Response:
        run_id = fields.required("run_id")
        run = tracking.get_run(run_id)
        require_experiment(request, "write", experiment_by_id(workspace, run.experiment_id).name)
        outputs = []
        for item in fields.objects("models"):
            entry = Fields(item, where="models")
            model_id = entry.required("model_id")
            model = models.get(model_id)
            if not may_read_experiment(request, experiment_by_id(
                    workspace, model.experiment_id).name):
                raise NotFound(f"no logged model with id {model_id!r}")
            outputs.append((model_id, entry.integer("step", default=0) or 0))
        models.record_outputs(run_id, outputs)
        return reply({})

    return api


__all__ = ["STATUS_NAMES", "Clause", "matches", "model_message", "parse_filter", "router",
           "sort_models", "wire_status"]
