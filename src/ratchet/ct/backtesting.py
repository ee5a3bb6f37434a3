"""Policy backtesting: replay a labeled history through the same controller, with a
simulated clock and a simulated server, and compare it with never retraining, retraining
on a fixed schedule, and two naive baselines.

The rows before ``start`` train the first champion (with the policy's own pipeline). From
``start`` on, time advances one ``tick`` at a time: the rows of the tick are answered as
the deployment's current plan says (primary, shadow copy, canary share — a canary that
raises is answered by the primary, as the server does), their labels become visible
``label_delay`` later, and then the controller ticks, exactly as ``ratchet controller``
would. The registry, deployments, datasets and events live in a scratch store: in
``work_dir`` when given (kept, so the whole timeline can be inspected afterwards), else in a
temporary folder that is removed when the backtest ends, also when it fails (each run
writes 1-20 MB of datasets and models there).

The model's inputs are every column of the history except the time and the label, unless
``features`` (exactly these) or ``drop`` (all but these) says otherwise.

Accuracy is reported per period of the replay: calendar years, quarters or months
(``period="year"``), or ``period`` long (a duration); an edge period covering under half of
one joins its neighbour, so a handful of rows never makes a point of its own. By default
the replay is split into ``PERIODS`` equal periods.

"Yesterday's label" answers each row with the newest label a real system would have at the
row's time: a label arrives ``label_delay`` after its row's time, so with a 7-day delay it
is the label of a week ago, not the previous row's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.ct.backtest_record import (
    BACKTEST_EXPERIMENT,
    BACKTEST_METRIC,
    BACKTEST_REPORT,
    BACKTEST_RESULT,
    BACKTEST_TAG,
)
from ratchet.ct.controller import CHAMPION, Controller, epoch_ms, run_training
from ratchet.ct.policy import CTPolicy
from ratchet.errors import InvalidInput, RatchetError, Untrusted

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.config import Settings
    from ratchet.packaging import LoadedModel
    from ratchet.registry import RegistryClient
    from ratchet.registry.model_cache import ModelCache
    from ratchet.serving.batching import MicroBatcher
    from ratchet.serving.deployment_watcher import RoutingTable
    from ratchet.serving.deployments import DeploymentClient
    from ratchet.serving.request_validation import ValidationPolicy
    from ratchet.serving.served_model import ModelVersionRef
    from ratchet.serving.traffic_plan import TrafficPlan
    from ratchet.workspace import Workspace

log = logging.getLogger(__name__)
LOOP, NEVER, SCHEDULED, MAJORITY, YESTERDAY = (
    "loop", "never retrained", "fixed schedule", "majority class", "yesterday's label")
PERIODS = 24          # equal periods over the replay, unless a period length is given
CALENDAR_PERIODS = ("year", "quarter", "month")
DAY_MS = 86_400_000
ID_DIGITS = 9         # request ids r000000042: their text order is the replay's order


@dataclass
class BacktestResult:
    policy: CTPolicy
    summary: list[dict[str, Any]]                 # one row per strategy
    periods: dict[str, list[tuple[str, float | None]]]  # strategy -> (period, accuracy)
    events: list[dict[str, Any]]
    promotions: list[dict[str, Any]]              # each promotion, judged on what followed
    home: Path | None                             # the scratch store (None: removed)
    seconds: float
    rows: int

    def strategy(self, name: str) -> dict[str, Any]:
        return next(s for s in self.summary if s["strategy"] == name)

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.to_dict(), "rows": self.rows,
                "seconds": round(self.seconds, 2), "summary": self.summary,
                "periods": {k: [list(p) for p in v] for k, v in self.periods.items()},
                "promotions": self.promotions, "events": self.events,
                "home": str(self.home) if self.home is not None else None}

    def to_markdown(self) -> str:
        lines = ["| strategy | accuracy | retrains | promotions | rejected | rolled back |",
                 "|---|---:|---:|---:|---:|---:|"]
        for s in self.summary:
            lines.append(f"| {s['strategy']} | {s['accuracy']:.4f} | {s['retrains']} | "
                         f"{s['promotions']} | {s['rejected']} | {s['rolled_back']} |")
        return "\n".join(lines)

    def write_html(self, path: str | Path, title: str = "ratchet backtest") -> Path:
        """One self-contained page (plotly.js inlined): accuracy per period with the
        promotions and rollbacks marked, the summary and the timeline."""
        from ratchet.monitoring.report_html import render_timeline_report, write_report

        page = render_timeline_report(
            title, self.periods, self.events, self.summary, metric="accuracy",
            note=f"{self.rows} rows replayed; the loop ran the policy's own triggers, gate "
                 "and rollout with a simulated clock. Each point is the accuracy of one "
                 "period, drawn from its first day.")
        return write_report(path, page)

    def record(self, *, experiment: str = BACKTEST_EXPERIMENT, name: str | None = None,
               report: bool = True, workspace: Workspace | None = None) -> str:
        """Record this backtest as a run of ``experiment`` in ``workspace`` (default: the
        ambient one) and return its id: tagged ``BACKTEST_TAG`` = the policy's model, with
        ``to_dict()`` as ``BACKTEST_RESULT``, the HTML report as ``BACKTEST_REPORT``
        (``report=True``) and each strategy's accuracy as ``backtest.accuracy.<strategy>``.
        The dashboard shows it at ``/ui/backtests/<run id>``. The run is created on its own,
        not as the caller's active run (recording inside another run does not nest)."""
        from ratchet.json_safe import dumps
        from ratchet.tracking.client import TrackingClient
        from ratchet.workspace import resolve

        chosen = recording_experiment(experiment, workspace)
        tracking = resolve(workspace).client(TrackingClient)
        metrics = backtest_metrics(self.summary)
        model = self.policy.model
        with tempfile.TemporaryDirectory(prefix="ratchet-backtest-record-") as tmp:
            folder = Path(tmp)
            (folder / Path(BACKTEST_RESULT).name).write_text(dumps(self.to_dict()),
                                                             encoding="utf-8")
            if report:
                self.write_html(folder / Path(BACKTEST_REPORT).name,
                                title=f"ratchet backtest: {model}")
            run = tracking.create_run(chosen, name=name if name is not None else
                                      f"backtest of {model}", tags={BACKTEST_TAG: model})
            try:
                tracking.log_artifacts(run.run_id, folder, Path(BACKTEST_RESULT).parent.name)
                if metrics:
                    tracking.log_metrics(run.run_id, metrics)
            except BaseException as exc:
                tracking.end_run(run.run_id, "failed", error=f"{type(exc).__name__}: {exc}")
                raise
        tracking.end_run(run.run_id, "finished")
        return run.run_id


