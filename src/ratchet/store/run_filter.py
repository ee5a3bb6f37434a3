"""The ``search_runs`` filter language: text in, a small immutable AST out.

Grammar (keywords are case-insensitive; MLflow-compatible plus OR and parentheses)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := atom ("and" atom)*
    atom       := "(" expr ")" | comparison
    comparison := identifier op value
                | identifier ["not"] "in" "(" value ("," value)* ")"
                | identifier "is" ["not"] "null"
    identifier := entity "." key | attribute-name
    entity     := metrics | metric | params | param | tags | tag
                | attributes | attribute | attr | run
    key        := [A-Za-z0-9_./:-]+ | `back quoted` | "double quoted"
    op         := = | != | < | <= | > | >= | [not] like | [not] ilike
    value      := number | 'single quoted' | "double quoted" | true | false

Semantics the compiler (``run_query``) relies on: a comparison on a metric, param or tag
holds only for runs that *have* that key and whose value satisfies it (as in MLflow), so
``!=`` and ``not in`` never match a run without the key; ``is null`` means "the run has
no such key". A NaN metric exists but fails every value comparison.

This module is pure Python (no SQLAlchemy) so that clients can validate filters cheaply.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NoReturn, TypeAlias

from ratchet.errors import InvalidInput
from ratchet.store.records import RUN_STATUSES

Entity = Literal["metric", "param", "tag", "attribute"]
Value: TypeAlias = str | float | bool | tuple[str, ...] | tuple[float, ...] | None

MAX_FILTER_LENGTH = 10_000
MAX_DEPTH = 50

STRING_ATTRIBUTES = (
    "run_id",
    "run_name",
    "status",
    "experiment_id",
    "parent_run_id",
    "user",
    "host",
    "git_commit",
    "git_branch",
    "entry_point",
)
NUMERIC_ATTRIBUTES = ("start_time", "end_time")  # epoch milliseconds
BOOLEAN_ATTRIBUTES = ("git_dirty",)
ATTRIBUTES = STRING_ATTRIBUTES + NUMERIC_ATTRIBUTES + BOOLEAN_ATTRIBUTES
# MLflow spellings users type out of habit.
_ATTRIBUTE_ALIASES = {"name": "run_name", "user_id": "user", "created": "start_time"}

NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
STRING_OPS = frozenset({"=", "!=", "like", "ilike", "not like", "not ilike"})
LIST_OPS = frozenset({"in", "not in"})
NULL_OPS = frozenset({"is null", "is not null"})

_ENTITIES: dict[str, Entity] = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
}
_ENTITY_PREFIX: dict[str, str] = {
    "metric": "metrics",
    "param": "params",
    "tag": "tags",
    "attribute": "attributes",
}
_SYMBOL_OPS = (
    ("<=", "<="),
    (">=", ">="),
    ("!=", "!="),
    ("<>", "!="),
    ("==", "="),
    ("=", "="),
    ("<", "<"),
    (">", ">"),
)
_OPERATOR_HINT = "use =, !=, <, <=, >, >=, [NOT] LIKE, [NOT] ILIKE, [NOT] IN or IS [NOT] NULL"

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:-")
_OP_CHARS = frozenset("<>=!")
_HEAD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_RE = re.compile(r"[A-Za-z0-9_./:-]+")
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Comparison:
    """``entity.key op value``; ``position`` (0-based offset) is for messages only."""

    entity: Entity
    key: str
    op: str
    value: Value
    position: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


Node: TypeAlias = Comparison | And | Or


@dataclass(frozen=True, slots=True)
class OrderKey:
    entity: Entity
    key: str
    descending: bool = False


def parse_filter(text: str | None) -> Node | None:
    """Parse a filter; ``None``, empty or blank text means "no filter"."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInput(f"a filter must be a string, got {type(text).__name__}")
    parser = _Parser(text, "filter")
    return parser.parse_filter()


