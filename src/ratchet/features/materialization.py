"""``materialize``: copy each online feature view's latest rows into the online store.

For each view (``online=True``), DuckDB reads the view's rows (its source and its pushed
rows, :func:`ratchet.features.sources.view_files`) whose event time E is in (start, end],
keeps the latest row per entity by (E, created time with nulls lowest, source order) — the
point-in-time rule's order — and encodes each as the online store's entry (typed key, E,
created, the feature values as one JSON object). The entries stream out of DuckDB in
Arrow batches and are written batch by batch (each batch atomic, newest wins), so memory is
bounded by DuckDB's limit and one batch, not by the view's size. Then the materialization is
recorded in the metadata store, and the next run starts where this one ended.

``start`` defaults to the end of the last materialization of that view version into this
online store (from the beginning when there is none, or when the view changed version since);
``end`` defaults to now. Rows that arrive late (an event time before the last run's end,
written to the source after it) are not picked up by an incremental run: materialize again
with an earlier ``start``, or push them (``push`` writes the online store directly).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, NotFound
from ratchet.features.definitions import FeatureView
from ratchet.features.online_store import EncodedRow, OnlineStore, encode_key_columns
from ratchet.features.time_sql import (
    column_types,
    epoch_us_sql,
    from_us,
    now_us,
    quote_ident,
    quote_literal,
    to_us,
)
from ratchet.workspace import Workspace
from ratchet.workspace import resolve as resolve_workspace

if TYPE_CHECKING:
    import duckdb

# (view name, entities written so far, entities to write) after each batch.
Progress = Callable[[str, int, int], None]

EVENT_US = "__ratchet_event_us"
CREATED_US = "__ratchet_created_us"
PAYLOAD = "__ratchet_payload"
BATCH_ROWS = 10_000


@dataclass(frozen=True)
class MaterializeResult:
    """What one view's materialization did (times in µs since the epoch, as recorded)."""

    view: str
    view_version: int
    online_store: str
    start_at: int | None  # exclusive; None: from the beginning
    end_at: int           # inclusive
    rows: int             # entities written
    seconds: float
    skipped: str | None = None  # why nothing was read (e.g. already up to date)

    @property
    def start(self) -> datetime | None:
        return None if self.start_at is None else from_us(self.start_at)

    @property
    def end(self) -> datetime:
        return from_us(self.end_at)

    def to_dict(self) -> dict[str, Any]:
        return {"view": self.view, "view_version": self.view_version,
                "online_store": self.online_store,
                "start": None if self.start is None else self.start.isoformat(),
                "end": self.end.isoformat(), "rows": self.rows,
                "seconds": round(self.seconds, 3), "skipped": self.skipped}


def _key_sql(column: str, duckdb_type: str) -> str:
    ident = quote_ident(column)
    kind = duckdb_type.upper()
    if kind.startswith("DECIMAL"):
        return f"CAST({ident} AS DOUBLE) AS {ident}"
    if kind == "UUID":
        return f"CAST({ident} AS VARCHAR) AS {ident}"
    return ident


def _value_sql(column: str, duckdb_type: str) -> str:
    """A feature's value for the entry's JSON object (see online_store's value rules)."""
    from ratchet.features.online_store import TAG_DAYS, TAG_US, TAG_UTC

    ident = quote_ident(column)
    kind = duckdb_type.upper()
    if kind in ("FLOAT", "DOUBLE", "REAL"):  # NaN is missing: null
        return f"CASE WHEN isnan({ident}) THEN NULL ELSE CAST({ident} AS DOUBLE) END"
    if kind == "TIMESTAMP WITH TIME ZONE":
        tagged = f"json_object('{TAG_US}', epoch_us({ident}), '{TAG_UTC}', true)"
    elif kind.startswith("TIMESTAMP"):
        tagged = f"json_object('{TAG_US}', epoch_us(CAST({ident} AS TIMESTAMP)))"
    elif kind == "DATE":
        tagged = f"json_object('{TAG_DAYS}', date_diff('day', DATE '1970-01-01', {ident}))"
    else:
        return ident
    return f"CASE WHEN {ident} IS NULL THEN NULL ELSE {tagged} END"


