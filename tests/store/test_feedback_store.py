"""Feedback in the metadata store: keyed per deployment, and migrated with its data."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import MetaData, text

from ratchet.errors import InvalidInput
from ratchet.store.database import HEAD_REVISION, Database, upgrade
from ratchet.store.deployment_store import DeploymentStore


def _drop_everything(db: Database) -> None:
    found = MetaData()
    with db.engine.begin() as conn:
        found.reflect(conn)
        found.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def test_one_deployment_never_relabels_anothers_rows(backend_url: str) -> None:
    store = DeploymentStore(Database(backend_url))
    assert store.record_feedback([("r1", 0, "a", 1), ("r1", 0, "b", 0)]) == 2
    store.record_feedback([("r1", 0, "b", 1)])  # b corrects its own row only
    assert [(f.deployment, f.value) for f in store.feedback("a")] == [("a", 1)]
    assert [(f.deployment, f.value) for f in store.feedback("b")] == [("b", 1)]


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, object()])
def test_values_json_cannot_hold_are_invalid_input(backend_url: str, value: object) -> None:
    store = DeploymentStore(Database(backend_url))
    with pytest.raises(InvalidInput, match="request 'r1' row 0"):
        store.record_feedback([("r1", 0, "a", 1), ("r1", 0, "a", value)])
    assert store.feedback("a") == []


def test_the_migration_keeps_existing_feedback(backend_url: str) -> None:
    db = Database(backend_url, migrate=False)
    _drop_everything(db)
    assert upgrade(db, "0007") == "0007"
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO prediction_feedback (request_id, \"row\", deployment, value, "
            "received_at) VALUES ('r1', 0, 'a', '1', 10), ('r1', 1, 'a', '\"yes\"', 11), "
            "('r2', 0, 'b', '0.5', 12)"))
    assert upgrade(db) == HEAD_REVISION
    store = DeploymentStore(db)
    assert [(f.request_id, f.row, f.deployment, f.value, f.received_at)
            for f in store.feedback()] == [("r1", 0, "a", 1, 10), ("r1", 1, "a", "yes", 11),
                                           ("r2", 0, "b", 0.5, 12)]
    store.record_feedback([("r1", 0, "b", 0)])  # the wider key: a second deployment's row
    assert [f.value for f in store.feedback("a")] == [1, "yes"]
    assert [(f.request_id, f.value) for f in store.feedback("b")] == [("r2", 0.5), ("r1", 0)]
