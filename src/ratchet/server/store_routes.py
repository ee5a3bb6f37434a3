"""The store API: ``POST /api/v1/<store>/<method>`` for every exposed store method.

Each route takes the method's arguments as a JSON object (validated against a model
built from the method's type hints, see ``ratchet.wire``), checks the caller's
permission on the resource the arguments name, calls the workspace's real store, and
answers ``{"result": ...}``. Writes are audited (who, what, which resource, from where)
and honour an ``Idempotency-Key``: a retried write gets the first reply. Arguments named
``actor`` are filled with the authenticated caller, so alias moves, plan changes and CT
approvals record who really made them.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ratchet.errors import ContentTooLarge, Forbidden, InvalidInput, NotFound, RatchetError
from ratchet.remote.store_api import ACTOR_ARGUMENT, EXPOSED, Exposed, store_classes
from ratchet.server.permissions import client_address, declare, principal
from ratchet.wire import MethodWire

if TYPE_CHECKING:
    from fastapi import APIRouter, Request, Response

    from ratchet.server.auth import Principal
    from ratchet.workspace import Workspace

log = logging.getLogger(__name__)
IDEMPOTENCY_HEADER = "idempotency-key"
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")
_CACHE_SIZE = 10_000


def wires() -> dict[tuple[str, str], MethodWire]:
    """Every exposed method's wire, by (store, method)."""
    classes = store_classes()
    return {(store, method): MethodWire(store, method, getattr(classes[store], method))
            for store, methods in EXPOSED.items() for method in methods}


