"""``ratchet serve``: the online server; ``ratchet predict``: batch scoring of files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

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
        "--trust", help="Run code from the model file (cloudpickle models): only for models "
        "from a trusted source.")] = False,
) -> None:
    """Serve a model over HTTP: /predict, /invocations (MLflow), /v2 (Open Inference
    Protocol), /feedback, /metrics, /health/*, /docs."""
    from ratchet.serving.access import AccessPolicy, TokenSet, default_allowed_hosts
    from ratchet.serving.connection_limits import ConnectionLimits
    from ratchet.serving.request_validation import ValidationPolicy

    policy: dict[str, Any] = {"unknown_category": unknown_category, "out_of_range": out_of_range,
              "extra_columns": extra_columns, "max_rows": max_rows}
    ValidationPolicy(**policy)  # a bad choice is a one-line error before anything starts
    access: dict[str, Any] = {
        "allowed_hosts": list(default_allowed_hosts(host, allowed_host or ())),
        "token_file": str(token_file.resolve()) if token_file else None, "protect": auth,
        "max_in_flight": max_in_flight}
    AccessPolicy(**{**access, "allowed_hosts": tuple(access["allowed_hosts"])})
    # Read now: a missing or empty token file is a one-line error. Workers get its path
    # (never the tokens) and read it themselves; RATCHET_SERVE_TOKEN they inherit.
    tokens = TokenSet.from_environment(access["token_file"])
    connections: dict[str, Any] = {"max_header_bytes": max_header_bytes, "header_timeout_s": timeout_header,
                   "body_timeout_s": timeout_body}
    ConnectionLimits(**connections)
    spec: dict[str, Any] = {"policy": policy, "access": access, "connections": connections,
                            "trust": trust, "config": {
        "poll_interval_s": poll_interval, "log_predictions": not no_log,
        "log_flush_interval_s": log_flush, "batching": not no_batching,
        "batch_max_wait_ms": batch_wait_ms, "batch_max_rows": batch_max_rows}}
    if bundle is not None:
        if model is not None:
            raise InvalidInput("give a model or --bundle, not both")
        spec["bundle"] = str(bundle.resolve())
        spec["deployment"] = deployment
        from ratchet.serving.bundle import load_bundle

        try:  # a broken bundle fails here, in one line
            info, _ = load_bundle(bundle, trust=trust)
        except Untrusted as exc:
            raise Untrusted(f"{exc} From the command line: ratchet serve --bundle {bundle} "
                            "--trust (or rebuild it with ratchet build --trust)") from None
        what = f"bundle {bundle} ({info.model_name} v{info.model_version})"
    else:
        from ratchet.serving.deployments import DeploymentClient

        client = DeploymentClient(Session().registry)
        if model is not None:
            from ratchet.registry.uris import parse_model_uri

            name = deployment or parse_model_uri(model).name
            if name is None:
                raise InvalidInput(f"serve a registered model (name@alias, name/3), not {model!r}")
            status = client.ensure_serving(name, model)
        elif deployment is not None:
            status = client.status(deployment)
        else:
            raise InvalidInput("give a model to serve (e.g. churn@champion), --deployment or "
                               "--bundle")
        _refuse_untrusted(client, status.versions, trust)
        spec["deployment"] = status.name
        what = f"deployment {status.name}: {status.plan.describe()}"
    say(f"serving {what} on http://{host}:{port} ({workers} worker"
        f"{'s' if workers != 1 else ''}); Ctrl+C stops")
    if host not in ("127.0.0.1", "localhost", "::1") and tokens is None:
        say(f"note: {host} is reachable from other machines and no --token-file is set: "
            "anyone who can reach it can predict and write feedback")
    if "*" not in access["allowed_hosts"] and host in ("0.0.0.0", "::") and not allowed_host:
        say("note: only Host localhost/127.0.0.1/[::1] is answered; add --allowed-host "
            "NAME for the names clients use")
    from ratchet.serving.connection_limits import GuardedHttpToolsProtocol, raise_open_files_limit

    raise_open_files_limit()  # before the workers start: they inherit it
    with _environment(spec, workers):
        import uvicorn

        # No uvicorn limit_concurrency: it counts open connections, so idle ones would
        # turn real requests into 503s; the app limits requests in flight instead.
        options: dict[str, Any] = dict(
            host=host, port=port, loop="uvloop", http=GuardedHttpToolsProtocol,
            access_log=False, log_level="warning", timeout_graceful_shutdown=30,
            timeout_keep_alive=timeout_keep_alive, backlog=backlog,
            h11_max_incomplete_event_size=max_header_bytes)
        if workers > 1:
            # Workers that cannot load keep running and answer readiness 503 with the
            # reason (the supervisor would restart one that exited, over and over).
            uvicorn.run("ratchet.serving.app:app_from_environment", factory=True,
                        workers=workers, **options)
            return
        failure = _serve_in_this_process(options)
    if failure is not None:
        raise failure


def _refuse_untrusted(client: Any, versions: dict[str, tuple[str, int]], trust: bool) -> None:
    """A model whose format runs code can never load without --trust: say so now, before
    the port is bound, rather than from a server that cannot become ready."""
    from ratchet.packaging.flavors import FLAVORS

    if trust:
        return
    for name, version in sorted(set(versions.values())):
        mv = client.registry.get_version(name, version)
        flavor = FLAVORS.get(mv.flavor)
        if flavor is not None and (not flavor.SAFE or mv.manifest.get("safe") is False):
            raise Untrusted(f"{name} v{version} is a {mv.flavor}-flavor model: loading it runs "
                            "arbitrary code. Serve it with --trust only if you trust its source")


def _serve_in_this_process(options: dict[str, Any]) -> BaseException | None:
    """uvicorn in this process (one worker), stopped as soon as the first load fails in a
    way retrying cannot fix; that error is returned, for a one-line exit."""
    import threading

    import uvicorn

    from ratchet.serving.app import app_from_environment

    failed: list[BaseException] = []

    def factory() -> Any:
        app = app_from_environment()
        watcher = app.state.server.watcher

        def watch() -> None:
            while not server.should_exit:
                if watcher.wait_settled(0.2):
                    if watcher.table is None and watcher.permanent_exception is not None:
                        failed.append(watcher.permanent_exception)
                        server.should_exit = True
                    return

        threading.Thread(target=watch, name="ratchet-first-load", daemon=True).start()
        return app

    server = uvicorn.Server(uvicorn.Config(factory, factory=True, **options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if failed:
        from ratchet.errors import RatchetError

        exc = failed[0]
        return exc if isinstance(exc, RatchetError) else InvalidInput(
            f"the model cannot be loaded: {type(exc).__name__}: {exc}")
    if not server.started:
        raise typer.Exit(3)  # uvicorn said why (e.g. the port is taken), as uvicorn.run does
    return None


@contextlib.contextmanager
def _environment(spec: dict[str, Any], workers: int) -> Iterator[None]:
    """What the workers read: the spec, and a shared metrics directory when there are
    several of them (prometheus-client's multiprocess mode)."""
    from ratchet.serving.app import SPEC_ENV

    saved = {k: os.environ.get(k) for k in (SPEC_ENV, "PROMETHEUS_MULTIPROC_DIR")}
    metrics_dir = tempfile.mkdtemp(prefix="ratchet-metrics-") if workers > 1 else None
    os.environ[SPEC_ENV] = json.dumps(spec)
    if metrics_dir is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


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
) -> None:
    """Score a file in record batches: the same validation and prediction log as the
    server, bounded memory, a progress bar."""
    from ratchet.serving.batch_scoring import score_file
    from ratchet.serving.request_validation import ValidationPolicy

    policy = ValidationPolicy(unknown_category=unknown_category, out_of_range=out_of_range,
                              extra_columns="ignore", max_rows=max(batch_rows, 1))
    session = Session()
    result = score_file(model, source, output, batch_rows=batch_rows, policy=policy,
                        registry=session.registry, deployment=deployment, log=not no_log,
                        overwrite=overwrite, progress=not as_json)
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
