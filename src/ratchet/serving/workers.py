"""Running the server: :func:`serve` checks what to serve, then runs the app under uvicorn
in this process (one worker) or in N worker processes.

Every worker builds its own app from the *worker spec*, a JSON document in
``RATCHET_SERVE_SPEC`` that the parent writes (what to serve, the ``ServingConfig``, the
connection limits, the workspace's settings; never the tokens: workers read the token
file, and inherit ``RATCHET_SERVE_TOKEN``). With several workers they share metrics
through a temporary ``PROMETHEUS_MULTIPROC_DIR``. One worker runs in this process and stops
as soon as the first model load fails in a way retrying cannot fix (that error is
raised); a worker of several keeps running and answers readiness 503 with the reason
(uvicorn's supervisor would restart one that exited, over and over).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, RatchetError, Untrusted

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ratchet.serving.connection_limits import ConnectionLimits
    from ratchet.serving.deployments import DeploymentClient
    from ratchet.serving.server_state import ServingConfig
    from ratchet.workspace import Workspace

log = logging.getLogger(__name__)
SPEC_ENV = "RATCHET_SERVE_SPEC"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
LOOPBACK_BINDS = ("127.0.0.1", "localhost", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class ServePlan:
    """What :func:`serve` is about to serve, and where (given to ``announce``)."""

    what: str                       # "deployment churn: ..." or "bundle dist/churn (...)"
    deployment: str | None          # None: a bundle's own (its build recorded it)
    host: str
    port: int
    workers: int
    allowed_hosts: tuple[str, ...]  # the Host names answered ("*": any)
    tokens: bool                    # whether bearer tokens are configured

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def open_to_others(self) -> bool:
        """Reachable from other machines with no bearer token required."""
        return self.host not in LOOPBACK_BINDS and not self.tokens


def serve(model: str | None = None, *, deployment: str | None = None,
          bundle: str | os.PathLike[str] | None = None, host: str = "127.0.0.1",
          port: int = 8000, workers: int = 1, config: ServingConfig | None = None,
          connections: ConnectionLimits | None = None, timeout_keep_alive_s: int = 5,
          backlog: int = 2048, trust: bool = False, workspace: Workspace | None = None,
          announce: Callable[[ServePlan], None] | None = None) -> None:
    """Serve a model over HTTP until stopped (Ctrl+C, SIGTERM): ``ratchet serve``.

    What to serve is chosen as by :func:`~ratchet.serving.create_app`: ``model`` (a
    registered model reference; creates deployment ``deployment`` or the model's name the
    first time, and refuses one whose plan serves something else), an existing
    ``deployment`` under its stored plan, or a ``bundle`` written by ``ratchet build``.
    Everything is checked before the port is bound: references, the token file, and a
    model whose format runs code without ``trust=True`` (``Untrusted``). Then
    ``announce`` (if given) receives the :class:`ServePlan`, and uvicorn runs with
    ``workers`` processes. The Host allowlist is ``config.access.allowed_hosts`` plus the
    loopback names and ``host`` itself (unless it is a wildcard address).

    A first model load that can never succeed stops a one-worker server with that error;
    a server that cannot start (e.g. the port is taken) exits with status 3 after
    uvicorn's message, as ``uvicorn.run`` does.
    """
    from ratchet.serving.access import TokenSet, default_allowed_hosts
    from ratchet.serving.connection_limits import ConnectionLimits, raise_open_files_limit
    from ratchet.serving.server_state import ServingConfig
    from ratchet.workspace import resolve

    if workers < 1:
        raise InvalidInput(f"workers: expected at least 1, got {workers}")
    config = config or ServingConfig()
    connections = connections or ConnectionLimits()
    access = dataclasses.replace(config.access, allowed_hosts=default_allowed_hosts(
        host, (h for h in config.access.allowed_hosts)))
    config = dataclasses.replace(config, access=access)
    if config.features_modules:  # a module that cannot be imported: one line, not N workers
        from ratchet.features.definition_modules import (
            absolute_targets,
            import_definition_modules,
        )

        config = dataclasses.replace(
            config, features_modules=absolute_targets(config.features_modules))
        import_definition_modules(config.features_modules)
    # Read now: a missing or empty token file is a one-line error. Workers get its path
    # (never the tokens) and read it themselves; RATCHET_SERVE_TOKEN they inherit.
    tokens = TokenSet.from_environment(access.token_file)
    workspace = resolve(workspace)
    spec: dict[str, Any] = {"config": dataclasses.asdict(config),
                            "connections": dataclasses.asdict(connections), "trust": trust,
                            "settings": _settings_spec(workspace)}
    if bundle is not None:
        if model is not None:
            raise InvalidInput("give a model or a bundle, not both")
        from ratchet.serving.bundle import load_bundle

        info, _ = load_bundle(bundle, trust=trust)  # a broken bundle fails here
        spec["bundle"] = str(Path(bundle).resolve())
        spec["deployment"] = deployment
        what = f"bundle {bundle} ({info.model_name} v{info.model_version})"
    else:
        from ratchet.serving.deployments import DeploymentClient

        client = workspace.client(DeploymentClient)
        if model is not None:
            from ratchet.registry.uris import parse_model_uri

            name = deployment or parse_model_uri(model).name
            if name is None:
                raise InvalidInput(f"serve a registered model (name@alias, name/3), not "
                                   f"{model!r}")
            status = client.ensure_serving(name, model)
        elif deployment is not None:
            status = client.status(deployment)
        else:
            raise InvalidInput("give a model to serve (e.g. churn@champion), a deployment "
                               "or a bundle")
        refuse_untrusted(client, status.versions, trust)
        spec["deployment"] = status.name
        what = f"deployment {status.name}: {status.plan.describe()}"
    plan = ServePlan(what, spec["deployment"], host, port, workers, access.allowed_hosts,
                     tokens is not None)
    if announce is not None:
        announce(plan)
    raise_open_files_limit()  # before the workers start: they inherit it
    options = uvicorn_options(host, port, connections, timeout_keep_alive_s, backlog)
    with _environment(spec, workers):
        if workers > 1:
            import uvicorn

            uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=workers,
                        **options)
            return
        failure = _serve_in_this_process(options, workspace)
    if failure is not None:
        raise failure


def uvicorn_options(host: str, port: int, connections: ConnectionLimits,
                    timeout_keep_alive_s: int, backlog: int) -> dict[str, Any]:
    """The options every worker runs with."""
    from ratchet.serving.connection_limits import GuardedHttpToolsProtocol

    # No uvicorn limit_concurrency: it counts open connections, so idle ones would turn
    # real requests into 503s; the app limits requests in flight instead (access.py).
    return dict(host=host, port=port, loop="uvloop", http=GuardedHttpToolsProtocol,
                access_log=False, log_level="warning", timeout_graceful_shutdown=30,
                timeout_keep_alive=timeout_keep_alive_s, backlog=backlog,
                h11_max_incomplete_event_size=connections.max_header_bytes)


def refuse_untrusted(client: DeploymentClient, versions: dict[str, tuple[str, int]],
                     trust: bool) -> None:
    """A model whose format runs code can never load without ``trust``: say so now, before
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


