"""``training_set``: point-in-time correct training data from entity rows and feature refs.

    labels = pd.DataFrame({"driver_id": [7, 9], "event_timestamp": [...], "churned": [0, 1]})
    train = ratchet.features.training_set(labels, ["driver_stats:trips", "ratios:per_km"])
    train.to_pandas()                       # labels' columns, then the features
    train.log("churn_train")                # a dataset version, with lineage to the views

Each entity row gets each feature's value as of the row's time (the point-in-time rule,
:mod:`ratchet.features.point_in_time`): never a value from its future, never one older than
the view's ttl; with ``created_cutoff=True`` never one written after the row's time. Then
the on-demand views run on the fetched features and the rows' request fields, with the same
code the online lookup runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ratchet.errors import InvalidInput, NotFound
from ratchet.features.catalog import FeatureCatalog, FeatureSelection
from ratchet.features.point_in_time import JoinView, point_in_time_join
from ratchet.workspace import Workspace
from ratchet.workspace import resolve as resolve_workspace

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ratchet.data.version import DatasetVersion

DATASET_PREFIX = "dataset:"


@dataclass(frozen=True)
class TrainingSet:
    """A built training set: the entity rows' columns, then the requested features."""

    table: pa.Table = field(repr=False)
    selection: FeatureSelection
    workspace: Workspace = field(repr=False)
    # (name, version) of the datasets it was read from: the entity rows' and the views'.
    source_datasets: tuple[tuple[str, int], ...] = ()

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    @property
    def columns(self) -> list[str]:
        return list(self.table.column_names)

    def to_arrow(self) -> pa.Table:
        return self.table

    def to_pandas(self) -> pd.DataFrame:
        return self.table.to_pandas()

    def log(self, name: str, *, role: str | None = None) -> DatasetVersion:
        """Store it as the next version of dataset ``name`` and record which feature view,
        on-demand view and dataset versions it was built from."""
        import ratchet.data

        refs = ", ".join(self.selection.refs)
        version = ratchet.data.log(self.table, name, source=f"features:training_set {refs}",
                                   role=role, workspace=self.workspace)
        lineage = [*self.selection.definitions(),
                   *(("dataset", n, v) for n, v in self.source_datasets)]
        self.workspace.stores.features.link_training_set(version.name, version.version,
                                                          lineage)
        return version

    def __repr__(self) -> str:
        return (f"TrainingSet({self.num_rows} rows, columns={self.columns}, "
                f"features={list(self.selection.refs)})")


def training_set(entity_df: object, features: list[str] | tuple[str, ...], *,
                 timestamp_field: str = "event_timestamp", created_cutoff: bool = False,
                 full_feature_names: bool = False, workspace: Workspace | None = None,
                 memory_limit: str = "2GB") -> TrainingSet:
    """Each entity row with the ``features`` ("view:feature", "view" for all its features,
    or an on-demand view's) as of its ``timestamp_field``.

    ``entity_df``: a pandas DataFrame, a pyarrow Table, the path of a Parquet or CSV file,
    or a dataset (a ``DatasetVersion``, or ``"dataset:NAME[@SELECTOR]"``). It must hold the
    timestamp column, every join key of the selected views and every request field of the
    selected on-demand views; its other columns (labels) are kept as they are.
    ``created_cutoff=True`` also ignores feature rows created after each row's time.
    """
    from ratchet.features.sources import SEQ_COLUMN, view_files

    ws = resolve_workspace(workspace)
    if not isinstance(timestamp_field, str) or not timestamp_field:
        raise InvalidInput(f"timestamp_field must be a column name, got {timestamp_field!r}")
    entity, entity_dataset = _entity_table(entity_df, ws)
    selection = FeatureCatalog(ws).resolve(list(features) if isinstance(features, tuple)
                                           else features,
                                           full_feature_names=full_feature_names)
    _check_entity_columns(entity, timestamp_field, selection)
    sources = [] if entity_dataset is None else [entity_dataset]
    views = []
    for chosen in selection.views:
        view = chosen.view
        scan = view_files(view, ws)
        if scan.dataset is not None:
            sources.append(scan.dataset)
        needed = [*view.join_keys, view.timestamp_field,
                  *([view.created_timestamp_field] if view.created_timestamp_field else []),
                  *chosen.features]
        views.append(JoinView(view.name, scan.sql(list(dict.fromkeys(needed))),
                              view.join_keys, view.timestamp_field,
                              view.created_timestamp_field, chosen.features, chosen.columns,
                              ttl=view.ttl, order_column=SEQ_COLUMN))
    table = point_in_time_join(entity, timestamp_column=timestamp_field, views=views,
                               created_cutoff=created_cutoff, memory_limit=memory_limit)
    if selection.on_demand:
        table = _apply_on_demand(table, selection)
    table = table.select([*entity.column_names, *selection.columns])
    return TrainingSet(table, selection, ws, tuple(dict.fromkeys(sources)))


