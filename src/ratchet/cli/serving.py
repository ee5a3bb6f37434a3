"""``ratchet serve``: the online server; ``ratchet predict``: batch scoring of files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ratchet.cli.output import key_values, print_all, print_json, say
from ratchet.cli.session import Session
from ratchet.errors import InvalidInput, Untrusted

PolicyChoice = Annotated[str, typer.Option(
    "--unknown-category", help="A category the training data never had: reject (422) or "
    "flag (accept, mark the row, count it).")]


def serve(
    model: Annotated[str | None, typer.Argument(
        help="The model to serve, e.g. churn@champion or churn/3. Creates deployment "
        "NAME (the model's name) the first time; later runs serve its stored plan.")] = None,
    deployment: Annotated[str | None, typer.Option(
        "--deployment", "-d", help="Serve this deployment (default: the model's name).")] = None,
    bundle: Annotated[Path | None, typer.Option(
        "--bundle", help="Serve a bundle written by `ratchet build` (no registry needed).",
        file_okay=False)] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to bind.", min=1,
                                      max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Worker processes.", min=1,
                                         max=64)] = 1,
    unknown_category: PolicyChoice = "reject",
    out_of_range: Annotated[str, typer.Option(
        "--out-of-range", help="A number outside the training range: flag (default) or "
        "reject.")] = "flag",
    extra_columns: Annotated[str, typer.Option(
        "--extra-columns", help="Fields the model does not take: reject (default) or "
        "ignore.")] = "reject",
    max_rows: Annotated[int, typer.Option("--max-rows", help="Rows per request before 413.",
                                          min=1)] = 10_000,
    poll_interval: Annotated[float, typer.Option(
        "--poll-interval", help="Seconds between checks for plan and alias changes.",
        min=0.05)] = 1.0,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not log predictions.")] = False,
    log_flush: Annotated[float, typer.Option(
        "--log-flush", help="Seconds between prediction-log writes (a SIGKILL loses up to "
        "that much); 0: durable, each request is appended to a write-ahead file first.",
        min=0.0)] = 1.0,
    no_batching: Annotated[bool, typer.Option(
        "--no-batching", help="One model call per request (default: concurrent requests "
        "for one model version share a call).")] = False,
    batch_wait_ms: Annotated[float, typer.Option(
        "--batch-wait-ms", help="Longest a request waits for a running model call before "
        "its batch gets a call of its own.", min=0.0)] = 1.0,
    batch_max_rows: Annotated[int, typer.Option(
        "--batch-max-rows", help="Rows per batched model call.", min=1)] = 256,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="A Host name this server answers to (repeatable; '*.example"
        ".com' for subdomains, '*' for any). Default: localhost, 127.0.0.1, [::1] and the "
        "--host address. Others get 421 (DNS rebinding).")] = None,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", help="Bearer tokens, one a line (or RATCHET_SERVE_TOKEN): then "
        "/feedback needs `Authorization: Bearer <token>`.", dir_okay=False)] = None,
    auth: Annotated[str, typer.Option(
        "--auth", help="What the tokens protect: feedback (state changes) or predict "
        "(every route but health and metrics).")] = "feedback",
    max_in_flight: Annotated[int, typer.Option(
        "--max-in-flight", help="Requests in flight per worker before 503.", min=1)] = 1024,
    max_header_bytes: Annotated[int, typer.Option(
        "--max-header-bytes", help="Request line + headers before 431.",
        min=1024)] = 64 * 1024,
    timeout_header: Annotated[float, typer.Option(
        "--timeout-header", help="Seconds a client has to send a request's headers.",
        min=0.1)] = 10.0,
    timeout_body: Annotated[float, typer.Option(
        "--timeout-body", help="Seconds a client may stay silent while sending a body.",
        min=0.1)] = 30.0,
    timeout_keep_alive: Annotated[int, typer.Option(
        "--timeout-keep-alive", help="Seconds an idle keep-alive connection stays open.",
        min=1)] = 5,
    backlog: Annotated[int, typer.Option(
        "--backlog", help="Connections the kernel queues before accepting.", min=1)] = 2048,
    trust: Annotated[bool, typer.Option(
        "--trust", help="Run code from the model file (cloudpickle models, models MLflow "
        "pickled, MLflow python_function models): only for models "
        "from a trusted source.")] = False,
    features_module: Annotated[list[str] | None, typer.Option(
        "--features-module", help="A module (my_project.features) or .py file declaring the "
        "on-demand feature views of the model: imported at startup, the only feature code "
        "run (repeatable).")] = None,
) -> None:
    """Serve a model over HTTP: /predict, /invocations (MLflow), /v2 (Open Inference
    Protocol), /feedback, /metrics, /health/*, /docs."""
    from ratchet.serving.access import AccessPolicy
    from ratchet.serving.connection_limits import ConnectionLimits
    from ratchet.serving.request_validation import ValidationPolicy
    from ratchet.serving.server_state import ServingConfig
    from ratchet.serving.workers import ServePlan
    from ratchet.serving.workers import serve as run_server

    if bundle is not None and model is not None:
        raise InvalidInput("give a model or --bundle, not both")
    if model is None and deployment is None and bundle is None:
        raise InvalidInput("give a model to serve (e.g. churn@champion), --deployment or "
                           "--bundle")
    # Each a one-line error before anything starts.
    config = ServingConfig(
        policy=ValidationPolicy(unknown_category=unknown_category, out_of_range=out_of_range,
                                extra_columns=extra_columns, max_rows=max_rows),
        access=AccessPolicy(allowed_hosts=tuple(allowed_host or ()),
                            token_file=str(token_file.resolve()) if token_file else None,
                            protect=auth, max_in_flight=max_in_flight),
        poll_interval_s=poll_interval, log_predictions=not no_log,
        log_flush_interval_s=log_flush, batching=not no_batching,
        batch_max_wait_ms=batch_wait_ms, batch_max_rows=batch_max_rows,
        features_modules=tuple(features_module or ()))
    connections = ConnectionLimits(max_header_bytes=max_header_bytes,
                                   header_timeout_s=timeout_header, body_timeout_s=timeout_body)

    def announce(plan: ServePlan) -> None:
        say(f"serving {plan.what} on {plan.url} ({plan.workers} worker"
            f"{'s' if plan.workers != 1 else ''}); Ctrl+C stops")
        if plan.open_to_others:
            say(f"note: {host} is reachable from other machines and no --token-file is set: "
                "anyone who can reach it can predict and write feedback")
        if "*" not in plan.allowed_hosts and host in ("0.0.0.0", "::") and not allowed_host:
            say("note: only Host localhost/127.0.0.1/[::1] is answered; add --allowed-host "
                "NAME for the names clients use")

    try:
        run_server(model, deployment=deployment, bundle=bundle, host=host, port=port,
                   workers=workers, config=config, connections=connections,
                   timeout_keep_alive_s=timeout_keep_alive, backlog=backlog, trust=trust,
                   workspace=Session().workspace, announce=announce)
    except Untrusted as exc:
        if bundle is None:
            raise
        raise Untrusted(f"{exc} From the command line: ratchet serve --bundle {bundle} "
                        "--trust (or rebuild it with ratchet build --trust)") from None


def predict(
    model: Annotated[str, typer.Argument(help="The model, e.g. churn@champion or churn/3.")],
    source: Annotated[Path, typer.Argument(
        help="A Parquet or CSV file, or a directory of them.", exists=True)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Where to write the scored rows (.parquet or .csv).")],
    batch_rows: Annotated[int, typer.Option(
        "--batch-rows", help="Rows per record batch (bounds memory).", min=1)] = 100_000,
    unknown_category: PolicyChoice = "reject",
    out_of_range: Annotated[str, typer.Option(
        "--out-of-range", help="flag (default) or reject.")] = "flag",
    deployment: Annotated[str | None, typer.Option(
        "--deployment", "-d", help="Log predictions under this deployment "
        "(default: the model's name).")] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not log predictions.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
    features_module: Annotated[list[str] | None, typer.Option(
        "--features-module", help="A module (my_project.features) or .py file declaring the "
        "on-demand feature views of the model: imported at startup, the only feature code "
        "run (repeatable).")] = None,
) -> None:
    """Score a file in record batches: the same validation and prediction log as the
    server, bounded memory, a progress bar."""
    from ratchet.serving.batch_scoring import score_file
    from ratchet.serving.request_validation import ValidationPolicy

    policy = ValidationPolicy(unknown_category=unknown_category, out_of_range=out_of_range,
                              extra_columns="ignore", max_rows=max(batch_rows, 1))
    session = Session()
    result = score_file(model, source, output, batch_rows=batch_rows, policy=policy,
                        workspace=session.workspace, deployment=deployment, log=not no_log,
                        overwrite=overwrite, progress=not as_json,
                        features_modules=tuple(features_module or ()))
    if as_json:
        print_json(result.to_dict())
        return
    print_all(key_values([
        ("model", f"{result.model_name} v{result.model_version}"),
        ("rows", f"{result.rows:,}"),
        ("flagged rows", f"{result.flagged_rows:,}"),
        ("seconds", f"{result.seconds:.2f}"),
        ("rows/s", f"{result.rows / max(result.seconds, 1e-9):,.0f}"),
        ("output", str(result.output)),
        ("logged", "no" if no_log else f"deployment {result.deployment}"
         + (f" ({result.log_dropped:,} rows could NOT be logged)" if result.log_dropped
            else "")),
    ], title="scored"))
