"""Runs one pipeline: builds the DAG, reuses cached steps, hands the rest to an executor
as their inputs become ready, retries with backoff, and records everything.

The driver (this module) is the only writer of the run's pipeline and step records. It
beats a heartbeat into the run while it lives; a run whose heartbeat stops (the process
was killed) is marked ``abandoned`` by the next pipeline that starts, or by ``ratchet
pipeline list``.
"""

from __future__ import annotations

import heapq
import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ratchet.clock import now_ms
from ratchet.errors import (
    InvalidInput,
    RatchetError,
    RemoteStepError,
    StepFailed,
    StepStorageFailed,
)
from ratchet.executors.base import Executor
from ratchet.executors.spec import resolve_executor
from ratchet.hashing import hash_bytes
from ratchet.ids import new_id
from ratchet.pipelines.code_hash import code_hash
from ratchet.pipelines.graph import GraphBuilder, Node, OutputRef, encode_outputs, replace_refs
from ratchet.pipelines.run_result import PipelineResult
from ratchet.pipelines.step_task import StepOutcome, StepTask
from ratchet.pipelines.stored_values import output_available
from ratchet.store import PipelineStore
from ratchet.store.pipeline_store import CachedStep, NewStep, NewTrackingRun
from ratchet.store.records import DatasetInput, StepInput, StoredOutput
from ratchet.store.tracking_store import new_run_rows

if TYPE_CHECKING:
    from ratchet.workspace import Workspace

HEARTBEAT_INTERVAL_S = 5.0
DEFAULT_HEARTBEAT_TIMEOUT_S = 60.0
LOG_ARTIFACT = "logs/output.txt"


def heartbeat_timeout_s() -> float:
    """How long without a heartbeat before a running pipeline counts as abandoned."""
    raw = os.environ.get("RATCHET_HEARTBEAT_TIMEOUT_S")
    try:
        return float(raw) if raw else DEFAULT_HEARTBEAT_TIMEOUT_S
    except ValueError:
        raise InvalidInput(f"RATCHET_HEARTBEAT_TIMEOUT_S={raw!r} is not a number of seconds"
                           ) from None


def reap_abandoned(store: PipelineStore, timeout_s: float | None = None) -> list[str]:
    timeout = heartbeat_timeout_s() if timeout_s is None else timeout_s
    return store.reap_abandoned(now_ms() - int(timeout * 1000))


class RunnablePipeline(Protocol):
    """What the runner needs of a pipeline (a ``Pipeline`` is one): its name, where its
    runs are recorded, its importable reference, and its DAG for given parameters."""

    @property
    def name(self) -> str: ...

    @property
    def experiment(self) -> str | None: ...

    @property
    def ref(self) -> str | None: ...

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def build(self, **params: Any) -> GraphBuilder: ...


@dataclass
class _Running:
    node: Node
    step_run_id: str
    tracking_run_id: str | None
    cache_key: str
    code_hash: str
    inputs: list[StepInput]
    started_at: int  # when the driver submitted it
    ran_from: int | None = None  # when its first attempt actually started on a worker
    attempts: int = 1