def _entity_table(entity_df: object, workspace: Workspace
                  ) -> tuple[pa.Table, tuple[str, int] | None]:
    """The entity rows as an Arrow table, and the dataset version they came from, if any."""
    import pyarrow as pa

    from ratchet.data.catalog import DataClient
    from ratchet.data.readers import open_source
    from ratchet.data.version import DatasetVersion

    if isinstance(entity_df, DatasetVersion):
        return entity_df.to_arrow(), (entity_df.name, entity_df.version)
    if isinstance(entity_df, str) and entity_df.startswith(DATASET_PREFIX):
        version = DataClient(workspace).get(entity_df[len(DATASET_PREFIX):])
        return version.to_arrow(), (version.name, version.version)
    if isinstance(entity_df, str | os.PathLike):
        path = Path(entity_df).expanduser()
        if not path.exists():
            raise NotFound(f"entity rows {str(entity_df)!r}: no such file (give a DataFrame, "
                           "an Arrow table, a Parquet/CSV path, or 'dataset:NAME[@VERSION]' "
                           "for a ratchet dataset)")
    elif not _is_frame(entity_df):
        raise InvalidInput(f"entity rows must be a pandas DataFrame, a pyarrow Table, a "
                           f"Parquet/CSV path or 'dataset:NAME', got "
                           f"{type(entity_df).__module__}.{type(entity_df).__name__}")
    source = open_source(entity_df, source="entity rows")
    return pa.Table.from_batches(list(source.batches), schema=source.schema), None


def _is_frame(value: object) -> bool:
    import pyarrow as pa

    module = type(value).__module__.split(".", 1)[0]
    return module in ("pandas", "polars") or isinstance(value, pa.Table | pa.RecordBatch)


def _check_entity_columns(entity: pa.Table, timestamp_field: str,
                          selection: FeatureSelection) -> None:
    have = set(entity.column_names)
    problems = []
    if timestamp_field not in have:
        problems.append(f"no timestamp column {timestamp_field!r} (name the column "
                        "holding each row's time: timestamp_field= in Python, "
                        "--timestamp-field on the command line)")
    keys = [k for k in selection.entity_keys if k not in have]
    if keys:
        problems.append(f"no join key {', '.join(map(repr, keys))}")
    request = [f for f in selection.request_fields if f not in have]
    if request:
        users = [s.view.name for s in selection.on_demand
                 if any(f in request for f in s.view.request)]
        problems.append(f"no request field {', '.join(map(repr, request))} (on-demand view "
                        f"{', '.join(map(repr, users))} reads it from the entity rows)")
    produced = [c for s in selection.on_demand for c in s.columns if c in have]
    if produced:
        problems.append(f"already a column {', '.join(map(repr, produced))}, which an "
                        "on-demand view computes (rename it, or use full_feature_names=True)")
    if problems:
        raise InvalidInput(f"the entity rows have {'; '.join(problems)}; they have "
                           f"{', '.join(map(repr, entity.column_names)) or 'no columns'}")


def _apply_on_demand(table: pa.Table, selection: FeatureSelection) -> pa.Table:
    """Run each on-demand view on its inputs (by feature name) and request fields."""
    import pandas as pd
    import pyarrow as pa

    for chosen in selection.on_demand:
        frame = pd.DataFrame(
            {**{name: table.column(column).to_pandas() for column, name in
                chosen.inputs.items()},
             **{f: table.column(f).to_pandas() for f in chosen.view.request}},
            index=pd.RangeIndex(table.num_rows))
        result = chosen.view.compute(frame)
        for feature, column in zip(chosen.features, chosen.columns, strict=True):
            try:
                values = pa.array(result[feature], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise InvalidInput(f"on-demand view {chosen.view.name!r}: feature "
                                   f"{feature!r} is not a column Arrow can hold: {exc}"
                                   ) from None
            table = table.append_column(column, values)
    return table
