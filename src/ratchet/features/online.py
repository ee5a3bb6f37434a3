"""``get_online_features``: the latest feature values of entities, from the online store.

For each entity row and each feature view selected, the online store's entry for the row's
key (materialized or pushed: the latest row by event time E, then created time, then source
order). A value is returned when E ≤ now and, with a ttl, now - E ≤ ttl; otherwise (no
entry, an expired entry, or one from the future) the view's features are null and its age
is None. That is the point-in-time rule at T = now, so once everything written has been
materialized the online vector equals the training set's row for the same entity at now.
Missing entities are nulls, never errors; rows keep their order. On-demand views run on the
fetched features (by feature name) and the rows' request fields, with the same code as in
training sets.

The serving path: :func:`online_lookup` resolves the features once (catalog reads) and
returns an :class:`OnlineLookup` whose ``get`` does only the store read: one ``MGET`` on
Redis, one primary-key query per view on SQLite.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput
from ratchet.features.online_store import OnlineStore, encode_key
from ratchet.features.time_sql import now_us, to_us

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.features.catalog import FeatureSelection
    from ratchet.workspace import Workspace

AGE_SUFFIX = "__age_s"


@dataclass(frozen=True)
class OnlineFeatures:
    """The online vectors of some entity rows: columns of values, one item per row.

    ``columns``: the entity keys as given, then the requested features in request order.
    ``ages``: per feature view, the age in seconds (now - event time) of the values each
    row got, None where they are null (no entry, expired or from the future).
    """

    columns: dict[str, list[Any]]
    ages: dict[str, list[float | None]]
    feature_columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def to_dict(self, *, ages: bool = True) -> dict[str, list[Any]]:
        """Column name → values; with ``ages``, also ``<view>__age_s`` for each view."""
        out = dict(self.columns)
        if ages:
            for view, values in self.ages.items():
                out.setdefault(f"{view}{AGE_SUFFIX}", values)
        return out

    def to_pandas(self, *, ages: bool = False) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.to_dict(ages=ages))

    def rows(self, *, ages: bool = False) -> list[dict[str, Any]]:
        """One dict per entity row."""
        data = self.to_dict(ages=ages)
        names = list(data)
        return [dict(zip(names, values, strict=True)) for values in zip(*data.values(),
                                                                          strict=True)]


@dataclass(frozen=True)
class _ViewPlan:
    name: str
    version: int
    keys: tuple[str, ...]
    features: tuple[str, ...]
    columns: tuple[str, ...]
    ttl_us: int | None


class OnlineLookup:
    """A resolved feature selection bound to an online store: ``get`` reads the store only.

    Build it once (``online_lookup(...)``), call ``get`` per request."""

    def __init__(self, selection: FeatureSelection, store: OnlineStore) -> None:
        self.selection = selection
        self.store = store
        plans = []
        for s in selection.views:
            if not s.view.online:
                raise InvalidInput(f"feature view {s.view.name!r} is offline-only "
                                   "(online=False): it has no online values; use "
                                   "training_set, or set online=True, apply and materialize")
            ttl = s.view.ttl
            plans.append(_ViewPlan(s.view.name, s.version, s.view.join_keys, s.features,
                                   s.columns, None if ttl is None
                                   else ttl // timedelta(microseconds=1)))
        self._plans = tuple(plans)
        self.entity_keys = selection.entity_keys
        self.request_fields = selection.request_fields
        self._needs = (*selection.entity_keys, *selection.request_fields)
        age_columns = [f"{p.name}{AGE_SUFFIX}" for p in self._plans]
        clash = sorted(set(age_columns) & {*selection.columns, *selection.entity_keys})
        if clash:
            raise InvalidInput(f"feature columns {', '.join(map(repr, clash))} clash with the "
                               "age columns of the same name: rename the feature")

    def get(self, entity_rows: object, *, now: object = None) -> OnlineFeatures:
        """The online vectors of ``entity_rows``: a list of dicts, a dict of columns or a
        pandas DataFrame, holding the entity keys (and the request fields of on-demand
        views). ``now``: a datetime (naive is UTC), ISO text, or µs since the epoch as an
        int; default the current time."""
        columns, n = _entity_columns(entity_rows, self._needs)
        if now is None:
            at = now_us()
        elif type(now) is int:  # µs since the epoch (a server's request time)
            at = now
        else:
            at = to_us(now, "now")
        plans = self._plans
        lookups = []
        for plan in plans:
            try:
                if len(plan.keys) == 1:
                    keys = [encode_key((v,)) for v in columns[plan.keys[0]]]
                else:
                    keys = [encode_key(row) for row in zip(*(columns[k] for k in plan.keys),
                                                            strict=True)]
            except InvalidInput as exc:
                raise InvalidInput(f"entity rows: {', '.join(map(repr, plan.keys))} of "
                                   f"feature view {plan.name!r}: {exc}") from None
            lookups.append(keys)
        wanted = [(plan.name, key) for plan, keys in zip(plans, lookups, strict=True)
                  for key in keys if key is not None]
        found = iter(self.store.read(wanted) if wanted else [])
        fetched: dict[str, list[Any]] = {}
        ages: dict[str, list[float | None]] = {}
        for plan, keys in zip(plans, lookups, strict=True):
            values: list[list[Any]] = [[None] * n for _ in plan.features]
            view_ages: list[float | None] = [None] * n
            for row, key in enumerate(keys):
                if key is None:
                    continue
                entry = next(found)
                if entry is None:
                    continue
                age = at - entry.event_us
                if age < 0 or (plan.ttl_us is not None and age > plan.ttl_us):
                    continue
                stored = entry.values
                for i, feature in enumerate(plan.features):
                    values[i][row] = stored.get(feature)
                view_ages[row] = age / 1e6
            for column, column_values in zip(plan.columns, values, strict=True):
                fetched[column] = column_values
            ages[plan.name] = view_ages
        if self.selection.on_demand:
            fetched.update(self._on_demand(fetched, columns, n))
        out = {k: columns[k] for k in self.entity_keys}
        for column in self.selection.columns:
            out[column] = fetched[column]
        return OnlineFeatures(out, ages, self.selection.columns)

    def _on_demand(self, fetched: dict[str, list[Any]], columns: dict[str, list[Any]],
                   n: int) -> dict[str, list[Any]]:
        import pandas as pd

        produced: dict[str, list[Any]] = {}
        for s in self.selection.on_demand:
            frame = pd.DataFrame(
                {**{name: _series(fetched[column], n) for column, name in s.inputs.items()},
                 **{f: _series(columns[f], n) for f in s.view.request}},
                index=pd.RangeIndex(n))
            result = s.view.compute(frame)
            for feature, column in zip(s.features, s.columns, strict=True):
                produced[column] = [None if _missing(v) else v
                                    for v in result[feature].tolist()]
        return produced


def _series(values: list[Any], n: int) -> Any:
    """A column of the on-demand function's input frame, typed as the training set types it
    (through Arrow): integers with a missing value are floats with NaN, strings are objects
    with None, and a column with no value at all is float NaN (a numeric feature's missing
    values, as in a training set), never an object column of None that arithmetic fails on."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):  # mixed types: as they are
        return pd.Series(values, dtype=object)
    if pa.types.is_null(array.type):
        return pd.Series(np.full(n, np.nan))
    return array.to_pandas()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _entity_columns(entity_rows: object, needs: Sequence[str]) -> tuple[dict[str, list[Any]],
                                                                        int]:
    """The needed columns of the entity rows, as lists, and the number of rows."""
    if isinstance(entity_rows, Mapping):  # columns
        missing = [k for k in needs if k not in entity_rows]
        if missing:
            raise InvalidInput(f"entity rows have no {', '.join(map(repr, missing))} (they "
                               f"have {', '.join(map(repr, entity_rows)) or 'no columns'})")
        columns = {k: _as_list(entity_rows[k], k) for k in needs}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise InvalidInput("entity rows given as columns must have columns of one length, "
                               f"got lengths {sorted(lengths)}")
        return columns, lengths.pop() if lengths else 0
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(entity_rows, pandas.DataFrame):
        missing = [k for k in needs if k not in entity_rows.columns]
        if missing:
            raise InvalidInput(f"entity rows have no {', '.join(map(repr, missing))} (they "
                               f"have {', '.join(map(str, entity_rows.columns))})")
        return {k: entity_rows[k].tolist() for k in needs}, len(entity_rows)
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None and isinstance(entity_rows, pyarrow.Table):
        missing = [k for k in needs if k not in entity_rows.column_names]
        if missing:
            raise InvalidInput(f"entity rows have no {', '.join(map(repr, missing))} (they "
                               f"have {', '.join(entity_rows.column_names)})")
        return ({k: entity_rows.column(k).to_pylist() for k in needs},
                entity_rows.num_rows)
    if isinstance(entity_rows, str | bytes) or not isinstance(entity_rows, Sequence):
        raise InvalidInput("entity rows must be a list of dicts, a dict of columns or a "
                           f"pandas DataFrame, got {type(entity_rows).__name__}")
    rows = entity_rows
    columns = {k: [] for k in needs}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidInput(f"entity row {index} is {type(row).__name__}, not a dict of "
                               "key (and request field) values")
        try:
            for k in needs:
                columns[k].append(row[k])
        except KeyError as exc:
            raise InvalidInput(f"entity row {index} has no {exc.args[0]!r} (it needs "
                               f"{', '.join(map(repr, needs))})") from None
    return columns, len(rows)


