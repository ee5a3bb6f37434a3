"""The DuckDB passes that compute a dataset profile (see ``ratchet.data.profile`` for the
rules and the entry points): plan the columns, aggregate them in batches (or unpivoted,
for short, wide data), then shape (histograms, value tables) and top-k passes, and build
the ``ColumnProfile`` records.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.data.profile_records import QUANTILE_PROBS, ColumnProfile, DatasetProfile
from ratchet.data.profile_types import (
    BOOLEAN,
    DATETIME,
    DISCRETE_MAX_DISTINCT,
    NULL,
    NUMERIC,
    OTHER,
    STRING,
    infer_semantic_type,
    type_family,
    wants_top,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

# Value→count tables up to this size are collected in the shared pass; beyond it a
# categorical column gets its own GROUP BY ... LIMIT top_k pass.
TOP_MAX_DISTINCT = 10_000
RESERVOIR_SIZE = 2**18
# Columns aggregated by one query: one SELECT with ~8 aggregates for each of 3,000 columns
# segfaulted DuckDB and 1,000 ran out of memory after minutes.
COLUMN_BATCH = 64
# Up to this many rows, the columns of one type are unpivoted into (column, value) pairs
# and aggregated GROUP BY column: one set of aggregates per query whatever the width,
# where per-column aggregates cost DuckDB ~10 ms each (which dominated wide, short data).
# Beyond it, unpivoting would multiply the rows to hash: per-column aggregates.
UNPIVOT_MAX_ROWS = 10_000
UNPIVOT_BATCH = 1_024  # columns per unpivoted query


@dataclass
class _Col:
    """One column's plan and, as passes complete, its partial results."""

    index: int
    name: str
    arrow_type: str
    family: str
    is_integer: bool
    tz_aware: bool
    value_sql: str  # expression over the source giving the values to profile
    stats: dict[str, Any]
    semantic: str = ""
    values: dict[str, int] | None = None  # full value→count table (pass 2)
    top: list[tuple[str, int]] | None = None
    histogram: dict[str, list[Any]] | None = None

    @property
    def v(self) -> str:
        return f"v{self.index}"


def _plan(schema: pa.Schema) -> list[_Col]:
    import pyarrow as pa

    cols = []
    for i, field in enumerate(schema):
        t = field.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        arrow_type = str(t)
        family = type_family(arrow_type)
        q = f"c{i}"  # the source's columns are renamed by position (see _profile)
        tz_aware = pa.types.is_timestamp(t) and t.tz is not None
        if pa.types.is_floating(t):
            value = f"CASE WHEN isfinite({q}) THEN {q} END"  # NaN/inf count as missing
        elif pa.types.is_decimal(t):
            value = f"CAST({q} AS DOUBLE)"
        elif tz_aware:
            # Fetching TIMESTAMPTZ needs pytz and ICU; a plain cast is the UTC wall time.
            value = f"CAST({q} AS TIMESTAMP)"
        elif family == STRING:
            value = f"CAST({q} AS VARCHAR)"  # dictionaries and string views alike
        else:
            value = q
        cols.append(
            _Col(
                index=i,
                name=field.name,
                arrow_type=arrow_type,
                family=family,
                is_integer=pa.types.is_integer(t),
                tz_aware=tz_aware,
                value_sql=value,
                stats={},
            )
        )
    return cols


def _profile(
    con: duckdb.DuckDBPyConnection,
    source: str,
    schema: pa.Schema,
    *,
    top_k: int,
    bins: int,
    exact_distinct: bool,
    exact_quantiles: bool,
    column_batch: int,
    rows: int,
) -> DatasetProfile:
    cols = _plan(schema)
    source = _renamed(source, cols)
    rows = _stats_pass(con, source, cols, exact_distinct, exact_quantiles, column_batch, rows)
    return _finish_profile(con, source, cols, rows, top_k=top_k, bins=bins,
                           column_batch=column_batch)


