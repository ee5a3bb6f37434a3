"""Where a feature view's rows are: its source's files and the rows pushed to it.

A source is a Parquet or CSV file, a directory of Parquet files, a glob, or a ratchet
dataset (``dataset:NAME[@SELECTOR]``). Rows pushed with ``ratchet features push`` are the
view's offline log: Parquet files under ``<home>/features/pushed/<view>/``, one per push,
named so that they sort in push order.

``SourceScan.sql()`` is a DuckDB table expression over all of them with one more column,
``__ratchet_seq``: the row's place in source order (the source's files by name, then the
pushed files in push order; rows in file order), the last tie-break of the point-in-time
rule.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ratchet.errors import InvalidInput, NotFound
from ratchet.features.time_sql import quote_ident, quote_literal

if TYPE_CHECKING:
    from ratchet.features.definitions import FeatureView
    from ratchet.workspace import Workspace

SEQ_COLUMN = "__ratchet_seq"
PUSHED_DIR = ("features", "pushed")
_FILE_BITS = 40  # rows per file < 2**40; files < 2**23


@dataclass(frozen=True)
class SourceScan:
    """The files holding one feature view's rows, in source order."""

    view: str
    files: tuple[str, ...]            # the source's files (Parquet or CSV), by name
    pushed: tuple[str, ...] = ()      # the offline log's Parquet files, in push order
    dataset: tuple[str, int] | None = None  # (name, version) when the source is a dataset

    @property
    def all_files(self) -> tuple[str, ...]:
        return self.files + self.pushed

    def sql(self, columns: Sequence[str] | None = None) -> str:
        """A DuckDB table expression: the rows of every file (``columns`` only, when given)
        and ``__ratchet_seq``. Empty when the view has no rows at all."""
        select = "*" if columns is None else ", ".join(quote_ident(c) for c in columns)
        parts = []
        for index, path in enumerate(self.all_files):
            literal = quote_literal(path)
            if path.lower().endswith((".csv", ".csv.gz")):
                scan = (f"SELECT {select}, ({index}::BIGINT << {_FILE_BITS}) + "
                        f"row_number() OVER () AS {SEQ_COLUMN} FROM read_csv({literal})")
            else:
                star = "* EXCLUDE (file_row_number)" if columns is None else select
                scan = (f"SELECT {star}, ({index}::BIGINT << {_FILE_BITS}) + file_row_number "
                        f"AS {SEQ_COLUMN} FROM read_parquet({literal}, file_row_number=true)")
            parts.append(f"({scan})")
        if not parts:
            raise NotFound(f"feature view {self.view!r} has no rows: its source has no files "
                           "and nothing was pushed to it")
        return "(" + " UNION ALL BY NAME ".join(parts) + ")"


def pushed_dir(workspace: Workspace, view: str) -> Path:
    """The folder of a view's offline log (pushed rows)."""
    return Path(workspace.settings.home, *PUSHED_DIR, view)


def source_path_files(source: str, *, view: str) -> tuple[str, ...]:
    """The files a path source names, sorted: a file, a folder of Parquet files, or a glob."""
    path = Path(source).expanduser()
    if any(c in source for c in "*?["):
        found = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    elif path.is_dir():
        found = sorted(str(p) for p in path.rglob("*.parquet") if p.is_file())
    elif path.is_file():
        found = [str(path)]
    else:
        raise NotFound(f"feature view {view!r}: its source {source!r} does not exist "
                       "(give a Parquet/CSV file, a folder of Parquet files, a glob, or "
                       "'dataset:NAME')")
    bad = [f for f in found if not f.lower().endswith((".parquet", ".pq", ".csv", ".csv.gz"))]
    if bad:
        raise InvalidInput(f"feature view {view!r}: source file {bad[0]!r} is not Parquet "
                           "(.parquet) or CSV (.csv)")
    return tuple(found)


def view_files(view: FeatureView, workspace: Workspace) -> SourceScan:
    """The files to read for ``view`` now: its source (the dataset version it names, the
    latest one when unpinned) and its pushed rows."""
    dataset = None
    ref = view.dataset_source
    if ref is not None:
        from ratchet.data.catalog import DataClient

        version = DataClient(workspace).get(ref)
        files: tuple[str, ...] = (str(version.path),)
        dataset = (version.name, version.version)
    else:
        files = source_path_files(view.source, view=view.name)
    folder = pushed_dir(workspace, view.name)
    pushed = tuple(sorted(str(p) for p in folder.glob("*.parquet"))) if folder.is_dir() else ()
    return SourceScan(view.name, files, pushed, dataset)


def source_columns(scan: SourceScan) -> list[str]:
    """The columns the view's rows have (the union over its files)."""
    from ratchet.data.duckdb_connection import duckdb_connection

    if not scan.all_files:
        return []
    with duckdb_connection(memory_limit="256MB") as con:
        try:
            rows = con.execute(f"DESCRIBE SELECT * FROM {scan.sql()}").fetchall()
        except Exception as exc:  # duckdb.Error: unreadable or malformed files
            raise InvalidInput(f"feature view {scan.view!r}: cannot read its source: "
                               f"{str(exc).splitlines()[0]}") from None
    return [r[0] for r in rows if r[0] != SEQ_COLUMN]
