"""The DAG of a pipeline run, built by calling the pipeline function once.

While the function runs, step calls record nodes and return ``OutputRef``s; arguments
may hold references anywhere inside lists, tuples and dicts. Python control flow over
*parameters* works; control flow over step *outputs* cannot (they do not exist yet), and
using a reference as a value says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ratchet.errors import InvalidInput
from ratchet.pipelines.step_definition import Step, recording


class OutputRef:
    """A step output that will exist once the step has run."""

    __slots__ = ("_builder_id", "node", "output")

    def __init__(self, node: str, output: str, builder_id: int) -> None:
        self.node = node
        self.output = output
        self._builder_id = builder_id

    def __repr__(self) -> str:
        return f"<output {self.output!r} of step {self.node!r}>"

    def _misuse(self, what: str) -> InvalidInput:
        return InvalidInput(
            f"{what} the output of step {self.node!r} while the pipeline is being built: "
            "step outputs exist only when the steps run. Pass it to another step and do "
            "the work there (branch on pipeline parameters, not on step outputs)"
        )

    def __bool__(self) -> bool:
        raise self._misuse("cannot branch on")

    def __iter__(self) -> Iterator[Any]:
        raise self._misuse("cannot iterate over (declare outputs=(...) to unpack)")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise self._misuse(f"cannot read attribute {name!r} of")

    def __getitem__(self, key: Any) -> Any:
        raise self._misuse("cannot index")

    def __len__(self) -> int:
        raise self._misuse("cannot take the length of")

    def __float__(self) -> float:
        raise self._misuse("cannot convert")

    __int__ = __float__
    __index__ = __float__
    __str__ = __repr__


@dataclass
class Node:
    name: str
    step: Step
    position: int
    arguments: dict[str, Any]  # parameter name -> value (literals and OutputRefs)
    upstream: tuple[str, ...]

    def refs(self) -> list[tuple[str, OutputRef]]:
        """(argument path, reference) for every reference in the arguments."""
        found: list[tuple[str, OutputRef]] = []
        for key, value in self.arguments.items():
            _walk_refs(value, key, found)
        return found


def _walk_refs(value: Any, path: str, found: list[tuple[str, OutputRef]]) -> None:
    if isinstance(value, OutputRef):
        found.append((path, value))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk_refs(item, f"{path}[{i}]", found)
    elif isinstance(value, dict):
        for k, item in value.items():
            _walk_refs(item, f"{path}[{k!r}]", found)


def replace_refs(value: Any, fn: Callable[[OutputRef], Any]) -> Any:
    """``value`` with every reference replaced by ``fn(ref)`` (containers rebuilt)."""
    if isinstance(value, OutputRef):
        return fn(value)
    if isinstance(value, list):
        return [replace_refs(v, fn) for v in value]
    if isinstance(value, tuple):
        items = [replace_refs(v, fn) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, dict):
        return {k: replace_refs(v, fn) for k, v in value.items()}
    return value


class GraphBuilder:
    def __init__(self, pipeline_name: str) -> None:
        self.pipeline_name = pipeline_name
        self.nodes: dict[str, Node] = {}
        self._calls: dict[str, int] = {}
        self.returned: Any = None  # what the pipeline function returned (with refs)

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[OutputRef]:
        try:
            bound = step.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"pipeline {self.pipeline_name!r}: step {step.name!r} called "
                               f"with arguments that do not fit {step.name}{step.signature}: "
                               f"{exc}") from None
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        count = self._calls.get(step.name, 0) + 1
        self._calls[step.name] = count
        name = step.name if count == 1 else f"{step.name}_{count}"
        while name in self.nodes:  # a step literally named "x_2" next to a second "x"
            count += 1
            name = f"{step.name}_{count}"
        node = Node(name=name, step=step, position=len(self.nodes), arguments=arguments,
                    upstream=())
        upstream: list[str] = []
        for path, ref in node.refs():
            if ref._builder_id != id(self):
                raise InvalidInput(f"step {name!r} argument {path}: {ref!r} comes from "
                                   "another pipeline; outputs cannot cross pipelines")
            if ref.node not in upstream:
                upstream.append(ref.node)
        node.upstream = tuple(upstream)
        self.nodes[name] = node
        return [OutputRef(name, output, id(self)) for output in step.options.output_names]


@contextmanager
def building(builder: GraphBuilder) -> Iterator[GraphBuilder]:
    """While the pipeline function runs: its step calls become ``builder``'s nodes."""
    with recording(builder):
        yield builder


def encode_outputs(value: Any, where: str) -> Any:
    """The pipeline's return value as JSON: references become ``{"$ref": [node, out]}``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, OutputRef):
        return {"$ref": [value.node, value.output]}
    if isinstance(value, list | tuple):
        return [encode_outputs(v, where) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise InvalidInput(f"{where}: a returned dict needs string keys")
        return {k: encode_outputs(v, where) for k, v in value.items()}
    raise InvalidInput(f"{where} returned {type(value).__name__}; a pipeline returns step "
                       "outputs, plain values, or lists/dicts of them")

