"""Compile a parsed run filter (see ``run_filter``) into one SQLAlchemy Core select.

The database does all the filtering and ordering; nothing is loaded and filtered in
Python. Shape of the query, chosen so the planner can start from an index:

* each metric / param / tag comparison of the top-level AND becomes an INNER JOIN of an
  aliased ``latest_metrics`` / ``params`` / ``run_tags`` on ``key = :k AND value op :v``
  (all conditions on one key share one alias: a run has at most one row per key);
* comparisons under an OR, and ``is null`` ("the run has no such key"), become
  correlated ``EXISTS`` / ``NOT EXISTS`` subqueries;
* ordering by a metric / param / tag LEFT JOINs it (reusing a filter join on the same
  key), with NULLs last in either direction, then a stable tie-break.

Values are always bound parameters.

With a filter that most runs pass, that shape is slow at scale: the planner drives
from a filter (tens of thousands of rows at 100k runs) and sorts them all.
``search_rows`` then first tries the *index-order* form (``index_order=True``) when the
search is led by a metric (or by the start time, the default, within given
experiments): that key's index (``latest_metrics (key, value, run_id)``, ``runs
(experiment_id, start_time)``) is read in order, each entry checked with primary-key
lookups, and the scan stops at the page's LIMIT. A bound on the key (``value >= b``
descending, ``<= b`` ascending, ``b`` read from the index) caps how much one try reads.
Both forms sort by the same keys, and the index-order rows are exactly the matching
runs whose first sort key is non-NULL and not past the bound: an initial segment of the
full order (NULLs sort last, past every bound), so a try that fills the whole page
returns the same page. Otherwise (a selective filter, a page reaching runs without the
metric, a deep page) the full query runs as before.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    Float,
    FromClause,
    Join,
    Row,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
    text,
)
from sqlalchemy.ext.compiler import compiles

from ratchet.errors import InvalidInput
from ratchet.store.records import RUN_STATUSES
from ratchet.store.run_filter import (
    ATTRIBUTES,
    BOOLEAN_ATTRIBUTES,
    LIST_OPS,
    NULL_OPS,
    NUMERIC_ATTRIBUTES,
    And,
    Comparison,
    Node,
    Or,
    OrderKey,
)
from ratchet.store.schema import latest_metrics, params, run_tags, runs

DIALECTS = ("sqlite", "postgresql")
# SQLite allows at most 64 tables in one join. The filter joins at most MAX_JOINS // 2
# keys (the rest use EXISTS); order keys join up to MAX_JOINS in all, then fall back to
# correlated scalar subqueries.
MAX_JOINS = 24

_KEYED = {"metric": latest_metrics, "param": params, "tag": run_tags}
_ALIAS_PREFIX = {"metric": "lm", "param": "p", "tag": "t"}
_ATTRIBUTE_COLUMNS: dict[str, Any] = {
    "run_id": runs.c.run_id,
    "run_name": runs.c.name,
    "status": runs.c.status,
    "experiment_id": runs.c.experiment_id,
    "parent_run_id": runs.c.parent_run_id,
    "user": runs.c.user,
    "host": runs.c.host,
    "git_commit": runs.c.git_commit,
    "git_branch": runs.c.git_branch,
    "entry_point": runs.c.entry_point,
    "start_time": runs.c.start_time,
    "end_time": runs.c.end_time,
    "git_dirty": runs.c.git_dirty,
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_INT64 = 2**63
DEFAULT_ORDER = (OrderKey("attribute", "start_time", True), OrderKey("attribute", "run_id", True))


def build_search(
    *,
    experiment_ids: Sequence[str] | None,
    filter_node: Node | None,
    order: Sequence[OrderKey],
    statuses: Sequence[str] | None = None,
    dialect: str = "sqlite",
    index_order: bool = False,
    bound: float | None = None,
) -> Select[Any]:
    """A select of ``run_id`` then ``order_0, order_1, ...`` (the values ordered by),
    already ordered, with no LIMIT/OFFSET. ``None`` experiment ids means all.

    ``index_order`` (the first order key must be a metric or the start time, see
    ``index_order_key``) keeps only the runs that have a non-NaN value of that metric, at
    or before ``bound`` in the sort direction if given (``value >= bound`` descending,
    ``<=`` ascending), and joins so that the planner starts from that key's index: an
    initial segment of the same search without it."""
    if dialect not in DIALECTS:
        raise ValueError(f"unsupported dialect {dialect!r}; expected one of {DIALECTS}")
    query = _Compiler(dialect)
    if index_order:
        lead = index_order_key(order, experiment_ids)
        if lead is None:
            raise ValueError("index_order needs a metric or the start time as the first "
                             "order key (the start time within given experiments)")
        query.drive_from(lead, bound)
    elif bound is not None:
        raise ValueError("bound needs index_order")
    if experiment_ids is not None:
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        query.where.append(runs.c.experiment_id.in_(ids))
    if statuses is not None:
        query.where.append(runs.c.status.in_(_statuses(statuses)))
    if filter_node is not None:
        query.add_filter(filter_node)
    columns: list[Any] = [runs.c.run_id]
    order_by: list[Any] = []
    for i, order_key in enumerate(full_order(order)):
        expr, nullable = query.order_value(order_key)
        columns.append(expr.label(f"order_{i}"))
        if nullable:
            # Portable NULLS LAST in both directions: false (0) sorts before true (1).
            order_by.append(expr.is_(None))
        order_by.append(expr.desc() if order_key.descending else expr.asc())
    return select(*columns).select_from(query.source).where(*query.where).order_by(*order_by)


def index_order_key(
    order: Sequence[OrderKey], experiment_ids: Sequence[str] | None
) -> OrderKey | None:
    """The order key an index-order search starts from, if it has one: a leading metric
    (``latest_metrics (key, value, run_id)``), or the start time (also the default order)
    of runs in given experiments (``runs (experiment_id, start_time)``)."""
    lead = full_order(order)[0]
    if lead.entity == "metric":
        return lead
    if lead == OrderKey("attribute", "start_time", lead.descending) and experiment_ids and (
        isinstance(experiment_ids, str) or len(experiment_ids) <= MAX_START_TIME_EXPERIMENTS
    ):
        return lead
    return None


def full_order(order: Sequence[OrderKey]) -> list[OrderKey]:
    """The order keys a search sorts by: the caller's, then the start-time / run-id
    tie-break (minus any attribute the caller already ordered by)."""
    seen = {k.key for k in order if k.entity == "attribute"}
    return [*order, *(k for k in DEFAULT_ORDER if k.key not in seen)]


# One index-order try reads at most about this many index entries of the sort metric
# (and never fewer than INDEX_ORDER_WANTED per row wanted); a second try extrapolates
# from the first one's hit rate. Each entry costs a few primary-key lookups (~10 us), so
# a failed try costs ~10 ms before the full query runs.
INDEX_ORDER_FIRST_SCAN = 1_000
INDEX_ORDER_WANTED = 10
INDEX_ORDER_MAX_SCAN = 20_000
# A top-level filter term that fewer runs match than this makes the filter-driven plan
# (read that term's index range, sort the matches) the cheaper one: about
# sqrt(page x runs) for a 100-row page of 100k runs, where both plans cost the same.
# SQLite's covering indexes answer the count in well under a millisecond. On PostgreSQL
# a metric count reads table pages (heap fetches until VACUUM marks them all-visible:
# 10-40 ms for 3,000 at 100k runs), more than a failed index-order try costs (~1,000
# entries, 10-20 ms), so only param terms are checked there.
SELECTIVE_TERM = 3_000
SELECTIVE_TERMS_CHECKED = 4
# The start-time bound takes one index read per experiment.
MAX_START_TIME_EXPERIMENTS = 8
# Terms SQLite's (key, value, run_id) indexes of latest_metrics and params answer, and
# the ones PostgreSQL's hash index on params.value answers (reading table rows anyway,
# ~1 ms per 1,000: no visibility-map trap); its metric counts are skipped, see above.
_INDEXED_OPS = {"metric": ("=", "<", "<=", ">", ">=", "in"), "param": ("=", "in")}
_PG_INDEXED_OPS = {"param": ("=", "in")}
# A bounded count tempts PostgreSQL into a sequential scan ("3,000 rows come soon").
_PG_INDEX_SCAN = {"enable_seqscan": "off", "enable_bitmapscan": "off"}
# PostgreSQL estimates the rows of a param filter badly (key and value as independent)
# and prefers hashing them all; inside one index-order try, nested loops in index order
# are known to be right, so the other strategies are switched off for that statement.
_PG_INDEX_ORDER = {
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
    "enable_bitmapscan": "off",
    "enable_sort": "off",
    "max_parallel_workers_per_gather": "0",
}


def search_rows(
    conn: Connection,
    *,
    experiment_ids: Sequence[str] | None,
    filter_node: Node | None,
    order: Sequence[OrderKey],
    statuses: Sequence[str] | None = None,
    include_deleted: bool = False,
    columns: Sequence[Any] = (),
    offset: int = 0,
    count: int,
) -> list[Row[Any]]:
    """Rows ``offset .. offset + count - 1`` of ``build_search``'s ordered result (plus
    ``columns``), soft-deleted runs excluded unless ``include_deleted``. Tries the
    index-order form first when ``index_order_key`` names a key to start from and no
    top-level filter term is selective enough to start from instead (module docstring)."""

    def fetch(stmt: Select[Any]) -> list[Row[Any]]:
        if not include_deleted:
            stmt = stmt.where(runs.c.deleted_at.is_(None))
        return list(conn.execute(stmt.add_columns(*columns).limit(count).offset(offset)).all())

    def build(**index: Any) -> Select[Any]:
        return build_search(experiment_ids=experiment_ids, filter_node=filter_node, order=order,
                            statuses=statuses, dialect=conn.dialect.name, **index)

    wanted = offset + count
    lead = index_order_key(order, experiment_ids)
    if (
        lead is not None
        and wanted * INDEX_ORDER_WANTED <= INDEX_ORDER_MAX_SCAN
        and not _has_selective_term(conn, filter_node)
    ):
        scan = max(INDEX_ORDER_FIRST_SCAN, wanted * INDEX_ORDER_WANTED)
        for _ in range(2):
            bound = _nth_value(conn, lead, experiment_ids, scan)
            with _pg_settings(conn, _PG_INDEX_ORDER):
                rows = fetch(build(index_order=True, bound=bound))
            if len(rows) == count:
                return rows
            # Too few: the whole index was read (the page reaches runs without the metric),
            # or nothing matched (a selective filter), or more than the budget is needed.
            found = offset + len(rows)
            if bound is None or found == 0:
                break
            scan = -(-scan * wanted * 3 // (found * 2))  # 1.5 x the extrapolated need
            if scan > INDEX_ORDER_MAX_SCAN:
                break
    return fetch(build())


def _has_selective_term(conn: Connection, node: Node | None) -> bool:
    """Whether a top-level AND term of the filter that an index answers (a metric
    comparison; a param ``=`` / ``in``) matches fewer than ``SELECTIVE_TERM`` rows: a
    bounded count on that index, well under a millisecond."""
    compiler = _Compiler(conn.dialect.name)
    indexed = _INDEXED_OPS if conn.dialect.name == "sqlite" else _PG_INDEXED_OPS
    terms = [
        item for item in (node.items if isinstance(node, And) else (node,) if node else ())
        if isinstance(item, Comparison) and item.op in indexed.get(item.entity, ())
    ]
    for item in terms[:SELECTIVE_TERMS_CHECKED]:
        table = _KEYED[item.entity]
        matches = (
            select(literal_column("1"))
            .select_from(table)
            .where(table.c.key == item.key, compiler.condition(table.c.value, item))
            .limit(SELECTIVE_TERM)
            .subquery()
        )
        with _pg_settings(conn, _PG_INDEX_SCAN):
            found = conn.execute(select(func.count()).select_from(matches)).scalar_one()
        if found < SELECTIVE_TERM:
            return True
    return False


def _nth_value(
    conn: Connection, order_key: OrderKey, experiment_ids: Sequence[str] | None, n: int
) -> float | None:
    """A bound that at least ``n`` index entries of the order key reach, read from its
    index, or ``None`` if fewer exist: the ``n``-th value of a metric over all runs, or
    the tightest of each experiment's ``n``-th start time."""
    if order_key.entity == "metric":
        found = conn.execute(_nth(latest_metrics.c.value, order_key, n, latest_metrics.c.key
                                  == order_key.key, latest_metrics.c.value.is_not(None))).scalar()
        return None if found is None else float(found)
    assert experiment_ids
    ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
    values = [
        value for e in ids
        if (value := conn.execute(_nth(runs.c.start_time, order_key, n,
                                       runs.c.experiment_id == e)).scalar()) is not None
    ]
    if not values:
        return None
    return max(values) if order_key.descending else min(values)