def latest_rows_sql(view: FeatureView, table_sql: str, types: dict[str, str], *,
                    order_column: str | None, start_us: int | None, end_us: int | None,
                    where: str) -> str:
    """SQL for the online entries of ``view`` from the rows of ``table_sql``: per entity,
    the latest row with E in (start, end] by (E, created with nulls lowest, order_column),
    as the key columns, E µs, created µs and the JSON object of the feature values."""
    missing = [c for c in (*view.join_keys, view.timestamp_field, *view.features,
                           *([view.created_timestamp_field]
                             if view.created_timestamp_field else []))
               if c not in types]
    if missing:
        raise InvalidInput(f"{where}: no column {', '.join(map(repr, missing))} (it has "
                           f"{', '.join(sorted(types))})")
    keys = [quote_ident(k) for k in view.join_keys]
    event = epoch_us_sql(view.timestamp_field, types[view.timestamp_field], where=where)
    created = ("CAST(NULL AS BIGINT)" if view.created_timestamp_field is None else
               epoch_us_sql(view.created_timestamp_field, types[view.created_timestamp_field],
                            where=where))
    conditions = [f"{k} IS NOT NULL" for k in keys] + [f"{EVENT_US} IS NOT NULL"]
    if start_us is not None:
        conditions.append(f"{EVENT_US} > {int(start_us)}")
    if end_us is not None:
        conditions.append(f"{EVENT_US} <= {int(end_us)}")
    prefilter = _raw_time_bounds(view.timestamp_field, types[view.timestamp_field],
                                 start_us, end_us)
    order = f"{EVENT_US} DESC, {CREATED_US} DESC NULLS LAST"
    if order_column is not None:
        order += f", {quote_ident(order_column)} DESC"
    features = [quote_ident(f) for f in view.features]
    payload = "json_object(" + ", ".join(
        f"{quote_literal(f)}, {_value_sql(f, types[f])}" for f in view.features) + ")"
    key_select = ", ".join(_key_sql(k, types[k]) for k in view.join_keys)
    return (
        f"WITH timed AS (SELECT {key_select}, {', '.join(features)}, "
        f"{event} AS {EVENT_US}, {created} AS {CREATED_US}"
        f"{', ' + quote_ident(order_column) if order_column else ''} FROM {table_sql}"
        f"{' WHERE ' + ' AND '.join(prefilter) if prefilter else ''}), "
        f"latest AS (SELECT * FROM timed WHERE {' AND '.join(conditions)} "
        f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} ORDER BY {order}) = 1) "
        f"SELECT {', '.join(keys)}, {EVENT_US}, {CREATED_US}, {payload} AS {PAYLOAD} "
        f"FROM latest")


_DAY_US = 86_400_000_000


def _raw_time_bounds(column: str, duckdb_type: str, start_us: int | None,
                     end_us: int | None) -> list[str]:
    """Bounds on the event-time column itself, a day wider than (start, end] (so whatever
    the session's time zone they never drop a row the exact test keeps): DuckDB prunes
    Parquet row groups by them, so an incremental run skips the files' older parts."""
    kind = duckdb_type.upper()
    if not kind.startswith("TIMESTAMP"):
        return []
    ident = quote_ident(column)
    bounds = []
    if start_us is not None:
        bounds.append(f"{ident} >= CAST(make_timestamp({int(start_us) - _DAY_US}::BIGINT) "
                      f"AS {kind})")
    if end_us is not None:
        bounds.append(f"{ident} <= CAST(make_timestamp({int(end_us) + _DAY_US}::BIGINT) "
                      f"AS {kind})")
    return bounds


def write_entries(con: duckdb.DuckDBPyConnection, sql: str, *, view: FeatureView,
                  view_version: int, store: OnlineStore, where: str,
                  batch_rows: int = BATCH_ROWS, progress: Progress | None = None) -> int:
    """Run ``sql`` (from :func:`latest_rows_sql`) and write its entries to ``store`` in
    batches; how many were written."""
    import duckdb

    table = "__ratchet_entries"
    total = -1
    try:
        if progress is not None:  # counted first, for the progress bar's total
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {sql}")
            total = int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
            sql = f"SELECT * FROM {table}"
        reader = con.sql(sql).to_arrow_reader(batch_rows)
    except duckdb.Error as exc:
        raise InvalidInput(f"{where}: cannot read its rows: {str(exc).splitlines()[0]}"
                           ) from None
    n_keys = len(view.join_keys)
    written = 0
    if progress is not None:
        progress(view.name, 0, total)
    try:
        for batch in reader:
            columns = batch.to_pydict()
            names = batch.schema.names
            try:
                keys = encode_key_columns([columns[n] for n in names[:n_keys]])
            except InvalidInput as exc:
                raise InvalidInput(f"{where}: {exc}") from None
            rows: list[EncodedRow] = [
                (key, event, created, payload)
                for key, event, created, payload in zip(
                    keys, columns[EVENT_US], columns[CREATED_US], columns[PAYLOAD],
                    strict=True)
                if key is not None]
            written += store.write(view.name, view_version, rows)
            if progress is not None:
                progress(view.name, written, total)
    except duckdb.Error as exc:
        raise InvalidInput(f"{where}: cannot read its rows: {str(exc).splitlines()[0]}"
                           ) from None
    finally:
        if progress is not None:
            con.execute(f"DROP TABLE IF EXISTS {table}")
    return written


