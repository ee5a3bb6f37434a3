"""Prometheus metrics for a served deployment (names are listed in docs/serving.md and
used by deploy/grafana/ratchet-serving.json).

Each app has its own registry, so several apps can live in one process (tests, embedding).
With several uvicorn workers, ``PROMETHEUS_MULTIPROC_DIR`` is set by ``ratchet serve`` and
``/metrics`` aggregates every worker's files (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ratchet.serving.deployment_watcher import RoutingTable
    from ratchet.serving.served_model import ServedModel

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
OTHER_FIELD = "_other"  # the field label of values outside the served signatures
MAX_LABEL_CLASSES = 50  # more distinct labels than this are a regression, not classes


class ServingMetrics:
    def __init__(self, deployment: str) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # *_created series double the exposition for no use here
        self.deployment = deployment
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        version = ["deployment", "model", "version"]
        self.requests = Counter("ratchet_requests", "Requests answered, by model version and "
                                "status (ok, invalid, error).", [*version, "status"], registry=r)
        self.latency = Histogram("ratchet_request_latency_seconds", "Time from request "
                                 "arrival to response, by model version.", version,
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.validation_failures = Counter(
            "ratchet_validation_failures", "Rejected values, by field and reason.",
            ["deployment", "field", "reason"], registry=r)
        self.validation_flags = Counter(
            "ratchet_validation_flags", "Accepted but flagged values (unknown category, out of "
            "the training range), by field.", ["deployment", "field", "flag"], registry=r)
        self.predictions = Counter("ratchet_predictions", "Predicted class counts.",
                                   [*version, "label"], registry=r)
        self.prediction_value = Histogram("ratchet_prediction_value", "Distribution of "
                                          "predicted values (regression).", version, registry=r)
        self.inflight = Gauge("ratchet_inflight_requests", "Requests being answered now.",
                              ["deployment"], registry=r, multiprocess_mode="livesum")
        self.load_seconds = Gauge("ratchet_model_load_seconds", "Seconds to load and warm a "
                                  "model version.", version, registry=r,
                                  multiprocess_mode="max")
        self.model_info = Gauge("ratchet_model_info", "1 for each model version being served, "
                                "by variant.", [*version, "variant"], registry=r,
                                multiprocess_mode="livemax")
        self.log_dropped = Counter("ratchet_prediction_log_dropped", "Prediction log rows "
                                   "dropped because the buffer was full.", ["deployment"],
                                   registry=r)
        self.log_rows = Counter("ratchet_prediction_log_rows", "Prediction log rows written.",
                                ["deployment"], registry=r)
        self.shadow_disagreements = Counter(
            "ratchet_shadow_disagreements", "Rows where the shadow's prediction differed from "
            "the served one.", version, registry=r)
        # The newest monitor result of this deployment (ratchet monitor run), re-read by the
        # server every few seconds so that Prometheus scrapes drift and performance here.
        self.drift_score = Gauge("ratchet_drift_score", "Drift statistic per column from "
                                 "the newest monitor result.", ["deployment", "column", "test"],
                                 registry=r, multiprocess_mode="mostrecent")
        self.drift_share = Gauge("ratchet_drift_share", "Share of drifted columns in the "
                                 "newest monitor result.", ["deployment"], registry=r,
                                 multiprocess_mode="mostrecent")
        self.drift_detected = Gauge("ratchet_drift_detected", "1 if the newest monitor "
                                    "result's verdict is drift.", ["deployment"], registry=r,
                                    multiprocess_mode="mostrecent")
        self.performance = Gauge("ratchet_model_performance", "Performance in the newest "
                                 "monitor result: realized from feedback, or estimated.",
                                 ["deployment", "metric", "kind"], registry=r,
                                 multiprocess_mode="mostrecent")
        self._monitor_result: str | None = None
        self.inflight_now = self.inflight.labels(deployment)
        self._served_labels: set[tuple[str, str, str]] = set()
        self._fields: set[str] = {"body"}
        # labels() costs a lock and a dict lookup per call: cache the children we use.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self.deployment, *labels)
        return child

    # ------------------------------------------------------------------ per request
    def observe(self, model: ServedModel, status: str, seconds: float) -> None:
        name, version = model.ref.name, str(model.ref.version)
        self._child(self.requests, name, version, status).inc()
        if status == "ok":
            self._child(self.latency, name, version).observe(seconds)

    def observe_outputs(self, model: ServedModel, outputs: dict[str, list[Any]]) -> None:
        values = outputs.get("prediction")
        if not values:
            return
        name, version = model.ref.name, str(model.ref.version)
        if model.is_classifier and model.classes and len(model.classes) <= MAX_LABEL_CLASSES:
            if len(values) == 1:
                self._child(self.predictions, name, version, str(values[0])).inc()
                return
            for label, count in Counter(values).items():
                self._child(self.predictions, name, version, str(label)).inc(count)
        elif isinstance(values[0], int | float):
            child = self._child(self.prediction_value, name, version)
            for v in values:
                child.observe(v)

    def rejected(self, problems: list[dict[str, Any]]) -> None:
        for p in problems:
            field = str(p["loc"][-1]) if p.get("loc") else "body"
            # Label values come from a bounded set: a column the client invented (or a row
            # index) is "_other", so clients cannot create series at will.
            if field not in self._fields:
                field = OTHER_FIELD
            self.validation_failures.labels(self.deployment, field, p.get("type", "format")).inc()

    def flagged(self, counts: Counter[tuple[str, str]]) -> None:
        for (field, flag), n in counts.items():
            self.validation_flags.labels(self.deployment, field, flag).inc(n)

    # ------------------------------------------------------------------ model lifecycle
    def loaded(self, model: ServedModel) -> None:
        self.load_seconds.labels(self.deployment, model.ref.name,
                                 str(model.ref.version)).set(model.load_seconds)

    def swapped(self, table: RoutingTable) -> None:
        now = {(r.model.ref.name, str(r.model.ref.version), r.variant) for r in table.all_routes}
        for name, version, variant in self._served_labels - now:
            self.model_info.remove(self.deployment, name, version, variant)
        for name, version, variant in now:
            self.model_info.labels(self.deployment, name, version, variant).set(1)
        self._served_labels = now
        self._fields = {"body", *(n for r in table.all_routes for n in r.model.validator.names)}
        if table.plan.key:
            self._fields.add(table.plan.key)

    def monitor_result(self, result_id: str, result: dict[str, Any]) -> None:
        """Export a stored monitor result (once per result)."""
        if result_id == self._monitor_result:
            return
        self._monitor_result = result_id
        drift = result.get("drift") or {}
        for column in drift.get("columns", []):
            self.drift_score.labels(self.deployment, column["column"], column["test"]).set(
                column["statistic"])
        self.drift_share.labels(self.deployment).set(drift.get("share", 0.0))
        self.drift_detected.labels(self.deployment).set(result.get("verdict") == "drift")
        performance = result.get("performance") or {}
        for kind in ("metrics", "estimated"):
            for metric, value in (performance.get(kind) or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.performance.labels(
                        self.deployment, metric,
                        "realized" if kind == "metrics" else "estimated").set(value)

    # ------------------------------------------------------------------ exposition
    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
