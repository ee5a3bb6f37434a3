"""The one way ratchet opens DuckDB: bounded memory, private spill space, and quiet.

DuckDB's defaults suit an interactive shell, not a library: it draws a progress bar on
stdout for queries over ~2 s (corrupting a caller's output, e.g. ``--json``) and spills
into ``.tmp`` in the working directory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    import duckdb


@contextmanager
def duckdb_connection(memory_limit: str = "1GB",
                      threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    import duckdb

    with tempfile.TemporaryDirectory(prefix="ratchet-duckdb-") as tmp:
        config: dict[str, Any] = {"memory_limit": memory_limit, "temp_directory": tmp}
        if threads is not None:
            config["threads"] = threads
        try:
            con = duckdb.connect(config=config)
        except duckdb.Error as e:
            raise InvalidInput(f"cannot start DuckDB: {e}") from e
        try:
            con.execute("SET enable_progress_bar = false")  # a session setting
            yield con
        finally:
            con.close()
