"""``@ratchet.pipeline``: a function that calls steps; the calls form the DAG.

    @ratchet.pipeline
    def training(dataset: str = "churn@latest", C: float = 1.0):
        df = load(dataset)
        model = fit(df, C=C)
        return evaluate(model, df)

    result = training.run(C=0.5)            # in-process, local executor
    result.output                            # what the pipeline returned, loaded
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, overload

from ratchet.errors import InvalidInput
from ratchet.pipelines.references import load_object, reference_of
from ratchet.pipelines.step_definition import _NAME, default_name

if TYPE_CHECKING:
    from ratchet.executors.base import Executor
    from ratchet.pipelines.graph import GraphBuilder
    from ratchet.pipelines.run_result import PipelineResult
    from ratchet.workspace import Workspace

RESERVED_OPTIONS = ("executor", "cache", "experiment", "schedule_id")


class Pipeline:
    def __init__(self, fn: Callable[..., Any], *, name: str | None = None,
                 experiment: str | None = None) -> None:
        if not inspect.isfunction(fn):
            raise InvalidInput(f"@ratchet.pipeline decorates a function, got {fn!r}")
        self.fn = fn
        self.name = name or default_name(fn, "pipeline")
        if not _NAME.match(self.name):
            raise InvalidInput(f"pipeline name {self.name!r}: use letters, digits, '_', '.', '-'")
        self.experiment = experiment
        self.signature = inspect.signature(fn)
        clash = sorted(set(self.signature.parameters) & set(RESERVED_OPTIONS))
        if clash:
            raise InvalidInput(f"pipeline {self.name!r}: parameter names {clash} are reserved "
                               f"for run options ({', '.join(RESERVED_OPTIONS)}); rename them")
        self.ref = reference_of(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def parameters(self) -> Mapping[str, inspect.Parameter]:
        return self.signature.parameters

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The full parameter set (defaults filled in); a clear error for a wrong one."""
        try:
            bound = self.signature.bind(**params)
        except TypeError as exc:
            known = ", ".join(self.signature.parameters) or "none"
            raise InvalidInput(f"pipeline {self.name!r}: {exc} (its parameters: {known})"
                               ) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def build(self, **params: Any) -> GraphBuilder:
        """The DAG these parameters give, without running anything."""
        from ratchet.pipelines.graph import GraphBuilder, building

        arguments = self.bind(params)
        builder = GraphBuilder(self.name)
        with building(builder):
            builder.returned = self.fn(**arguments)
        if not builder.nodes:
            raise InvalidInput(f"pipeline {self.name!r} called no steps: decorate the functions "
                               "it calls with @ratchet.step")
        return builder

    def run(self, *, executor: str | Executor | None = None, cache: bool = True,
            experiment: str | None = None, schedule_id: str | None = None,
            workspace: Workspace | None = None, **params: Any) -> PipelineResult:
        """Run the pipeline and wait for it; raises ``StepFailed`` naming a failed step.

        ``executor``: "local" (default; threads), "local:N", "processes", "ray",
        "ray:<address>" or an ``Executor``. ``cache=False`` runs every step. ``workspace``:
        where runs, outputs and models are recorded (default: the ambient workspace).
        """
        from ratchet.pipelines.runner import PipelineRunner

        return PipelineRunner(self, params, executor=executor, cache=cache,
                              experiment=experiment, schedule_id=schedule_id,
                              workspace=workspace).run()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise InvalidInput(f"pipeline {self.name!r} is run with {self.name}.run(**params), "
                           "not called")

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r})"


def load_pipeline(ref: str) -> Pipeline:
    """The pipeline a reference (``"package.module:name"``, ``"path/to/file.py:name"``)
    names, importing its module as needed."""
    obj = load_object(ref)
    if not isinstance(obj, Pipeline):
        raise InvalidInput(f"{ref!r} is a {type(obj).__name__}, not a pipeline: decorate the "
                           "function with @ratchet.pipeline")
    return obj


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(fn: None = None, /, *, name: str | None = None,
             experiment: str | None = None) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
             experiment: str | None = None) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Declare a pipeline: bare ``@ratchet.pipeline`` or ``@ratchet.pipeline(name=...)``.

    Its tracking runs go to ``experiment`` (default: the pipeline's name).
    """
    if fn is not None:
        return Pipeline(fn, name=name, experiment=experiment)
    return lambda func: Pipeline(func, name=name, experiment=experiment)