def _nth(column: Any, order_key: OrderKey, n: int, *where: Any) -> Select[Any]:
    by = column.desc() if order_key.descending else column.asc()
    return select(column).where(*where).order_by(by).limit(1).offset(n - 1)


@contextmanager
def _pg_settings(conn: Connection, settings: dict[str, str]) -> Iterator[None]:
    """Planner settings for the statements run inside (PostgreSQL only): set
    transaction-locally and restored after, so later statements plan as usual."""
    if conn.dialect.name != "postgresql":
        yield
        return
    names = {f"n{i}": name for i, name in enumerate(settings)}
    current = ", ".join(f"current_setting(:{n})" for n in names)
    saved = conn.execute(text(f"SELECT {current}"), names).one()
    _set_config(conn, settings)
    yield
    _set_config(conn, dict(zip(settings, saved, strict=True)))


def _set_config(conn: Connection, values: dict[str, str]) -> None:
    binds: dict[str, str] = {}
    for i, (name, value) in enumerate(values.items()):
        binds[f"n{i}"], binds[f"v{i}"] = name, value
    calls = ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(values)))
    conn.execute(text(f"SELECT {calls}"), binds)


class _OrderedJoin(Join):
    """An inner join whose tables SQLite must visit in the written order: ``CROSS JOIN``
    is SQLite's documented way to pin a join order (its planner otherwise starts from a
    filter's index). Other dialects compile it as a plain ``JOIN``."""

    inherit_cache = True


