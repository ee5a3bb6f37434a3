"""``ratchet.features``: the feature store.

    driver = Entity("driver", join_keys=["driver_id"])
    stats = FeatureView("driver_stats", entities=[driver], source="data/driver_stats.parquet",
                        timestamp_field="event_ts", features=["trips", "rating"],
                        ttl=timedelta(days=7))
    ratchet.features.apply([driver, stats])
    train = ratchet.features.training_set(labels, features=["driver_stats:trips"]).to_pandas()
    ratchet.features.materialize()
    ratchet.features.get_online_features(["driver_stats:trips"], [{"driver_id": 7}])

Definitions are versioned in the metadata store; training sets are point-in-time correct
(DuckDB ASOF joins); the online store is SQLite by default, Redis at scale. Heavy modules
load on first use.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ratchet.lazy import lazy_getattr

if TYPE_CHECKING:
    from ratchet.features.catalog import FeatureCatalog, FeaturePlan
    from ratchet.features.definitions import (
        Definition,
        Entity,
        FeatureView,
        OnDemandFeatureView,
        on_demand,
    )
    from ratchet.features.materialization import materialize
    from ratchet.features.online import get_online_features
    from ratchet.features.pushing import push
    from ratchet.features.training_sets import TrainingSet, training_set
    from ratchet.workspace import Workspace

_LAZY = {
    "Entity": "ratchet.features.definitions",
    "FeatureView": "ratchet.features.definitions",
    "OnDemandFeatureView": "ratchet.features.definitions",
    "on_demand": "ratchet.features.definitions",
    "FeatureCatalog": "ratchet.features.catalog",
    "FeaturePlan": "ratchet.features.catalog",
    "TrainingSet": "ratchet.features.training_sets",
    "training_set": "ratchet.features.training_sets",
    "materialize": "ratchet.features.materialization",
    "get_online_features": "ratchet.features.online",
    "push": "ratchet.features.pushing",
}

__all__ = [
    "Entity",
    "FeatureCatalog",
    "FeaturePlan",
    "FeatureView",
    "OnDemandFeatureView",
    "TrainingSet",
    "apply",
    "get_online_features",
    "materialize",
    "on_demand",
    "plan",
    "push",
    "training_set",
]


def plan(definitions: Iterable[Definition], *, base_dir: str | Path | None = None,
         workspace: Workspace | None = None) -> FeaturePlan:
    """What ``apply`` would change: each definition created, updated or unchanged."""
    from ratchet.features.catalog import FeatureCatalog

    return FeatureCatalog(workspace).plan(definitions, base_dir=base_dir)


def apply(definitions: Iterable[Definition], *, base_dir: str | Path | None = None,
          workspace: Workspace | None = None) -> FeaturePlan:
    """Register the entities, feature views and on-demand views; a changed definition
    becomes a new version. Relative source paths are taken from ``base_dir`` (default: the
    working directory)."""
    from ratchet.features.catalog import FeatureCatalog

    return FeatureCatalog(workspace).apply(definitions, base_dir=base_dir)


__getattr__ = lazy_getattr(__name__, _LAZY)


def __dir__() -> list[str]:
    return __all__
