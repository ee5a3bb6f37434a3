"""MLflow's search grammars on ratchet's: run filters and order_by for ``search_runs``,
and the experiment filter, order and pages of ``experiments/search``.

Runs: ratchet's filter language (``ratchet.store.run_filter``) is MLflow's plus OR, so an
MLflow filter is parsed by ratchet's parser and the few MLflow-only spellings are mapped:
``parameter(s).x`` is ``params.x``, ``tags.mlflow.runName`` is the run's name (ratchet's
``run_name`` attribute, which runs logged without MLflow have too), statuses are matched
case-insensitively. ``datasets.*`` terms are refused with a message saying so.

Experiments: a workspace holds tens to thousands of experiments, so their filter is
evaluated in Python over the listed records: ``name``/``experiment_id``/``creation_time``/
``last_update_time`` attributes and ``tags.<key>`` joined by AND, as MLflow accepts.

Pure functions; errors are ``INVALID_PARAMETER_VALUE`` naming the offending part.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ratchet.errors import InvalidInput
from ratchet.server.mlflow.protocol import invalid
from ratchet.server.mlflow.tracking_messages import RUN_NAME_TAG
from ratchet.store.records import Experiment
from ratchet.store.run_filter import (
    And,
    Comparison,
    Node,
    Or,
    OrderKey,
    format_filter,
    format_identifier,
    parse_filter,
    parse_order_by,
)

_HEAD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\.")
_ENTITY_SPELLINGS = {"parameter": "params", "parameters": "params"}


# ---------------------------------------------------------------------------- runs
def run_filter(text: str | None) -> str | None:
    """An MLflow ``search_runs`` filter as ratchet filter text (None: no filter)."""
    if text is None or not text.strip():
        return None
    try:
        node = parse_filter(_respell_entities(text))
    except InvalidInput as exc:
        raise invalid(f"Invalid filter {text!r}: {exc}") from None
    return format_filter(_map_node(node)) or None


def run_order_by(items: Sequence[str]) -> list[str]:
    """MLflow ``order_by`` items ("metrics.auc DESC", "start_time", ...) as ratchet's."""
    try:
        keys = parse_order_by([_respell_entities(i) for i in items])
    except InvalidInput as exc:
        raise invalid(f"Invalid order_by {list(items)!r}: {exc}") from None
    out = []
    for key in keys:
        entity, name = _map_key(key.entity, key.key)
        out.append(f"{format_identifier(entity, name)} {'DESC' if key.descending else 'ASC'}")
    return out


def _respell_entities(text: str) -> str:
    """``parameter.x`` -> ``params.x`` outside quotes; ``datasets.x`` refused."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"`":
            end = _closing_quote(text, i)
            out.append(text[i:end])
            i = end
            continue
        head = _HEAD.match(text, i) if (i == 0 or not _is_name_char(text[i - 1])) else None
        if head is not None:
            word = head.group(1).lower()
            if word in ("dataset", "datasets"):
                raise invalid(f"Invalid filter {text!r}: searching runs by datasets "
                              f"({head.group(1)}.*) is not supported by this server; filter on "
                              "params, metrics, tags or attributes")
            out.append(_ENTITY_SPELLINGS.get(word, head.group(1)) + ".")
            i = head.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _closing_quote(text: str, start: int) -> int:
    """The index after the quoted part starting at ``start`` (a doubled quote escapes)."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return len(text)


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_.`"


def _map_key(entity: str, key: str) -> tuple[str, str]:
    if entity == "tag" and key == RUN_NAME_TAG:
        return "attribute", "run_name"
    return entity, key


def _map_node(node: Node | None) -> Node | None:
    if node is None:
        return None
    if isinstance(node, Comparison):
        entity, key = _map_key(node.entity, node.key)
        return Comparison(entity, key, node.op, node.value, node.position)  # type: ignore[arg-type]
    mapped = tuple(_map_node(item) for item in node.items)
    return And(mapped) if isinstance(node, And) else Or(mapped)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- experiments
_EXPERIMENT_ATTRIBUTES = ("name", "experiment_id", "creation_time", "last_update_time")
_NUMERIC = ("creation_time", "last_update_time")
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<number>[+-]?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|<>|==|=|<|>)
    | (?P<paren>[(),])
    | (?P<ident>(?:[A-Za-z_][A-Za-z0-9_]*\.)?(?:`[^`]+`|"[^"]+"|[A-Za-z0-9_.:/-]+))
    )""", re.VERBOSE)


@dataclass(frozen=True)
class ExperimentTerm:
    kind: str  # "attribute" or "tag"
    key: str
    op: str  # =, !=, <, <=, >, >=, like, ilike, in, is null, is not null
    value: str | float | tuple[str, ...] | None


def experiment_filter(text: str | None) -> list[ExperimentTerm]:
    """MLflow's ``search_experiments`` filter: terms joined by AND."""
    if text is None or not text.strip():
        return []
    tokens = _experiment_tokens(text)
    terms, i = [], 0
    while i < len(tokens):
        term, i = _experiment_term(text, tokens, i)
        terms.append(term)
        if i < len(tokens):
            kind, value = tokens[i]
            if not (kind == "ident" and value.lower() == "and"):
                raise invalid(f"Invalid filter {text!r}: expected AND before {value!r} (terms "
                              "are joined by AND)")
            i += 1
            if i == len(tokens):
                raise invalid(f"Invalid filter {text!r}: a term must follow AND")
    return terms


