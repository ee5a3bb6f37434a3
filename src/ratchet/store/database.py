"""Engine creation, connection discipline, and schema migration on first use.

SQLite: WAL journal, ``synchronous=NORMAL`` (a commit survives a process crash), a busy
timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for write transactions so that
concurrent writers queue on the busy timeout instead of failing with "database is
locked" when a read transaction tries to upgrade. PostgreSQL via psycopg 3.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import ConfigError, Conflict, InvalidInput, RatchetError, StoreUnavailable
from ratchet.file_modes import create_file, make_dirs

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# The newest migration; checked against the scripts by a test, so that opening an
# up-to-date store needs no Alembic import.
HEAD_REVISION = "0013"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class Database:
    """One engine plus the rules for reading and writing through it."""

    def __init__(self, url: str, migrate: bool = True) -> None:
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(f"not a database URL: {redact_url(url)!r}") from None
        self.url = url
        self.dialect = parsed.get_backend_name()
        if self.dialect not in {"sqlite", "postgresql"}:
            raise ConfigError(
                f"unsupported database {self.dialect!r} in {redact_url(url)!r}: use sqlite:///path "
                "or postgresql+psycopg://user@host/db"
            )
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            db_path = parsed.database
            if db_path and db_path != ":memory:":
                try:
                    make_dirs(Path(db_path).parent)  # new folders 0700 (ratchet.file_modes)
                except OSError as exc:
                    raise ConfigError(f"cannot create the folder of the store {db_path}: "
                                      f"{exc.strerror or exc}; set RATCHET_HOME (or "
                                      "RATCHET_DB) to a writable folder") from None
                if not db_path.startswith("file:") and not os.path.exists(db_path):
                    # SQLite would create it 0644; an empty file is a valid new database
                    # and its -wal / -shm files take its mode. Failures: SQLite reports.
                    with contextlib.suppress(OSError):
                        create_file(db_path)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                      "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except NoSuchModuleError:
            raise ConfigError(f"no driver for {redact_url(url)!r}; for PostgreSQL install "
                              "ratchet[postgres] and use postgresql+psycopg://") from None
        except ModuleNotFoundError as exc:
            raise ConfigError(f"the driver for {redact_url(url)!r} is not installed ({exc.name}); "
                              "install ratchet[postgres]") from None
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, event)
        event.listen(self.engine, "handle_error", self._on_error)
        if migrate:
            ensure_schema(self)

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that holds the write lock from its first statement."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(ratchet_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _on_error(self, context: Any) -> BaseException | None:
        """A store that cannot be reached or read is the user's to fix: one clear
        ``StoreUnavailable`` instead of the driver's exception (pre-ping retries kept)."""
        if context.is_pre_ping:
            return None
        return store_unavailable(self.url, context.sqlalchemy_exception)

    def dispose(self) -> None:
        self.engine.dispose()

    def upsert(self, table: Any) -> Any:
        """``INSERT`` with ``ON CONFLICT`` support for this dialect."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql as dialect_module
        else:
            from sqlalchemy.dialects import sqlite as dialect_module  # type: ignore[no-redef]
        return dialect_module.insert(table)


def _configure_sqlite(engine: Engine, event: Any) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module (see "begin" below).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("ratchet_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def current_revision(db: Database) -> str | None:
    from sqlalchemy import inspect, text

    with db.read() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def alembic_config(db: Database) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision`` under a cross-process lock; return the new head."""
    from alembic import command

    with _migration_lock(db):
        if current_revision(db) != HEAD_REVISION or revision != "head":
            with db.engine.begin() as conn:
                cfg = alembic_config(db)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
    return current_revision(db)


def ensure_schema(db: Database) -> None:
    """Bring the store to ``HEAD_REVISION``. An empty database is created from the table
    definitions and stamped (one transaction, no Alembic import: ~10x faster than replaying
    every migration); an existing one is migrated. A test keeps the two paths identical."""
    if current_revision(db) == HEAD_REVISION:
        return
    with _migration_lock(db):
        revision = current_revision(db)
        if revision == HEAD_REVISION:
            return
        if revision is None and _is_empty(db):
            _create_fresh(db)
            return
    upgrade(db)


