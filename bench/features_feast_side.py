"""Feast: one phase of the feature store benchmark, in Feast's own virtualenv.

    bench/.venv-feast/bin/python bench/features_feast_side.py offline --data DIR --workdir W
    bench/.venv-feast/bin/python bench/features_feast_side.py online --store redis --data DIR --workdir W

A Feast repo is written into ``--workdir`` (``feature_store.yaml``: provider local, file
registry, the ``file`` offline store — Dask over the Parquet files — and the SQLite or Redis
online store), and the entity and the five feature views are applied with the Python API:

- offline: ``store.get_historical_features(entity_df, features).to_df()`` for every row of
  ``entity.parquet`` (read with pandas before the clock starts), 50 features; timed as
  ``join_s``; then the result is summarized (sums, nulls, sampled rows) for the checks.
- online: ``store.materialize(start, end)`` over the whole time range (timed), then
  ``store.get_online_features(10 features of fv0, [{"driver_id": id}]).to_dict()`` once per
  looked-up driver, each call timed; the values of the reference drivers are returned for
  the checks. Redis: ``127.0.0.1:6379`` db 15, flushed before and after (that db only).
  The online phase applies the views without a TTL (``ttl=timedelta(0)``), as ratchet's
  side does (ratchet would apply a TTL to online reads, Feast does not).

Prints one JSON line. Feast 0.67 sends no usage data; ``FEAST_USAGE=False`` and
``DO_NOT_TRACK=1`` are set by the orchestrator all the same.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from features_common import (
    BASE,
    ENTITY,
    FEATURE_TS,
    JOIN_KEY,
    REDIS_URL,
    SPAN,
    TTL,
    VIEWS,
    Clock,
    all_feature_refs,
    emit,
    feature_names,
    latency_summary,
    log,
    lookup_drivers,
    manifest,
    online_refs,
    parse_args,
    summarize_training_set,
    view_name,
    vm_hwm_mb,
    vm_rss_mb,
)


def redis_host_port_db() -> tuple[str, int, int]:
    rest = REDIS_URL.removeprefix("redis://")
    hostport, db = rest.split("/")
    host, port = hostport.split(":")
    return host, int(port), int(db)


def write_repo(workdir: Path, store: str) -> None:
    if store == "redis":
        host, port, db = redis_host_port_db()
        online = f"  type: redis\n  connection_string: \"{host}:{port},db={db}\"\n"
    else:
        online = f"  type: sqlite\n  path: {workdir / 'online.db'}\n"
    (workdir / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {workdir / 'registry.db'}\n"
        "provider: local\n"
        "offline_store:\n  type: file\n"
        f"online_store:\n{online}"
        "entity_key_serialization_version: 3\n")


def apply_definitions(workdir: Path, data: Path, ttl: timedelta) -> Any:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    driver = Entity(name=ENTITY, join_keys=[JOIN_KEY], value_type=ValueType.INT64)
    views = []
    for k in range(VIEWS):
        source = FileSource(name=f"{view_name(k)}_source", path=str(data / f"{view_name(k)}.parquet"),
                            timestamp_field=FEATURE_TS)
        views.append(FeatureView(name=view_name(k), entities=[driver], ttl=ttl,
                                 schema=[Field(name=f, dtype=Float64) for f in feature_names(k)],
                                 source=source, online=True))
    store = FeatureStore(repo_path=str(workdir))
    store.apply([driver, *views])
    return store


def flush_redis() -> None:
    import redis

    host, port, db = redis_host_port_db()
    redis.Redis(host=host, port=port, db=db).flushdb()


def offline(args: Any, clock: Clock) -> dict[str, Any]:
    import pandas as pd

    write_repo(args.workdir, "sqlite")
    store = apply_definitions(args.workdir, args.data, TTL)
    clock.lap("apply_s")
    entity_df = pd.read_parquet(args.data / "entity.parquet")
    clock.lap("read_entity_s")
    hwm_before = vm_hwm_mb()
    rss_before = vm_rss_mb()
    refs = all_feature_refs()
    t0, c0 = time.perf_counter(), time.process_time()
    result = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    join_s = time.perf_counter() - t0
    join_cpu_s = time.process_time() - c0
    hwm_after = vm_hwm_mb()
    clock.lap("join_s")
    summary = summarize_training_set(result, manifest(args.data)["sample_row_ids"])
    return {"join_s": join_s, "join_cpu_s": join_cpu_s, "rss_before_join_mb": rss_before,
            "hwm_before_join_mb": hwm_before, "hwm_after_join_mb": hwm_after,
            "result": summary}


def online(args: Any, clock: Clock) -> dict[str, Any]:
    spec = manifest(args.data)
    if args.store == "redis":
        flush_redis()
    write_repo(args.workdir, args.store)
    store = apply_definitions(args.workdir, args.data, timedelta(0))  # no TTL online
    clock.lap("apply_s")
    t0 = time.perf_counter()
    store.materialize(start_date=BASE - timedelta(days=1), end_date=BASE + SPAN + timedelta(days=1))
    materialize_s = time.perf_counter() - t0
    clock.lap("materialize_s")
    refs = online_refs()
    names = feature_names(0)

    def lookup(driver: int) -> dict[str, Any]:
        out: dict[str, Any] = store.get_online_features(
            features=refs, entity_rows=[{JOIN_KEY: driver}]).to_dict()
        return out

    for driver in lookup_drivers(args.data, args.warmup, seed=1):
        lookup(driver)
    clock.lap("warmup_s")
    latencies: list[int] = []
    perf = time.perf_counter_ns
    for driver in lookup_drivers(args.data, args.lookups, seed=2):
        t = perf()
        lookup(driver)
        latencies.append(perf() - t)
    clock.lap("lookups_s")
    answers = {}
    for driver in spec["online_drivers"]:
        got = lookup(int(driver))
        answers[str(driver)] = [got[n][0] for n in names]
    if args.store == "redis":
        flush_redis()
    return {"materialize_s": materialize_s, "lookup": latency_summary(latencies),
            "answers": answers}


def main() -> None:
    args = parse_args("feast")
    clock = Clock()
    import feast

    clock.lap("import_s")
    log(f"feast {feast.__version__}: {args.phase} {args.store if args.phase == 'online' else ''}")
    result = offline(args, clock) if args.phase == "offline" else online(args, clock)
    result.update(tool="feast", phase=args.phase, store=args.store, laps=clock.laps,
                  versions={"feast": feast.__version__}, hwm_end_mb=vm_hwm_mb())
    emit(result)


if __name__ == "__main__":
    main()
