"""``@ratchet.step``: a plain function that becomes a node when a pipeline calls it.

Outside a pipeline a step is just its function (call it in a test, in a notebook, under
``pdb``). While a pipeline is being built, calling it records a node and returns a
reference to its output(s) instead of running it.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

from ratchet.errors import InvalidInput
from ratchet.executors.base import Resources

DEFAULT_OUTPUT = "output"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,199}$")


@dataclass(frozen=True)
class StepOptions:
    name: str
    cache: bool = True
    version: str | None = None  # replaces the source hash in the cache key
    deterministic: bool = True  # False: never reuse its outputs
    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: float = 1.0  # seconds before the first retry
    backoff_factor: float = 2.0
    max_backoff: float = 300.0
    timeout: float | None = None
    resources: Resources = field(default_factory=Resources)
    outputs: tuple[str, ...] | None = None  # names, when the function returns a tuple
    dataset: Mapping[str, str] = field(default_factory=dict)  # output -> dataset name
    model: Mapping[str, str] = field(default_factory=dict)  # output -> registered model name
    capture_logs: bool = True
    # A model output trained on the feature store: its feature refs (it is then served from
    # entity keys) and whether they were named view__feature.
    features: tuple[str, ...] | None = None
    full_feature_names: bool = False

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.outputs or (DEFAULT_OUTPUT,)


class Step:
    """A step: its function, options and (once a pipeline calls it) nodes in a DAG."""

    def __init__(self, fn: Callable[..., Any], options: StepOptions) -> None:
        if not callable(fn) or inspect.isclass(fn):
            raise InvalidInput(f"@ratchet.step decorates a function, got {fn!r}")
        if inspect.iscoroutinefunction(fn) or inspect.isgeneratorfunction(fn):
            raise InvalidInput(f"step {options.name!r}: async and generator functions are "
                               "not supported; return the value instead")
        self.fn = fn
        self.options = options
        self.signature = inspect.signature(fn)
        self._output_type = (namedtuple(f"{_identifier(options.name)}_outputs", options.outputs)
                             if options.outputs else None)
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def resources(self) -> Resources:
        return self.options.resources

    @property
    def retries(self) -> int:
        return self.options.retries

    @property
    def timeout(self) -> float | None:
        return self.options.timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        recorder = _recorder.get()
        if recorder is None:
            return self.fn(*args, **kwargs)
        refs = recorder.add(self, args, kwargs)
        if self._output_type is None:
            return refs[0]
        return self._output_type(*refs)

    def with_options(self, **changes: Any) -> Step:
        """A copy with other options, e.g. ``train.with_options(retries=3)``."""
        current = {f: getattr(self.options, f) for f in StepOptions.__dataclass_fields__}
        current.update(changes)
        return step(self.fn, **_public_options(current))

    def __repr__(self) -> str:
        return f"Step({self.name!r})"

    def __reduce__(self) -> Any:
        # Pickled by options and function (Ray, process pools), not by the wrapper state.
        return (Step, (self.fn, self.options))


class StepRecorder(Protocol):
    """What takes the step calls while a pipeline is being built (the ``GraphBuilder``):
    a call becomes a node, and its output references are returned instead of values."""

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]: ...


_recorder: ContextVar[StepRecorder | None] = ContextVar("ratchet_pipeline_builder",
                                                        default=None)


@contextmanager
def recording(recorder: StepRecorder) -> Iterator[None]:
    """Within the block, calling a step records it with ``recorder`` instead of running it."""
    if _recorder.get() is not None:
        raise InvalidInput("a pipeline cannot be run while another is being built; call "
                           "the inner pipeline's steps directly instead")
    token = _recorder.set(recorder)
    try:
        yield
    finally:
        _recorder.reset(token)


def _public_options(opts: dict[str, Any]) -> dict[str, Any]:
    resources: Resources = opts.pop("resources")
    opts.update(cpus=resources.cpus, gpus=resources.gpus, memory=resources.memory)
    opts["retry_on"] = tuple(opts["retry_on"])
    opts["dataset"] = dict(opts["dataset"]) or None
    opts["model"] = dict(opts["model"]) or None
    return opts


def default_name(fn: Any, fallback: str) -> str:
    """A function's name as a node name ("<lambda>" becomes "lambda")."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "", getattr(fn, "__name__", "") or "") or fallback


