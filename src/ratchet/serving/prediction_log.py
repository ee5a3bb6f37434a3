"""The prediction log: every served row, buffered in memory and written as Parquet.

Layout under the artifact root (a local directory or an fsspec URL)::

    predictions/deployment=<name>/hour=<YYYY-MM-DDTHH>/<writer_id>-<uuid7>.parquet

One file per (deployment, hour) per flush and writer, so writers never share a file and
readers prune hours by listing directories. A file only ever appears complete
(``ratchet.artifacts.file_tree``: local writes go to a hidden temp file in the same
directory, fsynced, then renamed; fsspec writes are a single PUT on object stores and a
temp key moved into place elsewhere). Readers ignore hidden files.

``PredictionLog.record`` is the server's hot path: it checks the entry, appends it to a
list under a lock and never touches Arrow or storage. A daemon thread converts buffered
requests to Arrow tables and writes them; a failed write keeps its rows for the next try.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import threading
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate, chain, repeat
from typing import TYPE_CHECKING, Any

from ratchet.artifacts.file_tree import FileTree
from ratchet.errors import InvalidInput
from ratchet.ids import new_id
from ratchet.json_safe import dumps

if TYPE_CHECKING:
    import pyarrow as pa

    from ratchet.serving.prediction_wal import Segment

logger = logging.getLogger(__name__)

PREDICTIONS_DIR = "predictions"
HOUR_MS = 3_600_000
# The fixed columns every file starts with; inputs/outputs follow as input.<c>, output.<c>.
META_COLUMNS = ("request_id", "row", "timestamp", "deployment", "model_name", "model_version",
                "variant", "status", "error", "latency_ms", "flags")
_HOUR_DIR = re.compile(r"^hour=(\d{4}-\d{2}-\d{2}T\d{2})$")
_WRITER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MAX_BACKOFF_S = 60.0
DURABLE_FLUSH_S = 1.0  # durable mode: how often the write-ahead rows become Parquet
_MAX_SEALED = 64
_MAX_TIMESTAMP_MS = 253_402_300_800_000  # year 10000: beyond it datetime cannot name the hour


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    request_id: str            # one HTTP request (or one batch chunk)
    timestamp_ms: int          # epoch ms UTC when the request arrived
    deployment: str
    model_name: str
    model_version: int
    variant: str               # "primary", "shadow", "canary", or a split variant name
    latency_ms: float
    inputs: dict[str, list[Any]]    # column name -> values (n rows), as validated
    outputs: dict[str, list[Any]]   # column name -> values (n rows); {} on error
    rows: list[int] | None = None          # row numbers within the request (None: 0..n-1)
    flags: list[list[str] | None] | None = None  # per row, e.g. ["age:out_of_range"]
    status: str = "ok"                     # "ok" | "error"
    error: str | None = None


# ---------------------------------------------------------------- format (pure)
def meta_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        ("request_id", pa.string()), ("row", pa.int32()),
        ("timestamp", pa.timestamp("ms", tz="UTC")), ("deployment", pa.string()),
        ("model_name", pa.string()), ("model_version", pa.int32()), ("variant", pa.string()),
        ("status", pa.string()), ("error", pa.string()), ("latency_ms", pa.float64()),
        ("flags", pa.list_(pa.string())),
    ])


def hour_dir(timestamp_ms: int) -> str:
    """The partition directory name of the hour ``timestamp_ms`` falls in."""
    start = datetime.fromtimestamp(timestamp_ms // HOUR_MS * 3600, UTC)
    return f"hour={start:%Y-%m-%dT%H}"


def hour_start_ms(name: str) -> int | None:
    """The first epoch ms of an hour partition directory, or None for another name."""
    match = _HOUR_DIR.match(name)
    if match is None:
        return None
    try:
        start = datetime.strptime(match[1], "%Y-%m-%dT%H").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(start.timestamp()) * 1000


def stored_rows(entry: LoggedRequest) -> int:
    """How many Parquet rows ``entry`` becomes; ValueError if it is malformed.

    O(columns), never O(rows): it runs on the request path. A failed request without rows
    (e.g. a shadow that rejected the input) still becomes one row, with a null ``row``, so
    that its error is kept; an ``ok`` request without rows has nothing to log.
    """
    for field, kind in (("request_id", str), ("deployment", str), ("model_name", str),
                        ("variant", str), ("status", str)):
        if not isinstance(getattr(entry, field), kind):
            raise ValueError(f"{field} must be a str, got {getattr(entry, field)!r}")
    for field in ("timestamp_ms", "model_version"):
        value = getattr(entry, field)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{field} must be an int, got {value!r}")
    if not 0 <= entry.timestamp_ms < _MAX_TIMESTAMP_MS:
        raise ValueError(f"timestamp_ms {entry.timestamp_ms} is not epoch milliseconds")
    if not isinstance(entry.latency_ms, int | float):
        raise ValueError(f"latency_ms must be a number, got {entry.latency_ms!r}")
    if entry.error is not None and not isinstance(entry.error, str):
        raise ValueError(f"error must be a str or None, got {entry.error!r}")
    n = _declared_rows(entry)
    sized = [("rows", entry.rows), ("flags", entry.flags)]
    sized += [(f"input {c!r}", v) for c, v in entry.inputs.items()]
    sized += [(f"output {c!r}", v) for c, v in entry.outputs.items()]
    for what, values in sized:
        if values is not None and len(values) != n:
            raise ValueError(f"{what} has {len(values)} values, expected {n}")
    return n if n or entry.status == "ok" else 1


def _declared_rows(entry: LoggedRequest) -> int:
    if entry.rows is not None:
        return len(entry.rows)
    first = next(iter(entry.inputs.values()), None)
    if first is None:
        first = next(iter(entry.outputs.values()), None)
    return 0 if first is None else len(first)


class _Columns:
    """Rows of one (deployment, hour, input and output columns) group, as column lists.

    ``record`` appends values here (a few list extends, no per-request objects), so the
    garbage collector has nothing new to traverse per request and a flush is one Arrow
    conversion per column. NumPy columns (batch scoring) are kept as arrays.
    """

    __slots__ = ("deployment", "has_flags", "hour", "inputs", "meta", "n", "outputs")

    def __init__(self, deployment: str, hour: str, inputs: tuple[str, ...],
                 outputs: tuple[str, ...]) -> None:
        self.deployment, self.hour, self.n, self.has_flags = deployment, hour, 0, False
        # request_id, row, timestamp, model_name, model_version, variant, status, error,
        # latency_ms, flags
        self.meta: list[list[Any]] = [[] for _ in range(10)]
        self.inputs: dict[str, list[Any]] = {name: [] for name in inputs}
        self.outputs: dict[str, list[Any]] = {name: [] for name in outputs}

    def add(self, e: LoggedRequest, n: int) -> None:
        meta = self.meta
        if n == 1:
            meta[0].append(e.request_id)
            meta[1].append(e.rows[0] if e.rows is not None else
                           0 if e.inputs or e.outputs else None)
            meta[2].append(e.timestamp_ms)
            meta[3].append(e.model_name)
            meta[4].append(e.model_version)
            meta[5].append(e.variant)
            meta[6].append(e.status)
            meta[7].append(e.error)
            meta[8].append(e.latency_ms)
            meta[9].append(e.flags[0] if e.flags is not None else None)
        else:  # many rows (batch scoring): constants stay one value until the flush
            for column, value in zip(meta, (e.request_id, None, e.timestamp_ms, e.model_name,
                                            e.model_version, e.variant, e.status, e.error,
                                            e.latency_ms), strict=False):
                column.append(_Repeat(value, n))
            meta[1][-1] = _Chunk(e.rows if e.rows is not None else range(n))
            meta[9].extend(e.flags if e.flags is not None else repeat(None, n))
        self.has_flags = self.has_flags or e.flags is not None
        for target, source in ((self.inputs, e.inputs), (self.outputs, e.outputs)):
            for name, values in source.items():
                column = target[name]
                if isinstance(values, list):
                    column.extend(values)
                else:  # a NumPy column: kept whole, converted once at flush
                    column.append(_Chunk(values))
        self.n += n

    def table(self) -> pa.Table:
        """All rows as one table; rows of requests that cannot be converted are left out
        (see :meth:`convert`)."""
        return self.convert()[0]

    def convert(self) -> tuple[pa.Table | None, int]:
        """(the table, rows left out). One request whose values Arrow cannot encode (a lone
        surrogate in a string, say) costs its own rows only: on a failed conversion every
        column is checked value by value and the requests holding a bad value are dropped.
        None when no row is left."""
        try:
            return self._table(), 0
        except Exception:
            pass
        sizes = [v.n if type(v) is _Repeat else 1 for v in self.meta[0]]
        meta = [_flat(column) for column in self.meta]
        inputs = {name: _flat(column) for name, column in self.inputs.items()}
        outputs = {name: _flat(column) for name, column in self.outputs.items()}
        bad_rows: set[int] = set()
        for kind, values in chain(zip(_meta_kinds(), meta, strict=True),
                                  ((None, v) for v in chain(inputs.values(),
                                                            outputs.values()))):
            bad_rows |= _unconvertible(values, kind)
        starts = list(accumulate(sizes, initial=0))
        bad_requests = {bisect_right(starts, i) - 1 for i in bad_rows}
        if not bad_requests:  # not a value problem but a bug: let it be seen
            return self._table(), 0
        keep = [row for r, size in enumerate(sizes) if r not in bad_requests
                for row in range(starts[r], starts[r] + size)]
        dropped = self.n - len(keep)
        if not keep:
            return None, dropped
        kept = _Columns(self.deployment, self.hour, (), ())
        kept.meta = [[column[i] for i in keep] for column in meta]
        kept.inputs = {name: [values[i] for i in keep] for name, values in inputs.items()}
        kept.outputs = {name: [values[i] for i in keep] for name, values in outputs.items()}
        kept.n, kept.has_flags = len(keep), self.has_flags
        return kept._table(), dropped

    def _table(self) -> pa.Table:
        import numpy as np
        import pyarrow as pa

        meta = self.meta
        columns: dict[str, Any] = {
            "request_id": _meta_array(meta[0], pa.string()),
            "row": _meta_array(meta[1], pa.int32()),
            "timestamp": _meta_array(meta[2], pa.timestamp("ms", tz="UTC")),
            "deployment": pa.repeat(pa.scalar(self.deployment, pa.string()), self.n),
            "model_name": _meta_array(meta[3], pa.string()),
            "model_version": _meta_array(meta[4], pa.int32()),
            "variant": _meta_array(meta[5], pa.string()),
            "status": _meta_array(meta[6], pa.string()),
            "error": _meta_array(meta[7], pa.string()),
            "latency_ms": _meta_array(meta[8], pa.float64()),
        }
        # Flags from offsets + values: pa.array on a list of lists is ~50 us per row.
        offsets = np.zeros(self.n + 1, dtype=np.int32)
        if self.has_flags:
            np.cumsum([len(f) if f else 0 for f in meta[9]], out=offsets[1:])
            values = pa.array([str(f) for f in chain.from_iterable(f for f in meta[9] if f)],
                              pa.string())
        else:
            values = pa.array([], pa.string())
        columns["flags"] = pa.ListArray.from_arrays(pa.array(offsets), values)
        table = pa.table({name: columns[name] for name in META_COLUMNS}, schema=meta_schema())
        for prefix, group in (("input.", self.inputs), ("output.", self.outputs)):
            for name, column in group.items():
                table = table.append_column(prefix + name, _column_array(column))
        return table


class _Chunk:
    """A NumPy column inside a list column (batch scoring)."""

    __slots__ = ("values",)

    def __init__(self, values: Any) -> None:
        self.values = values


class _Repeat:
    """One value for ``n`` rows (a batch's request id, model version, ...)."""

    __slots__ = ("n", "value")

    def __init__(self, value: Any, n: int) -> None:
        self.value, self.n = value, n


def _meta_array(column: list[Any], kind: pa.DataType) -> pa.Array:
    """A meta column of plain values, with runs of ``_Repeat`` / ``_Chunk`` in between."""
    import pyarrow as pa

    if not any(type(v) in (_Repeat, _Chunk) for v in column):
        return pa.array(column, kind)
    pieces: list[pa.Array] = []
    plain: list[Any] = []
    for v in column:
        if type(v) in (_Repeat, _Chunk):
            if plain:
                pieces.append(pa.array(plain, kind))
                plain = []
            pieces.append(pa.repeat(pa.scalar(v.value, kind), v.n) if type(v) is _Repeat
                          else pa.array(v.values, kind))
        else:
            plain.append(v)
    if plain:
        pieces.append(pa.array(plain, kind))
    return pa.concat_arrays(pieces)


def _meta_kinds() -> list[pa.DataType]:
    """The Arrow types of ``_Columns.meta``, in its order."""
    import pyarrow as pa

    return [pa.string(), pa.int32(), pa.timestamp("ms", tz="UTC"), pa.string(), pa.int32(),
            pa.string(), pa.string(), pa.string(), pa.float64(), pa.list_(pa.string())]


def _flat(column: list[Any]) -> list[Any]:
    """One plain value per row: runs of ``_Repeat`` and ``_Chunk`` expanded."""
    if not any(type(v) in (_Repeat, _Chunk) for v in column):
        return column
    out: list[Any] = []
    for v in column:
        if type(v) is _Repeat:
            out.extend(repeat(v.value, v.n))
        elif type(v) is _Chunk:
            values = v.values
            out.extend(values.tolist() if hasattr(values, "tolist") else values)
        else:
            out.append(v)
    return out


def _unconvertible(values: list[Any], kind: pa.DataType | None) -> set[int]:
    """The positions of the values that Arrow cannot store (slow: only after a failure)."""
    import pyarrow as pa

    def convert(part: list[Any]) -> None:
        if kind is None or pa.types.is_list(kind):
            _array(part, kind)
        else:
            pa.array(part, kind)

    try:
        convert(values)
        return set()
    except Exception:
        pass
    bad = set()
    for i, value in enumerate(values):
        try:
            convert([value])
        except Exception:
            bad.add(i)
    return bad


def _column_array(column: list[Any]) -> pa.Array:
    if not any(isinstance(v, _Chunk) for v in column):
        return _array(column)
    import numpy as np

    parts = [v.values if isinstance(v, _Chunk) else np.asarray([v]) for v in column]
    try:
        return _array(np.concatenate(parts))
    except (TypeError, ValueError):
        return _array(list(chain.from_iterable(p.tolist() for p in parts)))


def to_table(entries: Sequence[LoggedRequest]) -> pa.Table:
    """One row per prediction row; columns are the union over ``entries`` (missing: null).

    A column Arrow cannot type (mixed kinds, e.g. ints and strings) is stored as strings.
    The writer groups entries by their columns and never needs the union; this is for
    tests and tools.
    """
    if not entries:
        raise ValueError("no entries")
    inputs = tuple(dict.fromkeys(chain.from_iterable(e.inputs for e in entries)))
    outputs = tuple(dict.fromkeys(chain.from_iterable(e.outputs for e in entries)))
    first = entries[0]
    columns = _Columns(first.deployment, hour_dir(first.timestamp_ms), inputs, outputs)
    for e in entries:
        n = stored_rows(e)
        padded = dataclasses.replace(
            e, inputs={c: e.inputs.get(c, [None] * n) for c in inputs},
            outputs={c: e.outputs.get(c, [None] * n) for c in outputs})
        columns.add(padded, n)
    return columns.table()


def _array(values: Any, kind: pa.DataType | None = None) -> pa.Array:
    """``values`` as one Arrow array. Without ``kind``, a value column: Arrow's own type if
    that is a scalar type; else text, with objects and lists as JSON, so that a column is
    never a struct or list whose type would clash with the same column in other files.
    Raises if a value cannot be stored at all (a string with a lone surrogate)."""
    import pyarrow as pa

    try:
        array = pa.array(values, kind)
        if kind is not None or not pa.types.is_nested(array.type):
            return array
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        if kind is not None:  # flags: each flag as text
            return pa.array([None if row is None else [str(f) for f in row] for row in values],
                            kind)
    return pa.array([_text(v) for v in values], pa.string())


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple) or (
            hasattr(value, "tolist") and type(value).__module__ == "numpy"):  # an array row
        return dumps(value)  # ratchet.json_safe: NaN -> null, inf -> "Infinity"
    return str(value)


