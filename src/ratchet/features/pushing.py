"""``push``: write rows to a feature view now (streaming writes).

The rows must have the view's join keys, its timestamp column and every feature (its
created-time column is optional: filled with the push's time when missing); any other
column is refused. They are cast to the types the view's source has for those columns (so
the source and the pushed rows read as one table), then:

- **offline** (``to="offline"`` or ``"online_and_offline"``): appended to the view's offline
  log as one Parquet file under :func:`ratchet.features.sources.pushed_dir`, written
  atomically, named ``<nanoseconds>-<random>.parquet`` so that names sort in push order (the
  source order the point-in-time rule ends on). Training sets read them with the source.
- **online** (``to="online"`` or ``"online_and_offline"``): per entity, the latest pushed row
  with event time ≤ now is written to the online store under the newest-wins rule (an older
  pushed row never replaces a newer stored one). Rows with a future event time go to the
  offline log only; a later ``materialize`` brings them online once their time has come.

The offline file is written before the online store, so a failure between the two leaves the
rows in the offline log, from which ``materialize --start`` rebuilds the online entries.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, NotFound
from ratchet.features.definitions import FeatureView
from ratchet.features.materialization import latest_rows_sql, open_duckdb, write_entries
from ratchet.features.time_sql import column_types, now_us, quote_ident, quote_literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from ratchet.workspace import Workspace

DESTINATIONS = ("online_and_offline", "online", "offline")
ORDER_COLUMN = "__ratchet_push_order"
_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DATE", "TIMESTAMP_NS",
                    "TIMESTAMP_MS", "TIMESTAMP_S")

_name_lock = threading.Lock()
_last_ns = 0


@dataclass(frozen=True)
class PushResult:
    view: str
    view_version: int
    rows: int                 # rows pushed
    online_rows: int          # online entries written (the latest row of each entity)
    offline_file: str | None  # the offline log's new file

    def to_dict(self) -> dict[str, Any]:
        return {"view": self.view, "view_version": self.view_version, "rows": self.rows,
                "online_rows": self.online_rows, "offline_file": self.offline_file}


def _as_arrow(data: object, where: str) -> pa.Table:
    import pyarrow as pa

    try:
        if isinstance(data, pa.Table):
            return data
        if isinstance(data, pa.RecordBatch):
            return pa.Table.from_batches([data])
        pandas = sys.modules.get("pandas")
        if pandas is not None and isinstance(data, pandas.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, Mapping):
            return pa.table({str(k): list(v) for k, v in data.items()})
        if isinstance(data, Sequence) and not isinstance(data, str | bytes):
            if not all(isinstance(row, Mapping) for row in data):
                raise InvalidInput(f"{where}: rows must be dicts of column values")
            return pa.Table.from_pylist([dict(row) for row in data])
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidInput(f"{where}: the rows cannot be read as a table: {exc}") from None
    raise InvalidInput(f"{where}: push a pandas DataFrame, a pyarrow Table, a list of dicts "
                       f"or a dict of columns, got {type(data).__name__}")


def _next_file_name() -> str:
    """``<ns>-<random>.parquet``, sorting after every name this process made before."""
    global _last_ns
    with _name_lock:
        ns = max(time.time_ns(), _last_ns + 1)
        _last_ns = ns
    return f"{ns:020d}-{os.urandom(6).hex()}.parquet"


def _source_types(view: FeatureView, workspace: Workspace, con: duckdb.DuckDBPyConnection,
                  where: str) -> dict[str, str]:
    """The DuckDB types of the view's columns in its source (or, without source files, in
    its newest pushed file); empty when there is neither."""
    from ratchet.features.sources import SourceScan, view_files

    try:
        scan = view_files(view, workspace)
    except NotFound:
        return {}
    files = scan.files or scan.pushed[-1:]
    if not files:
        return {}
    return column_types(con, SourceScan(view.name, files).sql(), where=where)


def _typed_select(view: FeatureView, given: Sequence[str], given_types: dict[str, str],
                  source_types: dict[str, str], created_us: int) -> str:
    """The pushed columns cast to the source's types, the created time filled in."""
    times = {view.timestamp_field, view.created_timestamp_field}
    parts = []
    for column in [*view.join_keys, view.timestamp_field,
                   *([view.created_timestamp_field] if view.created_timestamp_field else []),
                   *view.features]:
        target = source_types.get(column)
        if target is None and column in times:
            target = ("TIMESTAMP WITH TIME ZONE"
                      if given_types.get(column) == "TIMESTAMP WITH TIME ZONE" else "TIMESTAMP")
        ident = quote_ident(column)
        value = ident
        if column not in given:  # the created time
            value = f"make_timestamp({created_us})"
        elif column in times and given_types.get(column) == "VARCHAR":
            value = f"CAST({ident} AS TIMESTAMPTZ)"  # ISO text, with or without an offset
        if target is None or (value == ident and target == given_types.get(column)):
            parts.append(f"{value} AS {ident}")
        else:
            parts.append(f"CAST({value} AS {target}) AS {ident}")
    parts.append(quote_ident(ORDER_COLUMN))
    return ", ".join(parts)


