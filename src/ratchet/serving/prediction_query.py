"""Reading the prediction log back: one deployment's rows in a time window, as pandas.

Hour directories outside the window are never opened (we list them ourselves, which also
makes an absent deployment an empty frame, not an error). DuckDB reads the remaining
files, unions their columns by name (model versions may differ in inputs) and applies the
exact time filter. Ground truth is joined from the metadata store.
"""

from __future__ import annotations

import numbers
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ratchet.clock import to_ms
from ratchet.errors import IntegrityError, InvalidInput
from ratchet.serving.prediction_log import HOUR_MS, LogStorage, hour_start_ms, meta_schema

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ratchet.store.deployment_store import DeploymentStore
    from ratchet.workspace import Workspace


def predictions(deployment: str, since: datetime | int | None = None,
                until: datetime | int | None = None, *, with_feedback: bool = False,
                workspace: Workspace | None = None) -> pd.DataFrame:
    """Logged rows of ``deployment`` with ``since <= timestamp < until``, ordered by
    (timestamp, request_id, row). ``since``/``until``: datetime (naive means UTC) or epoch
    milliseconds. ``row`` is nullable (``Int32``): a failed request logged without rows has
    none. ``with_feedback`` adds ``feedback`` (the recorded value, missing where
    none arrived yet) and ``feedback_at``, matched on (request_id, row)."""
    from ratchet.store.deployment_store import validate_deployment_name
    from ratchet.workspace import resolve

    workspace = resolve(workspace)
    validate_deployment_name(deployment)
    since_ms, until_ms = _epoch_ms(since, "since"), _epoch_ms(until, "until")
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise InvalidInput(f"since ({since!r}) is after until ({until!r}); the window is "
                           "[since, until)")
    storage = LogStorage(workspace.settings.artifacts_uri)
    files = _files_in_window(storage, deployment, since_ms, until_ms)
    table = _read(storage, deployment, files, since_ms, until_ms) if files \
        else meta_schema().empty_table()
    frame = table.to_pandas()
    # Nullable, so that the dtype does not depend on whether a rowless failure is present.
    frame["row"] = frame["row"].astype("Int32")
    if with_feedback:
        frame = _join_feedback(frame, workspace.stores.deployments, deployment)
    return frame