def recording_experiment(experiment: str, workspace: Workspace | None = None) -> str:
    """The experiment a backtest is recorded into, made now if new: a bad name, a
    workspace that cannot be written (a home that is not a writable folder, a token that
    may only read) are clear errors here, before a replay or a report is drawn."""
    from ratchet.names import experiment_name
    from ratchet.tracking.client import TrackingClient
    from ratchet.workspace import resolve

    chosen = experiment_name(experiment)
    resolve(workspace).client(TrackingClient).store.get_or_create_experiment(chosen)
    return chosen


def strategy_metric(strategy: str) -> str:
    """The metric key of a strategy's accuracy: ``backtest.accuracy.`` and the strategy's
    name in lower case, apostrophes dropped, other runs of non-alphanumerics as ``_``
    (``never retrained`` → ``backtest.accuracy.never_retrained``, ``fixed schedule
    (500 rows)`` → ``...fixed_schedule_500_rows``, ``yesterday's label`` →
    ``...yesterdays_label``)."""
    import re

    slug = re.sub(r"[^a-z0-9]+", "_", strategy.lower().replace("'", "")).strip("_")
    return BACKTEST_METRIC + (slug or "strategy")


def backtest_metrics(summary: Sequence[dict[str, Any]]) -> dict[str, float]:
    """One metric per summary row with an accuracy (a replay with no rows has none)."""
    metrics: dict[str, float] = {}
    for row in summary:
        key = strategy_metric(str(row["strategy"]))
        if key in metrics:
            raise InvalidInput(f"two strategies share the metric {key!r}: rename one")
        if row.get("accuracy") is not None:
            metrics[key] = float(row["accuracy"])
    return metrics