def parse_order_by(items: Sequence[str] | None) -> list[OrderKey]:
    """Parse ``["metrics.auc DESC", "params.C", ...]`` (ASC is the default)."""
    if items is None:
        return []
    if isinstance(items, str):  # a lone string is a common slip; treat it as one item
        items = [items]
    keys = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidInput(
                f"order_by[{i}] must be a string like 'metrics.auc DESC', got {type(item).__name__}"
            )
        keys.append(_Parser(item, f"order_by[{i}]").parse_order_key())
    return keys


def format_filter(node: Node | None) -> str:
    """Render an AST as filter text that ``parse_filter`` reads back to an equal AST."""
    if node is None:
        return ""
    if isinstance(node, Comparison):
        ident = format_identifier(node.entity, node.key)
        if node.op in NULL_OPS:
            return f"{ident} {node.op}"
        return f"{ident} {node.op} {_format_value(node.value)}"
    if isinstance(node, And):
        return " and ".join(
            f"({format_filter(item)})" if isinstance(item, Or) else format_filter(item)
            for item in node.items
        )
    # AND binds tighter than OR, so an Or's items never need parentheses.
    return " or ".join(format_filter(item) for item in node.items)


def format_identifier(entity: str, key: str) -> str:
    if _KEY_RE.fullmatch(key):
        return f"{_ENTITY_PREFIX[entity]}.{key}"
    return f"{_ENTITY_PREFIX[entity]}.`{key.replace('`', '``')}`"


def _format_value(value: Value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_format_value(v) for v in value) + ")"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return repr(value)


def _combine(kind: type[And] | type[Or], items: list[Node]) -> Node:
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:  # (a and b) and c == a and b and c: one canonical shape
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["number", "string", "bool"]
    value: str | float | bool
    position: int
    length: int


