"""Shared fixtures. ``backend_url`` runs a test against SQLite and the real PostgreSQL.

PostgreSQL: one fresh database per test session (dropped at the end), emptied between
tests. It is never skipped: if the server is down, the tests fail and say so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from ratchet.config import Settings

# Two xdist workers share two cores: OpenMP teams (scikit-learn's gradient boosting, its
# pairwise kernels) that spin against the other worker cost many times their work (a
# 0.25 s fit took 4.7 s). Set before any test imports scikit-learn; servers and
# subprocesses the tests start inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

PG_ADMIN_URL = os.environ.get(
    "RATCHET_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

def _import_anyio_eagerly() -> None:
    """anyio imports its parts on first use, and pytest rewrites them as a plugin's modules
    (parsing their AST). CPython 3.11.7 can fail that parse with "AST constructor recursion
    depth mismatch" once a test in the same worker has hit a RecursionError (the deep-JSON
    tests do, on purpose), so import them all before any test runs."""
    import warnings

    import anyio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in dir(anyio):
            if not name.startswith("_"):
                getattr(anyio, name, None)


_import_anyio_eagerly()

# Property tests draw the same examples on every run of `make test` (a failure there is
# one anyone can reproduce); HYPOTHESIS_PROFILE=explore draws new, more examples. No
# per-example deadline: on the shared 2-core machine an example took 396 ms once and 4 ms
# on its replay, failing the suite as "flaky" (a timing assertion in disguise).
hypothesis_settings.register_profile("repeatable", derandomize=True, print_blob=True,
                                     deadline=None)
hypothesis_settings.register_profile("explore", max_examples=500, print_blob=True,
                                     deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# Keep tests hermetic: never pick up a developer's ratchet.toml or RATCHET_* variables.
for _key in ("RATCHET_HOME", "RATCHET_DB", "RATCHET_ARTIFACTS", "RATCHET_TRACKING_URI",
             "RATCHET_TRACKING_TOKEN", "RATCHET_ONLINE_STORE"):
    os.environ.pop(_key, None)


# The slow kinds of test, by file, so that `make test-fast` (pytest -m "not slow_kind")
# runs the rest alone: a real Ray cluster; the docs, examples and a plain install;
# processes killed on purpose; whole systems (real servers under load, a browser, the loop
# over many ticks). `make test` runs them all.
SLOW_KINDS = {
    "ray": ("tests/executors/test_ray_executor.py", "tests/executors/test_ray_pipelines.py"),
    "examples": ("tests/test_examples.py", "tests/test_docs.py", "tests/test_plain_install.py",
                 "tests/serving/test_docs.py"),
    "crash": ("tests/ct/test_controller_crash.py", "tests/artifacts/test_kill_during_upload.py",
              "tests/test_reliability.py", "tests/serving/test_prediction_wal.py",
              "tests/data/test_bounded_memory.py"),
    "e2e": ("tests/cli/test_process.py", "tests/cli/test_ct_cli.py",
            "tests/cli/test_serving_cli.py", "tests/serving/test_swap_under_load.py",
            "tests/serving/test_hostile_clients.py", "tests/serving/test_workers.py",
            "tests/serving/test_native_swap.py", "tests/serving/test_docs_page.py",
            "tests/server/test_large_artifact.py",
            "tests/serving/test_oip_triton_client.py", "tests/ct/test_live_rollout.py",
            "tests/ct/test_backtest.py", "tests/ct/test_backtest_serving.py",
            # the real MLflow clients against a live ratchet server
            "tests/mlflow_compat/test_access.py", "tests/mlflow_compat/test_artifacts.py",
            "tests/mlflow_compat/test_autolog.py", "tests/mlflow_compat/test_docs.py",
            "tests/mlflow_compat/test_import.py",
            "tests/mlflow_compat/test_pyfunc_loads_ratchet_model.py",
            "tests/mlflow_compat/test_registry.py", "tests/mlflow_compat/test_tracking.py",
            # a real model server process over HTTP, the feature store behind it
            "tests/features/test_no_skew.py",
            # one served day replayed against the training set, then a controller retrain
            "tests/features/test_loop_replay.py"),
}


@pytest.hookimpl(trylast=True)  # after xdist's own hook (see _group_for_xdist)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow kinds (above). Under ``pytest -n 2 --dist loadgroup`` (make test) the
    Ray tests share one worker, so only one session-scoped Ray cluster runs on the 2-core
    machine."""
    kind_of = {path: kind for kind, paths in SLOW_KINDS.items() for path in paths}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        kind = kind_of.get(path)
        if kind is not None:
            item.add_marker(getattr(pytest.mark, kind))
        if kind == "ray":
            item.add_marker(pytest.mark.xdist_group("ray"))
    # The longest tests (the docs pages, the examples, whole systems) first, so that under
    # xdist the short ones fill in around them instead of one of them ending the run alone.
    first = {"examples": 0, "e2e": 1}
    items.sort(key=lambda item: first.get(kind_of.get(item.nodeid.split("::", 1)[0], ""), 2))
    if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        for item in items:
            _group_for_xdist(item)


