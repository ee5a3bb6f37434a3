"""search_runs filters compiled to SQL, checked against real SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, insert, text

from ratchet.errors import InvalidInput
from ratchet.store.run_filter import ATTRIBUTES, Node, OrderKey, parse_filter, parse_order_by
from ratchet.store.run_query import _ATTRIBUTE_COLUMNS, build_search, like_to_glob
from ratchet.store.schema import (
    experiments,
    latest_metrics,
    metadata,
    params,
    run_tags,
    runs,
)

from .test_run_filter import filters, order_keys

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

NAN = float("nan")
# run_id, experiment, name, status, start, end, user, git_dirty, parent
RUNS = [
    ("r1", "e1", "alpha", "finished", 1000, 2000, "ann", False, None),
    ("r2", "e1", "beta", "finished", 2000, 3000, "bob", True, None),
    ("r3", "e1", "Gamma", "failed", 3000, 3500, "ann", None, None),
    ("r4", "e1", "delta", "running", 4000, None, "cid", False, "r1"),
    ("r5", "e2", "epsilon", "killed", 5000, 5100, None, None, None),
    ("r6", "e2", "zeta", "finished", 6000, 7000, "bob", True, None),
    ("r7", "e2", "eta", "finished", 6000, 6500, "ann", False, None),  # same start as r6
]
METRICS = {
    "auc": {"r1": 0.80, "r2": 0.90, "r3": NAN, "r5": 0.95, "r6": 0.70, "r7": 0.90},
    "loss": {"r1": 0.5, "r2": 0.3, "r3": 0.9, "r4": 0.4, "r6": 0.2, "r7": 0.1},
}
PARAMS = {
    "model": {"r1": "xgb", "r2": "xgb", "r3": "lgbm", "r4": "Linear", "r5": "xgb_v2", "r6": "rf"},
    "lr": {"r1": "0.1", "r2": "0.01", "r3": "0.1", "r4": "1", "r7": "0.1"},
}
TAGS = {
    "team": {"r1": "Vision", "r2": "vision", "r3": "nlp", "r4": "VISION-extra", "r6": "speech"},
    "note": {"r3": "50% off", "r5": "a*b?", "r6": "[x]", "r7": "x' OR 1=1 --"},
    "path": {"r2": "C:\\dir"},
    "x y": {"r1": "1", "r3": "2"},
}


@dataclass(frozen=True)
class Backend:
    engine: Engine
    dialect: str


def seed(engine: Engine) -> None:
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(experiments),
            [
                {"experiment_id": e, "name": f"exp-{e}", "lifecycle": "active", "created_at": 0}
                for e in ("e1", "e2")
            ],
        )
        for run_id, exp, name, status, start, end, user, dirty, parent in RUNS:
            conn.execute(
                insert(runs).values(
                    run_id=run_id,
                    experiment_id=exp,
                    name=name,
                    status=status,
                    start_time=start,
                    end_time=end,
                    user=user,
                    git_dirty=dirty,
                    parent_run_id=parent,
                )
            )
        conn.execute(
            insert(latest_metrics),
            [
                {
                    "run_id": run_id,
                    "key": key,
                    "value": None if math.isnan(value) else value,
                    "is_nan": math.isnan(value),
                    "step": 0,
                    "timestamp": 0,
                }
                for key, values in METRICS.items()
                for run_id, value in values.items()
            ],
        )
        for table, data in ((params, PARAMS), (run_tags, TAGS)):
            conn.execute(
                insert(table),
                [
                    {"run_id": run_id, "key": key, "value": value}
                    for key, values in data.items()
                    for run_id, value in values.items()
                ],
            )


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    """A throwaway PostgreSQL database; PostgreSQL being down is a failure, not a skip."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"ratchet_q_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('query') / 'runs.db'}")
    else:
        engine = request.getfixturevalue("pg_engine")
    seed(engine)
    yield Backend(engine, request.param)
    if request.param == "sqlite":
        engine.dispose()


def search(
    backend: Backend,
    filter: str | None = None,
    order_by: Sequence[str] | None = None,
    experiment_ids: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
) -> list[str]:
    return [row.run_id for row in _rows(backend, filter, order_by, experiment_ids, statuses)]


def _rows(
    backend: Backend,
    filter: str | None,
    order_by: Sequence[str] | None = None,
    experiment_ids: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
) -> list[Any]:
    stmt = build_search(
        experiment_ids=experiment_ids,
        filter_node=parse_filter(filter),
        order=parse_order_by(order_by),
        statuses=statuses,
        dialect=backend.dialect,
    )
    with backend.engine.connect() as conn:
        return list(conn.execute(stmt))


