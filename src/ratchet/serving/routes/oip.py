"""The Open Inference Protocol v2 (KServe, Triton): server and model metadata, model
readiness and infer, for the deployment's name or its primary model's, at any version the
plan serves (``/v2/models/{name}/versions/{version}/...``).

Infer is answered by the fast path (``fast_path.py``) when the model is served; the route
here documents it and answers the rest (unknown names and versions, mounted apps).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ratchet.errors import BadRequest
from ratchet.packaging.manifest import ratchet_version
from ratchet.serving import api_schema
from ratchet.serving.request_formats import OIP_HEADER_LENGTH, parse_oip_body
from ratchet.serving.response_formats import oip_metadata, oip_output_names, oip_response
from ratchet.serving.routes.health import ready_body
from ratchet.serving.traffic_plan import Router

if TYPE_CHECKING:
    from ratchet.serving.deployment_watcher import RoutingTable
    from ratchet.serving.request_formats import ParsedRequest, ParseLimits
    from ratchet.serving.routes.answering import Answering, Header, Parse, Pin, Render
    from ratchet.serving.served_model import ServedModel
    from ratchet.serving.server_state import ServerState

PREFIX = "/v2/models/"
SUFFIX = "/infer"


def infer_path(path: str) -> tuple[str, str | None] | None:
    """(name, version) of an infer path (``/v2/models/{name}[/versions/{v}]/infer``)."""
    if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        return None
    rest = path[len(PREFIX):-len(SUFFIX)]
    if rest and "/" not in rest:
        return rest, None
    parts = rest.split("/")
    if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
        return parts[0], parts[2]
    return None


class OipModels:
    """Which served model answers an OIP name (and version) on one server."""

    def __init__(self, server: ServerState) -> None:
        self.server = server

    def table(self, name: str) -> RoutingTable | None:
        table = self.server.watcher.table
        if table is None or name not in (self.server.deployment,
                                         table.routes[0].model.ref.name):
            return None
        return table

    def served(self, name: str, version: str | None) -> ServedModel | None:
        """The model that answers for ``name`` (at ``version``: any version in the plan)."""
        table = self.table(name)
        if table is None:
            return None
        if version is None:
            return table.routes[0].model
        for r in table.all_routes:
            if str(r.model.ref.version) == version and name in (self.server.deployment,
                                                                r.model.ref.name):
                return r.model
        return None

    def pin(self, name: str, version: str | None) -> Pin | None:
        """For a versioned infer: the routing table narrowed to that version's route."""
        if version is None:
            return None
        deployment = self.server.deployment

        def pin(table: RoutingTable) -> RoutingTable | None:
            if len(table.routes) == 1 and str(table.routes[0].model.ref.version) == version:
                return table
            for r in table.all_routes:
                if str(r.model.ref.version) == version and name in (deployment,
                                                                     r.model.ref.name):
                    return dataclasses.replace(table, routes=(r,), router=Router([1.0]),
                                               shadow=None)
            return None
        return pin

    def unknown(self, name: str, version: str | None) -> Response:
        """The answer for a name or version not served here (or no model loaded yet)."""
        server = self.server
        if server.watcher.table is None:  # loading (or unloadable): not "no such model"
            status, body = ready_body(server)
            return JSONResponse({"name": name, **body}, status)
        table = self.table(name)
        if table is None or version is None:
            current = server.watcher.table
            known = [server.deployment] + ([current.routes[0].model.ref.name] if current
                                           else [])
            return JSONResponse({"error": f"no model named {name!r} here (serving: "
                                          f"{', '.join(dict.fromkeys(known))})"}, 404)
        served = sorted({str(r.model.ref.version) for r in table.all_routes
                         if name in (server.deployment, r.model.ref.name)}, key=int)
        return JSONResponse({"error": f"model {name!r} has no version {version!r} served "
                                      f"here (versions served: {', '.join(served)})"}, 404)

    def infer(self, name: str, version: str | None,
              header: Header) -> tuple[Parse, Render, Pin | None]:
        """(parse, render, pin) of an infer request for ``Answering.handle``."""
        def parse(body: bytes, _ct: str, names: list[str], *,
                  limits: ParseLimits) -> ParsedRequest:
            parsed = parse_oip_body(body, header(OIP_HEADER_LENGTH), names, limits=limits)
            model = self.served(name, version) if parsed.outputs else None
            if model is not None and parsed.outputs is not None:
                known = oip_output_names(model)
                unknown = [o for o in parsed.outputs if o not in known]
                if unknown:
                    raise BadRequest(f"outputs: no output named {unknown[0]!r}; this model "
                                     f"has {', '.join(known)}")
            return parsed

        def render(answer: Any, parsed: ParsedRequest) -> Any:
            return oip_response(name, answer, parsed)

        return parse, render, self.pin(name, version)


def router(answering: Answering, models: OipModels) -> APIRouter:
    routes = APIRouter(tags=["open inference protocol"])

    @routes.get("/v2", summary="Server metadata")
    async def oip_server() -> dict[str, Any]:
        return {"name": "ratchet", "version": ratchet_version(),
                "extensions": ["binary_tensor_data"]}

    @routes.get("/v2/models/{name}", summary="Model metadata", responses=api_schema.NOT_FOUND)
    @routes.get("/v2/models/{name}/versions/{version}", summary="Model metadata (one version)",
                responses=api_schema.NOT_FOUND)
    async def oip_model(name: str, version: str | None = None) -> Response:
        model = models.served(name, version)
        if model is None:
            return models.unknown(name, version)
        return JSONResponse(oip_metadata(name, model))

    @routes.get("/v2/models/{name}/ready", summary="Model readiness",
                responses=api_schema.NOT_FOUND)
    @routes.get("/v2/models/{name}/versions/{version}/ready",
                summary="Model readiness (one version)", responses=api_schema.NOT_FOUND)
    async def oip_ready(name: str, version: str | None = None) -> Response:
        if models.served(name, version) is None:
            return models.unknown(name, version)
        return JSONResponse({"name": name, "ready": True})

    @routes.post("/v2/models/{name}/infer", summary="Infer",
                 openapi_extra=api_schema.body("InferRequest"),
                 response_model=api_schema.InferResponse,
                 responses={**api_schema.ERRORS, **api_schema.NOT_FOUND})
    @routes.post("/v2/models/{name}/versions/{version}/infer", summary="Infer (one version)",
                 openapi_extra=api_schema.body("InferRequest"),
                 response_model=api_schema.InferResponse,
                 responses={**api_schema.ERRORS, **api_schema.NOT_FOUND})
    async def oip_infer(name: str, request: Request, version: str | None = None) -> Response:
        if models.served(name, version) is None:
            return models.unknown(name, version)
        return await answering.route(request, *models.infer(name, version,
                                                            request.headers.get))

    return routes
