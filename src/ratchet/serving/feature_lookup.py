"""Serving a model from entity keys: the server fetches its features.

A model logged with ``features=[...]`` (its manifest's ``features`` section,
``ratchet.packaging.model_features``) is called with the entity keys of the views it
reads, the request fields of its on-demand views and any other input its signature names
that no feature provides. Per request the server:

1. checks those columns (present, one value per row, keys an integer or a string),
2. reads every view's entry of every row's entity from the workspace's online store in
   one call (``ratchet.features.online``: the only I/O on the request path),
3. runs the on-demand views on the fetched values and request fields,
4. builds the model's input columns in signature order and validates them against the
   signature as for any model (a null feature the training data never had is a 422 that
   names the entity which has no features), and
5. hands the validated columns on; the prediction log records them with the keys, the
   request fields and each view's age in seconds (``<view>__age_s``).

Everything else is resolved once, when the model version is loaded
(:class:`FeatureLookup`): the references through ``FeatureCatalog.resolve`` (the rule the
training set and the online lookup share), the on-demand code (imported by the operator,
``ratchet serve --features-module``, through ``features.definition_modules``; its digest
must be the one registered for the version the model was logged with), the online store's connection. A view registered in a newer
version since the model was logged is served (the online store holds what its latest
materialization wrote) with a warning; an on-demand view whose code changed is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.columns import NULL, TYPE, number_from_text
from ratchet.errors import (
    BadRequest,
    Conflict,
    InvalidInput,
    ModelFailed,
    NotFound,
    RatchetError,
    RequestInvalid,
    StoreUnavailable,
)
from ratchet.features.online import AGE_SUFFIX  # "<view>__age_s": a view's logged age
from ratchet.serving.request_formats import CSV_NULLS, MISSING, ParsedRequest, ParseLimits
from ratchet.serving.request_validation import (
    REJECT,
    RequestValidator,
    ValidatedRequest,
    ValidationPolicy,
    _check_plain,
    _Problems,
    _shown_names,
)

if TYPE_CHECKING:
    from ratchet.features.catalog import FeatureSelection
    from ratchet.features.definitions import FeatureView
    from ratchet.packaging.model_features import ModelFeatures
    from ratchet.packaging.signature import Signature
    from ratchet.workspace import Workspace

log = logging.getLogger(__name__)

_EXTRA_SLACK = 64


@dataclass
class Fetched:
    """The features of one request: columns (one value per row), each view's age in
    seconds per row (None where the entity has no entry), and which rows' entities each
    view did not have."""

    columns: dict[str, list[Any]]
    ages: dict[str, list[float | None]]
    missing: dict[str, list[bool]]


class FeatureLookup:
    """A model version's features, resolved once at load; :meth:`fetch` per request."""

    def __init__(self, model: str, features: ModelFeatures, signature: Signature,
                 workspace: Workspace) -> None:
        from ratchet.features.catalog import FeatureCatalog
        from ratchet.features.online import OnlineLookup
        from ratchet.features.online_connections import shared_online_store

        self.model = model
        self.features = features
        try:
            selection = FeatureCatalog(workspace).resolve(
                list(features.refs), full_feature_names=features.full_feature_names)
        except (NotFound, Conflict) as exc:  # nothing a retry fixes: refuse to load
            raise InvalidInput(f"model {model} reads features that cannot be served: {exc}"
                               ) from None
        except InvalidInput as exc:  # e.g. an on-demand view's code not imported here
            raise InvalidInput(
                f"model {model} reads features that cannot be served: {exc}. A server runs "
                "only the on-demand code of the modules it is started with: `ratchet serve "
                "--features-module MODULE_OR_FILE`") from None
        self.selection = selection
        self._check_against_manifest(selection)
        produced = {*(c for v in selection.views for c in v.columns),
                    *(c for o in selection.on_demand for c in o.columns)}
        given = [*selection.entity_keys,
                 *(f for f in selection.request_fields if f not in selection.entity_keys)]
        # Inputs of the signature no feature provides come with the request (e.g. a
        # distance the client knows).
        given += [n for n in signature.input_names if n not in produced and n not in given]
        self.request_columns: tuple[str, ...] = tuple(given)
        self.entity_keys = selection.entity_keys
        self.request_fields = tuple(f for f in selection.request_fields
                                    if f not in selection.entity_keys)
        self.age_columns = tuple(f"{v.view.name}{AGE_SUFFIX}" for v in selection.views)
        # Features fetched that the model does not take (a whole view was referenced):
        # logged with the vector, not given to the model.
        inputs = set(signature.input_names)
        self.unused_columns = tuple(c for c in selection.columns if c not in inputs)
        self._needs = (*self.entity_keys, *self.request_fields)
        self.store_uri = workspace.settings.online_store_uri
        try:
            self.online = OnlineLookup(selection, shared_online_store(self.store_uri))
        except InvalidInput as exc:  # an offline-only view, an online store URI wrong
            raise InvalidInput(f"model {model} reads features that cannot be served: {exc}"
                               ) from None
        self._workspace = workspace
        self._key_kinds: dict[str, str] | None = None

    def _check_against_manifest(self, selection: FeatureSelection) -> None:
        """The resolution now must ask for what the manifest recorded at logging: the same
        keys and request fields, the same on-demand code; a newer view version warns."""
        recorded = self.features
        if recorded.entity_keys and set(recorded.entity_keys) != set(selection.entity_keys):
            raise InvalidInput(
                f"model {self.model} was logged with entity keys "
                f"{', '.join(recorded.entity_keys)}; its features now need "
                f"{', '.join(selection.entity_keys)} (a view's entities changed): re-train "
                "and log the model on the current definitions")
        if recorded.request_fields and (set(recorded.request_fields)
                                        != set(selection.request_fields)):
            raise InvalidInput(
                f"model {self.model} was logged with request fields "
                f"{', '.join(recorded.request_fields)}; its on-demand views now take "
                f"{', '.join(selection.request_fields) or 'none'}: re-train and log the "
                "model on the current definitions")
        for od in selection.on_demand:
            logged = recorded.version_of("on_demand", od.view.name)
            if logged is not None and logged != od.version:
                raise InvalidInput(
                    f"model {self.model} was logged with on-demand view {od.view.name!r} "
                    f"version {logged}; the code loaded here is registered as version "
                    f"{od.version}: serve it with the code of version {logged}, or re-train "
                    "and log the model with the current code")
        for view in selection.views:
            logged = recorded.version_of("feature_view", view.view.name)
            if logged is not None and logged != view.version:
                log.warning("model %s was logged with feature view %r version %d; version %d "
                            "is registered now and its materialized values are served",
                            self.model, view.view.name, logged, view.version)

    def key_kinds(self) -> dict[str, str]:
        """Each entity key's kind in the views' sources: "integer", "string" or "unknown"
        (read once, at load: requests' keys are checked against it, and the Open Inference
        Protocol's metadata says it)."""
        if self._key_kinds is None:
            kinds: dict[str, str] = {}
            for chosen in self.selection.views:
                try:
                    types = _source_types(chosen.view, self._workspace)
                except Exception as exc:  # unreadable now: keys are not checked by kind
                    log.warning("model %s: the key types of feature view %r are unknown: %s",
                                self.model, chosen.view.name, exc)
                    types = {}
                for key in chosen.view.join_keys:
                    kind = types.get(key, "unknown")
                    if kinds.get(key, kind) != kind:
                        kind = "unknown"
                    kinds[key] = kind
            self._key_kinds = kinds
        return self._key_kinds

    # ------------------------------------------------------------------ per request
    def fetch(self, given: Mapping[str, Sequence[Any]], n: int, *,
              now_us: int | None = None) -> Fetched:
        """The features of ``n`` rows whose keys and request fields are ``given``: one
        read of the online store (``OnlineLookup.get``), then the on-demand views."""
        rows = {name: given[name] for name in self._needs}
        try:
            online = self.online.get(rows, now=now_us)
        except StoreUnavailable:
            raise
        except ModelFailed as exc:
            # An on-demand function raised on this request's data (it ran on the training
            # set): the request's fault as far as the server can tell, a 422, not a 500.
            message = f"the features of model {self.model} cannot be computed from this " \
                      f"request: {exc}"
            raise BadRequest(message, problems=[{"loc": ["body"], "msg": message,
                                                 "type": "on_demand"}]) from None
        except InvalidInput as exc:  # an on-demand view returned something unusable
            raise ModelFailed(f"the features of model {self.model} cannot be computed: "
                              f"{exc}") from exc
        except RatchetError as exc:
            raise StoreUnavailable(f"the online feature store cannot be read: {exc}") from None
        except Exception as exc:  # a driver's own error (a connection refused, a timeout)
            raise StoreUnavailable(
                f"the online feature store cannot be read ({type(exc).__name__}: {exc}); "
                f"model {self.model} needs it for its features") from None
        columns = {c: online.columns[c] for c in online.feature_columns}
        ages = {f"{view}{AGE_SUFFIX}": values for view, values in online.ages.items()}
        missing = {view: [age is None for age in values]
                   for view, values in online.ages.items()}
        return Fetched(columns, ages, missing)

    def describe_missing(self, row: int, fetched: Fetched, given: Mapping[str, Sequence[Any]]
                         ) -> str | None:
        """Which views had no features for the entity of ``row``, for a 422's message."""
        parts = []
        for view in self.selection.views:
            if fetched.missing[view.view.name][row]:
                keys = ", ".join(f"{k}={given[k][row]!r}" for k in view.view.join_keys)
                parts.append(f"feature view {view.view.name!r} has no online features for "
                             f"{keys}")
        return "; ".join(parts) or None


