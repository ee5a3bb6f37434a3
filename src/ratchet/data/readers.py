"""The one reader of tabular files (and of in-memory frames) as a stream of Arrow batches.

Used by ``ratchet.data.log``, batch scoring (``ratchet predict``), ``ratchet check``'s
holdout and the CLI, so every command accepts the same files with the same rules.

Accepted: pandas and polars DataFrames, Arrow tables/batches/readers, and CSV or Parquet
files or directories of them. CSV: ``.csv``, ``.tsv`` (tab-separated), compressed
``.csv.gz`` / ``.tsv.gz`` / ``.csv.bz2`` / ``.csv.zst``; Parquet: ``.parquet``, ``.pq``.
In a directory, files and subdirectories whose names start with ``.`` or ``_`` (temporary
files, ``_SUCCESS`` markers, Spark's ``_temporary``) are skipped, as Arrow's and Spark's
dataset readers do. Files are read in batches (pyarrow's streaming readers), so a file
larger than memory is never loaded whole. Every user mistake is an ``InvalidInput`` or
``NotFound`` whose one-line message names the place.

Symlinks: a path given directly is followed (the user named it). Inside a logged
directory, a symlink whose target lies outside the directory is refused (``InvalidInput``,
naming the link and its target), so a planted link cannot pull in another file's rows;
links that stay inside are skipped, as what they point to is already read in place.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pyarrow as pa

CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".csv.bz2", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
_SNIFF_BYTES = 64 * 1024
_PARQUET_BATCH_ROWS = 65_536
_SKIPPED_PREFIXES = (".", "_")
ACCEPTED = ("use a .parquet or .csv file or a directory of them (accepted: "
            f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)})")
_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+): (.*)", re.S)


@dataclass
class Source:
    """A readable dataset: its schema, its batches, and how big it is (for progress)."""

    description: str
    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    total_bytes: int | None = None
    bytes_read: Any = None  # callable -> int, for progress over files
    kind: str | None = None  # "csv" | "parquet" for files, None for in-memory data
    rows: int | None = None  # the row count when known before reading (Parquet, in memory)


def open_source(data: object, *, source: str | None = None,
                batch_rows: int | None = None) -> Source:
    """A ``Source`` for any accepted input; files are opened, not read. With
    ``batch_rows``, every batch but the last of each file has exactly that many rows
    (Parquet: at most that many, cut at row-group edges)."""
    if batch_rows is not None and batch_rows < 1:
        raise InvalidInput(f"batch_rows must be >= 1, got {batch_rows}")
    found = _open(data, source, batch_rows)
    if batch_rows is not None and found.kind != "parquet":
        found.batches = _rebatch(found.batches, batch_rows)
    return found


def read_table(path: str | os.PathLike[str]) -> pa.Table:
    """A whole CSV/Parquet file or directory as one Arrow table (for data that fits in
    memory: a holdout, a reference sample)."""
    import pyarrow as pa

    src = open_source(path)
    return pa.Table.from_batches(list(src.batches), schema=src.schema)


def read_frame(path: str | os.PathLike[str]) -> Any:
    """A whole CSV/Parquet file or directory as a pandas DataFrame."""
    return read_table(path).to_pandas()


def _rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending).combine_chunks()
            yield from table.slice(0, rows).to_batches()
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield from pa.Table.from_batches(pending).combine_chunks().to_batches()


def _open(data: object, source: str | None, batch_rows: int | None) -> Source:
    import pyarrow as pa

    if isinstance(data, str | os.PathLike):
        return _open_path(Path(data), source, batch_rows)
    module = type(data).__module__.split(".", 1)[0]
    if module == "pandas":
        return _from_table(_pandas_to_arrow(data), source or "pandas.DataFrame")
    if module == "polars":
        to_arrow = getattr(data, "to_arrow", None)
        if to_arrow is None:  # a LazyFrame
            collect = getattr(data, "collect", None)
            if collect is None:
                raise InvalidInput(f"cannot log a {type(data).__name__}")
            data = collect()
            to_arrow = data.to_arrow  # type: ignore[attr-defined]
        return _from_table(to_arrow(), source or "polars.DataFrame")
    if isinstance(data, pa.Table):
        return _from_table(data, source or "pyarrow.Table")
    if isinstance(data, pa.RecordBatch):
        return _from_table(pa.Table.from_batches([data]), source or "pyarrow.RecordBatch")
    if isinstance(data, pa.RecordBatchReader):
        return Source(source or "pyarrow.RecordBatchReader", data.schema, iter(data))
    raise InvalidInput(
        f"cannot log a {type(data).__module__}.{type(data).__name__}: pass a pandas or polars "
        "DataFrame, a pyarrow Table, or the path of a CSV/Parquet file or directory"
    )


def _pandas_to_arrow(frame: Any) -> pa.Table:
    import pyarrow as pa

    # A named index (set_index("id")) is data; an unnamed one is row bookkeeping left by
    # filtering or concatenation and would only change the content hash.
    named_index = any(name is not None for name in frame.index.names)
    try:
        return pa.Table.from_pandas(frame, preserve_index=named_index)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidInput(f"cannot convert the DataFrame to Arrow: {exc}") from None


def _from_table(table: pa.Table, description: str) -> Source:
    # Canonical content: pandas/polars metadata must not change the content hash.
    table = table.replace_schema_metadata(None)
    return Source(description, table.schema, iter(table.to_batches()), table.nbytes,
                  rows=table.num_rows)


def _open_path(path: Path, source: str | None, batch_rows: int | None = None) -> Source:
    if not path.exists():
        raise NotFound(f"{path}: no such file or directory")
    if path.is_dir():
        files = data_files(path)
        if not files:
            raise InvalidInput(f"{path}: the directory has no .csv or .parquet files (accepted: "
                               f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}; names starting "
                               "with '.' or '_' are skipped)")
        kinds = {_kind(p) for p in files}
        if len(kinds) > 1:
            raise InvalidInput(f"{path}: mixes CSV and Parquet files; use them separately")
    else:
        files = [path]
        if _kind(path) is None:
            raise InvalidInput(f"{path}: unknown file type; {ACCEPTED}")
    kind = _kind(files[0])
    description = source or str(path)
    total = sum(f.stat().st_size for f in files)
    if kind == "parquet":
        return _parquet_source(files, description, total, batch_rows or _PARQUET_BATCH_ROWS)
    return _csv_source(files, description, total)


def data_files(directory: Path) -> list[Path]:
    """The CSV and Parquet files physically under ``directory`` (recursively), sorted;
    names starting with ``.`` or ``_`` are skipped (with what is under them).

    A symlink (to a file or a directory) that resolves outside ``directory`` raises
    ``InvalidInput``; one that stays inside is skipped, its target being listed in place.
    """
    root = directory.resolve()
    found: list[Path] = []
    # followlinks=False: never descend through a link (no loops, no escape).
    for here, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(_SKIPPED_PREFIXES)]
        filenames = [f for f in filenames if not f.startswith(_SKIPPED_PREFIXES)]
        for name in (*dirnames, *filenames):
            entry = Path(here) / name
            if entry.is_symlink():
                _check_link(entry, root, directory)
            elif name in filenames and _kind(entry) is not None and entry.is_file():
                found.append(directory / entry.relative_to(root))  # as the user named it
    return sorted(found)


def _check_link(link: Path, root: Path, given: Path) -> None:
    target = link.resolve()
    if target != root and root not in target.parents:
        shown = given / link.relative_to(root)
        raise InvalidInput(
            f"{shown}: a symlink to {target}, outside the logged directory {given}; ratchet "
            "does not follow links out of a logged directory: copy the file in, or log it "
            "by its own path")


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _parquet_source(files: list[Path], description: str, total: int,
                    batch_rows: int = _PARQUET_BATCH_ROWS) -> Source:
    import pyarrow as pa
    import pyarrow.parquet as pq

    readers = []
    for f in files:
        with f.open("rb") as fh:
            head = fh.read(4)
        if head != b"PAR1":
            raise InvalidInput(f"{f}: not a Parquet file (its first bytes are not 'PAR1')")
        try:
            # No pre-buffering and small reads: whole 1M-row groups would cost ~600 MB.
            readers.append(pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"{f}: not a readable Parquet file: {exc}") from None
    schema = readers[0].schema_arrow.remove_metadata()
    for f, r in zip(files[1:], readers[1:], strict=True):
        if not r.schema_arrow.remove_metadata().equals(schema):
            raise InvalidInput(f"{f}: its columns differ from {files[0].name}'s "
                               f"({_schema_text(r.schema_arrow)} vs {_schema_text(schema)})")
    progress = {"bytes": 0}

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        for f, reader in zip(files, readers, strict=True):
            size, rows = f.stat().st_size, max(reader.metadata.num_rows, 1)
            read = 0
            try:
                for batch in reader.iter_batches(batch_size=batch_rows):
                    read += batch.num_rows
                    progress["bytes"] = done + size * read // rows
                    yield batch.replace_schema_metadata(None)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInput(f"{f}: unreadable Parquet data: {exc}") from None
            done += size

    rows = sum(r.metadata.num_rows for r in readers)
    return Source(description, schema, batches(), total, lambda: progress["bytes"],
                  kind="parquet", rows=rows)


def _csv_source(files: list[Path], description: str, total: int) -> Source:
    import pyarrow as pa
    import pyarrow.csv as csv

    for f in files:
        _check_text(f)
    counters = [_CountingFile(f) for f in files]
    first = _open_csv(files[0], counters[0], None)
    schema = first.schema
    convert = csv.ConvertOptions(column_types=schema)  # later files must match the first

    def batches() -> Iterator[pa.RecordBatch]:
        for i, f in enumerate(files):
            reader = first if i == 0 else _open_csv(f, counters[i], convert)
            if i and not reader.schema.equals(schema):
                raise InvalidInput(f"{f}: its columns differ from {files[0].name}'s "
                                   f"({_schema_text(reader.schema)} vs {_schema_text(schema)})")
            try:
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    except pa.ArrowInvalid as exc:
                        raise _csv_error(f, exc) from None
                    yield batch
            finally:
                counters[i].close()

    return Source(description, schema, batches(), total,
                  lambda: sum(c.consumed for c in counters), kind="csv")


class _CountingFile(io.RawIOBase):
    """The raw file under pyarrow's CSV reader, counting bytes consumed for progress."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.consumed = 0
        self._f: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._f is None:
            self._f = self.path.open("rb", buffering=0)
        n = self._f.readinto(buffer) or 0
        self.consumed += n
        return n

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
        super().close()