def _parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


# ---------------------------------------------------------------- storage
class LogStorage(FileTree):
    """The ``predictions/`` tree under an artifact root (a local directory or an fsspec
    URL); the file operations are ``ratchet.artifacts.file_tree``'s."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root, PREDICTIONS_DIR)

    def list(self, directory: str, *, dirs: bool, suffix: str = ".parquet") -> list[str]:
        """Names of the subdirectories (``dirs``) or visible Parquet files; [] if absent."""
        return super().list(directory, dirs=dirs, suffix=suffix)


# ---------------------------------------------------------------- the writer
class PredictionLog:
    """Buffers requests in memory and writes them as Parquet from a background thread.

    ``record`` never blocks on I/O and never raises: when ``max_buffered_rows`` would be
    exceeded the request is dropped, counted and reported to ``on_drop(n_rows)``.
    ``close`` (idempotent) writes what is left; call it on the shutdown path, not inside
    a raw signal handler. Create one per process (each uvicorn worker): the thread does not
    survive a fork, and ``writer_id`` (default ``<hostname>-<pid>``) keeps file names apart.

    A process killed without ``close`` (SIGKILL, OOM killer, power loss) loses what it had
    buffered: up to one flush interval of rows. ``flush_interval_s=0`` is durable mode:
    ``record`` also appends each request to a write-ahead file in ``wal_dir`` (default
    ``<root>/predictions/.wal``; a local directory) before it returns, Parquet files are
    still written every second, and the next writer to start replays what a dead one left
    (see ``ratchet.serving.prediction_wal``). ``fsync=True`` also survives a power loss.
    """

    def __init__(self, root: str, *, flush_interval_s: float = 1.0,
                 max_buffered_rows: int = 100_000, flush_rows: int = 20_000,
                 writer_id: str | None = None,
                 on_drop: Callable[[int], None] | None = None,
                 on_flush: Callable[[int], None] | None = None,
                 wal_dir: str | None = None, fsync: bool = False) -> None:
        if not flush_interval_s >= 0:
            raise InvalidInput(f"flush_interval_s must be >= 0 (0: durable), got "
                               f"{flush_interval_s}")
        for name, value in (("max_buffered_rows", max_buffered_rows), ("flush_rows", flush_rows)):
            if not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be an int >= 1, got {value!r}")
        from ratchet.store.deployment_store import validate_deployment_name

        self._validate_name = validate_deployment_name
        self._valid_names: set[str] = set()  # names become directories: checked once each
        self._storage = LogStorage(root)
        self.writer_id = _writer_id(writer_id)
        self._interval = float(flush_interval_s) or DURABLE_FLUSH_S
        self._max_rows = max_buffered_rows
        self._flush_rows = flush_rows
        self._on_drop = on_drop
        self._on_flush = on_flush
        self._lock = threading.Lock()         # guards the buffer and the counters
        self._flushing = threading.RLock()    # one flush at a time, so flush() sees all
        self._closing = threading.RLock()
        # Rows waiting, as columns per (deployment, hour, columns); tables whose write
        # failed wait in _retry, oldest first.
        self._groups: dict[tuple[Any, ...], _Columns] = {}
        self._retry: list[tuple[str, str, pa.Table, int, str | None]] = []
        # What a flush has taken from the buffer and not yet written (for ``rows_of``).
        self._in_flight: list[_Columns] = []
        self._in_flight_tables: list[tuple[str, str, pa.Table, int, str | None]] = []
        self._buffered = 0    # rows held in memory: buffered plus being written
        self._dropped = 0
        self._written = 0
        self._failures = 0
        self._full = False    # log a full buffer once per episode, not once per request
        self._closed = False
        self._close_started = False
        # Durable mode: the segment being appended to, segments whose rows a flush took
        # (deleted once nothing waits for a retry), and dead writers' segments to replay.
        self._fsync = bool(fsync)
        self._wal: Segment | None = None
        self._sealed: list[Segment] = []
        self._orphans: list[Segment] = []
        if flush_interval_s == 0:
            from ratchet.serving.prediction_wal import Segment as _Segment
            from ratchet.serving.prediction_wal import orphans

            if wal_dir is None:
                if not self._storage.local:
                    raise InvalidInput(f"durable mode (flush_interval_s=0) needs a local "
                                       f"wal_dir when the log is at {root!r}")
                wal_dir = self._storage.path(".wal")
            self._orphans = orphans(wal_dir)
            self._wal = _Segment.create(wal_dir, self.writer_id, fsync=self._fsync)
            self._wal_dir = wal_dir
        self._wal_failed = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ratchet-prediction-log",
                                        daemon=True)
        self._thread.start()

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        """Rows not logged: buffer full, malformed, unconvertible, or left at close."""
        return self._dropped

    @property
    def written(self) -> int:
        return self._written

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def flush_failures(self) -> int:
        """Flushes in which some write failed (their rows were kept for a retry)."""
        return self._failures

    def record(self, entry: LoggedRequest) -> bool:
        """Buffer ``entry``; False (and counted as dropped) if it cannot be kept."""
        try:
            try:
                n = stored_rows(entry)
                if entry.deployment not in self._valid_names:
                    self._valid_names.add(self._validate_name(entry.deployment))
            except Exception as exc:  # a caller bug: serving goes on, the rows are counted
                logger.error("prediction log: dropped a malformed entry: %s", exc)
                self._drop(max(_declared_rows_or_zero(entry), 1))
                return False
            if n == 0:
                return True
            line = None
            if self._wal is not None:
                from ratchet.serving.prediction_wal import encode

                line = encode(entry)
            wake = first_drop = False
            with self._lock:
                accepted = not self._closed and self._buffered + n <= self._max_rows
                if accepted:
                    if line is not None:
                        self._append(line)
                    _add(self._groups, entry, n)
                    self._buffered += n
                    wake = self._buffered >= self._flush_rows
                else:
                    first_drop = not self._full and not self._closed
                    self._full = True
            if accepted:
                if wake and not self._wake.is_set():
                    self._wake.set()
                return True
            if first_drop:
                logger.warning("prediction log: %d rows buffered (max_buffered_rows=%d); "
                               "dropping requests until the writer catches up",
                               self._buffered, self._max_rows)
            self._drop(n)
            return False
        except Exception:
            logger.exception("prediction log: record failed")
            return False

    def rows_of(self, deployment: str, request_ids: set[str]) -> set[tuple[str, int]]:
        """The (request_id, row) pairs of ``request_ids`` that ``deployment`` logged and
        that are still in memory (buffered, being written or waiting for a retry): with the
        files, every row this process served. The buffer is copied under the lock (a C-level
        list copy) and scanned outside it, so ``record`` is never held up for long."""
        import pyarrow as pa
        import pyarrow.compute as pc

        with self._lock:
            columns = [(list(g.meta[0]), list(g.meta[1]))
                       for g in chain(self._groups.values(), self._in_flight)
                       if g.deployment == deployment]
            tables = [item[2] for item in chain(self._retry, self._in_flight_tables)
                      if item[0] == deployment]
        found: set[tuple[str, int]] = set()
        for ids, rows in columns:
            for rid, row in zip(ids, rows, strict=True):
                rid = rid.value if type(rid) is _Repeat else rid
                if rid in request_ids:
                    numbers = row.values if type(row) is _Chunk else (row,)
                    found.update((rid, int(r)) for r in numbers if r is not None)
        wanted = pa.array(sorted(request_ids), pa.string())
        for table in tables:
            hits = table.select(["request_id", "row"]).filter(
                pc.is_in(table.column("request_id"), value_set=wanted))
            found.update((rid, row) for rid, row in zip(
                hits.column("request_id").to_pylist(), hits.column("row").to_pylist(),
                strict=True) if row is not None)
        return found

    def _append(self, line: bytes) -> None:
        """Append to the write-ahead segment (under the lock, so that a segment holds
        exactly the rows of the groups a flush takes)."""
        assert self._wal is not None
        try:
            self._wal.append(line, fsync=self._fsync)
            self._wal_failed = False
        except OSError as exc:  # disk full: the row is still buffered, only not durable
            if not self._wal_failed:
                logger.error("prediction log: cannot append to %s (%s); rows are kept in "
                             "memory only until it works again", self._wal.path, exc)
            self._wal_failed = True

    def flush(self) -> int:
        """Write everything buffered now; the rows written. Never raises: failures are
        logged and counted, and their rows stay buffered for the next flush."""
        return self._flush()[0]

    def close(self) -> None:
        """Stop the thread and write what is left; rows that still fail count as dropped."""
        with self._closing:
            if self._close_started:
                return
            self._close_started = True
            self._stop.set()
            self._wake.set()
            if self._thread is not threading.current_thread():
                self._thread.join()
            with self._lock:
                self._closed = True  # from here, a record would never be flushed
            with self._flushing:  # no other flush may hold rows while we count what is left
                self._flush()
                with self._lock:
                    lost = self._buffered
                    self._groups, self._retry, self._buffered = {}, [], 0
                    segments = [*self._sealed, *self._orphans]
                    if self._wal is not None:
                        segments.append(self._wal)
                    self._sealed, self._orphans, self._wal = [], [], None
                for segment in segments:  # unlocked: the next writer to start replays them
                    if lost:
                        segment.release()
                    else:
                        segment.delete()
            if lost and segments:
                logger.error("prediction log: %d rows could not be written before close; "
                             "they stay in %s and are written when the log next starts",
                             lost, self._wal_dir)
            elif lost:
                logger.error("prediction log: %d rows could not be written before close", lost)
                self._drop(lost)

    # -- internals --------------------------------------------------------------

    def _run(self) -> None:
        delay = self._interval
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            _, failed = self._flush()
            if failed:  # storage is failing: back off instead of retrying on every wake-up
                self._stop.wait(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
            else:
                delay = self._interval

    def _flush(self) -> tuple[int, bool]:
        try:
            with self._flushing:
                with self._lock:
                    groups, self._groups = self._groups, {}
                    retry, self._retry = self._retry, []
                    self._in_flight = list(groups.values())
                    self._in_flight_tables = list(retry)
                    sealed = None
                    # While storage fails, sealed segments wait (each holds a file
                    # descriptor for its lock): past a few, keep appending to the current.
                    if self._wal is not None and self._wal.size and \
                            len(self._sealed) < _MAX_SEALED:
                        sealed = self._rotate()
                orphan_rows = self._replay_orphans() if self._orphans else 0
                if not groups and not retry:
                    return orphan_rows, False
                # Files of a segment's rows are named after it, so a replay overwrites them.
                names = [f"{sealed.stem}-{k}" if sealed is not None else None
                         for k in range(len(groups))]
                pending, lost = list(retry), 0
                for group, name in zip(groups.values(), names, strict=True):
                    try:  # deterministic: a group that cannot be converted never will be
                        table, bad = group.convert()
                        if bad:
                            logger.warning("prediction log: dropped %d rows of deployment %r "
                                           "whose values cannot be stored (e.g. a string "
                                           "with a lone surrogate); the other %d rows are "
                                           "kept", bad, group.deployment, group.n - bad)
                            lost += bad
                        if table is not None:
                            pending.append((group.deployment, group.hour, table,
                                            group.n - bad, name))
                    except Exception:
                        logger.exception("prediction log: dropped %d rows of deployment %r "
                                         "that cannot be converted to Arrow", group.n,
                                         group.deployment)
                        lost += group.n
                written, failed = self._write(pending)
                with self._lock:
                    self._retry[:0] = failed  # oldest first, ahead of newer requests
                    self._in_flight, self._in_flight_tables = [], []
                    if sealed is not None:
                        self._sealed.append(sealed)
                    done, self._sealed = (self._sealed, []) if not self._retry else ([],
                                                                                     self._sealed)
                    self._buffered -= written + lost
                    self._written += written
                    self._dropped += lost
                    if failed:
                        self._failures += 1
                    elif written:
                        self._full = False
            for segment in done:  # every row of theirs is in a file now
                segment.delete()
            _notify(self._on_flush, written)
            _notify(self._on_drop, lost)
            return written + orphan_rows, bool(failed)
        except Exception:  # a bug here must not kill the thread or the server
            logger.exception("prediction log: flush failed")
            return 0, True

    def _rotate(self) -> Segment | None:
        """Start a new segment (under the lock); the old one, to delete once written, or
        None if no new one could be made (the old one then stays in use)."""
        from ratchet.serving.prediction_wal import Segment as _Segment

        assert self._wal is not None
        old = self._wal
        try:
            self._wal = _Segment.create(self._wal_dir, self.writer_id, fsync=self._fsync)
        except OSError as exc:
            logger.error("prediction log: cannot start a new write-ahead segment in %s "
                         "(%s); appending to %s meanwhile", self._wal_dir, exc, old.path)
            return None
        return old

    def _replay_orphans(self) -> int:
        """Write the rows of dead writers' segments; each is deleted once written."""
        from ratchet.serving.prediction_wal import decode

        written = 0
        for segment in list(self._orphans):
            groups: dict[tuple[Any, ...], _Columns] = {}
            bad = 0
            for record in segment.read():
                try:
                    entry = LoggedRequest(**decode(record))
                    n = stored_rows(entry)
                except Exception as exc:
                    logger.error("prediction log: skipped a record of %s: %s",
                                 segment.path, exc)
                    continue
                if n:
                    _add(groups, entry, n)
            pending: list[tuple[str, str, pa.Table, int, str | None]] = []
            for k, group in enumerate(groups.values()):
                table, dropped = group.convert()
                bad += dropped
                if table is not None:
                    pending.append((group.deployment, group.hour, table, group.n - dropped,
                                    f"{segment.stem}-{k}"))
            rows, failed = self._write(pending)
            if failed:  # storage failing: try again at the next flush
                continue
            self._orphans.remove(segment)
            segment.delete()
            written += rows
            logger.warning("prediction log: replayed %d rows that a stopped writer left in "
                           "%s", rows, segment.path)
            with self._lock:
                self._written += rows
                self._dropped += bad
            _notify(self._on_flush, rows)
            _notify(self._on_drop, bad)
        return written

    def _write(self, tables: list[tuple[str, str, pa.Table, int, str | None]]
               ) -> tuple[int, list[tuple[str, str, pa.Table, int, str | None]]]:
        """Write one file per table: (rows written, tables to retry)."""
        written, retry = 0, []
        for item in tables:
            deployment, hour, table, rows, stem = item
            directory = self._storage.path(f"deployment={deployment}", hour)
            name = f"{stem or f'{self.writer_id}-{new_id()}'}.parquet"
            try:
                self._storage.put(directory, name, _parquet_bytes(table))
            except Exception as exc:  # disk full, permissions, network: try again later
                logger.error("prediction log: cannot write %d rows to %s (%s); keeping them "
                             "for the next flush", rows, directory, exc)
                retry.append(item)
                continue
            written += rows
        return written, retry

    def _drop(self, n: int) -> None:
        with self._lock:
            self._dropped += n
        _notify(self._on_drop, n)


