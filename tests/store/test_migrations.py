"""The Alembic migrations and the table definitions describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from ratchet.store.database import (
    HEAD_REVISION,
    Database,
    alembic_config,
    current_revision,
    upgrade,
)
from ratchet.store.schema import exists_on, metadata


def test_models_and_migrations_agree(backend_url: str) -> None:
    db = Database(backend_url)  # applies the migrations on first use
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_object": lambda obj, *_: exists_on(obj, conn.dialect.name),
        })
        diff = compare_metadata(context, metadata)
    assert diff == [], f"schema.py and the migrations differ: {diff}"


def test_head_revision_constant_matches_scripts(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", migrate=False)
    script = ScriptDirectory.from_config(alembic_config(db))
    assert script.get_current_head() == HEAD_REVISION


def test_upgrade_is_idempotent_and_applied_on_first_use(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'y.db'}"
    db = Database(url, migrate=False)
    assert current_revision(db) is None
    assert upgrade(db) == HEAD_REVISION
    assert upgrade(db) == HEAD_REVISION
    assert current_revision(Database(url)) == HEAD_REVISION


def test_sqlite_pragmas(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'z.db'}")
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