class SimulatedWorld:
    """A server, a prediction log and a clock, in memory.

    Requests are answered by the live server's own code: the deployment's routing table
    (``DeploymentWatcher``: its plan and the versions its aliases point at, re-read before
    each batch), ``InferenceService.answer_async`` (routing — sticky with a key —, request
    validation, a failing canary answered by the primary, the shadow, the prediction log's
    rows and columns, probabilities included) and the micro-batcher, one request per row.
    What it logs goes to a :class:`~ratchet.serving.prediction_sink.MemoryPredictionLog`;
    the labels are revealed ``label_delay_ms`` after their row's time. Each model version
    is loaded once (``models``, shared with the monitor and the controller's guards). Only
    the clock and the feedback are simulated. Extra columns a history holds beside the
    model's inputs are ignored (as batch scoring does), not refused (``validation``: the
    server's validation policy to answer with instead).

    The log has a clock of its own, as live (the server stamps rows with the wall clock):
    ``log_offset_ms`` after the replay's. The prediction log holds no time before 1970, so
    a history that starts earlier is logged that much later (whole days)."""

    def __init__(self, policy: CTPolicy, deployments: DeploymentClient, inputs: list[str],
                 label_delay_ms: int, seed: int = 0, *, models: ModelCache | None = None,
                 log_offset_ms: int = 0, validation: ValidationPolicy | None = None) -> None:
        from ratchet.registry.model_cache import ModelCache
        from ratchet.serving.deployment_watcher import DeploymentWatcher
        from ratchet.serving.inference import InferenceService
        from ratchet.serving.prediction_sink import MemoryPredictionLog
        from ratchet.serving.request_validation import ValidationPolicy

        self.policy = policy
        self.deployments = deployments
        self.inputs = inputs
        self.label_delay_ms = label_delay_ms
        self.log_offset_ms = log_offset_ms
        self.now = 0
        self.models = models if models is not None else ModelCache(deployments.registry,
                                                                   capacity=None)
        self.sink = MemoryPredictionLog()
        self._references: dict[Any, Any] = {}  # the monitor's, per model version
        self.service = InferenceService(policy.deployment_name, None, self.sink,
                                        shadow_inline=True)
        self._random = random.Random(seed)
        self._watcher = DeploymentWatcher(
            policy.deployment_name, _CachedSource(policy.deployment_name, deployments,
                                                  self.models),
            policy=validation or ValidationPolicy(extra_columns="ignore"), cache_size=16,
            rng=self._random)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batcher: MicroBatcher | None = None
        self._parts: list[pd.DataFrame] = []
        self._log: pd.DataFrame | None = None
        self.served: list[pd.DataFrame] = []   # what each caller got: time, label, answer
        self.rejected = 0                      # requests refused by validation (422)

    def close(self) -> None:
        """Stop the micro-batcher's threads and the event loop (idempotent)."""
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        self.service.close()

    # ------------------------------------------------------------------ the World protocol
    def now_ms(self) -> int:
        return self.now

    def log_now_ms(self) -> int:
        return self.now + self.log_offset_ms

    def logged(self, since_ms: int) -> pd.DataFrame:
        """The log's rows from ``since_ms`` (log clock) to now, as ``predictions(...,
        with_feedback=True)`` returns them: ``feedback`` where the label has arrived."""
        import numpy as np
        import pandas as pd

        if self._log is None:
            self._log = pd.concat(self._parts, ignore_index=True) if self._parts else \
                _empty_log()
            self._parts = [self._log] if len(self._log) else []
        log = self._log
        t = log["_t"].to_numpy()
        low = since_ms - self.log_offset_ms
        if len(t) < 2 or bool((t[1:] >= t[:-1]).all()):  # in time order (each tick's is)
            rows = log.iloc[int(np.searchsorted(t, low, side="left")):
                            int(np.searchsorted(t, self.now, side="right"))]
        else:
            rows = log[(t >= low) & (t <= self.now)]
        t = rows["_t"].to_numpy()
        visible = t + self.label_delay_ms <= self.now
        out = rows.drop(columns=["_t", "_label"])
        out["feedback"] = np.where(visible, rows["_label"].to_numpy(dtype=object), None)
        out["feedback_at"] = pd.to_datetime(np.where(
            visible, t + self.label_delay_ms + self.log_offset_ms, np.nan), unit="ms",
            utc=True)
        return out

    def monitor(self, window: pd.DataFrame, model: tuple[str, int]) -> dict[str, Any]:
        from ratchet.monitoring.monitor import monitor_logged

        times = window["timestamp"]
        return monitor_logged(self.policy.deployment_name, window,
                              start=times.min().to_pydatetime(),
                              end=times.max().to_pydatetime(), deployments=self.deployments,
                              store=False, report=False, model=model,
                              multivariate=self.policy.monitor.multivariate,
                              loader=self.models.load, references=self._references).result

    # ------------------------------------------------------------------ the server
    def model(self, version: int) -> Any:
        """Version ``version`` of the policy's model, loaded once."""
        return self.models.load(self.policy.model, version)

    def serve(self, batch: pd.DataFrame, times: Any, labels: Any, first_id: int) -> None:
        """Answer ``batch`` (one request per row, arriving at ``times``) as the deployment's
        plan says now, through the serving code."""
        import numpy as np
        import pandas as pd

        from ratchet.errors import ModelFailed
        from ratchet.serving.request_formats import ParsedRequest
        from ratchet.serving.request_validation import RequestInvalid

        n = len(batch)
        if not n:
            return
        table = self._table()
        columns = _request_columns(batch[[c for c in self.inputs if c in batch.columns]])
        ids = [f"r{first_id + i:0{ID_DIGITS}d}" for i in range(n)]
        arrivals = [int(t) + self.log_offset_ms for t in times]
        requests = [ParsedRequest({c: [v[i]] for c, v in columns.items()}, 1)
                    for i in range(n)]
        service = self.service
        if self._loop is None or self._batcher is None:
            from ratchet.serving.batching import MicroBatcher

            self._loop = asyncio.new_event_loop()
            self._batcher = MicroBatcher()
        predict = self._batcher.predict

        async def one(i: int, started: float) -> Any:
            try:
                return await service.answer_async(table, requests[i], ids[i], arrivals[i],
                                                  started, predict)
            except (RequestInvalid, ModelFailed) as exc:  # a 422 / a 500: no answer
                return exc

        async def every() -> list[Any]:
            started = time.perf_counter()  # the batch arrives at once, as in one poll
            return await asyncio.gather(*(one(i, started) for i in range(n)))

        answers = self._loop.run_until_complete(every())
        answer = np.empty(n, dtype=object)
        served_version = np.zeros(n, dtype=np.int64)
        for i, got in enumerate(answers):
            if isinstance(got, Exception):
                self.rejected += isinstance(got, RequestInvalid)
                continue
            answer[i] = got.outputs.get("prediction", [None])[0]
            served_version[i] = got.model.ref.version
        logged = self.sink.drain()
        label_of = dict(zip(ids, np.asarray(labels, dtype=object), strict=True))
        logged["_t"] = epoch_ms(logged["timestamp"]).to_numpy(dtype=np.int64) - \
            self.log_offset_ms  # the replay's time
        logged["_label"] = pd.Series([label_of.get(r) for r in logged["request_id"]],
                                     index=logged.index, dtype=object)
        if len(logged):
            self._parts.append(logged)
            self._log = None
        self.served.append(pd.DataFrame({"_t": times, "label": labels, "answer": answer,
                                         "version": served_version}))

    def _table(self) -> RoutingTable:
        """The routing table of the deployment's plan as it stands (models loaded once)."""
        self._watcher.refresh()
        table = self._watcher.table
        if table is None:
            raise InvalidInput(f"deployment {self.policy.deployment_name!r} cannot be served: "
                               f"{self._watcher.last_error}")
        return table


class _CachedSource:
    """The deployment's plan from the (scratch) store; its models from the shared cache."""

    def __init__(self, deployment: str, deployments: DeploymentClient,
                 models: ModelCache) -> None:
        self.deployment, self.deployments, self.models = deployment, deployments, models

    def current(self) -> tuple[int, TrafficPlan, dict[str, tuple[str, int]]]:
        status = self.deployments.status(self.deployment)
        return status.revision, status.plan, status.versions

    def load(self, ref: ModelVersionRef) -> LoadedModel:
        return self.models.load(ref.name, ref.version)


