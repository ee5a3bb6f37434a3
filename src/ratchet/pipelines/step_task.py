"""What an executor runs for one step attempt, wherever it runs.

A ``StepTask`` carries the step, its literal arguments, the stored outputs it reads and
the store locations; on the worker it loads its inputs, runs the function with the step's
tracking run active and its output captured, and writes its outputs to the artifact store
(datasets and models through the catalog and registry). It returns a small
``StepOutcome``: digests, never data. Errors come back in the outcome, so logs survive.

Two kinds of failure, kept apart: the user's function raising (a step failure, retried
as its ``retry_on`` says) and ratchet's own storage failing around it (opening the
stores, loading inputs, storing outputs or logs: ``failed_in`` names the phase; never
retried as a step failure, reported as ``StepStorageFailed``). A returned value ratchet
refuses (the wrong number of outputs, a type no materializer takes, a frame the dataset
catalog rejects) is the step's failure, but not retried: the same code returns the same
value.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import pickle
import threading
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ratchet.config import Settings
from ratchet.errors import InvalidInput, ValidationFailed
from ratchet.pipelines.graph import OutputRef, replace_refs
from ratchet.pipelines.log_capture import captured_output
from ratchet.pipelines.stored_values import load_value, store_value
from ratchet.store.records import ModelVersion, StoredOutput

if TYPE_CHECKING:
    from ratchet.pipelines.step_definition import Step
    from ratchet.tracking.client import TrackingClient

MAX_ERROR_CHARS = 20_000

# The phases of ratchet's own work around the user's function (``StepOutcome.failed_in``).
OPENING = "open the stores"
LOADING = "load the inputs"
STORING = "store the outputs"
STORING_LOGS = "store the captured output"


@dataclass
class StepOutcome:
    outputs: list[StoredOutput] = field(default_factory=list)
    log_text: str = ""
    log_digest: str | None = None
    started_at: int = 0
    ended_at: int = 0
    error: str | None = None  # the traceback (the user's, or the store's)
    exception: BaseException | None = None
    retryable: bool = False
    failed_in: str | None = None  # ratchet's phase that failed; None: the step itself

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class StepTask:
    step: Step
    node: str
    arguments: dict[str, Any]  # literals, with OutputRef where a stored output goes
    inputs: dict[tuple[str, str], StoredOutput]  # (node, output) -> stored output
    settings: Settings
    tracking_run_id: str | None
    # Remote mode: the driver's token, for workers that do not share its environment
    # (a Ray cluster's). Kept out of repr: task reprs reach logs.
    tracking_token: str | None = field(default=None, repr=False)

    def __call__(self) -> StepOutcome:
        from ratchet.clock import now_ms

        outcome = StepOutcome(started_at=now_ms())
        options = self.step.options
        phase = OPENING
        try:
            client = _tracking_client(self.settings, self.tracking_token)
            phase = LOADING
            args, kwargs = self._load_arguments(client)
        except Exception as exc:
            return _failed(outcome, exc, in_phase=phase)
        # The user's function: only what it raises is a step failure (retried by retry_on).
        with captured_output() as capture, (
                client.activate(self.tracking_run_id) if self.tracking_run_id
                else contextlib.nullcontext()):
            try:
                result = self.step.fn(*args, **kwargs)
            except Exception as exc:
                _failed(outcome, exc, retryable=isinstance(exc, options.retry_on))
            finally:
                outcome.log_text = capture.text()
        if outcome.ok:
            try:
                outcome.outputs = self._store_outputs(client, result,
                                                      [*args, *kwargs.values()])
            except (InvalidInput, ValidationFailed) as exc:  # the value returned is refused
                _failed(outcome, exc)
            except Exception as exc:
                _failed(outcome, exc, in_phase=STORING)
        if outcome.log_text and options.capture_logs:
            try:
                outcome.log_digest = client.blobs.put_bytes(outcome.log_text.encode()).digest
            except Exception as exc:
                if outcome.ok:  # else the first failure is the one to report
                    _failed(outcome, exc, in_phase=STORING_LOGS)
        outcome.ended_at = now_ms()
        return outcome

    def _load_arguments(self, client: TrackingClient) -> tuple[list[Any], dict[str, Any]]:
        loaded: dict[tuple[str, str], Any] = {}

        def load(ref: OutputRef) -> Any:
            key = (ref.node, ref.output)
            if key not in loaded:
                loaded[key] = load_value(self.inputs[key], client.blobs)
            return loaded[key]

        values = {name: replace_refs(value, load) for name, value in self.arguments.items()}
        bound = inspect.BoundArguments(self.step.signature, values)
        return list(bound.args), dict(bound.kwargs)

    def _store_outputs(self, client: TrackingClient, result: Any,
                       arguments: list[Any]) -> list[StoredOutput]:
        options = self.step.options
        names = options.output_names
        where = f"step {self.node!r}"
        if options.outputs is not None:
            if not isinstance(result, tuple | list) or len(result) != len(names):
                raise InvalidInput(f"{where} declares outputs={names} and must return a "
                                   f"tuple of {len(names)} values, got {type(result).__name__}")
            values = dict(zip(names, result, strict=True))
        else:
            values = {names[0]: result}
        stored = []
        for name, value in values.items():
            label = f"{where} output {name!r}"
            if name in options.dataset:
                stored.append(self._store_dataset(client, name, value, options.dataset[name]))
            elif name in options.model:
                stored.append(self._store_model(client, name, value, options.model[name],
                                                _input_example(value, arguments)))
            else:
                stored.append(store_value(value, name, client.blobs, label))
        return stored

    def _store_dataset(self, client: TrackingClient, name: str, value: Any,
                       dataset: str) -> StoredOutput:
        from ratchet.data.catalog import DataClient

        data = client.workspace.client(DataClient)
        version = data.log(value, dataset, run_id=self.tracking_run_id,
                           source=f"pipeline step {self.node}")
        return StoredOutput(name=name, digest=version.digest, materializer="dataset",
                            files=(("data.parquet", version.digest, version.size_bytes),),
                            size=version.size_bytes, dataset=(version.name, version.version))

    def _store_model(self, client: TrackingClient, name: str, value: Any,
                     model_name: str, input_example: Any) -> StoredOutput:
        from ratchet.registry.client import RegistryClient

        if self.tracking_run_id is None:
            raise InvalidInput(f"step {self.node!r}: model= needs the step's tracking run")
        registry = client.workspace.client(RegistryClient)
        options = self.step.options
        version = registry.log_model(self.tracking_run_id, value, name=model_name,
                                     artifact_path=f"model-{name}", input_example=input_example,
                                     features=options.features,
                                     full_feature_names=options.full_feature_names)
        assert isinstance(version, ModelVersion)  # a name was given: a registered version
        entries = client.list_artifacts(self.tracking_run_id, f"model-{name}")
        prefix = f"model-{name}/"
        files = tuple((e.path[len(prefix):], e.digest, e.size) for e in entries)
        return StoredOutput(name=name, digest=version.content_hash, materializer="model",
                            files=files, size=sum(f[2] for f in files),
                            model=(version.name, version.version))


def _input_example(model: Any, arguments: list[Any]) -> Any:
    """The step's training frame, cut to the model's features: the example its signature
    is inferred from (a model without a signature cannot be served). None when no
    DataFrame argument holds every feature the model was fitted on."""
    import sys

    names = getattr(model, "feature_names_in_", None)
    pd = sys.modules.get("pandas")
    if names is None or pd is None:
        return None
    wanted = [str(n) for n in names]
    for value in arguments:
        if isinstance(value, pd.DataFrame) and set(wanted) <= set(map(str, value.columns)):
            return value[wanted]
    return None


def _failed(outcome: StepOutcome, exc: BaseException, *, in_phase: str | None = None,
            retryable: bool = False) -> StepOutcome:
    """Record ``exc`` in ``outcome``: the step's failure, or ratchet's in ``in_phase``."""
    from ratchet.clock import now_ms

    text = "".join(traceback.format_exception(exc))[-MAX_ERROR_CHARS:]
    if in_phase is not None:
        text = (f"ratchet could not {in_phase} of this step (its own storage failed; the "
                f"step's code did not fail, and this is not retried):\n{text}")
    outcome.error = text
    outcome.exception = _portable(exc)
    outcome.retryable = retryable and in_phase is None
    outcome.failed_in = in_phase
    outcome.ended_at = now_ms()
    return outcome


def _portable(exc: BaseException) -> BaseException | None:
    """The exception itself if it survives pickling (to cross process boundaries)."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return None
    return exc