ALL = ["r7", "r6", "r5", "r4", "r3", "r2", "r1"]  # start_time DESC, then run_id DESC

FILTERS = [
    ("", ALL),
    ("metrics.auc > 0.85", ["r7", "r5", "r2"]),
    ("metrics.auc >= 0.9 and metrics.auc < 0.95", ["r7", "r2"]),
    ("metrics.auc <= 0.8", ["r6", "r1"]),
    # NaN and a missing metric both fail every comparison, != included.
    ("metrics.auc != 0.8", ["r7", "r6", "r5", "r2"]),
    ("metrics.auc is null", ["r4"]),
    ("metrics.auc is not null", ["r7", "r6", "r5", "r3", "r2", "r1"]),
    ("metrics.auc in (0.9, 0.7)", ["r7", "r6", "r2"]),
    ("metrics.auc not in (0.9, 0.7)", ["r5", "r1"]),
    ("metrics.missing > 0", []),
    ("params.model = 'xgb'", ["r2", "r1"]),
    ("params.model != 'xgb'", ["r6", "r5", "r4", "r3"]),
    ("params.model in ('xgb', 'rf')", ["r6", "r2", "r1"]),
    ("params.model not in ('xgb', 'rf')", ["r5", "r4", "r3"]),
    # LIKE is case-sensitive on both backends, ILIKE is not.
    ("params.model like 'xgb%'", ["r5", "r2", "r1"]),
    ("params.model like 'XGB%'", []),
    ("params.model ilike 'XGB%'", ["r5", "r2", "r1"]),
    ("params.model like 'xgb_v_'", ["r5"]),
    ("params.model like 'xgb_'", []),
    ("params.model not like 'xgb%'", ["r6", "r4", "r3"]),
    ("params.model not ilike 'linear'", ["r6", "r5", "r3", "r2", "r1"]),
    ("tags.team like '%ision%'", ["r2", "r1"]),
    ("tags.team ilike '%vision%'", ["r4", "r2", "r1"]),
    ("tags.team is null", ["r7", "r5"]),
    # GLOB's own wildcards in a LIKE pattern are plain characters.
    ("tags.note like 'a*b?'", ["r5"]),
    ("tags.note like '*'", []),
    ("tags.note like '[x]'", ["r6"]),
    ("tags.note like '50% off'", ["r3"]),
    # A backslash is an ordinary character (PostgreSQL's LIKE would treat it as an escape).
    (r"tags.path = 'C:\dir'", ["r2"]),
    (r"tags.path like 'C:\dir'", ["r2"]),
    (r"tags.path ilike 'c:\dir%'", ["r2"]),
    ("tags.`x y` = '2'", ["r3"]),
    (
        "(params.model = 'rf' or metrics.loss < 0.35) and attributes.status = 'finished'",
        ["r7", "r6", "r2"],
    ),
    ("params.model = 'rf' or metrics.loss < 0.35 and status = 'killed'", ["r6"]),
    ("metrics.loss < 0.5 or params.lr = '1'", ["r7", "r6", "r4", "r2"]),
    ("((metrics.auc > 0.5))", ["r7", "r6", "r5", "r2", "r1"]),
    ("params.model = 'xgb' and metrics.auc > 0.85", ["r2"]),
    ("params.lr = '0.1' and tags.team is not null", ["r3", "r1"]),
    ("params.lr = '0.1' and (tags.team is null or metrics.loss > 0.8)", ["r7", "r3"]),
    ("status = 'FINISHED'", ["r7", "r6", "r2", "r1"]),
    ("attributes.status in ('failed', 'killed')", ["r5", "r3"]),
    ("status != 'finished'", ["r5", "r4", "r3"]),
    ("attributes.start_time >= 3000 and attributes.start_time < 6000", ["r5", "r4", "r3"]),
    ("start_time > 5999.5", ["r7", "r6"]),  # not rounded to a bigint
    ("start_time in (1000, 6000)", ["r7", "r6", "r1"]),
    ("attributes.end_time is null", ["r4"]),
    ("attributes.end_time > 3000", ["r7", "r6", "r5", "r3"]),
    ("run_name ilike 'gamma'", ["r3"]),
    ("run_name like 'g%'", []),
    ("attributes.user is null", ["r5"]),
    ("user = 'ann'", ["r7", "r3", "r1"]),
    ("git_dirty = true", ["r6", "r2"]),
    ("git_dirty = 'false'", ["r7", "r4", "r1"]),
    ("git_dirty != true", ["r7", "r4", "r1"]),
    ("git_dirty is null", ["r5", "r3"]),
    ("parent_run_id = 'r1'", ["r4"]),
    ("run_id in ('r1', 'r3')", ["r3", "r1"]),
    ("experiment_id = 'e2'", ["r7", "r6", "r5"]),
    # Values are bound parameters: SQL in a value is just a string to compare.
    ("tags.note = 'x'' OR 1=1 --'", ["r7"]),
    ("params.model = 'x'' OR 1=1 --'", []),
    ("params.model = 'xgb'' OR ''1''=''1'", []),
    ('tags.note like "%\' OR 1=1 --"', ["r7"]),
]