class _Names:
    """Bounded caches of run id → experiment name, experiment id → name and monitor
    result id → deployment, for permission checks (runs and results never move; an entry
    is only ever a few calls stale)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, str] = OrderedDict()
        self._experiments: OrderedDict[str, str] = OrderedDict()
        self._results: OrderedDict[str, str] = OrderedDict()

    def _cached(self, cache: OrderedDict[str, str], key: str,
                load: Callable[[str], str]) -> str:
        with self._lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        value = load(key)
        with self._lock:
            cache[key] = value
            if len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)
        return value

    def experiment_of_run(self, run_id: str) -> str:
        return self._cached(self._runs, run_id,
                            self.workspace.stores.tracking.experiment_name_of_run)

    def deployment_of_result(self, result_id: str) -> str:
        return self._cached(self._results, result_id,
                            lambda key: self.workspace.stores.monitor.get(key).deployment)

    def experiment(self, id_or_name: str) -> str:
        def load(key: str) -> str:
            return self.workspace.stores.tracking.get_experiment(key).name
        try:
            return self._cached(self._experiments, id_or_name, load)
        except NotFound:
            return id_or_name  # a name not created yet (create checks the name itself)


def _resources(spec: Exposed, args: dict[str, Any], names: _Names) -> Iterable[str]:
    value = args.get(spec.argument) if spec.argument else None
    if value is None:
        return ()
    if spec.via == "run":
        return (names.experiment_of_run(str(value)),)
    if spec.via == "id_or_name":
        return (names.experiment(str(value)),)
    if spec.via == "monitor_result":
        return (names.deployment_of_result(str(value)),)
    if spec.via == "ids":
        return tuple(names.experiment(str(v)) for v in value)
    if spec.via == "rows":  # feedback rows (request_id, row, deployment, value)
        rows = list(value)
        args[str(spec.argument)] = rows  # the iterator is read here; hand on the list
        return {str(r[2]) for r in rows}
    if spec.via == "state":
        return (str(value.model),)
    return (str(value),)


def check_permission(who: Principal, spec: Exposed, args: dict[str, Any],
                     names: _Names) -> str | None:
    """Raise ``Forbidden`` unless ``who`` may call; returns the resource (for the audit)."""
    kind = spec.kind
    has_grants = kind is not None and any(k == kind for k, _ in who.grants)
    if not has_grants:  # the role decides alone: no lookups needed
        if not who.can(spec.level):
            raise Forbidden(f"user {who.name!r} (role {who.role}) may not {spec.level}")
        value = args.get(spec.argument) if spec.argument else None
        return None if value is None or spec.via in ("rows", "state", "ids") \
            else str(value)
    found = list(_resources(spec, args, names))
    if not found:
        if not who.can(spec.level):
            raise Forbidden(f"user {who.name!r} (role {who.role}) may not {spec.level}")
        return None
    for resource in found:
        who.require(spec.level, kind, resource)
    return ", ".join(sorted(found))


def _check_artifact_entries(args: dict[str, Any]) -> None:
    """Artifact records from a client name a checked relative path, a well-formed digest
    and a size: what the artifact routes later serve by path."""
    from ratchet.artifacts.paths import normalize_artifact_path
    from ratchet.hashing import is_digest

    entries = list(args.get("entries") or ())
    for i, entry in enumerate(entries):
        where = f"entries.{i}"
        if normalize_artifact_path(entry.path) != entry.path:
            raise InvalidInput(f"{where}.path: {entry.path!r} is not in normal form "
                               f"({normalize_artifact_path(entry.path)!r})")
        if not is_digest(entry.digest):
            raise InvalidInput(f"{where}.digest: not a blob digest")
        if entry.size < 0:
            raise InvalidInput(f"{where}.size: must be at least 0")


def _check_model_path(args: dict[str, Any]) -> None:
    """A version's ``artifact_path`` names files under its run's artifacts: a checked
    relative path, never a root the client chooses."""
    from ratchet.artifacts.paths import normalize_artifact_path

    path = args.get("artifact_path")
    if isinstance(path, str) and normalize_artifact_path(path) != path:
        raise InvalidInput(f"artifact_path: {path!r} is not in normal form "
                           f"({normalize_artifact_path(path)!r})")


# Checks of arguments that are trusted in-process but come from clients over the wire.
PRECHECKS: dict[tuple[str, str], Callable[[dict[str, Any]], None]] = {
    ("tracking", "record_artifacts"): _check_artifact_entries,
    ("registry", "create_model_version"): _check_model_path,
}
MAX_BATCH_ITEMS = 100_000

# Listings answer only what the caller may read when grants narrow its role.
LISTINGS: dict[tuple[str, str], tuple[str, Callable[[Any], str]]] = {
    ("tracking", "list_experiments"): ("experiment", lambda e: e.name),
    ("registry", "list_registered_models"): ("model", lambda m: m.name),
    ("deployments", "list_deployments"): ("deployment", lambda d: d.name),
    ("ct_state", "list_states"): ("model", lambda state: state.model),
}


def _narrowed(who: Principal, kind: str) -> bool:
    return any(k == kind for k, _ in who.grants)


def _readable_experiments(who: Principal, workspace: Workspace) -> list[str]:
    return [e.experiment_id for e in workspace.stores.tracking.list_experiments()
            if who.can("read", "experiment", e.name)]


def _check_batch_sizes(args: dict[str, Any]) -> None:
    for name, value in args.items():
        if isinstance(value, list | tuple | dict) and len(value) > MAX_BATCH_ITEMS:
            raise ContentTooLarge(f"{name}: {len(value)} items in one call; the limit is "
                                  f"{MAX_BATCH_ITEMS} (send several calls)")


def _error_body(exc: RatchetError) -> bytes:
    return json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}}).encode()


def _audit_detail(args: dict[str, Any]) -> dict[str, Any] | None:
    """Short scalar arguments (ids, names, versions): enough to find what changed."""
    shown = {k: v for k, v in args.items()
             if isinstance(v, str | int | float | bool) and len(str(v)) <= 200}
    return shown or None


def store_router(workspace: Workspace, *, audit_reads: bool = False) -> APIRouter:
    """The router with one route per exposed store method."""
    from fastapi import APIRouter, Body, Request
    from fastapi import Response as FastAPIResponse

    router = APIRouter(prefix="/api/v1")
    names = _Names(workspace)
    for (store, method), wire in sorted(wires().items()):
        spec = EXPOSED[store][method]
        endpoint = _endpoint(workspace, store, method, wire, spec, names)
        has_required = any(p.default is inspect.Parameter.empty
                           for p in wire.signature.parameters.values())
        body_param = inspect.Parameter(
            "body", inspect.Parameter.KEYWORD_ONLY, annotation=wire.args_model,
            default=Body(...) if has_required else Body(None))
        request_param = inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY,
                                          annotation=Request)
        endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [request_param, body_param], return_annotation=FastAPIResponse)
        doc = inspect.getdoc(wire.function) or ""
        router.add_api_route(
            f"/{store}/{method}", endpoint, methods=["POST"], name=f"{store}.{method}",
            summary=f"{store}.{method}", description=doc, tags=[store],
            openapi_extra=declare(spec.level), response_class=FastAPIResponse)
    return router


def _endpoint(workspace: Workspace, store: str, method: str, wire: MethodWire,
              spec: Exposed, names: _Names) -> Callable[..., Response]:
    from fastapi import Response

    from ratchet.server.auth import LOCAL_ADMIN
    from ratchet.store.audit_store import event_row
    from ratchet.store.database import refused_by_constraints

    writes = spec.level != "read"
    action = f"{store}.{method}"

    def endpoint(*, request: Request, body: Any) -> Response:
        who = principal(request)
        args = wire.arguments(body) if body is not None else {}
        resource = check_permission(who, spec, args, names)
        _check_batch_sizes(args)
        if (store, method) == ("tracking", "search_runs") and \
                args.get("experiment_ids") is None and _narrowed(who, "experiment"):
            args["experiment_ids"] = _readable_experiments(who, workspace)
        precheck = PRECHECKS.get((store, method))
        if precheck is not None:
            precheck(args)
        if ACTOR_ARGUMENT in wire.signature.parameters and who != LOCAL_ADMIN:
            given = args.get(ACTOR_ARGUMENT)
            args[ACTOR_ARGUMENT] = who.name if not given or given == who.name \
                else f"{who.name} ({given})"
        key = request.headers.get(IDEMPOTENCY_HEADER) if writes else None
        if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidInput("Idempotency-Key must be 8-64 characters of [A-Za-z0-9_-]")
        replies = workspace.stores.replies
        if key is not None:
            earlier = replies.claim(key, who.name)
            if earlier is not None:
                return Response(earlier.body, status_code=earlier.status,
                                media_type="application/json")
        try:
            try:
                result = getattr(getattr(workspace.stores, store), method)(**args)
                listing = LISTINGS.get((store, method))
                if listing is not None and _narrowed(who, listing[0]):
                    result = [item for item in result
                              if who.can("read", listing[0], listing[1](item))]
            except Exception as exc:
                refused = refused_by_constraints(exc)
                if refused is None:
                    raise
                raise refused from None
            status, content = 200, wire.encode_result(result)
        except RatchetError as exc:
            status, content = exc.http_status, _error_body(exc)
            if status >= 500:
                if key is not None:
                    replies.release(key)
                raise
        except BaseException:
            if key is not None:
                replies.release(key)
            raise
        audited = writes and status < 400
        event: dict[str, Any] = dict(kind=spec.kind, resource=resource,
                                     client=client_address(request),
                                     detail=_audit_detail(args))
        if key is not None:  # the reply and its audit event in one transaction
            replies.finish(key, status, content,
                           event_row(who.name, action, **event) if audited else None)
        elif audited:
            workspace.stores.audit.record(who.name, action, **event)
        return Response(content, status_code=status, media_type="application/json")

    endpoint.__name__ = f"{store}_{method}"
    return endpoint