def _experiment_tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise invalid(f"Invalid filter {text!r}: unexpected text at {text[pos:].strip()!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _experiment_term(text: str, tokens: list[tuple[str, str]], i: int
                     ) -> tuple[ExperimentTerm, int]:
    kind, ident = tokens[i]
    if kind != "ident":
        raise invalid(f"Invalid filter {text!r}: expected a name like name, creation_time or "
                      f"tags.<key>, got {ident!r}")
    entity, _, key = ident.partition(".") if "." in ident.split("`")[0] else ("", "", ident)
    key = key.strip("`") if key.startswith("`") else key.strip('"')
    if entity.lower() in ("tag", "tags"):
        term_kind = "tag"
    elif entity.lower() in ("", "attribute", "attributes", "attr"):
        term_kind = "attribute"
        if key not in _EXPERIMENT_ATTRIBUTES:
            raise invalid(f"Invalid filter {text!r}: invalid attribute key {key!r}; valid "
                          f"keys are {', '.join(_EXPERIMENT_ATTRIBUTES)}")
    else:
        raise invalid(f"Invalid filter {text!r}: invalid entity type {entity!r}; use "
                      "attributes or tags")
    op, i = _experiment_operator(text, tokens, i + 1)
    if op in ("is null", "is not null"):
        if term_kind != "tag":
            raise invalid(f"Invalid filter {text!r}: IS NULL applies to tags only")
        return ExperimentTerm(term_kind, key, op, None), i
    if op == "in":
        if key != "experiment_id":
            raise invalid(f"Invalid filter {text!r}: IN applies to experiment_id only")
        values, i = _string_list(text, tokens, i)
        return ExperimentTerm(term_kind, key, op, values), i
    if i >= len(tokens):
        raise invalid(f"Invalid filter {text!r}: a value must follow {op.upper()}")
    value_kind, raw = tokens[i]
    numeric = term_kind == "attribute" and key in _NUMERIC
    if numeric:
        if value_kind != "number" or op in ("like", "ilike"):
            raise invalid(f"Invalid filter {text!r}: {key} compares to numbers with =, !=, "
                          "<, <=, > or >=")
        return ExperimentTerm(term_kind, key, op, float(raw)), i + 1
    if value_kind != "string":
        raise invalid(f"Invalid filter {text!r}: {key} compares to quoted strings; got {raw!r}")
    if op in ("<", "<=", ">", ">="):
        raise invalid(f"Invalid filter {text!r}: {op} does not apply to {key}; use =, !=, "
                      "LIKE or ILIKE")
    return ExperimentTerm(term_kind, key, op, _unquote(raw)), i + 1


def _experiment_operator(text: str, tokens: list[tuple[str, str]], i: int) -> tuple[str, int]:
    words = [v.lower() for _, v in tokens[i:i + 3]]
    if not words:
        raise invalid(f"Invalid filter {text!r}: expected an operator at the end")
    kind, raw = tokens[i]
    if kind == "op":
        return {"==": "=", "<>": "!="}.get(raw, raw), i + 1
    if words[0] in ("like", "ilike", "in"):
        return words[0], i + 1
    if words[:2] == ["is", "null"]:
        return "is null", i + 2
    if words[:3] == ["is", "not", "null"]:
        return "is not null", i + 3
    raise invalid(f"Invalid filter {text!r}: expected an operator (=, !=, <, <=, >, >=, "
                  f"LIKE, ILIKE, IN, IS [NOT] NULL), got {raw!r}")


