"""Keep a server's routing table in step with its deployment, without dropping requests.

A background thread polls the deployment's newest plan revision and the versions its
aliases point at (one cheap query each, every ``poll_interval_s``). When either changed,
the models the new table needs are loaded and warmed in that thread while requests keep
being served by the old table; then the table is replaced by a single attribute
assignment, which is atomic. A request reads the table once and finishes with it, so
in-flight requests are never cut off. Recently served models stay loaded (a small LRU),
so a rollback swaps back at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ratchet.serving.served_model import ModelVersionRef, ServedModel, load_served_model
from ratchet.serving.traffic_plan import Router, TrafficPlan

if TYPE_CHECKING:
    from ratchet.packaging import LoadedModel
    from ratchet.serving.deployments import DeploymentClient
    from ratchet.serving.request_validation import ValidationPolicy
    from ratchet.workspace import Workspace

log = logging.getLogger(__name__)


def is_permanent(exc: BaseException) -> bool:
    """A load error that retrying cannot fix: the model needs trust, lacks what serving
    needs (a signature), or its files do not match their hash. Anything else (the store
    briefly unavailable, files not there yet) is retried on the next poll."""
    import pickle

    from ratchet.errors import IntegrityError, InvalidInput, Untrusted, ValidationFailed

    return isinstance(exc, (Untrusted, InvalidInput, IntegrityError, ValidationFailed,
                            ImportError, pickle.UnpicklingError))


@dataclass(frozen=True)
class Route:
    variant: str
    model: ServedModel


@dataclass(frozen=True)
class RoutingTable:
    """An immutable snapshot of what the server answers with."""

    deployment: str
    revision: int
    plan: TrafficPlan
    routes: tuple[Route, ...]   # routed variants; routes[0] is the primary / fallback
    router: Router
    shadow: Route | None

    @property
    def identity(self) -> tuple[object, ...]:
        return (self.revision, *((r.variant, r.model.ref) for r in self.all_routes))

    @property
    def reads_features(self) -> bool:
        """Whether a routed model reads the online feature store per request (I/O: its
        validation runs off the event loop)."""
        return any(r.model.feature_lookup is not None for r in self.routes)

    @property
    def all_routes(self) -> tuple[Route, ...]:
        return (*self.routes, self.shadow) if self.shadow else self.routes


class ModelSource(Protocol):
    """Where plans and models come from: the registry, or a bundle directory."""

    def current(self) -> tuple[int, TrafficPlan, dict[str, tuple[str, int]]]: ...

    def load(self, ref: ModelVersionRef) -> LoadedModel: ...


class RegistrySource:
    def __init__(self, deployment: str, client: DeploymentClient, *, trust: bool = False) -> None:
        self.deployment = deployment
        self.client = client
        self.trust = trust

    def current(self) -> tuple[int, TrafficPlan, dict[str, tuple[str, int]]]:
        status = self.client.status(self.deployment)
        return status.revision, status.plan, status.versions

    def load(self, ref: ModelVersionRef) -> LoadedModel:
        return self.client.registry.load(f"models:/{ref.name}/{ref.version}", trust=self.trust)


class StaticSource:
    """One model that never changes (``ratchet serve --bundle``)."""

    def __init__(self, ref: ModelVersionRef, model: LoadedModel) -> None:
        self.ref, self.model = ref, model

    def current(self) -> tuple[int, TrafficPlan, dict[str, tuple[str, int]]]:
        plan = TrafficPlan.single(f"{self.ref.name}/{self.ref.version}")
        return 1, plan, {"primary": (self.ref.name, self.ref.version)}

    def load(self, ref: ModelVersionRef) -> LoadedModel:
        return self.model


class DeploymentWatcher:
    def __init__(self, deployment: str, source: ModelSource, *,
                 poll_interval_s: float = 1.0, policy: ValidationPolicy | None = None,
                 cache_size: int = 4,
                 on_load: Callable[[ServedModel], None] | None = None,
                 on_swap: Callable[[RoutingTable], None] | None = None,
                 rng: random.Random | None = None,
                 workspace: Workspace | None = None) -> None:
        self.deployment = deployment
        self.rng = rng  # the routers' draws (a backtest's seeded replay); None: fresh
        self.source = source
        self.workspace = workspace  # feature definitions and the online store (features)
        self.poll_interval_s = poll_interval_s
        self.policy = policy
        self.cache_size = cache_size
        self.on_load = on_load
        self.on_swap = on_swap
        self.table: RoutingTable | None = None
        self.last_error: str | None = None
        # Set while the newest failure is one retrying cannot fix (``is_permanent``).
        self.permanent_error: str | None = None
        self.permanent_exception: BaseException | None = None
        self._cache: OrderedDict[tuple[ModelVersionRef, str | None], ServedModel] = OrderedDict()
        self._seen: tuple[int, tuple[tuple[str, str, int], ...]] | None = None
        self._stop = threading.Event()
        self._loaded = threading.Event()
        self._settled = threading.Event()  # loaded, or failed for good
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"ratchet-watch-{self.deployment}",
                                        daemon=True)
        self._thread.start()

    def wait_loaded(self, timeout: float) -> bool:
        """Block until the first table is in place (or ``timeout`` seconds pass)."""
        return self._loaded.wait(timeout)

    def wait_settled(self, timeout: float) -> bool:
        """Block until the first table is in place or a load failed for good."""
        return self._settled.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.poll_interval_s)

    # ------------------------------------------------------------------ one poll
    def refresh(self) -> bool:
        """Poll once; build and swap in a new table if anything changed. Never raises."""
        try:
            revision, plan, versions = self.source.current()
            seen = (revision, tuple(sorted((k, m, v) for k, (m, v) in versions.items())))
            if seen == self._seen:
                return False
            table = self._build(revision, plan, versions)
        except Exception as exc:  # keep serving the old table; report and retry next poll
            message = f"{type(exc).__name__}: {exc}"
            if message != self.last_error:
                log.error("deployment %s: cannot load its plan: %s", self.deployment, message)
            self.last_error = message
            self.permanent_exception = exc if is_permanent(exc) else None
            self.permanent_error = message if self.permanent_exception else None
            if self.permanent_error is not None:
                self._settled.set()
            return False
        self.table = table  # the swap: one atomic assignment
        self._seen = seen
        self._loaded.set()
        self._settled.set()
        self.last_error = self.permanent_error = self.permanent_exception = None
        log.info("deployment %s: serving revision %d: %s", self.deployment, revision,
                 ", ".join(f"{r.variant}={r.model.ref}" for r in table.all_routes))
        if self.on_swap is not None:
            self.on_swap(table)
        return True

    def _build(self, revision: int, plan: TrafficPlan,
               versions: dict[str, tuple[str, int]]) -> RoutingTable:
        def route(variant: str) -> Route:
            name, version = versions[variant]
            return Route(variant, self._served(ModelVersionRef(name, version), plan.key))

        routes = tuple(route(v.name) for v in plan.variants)
        shadow = route(plan.shadow.name) if plan.shadow else None
        router = Router([v.weight for v in plan.variants], plan.key, rng=self.rng)
        return RoutingTable(self.deployment, revision, plan, routes, router, shadow)

    def _served(self, ref: ModelVersionRef, key: str | None) -> ServedModel:
        cache_key = (ref, key)
        served = self._cache.get(cache_key)
        if served is not None:
            self._cache.move_to_end(cache_key)
            return served
        started = time.perf_counter()
        model = self.source.load(ref)
        served = load_served_model(ref, model, policy=self.policy,
                                   allowed_extra=(key,) if key else (),
                                   workspace=self.workspace)
        served.load_seconds = time.perf_counter() - started
        self._cache[cache_key] = served
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        if self.on_load is not None:
            self.on_load(served)
        return served
