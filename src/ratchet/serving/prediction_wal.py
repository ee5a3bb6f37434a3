"""The prediction log's write-ahead file (durable mode, ``ratchet serve --log-flush 0``).

Each logged request is appended as one JSON line to this process's current *segment*
(``<wal_dir>/<writer_id>-<uuid7>.wal``) before ``record`` returns, so a request the server
answered survives a SIGKILL of the server (the bytes are in the kernel's page cache; with
``fsync=True`` also a power loss, at the cost of one fsync per request). The writer turns
the buffered rows into Parquet at its usual cadence, starts a new segment at each flush and
deletes a segment once every row in it is in a Parquet file.

A segment is locked (``flock``) by its process for as long as it exists, so a segment
nobody holds belongs to a process that died: the next writer to start replays it. Its
Parquet files are named after the segment, so a segment replayed after its files were
written (a crash between the write and the delete) overwrites them instead of duplicating
rows.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
from datetime import date, datetime, time
from typing import Any

from ratchet.atomic import fsync_dir
from ratchet.ids import new_id

logger = logging.getLogger(__name__)

SUFFIX = ".wal"


class Segment:
    """One locked, append-only segment file."""

    def __init__(self, path: str, fd: int) -> None:
        self.path, self.fd, self.size = path, fd, 0

    @property
    def stem(self) -> str:
        return os.path.basename(self.path)[:-len(SUFFIX)]

    @classmethod
    def create(cls, directory: str, writer_id: str, *, fsync: bool = False) -> Segment:
        """A new segment, locked before it becomes visible under its final name; with
        ``fsync`` its name is made durable too (``ratchet.atomic.fsync_dir``), so that the
        fsynced appends of a power-loss-safe log are never in a file nobody can find."""
        import fcntl

        os.makedirs(directory, exist_ok=True)
        name = f"{writer_id}-{new_id()}{SUFFIX}"
        tmp = os.path.join(directory, f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(tmp, os.path.join(directory, name))
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if fsync:
            fsync_dir(directory)
        return cls(os.path.join(directory, name), fd)

    def append(self, data: bytes, *, fsync: bool) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        if fsync:
            os.fsync(self.fd)
        self.size += len(data)

    def read(self) -> list[dict[str, Any]]:
        """The records in the file; a torn last line (a crash mid-write) is skipped."""
        with open(self.path, "rb") as f:
            lines = f.read().split(b"\n")
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                logger.warning("prediction log: skipped a torn record in %s", self.path)
        return records

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.release()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def orphans(directory: str) -> list[Segment]:
    """The segments of ``directory`` that no live process holds, locked for the caller."""
    import fcntl

    try:
        names = sorted(n for n in os.listdir(directory)
                       if n.endswith(SUFFIX) and not n.startswith("."))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:  # its owner just deleted it
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live writer's
            os.close(fd)
            continue
        if not os.path.exists(path):  # deleted between open and lock
            os.close(fd)
            continue
        found.append(Segment(path, fd))
    return found


# ---------------------------------------------------------------- records
def encode(entry: Any) -> bytes:
    """One ``LoggedRequest`` as a JSON line (values that JSON lacks are tagged)."""
    record = {
        "request_id": entry.request_id, "timestamp_ms": entry.timestamp_ms,
        "deployment": entry.deployment, "model_name": entry.model_name,
        "model_version": entry.model_version, "variant": entry.variant,
        "latency_ms": entry.latency_ms, "status": entry.status, "error": entry.error,
        "rows": None if entry.rows is None else [int(r) for r in entry.rows],
        "flags": entry.flags,
        "inputs": {c: [_tag(v) for v in _seq(vs)] for c, vs in entry.inputs.items()},
        "outputs": {c: [_tag(v) for v in _seq(vs)] for c, vs in entry.outputs.items()},
    }
    return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")


def decode(record: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the ``LoggedRequest`` that :func:`encode` wrote."""
    out = dict(record)
    for side in ("inputs", "outputs"):
        out[side] = {c: [_untag(v) for v in vs] for c, vs in record[side].items()}
    return out


def _seq(values: Any) -> Any:
    return values.tolist() if hasattr(values, "tolist") else values


def _tag(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, dict | list | tuple):
        return {"$": "json", "v": v}
    if isinstance(v, datetime):
        return {"$": "datetime", "v": v.isoformat()}
    if isinstance(v, date):
        return {"$": "date", "v": v.isoformat()}
    if isinstance(v, time):
        return {"$": "time", "v": v.isoformat()}
    if isinstance(v, bytes):
        return {"$": "bytes", "v": base64.b64encode(v).decode()}
    item = getattr(v, "item", None)
    if item is not None and type(v).__module__ == "numpy":
        return _tag(item())
    if hasattr(v, "tolist"):
        return {"$": "json", "v": v.tolist()}
    return str(v)


def _untag(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    kind, value = v.get("$"), v.get("v")
    if not isinstance(value, str):
        return value
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "time":
        return time.fromisoformat(value)
    if kind == "bytes":
        return base64.b64decode(value)
    return value
