"""plan / apply / resolve against a real workspace."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

import ratchet
from ratchet.errors import Conflict, InvalidInput, NotFound
from ratchet.features import Entity, FeatureCatalog, FeatureView, OnDemandFeatureView
from ratchet.workspace import Workspace

DRIVER = Entity("driver", join_keys=["driver_id"])


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    pd.DataFrame({"driver_id": [1, 2], "event_ts": pd.to_datetime(["2026-01-01", "2026-01-02"]),
                  "trips": [3, 4], "rating": [4.5, 4.0]}).to_parquet(tmp_path / "stats.parquet")
    pd.DataFrame({"driver_id": [1], "ts": ["2026-01-01"], "trips": [1.0]}).to_csv(
        tmp_path / "other.csv", index=False)
    return Workspace.at(tmp_path / ".ratchet")


def view(source: str = "stats.parquet", **changes: object) -> FeatureView:
    args: dict[str, object] = {"entities": [DRIVER], "source": source,
                               "timestamp_field": "event_ts", "features": ["trips", "rating"],
                               "ttl": timedelta(days=7)}
    args.update(changes)
    return FeatureView("driver_stats", **args)  # type: ignore[arg-type]


def ratio_view(name: str = "catalog_ratios") -> OnDemandFeatureView:
    return OnDemandFeatureView(name, function=lambda df: {"per_km": df["trips"] / df["km"]},
                               inputs=["driver_stats:trips"], request=["km"],
                               features=["per_km"])


def test_plan_then_apply_then_change(ws: Workspace, tmp_path: Path) -> None:
    declared = [DRIVER, view(), ratio_view()]
    plan = ratchet.features.plan(declared, base_dir=tmp_path, workspace=ws)
    assert [(i.kind, i.action) for i in plan.items] == [
        ("entity", "create"), ("feature_view", "create"), ("on_demand", "create")]
    assert not plan.applied and "3 to create" in str(plan)
    # plan registers nothing
    assert FeatureCatalog(ws).definitions() == []
    applied = ratchet.features.apply(declared, base_dir=tmp_path, workspace=ws)
    assert applied.applied and [i.version for i in applied.items] == [1, 1, 1]
    registered, version = FeatureCatalog(ws).view("driver_stats")
    # a relative source is stored as the absolute path it named from base_dir
    assert version == 1 and registered.source == str(tmp_path / "stats.parquet")
    again = ratchet.features.apply(declared, base_dir=tmp_path, workspace=ws)
    assert [i.action for i in again.items] == ["unchanged"] * 3 and not again.changes
    changed = ratchet.features.plan([view(ttl=timedelta(days=1))], base_dir=tmp_path,
                                    workspace=ws)
    item = changed.changes[0]
    assert (item.action, item.version, item.changes) == ("update", 1, ("ttl_seconds",))
    ratchet.features.apply([view(ttl=timedelta(days=1))], base_dir=tmp_path, workspace=ws)
    assert FeatureCatalog(ws).view("driver_stats")[1] == 2
    assert FeatureCatalog(ws).view("driver_stats", 1)[0].ttl == timedelta(days=7)


def test_apply_checks_everything_before_registering_anything(ws: Workspace,
                                                             tmp_path: Path) -> None:
    bad = [view(source="missing.parquet"),
           FeatureView("other", entities=[DRIVER], source="other.csv", timestamp_field="ts",
                       features=["trips", "speed"]),
           OnDemandFeatureView("odd", function=lambda df: df, inputs=["nowhere:x"],
                               features=["y"])]
    with pytest.raises(InvalidInput) as caught:
        ratchet.features.apply(bad, base_dir=tmp_path, workspace=ws)
    text = str(caught.value)
    assert "missing.parquet' does not exist" in text
    assert "has no column 'speed'" in text
    assert "'nowhere:x' names no feature view" in text
    assert FeatureCatalog(ws).definitions() == []


def test_names_and_duplicates(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="declared twice, differently"):
        ratchet.features.plan([view(), view(ttl=None)], base_dir=tmp_path, workspace=ws)
    with pytest.raises(InvalidInput, match="declared twice, differently"):
        ratchet.features.plan([view(), Entity("driver", ["id"])], base_dir=tmp_path,
                              workspace=ws)
    ratchet.features.apply([view()], base_dir=tmp_path, workspace=ws)
    clash = OnDemandFeatureView("driver_stats", function=lambda df: df, request=["km"],
                                features=["x"])
    with pytest.raises(InvalidInput, match="share one namespace"):
        ratchet.features.apply([clash], base_dir=tmp_path, workspace=ws)
    with pytest.raises(InvalidInput, match="has no feature 'speed'"):
        ratchet.features.apply([OnDemandFeatureView(
            "o", function=lambda df: df, inputs=["driver_stats:speed"], features=["y"])],
            base_dir=tmp_path, workspace=ws)


def test_resolve_fetches_inputs_hides_them_and_names_columns(ws: Workspace,
                                                             tmp_path: Path) -> None:
    ratchet.features.apply([view(), ratio_view()], base_dir=tmp_path, workspace=ws)
    catalog = FeatureCatalog(ws)
    selection = catalog.resolve(["driver_stats:rating", "catalog_ratios:per_km"])
    assert selection.columns == ("rating", "per_km")
    assert selection.hidden == ("trips",)
    assert selection.entity_keys == ("driver_id",) and selection.request_fields == ("km",)
    assert selection.views[0].features == ("rating", "trips")
    assert selection.on_demand[0].inputs == {"trips": "trips"}
    assert selection.definitions() == [("feature_view", "driver_stats", 1),
                                       ("on_demand", "catalog_ratios", 1)]
    full = catalog.resolve(["driver_stats", "catalog_ratios:per_km"], full_feature_names=True)
    assert full.columns == ("driver_stats__trips", "driver_stats__rating", "catalog_ratios__per_km")
    assert full.hidden == () and full.on_demand[0].inputs == {"driver_stats__trips": "trips"}
    with pytest.raises(NotFound, match="no feature view or on-demand view 'nope'"):
        catalog.resolve(["nope:x"])
    with pytest.raises(NotFound, match="has no feature 'speed'"):
        catalog.resolve(["driver_stats:speed"])
    with pytest.raises(InvalidInput, match="non-empty list"):
        catalog.resolve("driver_stats:trips")  # type: ignore[arg-type]


def test_a_feature_in_two_views_needs_full_names(ws: Workspace, tmp_path: Path) -> None:
    other = FeatureView("other", entities=[DRIVER], source="other.csv", timestamp_field="ts",
                        features=["trips"])
    ratchet.features.apply([view(), other], base_dir=tmp_path, workspace=ws)
    with pytest.raises(InvalidInput, match="full_feature_names=True"):
        FeatureCatalog(ws).resolve(["driver_stats:trips", "other:trips"])
    assert FeatureCatalog(ws).resolve(["driver_stats:trips", "other:trips"],
                                      full_feature_names=True).columns == (
        "driver_stats__trips", "other__trips")


def _declared(name: str, function: object) -> OnDemandFeatureView:
    return OnDemandFeatureView(name, function=function,  # type: ignore[arg-type]
                               inputs=["driver_stats:trips"], request=["km"],
                               features=["per_km"])


def per_km(df: pd.DataFrame) -> dict[str, object]:
    return {"per_km": df["trips"] / df["km"]}


def test_on_demand_code_must_be_the_registered_code(ws: Workspace, tmp_path: Path) -> None:
    ratchet.features.apply([view(), _declared("checked", per_km)], base_dir=tmp_path,
                           workspace=ws)
    assert FeatureCatalog(ws).on_demand("checked")[1] == 1

    def edited(df: pd.DataFrame) -> dict[str, object]:  # the same function, edited
        return {"per_km": df["trips"]}

    edited.__qualname__ = per_km.__qualname__
    _declared("checked", edited)  # declared again where it was: it replaces the first
    with pytest.raises(Conflict, match="differs from its registered version 1"):
        FeatureCatalog(ws).resolve(["checked:per_km"])


def test_same_named_views_of_two_modules_the_registered_one_runs(ws: Workspace,
                                                                 tmp_path: Path) -> None:
    first = _declared("twice", per_km)
    ratchet.features.apply([view(), first], base_dir=tmp_path, workspace=ws)
    _declared("twice", lambda df: {"per_km": df["km"]})  # another module's, declared later
    assert FeatureCatalog(ws).on_demand("twice")[0] is first


def test_a_dataset_source(ws: Workspace, tmp_path: Path) -> None:
    frame = pd.read_parquet(tmp_path / "stats.parquet")
    ratchet.data.log(frame, "driver_stats_raw", workspace=ws)
    ratchet.features.apply([view(source="dataset:driver_stats_raw")], workspace=ws)
    assert FeatureCatalog(ws).view("driver_stats")[0].dataset_source == "driver_stats_raw"
    with pytest.raises(InvalidInput, match="nothing_here"):
        ratchet.features.apply([view(source="dataset:nothing_here")], workspace=ws)