class FeatureRequestValidator:
    """The request validation of a model served from entity keys: the request's keys and
    fields are checked, the features fetched, and the model's columns validated by a
    :class:`RequestValidator` of its signature (the same checks as any model's)."""

    def __init__(self, lookup: FeatureLookup, signature: Signature,
                 policy: ValidationPolicy | None = None, *,
                 allowed_extra: Sequence[str] = ()) -> None:
        self.lookup = lookup
        self.signature = signature
        self.policy = policy or ValidationPolicy()
        self.allowed_extra = frozenset(allowed_extra)
        # What a request carries (the body parsers name columns by these).
        self.names = list(lookup.request_columns)
        self._names_set = frozenset(self.names)
        inputs = set(signature.input_names)
        logged = [*(c for c in self.names if c not in inputs), *lookup.unused_columns,
                  *lookup.age_columns]
        self._key_kinds = lookup.key_kinds()  # read once, at load
        self.inner = RequestValidator(signature, self.policy,
                                      allowed_extra=(*allowed_extra, *logged))
        self._plain = [f for f in lookup.request_fields if f not in inputs]
        self.parse_limits = ParseLimits(
            max_columns=len(self.names) + len(self.allowed_extra) + _EXTRA_SLACK,
            max_rows=self.policy.max_rows)

    def validate(self, request: ParsedRequest, *, now_ms: int | None = None
                 ) -> ValidatedRequest:
        """``now_ms``: the time the features are read as of (the request's arrival, which
        the prediction log records); None: now."""
        n = request.n_rows
        if n > self.policy.max_rows:
            raise BadRequest(f"{n} rows in one request; the limit is {self.policy.max_rows} "
                             "(send smaller requests or use `ratchet predict` for batches)",
                             status=413)
        if n == 0:
            raise BadRequest("the request has no rows")
        given = dict(request.columns)
        problems = _Problems()
        for key in self.lookup.entity_keys:
            values = given.get(key)
            if values is None:
                problems.add(None, key, "missing",
                             f"missing: the entity key of the model's features (send "
                             f"{_shown_names(self.lookup.entity_keys)})")
                continue
            given[key] = _check_keys(values, key, problems, text=request.text_cells,
                                     kind=self._key_kinds.get(key, "unknown"))
        for field in self.lookup.request_fields:
            values = given.get(field)
            if values is None:
                problems.add(None, field, "missing", "missing: a request field of the "
                             "model's on-demand features")
                continue
            if request.text_cells:  # CSV cells: read as a CSV reader would (numbers, nulls)
                values = given[field] = [_from_text(v) for v in values]
            if field in self._plain:  # else the signature checks it
                given[field] = _check_plain(values, field, problems)
        for name in given:
            if name in self._names_set or name in self.allowed_extra:
                continue
            if self.policy.extra_columns == REJECT:
                problems.add(None, name, "extra", "not an input of the model (send: "
                             f"{_shown_names(self.names)})")
        if problems.total:
            raise RequestInvalid(problems.items, problems.total)
        fetched = self.lookup.fetch(  # StoreUnavailable (503), BadRequest (422)
            given, n, now_us=None if now_ms is None else now_ms * 1000)
        columns: dict[str, Any] = {n: v for n, v in given.items()
                                   if n in self._names_set or n in self.allowed_extra}
        columns.update(fetched.columns)
        columns.update(fetched.ages)
        try:
            return self.inner.validate(ParsedRequest(columns, n,
                                                     text_cells=request.text_cells))
        except RequestInvalid as exc:
            raise self._name_entities(exc, fetched, given) from None

    def _name_entities(self, exc: RequestInvalid, fetched: Fetched,
                       given: Mapping[str, Sequence[Any]]) -> RequestInvalid:
        """A problem in a fetched column of a row whose entity had no features says so."""
        fetched_columns = set(fetched.columns)
        problems = []
        for problem in exc.problems:
            loc = problem.get("loc") or []
            if (len(loc) == 4 and isinstance(loc[2], int) and loc[3] in fetched_columns):
                why = self.lookup.describe_missing(loc[2], fetched, given)
                if why is not None:
                    problem = {**problem, "msg": f"{problem['msg']} ({why})"}
            problems.append(problem)
        return RequestInvalid(problems, exc.total)