def _string_list(text: str, tokens: list[tuple[str, str]], i: int
                 ) -> tuple[tuple[str, ...], int]:
    if i >= len(tokens) or tokens[i] != ("paren", "("):
        raise invalid(f"Invalid filter {text!r}: IN takes a list like ('1', '2')")
    values, i = [], i + 1
    while i < len(tokens):
        kind, raw = tokens[i]
        if kind != "string":
            raise invalid(f"Invalid filter {text!r}: IN lists quoted strings; got {raw!r}")
        values.append(_unquote(raw))
        if i + 1 < len(tokens) and tokens[i + 1] == ("paren", ","):
            i += 2
            continue
        if i + 1 < len(tokens) and tokens[i + 1] == ("paren", ")"):
            return tuple(values), i + 2
        break
    raise invalid(f"Invalid filter {text!r}: an IN list must end with ')'")


def _unquote(raw: str) -> str:
    quote = raw[0]
    return raw[1:-1].replace(quote * 2, quote)


def like_matcher(pattern: str, *, ignore_case: bool) -> Callable[[str], bool]:
    """SQL LIKE: ``%`` any run of characters, ``_`` one character, the rest literal."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    compiled = re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))
    return lambda value: compiled.fullmatch(value) is not None


def experiment_value(exp: Experiment, key: str) -> str | int:
    if key == "name":
        return exp.name
    if key == "experiment_id":
        return exp.experiment_id
    if key == "creation_time":
        return exp.created_at
    return exp.deleted_at or exp.created_at  # last_update_time, as the message shows it


def matches(exp: Experiment, terms: Sequence[ExperimentTerm]) -> bool:
    return all(_holds(exp, term) for term in terms)


def _holds(exp: Experiment, term: ExperimentTerm) -> bool:
    if term.kind == "tag":
        present = exp.tags.get(term.key)
        if term.op == "is null":
            return present is None
        if term.op == "is not null":
            return present is not None
        if present is None:
            return False
        actual: str | int = present
    else:
        actual = experiment_value(exp, term.key)
    value = term.value
    if term.op == "in":
        assert isinstance(value, tuple)
        return str(actual) in value
    if term.op in ("like", "ilike"):
        return like_matcher(str(value), ignore_case=term.op == "ilike")(str(actual))
    compare: dict[str, Callable[[object, object], bool]] = {
        "=": lambda a, b: a == b, "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,  # type: ignore[operator]
        ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}  # type: ignore[operator]
    return compare[term.op](actual, value)


def experiment_order(items: Sequence[str]) -> list[OrderKey]:
    """MLflow's experiment ``order_by`` ("name", "creation_time DESC", ...), then MLflow's
    default tie-break (creation_time DESC, experiment_id ASC)."""
    keys = []
    for item in items:
        parts = item.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() not in (
                "ASC", "DESC")):
            raise invalid(f"Invalid order_by clause {item!r}: use '<attribute> [ASC|DESC]'")
        name = parts[0].split(".", 1)[1] if parts[0].lower().startswith(
            ("attribute.", "attributes.", "attr.")) else parts[0]
        if name not in _EXPERIMENT_ATTRIBUTES:
            raise invalid(f"Invalid order_by clause {item!r}: order by one of "
                          f"{', '.join(_EXPERIMENT_ATTRIBUTES)}")
        keys.append(OrderKey("attribute", name, len(parts) == 2 and parts[1].upper() == "DESC"))
    seen = {k.key for k in keys}
    keys += [k for k in (OrderKey("attribute", "creation_time", True),
                         OrderKey("attribute", "experiment_id", False)) if k.key not in seen]
    return keys


def sort_experiments(experiments: Sequence[Experiment], order: Sequence[OrderKey]
                     ) -> list[Experiment]:
    out = list(experiments)
    for key in reversed(order):  # stable sorts, least significant key first
        out.sort(key=functools.partial(_sort_value, key=key.key), reverse=key.descending)
    return out


def _sort_value(exp: Experiment, key: str) -> tuple[int, str | int]:
    value = experiment_value(exp, key)
    if key == "experiment_id" and isinstance(value, str) and value.isdigit():
        return (0, int(value))  # "0" and numeric ids in numeric order, before ratchet's
    return (1, value) if isinstance(value, str) else (0, value)


def page_token(offset: int, query: str) -> str:
    raw = json.dumps({"offset": offset, "query": query}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def page_offset(token: str | None, query: str) -> int:
    """The offset a ``page_token`` of the same search stands for (0 without one)."""
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset, same = int(data["offset"]), data["query"] == query
    except (ValueError, KeyError, TypeError):
        raise invalid(f"Invalid page token {token[:20]!r}: not one this search issued") \
            from None
    if not same or offset < 0:
        raise invalid("Invalid page token: it belongs to a different search (pass the same "
                      "filter, order_by and view_type)")
    return offset


__all__ = ["ExperimentTerm", "experiment_filter", "experiment_order", "experiment_value",
           "like_matcher", "matches", "page_offset", "page_token", "run_filter",
           "run_order_by", "sort_experiments"]