def _identifier(name: str) -> str:
    return re.sub(r"\W", "_", name) or "step"


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    fn: None = None,
    /,
    *,
    name: str | None = ...,
    cache: bool = ...,
    version: str | None = ...,
    deterministic: bool = ...,
    retries: int = ...,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = ...,
    backoff: float = ...,
    backoff_factor: float = ...,
    max_backoff: float = ...,
    timeout: float | None = ...,
    cpus: float = ...,
    gpus: float = ...,
    memory: int | None = ...,
    outputs: tuple[str, ...] | list[str] | None = ...,
    dataset: str | Mapping[str, str] | None = ...,
    model: str | Mapping[str, str] | None = ...,
    capture_logs: bool = ...,
    features: Sequence[str] | None = ...,
    full_feature_names: bool = ...,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    cache: bool = True,
    version: str | None = None,
    deterministic: bool = True,
    retries: int = 0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    backoff: float = 1.0,
    backoff_factor: float = 2.0,
    max_backoff: float = 300.0,
    timeout: float | None = None,
    cpus: float = 1.0,
    gpus: float = 0.0,
    memory: int | None = None,
    outputs: tuple[str, ...] | list[str] | None = None,
    dataset: str | Mapping[str, str] | None = None,
    model: str | Mapping[str, str] | None = None,
    capture_logs: bool = True,
    features: Sequence[str] | None = None,
    full_feature_names: bool = False,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Declare a pipeline step. Bare ``@ratchet.step`` or ``@ratchet.step(retries=2, …)``.

    - ``cache`` / ``version`` / ``deterministic``: reuse of outputs (see docs/pipelines.md).
    - ``retries``, ``retry_on``, ``backoff`` (times ``backoff_factor`` per attempt, capped at
      ``max_backoff``), ``timeout`` in seconds.
    - ``cpus``, ``gpus``, ``memory`` (bytes): what the step asks of the executor.
    - ``outputs=("train", "test")``: the function returns a tuple with these parts.
    - ``dataset="features"``: store a DataFrame output as a version of that dataset;
      ``model="churn"``: register a model output as a version of that model. With several
      outputs, give a mapping ``{"output name": "dataset name"}``.
    - ``features=["driver_stats:trips", ...]`` (with ``model=``): the model was trained on
      ``ratchet.features.training_set`` with these features; it is registered to be served
      from entity keys (``full_feature_names`` as given to the training set).
    """

    def decorate(func: Callable[..., Any]) -> Step:
        options = _build_options(
            func, name=name, cache=cache, version=version, deterministic=deterministic,
            retries=retries, retry_on=retry_on, backoff=backoff,
            backoff_factor=backoff_factor, max_backoff=max_backoff, timeout=timeout,
            resources=Resources(cpus=cpus, gpus=gpus, memory=memory), outputs=outputs,
            dataset=dataset, model=model, capture_logs=capture_logs, features=features,
            full_feature_names=full_feature_names,
        )
        return Step(func, options)

    if fn is not None:
        if isinstance(fn, Step):
            raise InvalidInput(f"{fn!r} is already a step")
        return decorate(fn)
    return decorate


def _build_options(func: Callable[..., Any], *, name: str | None,
                   retry_on: Any, outputs: Any, dataset: Any, model: Any,
                   features: Any = None, **rest: Any) -> StepOptions:
    step_name = name or default_name(func, "step")
    where = f"step {step_name!r}"
    if not isinstance(step_name, str) or not _NAME.match(step_name):
        raise InvalidInput(f"{where}: a step name is letters, digits, '_', '.', '-' "
                           "(starting with a letter or '_')")
    if not isinstance(rest["retries"], int) or isinstance(rest["retries"], bool) \
            or rest["retries"] < 0:
        raise InvalidInput(f"{where}: retries= must be an integer >= 0, got {rest['retries']!r}")
    retry_types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    if not retry_types or not all(inspect.isclass(c) and issubclass(c, BaseException)
                                  for c in retry_types):
        raise InvalidInput(f"{where}: retry_on= takes exception classes, got {retry_on!r}")
    for key in ("backoff", "backoff_factor", "max_backoff"):
        value = rest[key]
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise InvalidInput(f"{where}: {key}= must be a number >= 0, got {value!r}")
    timeout = rest["timeout"]
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise InvalidInput(f"{where}: timeout= must be a number of seconds > 0, got {timeout!r}")
    if rest["version"] is not None and not isinstance(rest["version"], str):
        raise InvalidInput(f"{where}: version= must be a string, got {rest['version']!r}")
    names: tuple[str, ...] | None = None
    if outputs is not None:
        if isinstance(outputs, str) or not all(isinstance(o, str) and o.isidentifier()
                                               for o in outputs):
            raise InvalidInput(f"{where}: outputs= is a tuple of identifier names, e.g. "
                               f"('train', 'test'), got {outputs!r}")
        names = tuple(outputs)
        if len(set(names)) != len(names) or not names:
            raise InvalidInput(f"{where}: outputs= names must be unique and not empty")
    output_names = names or (DEFAULT_OUTPUT,)
    if features is not None:
        if model is None:
            raise InvalidInput(f"{where}: features= describes a model output: give model= too")
        if isinstance(features, str) or not all(isinstance(f, str) and f for f in features) \
                or not features:
            raise InvalidInput(f"{where}: features= is a list of 'view:feature' references, "
                               f"got {features!r}")
        features = tuple(features)
    if not isinstance(rest.get("full_feature_names", False), bool):
        raise InvalidInput(f"{where}: full_feature_names= must be True or False")
    return StepOptions(
        name=step_name, retry_on=retry_types, outputs=names, features=features,
        dataset=_per_output(where, "dataset", dataset, output_names),
        model=_per_output(where, "model", model, output_names),
        **rest,
    )


def _per_output(where: str, key: str, value: Any, outputs: tuple[str, ...]) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        if len(outputs) > 1:
            raise InvalidInput(f"{where}: with several outputs, {key}= maps output names to "
                               f"names, e.g. {{'{outputs[0]}': 'name'}}")
        return {outputs[0]: value}
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(outputs))
        if unknown:
            raise InvalidInput(f"{where}: {key}= names unknown outputs {unknown}; the step's "
                               f"outputs are {list(outputs)}")
        if not all(isinstance(v, str) and v for v in value.values()):
            raise InvalidInput(f"{where}: {key}= values must be non-empty names")
        return dict(value)
    raise InvalidInput(f"{where}: {key}= takes a name or a mapping, got {value!r}")


__all__ = ["Step", "StepOptions", "step"]