# One DuckDB database per process for materialize and push (opening one costs ~50 ms,
# a push should not pay it); each call works on its own cursor (its own session: temp
# tables, registered tables and settings are the cursor's).
_duckdb: tuple[int, Any, Any] | None = None  # (pid, ExitStack, connection)
_duckdb_lock = threading.Lock()


def _shared_duckdb() -> duckdb.DuckDBPyConnection:
    global _duckdb
    from ratchet.data.duckdb_connection import duckdb_connection

    held = _duckdb
    if held is not None and held[0] == os.getpid():
        return held[2]
    with _duckdb_lock:
        held = _duckdb
        if held is None or held[0] != os.getpid():  # new, or inherited across fork
            stack = ExitStack()
            con = stack.enter_context(duckdb_connection(memory_limit="1GB"))
            atexit.register(stack.close)
            held = _duckdb = (os.getpid(), stack, con)
        return held[2]


@contextmanager
def open_duckdb() -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB session of the process's database whose time zone is UTC (naive times are
    UTC)."""
    cursor = _shared_duckdb().cursor()
    try:
        cursor.execute("SET enable_progress_bar = false")
        cursor.execute("SET TimeZone = 'UTC'")
        yield cursor
    finally:
        cursor.close()


# ---------------------------------------------------------------------------- materialize

def _online_views(workspace: Workspace, names: Sequence[str] | None
                  ) -> list[tuple[FeatureView, int]]:
    from ratchet.features.catalog import FeatureCatalog

    catalog = FeatureCatalog(workspace)
    if names is None:
        records = workspace.stores.features.list_definitions("feature_view")
        views = [(FeatureView.from_spec(r.spec), r.version) for r in records]
        return [(v, version) for v, version in views if v.online]
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise InvalidInput(f"views must be feature view names (a list of strings), got "
                           f"{names!r}")
    chosen = []
    for name in dict.fromkeys(names):
        view, version = catalog.view(name)
        if not view.online:
            raise InvalidInput(f"feature view {name!r} is offline-only (online=False): it is "
                               "not materialized; set online=True and apply it to serve it")
        chosen.append((view, version))
    return chosen


def materialize(views: Sequence[str] | None = None, *, start: object = None,
                end: object = None, workspace: Workspace | None = None,
                progress: Progress | None = None, batch_rows: int = BATCH_ROWS
                ) -> list[MaterializeResult]:
    """Write the latest row of each entity of the online views (all of them, or ``views``)
    with event time in (``start``, ``end``] into the workspace's online store."""
    from ratchet.features.online_connections import shared_online_store
    from ratchet.features.sources import SEQ_COLUMN, view_files

    ws = resolve_workspace(workspace)
    if not isinstance(batch_rows, int) or batch_rows < 1:
        raise InvalidInput(f"batch_rows must be a positive integer, got {batch_rows!r}")
    end_us = now_us() if end is None else to_us(end, "end")
    start_us = None if start is None else to_us(start, "start")
    if start_us is not None and start_us >= end_us:
        raise InvalidInput(f"start {from_us(start_us).isoformat()} is not before end "
                           f"{from_us(end_us).isoformat()}")
    chosen = _online_views(ws, views)
    store = shared_online_store(ws.settings.online_store_uri)
    results = []
    with open_duckdb() as con:
        for view, version in chosen:
            began = time.perf_counter()
            where = f"feature view {view.name!r}"
            view_start = start_us
            if start is None:
                last = ws.stores.features.last_materialization(view.name, store.uri)
                if last is not None and last.view_version == version:
                    view_start = last.end_at
            if view_start is not None and view_start >= end_us:
                results.append(MaterializeResult(
                    view.name, version, store.uri, view_start, end_us, 0,
                    time.perf_counter() - began, skipped="already materialized up to "
                    f"{from_us(view_start).isoformat()}"))
                continue
            scan = view_files(view, ws)  # a source that is gone is an error, not "no rows"
            try:
                table_sql: str | None = scan.sql(_needed_columns(view))
            except NotFound:  # no files (an empty folder or glob) and nothing pushed
                table_sql = None
            rows = 0
            if table_sql is not None:
                types = column_types(con, table_sql, where=where)
                sql = latest_rows_sql(view, table_sql, types, order_column=SEQ_COLUMN,
                                      start_us=view_start, end_us=end_us, where=where)
                rows = write_entries(con, sql, view=view, view_version=version, store=store,
                                     where=where, batch_rows=batch_rows, progress=progress)
            ws.stores.features.record_materialization(view.name, version, store.uri,
                                                      view_start, end_us, rows)
            results.append(MaterializeResult(
                view.name, version, store.uri, view_start, end_us, rows,
                time.perf_counter() - began,
                skipped=None if table_sql is not None else "the view has no rows"))
    return results


def _needed_columns(view: FeatureView) -> list[str]:
    return list(dict.fromkeys([*view.join_keys, view.timestamp_field,
                               *([view.created_timestamp_field]
                                 if view.created_timestamp_field else []),
                               *view.features]))
