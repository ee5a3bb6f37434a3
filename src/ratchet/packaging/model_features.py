"""The feature-store inputs of a packaged model: the ``features`` section of its manifest.

A model trained on ``ratchet.features.training_set(entity_df, features=[...])`` is logged
with the same references (``ratchet.log_model(model, "eta", features=[...])``). Its
manifest then says what a request must carry — the entity keys of the views it reads and
the request fields of its on-demand views — and which definition versions it was logged
against, so that a server can take entity keys only, fetch the rest from the online store
and notice a definition that changed since (``ratchet.serving.feature_lookup``).

This module holds data only: it reads definitions through a ``lookup`` the caller gives
(the registry passes the workspace's feature-definition store), so packaging does not
depend on the feature store's code. The server resolves the references again through
``FeatureCatalog.resolve`` (the one home of the resolution rules) and refuses a model
whose keys or request fields differ from what its manifest recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ratchet.errors import InvalidInput, NotFound

FEATURE_VIEW, ON_DEMAND = "feature_view", "on_demand"
DEFINITION_KINDS = (FEATURE_VIEW, ON_DEMAND)
MAX_REFS = 1000

# lookup(kind, name) -> (version, spec) of the latest registered definition; NotFound if
# there is none.
DefinitionLookup = Callable[[str, str], tuple[int, Mapping[str, Any]]]


def split_ref(ref: object, where: str = "features") -> tuple[str, str | None]:
    """``"view:feature"`` → (view, feature); ``"view"`` → (view, None)."""
    if not isinstance(ref, str) or not ref.strip() or len(ref) > 512:
        raise InvalidInput(f"{where}: a feature reference is 'view:feature' or 'view', "
                           f"got {ref!r}")
    view, sep, feature = ref.partition(":")
    if not view or (sep and (not feature or ":" in feature)):
        raise InvalidInput(f"{where}: feature reference {ref!r} is not 'view:feature' or "
                           "'view'")
    return view, (feature if sep else None)


@dataclass(frozen=True)
class ModelFeatures:
    """What a model reads from the feature store.

    ``refs``: the feature references it was trained on, as given to ``training_set``;
    ``full_feature_names``: whether its columns are named ``view__feature``;
    ``entity_keys`` and ``request_fields``: what a request carries instead of the
    features; ``definitions``: the (kind, name, version) of each definition read, at
    logging time.
    """

    refs: tuple[str, ...]
    full_feature_names: bool = False
    entity_keys: tuple[str, ...] = ()
    request_fields: tuple[str, ...] = ()
    definitions: tuple[tuple[str, str, int], ...] = ()

    def __post_init__(self) -> None:
        where = "model features"
        if not self.refs:
            raise InvalidInput(f"{where}: give at least one feature reference")
        if len(self.refs) > MAX_REFS:
            raise InvalidInput(f"{where}: {len(self.refs)} references, over the limit of "
                               f"{MAX_REFS}")
        for ref in self.refs:
            split_ref(ref, where)
        repeated = sorted({r for r in self.refs if self.refs.count(r) > 1})
        if repeated:
            raise InvalidInput(f"{where}: {', '.join(map(repr, repeated))} given more than once")
        if not isinstance(self.full_feature_names, bool):
            raise InvalidInput(f"{where}: full_feature_names must be true or false")
        for what, names in (("entity_keys", self.entity_keys),
                            ("request_fields", self.request_fields)):
            if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
                raise InvalidInput(f"{where}: {what} must be distinct column names, got "
                                   f"{list(names)!r}")
        for item in self.definitions:
            if (len(item) != 3 or item[0] not in DEFINITION_KINDS
                    or not isinstance(item[1], str) or not isinstance(item[2], int)
                    or isinstance(item[2], bool)):
                raise InvalidInput(f"{where}: a definition is [kind, name, version] with "
                                   f"kind one of {', '.join(DEFINITION_KINDS)}, got {item!r}")

    @property
    def request_columns(self) -> tuple[str, ...]:
        """What a request carries: the entity keys, then the request fields."""
        return (*self.entity_keys, *(f for f in self.request_fields
                                     if f not in self.entity_keys))

    def version_of(self, kind: str, name: str) -> int | None:
        """The version of a definition when the model was logged (None: not recorded)."""
        for k, n, v in self.definitions:
            if k == kind and n == name:
                return v
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"refs": list(self.refs), "full_feature_names": self.full_feature_names,
                "entity_keys": list(self.entity_keys),
                "request_fields": list(self.request_fields),
                "definitions": [list(d) for d in self.definitions]}

    @classmethod
    def from_dict(cls, data: Any, where: str = "model manifest") -> ModelFeatures:
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{where}: 'features' must be an object")
        refs = data.get("refs")
        if not isinstance(refs, list):
            raise InvalidInput(f"{where}: 'features.refs' must be a list of feature "
                               "references")
        lists: dict[str, tuple[Any, ...]] = {}
        for key in ("entity_keys", "request_fields", "definitions"):
            value = data.get(key, [])
            if not isinstance(value, list):
                raise InvalidInput(f"{where}: 'features.{key}' must be a list")
            lists[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        try:
            return cls(tuple(refs), data.get("full_feature_names", False),
                       lists["entity_keys"], lists["request_fields"], lists["definitions"])
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None


def model_features(refs: Sequence[str] | str, *, full_feature_names: bool = False,
                   lookup: DefinitionLookup) -> ModelFeatures:
    """The features section for a model trained on ``refs``: each reference's view looked
    up (a feature view, else an on-demand view), its features checked, and the entity keys
    and request fields a request will need collected, in the order the views name them."""
    if isinstance(refs, str) or not isinstance(refs, Iterable):
        raise InvalidInput(f"features must be a list of 'view:feature' references, got "
                           f"{refs!r}")
    refs = tuple(refs)
    ModelFeatures(refs)  # the references' own checks, before any lookup
    keys: list[str] = []
    request: list[str] = []
    definitions: dict[tuple[str, str], int] = {}

    def view(name: str, ref: str) -> Mapping[str, Any]:
        version, spec = _lookup(lookup, FEATURE_VIEW, name, ref)
        definitions[(FEATURE_VIEW, name)] = version
        for entity in spec.get("entities") or ():
            keys.extend(k for k in entity.get("join_keys") or () if k not in keys)
        return spec

    for ref in refs:
        name, feature = split_ref(ref)
        try:
            spec = view(name, ref)
        except NotFound:
            version, spec = _lookup(lookup, ON_DEMAND, name, ref, last=True)
            definitions[(ON_DEMAND, name)] = version
            request.extend(f for f in spec.get("request") or () if f not in request)
            for source in spec.get("inputs") or ():
                view(split_ref(source)[0], source)
        if feature is not None and feature not in (spec.get("features") or ()):
            raise InvalidInput(f"feature reference {ref!r}: view {name!r} has no feature "
                               f"{feature!r} (it has: {', '.join(spec.get('features') or ())})")
    return ModelFeatures(refs, full_feature_names, tuple(keys),
                         tuple(f for f in request if f not in keys),
                         tuple((k, n, v) for (k, n), v in definitions.items()))


def _lookup(lookup: DefinitionLookup, kind: str, name: str, ref: str, *, last: bool = False
            ) -> tuple[int, Mapping[str, Any]]:
    try:
        version, spec = lookup(kind, name)
    except NotFound:
        if not last:
            raise
        raise NotFound(f"feature reference {ref!r}: no feature view or on-demand view "
                       f"{name!r} is registered; declare it and run `ratchet features "
                       "apply` before logging the model") from None
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"the stored definition of {kind} {name!r} is not an object")
    return version, spec


__all__ = ["DefinitionLookup", "ModelFeatures", "model_features", "split_ref"]