def _as_list(values: object, name: str) -> list[Any]:
    if isinstance(values, list):
        return values
    if isinstance(values, str | bytes | Mapping) or not hasattr(values, "__iter__"):
        raise InvalidInput(f"entity column {name!r} must be a list of values, got "
                           f"{type(values).__name__}")
    tolist = getattr(values, "tolist", None)
    return list(tolist() if callable(tolist) else values)


def online_lookup(features: Sequence[str], *, full_feature_names: bool = False,
                  workspace: Workspace | None = None) -> OnlineLookup:
    """Resolve ``features`` once against the catalog and the workspace's online store: the
    object a server keeps and calls per request."""
    from ratchet.features.catalog import FeatureCatalog
    from ratchet.features.online_connections import shared_online_store
    from ratchet.workspace import resolve as resolve_workspace

    ws = resolve_workspace(workspace)
    selection = FeatureCatalog(ws).resolve(features, full_feature_names=full_feature_names)
    return OnlineLookup(selection, shared_online_store(ws.settings.online_store_uri))


# Resolved lookups of get_online_features, by (database, online store, refs, full names):
# reused while the metadata store's definition count is unchanged (definitions are
# append-only) and the on-demand code objects are the ones resolved.
_resolved: dict[tuple[Any, ...], tuple[int, OnlineLookup]] = {}
_resolved_lock = threading.Lock()
_MAX_RESOLVED = 256