def _group_for_xdist(item: pytest.Item) -> None:
    """Give ``item`` the ``@group`` node id suffix by which ``--dist loadgroup`` sends
    every test of an ``xdist_group`` to one worker. pytest-xdist 3.8 sets it through
    ``Item._nodeid``, which pytest 9.2 no longer reads (the id is ``Item._id``), so without
    this every group was split over both workers: two Ray clusters, and each worker built
    the plain-install venv and ran every docs page on it."""
    names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                    for mark in item.iter_markers("xdist_group")})
    if not names:
        return
    suffix = "@" + "_".join(names)
    if item.nodeid.endswith(suffix):
        return  # set by xdist (a version that works with this pytest)
    if hasattr(item, "_id"):
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(item.nodeid + suffix)
    else:
        setattr(item, "_nodeid", item.nodeid + suffix)  # noqa: B010 (pytest < 9.2)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"ratchet_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # a clear failure, not a skip
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc}", pytrace=False)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from ratchet.store import database

    for key, db in list(database._open.items()):
        if key.endswith(url):
            db.dispose()
            database._open.pop(key)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(url: str) -> None:
    """Empty the session's PostgreSQL database (tests/db_reset.py: only the tables a test
    filled, with DELETE; a TRUNCATE of every table cost more than most tests)."""
    from tests.db_reset import empty_tables

    empty_tables(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta' / 'ratchet.db'}"
        return
    url = request.getfixturevalue("pg_url")
    _truncate_all(url)
    yield url


@pytest.fixture(scope="session")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A live ``ratchet server`` (auth on) over its own SQLite workspace, one per test
    session and worker: the clients' third backend."""
    from tests.team_server import start_team_server

    root = tmp_path_factory.mktemp("team-server")
    server = start_team_server(f"sqlite:///{root / 'server.db'}", root / "artifacts",
                               root / "home")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql", "remote"])
def client_backend(request: pytest.FixtureRequest, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Where a client-level test's metadata lives: SQLite, PostgreSQL, or a live team
    server (remote mode); yields the ``RATCHET_*`` variables that select it."""
    if request.param == "remote":
        server = request.getfixturevalue("team_server")
        server.reset()
        monkeypatch.setenv("RATCHET_TRACKING_TOKEN", server.token)
        yield {"RATCHET_TRACKING_URI": server.url}
        return
    if request.param == "sqlite":
        yield {"RATCHET_DB": f"sqlite:///{tmp_path / 'meta' / 'ratchet.db'}"}
        return
    url = request.getfixturevalue("pg_url")
    _truncate_all(url)
    yield {"RATCHET_DB": url}


@pytest.fixture(params=["sqlite", "postgresql", "remote"])
def any_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """``workspace.stores`` on each backend: SQL over SQLite and PostgreSQL, and HTTP to a
    live team server (the same methods; store tests run unchanged on all three)."""
    if request.param == "remote":
        from ratchet.remote.http_stores import HttpStores
        from ratchet.remote.session import RemoteSession

        server = request.getfixturevalue("team_server")
        server.reset()
        remote = HttpStores(RemoteSession(server.url, server.token))
        yield remote
        remote.close()
        return
    from ratchet.store import open_database
    from ratchet.store.stores import SqlStores

    if request.param == "sqlite":
        yield SqlStores(open_database(f"sqlite:///{tmp_path / 'meta' / 'ratchet.db'}"))
        return
    url = request.getfixturevalue("pg_url")
    _truncate_all(url)
    yield SqlStores(open_database(url))


@pytest.fixture
def settings(client_backend: dict[str, str], tmp_path: Path) -> Settings:
    remote = client_backend.get("RATCHET_TRACKING_URI")
    return Settings(home=tmp_path / ".ratchet",
                    db_url=client_backend.get("RATCHET_DB",
                                              f"sqlite:///{tmp_path / 'unused.db'}"),
                    artifacts_uri=str(tmp_path / "artifacts"), tracking_uri=remote)


@pytest.fixture
def local_settings(backend_url: str, tmp_path: Path) -> Settings:
    """Settings of a local workspace only (SQLite and PostgreSQL): for tests of what only
    a store's own process can do (its files, its database, a caller's transaction)."""
    return Settings(home=tmp_path / ".ratchet", db_url=backend_url,
                    artifacts_uri=str(tmp_path / "artifacts"))


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory with the default embedded store, as a new user has."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


@pytest.fixture
def workspace_on(client_backend: dict[str, str], workspace: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory whose metadata store is each client backend (SQLite,
    PostgreSQL, a live team server)."""
    for key, value in client_backend.items():
        monkeypatch.setenv(key, value)
    return workspace


@pytest.fixture
def local_workspace_on(backend_url: str, workspace: Path,
                       monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory on a local store only (SQLite and PostgreSQL)."""
    monkeypatch.setenv("RATCHET_DB", backend_url)
    return workspace