@pytest.mark.parametrize(("filter", "expected"), FILTERS, ids=[f[0] or "<none>" for f in FILTERS])
def test_filter_returns_exactly_the_matching_runs(
    backend: Backend, filter: str, expected: list[str]
) -> None:
    assert search(backend, filter) == expected


ORDERS = [
    (["metrics.auc DESC"], ["r5", "r7", "r2", "r1", "r6", "r4", "r3"]),  # NULL/NaN last
    (["metrics.auc ASC"], ["r6", "r1", "r7", "r2", "r5", "r4", "r3"]),  # still last
    (["params.lr"], ["r2", "r7", "r3", "r1", "r4", "r6", "r5"]),
    (["params.lr desc"], ["r4", "r7", "r3", "r1", "r2", "r6", "r5"]),
    (["attributes.start_time"], ["r1", "r2", "r3", "r4", "r5", "r7", "r6"]),
    (["attributes.end_time desc"], ["r6", "r7", "r5", "r3", "r2", "r1", "r4"]),
    (["attributes.end_time"], ["r1", "r2", "r3", "r5", "r7", "r6", "r4"]),
    (["attributes.run_id"], ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]),
    (["tags.`x y` desc"], ["r3", "r1", "r7", "r6", "r5", "r4", "r2"]),
    (["params.lr", "metrics.loss desc"], ["r2", "r3", "r1", "r7", "r4", "r6", "r5"]),
]


@pytest.mark.parametrize(("order_by", "expected"), ORDERS, ids=[" ".join(o[0]) for o in ORDERS])
def test_order_by(backend: Backend, order_by: list[str], expected: list[str]) -> None:
    assert search(backend, order_by=order_by) == expected


def test_order_by_a_filtered_metric_reuses_its_join(backend: Backend) -> None:
    assert search(backend, "metrics.auc > 0.85", ["metrics.auc asc"]) == ["r7", "r2", "r5"]
    stmt = build_search(
        experiment_ids=None,
        filter_node=parse_filter("metrics.auc > 0.85"),
        order=parse_order_by(["metrics.auc"]),
        dialect=backend.dialect,
    )
    assert "LEFT OUTER JOIN" not in str(stmt)
    assert search(backend, "metrics.auc > 0.85 or metrics.auc < 0.75", ["metrics.auc desc"]) == [
        "r5",
        "r7",
        "r2",
        "r6",
    ]


def test_the_select_returns_the_order_values(backend: Backend) -> None:
    rows = _rows(backend, None, ["metrics.auc desc"])
    assert [row.order_0 for row in rows] == [0.95, 0.9, 0.9, 0.8, 0.7, None, None]
    assert [row.order_1 for row in rows] == [5000, 6000, 2000, 1000, 6000, 4000, 3000]


def test_experiment_and_status_scopes(backend: Backend) -> None:
    assert search(backend, experiment_ids=["e2"]) == ["r7", "r6", "r5"]
    assert search(backend, experiment_ids="e2") == ["r7", "r6", "r5"]  # a lone id
    assert search(backend, experiment_ids=[]) == []
    assert search(backend, statuses=["FINISHED"]) == ["r7", "r6", "r2", "r1"]
    assert search(
        backend, "metrics.loss > 0", experiment_ids=["e1"], statuses=["running", "failed"]
    ) == ["r4", "r3"]
    with pytest.raises(InvalidInput, match="unknown run status done"):
        search(backend, statuses=["done"])


def test_the_caller_pages_with_limit_and_offset(backend: Backend) -> None:
    stmt = build_search(experiment_ids=None, filter_node=None, order=[], dialect=backend.dialect)
    with backend.engine.connect() as conn:
        assert list(conn.execute(stmt.limit(2).offset(2)).scalars()) == ["r5", "r4"]