class _Parser:
    """Recursive descent straight over the characters: what a token is depends on
    where it stands (``"x"`` is a key after ``metrics.`` but a string after ``=``)."""

    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.what = what
        self.pos = 0
        self.depth = 0
        if len(text) > MAX_FILTER_LENGTH:
            raise InvalidInput(
                f"invalid {what}: it is {len(text)} characters long, the limit is "
                f"{MAX_FILTER_LENGTH}; narrow it with fewer conditions"
            )
        # No stored key or value can hold these (PostgreSQL text has no NUL, and lone
        # surrogates cannot be encoded), and the drivers would fail on them.
        unstorable = _UNSTORABLE_RE.search(text)
        if unstorable is not None:
            self.fail(unstorable.start(), f"the character {unstorable.group()!r} cannot be stored")

    # -- entry points -------------------------------------------------------------

    def parse_filter(self) -> Node | None:
        self.skip_ws()
        if self.pos == len(self.text):
            return None
        node = self.or_expr()
        self.skip_ws()
        if self.pos < len(self.text):
            self.fail_expected(self.pos, "AND, OR or the end of the filter")
        return node

    def parse_order_key(self) -> OrderKey:
        self.skip_ws()
        if self.pos == len(self.text):
            self.fail_expected(self.pos, "a column to order by, like 'metrics.auc DESC'")
        entity, key = self.identifier()
        descending = False
        if self.keyword("desc"):
            descending = True
        elif not self.keyword("asc"):
            self.skip_ws()
            if self.pos < len(self.text):
                self.fail_expected(self.pos, "ASC, DESC or the end of the item")
        self.skip_ws()
        if self.pos < len(self.text):
            self.fail_expected(self.pos, "the end of the item")
        return OrderKey(entity, key, descending)

    # -- errors -------------------------------------------------------------------

    def fail(self, pos: int, message: str, length: int = 1) -> NoReturn:
        raise InvalidInput(_error_message(self.what, self.text, pos, message, length))

    def fail_expected(self, pos: int, expected: str, hint: str = "") -> NoReturn:
        token = _token_at(self.text, pos)
        if not token:
            got = "the end of the input"
        elif token.isspace():
            got = "whitespace"
        else:
            got = repr(_shorten(token))
        self.fail(pos, f"expected {expected}, got {got}{hint}", len(token))

    # -- lexical helpers ----------------------------------------------------------

    def skip_ws(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        self.pos = pos

    def keyword(self, word: str) -> bool:
        """Consume ``word`` (ASCII, any case) if it stands next as a whole word."""
        self.skip_ws()
        end = self.pos + len(word)
        candidate = self.text[self.pos : end]
        if not (candidate.isascii() and candidate.lower() == word):
            return False
        if end < len(self.text) and self.text[end] in _NAME_CHARS:
            return False
        self.pos = end
        return True

    def quoted(self) -> str:
        """A quoted string or key; a doubled quote stands for itself and, except in
        back quotes, ``\\'`` ``\\"`` ``\\\\`` are escapes (other backslashes are kept
        so that Windows paths read naturally)."""
        text, start = self.text, self.pos
        quote = text[start]
        out: list[str] = []
        i = start + 1
        while i < len(text):
            c = text[i]
            if c == "\\" and quote != "`" and i + 1 < len(text) and text[i + 1] in "\\'\"":
                out.append(text[i + 1])
                i += 2
            elif c == quote:
                if i + 1 < len(text) and text[i + 1] == quote:
                    out.append(quote)
                    i += 2
                    continue
                self.pos = i + 1
                return "".join(out)
            else:
                out.append(c)
                i += 1
        self.fail(start, f"unterminated {quote} quote: close it with {quote}", len(text) - start)

    # -- grammar ------------------------------------------------------------------

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.keyword("or"):
            items.append(self.and_expr())
        return _combine(Or, items)

    def and_expr(self) -> Node:
        items = [self.atom()]
        while self.keyword("and"):
            items.append(self.atom())
        return _combine(And, items)

    def atom(self) -> Node:
        self.skip_ws()
        if self.pos < len(self.text) and self.text[self.pos] == "(":
            start = self.pos
            if self.depth >= MAX_DEPTH:
                self.fail(start, f"parentheses nest deeper than {MAX_DEPTH} levels")
            self.depth += 1
            self.pos += 1
            node = self.or_expr()
            self.skip_ws()
            if self.pos >= len(self.text) or self.text[self.pos] != ")":
                self.fail_expected(self.pos, f"')' to close the '(' at position {start}")
            self.pos += 1
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        self.skip_ws()
        start = self.pos
        entity, key = self.identifier()
        self.skip_ws()
        op_pos = self.pos
        op = self.operator()
        op_len = self.pos - op_pos
        tokens: list[_Token]
        if op in NULL_OPS:
            tokens = []
        elif op in LIST_OPS:
            tokens = self.value_list()
        else:
            tokens = [self.value()]
        value = self.typed_value(entity, key, op, op_pos, op_len, tokens)
        return Comparison(entity, key, op, value, start)

    def identifier(self) -> tuple[Entity, str]:
        self.skip_ws()
        start = self.pos
        head = _HEAD_RE.match(self.text, start)
        if head is None:
            self.fail_expected(
                start,
                "a name like metrics.<key>, params.<key>, tags.<key> or attributes.<name>, or '('",
            )
        word = head.group()
        self.pos = head.end()
        if self.pos < len(self.text) and self.text[self.pos] == ".":
            entity = _ENTITIES.get(word.lower())
            if entity is None:
                self.fail(
                    start,
                    f"unknown entity {word!r}: use metrics.<key>, params.<key>, "
                    "tags.<key> or attributes.<name>",
                    len(word),
                )
            self.pos += 1
            key_pos = self.pos
            key = self.key()
            if entity == "attribute":
                return entity, self.attribute(key, key_pos)
            return entity, key
        attribute = _canonical_attribute(word)
        if attribute is None:
            self.fail_expected(
                start,
                "a name like metrics.<key>, params.<key>, tags.<key> or "
                f"an attribute ({', '.join(ATTRIBUTES)})",
            )
        return "attribute", attribute

    def key(self) -> str:
        start = self.pos
        if start < len(self.text) and self.text[start] in '`"':
            key = self.quoted()
            if not key:
                self.fail(start, "a key cannot be empty", self.pos - start)
            return key
        match = _KEY_RE.match(self.text, start)
        if match is None:
            self.fail_expected(
                start,
                "a key after '.'",
                " (quote a key with spaces or symbols in back quotes: `my key`)",
            )
        self.pos = match.end()
        return match.group()

    def attribute(self, key: str, key_pos: int) -> str:
        attribute = _canonical_attribute(key)
        if attribute is None:
            self.fail(
                key_pos,
                f"unknown attribute {key!r}: valid attributes are {', '.join(ATTRIBUTES)}",
                self.pos - key_pos,
            )
        return attribute

    def operator(self) -> str:
        self.skip_ws()
        for symbol, op in _SYMBOL_OPS:
            if self.text.startswith(symbol, self.pos):
                self.pos += len(symbol)
                return op
        for word in ("like", "ilike", "in"):
            if self.keyword(word):
                return word
        if self.keyword("not"):
            for word in ("like", "ilike", "in"):
                if self.keyword(word):
                    return f"not {word}"
            self.skip_ws()
            self.fail_expected(self.pos, "LIKE, ILIKE or IN after NOT")
        if self.keyword("is"):
            negated = self.keyword("not")
            if not self.keyword("null"):
                self.skip_ws()
                self.fail_expected(self.pos, "NULL after IS NOT" if negated else "NULL after IS")
            return "is not null" if negated else "is null"
        self.fail_expected(self.pos, "a comparison operator", f" ({_OPERATOR_HINT})")

    def value(self) -> _Token:
        self.skip_ws()
        text, start = self.text, self.pos
        if start < len(text) and text[start] in "'\"":
            string = self.quoted()
            return _Token("string", string, start, self.pos - start)
        number = _NUMBER_RE.match(text, start)
        if number is not None and (
            number.end() == len(text) or text[number.end()] not in _NAME_CHARS
        ):
            parsed = float(number.group())
            if not math.isfinite(parsed):
                self.fail(start, "number out of range", number.end() - start)
            self.pos = number.end()
            return _Token("number", parsed, start, self.pos - start)
        for word, truth in (("true", True), ("false", False)):
            if self.keyword(word):
                return _Token("bool", truth, start, self.pos - start)
        if self.keyword("null"):
            self.fail(
                start,
                "NULL is not a value: to test for a missing value use IS NULL or IS NOT NULL",
                4,
            )
        self.fail_expected(start, "a value (a number or a quoted string)")

    def value_list(self) -> list[_Token]:
        self.skip_ws()
        if self.pos >= len(self.text) or self.text[self.pos] != "(":
            self.fail_expected(self.pos, "'(' to start the IN list")
        self.pos += 1
        tokens = [self.value()]
        while True:
            self.skip_ws()
            c = self.text[self.pos] if self.pos < len(self.text) else ""
            if c == ")":
                self.pos += 1
                return tokens
            if c != ",":
                self.fail_expected(self.pos, "',' or ')' in the IN list")
            self.pos += 1
            tokens.append(self.value())

    # -- type rules ---------------------------------------------------------------

    def typed_value(
        self, entity: Entity, key: str, op: str, op_pos: int, op_len: int, tokens: list[_Token]
    ) -> Value:
        if op in NULL_OPS:
            return None
        label = f"{entity} {key!r}"
        attribute = key if entity == "attribute" else None
        if entity == "metric" or attribute in NUMERIC_ATTRIBUTES:
            kind, ops = "number", NUMERIC_OPS | LIST_OPS
            why = f"{label} is a number: use =, !=, <, <=, >, >=, IN or IS NULL"
        elif attribute in BOOLEAN_ATTRIBUTES:
            kind, ops = "bool", frozenset({"=", "!="})
            why = f"{label} is true or false: use = or != (or IS NULL)"
        elif attribute == "status":
            kind, ops = "status", frozenset({"=", "!="}) | LIST_OPS
            why = f"{label} is one of {', '.join(RUN_STATUSES)}: use =, != or IN"
        else:
            kind, ops = "string", STRING_OPS | LIST_OPS
            why = f"{label} is a string: use =, !=, LIKE, ILIKE, IN or IS NULL"
        if op not in ops:
            self.fail(op_pos, f"{op.upper()} does not apply here; {why}", op_len)
        values = [self.convert(token, kind, label) for token in tokens]
        if op in LIST_OPS:
            return tuple(values)  # type: ignore[return-value]  # homogeneous by `kind`
        return values[0]

    def convert(self, token: _Token, kind: str, label: str) -> str | float | bool:
        source = self.text[token.position : token.position + token.length]
        if kind == "number":
            if token.kind != "number":
                self.fail(
                    token.position, f"{label} compares to numbers, got {source}", token.length
                )
            return token.value
        if kind == "bool":
            if token.kind == "bool":
                return token.value
            if token.kind == "string" and str(token.value).lower() in ("true", "false"):
                return str(token.value).lower() == "true"
            self.fail(
                token.position, f"{label} compares to true or false, got {source}", token.length
            )
        if token.kind != "string":
            self.fail(
                token.position,
                f"{label} compares to strings; quote the value: '{source}'",
                token.length,
            )
        value = str(token.value)
        if kind == "status":
            value = value.lower()
            if value not in RUN_STATUSES:
                self.fail(
                    token.position,
                    f"unknown run status {source}; expected one of {', '.join(RUN_STATUSES)}",
                    token.length,
                )
        return value


def _canonical_attribute(name: str) -> str | None:
    if not name.isascii():
        return None
    lowered = name.lower()
    lowered = _ATTRIBUTE_ALIASES.get(lowered, lowered)
    return lowered if lowered in ATTRIBUTES else None


def _token_at(text: str, pos: int) -> str:
    """The token an error points at, for the message and the caret width."""
    if pos >= len(text):
        return ""
    c = text[pos]
    if c in "'\"`":
        end = text.find(c, pos + 1)
        return text[pos : end + 1] if end != -1 else text[pos:]
    for charset in (_NAME_CHARS, _OP_CHARS):
        if c in charset:
            end = pos
            while end < len(text) and text[end] in charset:
                end += 1
            return text[pos:end]
    return c


def _shorten(token: str, limit: int = 40) -> str:
    return token if len(token) <= limit else token[: limit - 3] + "..."


def _error_message(what: str, text: str, pos: int, message: str, length: int) -> str:
    """``invalid filter at position N: ...`` plus the offending line with carets under it."""
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    if line_end == -1:
        line_end = len(text)
    line = text[line_start:line_end]
    col = pos - line_start
    # Show at most ~100 characters around the position of a long line.
    lo = max(0, col - 40)
    hi = min(len(line), lo + 100)
    shown = line[lo:hi]
    prefix = "..." if lo > 0 else ""
    suffix = "..." if hi < len(line) else ""
    caret_col = len(prefix) + col - lo
    width = max(1, min(length, hi - col))
    # Tabs and other unprintables become one space each so the caret stays aligned.
    shown = "".join(ch if ch.isprintable() else " " for ch in shown)
    return (
        f"invalid {what} at position {pos}: {message}\n"
        f"  {prefix}{shown}{suffix}\n"
        f"  {' ' * caret_col}{'^' * width}"
    )


__all__ = [
    "ATTRIBUTES",
    "And",
    "Comparison",
    "Node",
    "Or",
    "OrderKey",
    "format_filter",
    "parse_filter",
    "parse_order_by",
]
