"""Database URLs as another tool sees them, and a schema of its own for that tool's tables.

Optuna (``ratchet.tuning``) keeps its studies in the ratchet database on PostgreSQL, in a
schema of its own (it has its own ``alembic_version`` table, which would collide with
ours). The SQL for that (``CREATE SCHEMA``, a PostgreSQL advisory lock serialising the
creation across processes) lives here, because only ``ratchet.store`` talks SQL.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from ratchet.errors import InvalidInput
from ratchet.redaction import redact_url

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def url_dialect(url: str) -> str:
    """The database a SQLAlchemy URL names (``"postgresql"``, ``"sqlite"``, ...);
    ``InvalidInput`` naming the (redacted) URL if it is not one."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).get_backend_name()
    except ArgumentError:
        raise InvalidInput(f"storage={redact_url(url)!r} is not a database URL") from None


def display_url(url: str) -> str:
    """``url`` with its password hidden, for messages and descriptions."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextlib.contextmanager
def schema_ready(url: str, schema: str, lock_key: int) -> Iterator[None]:
    """Create the PostgreSQL ``schema`` if it does not exist and hold the advisory lock
    ``lock_key`` (on a connection of its own) until the block ends, so that the caller can
    create its tables in it without racing another process doing the same."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    if not _SCHEMA_NAME.match(schema):
        raise InvalidInput(f"schema name {schema!r} must be letters, digits and underscores")
    if url_dialect(url) != "postgresql":
        raise InvalidInput(f"a separate schema needs PostgreSQL, got {redact_url(url)!r}")
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key})
            try:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key})
    finally:
        engine.dispose()