def push(view: str, data: object, *, to: str = "online_and_offline",
         workspace: Workspace | None = None) -> PushResult:
    """Write ``data`` (a DataFrame, an Arrow table, a list of dicts or a dict of columns)
    to feature view ``view``: its offline log, the online store, or both (``to``)."""
    import duckdb
    import pyarrow as pa

    from ratchet.atomic import atomic_path
    from ratchet.features.catalog import FeatureCatalog
    from ratchet.features.online_connections import shared_online_store
    from ratchet.features.sources import pushed_dir
    from ratchet.workspace import resolve as resolve_workspace

    if not isinstance(view, str):
        raise InvalidInput(f"push: the view is a feature view's name, got {view!r}")
    if to not in DESTINATIONS:
        raise InvalidInput(f"push to={to!r}: give one of {', '.join(DESTINATIONS)}")
    ws = resolve_workspace(workspace)
    feature_view, version = FeatureCatalog(ws).view(view)
    where = f"push to feature view {view!r}"
    online = to != "offline"
    if online and not feature_view.online:
        raise InvalidInput(f"{where}: the view is offline-only (online=False); push with "
                           "to='offline'")
    table = _as_arrow(data, where)
    names = table.column_names
    required = [*feature_view.join_keys, feature_view.timestamp_field, *feature_view.features]
    allowed = {*required, feature_view.created_timestamp_field}
    missing = [c for c in required if c not in names]
    unknown = [c for c in names if c not in allowed]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing column {', '.join(map(repr, missing))}")
        if unknown:
            problems.append(f"unknown column {', '.join(map(repr, unknown))}")
        raise InvalidInput(f"{where}: {'; '.join(problems)} (the view takes "
                           f"{', '.join(map(repr, required))}"
                           + (f", and optionally {feature_view.created_timestamp_field!r}"
                              if feature_view.created_timestamp_field else "") + ")")
    if len(set(names)) != len(names):
        raise InvalidInput(f"{where}: repeated column names")
    if table.num_rows == 0:
        return PushResult(view, version, 0, 0, None)
    table = table.append_column(ORDER_COLUMN, pa.array(range(table.num_rows), pa.int64()))
    pushed_at = now_us()
    store = shared_online_store(ws.settings.online_store_uri) if online else None
    with open_duckdb() as con:
        con.register("__ratchet_pushed_input", table)
        given_types = column_types(con, "__ratchet_pushed_input", where=where)
        source_types = _source_types(feature_view, ws, con, where)
        select = _typed_select(feature_view, names, given_types, source_types, pushed_at)
        try:
            con.execute(f"CREATE TEMP TABLE __ratchet_pushed AS SELECT {select} "
                        "FROM __ratchet_pushed_input")
        except duckdb.Error as exc:
            raise InvalidInput(f"{where}: the rows do not fit the view's column types: "
                               f"{str(exc).splitlines()[0]}") from None
        types = column_types(con, "__ratchet_pushed", where=where)
        checks = [(c, f"count(*) FILTER (WHERE {quote_ident(c)} IS NULL)")
                  for c in (*feature_view.join_keys, feature_view.timestamp_field)]
        counts = con.execute(f"SELECT {', '.join(sql for _c, sql in checks)} "
                             "FROM __ratchet_pushed").fetchall()[0]
        empty = [f"{n} rows have no {c!r}" for (c, _sql), n in zip(checks, counts, strict=True)
                 if n]
        if empty:
            raise InvalidInput(f"{where}: {'; '.join(empty)} (join keys and the timestamp "
                               "are required)")
        for time_column in {feature_view.timestamp_field,
                            feature_view.created_timestamp_field} - {None}:
            assert time_column is not None
            if types[time_column].upper() not in _TIMESTAMP_TYPES:
                raise InvalidInput(f"{where}: column {time_column!r} is {types[time_column]},"
                                   " not a timestamp")
        offline_file = None
        if to != "online":
            folder = pushed_dir(ws, view)
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / _next_file_name()
            columns = ", ".join(quote_ident(c) for c in types if c != ORDER_COLUMN)
            with atomic_path(target, mode=0o644) as tmp:
                con.execute(f"COPY (SELECT {columns} FROM __ratchet_pushed ORDER BY "
                            f"{ORDER_COLUMN}) TO {quote_literal(str(tmp))} (FORMAT parquet)")
            offline_file = str(Path(target))
        online_rows = 0
        if store is not None:
            sql = latest_rows_sql(feature_view, "__ratchet_pushed", types,
                                  order_column=ORDER_COLUMN, start_us=None, end_us=pushed_at,
                                  where=where)
            online_rows = write_entries(con, sql, view=feature_view, view_version=version,
                                        store=store, where=where)
    return PushResult(view, version, table.num_rows, online_rows, offline_file)