def _request_columns(batch: pd.DataFrame) -> dict[str, list[Any]]:
    """Each column as a JSON client would send it: missing values null, times as ISO text."""
    import numpy as np
    import pandas as pd

    out: dict[str, list[Any]] = {}
    for name in batch.columns:
        column = batch[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype) or \
                pd.api.types.is_datetime64_any_dtype(column.dtype):
            out[str(name)] = [None if pd.isna(v) else v.isoformat() for v in column]
        elif isinstance(column.dtype, np.dtype) and column.dtype.kind in "fiub":
            values = column.to_numpy()
            listed = values.tolist()  # Python numbers, as astype(object) gives them
            if values.dtype.kind == "f":
                for i in np.flatnonzero(np.isnan(values)).tolist():
                    listed[i] = None
            out[str(name)] = listed
        else:
            values = column.astype(object)
            out[str(name)] = values.where(column.notna().to_numpy(), None).tolist()
    return out


def _empty_log() -> pd.DataFrame:
    from ratchet.serving.prediction_sink import MemoryPredictionLog

    frame = MemoryPredictionLog().drain()
    frame["_t"] = frame["row"].astype("int64")
    frame["_label"] = frame["row"].astype(object)
    return frame


@dataclass
class _Replay:
    history: pd.DataFrame
    times: Any           # epoch ms per row
    labels: Any
    start: int           # index of the first replayed row
    inputs: list[str] = field(default_factory=list)


def backtest(policy: CTPolicy, history: pd.DataFrame, *, time_column: str,
             label: str | None = None, start: Any, tick: str | timedelta = "30d",
             label_delay: str | timedelta = "1d", schedule: str | timedelta | None = "365d",
             period: str | timedelta | None = None, work_dir: str | Path | None = None,
             progress: Callable[[int, int], None] | None = None,
             schedule_rows: Sequence[int] = (), features: Sequence[str] | str | None = None,
             drop: Sequence[str] | str | None = None, trust: bool = False) -> BacktestResult:
    """Replay ``history`` (inputs, ``label`` — default the policy's data.label — and
    ``time_column``) from ``start`` (a time, or an int: the row where replay begins).
    The fixed schedule retrains every ``schedule`` on the newest ``data.rows`` labeled rows
    (and, for each of ``schedule_rows``, on that many: more baselines). ``period``: a
    reported period, ``"year"``, ``"quarter"``, ``"month"`` (calendar, UTC) or a duration
    (default: the replay in ``PERIODS`` equal periods). ``features``: the model's inputs
    (default: every column except ``time_column`` and the label); or ``drop``: columns
    that are not inputs; not both. ``trust=True`` loads models whose format runs code when
    loaded (cloudpickle): only for a pipeline you trust. ``work_dir``: keep the scratch
    store there (default: a temporary folder, removed; in memory, ``/dev/shm``, unless
    ``TMPDIR`` names another place: nothing in it needs to survive a power loss, so its
    writes need not wait for the disk)."""
    import os

    saved = {k: os.environ.get(k) for k in ("RATCHET_HOME", "RATCHET_DB", "RATCHET_ARTIFACTS")}
    scratch = None
    try:
        if work_dir is None:
            scratch = Path(tempfile.mkdtemp(prefix="ratchet-backtest-", dir=_memory_dir()))
        result = _backtest(policy, history, time_column=time_column, label=label,
                           start=start, tick=tick, label_delay=label_delay,
                           schedule=schedule, period=period,
                           work_dir=work_dir if scratch is None else scratch,
                           progress=progress, schedule_rows=schedule_rows,
                           features=features, drop=drop, trust=trust)
        if scratch is not None:
            result.home = None
        return result
    finally:  # pipeline steps point the process's fluent client at the scratch store
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _backtest(policy: CTPolicy, history: pd.DataFrame, *, time_column: str,
              label: str | None, start: Any, tick: str | timedelta,
              label_delay: str | timedelta, schedule: str | timedelta | None,
              period: str | timedelta | None, work_dir: str | Path | None,
              progress: Callable[[int, int], None] | None,
              schedule_rows: Sequence[int], features: Sequence[str] | str | None,
              drop: Sequence[str] | str | None, trust: bool) -> BacktestResult:
    from ratchet.durations import duration_ms
    from ratchet.registry import RegistryClient
    from ratchet.serving.deployments import DeploymentClient
    from ratchet.workspace import Workspace

    began = time.perf_counter()
    label = label or policy.data.label
    replay = _prepare(history, time_column, label, start, features, drop)
    tick_ms = duration_ms(tick, "tick", at_least=timedelta(seconds=1))
    delay_ms = duration_ms(label_delay, "label_delay")
    period_length = parse_period(period)  # refused before any work, as the rest
    assert work_dir is not None  # backtest() makes a temporary one
    home = Path(work_dir)
    every = None if schedule is None else \
        duration_ms(schedule, "schedule", at_least=timedelta(seconds=1))
    workspace = Workspace(_scratch_settings(home))
    registry = workspace.client(RegistryClient)
    deployments = workspace.client(DeploymentClient)
    # The fixed schedules retrain ~40 times on their own: in a second process, with a
    # scratch store of their own, while this one replays the loop (the loop's version
    # numbers stay its own).
    baselines = None if every is None else _Baselines(
        policy, replay, label, every, delay_ms,
        list(dict.fromkeys((policy.data.rows, *schedule_rows))), home / "schedules", trust)
    try:
        with _one_blas_thread():
            return _replay(policy, replay, label, tick_ms, delay_ms, period_length, home,
                           registry, deployments, progress, baselines, began, trust)
    finally:
        if baselines is not None:
            baselines.close()