def _source_types(view: FeatureView, workspace: Workspace) -> dict[str, str]:
    """Column -> "integer" / "string" / "other" of a view's source rows (DuckDB's view)."""
    from ratchet.data.duckdb_connection import duckdb_connection
    from ratchet.features.sources import view_files

    scan = view_files(view, workspace)
    if not scan.all_files:
        return {}
    with duckdb_connection(memory_limit="256MB") as con:
        described = con.execute(f"DESCRIBE SELECT * FROM {scan.sql(view.join_keys)}").fetchall()
    kinds = {}
    for name, kind, *_ in described:
        kind = str(kind).upper()
        kinds[str(name)] = ("integer" if "INT" in kind and kind != "INTERVAL"
                            else "string" if kind == "VARCHAR" else "other")
    return kinds


def _from_text(value: Any) -> Any:
    if type(value) is not str:
        return value
    return None if value in CSV_NULLS else number_from_text(value)


def _check_keys(values: Any, name: str, problems: _Problems, *, text: bool,
                kind: str = "unknown") -> list[Any]:
    """Entity key values: one per row, each of the kind the views' sources hold
    (``kind``: "integer" or "string"; an integer or a string when not known). A CSV cell
    is read as an integer when the key is one (or, not known, when it spells one)."""
    from ratchet.features.online_store import encode_key

    if not isinstance(values, list):  # an array (batch scoring): plain Python values
        tolist = getattr(values, "tolist", None)
        values = tolist() if callable(tolist) else list(values)
    expected = {"integer": "an integer", "string": "a string"}.get(kind,
                                                                   "an integer or a string")
    source = f" (the feature views' sources hold {kind} {name} values)" if kind in (
        "integer", "string") else ""
    out = values
    for i, v in enumerate(values):
        if v is MISSING:
            problems.add(i, name, "missing", "missing in this row")
            continue
        if text and type(v) is str:
            if v in CSV_NULLS:
                v = None
            elif kind != "string" and v.lstrip("-").isdigit() and str(int(v)) == v:
                v = int(v)
            if out is values:
                out = list(values)
            out[i] = v
        if v is None or (isinstance(v, float) and v != v):
            problems.add(i, name, NULL, "null: an entity key is needed in every row")
            continue
        integral = (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer())
        fits = {"integer": integral, "string": isinstance(v, str)}.get(
            kind, integral or isinstance(v, str))
        if not fits:
            shown = type(v).__name__ if isinstance(v, list | dict) else repr(v)
            problems.add(i, name, TYPE, f"expected {expected}{source}, got {shown}")
            continue
        try:
            encode_key([v])
        except InvalidInput as exc:  # e.g. an infinite float
            problems.add(i, name, TYPE, str(exc))
    return out


__all__ = ["AGE_SUFFIX", "FeatureLookup", "FeatureRequestValidator", "Fetched"]
