"""MLflow's model-registry REST API over ratchet's registry: registered models, versions,
tags, aliases, search and download URIs (``/api/2.0/mlflow/registered-models/*`` and
``/api/2.0/mlflow/model-versions/*``).

A version registered through MLflow is a ratchet model version: its files are the run
artifacts its ``source`` names (``model_sources``), its manifest is ratchet's (written
beside an MLflow-format model), so ``ratchet serve`` and ``RegistryClient.load`` take it
like any other. Aliases are one thing: MLflow's alias routes move ratchet's aliases (the
caller recorded as actor) and ratchet's aliases show in MLflow's ``aliases``.

What ratchet does not have is refused with a message saying what to do instead: stages
(``transition-stage``; every version's stage reads "None") and renaming a model. Search
filters are evaluated in Python over the listed records (a registry holds hundreds to
thousands of models), in MLflow's grammar: terms joined by AND.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, Response

from ratchet.errors import Conflict, NotFound
from ratchet.server.mlflow.model_sources import (
    download_uri,
    note_registration,
    prepare_model,
    resolve_source,
)
from ratchet.server.mlflow.protocol import Fields, MlflowError, invalid, missing
from ratchet.server.mlflow.registry_messages import (
    MLFLOW_STAGES,
    MODEL_ID_TAG,
    RUN_ID_TAG,
    SOURCE_TAG,
    STAGE_NONE,
    is_hidden_tag,
    model_version_message,
    registered_model_message,
    version_run_id,
    version_source,
)
from ratchet.server.mlflow.requests import (
    caller,
    experiment_by_id,
    may_read_model,
    reply,
    request_fields,
    require_experiment,
    require_model,
)
from ratchet.server.permissions import client_address, declare

if TYPE_CHECKING:
    from ratchet.store.records import ModelVersion, RegisteredModel
    from ratchet.store.registry_store import RegistryStore
    from ratchet.workspace import Workspace

PREFIX = "/api/2.0/mlflow"
ALIAS_REASON = "via MLflow API"

MODELS_MAX_RESULTS_DEFAULT, MODELS_MAX_RESULTS_LIMIT = 100, 1000
VERSIONS_MAX_RESULTS_DEFAULT, VERSIONS_MAX_RESULTS_LIMIT = 10_000, 200_000



def router(workspace: Workspace) -> APIRouter:
    routes = APIRouter()
    registry = workspace.stores.registry

    def audit(request: Request, action: str, model: str, **detail: Any) -> None:
        """The registry's lifecycle changes, recorded as ratchet's own API records them."""
        workspace.stores.audit.record(caller(request).name, f"mlflow.{action}", kind="model",
                                      resource=model, client=client_address(request),
                                      detail=detail or None)

    # ------------------------------------------------------------ registered models
    @routes.post(f"{PREFIX}/registered-models/create", openapi_extra=declare("write"))
    def create_registered_model(request: Request,
                                fields: Fields = Depends(request_fields)) -> Response:
        name = fields.required("name")
        require_model(request, "write", name)
        tags = _tags(fields)
        model = registry.create_registered_model(name, fields.string("description"), tags)
        audit(request, "create_registered_model", model.name)
        return reply({"registered_model": registered_model_message(model, None)})

    @routes.get(f"{PREFIX}/registered-models/get", openapi_extra=declare("read"))
    def get_registered_model(request: Request,
                             fields: Fields = Depends(request_fields)) -> Response:
        name = fields.required("name")
        require_model(request, "read", name)
        return reply({"registered_model": _model_message(registry, _model(registry, name))})

    @routes.patch(f"{PREFIX}/registered-models/update", openapi_extra=declare("write"))
    def update_registered_model(request: Request,
                                fields: Fields = Depends(request_fields)) -> Response:
        name = fields.required("name")
        require_model(request, "write", name)
        _model(registry, name)
        if "description" in fields:
            registry.update_registered_model(name, fields.string("description"))
        return reply({"registered_model": _model_message(registry, _model(registry, name))})

    @routes.post(f"{PREFIX}/registered-models/rename", openapi_extra=declare("write"))
    def rename_registered_model(request: Request,
                                fields: Fields = Depends(request_fields)) -> Response:
        name = fields.required("name")
        fields.required("new_name")
        require_model(request, "write", name)
        _model(registry, name)
        raise invalid(f"Registered model {name!r} cannot be renamed: ratchet's model names "
                      "are permanent (deployments, aliases' history and models:/ URIs name "
                      "them). Register the versions you need under the new name instead.")

    @routes.delete(f"{PREFIX}/registered-models/delete", openapi_extra=declare("write"))
    def delete_registered_model(request: Request,
                                fields: Fields = Depends(request_fields)) -> Response:
        name = fields.required("name")
        require_model(request, "write", name)
        _model(registry, name)
        with _mlflow_hint(f"delete the aliases of {name!r} first "
                          "(client.delete_registered_model_alias)"):
            workspace.stores.deletion.delete_registered_model(name, actor=caller(request).name)
        audit(request, "delete_registered_model", name)
        return reply({})

    @routes.get(f"{PREFIX}/registered-models/search", openapi_extra=declare("read"))
    def search_registered_models(request: Request,
                                 fields: Fields = Depends(request_fields)) -> Response:
        terms = parse_filter(fields.string("filter"), MODEL_ATTRIBUTES)
        order = parse_order_by(fields.strings("order_by"), MODEL_ORDER_KEYS,
                               default=["name ASC"])
        limit = _max_results(fields, MODELS_MAX_RESULTS_DEFAULT, MODELS_MAX_RESULTS_LIMIT)
        query = json.dumps([fields.string("filter"), fields.strings("order_by")])
        offset = page_offset(fields.string("page_token"), query)
        found = [m for m in registry.list_registered_models()
                 if may_read_model(request, m.name) and all(t.holds(_model_value(m, t))
                                                            for t in terms)]
        found = sort_by(found, order, _model_sort_value)
        page = found[offset:offset + limit]
        return reply(_without_empty({
            "registered_models": [_model_message(registry, m) for m in page],
            "next_page_token": page_token(offset + limit, query)
            if offset + limit < len(found) else None}))

    @routes.post(f"{PREFIX}/registered-models/get-latest-versions",
                 openapi_extra=declare("read"))
    def get_latest_versions(request: Request,
                            fields: Fields = Depends(request_fields)) -> Response:
        name = fields.required("name")
        require_model(request, "read", name)
        model = _model(registry, name)
        stages = fields.strings("stages")
        for stage in stages:
            if stage.lower() not in {s.lower() for s in MLFLOW_STAGES}:
                raise invalid(f"Invalid Model Version stage: {stage}. Value must be one of "
                              f"{', '.join(MLFLOW_STAGES)}.")
        # Stages are gone in ratchet: every version is in "None", so only that stage
        # has a latest version.
        wanted = not stages or any(s.lower() == STAGE_NONE.lower() for s in stages)
        latest = _latest(registry, model) if wanted else None
        return reply(_without_empty({"model_versions": [model_version_message(latest)]
                                     if latest is not None else []}))

    @routes.post(f"{PREFIX}/registered-models/set-tag", openapi_extra=declare("write"))
    def set_registered_model_tag(request: Request,
                                 fields: Fields = Depends(request_fields)) -> Response:
        name = fields.required("name")
        key = _visible_key(fields)
        require_model(request, "write", name)
        _model(registry, name)
        registry.set_registered_model_tag(name, key, fields.string("value", default="") or "")
        return reply({})

    @routes.delete(f"{PREFIX}/registered-models/delete-tag", openapi_extra=declare("write"))
    def delete_registered_model_tag(request: Request,
                                    fields: Fields = Depends(request_fields)) -> Response:
        name = fields.required("name")
        key = _visible_key(fields)
        require_model(request, "write", name)
        _model(registry, name)
        registry.delete_registered_model_tag(name, key)  # an absent key: no error (MLflow)
        return reply({})

    # ------------------------------------------------------------ aliases
    @routes.post(f"{PREFIX}/registered-models/alias", openapi_extra=declare("write"))
    def set_registered_model_alias(request: Request,
                                   fields: Fields = Depends(request_fields)) -> Response:
        name, alias = fields.required("name"), fields.required("alias")
        version = _version(fields)
        if re.fullmatch(r"[vV][0-9]+", alias.strip()):
            # MLflow reads models:/name@v3 as version 3, so it reserves such names
            raise invalid(f"Version alias name {alias!r} is reserved.")
        require_model(request, "write", name)
        _model(registry, name)
        registry.set_alias(name, alias, version, actor=caller(request).name,
                           reason=ALIAS_REASON)
        audit(request, "set_alias", name, alias=alias, version=version)
        return reply({})

    @routes.delete(f"{PREFIX}/registered-models/alias", openapi_extra=declare("write"))
    def delete_registered_model_alias(request: Request,
                                      fields: Fields = Depends(request_fields)) -> Response:
        name, alias = fields.required("name"), fields.required("alias")
        require_model(request, "write", name)
        _model(registry, name)
        try:
            registry.delete_alias(name, alias, actor=caller(request).name,
                                  reason=ALIAS_REASON)
        except NotFound:
            return reply({})  # an absent alias: nothing to do (as MLflow's server)
        audit(request, "delete_alias", name, alias=alias)
        return reply({})

    @routes.get(f"{PREFIX}/registered-models/alias", openapi_extra=declare("read"))
    def get_model_version_by_alias(request: Request,
                                   fields: Fields = Depends(request_fields)) -> Response:
        name, alias = fields.required("name"), fields.required("alias")
        require_model(request, "read", name)
        model = _model(registry, name)
        if alias.strip().lower() == "latest":  # MLflow 3: @latest is the newest version
            latest = _latest(registry, model)
            if latest is None:
                raise missing(f"Latest version not found for model {name}.")
            return reply({"model_version": model_version_message(latest)})
        try:
            version = registry.resolve_alias(name, alias)
        except NotFound:  # MLflow's server answers a missing alias with this code
            raise invalid(f"Registered model alias {alias} not found.") from None
        return reply({"model_version": model_version_message(
            registry.get_model_version(name, version))})

    # ------------------------------------------------------------ model versions
    @routes.post(f"{PREFIX}/model-versions/create", openapi_extra=declare("write"))
    def create_model_version(request: Request,
                             fields: Fields = Depends(request_fields)) -> Response:
        name, source = fields.required("name"), fields.required("source")
        run_id, model_id = fields.string("run_id"), fields.string("model_id")
        tags = _tags(fields)
        require_model(request, "write", name)
        files = resolve_source(workspace, source, run_id=run_id, model_id=model_id)
        experiment = experiment_by_id(workspace, files.experiment_id)
        require_experiment(request, "read", experiment.name)  # the files are that run's
        who = caller(request).name
        description = fields.string("description")
        # Not de-duplicated: a retry and a second registration of the same files (log_model
        # with registered_model_name, then register_model) are the same bytes on the wire,
        # and MLflow's server makes a version for each.
        prepared = prepare_model(workspace, files, f"model version source {source!r}")
        hidden = {SOURCE_TAG: source}
        if files.model_id is not None:
            hidden[MODEL_ID_TAG] = files.model_id
            # as MLflow's server: without a run_id, the run the model was logged from
            if run_id or files.source_run_id:
                hidden[RUN_ID_TAG] = run_id or files.source_run_id or ""
        version = registry.create_model_version(
            name, run_id=files.run_id, artifact_path=files.artifact_path,
            content_hash=prepared.content_hash, flavor=prepared.flavor,
            manifest=prepared.manifest, description=description,
            created_by=who, tags={**tags, **hidden})
        if files.model_id is not None:
            note_registration(workspace, files.model_id, name, version.version)
        audit(request, "create_model_version", version.name, version=version.version,
              source=source)
        return reply({"model_version": model_version_message(version)})

    @routes.get(f"{PREFIX}/model-versions/get", openapi_extra=declare("read"))
    def get_model_version(request: Request,
                          fields: Fields = Depends(request_fields)) -> Response:
        name, version = fields.required("name"), _version(fields)
        require_model(request, "read", name)
        return reply({"model_version": model_version_message(
            _model_version(registry, name, version))})

    @routes.patch(f"{PREFIX}/model-versions/update", openapi_extra=declare("write"))
    def update_model_version(request: Request,
                             fields: Fields = Depends(request_fields)) -> Response:
        name, version = fields.required("name"), _version(fields)
        require_model(request, "write", name)
        _model_version(registry, name, version)
        if "description" in fields:
            registry.update_model_version(name, version, fields.string("description"))
        return reply({"model_version": model_version_message(
            _model_version(registry, name, version))})

    @routes.delete(f"{PREFIX}/model-versions/delete", openapi_extra=declare("write"))
    def delete_model_version(request: Request,
                             fields: Fields = Depends(request_fields)) -> Response:
        name, version = fields.required("name"), _version(fields)
        require_model(request, "write", name)
        _model_version(registry, name, version)
        with _mlflow_hint(f"delete or move the aliases on version {version} first "
                          "(client.delete_registered_model_alias)"):
            workspace.stores.deletion.delete_model_version(name, version,
                                                           actor=caller(request).name)
        audit(request, "delete_model_version", name, version=version)
        return reply({})

    @routes.get(f"{PREFIX}/model-versions/search", openapi_extra=declare("read"))
    def search_model_versions(request: Request,
                              fields: Fields = Depends(request_fields)) -> Response:
        terms = parse_filter(fields.string("filter"), VERSION_ATTRIBUTES)
        order = parse_order_by(fields.strings("order_by"), VERSION_ORDER_KEYS,
                               default=["last_updated_timestamp DESC", "name ASC",
                                        "version_number DESC"])
        limit = _max_results(fields, VERSIONS_MAX_RESULTS_DEFAULT, VERSIONS_MAX_RESULTS_LIMIT)
        query = json.dumps([fields.string("filter"), fields.strings("order_by")])
        offset = page_offset(fields.string("page_token"), query)
        found = [v for v in _candidate_versions(registry, terms)
                 if may_read_model(request, v.name)
                 and all(t.holds(_version_value(v, t)) for t in terms)]
        found = sort_by(found, order, _version_sort_value)
        page = found[offset:offset + limit]
        return reply(_without_empty({
            "model_versions": [model_version_message(v) for v in page],
            "next_page_token": page_token(offset + limit, query)
            if offset + limit < len(found) else None}))

    @routes.get(f"{PREFIX}/model-versions/get-download-uri", openapi_extra=declare("read"))
    def get_model_version_download_uri(request: Request,
                                       fields: Fields = Depends(request_fields)) -> Response:
        name, number = fields.required("name"), _version(fields)
        require_model(request, "read", name)
        version = _model_version(registry, name, number)
        if version.run_id is None:
            raise missing(f"Model version {name!r} {number} has no run holding its files")
        run = workspace.stores.tracking.get_run(version.run_id, include_deleted=True)
        return reply({"artifact_uri": download_uri(run.experiment_id, run.run_id,
                                                   version.artifact_path,
                                                   version.tags.get(MODEL_ID_TAG))})

    @routes.post(f"{PREFIX}/model-versions/set-tag", openapi_extra=declare("write"))
    def set_model_version_tag(request: Request,
                              fields: Fields = Depends(request_fields)) -> Response:
        name, version = fields.required("name"), _version(fields)
        key = _visible_key(fields)
        require_model(request, "write", name)
        _model_version(registry, name, version)
        registry.set_model_version_tag(name, version, key,
                                       fields.string("value", default="") or "")
        return reply({})

    @routes.delete(f"{PREFIX}/model-versions/delete-tag", openapi_extra=declare("write"))
    def delete_model_version_tag(request: Request,
                                 fields: Fields = Depends(request_fields)) -> Response:
        name, version = fields.required("name"), _version(fields)
        key = _visible_key(fields)
        require_model(request, "write", name)
        _model_version(registry, name, version)
        registry.delete_model_version_tag(name, version, key)  # an absent key: no error
        return reply({})

    @routes.post(f"{PREFIX}/model-versions/transition-stage", openapi_extra=declare("write"))
    def transition_model_version_stage(request: Request,
                                       fields: Fields = Depends(request_fields)) -> Response:
        name, version = fields.required("name"), _version(fields)
        stage = fields.required("stage")
        require_model(request, "write", name)
        _model_version(registry, name, version)
        raise invalid(f"Model stages are not supported by this server (ratchet has none; "
                      f"every version's stage is 'None'): to mark version {version} of "
                      f"{name!r} as {stage!r}, set an alias instead, e.g. "
                      f"client.set_registered_model_alias({name!r}, {stage.lower()!r}, "
                      f"{str(version)!r}), and load it as models:/{name}@{stage.lower()}")

    return routes


# ---------------------------------------------------------------------------- reading
def _model(registry: RegistryStore, name: str) -> RegisteredModel:
    try:
        return registry.get_registered_model(name)
    except NotFound as exc:
        raise missing(f"Registered Model with name={name} not found ({exc})") from None


def _model_version(registry: RegistryStore, name: str, version: int) -> ModelVersion:
    _model(registry, name)
    try:
        return registry.get_model_version(name, version)
    except NotFound as exc:
        raise missing(f"Model Version (name={name}, version={version}) not found "
                      f"({exc})") from None


def _latest(registry: RegistryStore, model: RegisteredModel) -> ModelVersion | None:
    if model.latest_version is None:
        return None
    return registry.get_model_version(model.name, model.latest_version)


def _model_message(registry: RegistryStore, model: RegisteredModel) -> dict[str, Any]:
    return registered_model_message(model, _latest(registry, model))


def _candidate_versions(registry: RegistryStore, terms: Sequence[Term]) -> list[ModelVersion]:
    """The versions a search looks at: one model's when the filter names it exactly."""
    named = [t.value for t in terms if t.kind == "attribute" and t.key == "name"
             and t.op == "=" and isinstance(t.value, str)]
    names = named[:1] if named else [m.name for m in registry.list_registered_models()]
    versions: list[ModelVersion] = []
    for name in names:
        try:
            versions.extend(registry.list_model_versions(name))
        except NotFound:
            continue  # no such model (or deleted meanwhile): nothing matches
    return versions


