"""``FeatureCatalog``: plan and apply definitions, read them back, resolve feature refs.

``plan`` compares declared definitions with the registered ones and says what ``apply``
would do; ``apply`` registers each changed definition as a new version. ``resolve`` turns
``["driver_stats:trips", "trip_ratios:trips_per_km"]`` into what to fetch from which view
version, which on-demand views to run, and the output columns: the one resolution the
training set, the online lookup and the model server share.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratchet.errors import Conflict, InvalidInput, NotFound
from ratchet.features.definitions import (
    Definition,
    Entity,
    FeatureView,
    OnDemandFeatureView,
    loaded_versions,
    split_feature_ref,
)
from ratchet.features.sources import SourceScan, source_columns, source_path_files
from ratchet.workspace import Workspace
from ratchet.workspace import resolve as resolve_workspace

_WORDS = {"entity": "entity", "feature_view": "feature view", "on_demand": "on-demand view"}


@dataclass(frozen=True)
class PlanItem:
    kind: str                   # entity | feature_view | on_demand
    name: str
    action: str                 # create | update | unchanged
    version: int | None         # the registered version (after apply: the one now current)
    changes: tuple[str, ...] = ()  # the spec fields that differ from the registered version

    def describe(self) -> str:
        what = f"{_WORDS[self.kind]} {self.name}"
        if self.action == "create":
            return f"+ create {what}"
        if self.action == "update":
            return f"~ update {what} (v{self.version}): {', '.join(self.changes)}"
        return f"  unchanged {what} (v{self.version})"


@dataclass(frozen=True)
class FeaturePlan:
    items: tuple[PlanItem, ...]
    applied: bool = False

    @property
    def changes(self) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if i.action != "unchanged")

    def to_dict(self) -> dict[str, Any]:
        return {"applied": self.applied,
                "items": [{"kind": i.kind, "name": i.name, "action": i.action,
                           "version": i.version, "changes": list(i.changes)}
                          for i in self.items]}

    def __str__(self) -> str:
        lines = [i.describe() for i in self.items] or ["nothing declared"]
        creates = sum(i.action == "create" for i in self.items)
        updates = sum(i.action == "update" for i in self.items)
        verb = "applied" if self.applied else "to apply"
        lines.append(f"{creates} to create, {updates} to update ({verb})")
        return "\n".join(lines)


@dataclass(frozen=True)
class ViewSelection:
    """What to fetch from one feature view version."""

    view: FeatureView
    version: int
    features: tuple[str, ...]
    columns: tuple[str, ...]  # the output column of each feature, same order


@dataclass(frozen=True)
class OnDemandSelection:
    view: OnDemandFeatureView
    version: int
    features: tuple[str, ...]
    columns: tuple[str, ...]
    # The function's input frame: column in the fetched frame -> the name the function sees.
    inputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureSelection:
    refs: tuple[str, ...]
    views: tuple[ViewSelection, ...]
    on_demand: tuple[OnDemandSelection, ...]
    columns: tuple[str, ...]        # the requested features' output columns, in order
    entity_keys: tuple[str, ...]
    request_fields: tuple[str, ...]
    hidden: tuple[str, ...]         # fetched only as on-demand inputs: dropped at the end
    full_feature_names: bool = False

    def definitions(self) -> list[tuple[str, str, int]]:
        """(kind, name, version) of every definition used, for lineage."""
        return ([("feature_view", s.view.name, s.version) for s in self.views]
                + [("on_demand", s.view.name, s.version) for s in self.on_demand])


def _column_name(view: str, feature: str, full: bool) -> str:
    return f"{view}__{feature}" if full else feature


class FeatureCatalog:
    def __init__(self, workspace: Workspace | None = None) -> None:
        self.workspace = resolve_workspace(workspace)
        self.store = self.workspace.stores.features

    # ------------------------------------------------------------------ plan / apply
    def plan(self, definitions: Iterable[Definition], *,
             base_dir: str | Path | None = None) -> FeaturePlan:
        """What ``apply`` would register: each definition, created, updated or unchanged.
        Checks every definition first (sources readable, columns present, references known)
        and raises InvalidInput listing every problem."""
        ordered = self._prepare(definitions, Path(base_dir or Path.cwd()))
        return FeaturePlan(tuple(self._plan_item(d) for d in ordered))

    def apply(self, definitions: Iterable[Definition], *,
              base_dir: str | Path | None = None, actor: str | None = None) -> FeaturePlan:
        """Register the changed definitions (each a new version) and return the plan, with
        the versions now current."""
        ordered = self._prepare(definitions, Path(base_dir or Path.cwd()))
        items = []
        for definition in ordered:
            item = self._plan_item(definition)
            if item.action != "unchanged":
                record = self.store.register_definition(
                    definition.kind, definition.name, definition.digest, definition.spec(),
                    actor=actor)
                item = PlanItem(item.kind, item.name, item.action, record.version, item.changes)
            items.append(item)
        return FeaturePlan(tuple(items), applied=True)

    def _plan_item(self, definition: Definition) -> PlanItem:
        try:
            current = self.store.get_definition(definition.kind, definition.name)
        except NotFound:
            return PlanItem(definition.kind, definition.name, "create", None)
        if current.digest == definition.digest:
            return PlanItem(definition.kind, definition.name, "unchanged", current.version)
        new = definition.spec()
        changed = tuple(sorted(k for k in {*new, *current.spec}
                               if new.get(k) != current.spec.get(k)))
        return PlanItem(definition.kind, definition.name, "update", current.version, changed)

    def _prepare(self, definitions: Iterable[Definition], base_dir: Path) -> list[Definition]:
        """Entities, then views, then on-demand views: checked, paths made absolute, each
        name once. Entities a view names are included."""
        if isinstance(definitions, Entity | FeatureView | OnDemandFeatureView):
            definitions = [definitions]
        by_key: dict[tuple[str, str], Definition] = {}
        problems: list[str] = []

        def add(definition: Definition) -> None:
            key = (definition.kind, definition.name)
            other = by_key.get(key)
            if other is not None and other.digest != definition.digest:
                problems.append(f"{_WORDS[definition.kind]} {definition.name!r} is declared "
                                "twice, differently")
            by_key[key] = definition

        for definition in definitions:
            if isinstance(definition, FeatureView):
                for entity in definition.entities:
                    add(entity)
                source = definition.source
                if definition.dataset_source is None and not Path(source).expanduser().is_absolute():
                    definition = definition.with_source(str((base_dir / source).resolve()))
                add(definition)
            elif isinstance(definition, Entity | OnDemandFeatureView):
                add(definition)
            else:
                problems.append(f"{definition!r} is not an Entity, FeatureView or "
                                "OnDemandFeatureView")
        views = {name: d for (kind, name), d in by_key.items() if isinstance(d, FeatureView)}
        for (kind, name), definition in by_key.items():
            other_kind = {"feature_view": "on_demand", "on_demand": "feature_view"}.get(kind)
            if other_kind and ((other_kind, name) in by_key or self._registered(other_kind, name)):
                problems.append(f"{_WORDS[kind]} {name!r}: a {_WORDS[other_kind]} has that "
                                "name; views and on-demand views share one namespace")
            if isinstance(definition, FeatureView):
                problems.extend(self._check_source(definition))
            elif isinstance(definition, OnDemandFeatureView):
                for ref in definition.inputs:
                    view_name, feature = split_feature_ref(ref)
                    view = views.get(view_name) or self._registered_view(view_name)
                    if view is None:
                        problems.append(f"on-demand view {name!r}: input {ref!r} names no "
                                        "feature view (declare it or apply it first)")
                    elif feature not in view.features:
                        problems.append(f"on-demand view {name!r}: feature view "
                                        f"{view_name!r} has no feature {feature!r} (it has "
                                        f"{', '.join(view.features)})")
        if problems:
            raise InvalidInput("; ".join(problems))
        order = {"entity": 0, "feature_view": 1, "on_demand": 2}
        return [by_key[k] for k in sorted(by_key, key=lambda k: (order[k[0]], k[1]))]

    def _check_source(self, view: FeatureView) -> list[str]:
        try:
            if view.dataset_source is not None:
                from ratchet.features.sources import view_files

                scan = view_files(view, self.workspace)
            else:
                scan = SourceScan(view.name, source_path_files(view.source, view=view.name))
            columns = set(source_columns(scan)) if scan.all_files else None
        except (InvalidInput, NotFound) as exc:
            return [str(exc)]
        if columns is None:
            return [f"feature view {view.name!r}: its source {view.source!r} holds no files"]
        needed = [*view.join_keys, view.timestamp_field,
                  *([view.created_timestamp_field] if view.created_timestamp_field else []),
                  *view.features]
        missing = [c for c in needed if c not in columns]
        if missing:
            return [f"feature view {view.name!r}: its source {view.source!r} has no column "
                    f"{', '.join(map(repr, missing))} (it has {', '.join(sorted(columns))})"]
        return []

    def _registered(self, kind: str, name: str) -> bool:
        try:
            self.store.get_definition(kind, name)
        except NotFound:
            return False
        return True

    def _registered_view(self, name: str) -> FeatureView | None:
        try:
            return FeatureView.from_spec(self.store.get_definition("feature_view", name).spec)
        except NotFound:
            return None

    # ------------------------------------------------------------------ reading
    def entity(self, name: str, version: int | None = None) -> tuple[Entity, int]:
        record = self.store.get_definition("entity", name, version)
        return Entity.from_spec(record.spec), record.version

    def view(self, name: str, version: int | None = None) -> tuple[FeatureView, int]:
        """A registered feature view (the latest version without ``version``)."""
        record = self.store.get_definition("feature_view", name, version)
        return FeatureView.from_spec(record.spec), record.version

    def on_demand(self, name: str, version: int | None = None
                  ) -> tuple[OnDemandFeatureView, int]:
        """A registered on-demand view, with the code this process imported for it: the
        code's digest must be the registered one (the same code at training and serving)."""
        record = self.store.get_definition("on_demand", name, version)
        candidates = loaded_versions(name)
        loaded = next((c for c in candidates if c.digest == record.digest),
                      candidates[0] if candidates else None)
        if loaded is None:
            raise InvalidInput(
                f"on-demand view {name!r} is registered (its function is "
                f"{record.spec.get('function')}) but its code is not loaded in this process: "
                "import the module that declares it (ratchet never loads code from the "
                "metadata store)")
        if loaded.digest != record.digest:
            raise Conflict(
                f"the code of on-demand view {name!r} loaded here ({loaded.target}) differs "
                f"from its registered version {record.version}: run `ratchet features apply` "
                "to register it, or load the code that was registered")
        return loaded, record.version

    def definitions(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The latest version of every registered definition, as plain records."""
        return [{"kind": r.kind, "name": r.name, "version": r.version, "digest": r.digest,
                 "created_at": r.created_at, "spec": r.spec}
                for r in self.store.list_definitions(kind)]

    # ------------------------------------------------------------------ resolving
    def resolve(self, refs: Sequence[str], *, full_feature_names: bool = False
                ) -> FeatureSelection:
        """What ``refs`` ("view:feature", or "view" for all of a view's features) need."""
        if isinstance(refs, str) or not isinstance(refs, Sequence) or not refs:
            raise InvalidInput("features must be a non-empty list of 'view:feature' "
                               f"references, got {refs!r}")
        views: dict[str, tuple[FeatureView, int, list[str]]] = {}
        demands: dict[str, tuple[OnDemandFeatureView, int, list[str]]] = {}
        requested: list[str] = []

        def fetch(view_name: str, feature: str | None, ref: str) -> list[str]:
            if view_name not in views:
                view, version = self.view(view_name)
                views[view_name] = (view, version, [])
            view, _version, chosen = views[view_name]
            wanted = list(view.features) if feature is None else [feature]
            for f in wanted:
                if f not in view.features:
                    raise NotFound(f"feature reference {ref!r}: feature view {view_name!r} "
                                   f"has no feature {f!r} (it has {', '.join(view.features)})")
                if f not in chosen:
                    chosen.append(f)
            return [_column_name(view_name, f, full_feature_names) for f in wanted]

        kinds: dict[str, str] = {}  # one catalog read per view name, not per ref
        for ref in refs:
            view_name, feature = split_feature_ref(ref)
            if view_name not in kinds:
                kinds[view_name] = self._kind_of(view_name, ref)
            kind = kinds[view_name]
            if kind == "feature_view":
                requested.extend(fetch(view_name, feature, ref))
                continue
            if view_name not in demands:
                od, version = self.on_demand(view_name)
                demands[view_name] = (od, version, [])
                for input_ref in od.inputs:
                    fetch(*split_feature_ref(input_ref), input_ref)
            od, _version, chosen = demands[view_name]
            wanted = list(od.features) if feature is None else [feature]
            for f in wanted:
                if f not in od.features:
                    raise NotFound(f"feature reference {ref!r}: on-demand view {view_name!r} "
                                   f"has no feature {f!r} (it has {', '.join(od.features)})")
                if f not in chosen:
                    chosen.append(f)
                requested.append(_column_name(view_name, f, full_feature_names))

        view_selections = tuple(
            ViewSelection(view, version, tuple(chosen),
                          tuple(_column_name(name, f, full_feature_names) for f in chosen))
            for name, (view, version, chosen) in views.items())
        od_selections = []
        for name, (od, version, chosen) in demands.items():
            inputs = {}
            for input_ref in od.inputs:
                view_name, feature = split_feature_ref(input_ref)
                assert feature is not None  # checked when the view was declared
                inputs[_column_name(view_name, feature, full_feature_names)] = feature
            if len(set(inputs.values())) < len(inputs):
                raise InvalidInput(f"on-demand view {name!r}: two inputs have the same feature "
                                   "name; its function sees inputs by feature name")
            od_selections.append(OnDemandSelection(
                od, version, tuple(chosen),
                tuple(_column_name(name, f, full_feature_names) for f in chosen), inputs))
        columns = tuple(dict.fromkeys(requested))
        fetched = [c for s in view_selections for c in s.columns]
        hidden = tuple(c for c in fetched if c not in columns)
        keys: list[str] = []
        for selection in view_selections:
            keys.extend(k for k in selection.view.join_keys if k not in keys)
        request_fields: list[str] = []
        for od_selection in od_selections:
            request_fields.extend(f for f in od_selection.view.request
                                  if f not in request_fields)
        produced = fetched + [c for s in od_selections for c in s.columns]
        every = [*keys, *request_fields, *produced]
        clashes = sorted({c for c in every if every.count(c) > 1})
        if clashes:
            raise InvalidInput(f"features {', '.join(map(repr, clashes))} would be two columns "
                               "of the same name (a feature in two views, or a feature named "
                               "like a key or request field): pass full_feature_names=True "
                               "for 'view__feature' columns")
        return FeatureSelection(tuple(refs), view_selections, tuple(od_selections), columns,
                                tuple(keys), tuple(request_fields), hidden,
                                full_feature_names)

    def _kind_of(self, name: str, ref: str) -> str:
        for kind in ("feature_view", "on_demand"):
            if self._registered(kind, name):
                return kind
        raise NotFound(f"feature reference {ref!r}: no feature view or on-demand view "
                       f"{name!r} is registered (declare it and run `ratchet features apply`)")

    def __repr__(self) -> str:
        return f"FeatureCatalog({self.workspace!r})"