def _renamed(source: str, cols: list[_Col]) -> str:
    # Rename columns by position: any name (quotes, unicode, empty, duplicated) is safe.
    if not cols:
        return source
    return f"{source} AS ratchet_src({', '.join(f'c{c.index}' for c in cols)})"


def _batches(cols: list[_Col], size: int) -> Iterator[list[_Col]]:
    for start in range(0, len(cols), size):
        yield cols[start:start + size]


def _finish_profile(con: duckdb.DuckDBPyConnection, source: str, cols: list[_Col], rows: int,
                    *, top_k: int, bins: int, column_batch: int) -> DatasetProfile:
    """Everything after pass 1: string ranges, histograms and value tables, top-k."""
    for batch in _batches([c for c in cols if c.family == STRING], column_batch):
        _string_range_pass(con, source, batch)
    for c in cols:
        c.semantic = _semantic(c)
    if rows <= UNPIVOT_MAX_ROWS:
        _shape_pass_grouped(con, source, cols, bins)
    else:
        for batch in _batches(cols, column_batch):
            _shape_pass(con, source, batch, bins)
    for c in cols:
        if c.values is not None:  # the full table makes distinct exact
            c.stats["distinct"], c.stats["distinct_exact"] = len(c.values), True
            c.semantic = _semantic(c)
            if wants_top(c.family, c.semantic, len(c.values)):
                c.top = sorted(c.values.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        elif c.family != NULL and wants_top(c.family, c.semantic, c.stats["distinct"]):
            c.top = _top_k_pass(con, source, c, top_k)
    return DatasetProfile(rows=rows, columns=tuple(_build(c, rows) for c in cols))


def _semantic(c: _Col) -> str:
    return infer_semantic_type(
        c.family,
        non_null=c.stats["non_null"],
        distinct=c.stats["distinct"],
        distinct_exact=c.stats["distinct_exact"],
        is_integer=c.is_integer,
        mean_length=c.stats.get("mean_length"),
    )


def _stats_pass(
    con: duckdb.DuckDBPyConnection,
    source: str,
    cols: list[_Col],
    exact_distinct: bool,
    exact_quantiles: bool,
    column_batch: int,
    rows: int | None = None,
) -> int:
    """Pass 1: every per-column aggregate, ``column_batch`` columns per query (one scan of
    those columns each). Returns the row count.

    With ``rows`` known and at most ``UNPIVOT_MAX_ROWS``, columns of one type are unpivoted
    into (column, value) pairs and aggregated ``GROUP BY column``: one set of aggregates
    per query whatever the width, where per-column aggregates cost DuckDB ~10 ms each.
    """
    # The 101 probabilities as a variable, not a literal list in every quantile call:
    # binding the literal cost ~5 ms per column (half of a wide, short profile).
    con.execute(f"SET VARIABLE ratchet_probs = {_double_list(QUANTILE_PROBS)}")
    rest = cols
    if rows is not None and rows <= UNPIVOT_MAX_ROWS and len(cols) > 1:
        groups: dict[tuple[str, str], list[_Col]] = {}
        for c in cols:
            if c.family not in (NULL, OTHER):
                groups.setdefault((c.family, c.arrow_type), []).append(c)
        grouped = [g for g in groups.values() if len(g) > 1]
        if grouped:
            with _one_thread(con):  # sums in row order: the same bits as the other path
                for group in grouped:
                    for batch in _batches(group, UNPIVOT_BATCH):
                        _stats_grouped(con, source, batch, exact_distinct, exact_quantiles)
            done = {c.index for g in grouped for c in g}
            rest = [c for c in cols if c.index not in done]
    counted = None
    for batch in _batches(rest, column_batch) if rest else iter([rest]):
        if batch or rows is None:
            counted = _stats_query(con, source, batch, exact_distinct, exact_quantiles)
    # Small data and all-null columns: no distinct estimate can exceed the non-null count.
    for c in cols:
        c.stats["distinct"] = min(c.stats["distinct"], c.stats["non_null"])
    assert counted is not None or rows is not None
    return counted if counted is not None else int(rows or 0)


@contextmanager
def _one_thread(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    (threads,) = _fetch_row(con, "SELECT current_setting('threads') AS t").values()
    con.execute("SET threads = 1")
    try:
        yield
    finally:
        con.execute(f"SET threads = {int(threads)}")


def _stat_aggs(c: _Col, v: str, exact_distinct: bool,
               exact_quantiles: bool) -> list[tuple[str, str]]:
    """(name, SQL) of the aggregates of column ``c`` whose values are ``v``."""
    probs = "getvariable('ratchet_probs')"
    aggs = [("nn", f"count({v})")]
    if c.family == NULL:
        return aggs
    hashed = f"hash({v})" if c.family == OTHER else v  # HLL wants a scalar
    aggs.append(("d", f"count(DISTINCT {v})" if exact_distinct
                 else f"approx_count_distinct({hashed})"))
    if c.family == NUMERIC:
        aggs += [("lo", f"min({v})"), ("hi", f"max({v})")]
        aggs += [("mean", f"avg({v})"), ("std", f"stddev_samp({v})")]
        aggs.append(("q", _quantile_sql(v, probs, exact_quantiles)))
    elif c.family == BOOLEAN:
        x = f"CAST({v} AS INTEGER)"
        aggs += [("lo", f"min({x})"), ("hi", f"max({x})")]
        aggs += [("mean", f"avg({x})"), ("std", f"stddev_samp({x})")]
    elif c.family == DATETIME:
        aggs += [("lo", f"min({v})"), ("hi", f"max({v})")]
        aggs.append(("q", _quantile_sql(f"epoch({v})", probs, exact_quantiles)))
    elif c.family == STRING:
        # Bytes, not characters: counting code points costs ~20 % of the whole pass
        # on text-heavy data, and the byte length serves the same purposes.
        aggs.append(("len", f"avg(strlen({v}))"))
    return aggs


def _take_stats(c: _Col, row: Mapping[str, Any], exact_distinct: bool) -> None:
    """Store the results of ``_stat_aggs`` (keys without the column suffix)."""
    s = c.stats
    s["non_null"] = int(row.get("nn") or 0)
    s["distinct"] = int(row.get("d") or 0)
    s["distinct_exact"] = exact_distinct or c.family == NULL
    if c.family in (NUMERIC, BOOLEAN):
        s["min"], s["max"] = _float(row.get("lo")), _float(row.get("hi"))
        s["mean"], s["std"] = _float(row.get("mean")), _float(row.get("std"))
    elif c.family == DATETIME:
        s["min"], s["max"] = row.get("lo"), row.get("hi")
    if c.family == STRING:
        s["mean_length"] = _float(row.get("len"))
    q = row.get("q")
    if q is not None and s["non_null"]:
        lo, hi = s["min"], s["max"]
        if c.family == DATETIME:
            lo, hi = _epoch_seconds(lo), _epoch_seconds(hi)
        s["quantiles"] = _tidy_quantiles(q, lo, hi)


def _stats_query(
    con: duckdb.DuckDBPyConnection,
    source: str,
    cols: list[_Col],
    exact_distinct: bool,
    exact_quantiles: bool,
) -> int:
    aggs = ["count(*) AS n"]
    for c in cols:
        aggs += [f"{sql} AS {name}_{c.index}"
                 for name, sql in _stat_aggs(c, c.v, exact_distinct, exact_quantiles)]
    inner = ", ".join(f"{c.value_sql} AS {c.v}" for c in cols) or "1 AS _"
    row = _fetch_row(con, f"SELECT {', '.join(aggs)} FROM (SELECT {inner} FROM {source})")
    by_column: dict[str, dict[str, Any]] = {}
    for key, value in row.items():
        name, _, index = key.rpartition("_")
        by_column.setdefault(index, {})[name] = value
    for c in cols:
        _take_stats(c, by_column.get(str(c.index), {}), exact_distinct)
    return int(row["n"])


def _stats_grouped(
    con: duckdb.DuckDBPyConnection,
    source: str,
    cols: list[_Col],
    exact_distinct: bool,
    exact_quantiles: bool,
) -> None:
    """The aggregates of columns of one type as one grouped query (see ``_stats_pass``)."""
    aggs = _stat_aggs(cols[0], "v", exact_distinct, exact_quantiles)
    inner = ", ".join(f"{c.value_sql} AS {c.v}" for c in cols)
    sql = (f"SELECT k, {', '.join(f'{sql} AS {name}' for name, sql in aggs)} FROM "
           f"(UNPIVOT (SELECT {inner} FROM {source}) ON {', '.join(c.v for c in cols)} "
           "INTO NAME k VALUE v) GROUP BY k")
    rel = con.sql(sql)
    names = rel.columns
    by_column = {r[0]: dict(zip(names, r, strict=True)) for r in rel.fetchall()}
    for c in cols:  # an all-null column has no pairs: no row, zero counts
        _take_stats(c, by_column.get(c.v, {}), exact_distinct)


def _string_range_pass(con: duckdb.DuckDBPyConnection, source: str, cols: list[_Col]) -> None:
    """String min/max on their own: DuckDB answers this query from the Parquet footers'
    statistics when they exist (instantly), where inside pass 1 it would compare every
    value (a quarter of that pass on text-heavy data)."""
    if not cols:
        return
    aggs = ", ".join(f"min({c.v}) AS lo{c.index}, max({c.v}) AS hi{c.index}" for c in cols)
    inner = ", ".join(f"{c.value_sql} AS {c.v}" for c in cols)
    row = _fetch_row(con, f"SELECT {aggs} FROM (SELECT {inner} FROM {source})")
    for c in cols:
        c.stats["min"], c.stats["max"] = row[f"lo{c.index}"], row[f"hi{c.index}"]


def _quantile_sql(x: str, probs: str, exact: bool) -> str:
    if exact:
        return f"quantile_cont({x}, {probs})"
    return f"reservoir_quantile(CAST({x} AS DOUBLE), {probs}, {RESERVOIR_SIZE})"


def _tidy_quantiles(q: Sequence[Any], lo: float | None, hi: float | None) -> tuple[float, ...]:
    """Sampled quantiles: pin the ends to the exact min/max and keep them non-decreasing."""
    out = [float(x) for x in q]
    if lo is not None:
        out[0] = lo
    if hi is not None:
        out[-1] = hi
    for k in range(1, len(out)):
        out[k] = min(max(out[k], out[k - 1]), out[-1])
    return tuple(out)


def _shape_plan(c: _Col, bins: int) -> tuple[bool, bool]:
    """(needs a value→count table, needs a histogram query) for pass 2; a constant
    column's histogram needs no query and is set here."""
    s = c.stats
    needs_values = (
        wants_top(c.family, c.semantic, s["distinct"])
        # an estimate could be just above the cut-off: collect and decide on exact counts
        or (
            c.family == NUMERIC
            and not s["distinct_exact"]
            and s["distinct"] <= 2 * DISCRETE_MAX_DISTINCT
        )
    ) and s["distinct"] <= TOP_MAX_DISTINCT
    hist = c.family == NUMERIC and s["non_null"] > 0
    if hist and s["min"] == s["max"]:
        c.histogram = {"edges": [s["min"], s["max"]], "counts": [s["non_null"]]}
        hist = False
    if hist:
        c.histogram = {"edges": _edges(s["min"], s["max"], bins), "counts": []}
    return needs_values, hist


def _bin_sql(c: _Col, bins: int) -> tuple[str, str]:
    """(first guess of the bin of ``c.v``, named ``b<i>``; the bin, using that name)."""
    lo, hi = c.stats["min"], c.stats["max"]
    x, b, L, S = c.v, f"b{c.index}", _double(lo), _double((hi - lo) / bins)
    # numpy.histogram's algorithm: a first guess from the scaled value, then one
    # correction against the edges (lo + k * step, numpy.linspace's arithmetic), so
    # a value on an edge lands in the bin numpy puts it in (left-closed, last closed).
    first = f"least({bins - 1}, CAST(floor(({x} - {L}) / {_double(hi - lo)} * {bins}) AS INTEGER))"
    final = (f"CASE WHEN {x} < {b} * {S} + {L} THEN {b} - 1 "
             f"WHEN {b} < {bins - 1} AND {x} >= ({b} + 1) * {S} + {L} THEN {b} + 1 "
             f"ELSE {b} END")
    return first, final


def _shape_pass(con: duckdb.DuckDBPyConnection, source: str, cols: list[_Col], bins: int
                ) -> None:
    """Pass 2: numeric histograms and small value→count tables, in one scan."""
    inner: list[str] = []  # values and, for histograms, a first-guess bin index
    aggs: list[str] = []
    for c in cols:
        needs_values, hist = _shape_plan(c, bins)
        if not (needs_values or hist):
            continue
        inner.append(f"{c.value_sql} AS {c.v}")
        if needs_values:
            aggs.append(f"histogram({c.v}) AS t{c.index}")
        if hist:
            first, final = _bin_sql(c, bins)
            inner.append(f"{first} AS b{c.index}")
            aggs.append(f"histogram({final}) FILTER (WHERE {c.v} IS NOT NULL) AS h{c.index}")
    if not aggs:
        return
    row = _fetch_row(
        con, f"SELECT {', '.join(aggs)} FROM (SELECT {', '.join(inner)} FROM {source})"
    )
    for c in cols:
        i = c.index
        if f"t{i}" in row:
            c.values = {_value_text(k, c.tz_aware): int(n) for k, n in (row[f"t{i}"] or {}).items()}
        if f"h{i}" in row and c.histogram is not None:
            h = row[f"h{i}"] or {}
            c.histogram["counts"] = [int(h.get(b, 0)) for b in range(bins)]


def _shape_pass_grouped(con: duckdb.DuckDBPyConnection, source: str, cols: list[_Col],
                        bins: int) -> None:
    """Pass 2 for data up to ``UNPIVOT_MAX_ROWS``: the (column, value) pairs of the columns
    of one type, and the (column, bin) pairs of every histogram, counted by ``GROUP BY``
    (two queries per type whatever the width; counts are the same as ``_shape_pass``)."""
    groups: dict[tuple[str, str], list[_Col]] = {}
    hists: list[_Col] = []
    for c in cols:
        needs_values, hist = _shape_plan(c, bins)
        if needs_values:
            groups.setdefault((c.family, c.arrow_type), []).append(c)
        if hist:
            hists.append(c)
    for group in groups.values():
        for batch in _batches(group, UNPIVOT_BATCH):
            inner = ", ".join(f"{c.value_sql} AS {c.v}" for c in batch)
            counts = _pair_counts(con, f"SELECT {inner} FROM {source}", batch)
            for c in batch:
                c.values = {_value_text(v, c.tz_aware): n for v, n in counts.get(c.v, [])}
    for batch in _batches(hists, UNPIVOT_BATCH):
        bin_sql = [_bin_sql(c, bins) for c in batch]
        values = ", ".join(f"{c.value_sql} AS {c.v}" for c in batch)
        firsts = ", ".join(f"{first} AS b{c.index}" for c, (first, _) in zip(batch, bin_sql,
                                                                             strict=True))
        # A null value gets a null bin (least() skips nulls, so the first guess is not
        # null), which UNPIVOT drops: the FILTER of _shape_pass.
        finals = ", ".join(f"CASE WHEN {c.v} IS NOT NULL THEN {final} END AS {c.v}"
                           for c, (_, final) in zip(batch, bin_sql, strict=True))
        counts = _pair_counts(
            con, f"SELECT {finals} FROM (SELECT {values}, {firsts} FROM {source})", batch)
        for c in batch:
            h = dict(counts.get(c.v, []))
            assert c.histogram is not None
            c.histogram["counts"] = [int(h.get(b, 0)) for b in range(bins)]


def _pair_counts(con: duckdb.DuckDBPyConnection, select: str, cols: list[_Col]
                 ) -> dict[str, list[tuple[Any, int]]]:
    """{column alias: [(value, count)]} of the non-null values ``select`` gives them."""
    sql = (f"SELECT k, v, count(*) FROM (UNPIVOT ({select}) ON "
           f"{', '.join(c.v for c in cols)} INTO NAME k VALUE v) GROUP BY k, v")
    out: dict[str, list[tuple[Any, int]]] = {}
    for k, v, n in con.sql(sql).fetchall():
        out.setdefault(k, []).append((v, int(n)))
    return out


def _top_k_pass(
    con: duckdb.DuckDBPyConnection, source: str, c: _Col, top_k: int
) -> list[tuple[str, int]]:
    """Pass 3: the top_k values of a high-cardinality categorical column."""
    if top_k == 0:
        return []
    sql = (
        f"SELECT v, count(*) AS n FROM (SELECT {c.value_sql} AS v FROM {source}) "
        f"WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {top_k}"
    )
    return [(_value_text(v, c.tz_aware), int(n)) for v, n in con.sql(sql).fetchall()]


def _build(c: _Col, rows: int) -> ColumnProfile:
    s = c.stats
    lo, hi = s.get("min"), s.get("max")
    if c.family in (DATETIME, STRING):
        lo = None if lo is None else _value_text(lo, c.tz_aware)
        hi = None if hi is None else _value_text(hi, c.tz_aware)
    top = None if c.top is None else tuple(c.top)
    return ColumnProfile(
        name=c.name,
        arrow_type=c.arrow_type,
        semantic_type=c.semantic,
        count=rows,
        nulls=rows - s["non_null"],
        distinct=s["distinct"],
        distinct_exact=s["distinct_exact"],
        min=lo,
        max=hi,
        mean=s.get("mean"),
        std=s.get("std"),
        quantiles=s.get("quantiles"),
        histogram=c.histogram,
        top=top,
        other_count=None if top is None else s["non_null"] - sum(n for _, n in top),
        mean_length=s.get("mean_length"),
    )


# --------------------------------------------------------------------------- SQL and values


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _double(x: float) -> str:
    # Scientific notation makes DuckDB read a DOUBLE (not a DECIMAL); 17 digits round-trip.
    return f"{x:.17e}"


def _double_list(xs: Sequence[float]) -> str:
    return "[" + ", ".join(_double(x) for x in xs) + "]"


def _edges(lo: float, hi: float, bins: int) -> list[float]:
    """``numpy.linspace(lo, hi, bins + 1)`` with numpy's arithmetic (``k * step + lo``, the
    last edge exactly ``hi``): the histogram edges ``numpy.histogram`` uses."""
    step = (hi - lo) / bins
    return [float(k) * step + lo for k in range(bins)] + [hi]


def _fetch_row(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    rel = con.sql(sql)
    names = rel.columns
    (values,) = rel.fetchall()
    return dict(zip(names, values, strict=True))


def _float(x: Any) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


_EPOCH = _dt.datetime(1970, 1, 1)


def _epoch_seconds(x: Any) -> float | None:
    if x is None:
        return None
    if isinstance(x, _dt.datetime):
        return (x.replace(tzinfo=None) - _EPOCH).total_seconds()
    if isinstance(x, _dt.date):
        return float((x - _EPOCH.date()).days * 86400)
    return None


def _value_text(x: Any, tz_aware: bool = False) -> str:
    """How a value is written in ``min``/``max``/``top``: stable across files and tables."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, _dt.datetime):
        return x.isoformat() + ("+00:00" if tz_aware and x.tzinfo is None else "")
    if isinstance(x, _dt.date):
        return x.isoformat()
    if isinstance(x, float):
        return repr(x)
    return str(x)
