"""Column profiles: the statistics stored with every dataset version.

A profile is computed once, when a version is logged, and is what monitoring later
compares production data against — so it carries enough (quantiles, histograms, top
categories) to run a drift test without re-reading the reference data.

Everything is computed by DuckDB over the Parquet file (or an in-memory Arrow table): it
streams, uses every core and stays under ``memory_limit`` (spilling to a private temp
directory if it must). The file is scanned in at most three kinds of pass:

1. one aggregate query for every column: count, nulls, distinct, min/max/mean/std,
   quantiles, mean string length (string min/max are a separate query that DuckDB
   answers from the Parquet footer statistics without reading the data);
2. one query, now that min/max are known, for every numeric histogram and every
   low-cardinality value→count table;
3. one ``GROUP BY`` top-k query per categorical column with more than
   ``TOP_MAX_DISTINCT`` distinct values (rare; most categoricals are served by pass 2).

Rules (documented here because monitoring depends on them):

- **NaN and ±inf** in float columns are treated as missing: they are counted in ``nulls``
  and excluded from every statistic. A drift test cannot use infinities, and JSON cannot
  store them.
- **distinct** is ``count(DISTINCT)`` when the data has at most
  ``exact_distinct_max_rows`` rows, else a HyperLogLog estimate (``distinct_exact`` False,
  typically within 3 %). Whenever a full value→count table is collected (pass 2) the
  count is exact again.
- **quantiles** are 101 values at probabilities 0, 0.01, …, 1, linearly interpolated
  (``numpy.quantile``'s default) when the data has at most ``exact_quantile_max_rows``
  rows; above that they come from a uniform reservoir sample of ``RESERVOIR_SIZE`` values
  per column (rank error about 0.1 %; not bit-for-bit reproducible across runs), with the
  ends pinned to the exact min and max. Datetime quantiles are epoch seconds (UTC).
- **histogram** (numeric columns only): ``bins`` equal-width bins between min and max,
  binned exactly like ``numpy.histogram`` (left-closed, last bin closed). A column with
  one value gets a single bin ``[v, v]``.
- **top** holds up to ``top_k`` ``(value, count)`` pairs, most frequent first (ties by
  value), for boolean, categorical and constant columns and for numeric columns with at
  most ``DISCRETE_MAX_DISTINCT`` distinct values. Values are strings: ``"true"`` /
  ``"false"``, ``str(int)``, ``repr(float)``, ISO dates. ``other_count`` is the number
  of non-null rows outside ``top`` (0 means ``top`` is the complete distribution).
- **semantic_type** — see ``infer_semantic_type``.
- Dictionary-encoded columns are profiled (and typed) as their value type; timezone-aware
  timestamps are reported in UTC.
- ``count`` is the number of rows (``count - nulls`` are non-null), ``std`` is the sample
  standard deviation, ``mean``/``std``/``min``/``max`` of a boolean are those of 0/1.
- ``mean_length`` of a string column is in UTF-8 **bytes** (characters for ASCII text):
  counting code points would cost a fifth of the whole profile on text-heavy data.

Wide data: each pass aggregates at most ``COLUMN_BATCH`` (64) columns per query, so a
query's size (and DuckDB's memory for its aggregate states) does not grow with the
width; on Parquet each query reads only its own columns, so the data is still read about
once. One query over 3,000 columns crashed DuckDB. Data of at most ``UNPIVOT_MAX_ROWS``
(10,000) rows is unpivoted instead: the columns of one type become (column, value) pairs
aggregated ``GROUP BY column`` — the same numbers (tested), at a cost that follows the
number of values rather than the number of aggregates (DuckDB spends ~10 ms per
aggregate expression, which dominated wide, short data). At most ``MAX_COLUMNS``
(10,000) columns are profiled: wider data is refused with ``InvalidInput`` before
anything runs.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.data.duckdb_connection import duckdb_connection
from ratchet.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

PROFILE_FORMAT = 1
QUANTILE_PROBS: tuple[float, ...] = tuple(i / 100 for i in range(101))
SEMANTIC_TYPES = (
    "numeric",
    "categorical",
    "boolean",
    "datetime",
    "text",
    "identifier",
    "constant",
    "empty",
    "other",
)
# An integer column is categorical with at most this many distinct values (and few per row);
# any numeric column this discrete also gets `top`, for chi-square-style tests.
DISCRETE_MAX_DISTINCT = 20
CATEGORICAL_MAX_DISTINCT_RATIO = 0.05
# Value→count tables up to this size are collected in the shared pass; beyond it a
# categorical column gets its own GROUP BY ... LIMIT top_k pass.
TOP_MAX_DISTINCT = 10_000
# String columns: identifier / text thresholds.
IDENTIFIER_MIN_ROWS = 50
TEXT_MIN_MEAN_LENGTH = 50.0
TEXT_MIN_DISTINCT_RATIO = 0.5
# HyperLogLog is within ~3 %: an estimate this close to the row count counts as unique.
APPROX_UNIQUE_RATIO = 0.97
RESERVOIR_SIZE = 2**18
# Columns aggregated by one query: one SELECT with ~8 aggregates for each of 3,000 columns
# segfaulted DuckDB and 1,000 ran out of memory after minutes.
COLUMN_BATCH = 64
# The widest data profiled (and so logged); beyond it a clear error, not a crash.
MAX_COLUMNS = 10_000
# Up to this many rows, the columns of one type are unpivoted into (column, value) pairs
# and aggregated GROUP BY column: one set of aggregates per query whatever the width,
# where per-column aggregates cost DuckDB ~10 ms each (which dominated wide, short data).
# Beyond it, unpivoting would multiply the rows to hash: per-column aggregates.
UNPIVOT_MAX_ROWS = 10_000
UNPIVOT_BATCH = 1_024  # columns per unpivoted query

# Type families: what a column's values can be compared as.
NUMERIC, BOOLEAN, DATETIME, STRING, NULL, OTHER = (
    "numeric",
    "boolean",
    "datetime",
    "string",
    "null",
    "other",
)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ColumnProfile:
    """Statistics of one column; see the module docstring for the exact rules."""

    name: str
    arrow_type: str
    semantic_type: str
    count: int
    nulls: int
    distinct: int
    distinct_exact: bool
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: tuple[float, ...] | None = None
    histogram: dict[str, list[Any]] | None = None
    top: tuple[tuple[str, int], ...] | None = None
    other_count: int | None = None
    mean_length: float | None = None

    @property
    def non_null(self) -> int:
        return self.count - self.nulls

    @property
    def null_rate(self) -> float:
        return self.nulls / self.count if self.count else 0.0

    @property
    def family(self) -> str:
        """numeric | boolean | datetime | string | null | other, from ``arrow_type``."""
        return type_family(self.arrow_type)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: tuples become lists, non-finite floats become None."""
        return {
            "name": self.name,
            "arrow_type": self.arrow_type,
            "semantic_type": self.semantic_type,
            "count": self.count,
            "nulls": self.nulls,
            "distinct": self.distinct,
            "distinct_exact": self.distinct_exact,
            "min": _finite_or_none(self.min),
            "max": _finite_or_none(self.max),
            "mean": _finite_or_none(self.mean),
            "std": _finite_or_none(self.std),
            "quantiles": None
            if self.quantiles is None
            else [_finite_or_none(q) for q in self.quantiles],
            "histogram": None
            if self.histogram is None
            else {
                "edges": [_finite_or_none(e) for e in self.histogram["edges"]],
                "counts": [int(c) for c in self.histogram["counts"]],
            },
            "top": None if self.top is None else [[v, int(c)] for v, c in self.top],
            "other_count": self.other_count,
            "mean_length": _finite_or_none(self.mean_length),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnProfile:
        """Inverse of ``to_dict``; unknown keys (from newer versions) are ignored."""
        try:
            known = {f.name for f in fields(cls)}
            kw = {k: v for k, v in d.items() if k in known}
            if kw.get("quantiles") is not None:
                kw["quantiles"] = tuple(float(q) for q in kw["quantiles"])
            if kw.get("top") is not None:
                kw["top"] = tuple((str(v), int(c)) for v, c in kw["top"])
            if kw.get("histogram") is not None:
                h = kw["histogram"]
                kw["histogram"] = {
                    "edges": [float(e) for e in h["edges"]],
                    "counts": [int(c) for c in h["counts"]],
                }
            return cls(**kw)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            name = d.get("name", "?") if isinstance(d, Mapping) else "?"
            raise InvalidInput(f"column profile {name!r} is malformed: {e}") from e


@dataclass(frozen=True)
class DatasetProfile:
    rows: int
    columns: tuple[ColumnProfile, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnProfile:
        for c in self.columns:
            if c.name == name:
                return c
        raise NotFound(
            f"column {name!r} is not in the profile; its columns are: "
            f"{', '.join(repr(n) for n in self.column_names) or '(none)'}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "rows": self.rows,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetProfile:
        try:
            rows = int(d["rows"])
            columns = tuple(ColumnProfile.from_dict(c) for c in d["columns"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"dataset profile is malformed: {e!r}") from e
        return cls(rows=rows, columns=columns)


# --------------------------------------------------------------------------- rules


def type_family(arrow_type: str) -> str:
    """The comparable family of an Arrow type string (``str(pyarrow type)``).

    numeric: ints, floats, decimals; boolean; datetime: timestamps and dates; string;
    null: the Arrow null type (an all-null column with nothing to infer a type from);
    other: binary, nested, time-of-day, durations, ….
    """
    t = arrow_type.strip().lower()
    if t.startswith("dictionary<values="):
        t = t[len("dictionary<values=") :].split(",", 1)[0]
    if t.startswith(("int", "uint", "float", "double", "halffloat", "decimal")):
        return NUMERIC
    if t in ("bool", "boolean"):
        return BOOLEAN
    if t.startswith(("timestamp", "date")):
        return DATETIME
    if t in ("string", "large_string", "string_view", "utf8", "large_utf8"):
        return STRING
    if t == "null":
        return NULL
    return OTHER


def infer_semantic_type(
    family: str,
    *,
    non_null: int,
    distinct: int,
    distinct_exact: bool = True,
    is_integer: bool = False,
    mean_length: float | None = None,
) -> str:
    """What a column means, from its type family and counts. In order:

    - ``empty``: no non-null value; ``constant``: exactly one distinct value;
    - booleans → ``boolean``; timestamps / dates → ``datetime``;
    - numbers → ``numeric``, except an *integer* column with at most
      ``DISCRETE_MAX_DISTINCT`` (20) distinct values that are also at most 5 % of its
      non-null count (codes, ratings, counts of children) → ``categorical``;
    - strings → ``text`` if the mean length exceeds 50 characters; ``identifier`` if
      there are more than 50 values and all are distinct (≥ 97 % for an estimate);
      ``text`` if more than 50 values and over half are distinct; else ``categorical``;
    - anything else (binary, nested, durations) → ``other``.
    """
    if non_null == 0:
        return "empty"
    if distinct == 1:
        return "constant"
    if family == BOOLEAN:
        return "boolean"
    if family == DATETIME:
        return "datetime"
    if family == NUMERIC:
        if (
            is_integer
            and distinct <= DISCRETE_MAX_DISTINCT
            and distinct <= CATEGORICAL_MAX_DISTINCT_RATIO * non_null
        ):
            return "categorical"
        return "numeric"
    if family == STRING:
        if mean_length is not None and mean_length > TEXT_MIN_MEAN_LENGTH:
            return "text"
        if non_null > IDENTIFIER_MIN_ROWS:
            unique = (
                distinct >= non_null
                if distinct_exact
                else distinct >= APPROX_UNIQUE_RATIO * non_null
            )
            if unique:
                return "identifier"
            if distinct > TEXT_MIN_DISTINCT_RATIO * non_null:
                return "text"
        return "categorical"
    return "other"


def _wants_top(family: str, semantic: str, distinct: int) -> bool:
    if semantic == "empty" or family in (OTHER, NULL):
        return False
    if semantic in ("boolean", "categorical", "constant"):
        return True
    return family == NUMERIC and distinct <= DISCRETE_MAX_DISTINCT


# --------------------------------------------------------------------------- entry points


def profile_parquet(
    path: str | Path,
    *,
    top_k: int = 50,
    bins: int = 20,
    exact_distinct_max_rows: int = 1_000_000,
    exact_quantile_max_rows: int = RESERVOIR_SIZE,
    memory_limit: str = "1GB",
    threads: int | None = None,
    column_batch: int = COLUMN_BATCH,
) -> DatasetProfile:
    """Profile a Parquet file (or a directory of Parquet files) without loading it.

    Memory stays under ``memory_limit`` whatever the file size; ``threads`` defaults to
    DuckDB's (every core). ``column_batch`` columns are aggregated per query.
    """
    import pyarrow.parquet as pq  # not pyarrow.dataset: that imports pandas (~1 s)

    p = Path(path)
    if not p.exists():
        raise NotFound(f"cannot profile {str(p)!r}: no such file or directory")
    _check_options(top_k, bins, column_batch)
    if p.is_dir():  # the files ratchet.data.log reads from it, and the same link rules
        from ratchet.data.readers import PARQUET_SUFFIXES, data_files

        files = [str(f) for f in data_files(p) if f.name.lower().endswith(PARQUET_SUFFIXES)]
    else:
        files = [str(p)]
    if not files:
        raise InvalidInput(f"cannot profile {str(p)!r}: the directory has no .parquet files")
    try:
        schema = pq.read_schema(files[0])
        rows = sum(pq.read_metadata(f).num_rows for f in files)  # footers only
    except Exception as e:  # pyarrow raises several types for a non-Parquet file
        raise InvalidInput(f"cannot profile {str(p)!r}: not readable as Parquet ({e})") from e
    if not len(schema):
        return DatasetProfile(rows=rows, columns=())
    check_width(len(schema))
    source = "read_parquet([" + ", ".join(_literal(f) for f in files) + "])"
    with duckdb_connection(memory_limit, threads) as con:
        return _profile(
            con,
            source,
            schema,
            top_k=top_k,
            bins=bins,
            exact_distinct=rows <= exact_distinct_max_rows,
            exact_quantiles=rows <= exact_quantile_max_rows,
            column_batch=column_batch,
            rows=rows,
        )


def profile_table(
    table: pa.Table,
    *,
    top_k: int = 50,
    bins: int = 20,
    exact_distinct_max_rows: int = 1_000_000,
    exact_quantile_max_rows: int = RESERVOIR_SIZE,
    memory_limit: str = "1GB",
    threads: int | None = None,
    column_batch: int = COLUMN_BATCH,
) -> DatasetProfile:
    """Profile an in-memory Arrow table (e.g. a production window); same rules as files."""
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise InvalidInput(f"profile_table needs a pyarrow.Table, got {type(table).__name__}")
    _check_options(top_k, bins, column_batch)
    if table.num_columns == 0:  # DuckDB cannot scan a table without columns
        return DatasetProfile(rows=table.num_rows, columns=())
    check_width(table.num_columns)
    with duckdb_connection(memory_limit, threads) as con:
        con.register("ratchet_profiled", table)  # zero-copy scan
        return _profile(
            con,
            "ratchet_profiled",
            table.schema,
            top_k=top_k,
            bins=bins,
            exact_distinct=table.num_rows <= exact_distinct_max_rows,
            exact_quantiles=table.num_rows <= exact_quantile_max_rows,
            column_batch=column_batch,
            rows=table.num_rows,
        )


class StreamingProfile:
    """Pass 1 of a profile over record batches as they are produced, on a worker thread.

    While the main thread encodes the snapshot, DuckDB aggregates the same batches on the
    other core; ``finish(path)`` then runs the remaining (smaller) passes over the written
    Parquet file. Distinct counts and quantiles are the approximate kind, as the row count
    is unknown until the end: use it for large inputs, where they would be anyway.

    Data wider than ``column_batch`` columns would need one pass over the stream per
    batch of columns, and a stream can be read once: its pass 1 runs over the written
    file in ``finish`` instead (same approximate kind), and ``feed`` does nothing.
    """

    QUEUE_BATCHES = 8

    def __init__(self, schema: pa.Schema, *, top_k: int = 50, bins: int = 20,
                 memory_limit: str = "1GB", threads: int | None = None,
                 column_batch: int = COLUMN_BATCH) -> None:
        import queue
        import threading

        import pyarrow as pa

        _check_options(top_k, bins, column_batch)
        check_width(len(schema))
        self._top_k, self._bins, self._column_batch = top_k, bins, column_batch
        self._cols = _plan(schema)
        self._queue: queue.Queue[pa.RecordBatch | None] = queue.Queue(self.QUEUE_BATCHES)
        self._rows: int | None = None
        self._error: BaseException | None = None
        self._deferred = len(self._cols) > column_batch  # pass 1 over the file in finish()
        self._con_cm = duckdb_connection(memory_limit, threads)
        self._con = self._con_cm.__enter__()
        self._thread: threading.Thread | None = None
        if self._deferred:
            return

        def batches() -> Iterator[pa.RecordBatch]:
            while (batch := self._queue.get()) is not None:
                yield batch

        def work() -> None:
            try:
                reader = pa.RecordBatchReader.from_batches(schema, batches())
                self._con.register("ratchet_stream", reader)
                source = _renamed("ratchet_stream", self._cols)
                self._rows = _stats_pass(self._con, source, self._cols, False, False,
                                         column_batch)
            except BaseException as exc:  # re-raised by finish()
                self._error = exc
                while self._queue.get() is not None:  # unblock the producer, then stop
                    pass

        self._thread = threading.Thread(target=work, name="ratchet-profile", daemon=True)
        self._thread.start()

    def feed(self, batch: pa.RecordBatch) -> None:
        if self._thread is not None:
            self._queue.put(batch)

    def close(self) -> None:
        """The stream ended (or failed): let pass 1 finish."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()

    def abandon(self) -> None:
        """Not needed after all (e.g. identical content already stored): release DuckDB."""
        self._con_cm.__exit__(None, None, None)

    def finish(self, path: str | Path) -> DatasetProfile:
        try:
            if self._error is not None:
                raise self._error
            source = _renamed(f"read_parquet({_literal(str(path))})", self._cols)
            if self._deferred:
                self._rows = _stats_pass(self._con, source, self._cols, False, False,
                                         self._column_batch)
            assert self._rows is not None
            if not self._cols:
                return DatasetProfile(rows=self._rows, columns=())
            import pyarrow.parquet as pq

            # Types as stored (Parquet widens some, e.g. timestamp[s] to [ms]), so a streamed
            # profile reads exactly like one made from the file.
            stored = pq.read_schema(path)
            for c in self._cols:
                c.arrow_type = str(stored.field(c.index).type)
            return _finish_profile(self._con, source, self._cols, self._rows,
                                   top_k=self._top_k, bins=self._bins,
                                   column_batch=self._column_batch)
        finally:
            self._con_cm.__exit__(None, None, None)


def _check_options(top_k: int, bins: int, column_batch: int = COLUMN_BATCH) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise InvalidInput(f"top_k must be an int >= 0, got {top_k!r}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise InvalidInput(f"bins must be an int >= 1, got {bins!r}")
    if isinstance(column_batch, bool) or not isinstance(column_batch, int) or column_batch < 1:
        raise InvalidInput(f"column_batch must be an int >= 1, got {column_batch!r}")


def check_width(columns: int) -> None:
    """``InvalidInput`` for data wider than ``MAX_COLUMNS``: it cannot be profiled, so it
    cannot be logged (checked before a byte is written)."""
    if columns > MAX_COLUMNS:
        raise InvalidInput(
            f"the data has {columns:,} columns; ratchet profiles and versions at most "
            f"{MAX_COLUMNS:,}: select the columns you need, or split the table into "
            "datasets joined by a key")

# --------------------------------------------------------------------------- the passes


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
            if _wants_top(c.family, c.semantic, len(c.values)):
                c.top = sorted(c.values.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        elif c.family != NULL and _wants_top(c.family, c.semantic, c.stats["distinct"]):
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
        _wants_top(c.family, c.semantic, s["distinct"])
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


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


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


__all__ = [
    "QUANTILE_PROBS",
    "SEMANTIC_TYPES",
    "ColumnProfile",
    "DatasetProfile",
    "infer_semantic_type",
    "profile_parquet",
    "profile_table",
    "type_family",
]
