"""What a running server holds: its :class:`ServingConfig` and :class:`ServerState` (the
watcher, inference service, micro-batcher, prediction log and metrics every route uses),
created on startup and closed on shutdown. The routes (``ratchet.serving.routes``) are
built over one ``ServerState``; ``app.create_app`` assembles them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ratchet.serving.access import AccessPolicy
from ratchet.serving.batching import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_WAIT_MS
from ratchet.serving.request_validation import ValidationPolicy

if TYPE_CHECKING:
    from ratchet.serving.access import TokenSet
    from ratchet.serving.batching import MicroBatcher
    from ratchet.serving.deployment_watcher import DeploymentWatcher, ModelSource
    from ratchet.serving.inference import InferenceService
    from ratchet.serving.prediction_log import PredictionLog
    from ratchet.serving.serving_metrics import ServingMetrics
    from ratchet.workspace import Workspace

log = logging.getLogger(__name__)
MONITOR_POLL_S = 5.0


@dataclass(frozen=True)
class ServingConfig:
    policy: ValidationPolicy = field(default_factory=ValidationPolicy)
    max_body_bytes: int = 16 * 1024 * 1024
    poll_interval_s: float = 1.0
    log_predictions: bool = True
    log_flush_interval_s: float = 1.0
    log_max_buffered_rows: int = 200_000
    # A worker accepts connections at once (/health/live answers while it loads); a
    # request that comes before the first model is loaded waits for it (up to this long),
    # so that with several workers none answers 503 while a sibling is ready.
    startup_wait_s: float = 120.0
    # Micro-batching: concurrent requests for one model version share one model call
    # (off: each request its own call, still on a worker thread).
    batching: bool = True
    batch_max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    batch_max_rows: int = DEFAULT_MAX_BATCH_ROWS
    access: AccessPolicy = field(default_factory=AccessPolicy)
    # Modules (``package.module`` or ``path/to/file.py``) that declare the on-demand
    # feature views of the models served: imported at startup, the only code the
    # feature store runs here (``ratchet serve --features-module``).
    features_modules: tuple[str, ...] = ()


class ServerState:
    """Everything a request handler needs, created on startup, closed on shutdown."""

    def __init__(self, deployment: str, source: ModelSource, config: ServingConfig,
                 workspace: Workspace | None) -> None:
        from ratchet.serving.deployment_watcher import DeploymentWatcher
        from ratchet.serving.inference import InferenceService
        from ratchet.serving.serving_metrics import ServingMetrics

        self.deployment = deployment
        self.config = config
        self.workspace = workspace
        self.metrics: ServingMetrics = ServingMetrics(deployment)
        self.log: PredictionLog | None = None
        if config.log_predictions and workspace is not None:
            from ratchet.serving.prediction_log import PredictionLog

            self.log = PredictionLog(
                workspace.settings.artifacts_uri,
                flush_interval_s=config.log_flush_interval_s,
                max_buffered_rows=config.log_max_buffered_rows,
                on_drop=self.metrics.log_dropped.labels(deployment).inc,
                on_flush=self.metrics.log_rows.labels(deployment).inc)
        self.service: InferenceService = InferenceService(deployment, self.metrics, self.log)
        from ratchet.serving.access import TokenSet
        from ratchet.serving.batching import MicroBatcher

        self.tokens: TokenSet | None = TokenSet.from_environment(config.access.token_file)
        self.batcher: MicroBatcher = MicroBatcher(
            max_wait_ms=config.batch_max_wait_ms,
            max_batch_rows=config.batch_max_rows if config.batching else 1)
        self._stopped = threading.Event()
        self.watcher: DeploymentWatcher = DeploymentWatcher(
            deployment, source, poll_interval_s=config.poll_interval_s, policy=config.policy,
            on_load=self.metrics.loaded, on_swap=self.metrics.swapped, workspace=workspace)

    def start(self) -> None:
        self.watcher.start()
        if self.workspace is not None:
            threading.Thread(target=self._export_monitor_results, daemon=True,
                             name="ratchet-monitor-gauges").start()

    def _export_monitor_results(self) -> None:
        """Every few seconds, the newest stored monitor result becomes gauges."""
        assert self.workspace is not None
        store = self.workspace.stores.monitor
        while True:
            try:
                latest = store.latest(self.deployment)
                if latest is not None:
                    self.metrics.monitor_result(latest.result_id, latest.result)
            except Exception as exc:  # the gauges are a convenience: never stop serving
                log.warning("deployment %s: cannot read monitor results: %s",
                            self.deployment, exc)
            if self._stopped.wait(MONITOR_POLL_S):
                return

    def stop(self) -> None:
        self._stopped.set()
        self.watcher.stop()
        self.batcher.close()
        self.service.close()
        if self.log is not None:
            self.log.close()
