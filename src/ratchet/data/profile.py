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

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ratchet.data.duckdb_connection import duckdb_connection
from ratchet.data.profile_passes import (
    COLUMN_BATCH,
    RESERVOIR_SIZE,
    TOP_MAX_DISTINCT,
    UNPIVOT_BATCH,
    UNPIVOT_MAX_ROWS,
    _finish_profile,
    _literal,
    _plan,
    _profile,
    _renamed,
    _stats_pass,
)
from ratchet.data.profile_records import (
    PROFILE_FORMAT,
    QUANTILE_PROBS,
    ColumnProfile,
    DatasetProfile,
)
from ratchet.data.profile_types import (
    APPROX_UNIQUE_RATIO,
    BOOLEAN,
    DATETIME,
    DISCRETE_MAX_DISTINCT,
    IDENTIFIER_MIN_ROWS,
    NULL,
    NUMERIC,
    OTHER,
    SEMANTIC_TYPES,
    STRING,
    TEXT_MIN_DISTINCT_RATIO,
    TEXT_MIN_MEAN_LENGTH,
    infer_semantic_type,
    type_family,
)
from ratchet.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pyarrow as pa

# The widest data profiled (and so logged); beyond it a clear error, not a crash.
MAX_COLUMNS = 10_000


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


__all__ = [
    "APPROX_UNIQUE_RATIO",
    "BOOLEAN",
    "COLUMN_BATCH",
    "DATETIME",
    "DISCRETE_MAX_DISTINCT",
    "IDENTIFIER_MIN_ROWS",
    "MAX_COLUMNS",
    "NULL",
    "NUMERIC",
    "OTHER",
    "PROFILE_FORMAT",
    "QUANTILE_PROBS",
    "RESERVOIR_SIZE",
    "SEMANTIC_TYPES",
    "STRING",
    "TEXT_MIN_DISTINCT_RATIO",
    "TEXT_MIN_MEAN_LENGTH",
    "TOP_MAX_DISTINCT",
    "UNPIVOT_BATCH",
    "UNPIVOT_MAX_ROWS",
    "ColumnProfile",
    "DatasetProfile",
    "StreamingProfile",
    "check_width",
    "infer_semantic_type",
    "profile_parquet",
    "profile_table",
    "type_family",
]