class PipelineRunner:
    def __init__(self, pipeline: RunnablePipeline, params: Mapping[str, Any], *,
                 executor: str | Executor | None = None, cache: bool = True,
                 experiment: str | None = None, schedule_id: str | None = None,
                 resume_from: str | None = None, workspace: Workspace | None = None) -> None:
        from ratchet.tracking.client import TrackingClient
        from ratchet.workspace import resolve

        if not isinstance(cache, bool):
            raise InvalidInput(f"cache= must be True or False, got {cache!r}")
        self.pipeline = pipeline
        self.params = pipeline.bind(params)
        self.cache = cache
        self.experiment = experiment or pipeline.experiment or pipeline.name
        self.schedule_id = schedule_id
        self.resume_from = resume_from
        self.workspace = resolve(workspace)
        self.tracking = self.workspace.client(TrackingClient)
        self.store = self.workspace.stores.pipelines
        self._executor_spec = executor
        self.run_id = new_id()

    # ------------------------------------------------------------------ public
    def run(self) -> PipelineResult:
        builder = self.pipeline.build(**self.params)
        outputs_spec = encode_outputs(builder.returned, f"pipeline {self.pipeline.name!r}")
        nodes = list(builder.nodes.values())
        reap_abandoned(self.store)
        owns_executor = not isinstance(self._executor_spec, Executor)
        executor = resolve_executor(self._executor_spec)
        try:
            return self._run(nodes, outputs_spec, executor)
        finally:
            if owns_executor:
                executor.shutdown()

    # ------------------------------------------------------------------ driver
    def _run(self, nodes: list[Node], outputs_spec: Any, executor: Executor) -> PipelineResult:
        from ratchet.tracking import code_version

        tracking = self.tracking
        experiment_id = tracking.store.get_or_create_experiment(self.experiment).experiment_id
        self._code = code_version.capture()
        self._experiment_id = experiment_id
        pipeline_run = tracking.store.create_run(
            experiment_id, name=self.pipeline.name, code=self._code,
            tags={"ratchet.pipeline": self.pipeline.name,
                  "ratchet.pipeline_run_id": self.run_id,
                  **({"ratchet.resumed_from": self.resume_from} if self.resume_from else {})})
        self._tracking_run_id = pipeline_run.run_id
        loggable = {k: v for k, v in self.params.items() if _is_scalar(v)}
        if loggable:
            tracking.store.log_params(pipeline_run.run_id, loggable)
        step_ids = {node.name: new_id() for node in nodes}
        self._params = {node.name: _params_record(node) for node in nodes}
        # A run can be resumed from its record only if its parameters survive JSON.
        ref = self.pipeline.ref if _json_exact(self.params) else None
        self.store.create_pipeline_run(
            run_id=self.run_id, pipeline=self.pipeline.name, ref=ref,
            params=self.params, executor=executor.describe(),
            tracking_run_id=pipeline_run.run_id, resumed_from=self.resume_from,
            schedule_id=self.schedule_id, host=socket.gethostname(), pid=os.getpid(),
            steps=[NewStep(step_ids[n.name], n.name, n.step.name, n.position, n.upstream,
                           self._params[n.name]) for n in nodes],
        )
        heartbeat = _Heartbeat(self.store, self.run_id)
        heartbeat.start()
        try:
            failure = self._drive(nodes, step_ids, executor)
        except BaseException as exc:  # Ctrl-C or a bug in the driver: leave nothing running
            heartbeat.stop()
            self._abort(exc)
            raise
        heartbeat.stop()
        if failure is not None:
            node, outcome, attempts = failure
            error_text = outcome.error or ""
            self.store.skip_pending(self.run_id)
            error: RatchetError
            if outcome.failed_in is not None:  # ratchet's storage, not the step's code
                message = (f"ratchet could not {outcome.failed_in} of step {node!r} in "
                           f"pipeline {self.pipeline.name!r} (run {self.run_id}): "
                           f"{last_line(error_text)}. The step's code did not fail; fix the "
                           f"metadata or artifact store, then `ratchet pipeline resume "
                           f"{self.run_id}`")
                error = StepStorageFailed(message, step=node, phase=outcome.failed_in,
                                          run_id=self.run_id)
            else:
                message = (f"step {node!r} failed after {attempts} attempt(s) in pipeline "
                           f"{self.pipeline.name!r} (run {self.run_id}): "
                           f"{last_line(error_text)}")
                error = StepFailed(message, step=node, run_id=self.run_id)
            self.store.finish_pipeline_run(self.run_id, "failed", error=message)
            tracking.end_run(pipeline_run.run_id, "failed", error=error_text)
            raise error from (outcome.exception or RemoteStepError(error_text))
        self.store.finish_pipeline_run(self.run_id, "finished", outputs=outputs_spec)
        tracking.end_run(pipeline_run.run_id, "finished")
        return self.result()

    def result(self) -> PipelineResult:
        return PipelineResult(self.store.get_pipeline_run(self.run_id),
                              self.store.step_runs(self.run_id), self.tracking)

    def _drive(self, nodes: list[Node], step_ids: dict[str, str], executor: Executor
               ) -> tuple[str, StepOutcome, int] | None:
        """Run the steps; the first failure (node, its outcome, attempts) or None."""
        waiting = {n.name: set(n.upstream) for n in nodes}
        dependents: dict[str, list[str]] = {n.name: [] for n in nodes}
        for n in nodes:
            for up in n.upstream:
                dependents[up].append(n.name)
        by_name = {n.name: n for n in nodes}
        self._outputs: dict[str, dict[str, StoredOutput]] = {}
        self._cached: list[CachedStep] = []
        running: dict[Future[StepOutcome], _Running] = {}
        retry_at: list[tuple[float, int, str]] = []  # (monotonic time, tiebreak, node)
        states: dict[str, _Running] = {}
        ready = [n.name for n in nodes if not n.upstream]
        failure: tuple[str, StepOutcome, int] | None = None

        def finish_ok(name: str) -> None:
            for child in dependents[name]:
                waiting[child].discard(name)
                if not waiting[child]:
                    ready.append(child)

        while True:
            while ready and failure is None:
                name = ready.pop(0)
                state = self._prepare(by_name[name], step_ids[name])
                if state is None:  # served from the cache
                    finish_ok(name)
                    continue
                states[name] = state
                running[self._submit(executor, state)] = state
            self._flush_cached()
            if not running and (not retry_at or failure is not None):
                break
            timeout = None
            if retry_at:
                timeout = max(0.0, retry_at[0][0] - time.monotonic())
            done, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                state = running.pop(future)
                name = state.node.name
                outcome = _outcome_of(future, state)
                if state.ran_from is None and outcome.started_at:
                    state.ran_from = outcome.started_at
                if outcome.ok:
                    self._finish_step(state, outcome)
                    finish_ok(name)
                    continue
                options = state.node.step.options
                if outcome.retryable and state.attempts <= options.retries and failure is None:
                    delay = min(options.backoff * options.backoff_factor ** (state.attempts - 1),
                                options.max_backoff)
                    state.attempts += 1
                    self.store.set_attempts(state.step_run_id, state.attempts,
                                            error=outcome.error)
                    heapq.heappush(retry_at, (time.monotonic() + delay, len(retry_at), name))
                    continue
                self._fail_step(state, outcome)
                if failure is None:
                    failure = (name, outcome, state.attempts)
            while retry_at and retry_at[0][0] <= time.monotonic() and failure is None:
                _, _, name = heapq.heappop(retry_at)
                running[self._submit(executor, states[name])] = states[name]
            if failure is not None:
                for _, _, name in retry_at:  # waiting to retry: give up on them
                    self._fail_step(states[name], StepOutcome(
                        error="not retried: another step failed", ended_at=now_ms()))
                retry_at.clear()
        return failure

    # ------------------------------------------------------------------ one step
    def _prepare(self, node: Node, step_run_id: str) -> _Running | None:
        """Cache lookup; on a miss, the step's tracking run and 'running' record."""
        options = node.step.options
        inputs = [StepInput(path, self._outputs[ref.node][ref.output].digest, ref.node,
                            ref.output) for path, ref in node.refs()]
        code = code_hash(node.step.fn, options.version)
        params = self._params[node.name]
        key = _cache_key(node, code, params, inputs)
        hit = None
        if self.resume_from is not None:
            hit = self.store.find_cached(key, in_run=self.resume_from, node=node.name)
        if hit is None and self.cache and options.cache and options.deterministic:
            hit = self.store.find_cached(key)
        if hit is not None and all(output_available(o, self.tracking.blobs)
                                   for o in hit.outputs):
            self._cached.append(CachedStep(step_run_id, hit.origin, code, key, now_ms(),
                                           hit.outputs, tuple(inputs)))
            self._outputs[node.name] = {o.name: o for o in hit.outputs}
            return None
        self._flush_cached()
        values, tag_rows = new_run_rows(
            self._experiment_id, name=node.name, parent_run_id=self._tracking_run_id,
            code=self._code, tags={"ratchet.step": node.step.name,
                                   "ratchet.pipeline_run_id": self.run_id})
        # Dataset versions flowing in are recorded as the step run's inputs (lineage from a
        # model version back to the data), with the argument as the role.
        datasets = tuple(
            DatasetInput(stored.dataset[0], stored.digest, stored.dataset[1],
                         path.split("[")[0], f"pipeline step {ref.node}")
            for path, ref in node.refs()
            if (stored := self._outputs[ref.node][ref.output]).dataset is not None)
        run = NewTrackingRun(values["run_id"], values, tag_rows,
                             {k: str(v) for k, v in params.items() if _is_scalar(v)}, datasets)
        started = now_ms()
        self.store.start_step(step_run_id, code_hash=code, cache_key=key, run=run,
                              started_at=started)
        return _Running(node, step_run_id, run.run_id, key, code, inputs, started)

    def _flush_cached(self) -> None:
        if self._cached:
            self.store.record_cached(self._cached)
            self._cached = []

    def _submit(self, executor: Executor, state: _Running) -> Future[StepOutcome]:
        node = state.node
        task = StepTask(
            step=node.step, node=node.name, arguments=node.arguments,
            inputs={(ref.node, ref.output): self._outputs[ref.node][ref.output]
                    for _path, ref in node.refs()},
            settings=self.tracking.settings, tracking_run_id=state.tracking_run_id,
            tracking_token=(os.environ.get("RATCHET_TRACKING_TOKEN")
                            if self.tracking.settings.tracking_uri else None),
        )
        return executor.submit(task, resources=node.step.resources,
                               timeout=node.step.timeout, name=f"step {node.name!r}")

    def _finish_step(self, state: _Running, outcome: StepOutcome) -> None:
        self._end_step(state, outcome, "finished")
        self._outputs[state.node.name] = {o.name: o for o in outcome.outputs}

    def _fail_step(self, state: _Running, outcome: StepOutcome) -> None:
        self._end_step(state, outcome, "failed")

    def _end_step(self, state: _Running, outcome: StepOutcome, status: str) -> None:
        log = (LOG_ARTIFACT, len(outcome.log_text.encode())) if outcome.log_digest else None
        self.store.finish_step(
            state.step_run_id, status=status, outputs=outcome.outputs if outcome.ok else (),
            inputs=state.inputs, log_digest=outcome.log_digest, error=outcome.error,
            ended_at=outcome.ended_at or now_ms(), started_at=state.ran_from,
            end_run=(state.tracking_run_id, status) if state.tracking_run_id else None,
            log_artifact=log)

    def _abort(self, exc: BaseException) -> None:
        """The driver itself was interrupted: end everything it started as killed."""
        status = "killed" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        try:
            for record in self.store.step_runs(self.run_id):
                if record.status == "running":
                    self.store.finish_step(record.step_run_id, status="killed", error=reason)
                    if record.tracking_run_id:
                        self.tracking.end_run(record.tracking_run_id, "killed", error=reason)
            self.store.skip_pending(self.run_id)
            self.store.finish_pipeline_run(self.run_id, status, error=reason)
            self.tracking.end_run(self._tracking_run_id, "killed", error=reason)
        except Exception:  # never hide the original interruption
            pass