class LogReader:
    """Reads one deployment's log again and again (a controller's ticks) without reading it
    all again: log files are immutable once written, so each is read once and its rows
    kept for ``horizon_ms`` (wall time); feedback is joined afresh on every read, since
    labels keep arriving. A read reaching back past the horizon reads the log directly."""

    def __init__(self, deployment: str, *, horizon_ms: int,
                 workspace: Workspace | None = None) -> None:
        from ratchet.store.deployment_store import validate_deployment_name
        from ratchet.workspace import resolve

        validate_deployment_name(deployment)
        self.deployment = deployment
        self.horizon_ms = horizon_ms
        self.workspace = resolve(workspace)
        self.storage = LogStorage(self.workspace.settings.artifacts_uri)
        self._seen: set[str] = set()
        self._rows: pd.DataFrame | None = None
        self._store: DeploymentStore | None = None

    def read(self, since_ms: int, *, with_feedback: bool = True) -> pd.DataFrame:
        import time

        import pandas as pd

        floor = time.time_ns() // 1_000_000 - self.horizon_ms
        if since_ms < floor:
            return predictions(self.deployment, since=since_ms, with_feedback=with_feedback,
                               workspace=self.workspace)
        files = _files_in_window(self.storage, self.deployment, floor, None)
        fresh = [f for f in files if f not in self._seen]
        if fresh:
            frame = _read(self.storage, self.deployment, fresh, floor, None).to_pandas()
            parts = [p for p in (self._rows, frame) if p is not None and len(p)]
            self._rows = pd.concat(parts, ignore_index=True) if parts else frame
            self._seen = set(files)  # files of hours past the horizon are forgotten
        rows = self._rows if self._rows is not None else \
            meta_schema().empty_table().to_pandas()
        stamps = (rows["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(
            milliseconds=1)
        rows = rows[stamps.to_numpy() >= floor]
        self._rows = rows
        out = rows[stamps[stamps >= floor].to_numpy() >= since_ms]
        out = out.sort_values(["timestamp", "request_id", "row"], kind="stable",
                              ignore_index=True)
        out["row"] = out["row"].astype("Int32")
        if with_feedback:
            if self._store is None:
                self._store = self.workspace.stores.deployments
            out = _join_feedback(out, self._store, self.deployment)
        return out


def log_hours(storage: LogStorage, deployment: str, since_ms: int) -> list[str]:
    """The hour directories of ``deployment``'s log from the hour of ``since_ms`` on,
    newest first."""
    names = [name for name in storage.list(storage.path(f"deployment={deployment}"), dirs=True)
             if (start := hour_start_ms(name)) is not None and start + HOUR_MS > since_ms]
    return sorted(names, reverse=True)


def logged_rows(storage: LogStorage, deployment: str, request_ids: set[str],
                since_ms: int, hours: set[str] | None = None) -> set[tuple[str, int]]:
    """The (request_id, row) pairs of ``request_ids`` in ``deployment``'s log files of the
    hours from ``since_ms`` on (only the hour directories named in ``hours``, if given):
    one single-threaded DuckDB query that reads two columns, whatever the number of ids."""
    import duckdb

    from ratchet.data.duckdb_connection import duckdb_connection

    if not request_ids:
        return set()
    files = _files_in_window(storage, deployment, since_ms, None, hours)
    if not files:
        return set()
    sql = ('SELECT DISTINCT request_id, "row" FROM read_parquet($files, union_by_name = true, '
           'hive_partitioning = false) WHERE request_id IN (SELECT unnest($ids)) '
           'AND "row" IS NOT NULL')
    with duckdb_connection(threads=1) as con:  # on a serving process: one core at most
        try:
            storage.register_with(con)
            found = con.sql(sql, params={"files": files, "ids": sorted(request_ids)}).fetchall()
        except duckdb.Error as exc:
            raise IntegrityError(
                f"cannot read the prediction log of deployment {deployment!r} under "
                f"{storage.root}: {exc}; if a file was deleted meanwhile retry, otherwise "
                "move the unreadable file away") from exc
    return {(str(rid), int(row)) for rid, row in found}


def _epoch_ms(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime) or (isinstance(value, numbers.Integral)
                                       and not isinstance(value, bool)):
        try:
            return to_ms(value)  # type: ignore[arg-type]
        except (ValueError, OverflowError, OSError):  # NaT, out of range
            pass
    raise InvalidInput(f"{name} must be a datetime (naive means UTC) or epoch milliseconds "
                       f"as an int; got {value!r}")


def _files_in_window(storage: LogStorage, deployment: str, since_ms: int | None,
                     until_ms: int | None, hours: set[str] | None = None) -> list[str]:
    """The files of the hours that overlap [since, until) (and are in ``hours``, if given),
    as DuckDB can open them."""
    base = storage.path(f"deployment={deployment}")
    files = []
    for name in storage.list(base, dirs=True):
        start = hour_start_ms(name)
        if start is None or (hours is not None and name not in hours):
            continue  # not a partition we wrote, or not one asked for
        if (since_ms is not None and start + HOUR_MS <= since_ms) or \
                (until_ms is not None and start >= until_ms):
            continue
        directory = storage.path(f"deployment={deployment}", name)
        # Not path(directory, f): object-store paths have no leading "/", so the join
        # would nest the base twice (s3://b/p/predictions/b/p/predictions/...).
        files += [storage.url(storage.path(f"deployment={deployment}", name, f))
                  for f in storage.list(directory, dirs=False)]
    return files


def _read(storage: LogStorage, deployment: str, files: list[str], since_ms: int | None,
          until_ms: int | None) -> pa.Table:
    import duckdb

    from ratchet.data.duckdb_connection import duckdb_connection

    where: list[str] = []
    params: dict[str, Any] = {"files": files}
    if since_ms is not None:
        where.append('epoch_ms("timestamp") >= $since')
        params["since"] = since_ms
    if until_ms is not None:
        where.append('epoch_ms("timestamp") < $until')
        params["until"] = until_ms
    sql = ("SELECT * FROM read_parquet($files, union_by_name = true, hive_partitioning = false)"
           + (f" WHERE {' AND '.join(where)}" if where else "")
           + ' ORDER BY "timestamp", request_id, "row"')
    with duckdb_connection() as con:
        try:
            con.execute("SET TimeZone = 'UTC'")
            storage.register_with(con)
            try:
                table = con.sql(sql, params=params).to_arrow_table()
            except (duckdb.ConversionException, duckdb.BinderException,
                    duckdb.InvalidInputException, duckdb.NotImplementedException):
                # A column whose type differs between files (an older writer stored
                # objects as structs, a model version changed a column's kind): read each
                # group of files that agree, then unify. Only then, so reads stay one query.
                groups = _files_by_schema(con, files)
                if len(groups) < 2:
                    raise
                table = _unify([con.sql(sql, params={**params, "files": group})
                                .to_arrow_table() for group in groups])
        except duckdb.Error as exc:
            raise IntegrityError(
                f"cannot read the prediction log of deployment {deployment!r} under "
                f"{storage.root}: {exc}; if a file was deleted meanwhile retry, otherwise "
                "move the unreadable file away") from exc
    return _conform(table)


def _files_by_schema(con: Any, files: list[str]) -> list[list[str]]:
    """``files`` grouped by their Parquet schema (one footer read per file)."""
    rows = con.sql("SELECT file_name, name, type, logical_type, num_children "
                   "FROM parquet_schema($files)", params={"files": files}).fetchall()
    schemas: dict[str, list[tuple[Any, ...]]] = {}
    for file_name, *column in rows:
        schemas.setdefault(file_name, []).append(tuple(str(c) for c in column))
    groups: dict[tuple[Any, ...], list[str]] = {}
    for file_name in files:
        groups.setdefault(tuple(schemas.get(file_name, ())), []).append(file_name)
    return list(groups.values())


def _unify(tables: list[pa.Table]) -> pa.Table:
    """One table from tables whose columns may disagree in type: numbers that disagree
    become float64, anything else that disagrees becomes text (objects and lists as
    JSON), so a reader sees every row rather than none."""
    import pyarrow as pa

    kinds: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for field in table.schema:
            if not pa.types.is_null(field.type):
                kinds.setdefault(field.name, set()).add(field.type)
    target = {name: _common_type(types) for name, types in kinds.items() if len(types) > 1}
    unified = []
    for table in tables:
        for name, kind in target.items():
            i = table.schema.get_field_index(name)
            if i >= 0 and table.schema.field(i).type != kind:
                table = table.set_column(i, name, _cast(table.column(i), kind))
        unified.append(table)
    table = pa.concat_tables(unified, promote_options="default")
    return table.sort_by([("timestamp", "ascending"), ("request_id", "ascending"),
                          ("row", "ascending")])


def _common_type(types: set[pa.DataType]) -> pa.DataType:
    import pyarrow as pa

    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
        return pa.float64()
    if all(pa.types.is_timestamp(t) for t in types):
        return pa.timestamp("us", tz="UTC")
    return pa.string()


def _cast(column: pa.ChunkedArray, kind: pa.DataType) -> pa.ChunkedArray:
    import pyarrow as pa

    from ratchet.json_safe import dumps

    if kind == pa.string() and pa.types.is_nested(column.type):
        return pa.chunked_array([pa.array(
            [None if v is None else dumps(v) for v in column.to_pylist()],
            pa.string())], pa.string())
    if pa.types.is_timestamp(column.type) and column.type.tz is None and \
            pa.types.is_timestamp(kind):
        column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
    return column.cast(kind)


def _conform(table: pa.Table) -> pa.Table:
    """The fixed columns in their logged types (DuckDB returns timestamps in µs)."""
    for field in meta_schema():
        i = table.schema.get_field_index(field.name)
        table = table.set_column(i, field, table.column(i).cast(field.type))
    return table


def _join_feedback(frame: pd.DataFrame, store: DeploymentStore,
                   deployment: str) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    feedback = {(f.request_id, f.row): f for f in store.feedback(deployment)}
    # A dict lookup keeps the frame's order and dtypes (a merge would reorder or upcast).
    matched = [None if row is pd.NA else feedback.get((rid, int(row)))
               for rid, row in zip(frame["request_id"], frame["row"], strict=True)]
    received = pa.array([None if f is None else f.received_at for f in matched],
                        pa.timestamp("ms", tz="UTC")).to_pandas()
    received.index = frame.index
    frame = frame.copy()
    frame["feedback"] = pd.Series([None if f is None else f.value for f in matched],
                                  index=frame.index, dtype=object)
    frame["feedback_at"] = received
    return frame
