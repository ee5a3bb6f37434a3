"""Run a monitor: a window of a deployment's prediction log against the model's training
data, stored, reported and alerted on.

Reference = the dataset version the served model was trained on, found through lineage
(model version → run → its input with role ``train``, else its only input). Current = the
window's logged inputs (shadow answers and failed requests left out). The result holds the
drift tests, a multivariate test, data quality, performance from feedback (and, for
classifiers, estimated from the logged probabilities), and histograms for the report.
When the verdict differs from the previous result's, a log line and an optional webhook
say so, with the report's location.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, NotFound
from ratchet.json_safe import dumps, json_safe
from ratchet.monitoring.drift import NUMERIC, column_kind
from ratchet.monitoring.performance import parse_window
from ratchet.monitoring.webhook import WebhookOutcome, post_json, validate_webhook
from ratchet.workspace import resolve as resolve_workspace

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.monitoring.estimation import Estimator
    from ratchet.packaging import LoadedModel
    from ratchet.registry import RegistryClient
    from ratchet.store.monitor_store import StoredMonitorResult
    from ratchet.workspace import Workspace

log = logging.getLogger(__name__)
MULTIVARIATE_MIN_ROWS = 100
PREDICTION_SAMPLE = 50_000
TOP_CATEGORIES = 20
OK, DRIFT, NO_DATA = "ok", "drift", "no data"


@dataclass(frozen=True)
class MonitorRun:
    result: dict[str, Any]
    stored: StoredMonitorResult | None
    report_html: Path | None
    report_json: Path | None
    previous_verdict: str | None
    alert: WebhookOutcome | None = None
    """The webhook post of a changed verdict (None: no change or no webhook)."""

    @property
    def verdict(self) -> str:
        return str(self.result["verdict"])

    @property
    def changed(self) -> bool:
        return self.previous_verdict is not None and self.previous_verdict != self.verdict


def run_monitor(deployment: str, *, window: str | timedelta = "1h",
                end: datetime | None = None, workspace: Workspace | None = None,
                reference: pd.DataFrame | str | None = None,
                report_dir: str | Path | None = None, webhook: str | None = None,
                store: bool = True) -> MonitorRun:
    """Evaluate ``deployment`` over ``[end - window, end)`` (end: now)."""
    from ratchet.serving.deployments import DeploymentClient

    if webhook is not None:  # up front: a bad URL must not surface only when alerting
        webhook = validate_webhook(webhook, "--webhook")
    _check_report_dir(report_dir)
    from ratchet.serving.prediction_query import predictions

    span = parse_window(window).to_pytimedelta()
    end = end.astimezone(UTC) if end is not None and end.tzinfo else \
        (end.replace(tzinfo=UTC) if end is not None else datetime.now(UTC))
    start = end - span
    client = resolve_workspace(workspace).client(DeploymentClient)
    logged = predictions(deployment, since=start, until=end, with_feedback=True,
                         workspace=client.workspace)
    return monitor_logged(deployment, logged, start=start, end=end, deployments=client,
                          reference=reference, report_dir=report_dir, webhook=webhook,
                          store=store)


def monitor_logged(deployment: str, logged: pd.DataFrame, *, start: datetime, end: datetime,
                   deployments: Any, reference: pd.DataFrame | str | None = None,
                   report_dir: str | Path | None = None, webhook: str | None = None,
                   store: bool = True, report: bool | str = True, multivariate: bool = True,
                   model: tuple[str, int] | None = None,
                   loader: Callable[[str, int], LoadedModel] | None = None,
                   references: MutableMapping[Any, Any] | None = None) -> MonitorRun:
    """Evaluate rows already read from the prediction log (``predictions(...,
    with_feedback=True)`` or a frame of the same shape, e.g. a backtest's simulated log)
    against the served model's training data. ``model``: (name, version) to judge (default:
    the deployment's primary). ``report``: write the HTML/JSON report (stored results
    get one unless False; ``"changed"``: only when the verdict changed, or the first).
    ``loader(name, version)``: where the model comes from (default: the registry, loaded
    afresh; a caller that judges the same version again passes a
    :class:`~ratchet.registry.model_cache.ModelCache`'s ``load``). ``references``: a
    mapping the caller keeps across runs (e.g. a dict), where each model version's
    reference (its training data, found by lineage) and the model's answers on it are
    kept, so that judging the same version again reads and predicts them once; only
    used when ``reference`` is None (a version's lineage never changes)."""


    if webhook is not None:
        webhook = validate_webhook(webhook, "webhook")
    _check_report_dir(report_dir)
    client = deployments
    if model is None:
        status = client.status(deployment)
        name, version = status.versions[status.plan.variants[0].name]
    else:
        name, version = model
    loaded = loader(name, version) if loader is not None else \
        client.registry.load(f"models:/{name}/{version}")
    if len(logged):
        logged = logged[(logged["variant"] != "shadow") & (logged["status"] == "ok")]
    inputs = (loaded.signature.input_names if loaded.signature is not None else
              [c.removeprefix("input.") for c in logged.columns if c.startswith("input.")])
    result: dict[str, Any] = {
        "deployment": deployment, "created_at": datetime.now(UTC).isoformat(),
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "model": {"name": name, "version": version}, "rows": len(logged),
        "reference": None, "drift": None, "quality": None, "performance": None,
        "distributions": {}}
    if len(logged) == 0:
        result["verdict"] = NO_DATA
    else:
        current = _current_inputs(logged, inputs)
        memo = references if reference is None else None
        key = ("reference", name, version, tuple(inputs))
        if memo is not None and key in memo:
            ref_frame, info = memo[key]
        else:
            ref_frame, info = _reference(client.registry, name, version, inputs, reference)
            if memo is not None:
                memo[key] = (ref_frame, info)
        result["reference"] = dict(info)
        _evaluate(result, loaded, ref_frame, current, logged, multivariate,
                  answers=None if memo is None else _AnswersMemo(memo, name, version),
                  estimator=_stored_estimator(client.registry, name, version, references))
    monitor_store = client.workspace.stores.monitor
    previous = monitor_store.latest(deployment)
    stored = None
    if store:
        stored = monitor_store.add(
            deployment, window_start=int(start.timestamp() * 1000),
            window_end=int(end.timestamp() * 1000), verdict=result["verdict"],
            rows=result["rows"], result=result)
    html_path = json_path = None
    if report == "changed":
        report = previous is None or previous.verdict != result["verdict"]
    if report and (report_dir is not None or store):
        history = [r.result for r in monitor_store.history(deployment, limit=50)
                   if stored is None or r.result_id != stored.result_id]
        html_path, json_path = _write_report(result, history, report_dir, client, stored)
        if stored is not None:
            monitor_store.set_report_path(stored.result_id, str(html_path))
    run = MonitorRun(result, stored, html_path, json_path,
                     previous.verdict if previous is not None else None)
    if run.changed:
        outcome = _alert(run, webhook)
        if outcome is not None:  # kept with the result, delivered or not
            run = replace(run, alert=outcome)
            result["alert"] = outcome.to_dict()
            if stored is not None:
                monitor_store.set_result(stored.result_id, result)
    return run


# ----------------------------------------------------------------------------- pieces
def _current_inputs(logged: pd.DataFrame, inputs: list[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: logged[f"input.{c}"].to_numpy() for c in inputs
                         if f"input.{c}" in logged.columns})


def _reference(registry: RegistryClient, name: str, version: int, inputs: list[str],
               given: pd.DataFrame | str | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    from ratchet.data.catalog import DataClient

    data = registry.workspace.client(DataClient)
    if given is not None and not isinstance(given, str):
        return given, {"dataset": None, "version": None, "rows": len(given)}
    if isinstance(given, str):
        dataset = data.get(given)
    else:
        run = registry.lineage(f"models:/{name}/{version}").run
        candidates = [] if run is None else list(run.inputs)
        trained = [i for i in candidates if i.role == "train"] or candidates
        if not trained or trained[0].version is None:
            raise NotFound(f"model {name} v{version} has no training dataset in its lineage; "
                           "log the data with ratchet.data.log inside the training run, or "
                           "pass a reference (--reference DATASET[@VERSION])")
        dataset = data.get(f"{trained[0].name}@{trained[0].version}")
    frame = dataset.to_pandas()
    missing = [c for c in inputs if c not in frame.columns]
    if missing:
        raise InvalidInput(f"reference {dataset.name}@{dataset.version} lacks the model's "
                           f"input column(s) {', '.join(missing)}")
    return frame, {"dataset": dataset.name, "version": dataset.version, "rows": len(frame)}


@dataclass
class _AnswersMemo:
    """Where ``_evaluate`` keeps the model's answers on its reference, per column set."""

    memo: MutableMapping[Any, Any]
    name: str
    version: int

    def key(self, columns: list[str]) -> tuple[Any, ...]:
        return ("answers", self.name, self.version, tuple(columns))


def _stored_estimator(registry: RegistryClient, name: str, version: int,
                      memo: MutableMapping[Any, Any] | None) -> Estimator | str | None:
    """The label-free estimator kept with the model version (``save_estimator``), the
    reason it cannot be used (text), or None. Only a found one is memoized: one may be
    stored later (the CT controller fits it when the version is gated)."""
    from ratchet.monitoring.estimation import load_estimator

    key = ("estimator", name, version)
    if memo is not None and key in memo:
        return memo[key]
    try:
        estimator = load_estimator(registry, name, version)
    except InvalidInput as exc:
        return str(exc)
    if estimator is not None and memo is not None:
        memo[key] = estimator
    return estimator


def _evaluate(result: dict[str, Any], model: LoadedModel, reference: pd.DataFrame,
              current: pd.DataFrame, logged: pd.DataFrame, multivariate: bool = True, *,
              answers: _AnswersMemo | None = None,
              estimator: Estimator | str | None = None) -> None:
    import numpy as np
    import pandas as pd

    from ratchet.monitoring.data_quality import quality_report
    from ratchet.monitoring.drift import dataset_drift
    from ratchet.monitoring.multivariate_drift import classifier_drift

    columns = [c for c in current.columns if c in reference.columns]
    frames_ref = reference[columns]
    frames_cur = current[columns]
    # Prediction drift: the model's answers on (a sample of) its training data vs live.
    drift_ref, drift_cur, prediction = frames_ref, frames_cur, None
    if "output.prediction" in logged.columns:
        # Rows with an infinite input are left out: models refuse them (data quality
        # reports them), as the drift tests leave the values out.
        key = answers.key(columns) if answers is not None else None
        if answers is not None and key in answers.memo:
            drift_ref = answers.memo[key]
        else:
            numeric = frames_ref.select_dtypes("number")
            usable = frames_ref[~np.isinf(numeric.to_numpy(dtype=float, na_value=np.nan)).any(
                axis=1)] if numeric.shape[1] else frames_ref
            sample = usable.sample(n=min(len(usable), PREDICTION_SAMPLE), random_state=0)
            predicted = pd.Series(np.asarray(model.predict(sample)), index=sample.index)
            # rows not sampled: null, left out
            drift_ref = frames_ref.assign(prediction=predicted)
            if answers is not None:
                answers.memo[key] = drift_ref
        prediction = "prediction"
        drift_cur = frames_cur.assign(prediction=logged["output.prediction"].to_numpy())
    drift = dataset_drift(drift_ref, drift_cur, columns=columns, prediction=prediction)
    report: dict[str, Any] = drift.to_dict()
    report["multivariate"] = (classifier_drift(frames_ref, frames_cur).to_dict()
                              if multivariate and len(frames_cur) >= MULTIVARIATE_MIN_ROWS
                              else None)
    result["drift"] = report
    result["quality"] = quality_report(frames_cur, model.signature, frames_ref).to_dict()
    result["performance"] = _performance(model, logged, estimator)
    result["distributions"] = {c: _distribution(frames_ref[c], frames_cur[c])
                               for c in columns}
    classifier = report["multivariate"]
    drifted = drift.drift or bool(classifier and classifier["drifted"])
    result["verdict"] = DRIFT if drifted else OK


def _performance(model: LoadedModel, logged: pd.DataFrame,
                 estimator: Estimator | str | None = None) -> dict[str, Any] | None:
    """Realized metrics of the labeled rows; estimated ones of all rows, by the model
    version's stored estimator when it has one (calibrated), else, for classifiers, the
    uncalibrated CBPE. ``estimator`` as text: why the stored one cannot be used."""
    from ratchet.monitoring import performance as perf

    classes = getattr(model.raw, "classes_", None)
    proba_columns = [f"output.proba_{c}" for c in classes] if classes is not None else []
    has_proba = bool(proba_columns) and all(c in logged.columns for c in proba_columns)
    labeled = logged[logged["feedback"].notna()] if "feedback" in logged.columns else \
        logged.iloc[0:0]
    out: dict[str, Any] = {"task": "classification" if classes is not None else "regression",
                           "labeled": len(labeled), "metrics": None, "estimated": None}
    if len(labeled):
        if classes is not None:
            proba = labeled[proba_columns].to_numpy(dtype=float) if has_proba else None
            out["metrics"] = perf.classification_metrics(
                labeled["feedback"].to_numpy(), labeled["output.prediction"].to_numpy(),
                proba, list(classes.tolist()))
        else:
            out["metrics"] = perf.regression_metrics(
                labeled["feedback"].to_numpy(dtype=float),
                labeled["output.prediction"].to_numpy(dtype=float))
    problem = estimator if isinstance(estimator, str) else None
    if estimator is not None and not isinstance(estimator, str):
        try:
            out["estimated"] = _estimate(estimator, classes, proba_columns if has_proba else
                                         None, logged)
        except InvalidInput as exc:
            problem = f"the stored estimator could not be applied: {exc}"
    if out["estimated"] is None and has_proba and classes is not None:
        uncalibrated = perf.estimate_classification_performance(
            logged[proba_columns].to_numpy(dtype=float), list(classes.tolist()))
        if problem:
            uncalibrated["note"] += f". Not calibrated because {problem}"
        out["estimated"] = uncalibrated
    elif out["estimated"] is None and problem:  # a regressor: no estimate without one
        out["estimated"] = {"n": len(logged), "estimated": True, "calibrated": False,
                            "note": f"not estimated because {problem}"}
    if out["metrics"] is None and out["estimated"] is None:
        return None
    return json_safe(out)


def _estimate(estimator: Estimator, classes: Any, proba_columns: list[str] | None,
              logged: pd.DataFrame) -> dict[str, Any] | None:
    """The stored estimator's estimate of the logged rows (None: it does not fit this
    model's task); InvalidInput when it does not match the model's outputs or inputs."""
    import pandas as pd

    from ratchet.monitoring.estimation import CBPE
    from ratchet.packaging.labels import plain

    if isinstance(estimator, CBPE):
        if classes is None or proba_columns is None:
            return None
        if [repr(plain(c)) for c in classes] != [repr(c) for c in estimator.classes]:
            raise InvalidInput(f"its classes {list(estimator.classes)!r} are not the "
                               f"model's {[plain(c) for c in classes]!r}")
        return estimator.estimate(logged[proba_columns].to_numpy(dtype=float),
                                  logged["output.prediction"].to_numpy()
                                  if "output.prediction" in logged.columns else None)
    if classes is not None or "output.prediction" not in logged.columns:
        return None
    inputs = pd.DataFrame({c: logged[f"input.{c}"].to_numpy() for c in estimator.features[:-1]
                           if f"input.{c}" in logged.columns})
    return estimator.estimate(inputs, logged["output.prediction"].to_numpy())


def _distribution(reference: pd.Series, current: pd.Series) -> dict[str, Any]:
    from ratchet.monitoring.histograms import column_histogram

    return column_histogram(reference, current, numeric=column_kind(reference) == NUMERIC)


def _check_report_dir(report_dir: str | Path | None) -> None:
    """Reports are local files (the HTML loads a plotly.js beside it). A URL would become
    a local folder named after its scheme (Path("s3://b/r") is "s3:/b/r")."""
    if report_dir is not None and re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", str(report_dir)):
        raise InvalidInput(
            f"report directory {str(report_dir)!r} is a URL; reports are written to a local "
            "directory: give a path, and copy it to object storage afterwards if needed")


def _write_report(result: dict[str, Any], history: list[dict[str, Any]],
                  report_dir: str | Path | None, client: Any,
                  stored: StoredMonitorResult | None) -> tuple[Path, Path]:
    from ratchet.atomic import write_atomic
    from ratchet.monitoring.report_html import SHARED, render_report, write_report

    directory = Path(report_dir) if report_dir is not None else \
        client.registry.tracking.settings.home / "reports" / result["deployment"]
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(result["created_at"]).strftime("%Y%m%dT%H%M%SZ")
    stem = f"{stamp}-{stored.result_id[-8:]}" if stored is not None else stamp
    html_path, json_path = directory / f"{stem}.html", directory / f"{stem}.json"
    write_atomic(json_path, dumps(result, indent=2))
    write_report(html_path, render_report(result, history, plotly_js=SHARED))
    return html_path, json_path


def _alert(run: MonitorRun, webhook: str | None) -> WebhookOutcome | None:
    report = run.report_html.resolve().as_uri() if run.report_html else None
    message = (f"monitor {run.result['deployment']}: verdict {run.previous_verdict!r} -> "
               f"{run.verdict!r} (window {run.result['window']['start']} .. "
               f"{run.result['window']['end']}); report: {report}")
    log.warning(message)
    if webhook is None:
        return None
    return post_json(webhook, {"deployment": run.result["deployment"], "verdict": run.verdict,
                               "previous": run.previous_verdict,
                               "window": run.result["window"], "report": report,
                               "text": message},
                     what=f"monitor {run.result['deployment']}")


def list_monitor_results(deployment: str, *, limit: int | None = 20,
                         workspace: Workspace | None = None) -> list[StoredMonitorResult]:
    """The stored monitor results of ``deployment``, oldest first (the newest ``limit``;
    None: all). Each has its verdict, window, row count and report paths."""
    from ratchet.names import deployment_name

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise InvalidInput(f"limit must be a whole number >= 1 or None, got {limit!r}")
    return resolve_workspace(workspace).stores.monitor.history(deployment_name(deployment),
                                                               limit=limit)


__all__ = ["MonitorRun", "list_monitor_results", "monitor_logged", "run_monitor"]

