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

import threading
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
        from ratchet.store.foreign_schema import display_url

        url = display_url(self.location or "")
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
    from ratchet.store.foreign_schema import url_dialect

    return url_dialect(url)


def _open_rdb(url: str, schema: str | None) -> BaseStorage:
    from optuna.storages import RDBStorage

    from ratchet.store.foreign_schema import schema_ready

    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if schema is None:
        return RDBStorage(url, engine_kwargs=engine_kwargs)
    if _dialect(url) != "postgresql":
        raise InvalidInput("a separate schema for Optuna needs PostgreSQL, got "
                           f"{redact_url(url)!r}")
    engine_kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
    # The schema exists and the lock is held while Optuna creates its tables in it.
    with schema_ready(url, schema, _PG_LOCK_KEY):
        return RDBStorage(url, engine_kwargs=engine_kwargs)
