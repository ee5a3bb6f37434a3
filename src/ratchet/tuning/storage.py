"""Where an Optuna study lives, as plain data a trial task can carry to another process.

``"auto"`` follows the ratchet metadata store:

- PostgreSQL: Optuna's tables go in the same database but in their own schema
  (``ratchet_optuna``), selected with ``search_path`` on Optuna's connections. Optuna keeps
  its own ``alembic_version`` table, which would collide with ours in the default schema.
- SQLite: a journal file under the ratchet home (``<home>/optuna/journal.log``). Optuna's
  RDB storage on SQLite locks under parallel workers (20-33 ms per trial and "database is
  locked"); the journal is 2-4 ms per trial and safe across processes.

Opened storages are cached per process, so trials running in one worker process share one
engine (or one replayed journal) instead of opening a new one per trial.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ratchet.errors import InvalidInput
from ratchet.redaction import redact_url

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from ratchet.config import Settings

OPTUNA_SCHEMA = "ratchet_optuna"
JOURNAL_PATH = Path("optuna") / "journal.log"  # under the ratchet home
# Serialises creating the schema and Optuna's tables, which races between processes.
_PG_LOCK_KEY = int.from_bytes(b"rtchtopt", "big") & 0x7FFF_FFFF_FFFF_FFFF

StorageKind = Literal["memory", "journal", "rdb", "custom"]

_opened: dict[tuple[str, str | None, str | None], BaseStorage] = {}
_opened_lock = threading.Lock()


@dataclass(frozen=True)
class StudyStorage:
    kind: StorageKind
    location: str | None = None  # journal file path or database URL
    schema: str | None = None  # PostgreSQL schema for Optuna's tables
    custom: BaseStorage | None = field(default=None, compare=False)

    @property
    def shared(self) -> bool:
        """Whether another process can open the same study (needed to prune remotely)."""
        if self.kind == "custom":
            from optuna.storages import InMemoryStorage

            return not isinstance(self.custom, InMemoryStorage)
        return self.kind != "memory"

    def describe(self) -> str:
        if self.kind == "memory":
            return "memory"
        if self.kind == "custom":
            return type(self.custom).__name__
        if self.kind == "journal":
            return f"journal:{self.location}"
        from sqlalchemy.engine import make_url

        url = make_url(self.location or "").render_as_string(hide_password=True)
        return f"{url} (schema {self.schema})" if self.schema else url

    def open(self) -> BaseStorage | None:
        """The Optuna storage; None means a fresh in-memory one (Optuna's default)."""
        if self.kind == "memory":
            return None
        if self.kind == "custom":
            return self.custom
        key = (self.kind, self.location, self.schema)
        with _opened_lock:
            found = _opened.get(key)
            if found is None:
                found = _opened[key] = self._connect()
            return found

    def _connect(self) -> BaseStorage:
        assert self.location is not None
        if self.kind == "journal":
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(self.location))
        return _open_rdb(self.location, self.schema)


def resolve_storage(storage: Any, settings: Settings) -> StudyStorage:
    """``"auto"`` | ``None`` (in memory) | a database URL | a journal file path | an Optuna
    storage object."""
    if storage is None:
        return StudyStorage("memory")
    if isinstance(storage, str) and storage == "auto":
        if _dialect(settings.db_url) == "postgresql":
            return StudyStorage("rdb", settings.db_url, OPTUNA_SCHEMA)
        return StudyStorage("journal", str((settings.home / JOURNAL_PATH).resolve()))
    if isinstance(storage, Path) or (isinstance(storage, str) and "://" not in storage):
        return StudyStorage("journal", str(Path(storage).expanduser().resolve()))
    if isinstance(storage, str):
        dialect = _dialect(storage)
        if dialect == "sqlite":
            raise InvalidInput(
                f"storage={storage!r}: Optuna's database storage on SQLite locks under "
                "parallel trials; use storage='auto' (a journal file under the ratchet home), "
                "a journal file path, or a PostgreSQL URL")
        if storage == settings.db_url:
            # Optuna's tables (and its alembic_version) must not share our schema.
            return StudyStorage("rdb", storage, OPTUNA_SCHEMA)
        return StudyStorage("rdb", storage)
    from optuna.storages import BaseStorage

    if isinstance(storage, BaseStorage):
        return StudyStorage("custom", custom=storage)
    raise InvalidInput(f"storage must be 'auto', None, a database URL, a journal file path or "
                       f"an optuna storage, got {type(storage).__name__}")


def _dialect(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).get_backend_name()
    except ArgumentError:
        raise InvalidInput(f"storage={redact_url(url)!r} is not a database URL") from None


def _open_rdb(url: str, schema: str | None) -> BaseStorage:
    from optuna.storages import RDBStorage

    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if schema is None:
        return RDBStorage(url, engine_kwargs=engine_kwargs)
    if _dialect(url) != "postgresql":
        raise InvalidInput("a separate schema for Optuna needs PostgreSQL, got "
                           f"{redact_url(url)!r}")
    engine_kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
    with _pg_lock(url):
        _create_schema(url, schema)
        return RDBStorage(url, engine_kwargs=engine_kwargs)


@contextlib.contextmanager
def _pg_lock(url: str) -> Iterator[None]:
    """A PostgreSQL advisory lock across processes, held on a connection of its own."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
    finally:
        engine.dispose()


def _create_schema(url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    if not schema.replace("_", "").isalnum():
        raise InvalidInput(f"schema name {schema!r} must be letters, digits and underscores")
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()

