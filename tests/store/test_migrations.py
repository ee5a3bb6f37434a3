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


def _schema_diff(db: Database) -> list[object]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_object": lambda obj, *_: exists_on(obj, conn.dialect.name),
        })
        return list(compare_metadata(context, metadata))


def test_models_and_migrations_agree(backend_url: str) -> None:
    db = Database(backend_url, migrate=False)
    _drop_everything(db)
    assert upgrade(db) == HEAD_REVISION  # every migration script, in order
    diff = _schema_diff(db)
    assert diff == [], f"schema.py and the migrations differ: {diff}"


def test_a_fresh_store_is_created_from_the_tables_and_stamped(backend_url: str) -> None:
    db = Database(backend_url, migrate=False)
    _drop_everything(db)
    fresh = Database(backend_url)  # the fast path: create_all + stamp
    assert current_revision(fresh) == HEAD_REVISION
    assert _schema_diff(fresh) == []
    assert upgrade(fresh) == HEAD_REVISION  # Alembic agrees there is nothing to do


def _drop_everything(db: Database) -> None:
    from sqlalchemy import MetaData, text

    found = MetaData()
    with db.engine.begin() as conn:
        found.reflect(conn)
        found.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


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