_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """The replay's fits and predictions are small and run beside the baselines' process:
    BLAS/OpenMP threads on top only spin (measured: 3x the CPU per rainfall training,
    for the same model)."""
    # threadpoolctl limits only the libraries already loaded: load NumPy's, SciPy's and
    # scikit-learn's (OpenBLAS, OpenMP) first.
    import scipy.linalg  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _memory_dir() -> str | None:
    """``/dev/shm`` (a RAM file system: an fsync costs nothing) when it is usable and
    ``TMPDIR`` chooses no other place; else None (the temporary directory)."""
    import os

    if os.environ.get("TMPDIR"):
        return None
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def _scratch_settings(home: Path) -> Settings:
    """A scratch store of its own: not the project's ratchet.toml db/artifacts."""
    from ratchet.config import load_settings

    return replace(load_settings(env={"RATCHET_HOME": str(home)}),
                   db_url=f"sqlite:///{home / 'ratchet.db'}",
                   artifacts_uri=str(home / "artifacts"), tracking_uri=None)


def _replay(policy: CTPolicy, replay: _Replay, label: str, tick_ms: int, delay_ms: int,
            period: int | str | None, home: Path, registry: RegistryClient,
            deployments: DeploymentClient, progress: Callable[[int, int], None] | None,
            baselines: _Baselines | None, began: float, trust: bool) -> BacktestResult:
    import numpy as np
    import pandas as pd

    from ratchet.registry.model_cache import ModelCache
    from ratchet.serving.traffic_plan import TrafficPlan

    initial = replay.history.iloc[:replay.start]
    first = train_with_pipeline(policy, registry, initial[[*replay.inputs, label]], "initial")
    registry.set_alias(policy.model, CHAMPION, first, reason="backtest: initial model")
    deployments.ensure(policy.deployment_name,
                       TrafficPlan.single(f"{policy.model}@{CHAMPION}"))
    first_ms = int(replay.times[0])
    # One cache for serving, the monitor, the gate, the guards and the judging: the trust
    # given (or not) applies to every load.
    models = ModelCache(registry, trust=trust, capacity=None)
    world = SimulatedWorld(policy, deployments, replay.inputs, delay_ms, models=models,
                           log_offset_ms=-(first_ms // DAY_MS) * DAY_MS if first_ms < 0 else 0)
    try:
        world.model(first)  # a model that needs trust: refused now, in words, not mid-replay
    except Untrusted as exc:
        world.close()
        raise Untrusted(f"{exc} The backtest trained it with the policy's own pipeline: "
                        "give trust=True (ratchet ct backtest --trust) only if you trust "
                        "that pipeline") from None
    controller = Controller(policy, world, holder="backtest", lease_ms=3_600_000,
                            actor="backtest")
    n = len(replay.history)
    cursor = replay.start
    edge = int(replay.times[replay.start])
    try:
        while cursor < n:
            edge += tick_ms
            stop = int(np.searchsorted(replay.times, edge, side="left"))
            world.serve(replay.history.iloc[cursor:stop][replay.inputs],
                        replay.times[cursor:stop], replay.labels[cursor:stop], cursor)
            world.now = edge
            cursor = stop
            controller.tick()
            if progress is not None:
                progress(cursor - replay.start, n - replay.start)
    finally:
        world.close()
    controller.release()
    served = pd.concat(world.served, ignore_index=True)
    answers = {LOOP: served["answer"].to_numpy()}
    answers[NEVER] = np.asarray(world.model(first).predict(
        replay.history.iloc[replay.start:][replay.inputs]))
    scheduled_retrains: dict[str, int] = {}
    if baselines is not None:
        for rows, (answer, retrains) in baselines.result().items():
            name = SCHEDULED if rows == policy.data.rows else f"{SCHEDULED} ({rows} rows)"
            answers[name], scheduled_retrains[name] = answer, retrains
    answers[MAJORITY] = _running_majority(replay, delay_ms)
    answers[YESTERDAY] = newest_known_labels(replay.times, replay.labels, replay.start,
                                             delay_ms)
    truth = replay.labels[replay.start:]

    events = registry.workspace.stores.ct_events.history(policy.model)
    counts = {k: sum(e.kind == k for e in events) for k in ("retrained", "promoted",
                                                               "rejected", "rolled-back")}
    summary = []
    for name, predicted in answers.items():
        row = {"strategy": name, "accuracy": _accuracy(truth, predicted),
               "retrains": 0, "promotions": 0, "rejected": 0, "rolled_back": 0}
        if name == LOOP:
            row.update(retrains=counts["retrained"], promotions=counts["promoted"],
                       rejected=counts["rejected"], rolled_back=counts["rolled-back"])
        elif name in scheduled_retrains:
            row.update(retrains=scheduled_retrains[name],
                       promotions=scheduled_retrains[name])
        summary.append(row)
    periods = accuracy_by_period(replay.times[replay.start:], truth, answers, period)
    promotions = _judge_promotions(events, world, replay, served, policy.monitor.rows)
    return BacktestResult(
        policy, summary, periods,
        [{"at": _day(e.at), "kind": e.kind, "summary": e.summary, "evidence": e.evidence}
         for e in events], promotions, home, time.perf_counter() - began,
        n - replay.start)


# ----------------------------------------------------------------------------- pieces
def accuracy_by_period(times_ms: Any, truth: Any, answers: dict[str, Any],
                       period: int | str | None = None, *, periods: int = PERIODS
                       ) -> dict[str, list[tuple[str, float | None]]]:
    """Accuracy of each strategy's ``answers`` per period: ``[(first day, accuracy), ...]``.

    ``period``: ``"year"``, ``"quarter"`` or ``"month"`` (calendar periods in UTC, each
    dated by its first day; a first or last one that covers under half of its length joins
    its neighbour), or a length in ms (periods from the first row; a last one shorter than
    half a period joins the one before), or None: ``periods`` equal ones spanning the rows
    (whole days)."""
    import numpy as np

    times = np.asarray(times_ms, dtype=np.int64)
    if not len(times):
        return {name: [] for name in answers}
    if isinstance(period, str):
        period = parse_period(period)  # a calendar unit or a duration's text
    if isinstance(period, str):
        bins, starts_ms = _calendar_bins(times, period)
    else:
        bins, starts_ms = _length_bins(times, period, periods)
    truth = np.asarray(truth, dtype=object)
    starts = np.unique(bins)
    return {name: [(_day(starts_ms[int(b)]),
                    _accuracy(truth[bins == b], np.asarray(predicted, dtype=object)[bins == b]))
                   for b in starts] for name, predicted in answers.items()}


def _length_bins(times: Any, period_ms: int | None, periods: int) -> tuple[Any, Any]:
    """Each row's period number, and each period's first moment (ms): fixed lengths."""
    import numpy as np

    first, span = int(times[0]), int(times[-1] - times[0]) + 1
    if period_ms is None:
        period_ms = max(DAY_MS, math.ceil(span / periods / DAY_MS) * DAY_MS)
    elif period_ms <= 0:
        raise InvalidInput(f"period must be positive, got {period_ms} ms")
    bins = (times - first) // period_ms
    last = int(bins[-1])
    if last > 0 and span - last * period_ms < period_ms / 2:
        bins[bins == last] = last - 1   # a sliver of a period is too few rows to judge
    return bins, first + np.arange(last + 1, dtype=np.int64) * period_ms


def _calendar_bins(times: Any, unit: str) -> tuple[Any, Any]:
    """Each row's calendar period (counted from the first row's), and each period's first
    moment (ms): years, quarters or months have the calendar's lengths (a leap year is one
    period, not a year and a day)."""
    import numpy as np
    import pandas as pd

    stamps = pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True))
    months_per = {"year": 12, "quarter": 3, "month": 1}[unit]
    months = stamps.year.to_numpy(dtype=np.int64) * 12 + stamps.month.to_numpy(dtype=np.int64) - 1
    index = months // months_per
    bins = index - index[0]
    count = int(bins[-1]) + 1
    # Boundaries of every period, and one past the last, as epoch ms.
    edges_month = (int(index[0]) + np.arange(count + 1)) * months_per
    edges = pd.to_datetime({"year": edges_month // 12, "month": edges_month % 12 + 1, "day": 1},
                           utc=True)
    edges_ms = epoch_ms(pd.Series(edges)).to_numpy(dtype=np.int64)
    length = np.diff(edges_ms)
    if count > 1 and times[-1] - edges_ms[count - 1] + 1 < length[-1] / 2:
        bins[bins == count - 1] = count - 2         # a sliver of a last period
    if count > 1 and edges_ms[1] - times[0] < length[0] / 2:
        bins[bins == 0] = 1                          # a sliver of a first period
    return bins, edges_ms[:-1]


def parse_period(value: object, what: str = "period") -> int | str | None:
    """A reported period as given: None, a calendar unit (``"year"``, ``"quarter"``,
    ``"month"``) or a duration, in ms (at least a second). ``what`` names the option in
    errors (``"--period"`` on the command line)."""
    from ratchet.durations import duration_ms

    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in CALENDAR_PERIODS:
        return value.strip().lower()
    try:
        return duration_ms(value, what, at_least=timedelta(seconds=1))
    except InvalidInput:
        raise InvalidInput(f"{what} must be {', '.join(CALENDAR_PERIODS[:-1])} or "
                           f"{CALENDAR_PERIODS[-1]} (calendar periods) or a duration of at "
                           f"least 1s such as 30d or 365d; got {value!r}") from None


def choose_inputs(columns: Sequence[Any], time_column: str, label: str,
                  features: Sequence[str] | str | None = None,
                  drop: Sequence[str] | str | None = None, *,
                  names: tuple[str, str] = ("features", "drop")) -> list[str]:
    """The model's inputs among a history's ``columns``: ``features`` (in their order), or
    every column except ``time_column``, ``label`` and ``drop``. Text is split on commas
    (``"a,b"``). ``names``: how the two options are called in errors."""
    chosen, dropped = _names(features), _names(drop)
    if chosen is not None and dropped is not None:
        raise InvalidInput(f"give {names[0]} or {names[1]}, not both")
    known = [str(c) for c in columns]
    listing = ", ".join(known)
    for option, given in ((names[0], chosen), (names[1], dropped)):
        missing = [c for c in given or () if c not in known]
        if missing:
            raise InvalidInput(f"{option}: the history has no column "
                               f"{', '.join(map(repr, missing))}; its columns: {listing}")
    if chosen is not None:
        for column, role in ((time_column, "time"), (label, "label")):
            if column in chosen:
                raise InvalidInput(f"{names[0]}: {column!r} is the {role} column; a model "
                                   "input cannot be")
        inputs = list(dict.fromkeys(chosen))
    else:
        inputs = [c for c in known if c not in (time_column, label, *(dropped or ()))]
    if not inputs:
        raise InvalidInput(f"{names[0] if chosen is not None else names[1]} leaves the model "
                           f"no input column; the history's columns: {listing}")
    return inputs


def _names(value: Sequence[str] | str | None) -> list[str] | None:
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [p.strip() for p in parts if p.strip()]


def newest_known_labels(times_ms: Any, labels: Any, start: int, delay_ms: int) -> Any:
    """For each row from ``start``: the newest label known at its time ("yesterday's
    label"), i.e. of the latest earlier row whose label had arrived (``delay_ms`` after
    that row's time); None before any had."""
    import numpy as np

    times = np.asarray(times_ms, dtype=np.int64)
    rows = np.arange(start, len(times))
    # Rows whose label arrived by each row's time; never the row itself or a later one
    # (same-time rows with no delay).
    known = np.minimum(np.searchsorted(times, times[start:] - delay_ms, side="right"), rows)
    values = np.asarray(labels, dtype=object)
    out = np.full(len(rows), None, dtype=object)
    has = known > 0
    out[has] = values[known[has] - 1]
    return out


def _prepare(history: pd.DataFrame, time_column: str, label: str, start: Any,
             features: Sequence[str] | str | None = None,
             drop: Sequence[str] | str | None = None) -> _Replay:
    import numpy as np
    import pandas as pd

    for column in (time_column, label):
        if column not in history.columns:
            raise InvalidInput(f"history has no column {column!r}; its columns: "
                               f"{', '.join(map(str, history.columns))}")
    inputs = choose_inputs(list(history.columns), time_column, label, features, drop)
    if history[label].isna().any():
        raise InvalidInput(f"history column {label!r} has missing labels: a backtest "
                           "replays labeled rows")
    times = pd.to_datetime(history[time_column], utc=True, errors="coerce")
    if times.isna().any():
        bad = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise InvalidInput(f"history column {time_column!r}, row {bad}: "
                           f"{history[time_column].iloc[bad]!r} is not a time")
    order = np.argsort(times.to_numpy(), kind="stable")
    frame = history.iloc[order].reset_index(drop=True)
    ms = epoch_ms(times.iloc[order]).to_numpy(dtype=np.int64)
    if isinstance(start, int) and not isinstance(start, bool):
        first = start
    else:
        try:
            at = pd.Timestamp(start)
        except (ValueError, TypeError):
            at = pd.NaT
        if at is pd.NaT:
            raise InvalidInput(f"start {start!r} is neither a time nor a row number")
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        first = int(np.searchsorted(ms, (at - pd.Timestamp(0, tz="UTC")) //
                                    pd.Timedelta(milliseconds=1)))
    if not 1 <= first < len(frame):
        raise InvalidInput(f"start {start!r} leaves no rows to train the first model on, or "
                           f"none to replay ({len(frame)} rows)")
    return _Replay(frame, ms, frame[label].to_numpy(), first, inputs)


def train_with_pipeline(policy: CTPolicy, registry: Any, frame: pd.DataFrame, why: str) -> int:
    """One run of the policy's pipeline on ``frame`` (stored as a dataset version first),
    exactly as the controller runs it: the version it registered."""
    from ratchet.data.catalog import DataClient

    version = registry.workspace.client(DataClient).log(frame.reset_index(drop=True),
                                                f"{policy.model}-backtest-{why}")
    return run_training(policy, registry.workspace, f"{version.name}@{version.version}")[1]


def _scheduled(policy: CTPolicy, registry: Any, replay: _Replay, label: str, every_ms: int,
               delay_ms: int, rows: int, trust: bool = False) -> tuple[Any, int]:
    """Retrain every ``every_ms`` on the newest ``rows`` labeled rows, promote
    unconditionally: the fixed-schedule baseline."""
    import numpy as np

    times = replay.times
    answer = np.empty(len(times) - replay.start, dtype=object)
    version = None
    retrains = -1
    boundary = times[replay.start]
    cursor = replay.start
    while cursor < len(times):
        known = int(np.searchsorted(times, boundary - delay_ms, side="right"))
        window = replay.history.iloc[max(0, known - rows):known]
        version = train_with_pipeline(policy, registry, window[[*replay.inputs, label]],
                         "schedule") if retrains >= 0 or version is None else version
        retrains += 1
        stop = int(np.searchsorted(times, boundary + every_ms, side="left"))
        model = registry.load(f"models:/{policy.model}/{version}", trust=trust)
        answer[cursor - replay.start:stop - replay.start] = np.asarray(
            model.predict(replay.history.iloc[cursor:stop][replay.inputs]))
        cursor, boundary = stop, boundary + every_ms
    return answer, max(retrains, 0)


class _Baselines:
    """The fixed-schedule baselines, computed by :func:`scheduled_baselines` in a second
    Python process while the loop replays; in this process when none can be started.

    A plain subprocess (``python -c``) rather than ``multiprocessing``: spawning would
    import the caller's main script again in the child, and a script that calls
    ``backtest`` without an ``if __name__ == "__main__"`` guard would run once more there.
    The child gets this process's import path and working directory (the policy's
    pipeline is imported there by its reference), its arguments and its answer as pickles
    in ``home``."""

    def __init__(self, policy: CTPolicy, replay: _Replay, label: str, every_ms: int,
                 delay_ms: int, rows: list[int], home: Path, trust: bool = False) -> None:
        import os
        import pickle
        import subprocess
        import sys

        self.args = (policy, replay, label, every_ms, delay_ms, rows, str(home), trust)
        self.home = home
        self._process: subprocess.Popen[bytes] | None = None
        home.mkdir(parents=True, exist_ok=True)
        (home / "arguments.pickle").write_bytes(pickle.dumps(self.args))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path),
               **dict.fromkeys(_BLAS_THREADS, "1")}  # one BLAS thread, as in this process
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", "from ratchet.ct.backtesting import _baselines_child;"
                 " _baselines_child()", str(home)], env=env, stdin=subprocess.DEVNULL)
        except OSError as exc:  # no second process here (a sandbox): after the loop
            log.warning("backtest: fixed schedules run after the loop (%s)", exc)

    def result(self) -> dict[int, tuple[Any, int]]:
        import pickle

        if self._process is None:
            return scheduled_baselines(*self.args)
        code = self._process.wait()
        self._process = None
        answer_file = self.home / "answer.pickle"
        if not answer_file.exists():
            raise RatchetError(f"backtest: the process training the fixed schedules ended "
                               f"with exit code {code} and no answer (see its output above)")
        outcome = pickle.loads(answer_file.read_bytes())
        if isinstance(outcome, BaseException):
            raise outcome
        answer: dict[int, tuple[Any, int]] = outcome
        return answer

    def close(self) -> None:
        """Stop the second process (at once if the loop failed: nobody waits for it)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def _baselines_child() -> None:
    """``python -c``'s entry point in the second process: arguments in, answer out (the
    answer, or the exception that stopped it, when it can be pickled)."""
    import pickle
    import sys
    import traceback

    home = Path(sys.argv[1])
    try:
        with _one_blas_thread():
            outcome: Any = scheduled_baselines(*pickle.loads(
                (home / "arguments.pickle").read_bytes()))
    except Exception as exc:
        outcome = exc
        try:
            pickle.dumps(exc)
        except Exception:
            outcome = RuntimeError("".join(traceback.format_exception(exc)))
    (home / ".answer.pickle").write_bytes(pickle.dumps(outcome))
    (home / ".answer.pickle").replace(home / "answer.pickle")


def scheduled_baselines(policy: CTPolicy, replay: _Replay, label: str, every_ms: int,
                        delay_ms: int, rows: list[int], home: str, trust: bool = False
                        ) -> dict[int, tuple[Any, int]]:
    """For each window of ``rows``: the fixed schedule's answers and retrains, trained in
    a scratch store at ``home`` (the loop's store is another process's)."""
    from ratchet.registry import RegistryClient
    from ratchet.workspace import Workspace

    registry = Workspace(_scratch_settings(Path(home))).client(RegistryClient)
    return {n: _scheduled(policy, registry, replay, label, every_ms, delay_ms, n, trust)
            for n in rows}


def _running_majority(replay: _Replay, delay_ms: int) -> Any:
    import numpy as np
    import pandas as pd

    labels = pd.Series(replay.labels)
    codes, classes = pd.factorize(labels)
    onehot = np.zeros((len(labels), len(classes)), dtype=np.int64)
    onehot[np.arange(len(labels)), codes] = 1
    seen = np.cumsum(onehot, axis=0)
    out = []
    for i in range(replay.start, len(labels)):
        known = min(i, int(np.searchsorted(replay.times, replay.times[i] - delay_ms,
                                           side="right")))  # never the row's own label
        out.append(classes[int(np.argmax(seen[known - 1]))] if known else classes[0])
    return np.asarray(out, dtype=object)


def _judge_promotions(events: list[Any], world: SimulatedWorld, replay: _Replay,
                      served: pd.DataFrame, rows: int) -> list[dict[str, Any]]:
    """Each promotion: the new and the old champion on the ``rows`` rows that followed."""
    import numpy as np

    out = []
    for e in events:
        if e.kind != "promoted":
            continue
        after = int(np.searchsorted(replay.times, e.at, side="left"))
        chunk = replay.history.iloc[after:after + rows]
        if not len(chunk):
            continue
        truth = replay.labels[after:after + rows]
        new = _accuracy(truth, np.asarray(world.model(e.evidence["version"]).predict(
            chunk[replay.inputs])))
        old = _accuracy(truth, np.asarray(world.model(e.evidence["previous"]).predict(
            chunk[replay.inputs])))
        out.append({"at": _day(e.at), "version": e.evidence["version"],
                    "previous": e.evidence["previous"], "rows": len(chunk),
                    "accuracy_new": new, "accuracy_old": old,
                    "lowered": bool(new is not None and old is not None and new < old)})
    return out


def _accuracy(truth: Any, predicted: Any) -> float | None:
    import numpy as np

    if not len(truth):
        return None
    return float(np.mean(np.asarray(truth, dtype=object) == np.asarray(predicted,
                                                                        dtype=object)))


def _day(ms: int) -> str:
    from ratchet.clock import to_datetime

    moment = to_datetime(int(ms))
    assert moment is not None
    return moment.strftime("%Y-%m-%d")


__all__ = ["BACKTEST_EXPERIMENT", "BACKTEST_METRIC", "BACKTEST_REPORT", "BACKTEST_RESULT",
           "BACKTEST_TAG", "CALENDAR_PERIODS", "BacktestResult", "SimulatedWorld",
           "accuracy_by_period", "backtest", "backtest_metrics", "choose_inputs",
           "newest_known_labels", "parse_period", "recording_experiment", "strategy_metric",
           "train_with_pipeline"]