# ---------------------------------------------------------------------------- fields
def _version(fields: Fields) -> int:
    """A version number: MLflow sends it as a string ("3")."""
    raw = fields.data.get("version")
    if raw is None or raw == "":
        raise invalid("Missing value for required parameter 'version'.")
    text = str(raw).strip() if not isinstance(raw, bool) else ""
    if not text.isdigit() or int(text) < 1:
        raise invalid(f"Invalid value {raw!r} for parameter 'version': a model version is "
                      "a positive integer")
    return int(text)


def _tags(fields: Fields) -> dict[str, str]:
    tags: dict[str, str] = {}
    for tag in fields.objects("tags"):
        key, value = tag.get("key"), tag.get("value", "")
        if not isinstance(key, str) or not key:
            raise invalid("Invalid value for parameter 'tags': every tag needs a string 'key'")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise invalid(f"Invalid value for tag {key!r}: a tag's value is a string")
        if is_hidden_tag(key):
            raise _hidden_key(key)
        tags[key] = value
    return tags


def _visible_key(fields: Fields) -> str:
    key = fields.required("key")
    if is_hidden_tag(key):
        raise _hidden_key(key)
    return key


def _hidden_key(key: str) -> MlflowError:
    return invalid(f"Tag key {key!r} is reserved: keys starting with 'ratchet.mlflow.' hold "
                   "what the server records of MLflow's fields")


