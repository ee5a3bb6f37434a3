"""ratchet: one phase of the feature store benchmark, in the project's ``.venv``.

    .venv/bin/python bench/features_ratchet_side.py offline --data DIR --workdir W
    .venv/bin/python bench/features_ratchet_side.py online --store redis --data DIR --workdir W

A fresh workspace in ``--workdir`` (its own SQLite metadata database; the online store a
SQLite file there or Redis at ``127.0.0.1:6379`` db 15), the entity and the five feature
views applied with ``ratchet.features.apply``:

- offline: ``ratchet.features.training_set(entity_df, features=[50 refs],
  timestamp_field="event_timestamp").to_arrow()`` for every row of ``entity.parquet``
  (read with pyarrow before the clock starts), timed as ``join_s``; the conversion of the
  result to pandas is timed apart (``to_pandas_s``), then the result is summarized.
- online: ``ratchet.features.materialize()`` (timed), then
  ``ratchet.features.get_online_features(10 features of fv0, [{"driver_id": id}])`` once
  per looked-up driver, each call timed; the values of the reference drivers are returned
  for the checks. Then the serving path: ``online_lookup(refs)`` resolved once and its
  ``.get([{"driver_id": id}])`` per call (``lookup_resolved``). Redis db 15 is flushed
  before and after (that db only). The online phase applies the views without a TTL:
  ratchet applies a view's TTL to online reads (against now, and the data is from January
  2026) while Feast's online reads do not, so with one the two would answer differently.

Prints one JSON line.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from features_common import (
    ENTITY,
    ENTITY_TS,
    FEATURE_TS,
    JOIN_KEY,
    REDIS_URL,
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


def workspace(workdir: Path, store: str) -> Any:
    from ratchet.config import Settings
    from ratchet.workspace import Workspace

    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    online = REDIS_URL if store == "redis" else f"sqlite:///{home / 'online.sqlite'}"
    return Workspace(Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                              artifacts_uri=str(home / "artifacts"), online_store=online))


def apply_definitions(ws: Any, data: Path, ttl: timedelta | None) -> None:
    import ratchet.features as rf

    driver = rf.Entity(ENTITY, join_keys=[JOIN_KEY])
    views = [rf.FeatureView(view_name(k), entities=[driver],
                            source=str(data / f"{view_name(k)}.parquet"),
                            timestamp_field=FEATURE_TS, features=feature_names(k), ttl=ttl)
             for k in range(VIEWS)]
    rf.apply([driver, *views], workspace=ws)


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def offline(args: Any, clock: Clock) -> dict[str, Any]:
    import pyarrow.parquet as pq

    import ratchet.features as rf

    ws = workspace(args.workdir, "sqlite")
    apply_definitions(ws, args.data, TTL)
    clock.lap("apply_s")
    entity = pq.read_table(args.data / "entity.parquet")
    clock.lap("read_entity_s")
    hwm_before = vm_hwm_mb()
    rss_before = vm_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    table = rf.training_set(entity, features=all_feature_refs(), timestamp_field=ENTITY_TS,
                            workspace=ws).to_arrow()
    join_s = time.perf_counter() - t0
    join_cpu_s = time.process_time() - c0
    hwm_after = vm_hwm_mb()
    clock.lap("join_s")
    frame = table.to_pandas()
    to_pandas_s = clock.lap("to_pandas_s")
    summary = summarize_training_set(frame, manifest(args.data)["sample_row_ids"])
    return {"join_s": join_s, "join_cpu_s": join_cpu_s, "to_pandas_s": to_pandas_s, "rss_before_join_mb": rss_before,
            "hwm_before_join_mb": hwm_before, "hwm_after_join_mb": hwm_after,
            "result": summary}


def as_columns(response: Any) -> dict[str, Any]:
    """A lookup's answer as {column: [values]} (a mapping, or anything with ``to_dict``)."""
    if hasattr(response, "to_dict"):
        response = response.to_dict()
    return dict(response)


def online(args: Any, clock: Clock) -> dict[str, Any]:
    import ratchet.features as rf

    spec = manifest(args.data)
    if args.store == "redis":
        flush_redis()
    ws = workspace(args.workdir, args.store)
    apply_definitions(ws, args.data, None)  # no TTL online: see the docstring
    clock.lap("apply_s")
    t0 = time.perf_counter()
    rf.materialize(workspace=ws)
    materialize_s = time.perf_counter() - t0
    clock.lap("materialize_s")
    refs = online_refs()
    names = feature_names(0)
    get = rf.get_online_features

    for driver in lookup_drivers(args.data, args.warmup, seed=1):
        as_columns(get(refs, [{JOIN_KEY: driver}], workspace=ws))
    clock.lap("warmup_s")
    latencies: list[int] = []
    perf = time.perf_counter_ns
    for driver in lookup_drivers(args.data, args.lookups, seed=2):
        t = perf()
        as_columns(get(refs, [{JOIN_KEY: driver}], workspace=ws))
        latencies.append(perf() - t)
    clock.lap("lookups_s")
    from ratchet.features.online import online_lookup

    resolved = online_lookup(refs, workspace=ws)
    for driver in lookup_drivers(args.data, args.warmup, seed=1):
        resolved.get([{JOIN_KEY: driver}]).to_dict()
    served: list[int] = []
    for driver in lookup_drivers(args.data, args.lookups, seed=2):
        t = perf()
        resolved.get([{JOIN_KEY: driver}]).to_dict()
        served.append(perf() - t)
    clock.lap("lookups_resolved_s")
    answers = {}
    for driver in spec["online_drivers"]:
        got = as_columns(get(refs, [{JOIN_KEY: int(driver)}], workspace=ws))
        answers[str(driver)] = [got[n][0] for n in names]
    if args.store == "redis":
        flush_redis()
    return {"materialize_s": materialize_s, "lookup": latency_summary(latencies),
            "lookup_resolved": latency_summary(served), "answers": answers}


def main() -> None:
    args = parse_args("ratchet")
    clock = Clock()
    import ratchet.features  # noqa: F401

    clock.lap("import_s")
    log(f"ratchet: {args.phase} {args.store if args.phase == 'online' else ''}")
    result = offline(args, clock) if args.phase == "offline" else online(args, clock)
    from importlib.metadata import version

    result.update(tool="ratchet", phase=args.phase, store=args.store, laps=clock.laps,
                  versions={"ratchet": version("ratchet-mlops")}, hwm_end_mb=vm_hwm_mb())
    emit(result)


if __name__ == "__main__":
    main()
