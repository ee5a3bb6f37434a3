"""Where studies live: a PostgreSQL schema of their own, a journal file beside SQLite;
resuming by name, and several processes working on one study."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import optuna
import pytest
from sqlalchemy import create_engine, text

from ratchet.config import Settings
from ratchet.store.database import HEAD_REVISION
from ratchet.tracking.client import TrackingClient
from ratchet.tuning import tune
from ratchet.tuning.storage import OPTUNA_SCHEMA, resolve_storage
from ratchet.workspace import Workspace
from tests.tuning.objectives import quadratic

SPACE = {"x": ("float", -10.0, 10.0), "y": ("float", -10.0, 10.0)}


@pytest.fixture
def pg_settings(pg_url: str, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / ".ratchet", db_url=pg_url,
                    artifacts_uri=str(tmp_path / "artifacts"))


def tables(url: str, schema: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema}).scalars())
    finally:
        engine.dispose()


def test_auto_on_postgresql_uses_a_schema_of_its_own_and_resumes(pg_settings: Settings
                                                                  ) -> None:
    name = f"resume-{uuid.uuid4().hex[:8]}"
    first = tune(quadratic, SPACE, n_trials=4, name=name, seed=0, workspace=Workspace(pg_settings))
    second = tune(quadratic, SPACE, n_trials=3, name=name, parallel=2, workspace=Workspace(pg_settings))
    assert len(second.study.trials) == 7
    assert sorted(second.trials["number"]) == list(range(7))
    assert second.trials["run_id"].notna().all()

    # One study, one parent run: resumed, with all seven trials under it.
    assert second.run_id == first.run_id
    client = TrackingClient(Workspace(pg_settings))
    parent = client.get_run(first.run_id)
    assert parent.status == "finished" and parent.metrics["n_trials"] == 7
    assert parent.tags["ratchet.tuning.storage"].endswith(f"(schema {OPTUNA_SCHEMA})")
    assert sorted(r.name for r in client.child_runs(first.run_id)) == \
        sorted(f"trial-{n}" for n in range(7))

    optuna_tables = tables(pg_settings.db_url, OPTUNA_SCHEMA)
    assert {"studies", "trials", "trial_params", "alembic_version"} <= optuna_tables
    ours = tables(pg_settings.db_url, "public")
    assert "runs" in ours and not ours & (optuna_tables - {"alembic_version"})
    engine = create_engine(pg_settings.db_url)
    try:
        with engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM public.alembic_version"))
            assert revision.scalar_one() == HEAD_REVISION  # ours, untouched by Optuna
    finally:
        engine.dispose()


WORKER = """
import os
import sys

import ratchet
from ratchet.tuning import tune


def objective(x):
    ratchet.log_param("pid", os.getpid())
    return -(x - 1.0) ** 2


tune(objective, {"x": ("float", -3.0, 3.0)}, n_trials=8, name=sys.argv[1], parallel=2)
"""


def test_two_processes_tune_one_study_on_postgresql(pg_settings: Settings,
                                                    tmp_path: Path) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    env = {**os.environ, "RATCHET_DB": pg_settings.db_url,
           "RATCHET_HOME": str(pg_settings.home), "RATCHET_ARTIFACTS": pg_settings.artifacts_uri}
    workers = [subprocess.Popen([sys.executable, str(script), name], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err
        assert "Trial" not in err  # Optuna's per-trial INFO logging is silenced

    storage = resolve_storage("auto", pg_settings).open()
    assert storage is not None
    study = optuna.load_study(study_name=name, storage=storage)
    assert len(study.trials) == 16
    assert sorted(t.number for t in study.trials) == list(range(16))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    client = TrackingClient(Workspace(pg_settings))
    runs = [client.get_run(t.user_attrs["ratchet.run_id"]) for t in study.trials]
    assert all(r.status == "finished" for r in runs)
    assert len({r.params["pid"] for r in runs}) == 2  # both processes contributed


def test_auto_on_sqlite_is_a_journal_under_the_home(sqlite_settings: Settings) -> None:
    first = tune(quadratic, SPACE, n_trials=3, name="journal", seed=0,
                 workspace=Workspace(sqlite_settings))
    journal = sqlite_settings.home / "optuna" / "journal.log"
    assert journal.is_file() and journal.stat().st_size > 0
    assert resolve_storage("auto", sqlite_settings).describe() == f"journal:{journal}"
    second = tune(quadratic, SPACE, n_trials=2, name="journal", workspace=Workspace(sqlite_settings))
    assert len(second.study.trials) == 5 and second.run_id == first.run_id

    # Optuna's tables never go into the ratchet SQLite database.
    db = sqlite3.connect(sqlite_settings.db_url.removeprefix("sqlite:///"))
    try:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()
    assert "runs" in names and not {"studies", "trials", "version_info"} & names


def test_in_memory_studies_do_not_persist(sqlite_settings: Settings) -> None:
    tune(quadratic, SPACE, n_trials=2, name="fleeting", storage=None, workspace=Workspace(sqlite_settings))
    again = tune(quadratic, SPACE, n_trials=2, name="fleeting", storage=None,
                 workspace=Workspace(sqlite_settings))
    assert len(again.study.trials) == 2
    assert not (sqlite_settings.home / "optuna").exists()


def test_journal_path_and_optuna_storage_objects(sqlite_settings: Settings,
                                                  tmp_path: Path) -> None:
    path = tmp_path / "shared" / "study.log"
    tune(quadratic, SPACE, n_trials=2, name="by-path", storage=path, workspace=Workspace(sqlite_settings))
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path)))
    resumed = tune(quadratic, SPACE, n_trials=1, name="by-path", storage=storage,
                   workspace=Workspace(sqlite_settings))
    assert len(resumed.study.trials) == 3


def test_storage_resolution(sqlite_settings: Settings, pg_settings: Settings) -> None:
    assert resolve_storage(None, sqlite_settings).kind == "memory"
    on_pg = resolve_storage("auto", pg_settings)
    assert (on_pg.kind, on_pg.location, on_pg.schema) == ("rdb", pg_settings.db_url,
                                                          OPTUNA_SCHEMA)
    # Our own database named explicitly still keeps Optuna out of our schema.
    assert resolve_storage(pg_settings.db_url, sqlite_settings).schema is None
    assert resolve_storage(pg_settings.db_url, pg_settings).schema == OPTUNA_SCHEMA
    other = resolve_storage("postgresql+psycopg://bob:secret@db.example/optuna",
                            sqlite_settings)
    assert other.schema is None and "secret" not in other.describe()
