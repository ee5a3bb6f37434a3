"""search_runs filters compiled to SQL, checked against real SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, insert, text

import ratchet.store.run_query as rq
from ratchet.errors import InvalidInput
from ratchet.store.run_filter import (
    ATTRIBUTES,
    And,
    Comparison,
    Node,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)
from ratchet.store.run_query import (
    _ATTRIBUTE_COLUMNS,
    build_search,
    full_order,
    like_to_glob,
    search_rows,
)
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


# -- the index-order plan: same rows, same order, same pages as the full query ------------

METRIC_VALUES = [0.0, 0.5, 1.0, -1.0, NAN, float("inf")]  # few values: many ties
PARAM_VALUES = ["a", "b", "ab", "b1"]


@dataclass(frozen=True)
class RandomRun:
    run_id: str
    experiment: str
    status: str
    start_time: int
    end_time: int | None
    deleted: bool
    metrics: dict[str, float]  # a missing key: the run has no such metric
    params: dict[str, str]


random_runs = st.lists(
    st.builds(
        RandomRun,
        run_id=st.just(""),
        experiment=st.sampled_from(["e1", "e2"]),
        status=st.sampled_from(["finished", "failed", "running"]),
        start_time=st.integers(1, 3),
        end_time=st.none() | st.integers(1, 3),
        deleted=st.sampled_from([False, False, False, True]),
        metrics=st.dictionaries(st.sampled_from(["m0", "m1", "m0", "m1", "m2"]),
                                st.sampled_from(METRIC_VALUES), min_size=1),
        params=st.dictionaries(st.sampled_from(["p0", "p1"]), st.sampled_from(PARAM_VALUES)),
    ),
    min_size=6,
    max_size=24,
)
_metric_terms = st.builds(
    lambda key, op, value: f"metrics.{key} {op} {value}",
    st.sampled_from(["m0", "m1"]),
    st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    st.sampled_from(["0", "0.5", "1", "-1"]),
)
_param_terms = st.builds(
    lambda key, op, value: f"params.{key} {op} '{value}'",
    st.sampled_from(["p0", "p1"]),
    st.sampled_from(["=", "!="]),
    st.sampled_from(PARAM_VALUES),
)
_null_terms = st.builds(
    lambda entity, key, neg: f"{entity}.{key} is {'not ' if neg else ''}null",
    st.sampled_from(["metrics", "params"]),
    st.sampled_from(["m0", "p0"]),
    st.booleans(),
)
_terms = _metric_terms | _param_terms | _null_terms | st.just("status = 'finished'")
random_filters = st.one_of(st.none(), st.none(), st.recursive(
    _terms,
    lambda inner: st.lists(inner, min_size=2, max_size=3).flatmap(
        lambda items: st.sampled_from([" and ", " or "]).map(
            lambda glue: "(" + glue.join(items) + ")"
        )
    ),
    max_leaves=4,
))
_order_keys = st.lists(
    st.builds(
        lambda key, desc: f"{key} {'DESC' if desc else 'ASC'}",
        st.sampled_from(
            ["metrics.m0", "metrics.m1", "params.p0", "attributes.start_time",
             "attributes.end_time", "attributes.run_id"]
        ),
        st.booleans(),
    ),
    max_size=3,
)
# Mostly led by a metric: the searches the index-order form answers.
_metric_led = st.builds(
    lambda key, desc, rest: [f"metrics.{key} {'DESC' if desc else 'ASC'}", *rest],
    st.sampled_from(["m0", "m1"]), st.booleans(), _order_keys,
)
random_orders = st.one_of(_order_keys, _metric_led, _metric_led, _metric_led)


def _holds(node: Node, run: RandomRun) -> bool:
    """The filter language's semantics, evaluated in Python (the reference)."""
    if isinstance(node, And):
        return all(_holds(item, run) for item in node.items)
    if isinstance(node, Or):
        return any(_holds(item, run) for item in node.items)
    assert isinstance(node, Comparison)
    if node.entity == "attribute":
        assert node.key == "status" and node.op == "="
        return run.status == str(node.value).lower()
    values: dict[str, Any] = run.metrics if node.entity == "metric" else run.params
    if node.op == "is null":
        return node.key not in values
    if node.op == "is not null":
        return node.key in values
    value = values.get(node.key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False  # a missing key or a NaN fails every comparison
    wanted = float(node.value) if node.entity == "metric" else node.value  # type: ignore[arg-type]
    return {
        "=": value == wanted, "!=": value != wanted, "<": value < wanted,
        "<=": value <= wanted, ">": value > wanted, ">=": value >= wanted,
    }[node.op]


def _sort_value(run: RandomRun, key: OrderKey) -> Any:
    if key.entity == "metric":
        value = run.metrics.get(key.key)
        return None if value is None or math.isnan(value) else value
    if key.entity == "param":
        return run.params.get(key.key)
    return {"start_time": run.start_time, "end_time": run.end_time,
            "run_id": run.run_id}[key.key]


def _reference(
    data: list[RandomRun], node: Node | None, order: list[OrderKey],
    experiments: list[str] | None, statuses: list[str] | None, include_deleted: bool,
) -> list[str]:
    found = [
        r for r in data
        if (include_deleted or not r.deleted)
        and (experiments is None or r.experiment in experiments)
        and (statuses is None or r.status in statuses)
        and (node is None or _holds(node, r))
    ]
    # Stable sorts from the last key to the first; NULLs last in either direction.
    for key in reversed(full_order(order)):
        present = [r for r in found if _sort_value(r, key) is not None]
        absent = [r for r in found if _sort_value(r, key) is None]
        present.sort(key=lambda r: _sort_value(r, key), reverse=key.descending)
        found = present + absent
    return [r.run_id for r in found]


def _load(engine: Engine, data: list[RandomRun]) -> None:
    with engine.begin() as conn:
        for table in (latest_metrics, params, run_tags, runs, experiments):
            conn.execute(table.delete())
        conn.execute(insert(experiments), [
            {"experiment_id": e, "name": e, "lifecycle": "active", "created_at": 0}
            for e in ("e1", "e2")
        ])
        if not data:
            return
        conn.execute(insert(runs), [
            {"run_id": r.run_id, "experiment_id": r.experiment, "name": r.run_id,
             "status": r.status, "start_time": r.start_time, "end_time": r.end_time,
             "deleted_at": 5 if r.deleted else None}
            for r in data
        ])
        metric_rows = [
            {"run_id": r.run_id, "key": k, "value": None if math.isnan(v) else v,
             "is_nan": math.isnan(v), "step": 0, "timestamp": 0}
            for r in data for k, v in r.metrics.items()
        ]
        param_rows = [{"run_id": r.run_id, "key": k, "value": v}
                      for r in data for k, v in r.params.items()]
        if metric_rows:
            conn.execute(insert(latest_metrics), metric_rows)
        if param_rows:
            conn.execute(insert(params), param_rows)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def empty_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """A database of its own (the random data replaces its rows on every example)."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('iop') / 'runs.db'}")
        metadata.create_all(engine)
        yield Backend(engine, "sqlite")
        engine.dispose()
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"ratchet_iop_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    try:
        metadata.create_all(engine)
        yield Backend(engine, "postgresql")
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _pages(
    backend: Backend, node: Node | None, order: list[OrderKey], page: int, **scope: Any
) -> list[list[str]]:
    """Every page of a search, walked the way ``TrackingStore.search_runs`` does it."""
    pages: list[list[str]] = []
    offset = 0
    while True:
        with backend.engine.begin() as conn:
            rows = search_rows(conn, filter_node=node, order=order, offset=offset,
                               count=page + 1, **scope)
        pages.append([row.run_id for row in rows[:page]])
        if len(rows) <= page:
            return pages
        offset += page


@given(
    data=random_runs,
    filter_text=random_filters,
    order_by=random_orders,
    page=st.integers(1, 4),
    experiments=st.sampled_from([None, None, ["e1"], ["e2", "e1"]]),
    statuses=st.sampled_from([None, None, ["finished", "running"], ["failed"]]),
    include_deleted=st.booleans(),
    budgets=st.tuples(st.sampled_from([1, 3, 1000]), st.integers(1, 3),
                      st.sampled_from([5, 20, 1000, 1000]),
                      st.sampled_from([0, 0, 0, 3])),
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_search_rows_equals_a_brute_force_reference(
    empty_backend: Backend, data: list[RandomRun], filter_text: str | None,
    order_by: list[str], page: int, experiments: list[str] | None,
    statuses: list[str] | None, include_deleted: bool, budgets: tuple[int, int, int, int],
) -> None:
    """Random runs (missing / NaN / infinite / tied metrics, tied start times, deleted
    runs), filters and order keys, with tiny scan budgets so that index-order tries
    succeed, extrapolate, run out and fall back: every page equals the reference's."""
    data = [RandomRun(**{**r.__dict__, "run_id": f"r{i:02d}"}) for i, r in enumerate(data)]
    random.Random(len(data)).shuffle(data)  # insertion order is not run-id order
    _load(empty_backend.engine, data)
    node, order = parse_filter(filter_text), parse_order_by(order_by)
    expected = _reference(data, node, order, experiments, statuses, include_deleted)
    first, wanted, max_scan, selective = budgets
    with (
        patch.object(rq, "build_search", wraps=rq.build_search) as built,
        patch.object(rq, "INDEX_ORDER_FIRST_SCAN", first),
        patch.object(rq, "INDEX_ORDER_WANTED", wanted),
        patch.object(rq, "INDEX_ORDER_MAX_SCAN", max_scan),
        patch.object(rq, "SELECTIVE_TERM", selective),
    ):
        pages = _pages(empty_backend, node, order, page, experiment_ids=experiments,
                       statuses=statuses, include_deleted=include_deleted)
    full = sum(not call.kwargs.get("index_order") for call in built.call_args_list)
    event(f"pages answered in index order: {(len(pages) - full) / len(pages):.1f}")
    assert [run for p in pages for run in p] == expected
    assert all(len(p) == page for p in pages[:-1])
    # The full query alone (what the fallback runs) agrees too.
    with empty_backend.engine.connect() as conn:
        stmt = build_search(experiment_ids=experiments, filter_node=node, order=order,
                            statuses=statuses, dialect=empty_backend.dialect)
        if not include_deleted:
            stmt = stmt.where(runs.c.deleted_at.is_(None))
        assert list(conn.execute(stmt).scalars()) == expected


def test_the_index_order_form_reads_the_sort_index_in_order(tmp_path: Any) -> None:
    """SQLite starts from the sort metric's index and sorts only runs of one value."""
    engine = create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    _generate(engine, 2_000)
    for filter_text, order in [
        (BENCH_FILTER, BENCH_ORDER),
        ("params.model = 'xgb'", ["metrics.auc", "params.lr desc"]),
        (None, ["metrics.loss desc"]),
        (BENCH_FILTER, []),  # newest first: runs (experiment_id, start_time)
    ]:
        stmt = build_search(
            experiment_ids=["e"], filter_node=parse_filter(filter_text),
            order=parse_order_by(order), index_order=True, bound=0.5,
        )
        sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as conn:
            plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
        start = (
            r"SEARCH lm_\d+ USING COVERING INDEX ix_latest_metrics_key_value_run_id"
            if order else r"SEARCH runs USING INDEX ix_runs_experiment_id_start_time"
        )
        assert re.match(start, plan[0]), plan
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
        assert not [line for line in plan if line.startswith("SCAN")], plan
    engine.dispose()


def test_search_rows_picks_the_plan_by_selectivity(backend_url: str, tmp_path: Any) -> None:
    """A filter most runs pass: the page comes from one index-order try. A selective
    term: the filter-driven query (alone on SQLite). Same rows as the full query."""
    from ratchet.store import open_database

    engine = open_database(backend_url).engine  # the schema at head, as stores have it
    _generate(engine, 6_000)
    cases = [
        (BENCH_FILTER.replace("0.9", "0.3"), BENCH_ORDER, ["index"]),  # ~14 % match
        (BENCH_FILTER.replace("0.9", "0.3"), [], ["index"]),  # newest first: start time
        ("metrics.auc > 0.3", ["attributes.start_time asc"], ["index"]),
        ("metrics.auc > 0.3", ["params.lr"], ["full"]),  # no index order to read
        # 6 runs have auc > 0.999, 60 have auc > 0.99: filter-driven.
        ("metrics.auc > 0.999 and params.model = 'xgb'", BENCH_ORDER, "selective"),
        ("params.model = 'xgb' and metrics.auc > 0.99", [], "selective"),
    ]
    for filter_text, order_by, plans in cases:
        node, order = parse_filter(filter_text), parse_order_by(order_by)
        with (
            engine.begin() as conn,
            patch.object(rq, "SELECTIVE_TERM", 500),  # 6,000 runs here, not 100,000
            patch.object(rq, "build_search", wraps=rq.build_search) as built,
        ):
            rows = search_rows(conn, experiment_ids=["e"], filter_node=node, order=order,
                               count=21)
        used = ["index" if c.kwargs.get("index_order") else "full"
                for c in built.call_args_list]
        if plans == "selective" and engine.dialect.name == "postgresql":
            # No selectivity check there: bounded index-order tries fail, then the full query.
            assert used[-1] == "full" and 2 <= len(used) <= 3, (filter_text, used)
        elif plans == "selective":
            assert used == ["full"], (filter_text, used)
        else:
            assert used == plans, (filter_text, used)
        full = build_search(experiment_ids=["e"], filter_node=node, order=order,
                            dialect=engine.dialect.name)
        with engine.connect() as conn:
            expected = list(conn.execute(full.limit(21)).scalars())
        assert [row.run_id for row in rows] == expected