def test_many_keys_stay_under_the_join_limit(backend: Backend) -> None:
    """SQLite joins at most 64 tables: extra keys fall back to subqueries."""
    many = " and ".join(f"metrics.m{i} is not null" for i in range(80))
    order = [f"params.p{i} desc" for i in range(80)]
    assert search(backend, many, order) == []
    lots_of_auc = " and ".join(
        ["metrics.auc > 0.85", *(f"metrics.m{i} is null" for i in range(70))]
    )
    assert search(backend, lots_of_auc, ["metrics.loss"]) == ["r7", "r2", "r5"]
    rows = _rows(backend, "params.model = 'xgb'", [*order, "params.lr"])
    assert [row.run_id for row in rows] == ["r2", "r1"]
    assert [row.order_80 for row in rows] == ["0.01", "0.1"]


@given(filters, st.lists(order_keys, max_size=3))
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_random_valid_filters_run_on_both_backends(
    backend: Backend, node: Node, order: list[OrderKey]
) -> None:
    stmt = build_search(experiment_ids=None, filter_node=node, order=order, dialect=backend.dialect)
    with backend.engine.connect() as conn:
        conn.execute(stmt.limit(5)).all()


def test_values_are_bound_never_inlined() -> None:
    node = parse_filter("tags.note = 'x'' OR 1=1 --' and params.a like '%;DROP TABLE runs'")
    sql = str(build_search(experiment_ids=None, filter_node=node, order=[]))
    assert "OR 1=1" not in sql and "DROP" not in sql


def test_every_attribute_has_a_column() -> None:
    assert set(_ATTRIBUTE_COLUMNS) == set(ATTRIBUTES)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unsupported dialect"):
        build_search(experiment_ids=None, filter_node=None, order=[], dialect="mysql")


@pytest.mark.parametrize(
    ("like", "glob"),
    [("abc", "abc"), ("a%b_", "a*b?"), ("*?[]", "[*][?][[]]"), ("100%", "100*")],
)
def test_like_to_glob(like: str, glob: str) -> None:
    assert like_to_glob(like) == glob


# -- the query plan -----------------------------------------------------------------


def _generate(engine: Engine, n_runs: int, seed_: int = 0) -> None:
    """``n_runs`` runs in one experiment with metrics auc, loss and params model, lr."""
    rng = random.Random(seed_)
    metadata.create_all(engine)
    run_rows, metric_rows, param_rows = [], [], []
    for i in range(n_runs):
        run_id = f"{i:032x}"
        run_rows.append(
            {
                "run_id": run_id,
                "experiment_id": "e",
                "name": f"run-{i}",
                "status": "finished",
                "start_time": 1_700_000_000_000 + i,
            }
        )
        for key in ("auc", "loss"):
            metric_rows.append(
                {
                    "run_id": run_id,
                    "key": key,
                    "value": rng.random(),
                    "is_nan": False,
                    "step": 0,
                    "timestamp": 0,
                }
            )
        param_rows.append(
            {
                "run_id": run_id,
                "key": "model",
                "value": rng.choice(["xgb", "rf", "lgbm", "linear", "mlp"]),
            }
        )
        param_rows.append({"run_id": run_id, "key": "lr", "value": str(rng.choice([0.1, 0.01]))})
    with engine.begin() as conn:
        conn.execute(
            insert(experiments).values(
                experiment_id="e", name="e", lifecycle="active", created_at=0
            )
        )
        conn.execute(insert(runs), run_rows)
        conn.execute(insert(latest_metrics), metric_rows)
        conn.execute(insert(params), param_rows)


BENCH_FILTER = "metrics.auc > 0.9 and params.model = 'xgb'"
BENCH_ORDER = ["metrics.loss DESC"]


def test_the_sqlite_plan_searches_indexes_instead_of_scanning(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    _generate(engine, 2_000)
    queries = [
        (BENCH_FILTER, BENCH_ORDER),
        ("params.model = 'xgb' and (metrics.auc > 0.9 or metrics.loss < 0.1)", ["metrics.auc"]),
        ("params.model like 'xg%' and metrics.auc is not null", ["params.lr desc"]),
    ]
    for filter_text, order in queries:
        stmt = build_search(
            experiment_ids=["e"], filter_node=parse_filter(filter_text), order=parse_order_by(order)
        )
        sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as conn:
            plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
        scans = [
            line
            for line in plan
            if re.match(r"SCAN (latest_metrics|params|run_tags|runs|lm_|p_|t_)", line)
        ]
        assert not scans, (filter_text, plan)
    engine.dispose()
