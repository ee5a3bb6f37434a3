"""The feature definitions of the trip-completion example (``ratchet features apply``).

The module is also what a server imports to run the on-demand view
(``ratchet serve --features-module examples/features/trip_features.py``): the same
function computes ``pickup_pressure`` for every row of a training set and for each request.

Sources are folders of Parquet files relative to the directory the definitions are applied
from (``apply(base_dir=...)``): ``data/driver_stats/`` and ``data/zone_demand/`` hold the
history a batch job wrote (``world.World.write_history``); what arrives later is pushed
(``ratchet.features.push``) and lands in the views' offline logs too.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from ratchet.features import Entity, FeatureView, on_demand

driver = Entity("driver", join_keys=["driver_id"], description="a driver, by id")
zone = Entity("zone", join_keys=["zone_id"], description="a city zone")

driver_stats = FeatureView(
    "driver_stats", entities=[driver], source="data/driver_stats",
    timestamp_field="event_ts", created_timestamp_field="created_ts",
    features=["trips", "acceptance", "rating"], ttl=timedelta(hours=2),
    description="each driver's last hour: trips, acceptance rate, rating")

zone_demand = FeatureView(
    "zone_demand", entities=[zone], source="data/zone_demand",
    timestamp_field="event_ts", created_timestamp_field="created_ts",
    features=["open_requests", "surge"], ttl=timedelta(hours=1),
    description="each zone's open requests and surge multiplier, every 30 minutes")



@on_demand(inputs=["driver_stats:acceptance", "zone_demand:surge"], request=["distance_km"],
           features=["pickup_pressure"])
def trip_context(rows: pd.DataFrame) -> pd.DataFrame:
    """How hard the pickup is: the zone's surge times the trip's distance (a request
    field), per unit of the driver's acceptance."""
    return pd.DataFrame({"pickup_pressure": rows["surge"] * rows["distance_km"]
                         / rows["acceptance"].clip(lower=0.05)})


DEFINITIONS = [driver, zone, driver_stats, zone_demand, trip_context]

# What the trip-completion model reads, as given to training_set and log_model.
FEATURES = ["driver_stats:trips", "driver_stats:acceptance", "driver_stats:rating",
            "zone_demand:open_requests", "zone_demand:surge", "trip_context:pickup_pressure"]