_client_lock = threading.Lock()


def _tracking_client(settings: Settings, token: str | None = None) -> TrackingClient:
    """The fluent client (so ``ratchet.log_metric`` in a step reaches the step's run),
    pointed at the driver's stores; on a remote worker the environment is set to match."""
    from ratchet.config import load_settings
    from ratchet.tracking import fluent

    # Compare settings before opening anything: the environment's store may be another
    # project's (a backtest's scratch store runs steps from inside a project).
    if _same_store(load_settings(), settings):
        return fluent.client()
    with _client_lock:
        os.environ["RATCHET_HOME"] = str(settings.home)
        os.environ["RATCHET_DB"] = settings.db_url
        os.environ["RATCHET_ARTIFACTS"] = settings.artifacts_uri
        if settings.tracking_uri:  # remote mode: the same server, as the same user
            os.environ["RATCHET_TRACKING_URI"] = settings.tracking_uri
            if token:
                os.environ["RATCHET_TRACKING_TOKEN"] = token
        else:
            os.environ.pop("RATCHET_TRACKING_URI", None)
        client = fluent.client()
    return client


def _same_store(a: Settings, b: Settings) -> bool:
    return (a.db_url == b.db_url and a.artifacts_uri == b.artifacts_uri
            and a.tracking_uri == b.tracking_uri)

