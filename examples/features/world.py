"""A small generated world for the feature store in the continuous-training loop.

Ride-hailing: drivers publish hourly statistics, zones publish demand every half hour,
riders request trips, and whether a trip was completed becomes known half an hour later.
Everything is generated from one seed (no download), over ``days`` days from ``START``:

- ``driver_stats`` rows (``driver_id``, ``event_ts`` = the end of the hour they cover,
  ``created_ts`` = when they were computed, a minute or two later, ``trips``,
  ``acceptance``, ``rating``). A driver's acceptance drifts down from the second day on
  for half the drivers (feature drift a monitor can see). A few rows are *corrected*
  40 minutes after they were first written: same ``event_ts``, a later ``created_ts``, a
  different value (a backfill; a training set without ``created_cutoff`` would leak it).
- ``zone_demand`` rows (``zone_id``, ``event_ts``, ``created_ts``, ``open_requests``,
  ``surge``) every 30 minutes.
- ``trips``: ``driver_id``, ``zone_id``, ``requested_at`` (whole seconds, UTC), the
  rider's ``distance_km`` (request data the client sends) and the label ``completed``
  (0/1), known at ``label_at`` = ``requested_at`` + 30 minutes. The label depends on the
  driver's and zone's *latent* state at the request (not on the published numbers) and on
  the distance, so a model learns from the features without being handed the answer.

``World.history(view, until)`` are the rows already computed at ``until`` (what a batch
source holds when the loop starts); ``World.arrivals(view, after, until)`` the rows
computed in between, in the order they were computed (what a streaming job pushes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

START = "2024-05-01T00:00:00Z"
DRIVER_KEYS, ZONE_KEYS = ["driver_id"], ["zone_id"]
KEYS = ["driver_id", "zone_id"]
TIME, LABEL, REQUEST = "requested_at", "completed", "distance_km"
DRIVER_FEATURES = ["trips", "acceptance", "rating"]
ZONE_FEATURES = ["open_requests", "surge"]
LABEL_DELAY = "30min"


@dataclass
class World:
    """The generated rows (pandas frames, times as tz-aware UTC timestamps)."""

    driver_stats: pd.DataFrame
    zone_demand: pd.DataFrame
    trips: pd.DataFrame
    start: pd.Timestamp
    days: int
    views: dict[str, pd.DataFrame] = field(init=False)

    def __post_init__(self) -> None:
        self.views = {"driver_stats": self.driver_stats, "zone_demand": self.zone_demand}

    def day(self, number: int) -> tuple[pd.Timestamp, pd.Timestamp]:
        """Day ``number``'s bounds [start, end)."""
        import pandas as pd

        begin = self.start + pd.Timedelta(days=number)
        return begin, begin + pd.Timedelta(days=1)

    def history(self, view: str, until: pd.Timestamp) -> pd.DataFrame:
        """The rows of ``view`` computed at or before ``until``, in the order computed."""
        rows = self.views[view]
        return rows[rows["created_ts"] <= until].reset_index(drop=True)

    def arrivals(self, view: str, after: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
        """The rows of ``view`` computed in (after, until], in the order computed."""
        rows = self.views[view]
        created = rows["created_ts"]
        return rows[(created > after) & (created <= until)].reset_index(drop=True)

    def trips_between(self, begin: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """The trips requested in [begin, end), in request order."""
        at = self.trips[TIME]
        return self.trips[(at >= begin) & (at < end)].reset_index(drop=True)

    def write_history(self, folder: str, until: pd.Timestamp) -> dict[str, str]:
        """Each view's history at ``until`` as Parquet under ``folder/<view>/``: the
        feature views' batch sources. Returns view -> folder."""
        from pathlib import Path

        paths = {}
        for view in self.views:
            target = Path(folder, view)
            target.mkdir(parents=True, exist_ok=True)
            self.history(view, until).to_parquet(target / "history.parquet", index=False)
            paths[view] = str(target)
        return paths


def generate(*, days: int = 2, drivers: int = 12, zones: int = 3, trips_per_day: int = 400,
             seed: int = 7, start: str = START) -> World:
    """The world: ``days`` days of feature rows and trips."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    origin = pd.Timestamp(start)
    hours = 24 * days
    driver_ids = np.arange(1001, 1001 + drivers, dtype=np.int64)
    zone_ids = [f"z{i}" for i in range(zones)]

    # ---------------------------------------------------------------- latent state
    base_accept = rng.uniform(0.55, 0.95, drivers)
    drifting = rng.permutation(drivers) < drivers // 2
    hour_index = np.arange(hours)
    decline = np.clip((hour_index - 24) / 24, 0, None)  # from the second day on
    # acceptance[h, d]: the driver's propensity during hour h
    accept = np.clip(base_accept[None, :] - 0.35 * decline[:, None] * drifting[None, :]
                     + rng.normal(0, 0.03, (hours, drivers)), 0.02, 0.99)
    busy = np.clip(1.0 + 0.5 * np.sin(2 * np.pi * (hour_index % 24) / 24 - 1.2), 0.3, None)
    slots = 2 * hours  # half hours
    demand = np.clip(rng.normal(1.0, 0.25, (slots, zones))
                     + 0.4 * np.sin(2 * np.pi * (np.arange(slots) % 48) / 48)[:, None], 0.2, None)

    # ---------------------------------------------------------------- driver_stats
    # the hour [h, h+1) closes at h+1; its row is computed 60-150 s later
    grid = (hours, drivers)
    event = origin + pd.to_timedelta(np.repeat(hour_index + 1, drivers), unit="h")
    stats = pd.DataFrame({
        "driver_id": np.tile(driver_ids, hours),
        "event_ts": event,
        "created_ts": event + pd.to_timedelta(60 + rng.integers(0, 90, hours * drivers),
                                              unit="s"),
        "trips": rng.poisson(np.repeat(3 * busy, drivers)).astype(np.int64),
        "acceptance": (accept + rng.normal(0, 0.02, grid)).ravel(),
        "rating": (4.2 + 0.6 * base_accept[None, :] + rng.normal(0, 0.05, grid)).ravel()})
    # corrections: the same hour recomputed 40 minutes later with a different acceptance
    fixed = stats.sample(n=max(1, len(stats) // 25), random_state=seed).copy()
    fixed["created_ts"] = fixed["event_ts"] + pd.Timedelta(minutes=40)
    fixed["acceptance"] = fixed["acceptance"] + rng.normal(0, 0.1, len(fixed))
    stats = pd.concat([stats, fixed], ignore_index=True)
    stats = stats.sort_values(["created_ts", "driver_id"], kind="stable", ignore_index=True)

    # ---------------------------------------------------------------- zone_demand
    event = origin + pd.to_timedelta(np.repeat(30 * (np.arange(slots) + 1), zones), unit="m")
    zone_rows = pd.DataFrame({
        "zone_id": np.tile(np.asarray(zone_ids, dtype=object), slots),
        "event_ts": event,
        "created_ts": event + pd.to_timedelta(30 + rng.integers(0, 60, slots * zones),
                                              unit="s"),
        "open_requests": rng.poisson(8 * demand).astype(np.int64).ravel(),
        "surge": (1.0 + 0.5 * np.clip(demand - 1.0, 0.0, None)
                  + rng.normal(0, 0.02, (slots, zones))).ravel()})
    zone_rows = zone_rows.sort_values(["created_ts", "zone_id"], kind="stable",
                                      ignore_index=True)

    # ---------------------------------------------------------------- trips
    per_day = []
    for day in range(days):
        # from 01:30 on: every view has a row within its ttl by then
        offsets = np.sort(rng.choice(np.arange(5400, 86_400), trips_per_day, replace=False))
        per_day.append(origin + pd.Timedelta(days=day) + pd.to_timedelta(offsets, unit="s"))
    at = per_day[0].append(per_day[1:]) if len(per_day) > 1 else per_day[0]
    n = len(at)
    driver_of = rng.integers(0, drivers, n)
    zone_of = rng.integers(0, zones, n)
    hour_of = ((at - origin) // pd.Timedelta(hours=1)).to_numpy().astype(int)
    slot_of = ((at - origin) // pd.Timedelta(minutes=30)).to_numpy().astype(int)
    distance = np.round(rng.uniform(0.5, 12.0, n), 1)
    logit = 5.0 * (accept[hour_of, driver_of] - 0.6) - 1.2 * (demand[slot_of, zone_of] - 1.0) \
        - 0.08 * (distance - 6.0)
    completed = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    trips = pd.DataFrame({"driver_id": driver_ids[driver_of],
                          "zone_id": np.asarray(zone_ids, dtype=object)[zone_of],
                          TIME: at, REQUEST: distance, LABEL: completed})
    trips["label_at"] = trips[TIME] + pd.Timedelta(LABEL_DELAY)
    return World(stats, zone_rows, trips, origin, days)


def write_example(project: str, *, live: bool = False, days: int = 2, seed: int = 7
                  ) -> dict[str, str]:
    """The files a project needs to try the example from the command line: each view's
    history under ``project/data/<view>/`` (the sources trip_features.py names) and
    ``project/trips.parquet``, the labeled trips (keys, requested_at, distance_km,
    completed): the first training rows. The world's history ends at day 1's start, or,
    ``live``, now (it then covers the last ``days`` whole hours, so a server answering now
    finds fresh features). Returns what was written."""
    from pathlib import Path

    import pandas as pd

    now = pd.Timestamp.now(tz="UTC").floor("s")
    if live:
        world = generate(days=days, seed=seed,
                         start=str(now.floor("h") - pd.Timedelta(days=days)))
        begin, until = world.start, now
    else:
        world = generate(days=days, seed=seed)
        begin, until = world.day(0)[0], world.day(1)[0]
    written = world.write_history(str(Path(project, "data")), until=until)
    trips = world.trips_between(begin, until)
    labeled = trips[trips["label_at"] <= until][[*KEYS, TIME, REQUEST, LABEL]]
    target = Path(project, "trips.parquet")
    labeled.to_parquet(target, index=False)
    written["trips"] = str(target)
    return written


if __name__ == "__main__":  # python world.py [PROJECT_DIR] [--live]
    import sys

    args = [a for a in sys.argv[1:] if a != "--live"]
    for name, path in write_example(args[0] if args else ".",
                                    live="--live" in sys.argv[1:]).items():
        print(f"{name}: {path}")
