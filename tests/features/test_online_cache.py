"""get_online_features keeps its resolved lookup while the definitions are unchanged, and
sees a new version (applied here or by another process) on the next call."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import ratchet
from ratchet.config import Settings
from ratchet.errors import Conflict
from ratchet.features import Entity, FeatureView, OnDemandFeatureView
from ratchet.features.catalog import FeatureCatalog
from ratchet.features.materialization import materialize
from ratchet.features.online import get_online_features
from ratchet.features.online_connections import close_shared_online_stores
from ratchet.workspace import Workspace

DRIVER = Entity("driver", join_keys=["driver_id"])
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _settings(tmp_path: Path) -> Settings:
    home = tmp_path / ".ratchet"
    return Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                    artifacts_uri=str(home / "artifacts"),
                    online_store=f"sqlite:///{tmp_path / 'online.sqlite'}")


def _view(tmp_path: Path, ttl: timedelta | None) -> FeatureView:
    return FeatureView("stats", entities=[DRIVER], source=str(tmp_path / "s.parquet"),
                       timestamp_field="event_ts", features=["trips"], ttl=ttl)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    pd.DataFrame({"driver_id": [1], "event_ts": [T0], "trips": [7]}
                 ).to_parquet(tmp_path / "s.parquet")
    workspace = Workspace(_settings(tmp_path))
    ratchet.features.apply([_view(tmp_path, None)], workspace=workspace)
    materialize(end=T0 + timedelta(days=1), workspace=workspace)
    yield workspace
    close_shared_online_stores()


def _count_resolves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = FeatureCatalog.resolve

    def counted(self: FeatureCatalog, *args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(FeatureCatalog, "resolve", counted)
    return calls


def test_resolution_is_reused_until_a_definition_changes(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_resolves(monkeypatch)
    now = T0 + timedelta(days=10)
    for _ in range(3):
        got = get_online_features(["stats:trips"], [{"driver_id": 1}], now=now, workspace=ws)
        assert got.columns["trips"] == [7]
    assert len(calls) == 1
    # another process (another Workspace object on the same database) applies a ttl
    other = Workspace(_settings(tmp_path))
    ratchet.features.apply([_view(tmp_path, timedelta(days=1))], workspace=other)
    got = get_online_features(["stats:trips"], [{"driver_id": 1}], now=now, workspace=ws)
    assert got.columns["trips"] == [None]  # the new ttl is in force at once
    assert len(calls) == 2
    # different refs or names are resolved on their own
    get_online_features(["stats"], [{"driver_id": 1}], now=now, workspace=ws)
    get_online_features(["stats:trips"], [{"driver_id": 1}], full_feature_names=True,
                        now=now, workspace=ws)
    assert len(calls) == 4


def test_redeclared_on_demand_code_is_not_served_from_the_cache(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    def double(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"twice": frame["trips"] * 2})

    ratchet.features.apply([OnDemandFeatureView("twice", function=double,
                                                inputs=["stats:trips"], features=["twice"])],
                           workspace=ws)
    now = T0 + timedelta(days=2)
    got = get_online_features(["twice"], [{"driver_id": 1}], now=now, workspace=ws)
    assert got.columns["twice"] == [14]

    def triple(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"twice": frame["trips"] * 3})

    # the same function declared again (edited) in this process: not the registered code
    triple.__qualname__ = double.__qualname__
    OnDemandFeatureView("twice", function=triple, inputs=["stats:trips"], features=["twice"])
    with pytest.raises(Conflict, match="differs from its registered version"):
        get_online_features(["twice"], [{"driver_id": 1}], now=now, workspace=ws)
