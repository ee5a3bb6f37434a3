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
from ratchet.errors import ConfigError, IntegrityError, InvalidInput
from ratchet.serving.prediction_log import HOUR_MS, LogStorage, hour_start_ms, meta_schema

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ratchet.config import Settings
    from ratchet.store.deployment_store import DeploymentStore


def predictions(deployment: str, since: datetime | int | None = None,
                until: datetime | int | None = None, *, with_feedback: bool = False,
                settings: Settings | None = None) -> pd.DataFrame:
    """Logged rows of ``deployment`` with ``since <= timestamp < until``, ordered by
    (timestamp, request_id, row). ``since``/``until``: datetime (naive means UTC) or epoch
    milliseconds. ``row`` is nullable (``Int32``): a failed request logged without rows has
    none. ``with_feedback`` adds ``feedback`` (the recorded value, missing where
    none arrived yet) and ``feedback_at``, matched on (request_id, row)."""
    from ratchet.config import load_settings
    from ratchet.store.deployment_store import validate_deployment_name

    settings = settings or load_settings()
    validate_deployment_name(deployment)
    since_ms, until_ms = _epoch_ms(since, "since"), _epoch_ms(until, "until")
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise InvalidInput(f"since ({since!r}) is after until ({until!r}); the window is "
                           "[since, until)")
    storage = LogStorage(settings.artifacts_uri)
    files = _files_in_window(storage, deployment, since_ms, until_ms)
    table = _read(storage, deployment, files, since_ms, until_ms) if files \
        else meta_schema().empty_table()
    frame = table.to_pandas()
    # Nullable, so that the dtype does not depend on whether a rowless failure is present.
    frame["row"] = frame["row"].astype("Int32")
    if with_feedback:
        frame = _join_feedback(frame, _deployment_store(settings), deployment)
    return frame


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
                     until_ms: int | None) -> list[str]:
    """The files of the hours that overlap [since, until), as DuckDB can open them."""
    base = storage.path(f"deployment={deployment}")
    files = []
    for name in storage.list(base, dirs=True):
        start = hour_start_ms(name)
        if start is None:
            continue  # not a partition we wrote
        if (since_ms is not None and start + HOUR_MS <= since_ms) or \
                (until_ms is not None and start >= until_ms):
            continue
        directory = storage.path(f"deployment={deployment}", name)
        files += [storage.url(storage.path(directory, f))
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
            if storage.fs is not None:
                con.register_filesystem(storage.fs)
            table = con.sql(sql, params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise IntegrityError(
                f"cannot read the prediction log of deployment {deployment!r} under "
                f"{storage.root}: {exc}; if a file was deleted meanwhile retry, otherwise "
                "move the unreadable file away") from exc
    return _conform(table)


def _conform(table: pa.Table) -> pa.Table:
    """The fixed columns in their logged types (DuckDB returns timestamps in µs)."""
    for field in meta_schema():
        i = table.schema.get_field_index(field.name)
        table = table.set_column(i, field, table.column(i).cast(field.type))
    return table


def _deployment_store(settings: Settings) -> DeploymentStore:
    from ratchet.config import ensure_home
    from ratchet.store import open_database
    from ratchet.store.deployment_store import DeploymentStore

    if settings.tracking_uri:
        raise ConfigError(f"RATCHET_TRACKING_URI={settings.tracking_uri!r} selects remote mode, "
                          "which does not serve feedback yet; unset it to use the local store")
    ensure_home(settings)
    return DeploymentStore(open_database(settings.db_url))


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