@compiles(_OrderedJoin, "sqlite")
def _compile_ordered_join(join: _OrderedJoin, compiler: Any, **kw: Any) -> str:
    kw["asfrom"] = True
    left = join.left._compiler_dispatch(compiler, **kw)
    right = join.right._compiler_dispatch(compiler, **kw)
    assert join.onclause is not None
    on = join.onclause._compiler_dispatch(compiler, **kw)
    return f"{left} CROSS JOIN {right} ON {on}"


def _statuses(statuses: Sequence[str]) -> list[str]:
    wanted = [s.lower() for s in ([statuses] if isinstance(statuses, str) else statuses)]
    unknown = sorted(set(wanted) - set(RUN_STATUSES))
    if unknown:
        raise InvalidInput(
            f"unknown run status {', '.join(unknown)}; expected one of {', '.join(RUN_STATUSES)}"
        )
    return wanted


def _attribute_column(key: str) -> Any:
    try:
        return _ATTRIBUTE_COLUMNS[key]
    except KeyError:
        raise InvalidInput(
            f"unknown attribute {key!r}: valid attributes are {', '.join(ATTRIBUTES)}"
        ) from None


class _Compiler:
    """Accumulates the FROM clause (runs plus joins) and the WHERE terms of one search."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.count = 0
        self.source: FromClause = runs
        self.where: list[ColumnElement[bool]] = []
        self.joined: dict[tuple[str, str], Any] = {}  # (entity, key) -> alias
        # Slots whose inner join compares the value: NULL rows are already excluded.
        self.non_null: set[tuple[str, str]] = set()
        self.ordered = False  # index-order form: inner joins keep their written order

    def drive_from(self, order_key: OrderKey, bound: float | None) -> None:
        """Start the join at the sort key's index (index-order form, see the module
        docstring): ``sort_alias JOIN runs`` or ``runs`` (the start time), followed by
        joins that SQLite keeps in their written order."""
        self.ordered = True
        if order_key.entity == "attribute":  # the start time: NOT NULL, no join
            if bound is not None:
                start = bindparam(None, int(bound), type_=BigInteger())
                column = runs.c.start_time
                self.where.append(column >= start if order_key.descending else column <= start)
            return
        alias = self.alias("metric")
        terms = [alias.c.key == order_key.key, alias.c.value.is_not(None)]
        if bound is not None:
            limit = bindparam(None, float(bound), type_=Float())
            terms.append(alias.c.value >= limit if order_key.descending else alias.c.value <= limit)
        self.source = _OrderedJoin(alias, runs, and_(runs.c.run_id == alias.c.run_id, *terms))
        self.joined[("metric", order_key.key)] = alias
        self.non_null.add(("metric", order_key.key))

    def join(self, alias: Any, onclause: Any, *, outer: bool = False) -> None:
        if outer:
            self.source = self.source.outerjoin(alias, onclause)
        elif self.ordered:
            self.source = _OrderedJoin(self.source, alias, onclause)
        else:
            self.source = self.source.join(alias, onclause)

    def add_filter(self, node: Node) -> None:
        # Top-level conjuncts on a key the run must have become inner joins.
        joinable: dict[tuple[str, str], list[Comparison]] = {}
        for item in node.items if isinstance(node, And) else (node,):
            if isinstance(item, Comparison) and item.entity != "attribute" and item.op != "is null":
                slot = (item.entity, item.key)
                if slot in joinable or len(joinable) < MAX_JOINS // 2:
                    joinable.setdefault(slot, []).append(item)
                    continue
            self.where.append(self.predicate(item))
        first: Any = None
        for (entity, key), items in joinable.items():
            if (entity, key) in self.joined:  # the index-order sort metric: already joined
                alias = self.joined[(entity, key)]
                self.where.extend(
                    self.condition(alias.c.value, c) for c in items if c.op not in NULL_OPS
                )
                continue
            alias = self.alias(entity)
            values = [self.condition(alias.c.value, c) for c in items if c.op not in NULL_OPS]
            # SQLite does not infer a.run_id = b.run_id from both equalling runs.run_id;
            # without this link it must look up runs before probing the second table, once
            # per candidate of the first instead of once per match.
            linked = [] if first is None else [alias.c.run_id == first.c.run_id]
            self.join(
                alias, and_(alias.c.run_id == runs.c.run_id, *linked, alias.c.key == key, *values)
            )
            self.joined[(entity, key)] = alias
            if values:
                self.non_null.add((entity, key))
            first = alias if first is None else first

    def order_value(self, order_key: OrderKey) -> tuple[Any, bool]:
        """The expression to order by, and whether it can be NULL."""
        if order_key.entity == "attribute":
            column = _attribute_column(order_key.key)
            return column, bool(column.nullable)
        if order_key.entity not in _KEYED:
            raise InvalidInput(f"cannot order by entity {order_key.entity!r}")
        slot = (order_key.entity, order_key.key)
        if slot in self.non_null:
            # No NULLs can reach the sort, and without the IS NULL key SQLite can read the
            # (key, value, run_id) index in order instead of sorting (55 -> 22 ms at 100k).
            return self.joined[slot].c.value, False
        alias = self.joined.get(slot)
        if alias is None:
            if len(self.joined) >= MAX_JOINS:
                return self.scalar_value(order_key.entity, order_key.key), True
            alias = self.alias(order_key.entity)
            self.join(
                alias, and_(alias.c.run_id == runs.c.run_id, alias.c.key == order_key.key),
                outer=True,
            )
            self.joined[slot] = alias
        return alias.c.value, True  # NULL for a missing key or a NaN metric

    def alias(self, entity: str) -> Any:
        self.count += 1
        return _KEYED[entity].alias(f"{_ALIAS_PREFIX[entity]}_{self.count}")

    def predicate(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            return and_(*(self.predicate(item) for item in node.items))
        if isinstance(node, Or):
            return or_(*(self.predicate(item) for item in node.items))
        if node.entity == "attribute":
            column = _attribute_column(node.key)
            if node.op == "is null":
                return column.is_(None)
            if node.op == "is not null":
                return column.is_not(None)
            return self.condition(column, node)
        if node.entity not in _KEYED:
            raise InvalidInput(f"cannot filter on entity {node.entity!r}")
        alias = self.alias(node.entity)
        has_key: Select[Any] = (
            select(literal_column("1"))
            .select_from(alias)
            .where(alias.c.run_id == runs.c.run_id, alias.c.key == node.key)
            .correlate(runs)
        )
        if node.op == "is null":
            return not_(exists(has_key))
        if node.op == "is not null":
            return exists(has_key)
        return exists(has_key.where(self.condition(alias.c.value, node)))

    def scalar_value(self, entity: str, key: str) -> Any:
        alias = self.alias(entity)
        return (
            select(alias.c.value)
            .where(alias.c.run_id == runs.c.run_id, alias.c.key == key)
            .correlate(runs)
            .scalar_subquery()
        )

    def condition(self, column: Any, node: Comparison) -> ColumnElement[bool]:
        """``column op value`` for a value comparison (not IS NULL)."""
        op = node.op
        if op in LIST_OPS:
            assert isinstance(node.value, tuple)
            values = [self.bind(node, v) for v in node.value]
            return column.in_(values) if op == "in" else column.not_in(values)
        if op in ("like", "ilike", "not like", "not ilike"):
            assert isinstance(node.value, str)
            matched = self.like(column, node.value, insensitive=op.endswith("ilike"))
            return not_(matched) if op.startswith("not ") else matched
        if op not in _COMPARE:
            raise InvalidInput(f"unknown operator {op!r} in a run filter")
        return _COMPARE[op](column, self.bind(node, node.value))

    def bind(self, node: Comparison, value: Any) -> Any:
        """A typed bound parameter: never a value formatted into SQL."""
        if node.entity == "metric":
            return bindparam(None, float(value), type_=Float())
        if node.entity == "attribute" and node.key in NUMERIC_ATTRIBUTES:
            number = float(value)
            # Times are BIGINT: bind whole numbers as integers and others as floats, so
            # no driver casts 1.5 to a bigint (which would round it).
            if number.is_integer() and abs(number) < _INT64:
                return bindparam(None, int(number), type_=BigInteger())
            return bindparam(None, number, type_=Float())
        if node.entity == "attribute" and node.key in BOOLEAN_ATTRIBUTES:
            return bindparam(None, bool(value), type_=Boolean())
        return bindparam(None, str(value), type_=String())

    def like(self, column: Any, pattern: str, *, insensitive: bool) -> ColumnElement[bool]:
        if self.dialect == "postgresql":
            # PostgreSQL's LIKE treats backslash as an escape, SQLite's does not; make a
            # backslash literal on both.
            pattern = pattern.replace("\\", "\\\\")
        if insensitive:
            # SQLAlchemy: ILIKE on PostgreSQL, lower(x) LIKE lower(:p) elsewhere.
            return column.ilike(bindparam(None, pattern, type_=String()))
        if self.dialect == "sqlite":
            # SQLite's LIKE ignores ASCII case; GLOB is case-sensitive.
            glob = bindparam(None, like_to_glob(pattern), type_=String())
            return column.op("GLOB", is_comparison=True)(glob)
        return column.like(bindparam(None, pattern, type_=String()))


def like_to_glob(pattern: str) -> str:
    """Translate a LIKE pattern (``%``, ``_``) to an equivalent SQLite GLOB pattern."""
    out = []
    for ch in pattern:
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")  # a one-character class matches the character itself
        else:
            out.append(ch)
    return "".join(out)


__all__ = [
    "DEFAULT_ORDER",
    "build_search",
    "full_order",
    "index_order_key",
    "like_to_glob",
    "search_rows",
]