# ----------------------------------------------------------------------------- the spec
def _settings_spec(workspace: Workspace) -> dict[str, Any]:
    s = workspace.settings
    return {"home": str(s.home), "db_url": s.db_url, "artifacts_uri": s.artifacts_uri,
            "tracking_uri": s.tracking_uri,
            "config_file": str(s.config_file) if s.config_file else None,
            "online_store": s.online_store}


def _workspace_of(spec: dict[str, Any]) -> Workspace:
    from ratchet.config import Settings
    from ratchet.workspace import Workspace

    s = spec["settings"]
    return Workspace(Settings(home=Path(s["home"]), db_url=s["db_url"],
                              artifacts_uri=s["artifacts_uri"], tracking_uri=s["tracking_uri"],
                              config_file=Path(s["config_file"]) if s["config_file"]
                              else None, online_store=s.get("online_store")))


def _config_of(spec: dict[str, Any]) -> ServingConfig:
    from ratchet.serving.access import AccessPolicy
    from ratchet.serving.request_validation import ValidationPolicy
    from ratchet.serving.server_state import ServingConfig

    fields = dict(spec["config"])
    access = dict(fields.pop("access"))
    access["allowed_hosts"] = tuple(access["allowed_hosts"])
    fields["features_modules"] = tuple(fields.get("features_modules") or ())
    return ServingConfig(policy=ValidationPolicy(**fields.pop("policy")),
                         access=AccessPolicy(**access), **fields)


def _app_from_spec(spec: dict[str, Any], workspace: Workspace | None = None) -> FastAPI:
    from ratchet.serving.app import create_app
    from ratchet.serving.connection_limits import ConnectionLimits, configure

    configure(ConnectionLimits(**spec["connections"]))
    return create_app(deployment=spec.get("deployment"), bundle=spec.get("bundle"),
                      config=_config_of(spec), trust=bool(spec["trust"]),
                      workspace=workspace or _workspace_of(spec))


def app_from_environment() -> FastAPI:
    """The app factory uvicorn workers call: what to serve comes from ``RATCHET_SERVE_SPEC``
    (JSON), written by :func:`serve` in the parent process."""
    return _app_from_spec(json.loads(os.environ[SPEC_ENV]))


@contextlib.contextmanager
def _environment(spec: dict[str, Any], workers: int) -> Iterator[None]:
    """What the workers read: the spec, and a shared metrics directory when there are
    several of them (prometheus-client's multiprocess mode)."""
    saved = {k: os.environ.get(k) for k in (SPEC_ENV, METRICS_DIR_ENV)}
    metrics_dir = tempfile.mkdtemp(prefix="ratchet-metrics-") if workers > 1 else None
    os.environ[SPEC_ENV] = json.dumps(spec)
    if metrics_dir is not None:
        os.environ[METRICS_DIR_ENV] = metrics_dir
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


def _serve_in_this_process(options: dict[str, Any],
                           workspace: Workspace) -> RatchetError | None:
    """uvicorn in this process (one worker), stopped as soon as the first load fails in a
    way retrying cannot fix; that error is returned."""
    import uvicorn

    failed: list[BaseException] = []

    def factory() -> Any:
        app = _app_from_spec(json.loads(os.environ[SPEC_ENV]), workspace)
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
        exc = failed[0]
        return exc if isinstance(exc, RatchetError) else InvalidInput(
            f"the model cannot be loaded: {type(exc).__name__}: {exc}")
    if not server.started:
        raise SystemExit(3)  # uvicorn said why (e.g. the port is taken), as uvicorn.run does
    return None


__all__ = ["ServePlan", "app_from_environment", "serve"]