def _max_results(fields: Fields, default: int, limit: int) -> int:
    value = fields.integer("max_results", default=default)
    assert value is not None
    if value < 1 or value > limit:
        raise invalid(f"Invalid value for request parameter max_results. It must be at most "
                      f"{limit} and at least 1, but got value {value}")
    return value


@contextlib.contextmanager
def _mlflow_hint(hint: str) -> Iterator[None]:
    """A delete ratchet refuses (an alias or a deployment uses the version) as MLflow's
    INVALID_PARAMETER_VALUE, with what to do through MLflow's API (which cannot force)."""
    try:
        yield
    except Conflict as exc:
        raise invalid(f"{exc}. Through MLflow's API: {hint}; a deployment's model is "
                      "changed with `ratchet deploy`") from None


def _without_empty(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if v not in (None, "", [])}


# ---------------------------------------------------------------------------- search
MODEL_ATTRIBUTES = {"name": "string"}
VERSION_ATTRIBUTES = {"name": "string", "run_id": "string", "source_path": "string",
                      "version_number": "number"}
MODEL_ORDER_KEYS = {"name": "name", "creation_timestamp": "creation_timestamp",
                    "last_updated_timestamp": "last_updated_timestamp",
                    "timestamp": "last_updated_timestamp"}
VERSION_ORDER_KEYS = {"name": "name", "version_number": "version_number",
                      "creation_timestamp": "creation_timestamp",
                      "last_updated_timestamp": "last_updated_timestamp"}
