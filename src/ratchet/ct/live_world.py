"""The controller's world when it runs for real: the wall clock, the deployment's
prediction log (with feedback), and monitor runs that are stored, exported and reported.
Model versions are loaded once (``models``, shared with the controller's gate and canary
guard) instead of once per monitor run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ratchet.clock import now_ms
from ratchet.registry.model_cache import ModelCache

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.ct.policy import CTPolicy
    from ratchet.serving.deployments import DeploymentClient


class LiveWorld:
    def __init__(self, policy: CTPolicy, deployments: DeploymentClient, *,
                 clock: Callable[[], int] | None = None, webhook: str | None = None,
                 trust: bool = False) -> None:
        self.policy = policy
        self.deployments = deployments
        self.clock = clock or now_ms
        self.webhook = webhook
        self.models = ModelCache(deployments.registry, trust=trust)
        self._reader: Any = None

    def now_ms(self) -> int:
        return self.clock()

    def log_now_ms(self) -> int:
        return now_ms()  # the server stamps its log with the wall clock

    def logged(self, since_ms: int) -> pd.DataFrame:
        from ratchet.serving.prediction_query import LogReader

        if self._reader is None:  # one reader for every tick: each log file is read once
            self._reader = LogReader(
                self.policy.deployment_name, workspace=self.deployments.workspace,
                horizon_ms=self._horizon_ms())
        return self._reader.read(since_ms)

    def _horizon_ms(self) -> int:
        """How long the reader keeps rows: the lookback (30 days without one: reads
        reaching further, a low-traffic log's, go to the log files) and an hour."""
        lookback = self.policy.data.lookback
        days = lookback.total_seconds() / 86_400 if lookback is not None else 30
        return int(days * 86_400_000) + 3_600_000

    def monitor(self, window: pd.DataFrame, model: tuple[str, int]) -> dict[str, Any]:
        from ratchet.monitoring.monitor import monitor_logged

        times = window["timestamp"]
        start = times.min().to_pydatetime() if len(window) else datetime.now(UTC)
        end = times.max().to_pydatetime() if len(window) else start
        run = monitor_logged(self.policy.deployment_name, window, start=start, end=end,
                             deployments=self.deployments,
                             webhook=self.webhook, report="changed", model=model,
                             multivariate=self.policy.monitor.multivariate,
                             loader=self.models.load)
        return run.result
