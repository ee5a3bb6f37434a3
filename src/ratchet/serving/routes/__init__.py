"""The server's routes, one concept per module, each an ``APIRouter`` built over one
running server (:class:`~ratchet.serving.server_state.ServerState`):

- ``answering``: the request pipeline every inference route shares (request id, waiting
  for the first model, body limits, parse, answer, render) and the error replies;
- ``predict``: ``/predict`` (ratchet's JSON) and ``/invocations`` (MLflow's protocol);
- ``oip``: the Open Inference Protocol v2 (``/v2/...``);
- ``feedback``: ``/feedback`` (parsed here, recorded by ``DeploymentClient``);
- ``health``: liveness, readiness and ``/metrics``;
- ``fast_path``: the ASGI middleware that answers the inference POSTs in front of
  Starlette's router, with the same pipeline.

``ratchet.serving.app`` assembles them into one FastAPI app.
"""