PROMPT_TAG = "mlflow.prompt.is_prompt"
STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"})
NUMBER_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
TAG_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})

_TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<ident>(?:tags?|attributes?|attr)\.(?:`[^`]+`|"[^"]+"|[A-Za-z0-9_./:-]+)
              |[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>-?[0-9]+)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),])
)""", re.VERBOSE)


@dataclass(frozen=True)
class Term:
    """One comparison of a filter: an attribute or ``tags.<key>``, an operator, a value."""

    kind: str  # "attribute" | "tag"
    key: str
    op: str
    value: str | int | tuple[str, ...]

    def holds(self, actual: str | int | None) -> bool:
        if actual is None:  # a missing tag matches nothing (as in MLflow)
            return False
        if self.op in ("IN", "NOT IN"):
            assert isinstance(self.value, tuple)
            return (actual in self.value) == (self.op == "IN")
        if self.op in ("LIKE", "ILIKE"):
            return like(str(self.value), str(actual), ignore_case=self.op == "ILIKE")
        compare: dict[str, Callable[[Any, Any], bool]] = {
            "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
        return compare[self.op](actual, self.value)


def like(pattern: str, text: str, *, ignore_case: bool) -> bool:
    """SQL LIKE: ``%`` any run of characters, ``_`` one character."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) \
        is not None


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        found = _TOKEN.match(text, pos)
        if found is None or found.lastgroup is None:
            raise invalid(f"Invalid filter {text!r}: cannot read it at position {pos} "
                          f"({text[pos:pos + 20]!r})")
        tokens.append((found.lastgroup, found.group(found.lastgroup)))
        pos = found.end()
    return tokens


def parse_filter(text: str | None, attributes: dict[str, str]) -> list[Term]:
    """MLflow's registry filter: ``<identifier> <op> <value>`` terms joined by AND, where
    the identifier is one of ``attributes`` or ``tags.<key>``."""
    if text is None or not text.strip():
        return []
    if len(text) > 10_000:
        raise invalid("Invalid filter: longer than 10000 characters")
    tokens, terms, i = _tokens(text), [], 0

    def bad(what: str) -> MlflowError:
        return invalid(f"Invalid filter {text!r}: {what}")

    while True:
        if i >= len(tokens) or tokens[i][0] != "ident":
            raise bad("expected an attribute or tags.<key>")
        kind, key = _identifier(tokens[i][1], attributes, bad)
        i += 1
        if i < len(tokens) and tokens[i][0] == "op":
            op = {"==": "=", "<>": "!="}.get(tokens[i][1], tokens[i][1])
            i += 1
        elif i < len(tokens) and tokens[i][0] == "ident" and tokens[i][1].upper() in (
                "LIKE", "ILIKE", "IN"):
            op, i = tokens[i][1].upper(), i + 1
        elif i + 1 < len(tokens) and tokens[i][1].upper() == "NOT" \
                and tokens[i + 1][1].upper() == "IN":
            op, i = "NOT IN", i + 2
        else:
            raise bad(f"expected a comparison operator after {key!r}")
        allowed = TAG_OPS if kind == "tag" else (
            NUMBER_OPS if attributes[key] == "number" else STRING_OPS)
        if op not in allowed:
            raise bad(f"operator {op} is not supported for {key!r} (use "
                      f"{', '.join(sorted(allowed))})")
        value, i = _value(tokens, i, op, kind == "attribute" and attributes[key] == "number",
                          bad)
        terms.append(Term(kind, key, op, value))
        if i >= len(tokens):
            return terms
        if tokens[i][0] != "ident" or tokens[i][1].upper() != "AND":
            raise bad(f"expected AND, got {tokens[i][1]!r} (terms are joined by AND)")
        i += 1


def _identifier(raw: str, attributes: dict[str, str],
                bad: Callable[[str], MlflowError]) -> tuple[str, str]:
    head, dot, rest = raw.partition(".")
    if dot and head.lower() in ("tag", "tags"):
        key = rest[1:-1] if rest[:1] in ("`", '"') else rest
        return "tag", key
    name = rest if dot else raw
    if name not in attributes:
        raise bad(f"{raw!r} is not searchable here (use "
                  f"{', '.join(sorted(attributes))} or tags.<key>)")
    return "attribute", name