def _outcome_of(future: Future[StepOutcome], state: _Running) -> StepOutcome:
    import traceback

    try:
        return future.result()
    except Exception as exc:  # the executor failed the task: timeout, lost worker, pickling
        options = state.node.step.options
        return StepOutcome(
            error="".join(traceback.format_exception(exc)), exception=exc,
            retryable=isinstance(exc, options.retry_on), ended_at=now_ms(),
        )


def _params_record(node: Node) -> dict[str, Any]:
    """A step's arguments as JSON: literals, with ``{"$ref": [node, output]}`` for inputs."""
    def as_ref(ref: OutputRef) -> Any:
        return {"$ref": [ref.node, ref.output]}

    values = replace_refs(node.arguments, as_ref)
    return json.loads(json.dumps(values, sort_keys=True, default=_fingerprint))


def _fingerprint(value: Any) -> str:
    """A literal that is not JSON: identified by its materialized bytes when possible."""
    from ratchet.pipelines.materializers import FileMaterializer, materializer_for

    try:
        materializer = materializer_for(value, "argument")
    except InvalidInput:
        return f"repr:{value!r}"
    if isinstance(materializer, FileMaterializer):
        return f"{materializer.name}:{hash_bytes(materializer.dumps(value))}"
    return f"repr:{value!r}"


def _cache_key(node: Node, code: str, params: dict[str, Any], inputs: list[StepInput]) -> str:
    options = node.step.options
    material = {
        "step": node.step.name,
        "code": code,
        "params": params,
        "inputs": {i.name: i.digest for i in inputs},
        "outputs": list(options.output_names),
        "dataset": dict(options.dataset),
        "model": dict(options.model),
    }
    return hash_bytes(json.dumps(material, sort_keys=True).encode())


def _json_exact(value: Any) -> bool:
    try:
        return bool(json.loads(json.dumps(value)) == value)
    except (TypeError, ValueError):
        return False


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and not (
        isinstance(value, str) and len(value) > 500)


def last_line(text: str) -> str:
    """The last non-empty line of a traceback: the exception and its message."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


class _Heartbeat:
    def __init__(self, store: PipelineStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="ratchet-heartbeat",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL_S):
            try:
                self.store.heartbeat(self.run_id)
            except Exception:  # a busy database must not kill the run; the next beat retries
                continue
