"""``/predict`` (ratchet's JSON) and ``/invocations`` (MLflow's scoring protocol).

Both are answered by the fast path (``fast_path.py``) in front of the router; the routes
here document them in OpenAPI and answer when the app is mounted under another one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ratchet.serving import api_schema
from ratchet.serving.request_formats import decode_json, parse_mlflow, parse_native
from ratchet.serving.response_formats import mlflow_answer, native_answer

if TYPE_CHECKING:
    from ratchet.serving.request_formats import ParsedRequest, ParseLimits
    from ratchet.serving.routes.answering import Answering


def parse_ours(body: bytes, _ct: str, names: list[str], *,
               limits: ParseLimits) -> ParsedRequest:
    return parse_native(decode_json(body), names, limits=limits)


# path -> (parse, render), for the fast path
ROUTES: dict[str, tuple[Any, Any]] = {"/predict": (parse_ours, native_answer),
                                      "/invocations": (parse_mlflow, mlflow_answer)}


def router(answering: Answering) -> APIRouter:
    routes = APIRouter(tags=["inference"])

    @routes.post("/predict", summary="Predict (ratchet JSON)",
                 openapi_extra=api_schema.body("PredictRequest"),
                 response_model=api_schema.PredictResponse, responses=api_schema.ERRORS)
    async def predict(request: Request) -> Response:
        return await answering.route(request, parse_ours, native_answer)

    @routes.post("/invocations", summary="Predict (MLflow scoring protocol)",
                 openapi_extra=api_schema.body("InvocationsRequest"),
                 response_model=api_schema.InvocationsResponse, responses=api_schema.ERRORS)
    async def invocations(request: Request) -> Response:
        return await answering.route(request, parse_mlflow, mlflow_answer)

    return routes