def _is_empty(db: Database) -> bool:
    from sqlalchemy import inspect

    with db.read() as conn:
        return not inspect(conn).get_table_names()


def _create_fresh(db: Database) -> None:
    from sqlalchemy import text

    from ratchet.store.schema import metadata

    with db.engine.begin() as conn:
        metadata.create_all(conn)
        # The table Alembic itself would create, so later migrations apply as usual.
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                          "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                     {"v": HEAD_REVISION})


@contextlib.contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    """Only one process migrates at a time; the others wait, then find nothing to do."""
    if db.dialect == "postgresql":
        from sqlalchemy import text

        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(7263811)"))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(7263811)"))
                conn.commit()
        return
    database = db.engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = f"{database}.migrate.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


_open: dict[str, Database] = {}
_open_lock = threading.Lock()


def open_database(url: str) -> Database:
    """The process-wide Database for ``url`` (one engine and pool per URL and process)."""
    key = f"{os.getpid()}:{url}"
    with _open_lock:
        db = _open.get(key)
        if db is None:
            db = _open[key] = Database(url)
        return db


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: safe for messages."""
    from ratchet import redaction  # the one home of the rule (also ?password= in the query)

    return redaction.redact_url(url)


def refused_by_constraints(exc: BaseException) -> RatchetError | None:
    """The user error a database refusal stands for (a duplicate id, a reference to
    nothing, a value too large for its column), for callers that pass input from outside
    straight to a store (the team server); None for anything else. The driver's message
    is shortened to its first line, without the SQL."""
    import sqlite3

    from sqlalchemy.exc import DataError, IntegrityError

    integrity: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)
    data: tuple[type[BaseException], ...] = (sqlite3.DataError, OverflowError)
    try:  # the raw-DBAPI fast paths (pipeline records) raise the driver's own errors
        import psycopg

        integrity += (psycopg.IntegrityError,)
        data += (psycopg.DataError,)
    except ImportError:
        pass
    driver: BaseException | None
    if isinstance(exc, IntegrityError | DataError):
        driver = exc.orig
        reason = str(driver).splitlines()[0] if driver is not None else "constraint"
    else:
        driver = exc
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, IntegrityError) or isinstance(driver, integrity):
        return Conflict(f"the change conflicts with stored records ({reason}): an id "
                        "already in use, or a reference to something that does not exist")
    if isinstance(exc, DataError) or isinstance(driver, data):
        return InvalidInput(f"a value cannot be stored ({reason})")
    return None


def store_unavailable(url: str, exc: BaseException | None) -> StoreUnavailable | None:
    """The one-line error for a store that cannot be reached or read, or None when ``exc``
    is something else (a constraint or a SQL error is a bug, and keeps its traceback)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DatabaseError, InterfaceError, OperationalError

    if not (isinstance(exc, OperationalError | InterfaceError) or type(exc) is DatabaseError):
        return None
    assert isinstance(exc, DatabaseError | InterfaceError)
    reason = (str(exc.orig or exc).strip().splitlines() or ["no reason given"])[0]
    reason = reason.removeprefix("connection failed: ").strip()
    try:
        password = make_url(url).password
    except Exception:  # an unparsable URL never got this far; be safe anyway
        password = None
    if password:
        reason = reason.replace(str(password), "***")
    if make_url(url).get_backend_name() == "sqlite":
        corrupt = "not a database" in reason or "malformed" in reason
        hint = ("if this file is not a ratchet store, move it aside or point RATCHET_DB "
                "(or RATCHET_HOME) elsewhere") if corrupt else (
                "check that the file and its folder are readable and writable")
    else:
        hint = ("check that the server is up and that the user and database in RATCHET_DB "
                "exist")
    return StoreUnavailable(f"cannot use the store {redact_url(url)}: {reason}; {hint}")