def _definitions_stamp(workspace: Workspace) -> int | None:
    count = getattr(workspace.stores.features, "definitions_count", None)
    return None if count is None else int(count())


def _cached_lookup(features: Sequence[str], full_feature_names: bool,
                   workspace: Workspace) -> OnlineLookup:
    from ratchet.features.definitions import still_loaded
    from ratchet.features.online_connections import shared_online_store

    if isinstance(features, str) or not isinstance(features, Sequence):
        return online_lookup(features, full_feature_names=full_feature_names,
                             workspace=workspace)
    settings = workspace.settings
    key = (settings.db_url, settings.tracking_uri, settings.online_store_uri,
           tuple(features), bool(full_feature_names))
    stamp = _definitions_stamp(workspace)
    if stamp is not None:
        hit = _resolved.get(key)
        if (hit is not None and hit[0] == stamp
                and hit[1].store is shared_online_store(settings.online_store_uri)
                and all(still_loaded(s.view) for s in hit[1].selection.on_demand)):
            return hit[1]
    lookup = online_lookup(features, full_feature_names=full_feature_names,
                           workspace=workspace)
    if stamp is not None:
        with _resolved_lock:
            if len(_resolved) >= _MAX_RESOLVED:
                _resolved.clear()
            _resolved[key] = (stamp, lookup)
    return lookup


def get_online_features(features: Sequence[str], entity_rows: object, *,
                        full_feature_names: bool = False, now: object = None,
                        workspace: Workspace | None = None) -> OnlineFeatures:
    """The latest values of ``features`` ("view:feature" or "view") for ``entity_rows``
    (a list of dicts, a dict of columns or a DataFrame with the entity keys, plus request
    fields for on-demand views), with each view's age. Missing entities get nulls."""
    from ratchet.workspace import resolve as resolve_workspace

    ws = resolve_workspace(workspace)
    return _cached_lookup(features, full_feature_names, ws).get(entity_rows, now=now)