def _open_csv(path: Path, raw: _CountingFile, convert: Any) -> Any:
    import pyarrow as pa
    import pyarrow.csv as csv

    name = path.name.lower()
    parse = csv.ParseOptions(delimiter="\t" if ".tsv" in name else ",")
    stream: Any = pa.PythonFile(raw, mode="r")
    compression = pa.Codec.detect(name).name if name.endswith((".gz", ".bz2", ".zst")) \
        else None
    if compression:
        stream = pa.CompressedInputStream(stream, compression)
    try:
        return csv.open_csv(stream, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc) from None


def _check_text(path: Path) -> None:
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    if path.name.lower().endswith((".gz", ".bz2", ".zst")):
        return
    if not head.strip():
        raise InvalidInput(f"{path}: the file is empty")
    if b"\x00" in head or head.startswith(b"PAR1"):
        raise InvalidInput(f"{path}: not a CSV text file (it contains binary data)")


def _csv_error(path: Path, exc: Exception) -> InvalidInput:
    text = str(exc).replace("CSV parse error: ", "")
    ragged = _RAGGED.search(text)
    if ragged:
        expected, got, row = ragged.groups()
        line = _find_line(path, row.strip())
        where = f"{path}:{line}" if line else str(path)
        return InvalidInput(f"{where}: ragged row: expected {expected} columns, got {got} "
                            f"({row.strip()[:80]!r})")
    if "Empty CSV file" in text:
        return InvalidInput(f"{path}: the file has no header row")
    return InvalidInput(f"{path}: {text.splitlines()[0]}")


def _find_line(path: Path, row: str) -> int | None:
    """The 1-based line of ``row`` in ``path``: only on the error path, so a scan is fine."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                if line.rstrip("\r\n") == row:
                    return number
    except OSError:
        return None
    return None


def _schema_text(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in schema)