def _value(tokens: list[tuple[str, str]], i: int, op: str, numeric: bool,
           bad: Callable[[str], MlflowError]) -> tuple[str | int | tuple[str, ...], int]:
    if op in ("IN", "NOT IN"):
        if i >= len(tokens) or tokens[i][1] != "(":
            raise bad(f"{op} needs a parenthesized list of strings")
        values, i = [], i + 1
        while True:
            if i >= len(tokens) or tokens[i][0] != "string":
                raise bad(f"{op} needs a parenthesized list of strings")
            values.append(_unquote(tokens[i][1]))
            i += 1
            if i < len(tokens) and tokens[i][1] == ",":
                i += 1
                continue
            if i < len(tokens) and tokens[i][1] == ")":
                return tuple(values), i + 1
            raise bad(f"{op}'s list is not closed with ')'")
    if i >= len(tokens):
        raise bad("a comparison has no value")
    kind, raw = tokens[i]
    if numeric:
        text = _unquote(raw) if kind == "string" else raw
        if not re.fullmatch(r"-?[0-9]+", text.strip()):
            raise bad(f"{raw!r} is not an integer")
        return int(text), i + 1
    if kind != "string":
        raise bad(f"{raw!r} is not a quoted string")
    return _unquote(raw), i + 1


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _tag_value(tags: dict[str, str], key: str) -> str | None:
    if is_hidden_tag(key):
        return None
    # MLflow's clients add "tags.`mlflow.prompt.is_prompt` != 'true'" to every search: a
    # model without the tag is no prompt (MLflow's server reads it so too).
    return tags.get(key, "false" if key == PROMPT_TAG else None)