def _add(groups: dict[tuple[Any, ...], _Columns], entry: LoggedRequest, n: int) -> None:
    """Buffer ``entry`` in the group of its (deployment, hour, columns)."""
    key = (entry.deployment, entry.timestamp_ms // HOUR_MS, *entry.inputs, "|",
           *entry.outputs)
    group = groups.get(key)
    if group is None:
        group = groups[key] = _Columns(entry.deployment, hour_dir(entry.timestamp_ms),
                                       tuple(entry.inputs), tuple(entry.outputs))
    group.add(entry, n)


def _declared_rows_or_zero(entry: object) -> int:
    try:
        return _declared_rows(entry)  # type: ignore[arg-type]
    except Exception:
        return 0


def _notify(callback: Callable[[int], None] | None, n: int) -> None:
    if callback is None or not n:
        return
    try:
        callback(n)
    except Exception:
        logger.exception("prediction log: callback %r failed", callback)


def _writer_id(writer_id: str | None) -> str:
    if writer_id is None:
        host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()).strip("._-") or "host"
        return f"{host[:100]}-{os.getpid()}"
    if not isinstance(writer_id, str) or not _WRITER_ID.match(writer_id):
        raise InvalidInput(f"writer_id must be 1-128 letters, digits, '_', '-' or '.', "
                           f"starting with a letter or digit; got {writer_id!r}")
    return writer_id
