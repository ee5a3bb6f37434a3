"""Parse JSON and YAML that came from a file someone else may have written.

Policies, schemas, model manifests and ``bundle.json`` are read from disk, from a model
registry or from a bundle built elsewhere. Two shapes crash or exhaust a plain parser:
deep nesting (``[[[[...]]]]`` 20,000 levels: ``RecursionError``) and YAML aliases that
multiply (a 1 KB "billion laughs" document expands to gigabytes when anything walks it).
Both are refused here with one line that names the file.
"""

from __future__ import annotations

import json
from typing import Any

from ratchet.errors import InvalidInput

MAX_DEPTH = 100
"""Deepest nesting of lists/mappings accepted; real configs stay under 10."""
MAX_NODES = 1_000_000
"""Most values a document may hold once its YAML aliases are expanded."""


def load_json(text: str | bytes, where: str, hint: str = "") -> Any:
    """``json.loads`` with a nesting bound; every failure is one-line ``InvalidInput``
    naming ``where`` (and ending with ``hint``, what to do)."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise _too_deep(where, hint) from None
    except ValueError as e:  # also UnicodeDecodeError and Python's int digit limit
        raise InvalidInput(f"{where}: not valid JSON ({_one_line(e)}){_tail(hint)}") from None
    if _depth_exceeds(data, MAX_DEPTH):
        raise _too_deep(where, hint)
    return data


def compose_yaml(text: str, where: str) -> Any:
    """The YAML node tree (for line numbers), bounded in depth and expanded size."""
    import yaml

    loader = _bounded_loader()(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as e:
        raise _yaml_error(e, where) from None
    except _TooDeep:
        raise _too_deep(where) from None
    finally:
        loader.dispose()
    if node is not None:
        _check_expanded_size(node, where)
    return node


def load_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` bounded in depth and alias expansion; errors name ``where``."""
    import yaml

    node = compose_yaml(text, where)
    if node is None:
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        raise _yaml_error(e, where) from None
    except RecursionError:  # unreachable below MAX_DEPTH; kept so a change stays safe
        raise _too_deep(where) from None
    finally:
        loader.dispose()


# ----------------------------------------------------------------------------- internals
class _TooDeep(Exception):
    pass


_LOADER: type | None = None


def _bounded_loader() -> type:
    """A ``SafeLoader`` whose composer stops at ``MAX_DEPTH`` (built lazily: yaml is heavy)."""
    global _LOADER
    if _LOADER is None:
        import yaml

        class BoundedLoader(yaml.SafeLoader):
            depth = 0

            def fetch_flow_collection_start(self, TokenClass: Any) -> None:
                # The scanner looks ahead over every open '[' / '{' (each may start a
                # key) at a cost that grows with their number: stop before the composer.
                if self.flow_level >= MAX_DEPTH:
                    raise _TooDeep
                super().fetch_flow_collection_start(TokenClass)

            def compose_node(self, parent: Any, index: Any) -> Any:
                self.depth += 1
                try:
                    if self.depth > MAX_DEPTH:
                        raise _TooDeep
                    return super().compose_node(parent, index)
                finally:
                    self.depth -= 1

        _LOADER = BoundedLoader
    return _LOADER


def _check_expanded_size(root: Any, where: str) -> None:
    """Count the values the document holds with every alias expanded, without expanding:
    an aliased node's size is computed once and reused (iterative, post-order)."""
    import yaml

    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node, yaml))
            if size[key] > MAX_NODES:
                raise InvalidInput(
                    f"{where}: YAML aliases expand to more than {MAX_NODES:,} values "
                    "(an alias bomb?); write the values out or use fewer aliases")
            continue
        if key in size:
            continue
        if key in on_path:
            raise InvalidInput(f"{where}: a YAML alias refers to its own anchor (recursive "
                               "document); remove the self-reference")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node, yaml) if id(c) not in size)


def _children(node: Any, yaml: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _depth_exceeds(data: Any, limit: int) -> bool:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children)
    return False


def _too_deep(where: str, hint: str = "") -> InvalidInput:
    return InvalidInput(f"{where}: nested more than {MAX_DEPTH} levels deep; ratchet never "
                        f"writes such a file{_tail(hint)}")


def _tail(hint: str) -> str:
    return f"; {hint}" if hint else ""


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:300]


def _yaml_error(e: Exception, where: str) -> InvalidInput:
    mark = getattr(e, "problem_mark", None)
    at = f"{where}:{mark.line + 1}" if mark is not None else where
    problem = getattr(e, "problem", None) or _one_line(e)
    return InvalidInput(f"{at}: invalid YAML: {problem}")


__all__ = ["MAX_DEPTH", "MAX_NODES", "compose_yaml", "load_json", "load_yaml"]