def _model_value(model: RegisteredModel, term: Term) -> str | int | None:
    return _tag_value(model.tags, term.key) if term.kind == "tag" else model.name


def _version_value(version: ModelVersion, term: Term) -> str | int | None:
    if term.kind == "tag":
        return _tag_value(version.tags, term.key)
    values: dict[str, str | int | None] = {
        "name": version.name, "run_id": version_run_id(version),
        "source_path": version_source(version), "version_number": version.version}
    return values[term.key]


def parse_order_by(items: Sequence[str], keys: dict[str, str], *,
                   default: list[str]) -> list[tuple[str, bool]]:
    """``["name ASC", "version_number DESC"]`` as (key, descending) pairs."""
    order: list[tuple[str, bool]] = []
    for item in items or default:
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2
                                           and words[1].upper() not in ("ASC", "DESC")):
            raise invalid(f"Invalid order_by clause {item!r}: use '<key> [ASC|DESC]'")
        key = words[0].removeprefix("attribute.").removeprefix("attributes.")
        if key not in keys:
            raise invalid(f"Invalid order by key {words[0]!r}: use one of "
                          f"{', '.join(sorted(keys))}")
        if any(k == keys[key] for k, _ in order):
            raise invalid(f"`order_by` contains duplicate fields: {list(items)}")
        order.append((keys[key], len(words) == 2 and words[1].upper() == "DESC"))
    return order


