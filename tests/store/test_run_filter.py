"""The search_runs filter language: parsing, errors that point at the token, round trips."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine
from sqlalchemy.dialects import postgresql

from ratchet.errors import InvalidInput
from ratchet.store.records import RUN_STATUSES
from ratchet.store.run_filter import (
    ATTRIBUTES,
    BOOLEAN_ATTRIBUTES,
    LIST_OPS,
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    NULL_OPS,
    NUMERIC_ATTRIBUTES,
    NUMERIC_OPS,
    STRING_ATTRIBUTES,
    STRING_OPS,
    And,
    Comparison,
    Node,
    Or,
    OrderKey,
    format_filter,
    parse_filter,
    parse_order_by,
)
from ratchet.store.run_query import build_search
from ratchet.store.schema import metadata


def C(entity: str, key: str, op: str, value: object = None) -> Comparison:
    return Comparison(entity, key, op, value)  # type: ignore[arg-type]


VALID = [
    ("metrics.auc > 0.9", C("metric", "auc", ">", 0.9)),
    ("metric.auc>=1", C("metric", "auc", ">=", 1.0)),
    ("METRICS.auc = -1.5e-3", C("metric", "auc", "=", -1.5e-3)),
    ("metrics.auc == +.5", C("metric", "auc", "=", 0.5)),
    ("metrics.auc <> 5.", C("metric", "auc", "!=", 5.0)),
    ("metrics.val/loss:avg-1 < 2", C("metric", "val/loss:avg-1", "<", 2.0)),
    ("metrics.`my metric` <= 3", C("metric", "my metric", "<=", 3.0)),
    ('metrics."my metric" != 3', C("metric", "my metric", "!=", 3.0)),
    ("metrics.`a``b` = 1", C("metric", "a`b", "=", 1.0)),
    ("metrics.auc in (1, 2.5)", C("metric", "auc", "in", (1.0, 2.5))),
    ("metrics.auc NOT IN (1)", C("metric", "auc", "not in", (1.0,))),
    ("metrics.auc is null", C("metric", "auc", "is null")),
    ("metrics.auc IS NOT NULL", C("metric", "auc", "is not null")),
    ("params.model = 'xgb'", C("param", "model", "=", "xgb")),
    ('param.model = "xgb"', C("param", "model", "=", "xgb")),
    ("params.model = 'it''s'", C("param", "model", "=", "it's")),
    (r"params.model = 'it\'s'", C("param", "model", "=", "it's")),
    (r"params.path = 'C:\dir\\x'", C("param", "path", "=", "C:\\dir\\x")),
    ("params.model = ''", C("param", "model", "=", "")),
    ("params.lr like '0.%'", C("param", "lr", "like", "0.%")),
    ("params.lr ILIKE '%A'", C("param", "lr", "ilike", "%A")),
    ("params.lr not like 'a'", C("param", "lr", "not like", "a")),
    ("params.lr Not ILike 'a'", C("param", "lr", "not ilike", "a")),
    ("params.lr in ('a', \"b\")", C("param", "lr", "in", ("a", "b"))),
    ("tags.team = 'vision'", C("tag", "team", "=", "vision")),
    ("tag.`x y` != 'z'", C("tag", "x y", "!=", "z")),
    ("tags.mlflow.source.name = 'a'", C("tag", "mlflow.source.name", "=", "a")),
    ("attributes.status = 'FINISHED'", C("attribute", "status", "=", "finished")),
    ("status in ('running', 'Killed')", C("attribute", "status", "in", ("running", "killed"))),
    ("run.run_name = 'a'", C("attribute", "run_name", "=", "a")),
    ("attr.name like 'a%'", C("attribute", "run_name", "like", "a%")),
    ("run_name ilike 'A%'", C("attribute", "run_name", "ilike", "A%")),
    ("attributes.start_time >= 1700000000000", C("attribute", "start_time", ">=", 1.7e12)),
    ("end_time is null", C("attribute", "end_time", "is null")),
    ("attributes.git_dirty = true", C("attribute", "git_dirty", "=", True)),
    ("git_dirty != 'FALSE'", C("attribute", "git_dirty", "!=", False)),
    ("attributes.user_id = 'ann'", C("attribute", "user", "=", "ann")),
    (
        "metrics.auc > 0.9 and params.model = 'xgb'",
        And((C("metric", "auc", ">", 0.9), C("param", "model", "=", "xgb"))),
    ),
    (
        "metrics.a = 1 or metrics.b = 2 and metrics.c = 3",
        Or(
            (
                C("metric", "a", "=", 1.0),
                And((C("metric", "b", "=", 2.0), C("metric", "c", "=", 3.0))),
            )
        ),
    ),
    (
        "(metrics.a = 1 or metrics.b = 2) and metrics.c = 3",
        And(
            (
                Or((C("metric", "a", "=", 1.0), C("metric", "b", "=", 2.0))),
                C("metric", "c", "=", 3.0),
            )
        ),
    ),
    (
        "metrics.a = 1 and (metrics.b = 2 and metrics.c = 3)",
        And((C("metric", "a", "=", 1.0), C("metric", "b", "=", 2.0), C("metric", "c", "=", 3.0))),
    ),
    ("((((metrics.a = 1))))", C("metric", "a", "=", 1.0)),
    (
        "  metrics.a=1\tAND\nparams.b='x'  ",
        And((C("metric", "a", "=", 1.0), C("param", "b", "=", "x"))),
    ),
    (
        "params.android = 'x' and tags.order = 'y'",  # keywords only match whole words
        And((C("param", "android", "=", "x"), C("tag", "order", "=", "y"))),
    ),
    ("metrics.a=1 and(metrics.b=2)", And((C("metric", "a", "=", 1.0), C("metric", "b", "=", 2.0)))),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[v[0] for v in VALID])
def test_valid_filters_parse_to_the_expected_ast(text: str, expected: Node) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_empty_filter_means_no_filter(text: str | None) -> None:
    assert parse_filter(text) is None


def test_comparisons_record_their_position() -> None:
    node = parse_filter("metrics.a = 1 and  (params.b = 'x' or tags.c = 'y')")
    assert isinstance(node, And)
    first, nested = node.items
    assert isinstance(first, Comparison) and first.position == 0
    assert isinstance(nested, Or)
    assert [c.position for c in nested.items if isinstance(c, Comparison)] == [20, 38]


# (filter, position, caret width, words the message must contain)
INVALID = [
    ("metrics.auc foo 0.9", 12, 3, "expected a comparison operator, got 'foo'"),
    ("metrics.auc > 'high'", 14, 6, "compares to numbers"),
    ("metrics.auc like '0.9'", 12, 4, "LIKE does not apply"),
    ("metrics.auc in ('a')", 16, 3, "compares to numbers"),
    ("params.lr = 0.1", 12, 3, "quote the value: '0.1'"),
    ("params.lr < '1'", 10, 1, "< does not apply"),
    ("tags.t > 'a'", 7, 1, "> does not apply"),
    ("params.lr = true", 12, 4, "quote the value"),
    ("status = 'done'", 9, 6, "unknown run status 'done'"),
    ("status like 'f%'", 7, 4, "LIKE does not apply"),
    ("attributes.start_time > '2024-01-01'", 24, 12, "compares to numbers"),
    ("attributes.start_time like '1%'", 22, 4, "LIKE does not apply"),
    ("attributes.git_dirty = 'maybe'", 23, 7, "true or false"),
    ("attributes.git_dirty < 1", 21, 1, "< does not apply"),
    ("attributes.color = 'red'", 11, 5, "unknown attribute 'color'"),
    ("color = 'red'", 0, 5, "expected a name like metrics.<key>"),
    ("metric = 1", 0, 6, "expected a name like"),
    ("foo.bar = 1", 0, 3, "unknown entity 'foo'"),
    ("metrics. = 1", 8, 1, "expected a key after '.'"),
    ("metrics.`` = 1", 8, 2, "a key cannot be empty"),
    ("metrics.a = ", 12, 1, "expected a value"),
    ("metrics.a =", 11, 1, "got the end of the input"),
    ("metrics.a = 1 and", 17, 1, "expected a name like"),
    ("metrics.a = 1 and or", 18, 2, "expected a name like"),
    ("metrics.a = 1 metrics.b = 2", 14, 9, "expected AND, OR or the end"),
    ("metrics.a = 1)", 13, 1, "expected AND, OR or the end"),
    ("(metrics.a = 1", 14, 1, "')' to close the '(' at position 0"),
    ("()", 1, 1, "expected a name like"),
    ("metrics.a = 'open", 12, 5, "unterminated ' quote"),
    ("metrics.`open = 1", 8, 9, "unterminated ` quote"),
    ("metrics.a in 1", 13, 1, "'(' to start the IN list"),
    ("metrics.a in (1,)", 16, 1, "expected a value"),
    ("metrics.a in (1 2)", 16, 1, "',' or ')'"),
    ("metrics.a in ()", 14, 1, "expected a value"),
    ("metrics.a not = 1", 14, 1, "LIKE, ILIKE or IN after NOT"),
    ("metrics.a is 1", 13, 1, "NULL after IS"),
    ("metrics.a is not nul", 17, 3, "NULL after IS NOT"),
    ("metrics.a = null", 12, 4, "IS NULL"),
    ("metrics.a = 1e999", 12, 5, "number out of range"),
    ("metrics.a = 1abc", 12, 4, "expected a value"),
    ("metrics.a = 0x10", 12, 4, "expected a value"),
    ("params.a = 'x' && params.b = 'y'", 15, 1, "expected AND, OR"),
    ("params.a = 'x' AND\tfoo", 19, 3, "expected a name like"),
]


@pytest.mark.parametrize(
    ("text", "position", "width", "words"), INVALID, ids=[v[0] for v in INVALID]
)
def test_invalid_filters_point_at_the_offending_token(
    text: str, position: int, width: int, words: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter(text)
    message = str(info.value)
    headline, shown, carets = message.split("\n")
    assert headline.startswith(f"invalid filter at position {position}: ")
    assert words in headline
    assert shown == "  " + text.replace("\t", " ")
    assert carets == "  " + " " * position + "^" * width


def test_error_on_a_later_line_shows_that_line() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter("metrics.a = 1\n  and metrics.b ~ 2")
    _, shown, carets = str(info.value).split("\n")
    assert shown == "    and metrics.b ~ 2"
    assert carets == "                  ^"
    assert "position 30" in str(info.value)


def test_error_in_a_long_filter_shows_a_window_around_the_token() -> None:
    text = " and ".join(f"metrics.m{i} > {i}" for i in range(200)) + " and metrics.x ? 1"
    with pytest.raises(InvalidInput) as info:
        parse_filter(text)
    _, shown, carets = str(info.value).split("\n")
    assert len(shown) < 120
    assert shown.startswith("  ...")
    column = carets.index("^")
    assert shown[column] == "?"


def test_too_long_and_too_deep_filters_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="limit is 10000"):
        parse_filter("metrics.a = 1 or " * (MAX_FILTER_LENGTH // 10))
    deep = "(" * (MAX_DEPTH + 1) + "metrics.a = 1" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(InvalidInput, match=f"deeper than {MAX_DEPTH}"):
        parse_filter(deep)
    ok = "(" * MAX_DEPTH + "metrics.a = 1" + ")" * MAX_DEPTH
    assert parse_filter(ok) == C("metric", "a", "=", 1.0)
    # Deeper than any recursion limit: still a clean InvalidInput.
    with pytest.raises(InvalidInput):
        parse_filter("(" * 5000)


def test_unstorable_characters_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match=r"position 13: the character '\\x00' cannot be stored"):
        parse_filter("params.a = 'x\x00'")
    with pytest.raises(InvalidInput, match="position 11: the character"):
        parse_filter("params.a = \ud800")


def test_a_non_string_filter_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        parse_filter(42)  # type: ignore[arg-type]


# -- order_by -----------------------------------------------------------------------


def test_order_by_items() -> None:
    assert parse_order_by(None) == []
    assert parse_order_by(
        [
            "metrics.auc DESC",
            "attributes.start_time",
            "params.C asc",
            "tags.`x y` desc",
            " run_name ",
            'metrics."a b"',
        ]
    ) == [
        OrderKey("metric", "auc", True),
        OrderKey("attribute", "start_time", False),
        OrderKey("param", "C", False),
        OrderKey("tag", "x y", True),
        OrderKey("attribute", "run_name", False),
        OrderKey("metric", "a b", False),
    ]
    assert parse_order_by("metrics.auc desc") == [OrderKey("metric", "auc", True)]


@pytest.mark.parametrize(
    ("items", "prefix", "carets"),
    [
        (
            ["metrics.auc", "metrics.auc foo"],
            "invalid order_by[1] at position 12",
            "  " + " " * 12 + "^^^",
        ),
        (["metrics.auc desc x"], "invalid order_by[0] at position 17", "  " + " " * 17 + "^"),
        ([""], "invalid order_by[0] at position 0", "  ^"),
        (["attributes.nope"], "invalid order_by[0] at position 11", "  " + " " * 11 + "^^^^"),
        (["bogus.x"], "invalid order_by[0] at position 0", "  ^^^^^"),
        (["metrics.auc > 1"], "invalid order_by[0] at position 12", "  " + " " * 12 + "^"),
    ],
)
def test_bad_order_by_items_point_at_the_item(items: list[str], prefix: str, carets: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_order_by(items)
    message = str(info.value)
    assert message.startswith(prefix)
    assert message.split("\n")[2] == carets


def test_order_by_item_must_be_a_string() -> None:
    with pytest.raises(InvalidInput, match=r"order_by\[0\] must be a string"):
        parse_order_by([3])  # type: ignore[list-item]


# -- property tests -----------------------------------------------------------------

# Any character that can be stored: not NUL, not a lone surrogate (the parser rejects them).
_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
keys = st.text(_chars, min_size=1, max_size=12)
numbers = st.floats(allow_nan=False, allow_infinity=False)
strings = st.text(_chars, max_size=12)


def _comparison(
    entity: str, key: st.SearchStrategy[str], ops: frozenset[str], values: st.SearchStrategy[object]
) -> st.SearchStrategy[Comparison]:
    def build(k: str, op: str, value: object, many: list[object]) -> Comparison:
        if op in NULL_OPS:
            return C(entity, k, op)
        if op in LIST_OPS:
            return C(entity, k, op, tuple(many))
        return C(entity, k, op, value)

    return st.builds(
        build,
        key,
        st.sampled_from(sorted(ops | LIST_OPS | NULL_OPS)),
        values,
        st.lists(values, min_size=1, max_size=3),
    )


plain_string_attributes = sorted(set(STRING_ATTRIBUTES) - {"status"})
comparisons = st.one_of(
    _comparison("metric", keys, NUMERIC_OPS, numbers),
    _comparison("param", keys, STRING_OPS, strings),
    _comparison("tag", keys, STRING_OPS, strings),
    _comparison("attribute", st.sampled_from(plain_string_attributes), STRING_OPS, strings),
    _comparison(
        "attribute", st.just("status"), frozenset({"=", "!="}), st.sampled_from(RUN_STATUSES)
    ),
    _comparison("attribute", st.sampled_from(NUMERIC_ATTRIBUTES), NUMERIC_OPS, numbers),
    st.builds(
        lambda k, op, v: C("attribute", k, op, v),
        st.sampled_from(BOOLEAN_ATTRIBUTES),
        st.sampled_from(["=", "!="]),
        st.booleans(),
    ),
)


def _junction(kind: type[And] | type[Or]) -> Callable[[list[Node]], Node]:
    def build(items: list[Node]) -> Node:
        flat: list[Node] = []
        for item in items:  # the canonical shape the parser produces
            flat.extend(item.items if isinstance(item, kind) else (item,))
        return kind(tuple(flat))

    return build


filters: st.SearchStrategy[Node] = st.recursive(
    comparisons,
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=4).map(_junction(And)),
        st.lists(children, min_size=2, max_size=4).map(_junction(Or)),
    ),
    max_leaves=12,
)
order_keys = st.one_of(
    st.builds(OrderKey, st.sampled_from(["metric", "param", "tag"]), keys, st.booleans()),
    st.builds(OrderKey, st.just("attribute"), st.sampled_from(ATTRIBUTES), st.booleans()),
)


@given(filters)
@settings(max_examples=300)
def test_round_trip_render_then_parse(node: Node) -> None:
    assert parse_filter(format_filter(node)) == node


GRAMMAR_WORDS = [
    "metrics.a",
    "params.b",
    "tags.`c d`",
    "attributes.status",
    "start_time",
    "git_dirty",
    "and",
    "or",
    "not",
    "in",
    "like",
    "ILIKE",
    "is",
    "null",
    "true",
    "(",
    ")",
    ",",
    "=",
    "!=",
    "<",
    ">=",
    "'x'",
    '"y"',
    "'",
    "`",
    "1",
    "-2.5e3",
    ".",
    "\\",
    "'run''s'",
    "\n",
]


@given(
    st.one_of(
        st.text(),
        st.lists(st.sampled_from(GRAMMAR_WORDS), max_size=20).map(" ".join),
        st.lists(st.sampled_from(GRAMMAR_WORDS), max_size=20).map("".join),
    )
)
@settings(max_examples=500)
def test_garbage_parses_or_raises_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        parse_filter(text)


@given(filters, st.data())
@settings(max_examples=200)
def test_mutated_valid_filters_parse_or_raise_invalid_input(
    node: Node, data: st.DataObject
) -> None:
    text = format_filter(node)
    cut = data.draw(st.integers(0, len(text)))
    insert = data.draw(st.sampled_from(["", "(", ")", "'", "`", " and", " or ", "=", "x"]))
    drop = data.draw(st.integers(0, 3))
    with contextlib.suppress(InvalidInput):
        parse_filter(text[:cut] + insert + text[cut + drop :])


@given(st.lists(st.one_of(st.text(), st.sampled_from(GRAMMAR_WORDS)), max_size=3))
def test_garbage_order_by_parses_or_raises_invalid_input(items: list[str]) -> None:
    with contextlib.suppress(InvalidInput):
        parse_order_by(items)


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path: Path = tmp_path_factory.mktemp("filters") / "empty.db"
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@given(filters, st.lists(order_keys, max_size=3))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_random_valid_filters_compile_and_run(
    empty_db: Engine, node: Node, order: list[OrderKey]
) -> None:
    stmt = build_search(experiment_ids=None, filter_node=node, order=order)
    with empty_db.connect() as conn:
        assert conn.execute(stmt.limit(5)).all() == []
    # And they compile for PostgreSQL (executed against a real server in test_run_query).
    pg = build_search(experiment_ids=["e"], filter_node=node, order=order, dialect="postgresql")
    pg.compile(dialect=postgresql.psycopg.dialect())