def sort_by(items: list[Any], order: Sequence[tuple[str, bool]],
            value: Callable[[Any, str], Any]) -> list[Any]:
    """Sorted by each key in turn (stable sorts, the last key first)."""
    result = list(items)
    for key, descending in reversed(order):
        result.sort(key=_key_of(value, key), reverse=descending)
    return result


def _key_of(value: Callable[[Any, str], Any], key: str) -> Callable[[Any], Any]:
    return lambda item: value(item, key)


def _model_sort_value(model: RegisteredModel, key: str) -> Any:
    return {"name": model.name, "creation_timestamp": model.created_at,
            "last_updated_timestamp": model.updated_at}[key]


def _version_sort_value(version: ModelVersion, key: str) -> Any:
    return {"name": version.name, "version_number": version.version,
            "creation_timestamp": version.created_at,
            "last_updated_timestamp": version.created_at}[key]


def page_token(offset: int, query: str) -> str:
    """An opaque token for the page at ``offset`` of this query (filter and order)."""
    data = json.dumps({"offset": offset, "query": query}).encode()
    return base64.urlsafe_b64encode(data).decode()


def page_offset(token: str | None, query: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = data["offset"]
        same = data["query"] == query
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise invalid(f"Invalid page token {token[:40]!r}: not one this server gave") from None
    if not isinstance(offset, int) or offset < 0:
        raise invalid(f"Invalid page token {token[:40]!r}: not one this server gave")
    if not same:
        raise invalid("Invalid page token: it belongs to a search with another filter or "
                      "order_by")
    return offset


__all__ = ["Term", "like", "page_offset", "page_token", "parse_filter", "parse_order_by",
           "router", "sort_by"]
