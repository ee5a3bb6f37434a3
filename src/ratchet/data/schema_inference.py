"""Schema inference: propose a pandera schema from data or a stored profile.

A column's kind comes from the column contract (``ratchet.columns``: the dtype name of the
data, its family); the checks proposed for it (ranges, categories, uniqueness) are
inference's own. pandas and pandera are imported inside the functions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.columns import BOOLEAN, CATEGORY, DATETIME, FLOAT, INTEGER, TEXT, dtype_name, family
from ratchet.data.frames import to_pandas
from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa


@dataclass(frozen=True)
class _ColumnStats:
    """What inference needs to know about one column, from data or from a profile."""

    name: Any
    dtype: Any  # pandas dtype, or None when unknown (any dtype accepted)
    kind: str  # int | float | bool | datetime | string | category | other
    semantic: str  # lower-cased semantic type from a profile, "" if unknown
    non_null: int
    nulls: int
    distinct: int | None
    distinct_exact: bool
    min: Any
    max: Any
    values: tuple[Any, ...] | None  # every distinct non-null value, when few and known


def infer_schema(
    data: Any,
    *,
    name: str | None = None,
    max_categories: int = 50,
    range_margin: float = 0.0,
) -> pa.DataFrameSchema:
    """Propose a pandera schema for ``data`` for a user to review, edit and save.

    ``data`` is a pandas DataFrame, a pyarrow Table, a polars DataFrame, or a dataset
    profile (an object whose ``columns`` have ``name, arrow_type, semantic_type, count,
    nulls, distinct, distinct_exact, min, max, top``), so a stored profile yields a
    schema without re-reading the data (a dataset version is read through its
    ``profile``). As in ``ratchet.data.profile``, ``count`` is the number of rows and
    ``top`` the most frequent values ((value, count) pairs), complete when
    ``other_count`` is 0 or it lists ``distinct`` values. A bare profile types a
    dictionary (pandas ``category``) column as its value type; a dataset version's stored
    Arrow types (``.schema``) correct that.

    Per column it proposes: the dtype pandas gives that column (for a profile: what
    ``Table.to_pandas()`` gives the Arrow type), ``nullable`` only if nulls were seen, an
    ``in_range`` check for numbers and datetimes (widened by ``range_margin`` * (max -
    min)), an ``isin`` check for string / categorical columns with at most
    ``max_categories`` distinct values that repeat, and ``unique=True`` for integer and
    string columns whose values are all distinct (exactly counted, more than one).
    Free text gets no checks. The schema is lenient about extra columns (strict=False)
    and never coerces (coerce=False).
    """
    import pandera.pandas as pa

    if (
        isinstance(max_categories, bool)
        or not isinstance(max_categories, int)
        or max_categories < 0
    ):
        raise InvalidInput(
            f"infer_schema: max_categories must be an int >= 0, got {max_categories!r}"
        )
    if not isinstance(range_margin, int | float) or not range_margin >= 0:
        raise InvalidInput(
            f"infer_schema: range_margin must be a number >= 0, got {range_margin!r}"
        )

    # A dataset version carries its profile: infer from it without reading the data.
    profile = data if _is_profile(data) else _as_profile(getattr(data, "profile", None))
    if profile is not None:
        stats = _stats_from_profile(profile, max_categories, _stored_types(data))
        default_name = getattr(data, "name", None) or getattr(profile, "name", None)
    else:
        stats = _stats_from_frame(to_pandas(data, where="infer_schema"), max_categories)
        default_name = None
    columns = {s.name: _propose_column(s, max_categories, float(range_margin)) for s in stats}
    schema_name = name or (default_name if isinstance(default_name, str) else None) or "inferred"
    return pa.DataFrameSchema(columns, name=schema_name, coerce=False, strict=False)


def _propose_column(s: _ColumnStats, max_categories: int, margin: float) -> pa.Column:
    import pandera.pandas as pa

    checks: list[pa.Check] = []
    free_text = "text" in s.semantic
    bounds = _range(s, margin)
    if bounds is not None:
        checks.append(pa.Check.in_range(*bounds))

    categorical = (
        s.kind in ("string", "category")
        and not free_text
        and s.values is not None
        and 0 < len(s.values) <= max_categories
        # all-distinct strings are ids or text, not categories (unless a profile says so)
        and (s.kind == "category" or "categor" in s.semantic or len(s.values) < s.non_null)
    )
    if categorical:
        assert s.values is not None
        checks.append(pa.Check.isin(_sorted(s.values)))

    # Floats and timestamps are distinct by accident, not by contract: no unique for them.
    unique = (
        s.kind in ("int", "string")
        and not free_text
        and not categorical
        and s.distinct_exact
        and s.distinct is not None
        and s.distinct == s.non_null
        and s.non_null > 1
    )
    return pa.Column(s.dtype, checks=checks, nullable=s.nulls > 0, unique=unique, coerce=False)


def _range(s: _ColumnStats, margin: float) -> tuple[Any, Any] | None:
    """The in_range bounds for a numeric or datetime column, or None."""
    lo, hi = s.min, s.max
    if lo is None or hi is None or s.kind not in ("int", "float", "datetime"):
        return None
    if s.kind == "datetime":
        import pandas as pd

        try:
            tlo, thi = pd.Timestamp(lo), pd.Timestamp(hi)
        except (TypeError, ValueError):
            return None
        if tlo is pd.NaT or thi is pd.NaT:
            return None
        tz = getattr(s.dtype, "tz", None)
        if tz is not None and tlo.tzinfo is None:
            tlo, thi = tlo.tz_localize(tz), thi.tz_localize(tz)
        pad = (thi - tlo) * margin
        # pandera writes naive datetimes to YAML with whole seconds: round outwards so
        # the saved range still holds every value that was seen.
        return (tlo - pad).floor("s").to_pydatetime(), (thi + pad).ceil("s").to_pydatetime()
    try:
        flo, fhi = float(lo), float(hi)
    except (TypeError, ValueError):
        return None
    if math.isnan(flo) or math.isnan(fhi):
        return None
    if s.kind == "float":
        pad = (fhi - flo) * margin if margin and math.isfinite(fhi - flo) else 0.0
        return flo - pad, fhi + pad
    ilo, ihi = math.floor(flo), math.ceil(fhi)
    if isinstance(lo, int) and isinstance(hi, int):
        ilo, ihi = lo, hi
    elif max(abs(flo), abs(fhi)) >= 2**53:  # a float bound (profile) may be off by an ulp
        ilo, ihi = math.floor(flo - math.ulp(flo)), math.ceil(fhi + math.ulp(fhi))
    if margin:
        pad = math.ceil((ihi - ilo) * margin)
        ilo, ihi = ilo - pad, ihi + pad
        if s.dtype is not None and getattr(s.dtype, "kind", None) in ("i", "u"):
            import numpy as np

            info = np.iinfo(s.dtype)  # beyond the dtype the comparison would overflow
            ilo, ihi = max(ilo, int(info.min)), min(ihi, int(info.max))
    return ilo, ihi


def _stats_from_frame(df: pd.DataFrame, max_categories: int) -> list[_ColumnStats]:
    out = []
    for label in df.columns:
        col = df[label]
        if not hasattr(col, "dtype"):  # duplicate labels give a DataFrame
            raise InvalidInput(f"infer_schema: column {label!r} appears more than once")
        kind = _kind(col)
        nulls = int(col.isna().sum())
        non_null = len(col) - nulls
        lo = hi = None
        distinct: int | None = None
        values: tuple[Any, ...] | None = None
        semantic = ""
        if kind in ("int", "float", "datetime") and non_null:
            lo, hi = _py(col.min()), _py(col.max())
        if kind in ("int", "string", "category"):
            try:
                distinct = int(col.nunique(dropna=True))
            except TypeError:  # unhashable objects
                distinct = None
        if kind in ("string", "category") and distinct is not None and distinct <= max_categories:
            values = tuple(_py(v) for v in col.dropna().unique())
        repeats = values is not None and distinct is not None and distinct < non_null
        if kind == "string" and not repeats and _looks_like_text(col):
            semantic = "text"
        out.append(
            _ColumnStats(
                name=label,
                dtype=col.dtype,
                kind=kind,
                semantic=semantic,
                non_null=non_null,
                nulls=nulls,
                distinct=distinct,
                distinct_exact=True,
                min=lo,
                max=hi,
                values=values,
            )
        )
    return out


_KINDS = {INTEGER: "int", FLOAT: "float", BOOLEAN: "bool", DATETIME: "datetime",
          TEXT: "string"}


def _kind(col: pd.Series) -> str:
    """int | float | bool | datetime | string | category | other: the column contract's
    family of the column's dtype name (``ratchet.columns.dtype_name``)."""
    name = dtype_name(col)
    if name == CATEGORY:
        return "category"
    return _KINDS.get(family(name), "other")


def _looks_like_text(col: pd.Series) -> bool:
    """Free text has spaces in most values; ids and codes do not (sampled: cheap)."""
    sample = col.dropna().head(1000).astype(str)
    return len(sample) > 0 and float(sample.str.contains(" ", regex=False).mean()) >= 0.5


def _is_profile(data: Any) -> bool:
    columns = getattr(data, "columns", None)
    if (
        columns is None
        or isinstance(columns, str)
        or type(data).__module__.startswith(("pandas", "pyarrow", "polars"))
    ):
        return False
    try:
        first = next(iter(columns), None)
    except TypeError:
        return False
    return first is None or (hasattr(first, "arrow_type") and hasattr(first, "nulls"))


def _as_profile(value: Any) -> Any:
    """A profile object, or a profile stored as a dict ({"columns": [{...}, ...]}), or None."""
    if value is None:
        return None
    if isinstance(value, Mapping) and isinstance(value.get("columns"), list):
        from types import SimpleNamespace

        columns = [SimpleNamespace(**c) for c in value["columns"] if isinstance(c, Mapping)]
        value = SimpleNamespace(columns=columns, name=value.get("name"))
    return value if _is_profile(value) else None


def _stored_types(data: Any) -> dict[Any, str]:
    """Column → Arrow type of a dataset version's stored file (``{"name", "type"}`` fields).

    Profiles type a dictionary column as its value type; the stored type says it comes
    back as a pandas ``category``.
    """
    fields = getattr(data, "schema", None)
    if not isinstance(fields, Sequence) or isinstance(fields, str):
        return {}
    return {
        f["name"]: str(f["type"])
        for f in fields
        if isinstance(f, Mapping) and "name" in f and "type" in f
    }


def _stats_from_profile(
    profile: Any, max_categories: int, stored_types: Mapping[Any, str] | None = None
) -> list[_ColumnStats]:
    out = []
    for i, c in enumerate(profile.columns):
        try:
            name = c.name
            nulls = int(c.nulls or 0)
            non_null = int(c.count or 0) - nulls  # count is the number of rows
            distinct = None if c.distinct is None else int(c.distinct)
            exact = bool(c.distinct_exact)
            arrow_type = (stored_types or {}).get(name, c.arrow_type)
        except (AttributeError, TypeError, ValueError) as e:
            raise InvalidInput(f"infer_schema: profile column #{i} is malformed: {e}") from e
        dtype, kind = _dtype_for_arrow(arrow_type, has_nulls=nulls > 0)
        values = None
        top = _top_values(getattr(c, "top", None))
        complete = getattr(c, "other_count", None) == 0 or (
            exact and top is not None and len(top) == distinct
        )
        if top is not None and complete and len(top) <= max_categories:
            values = top  # only when top lists every value
        out.append(
            _ColumnStats(
                name=name,
                dtype=dtype,
                kind=kind,
                semantic=str(getattr(c, "semantic_type", "") or "").lower(),
                non_null=non_null,
                nulls=nulls,
                distinct=distinct,
                distinct_exact=exact,
                min=_py(getattr(c, "min", None)),
                max=_py(getattr(c, "max", None)),
                values=values,
            )
        )
    return out


_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:,\s*tz=(.+))?\]")


def _dtype_for_arrow(arrow_type: Any, *, has_nulls: bool) -> tuple[Any, str]:
    """(pandas dtype, kind) that ``Table.to_pandas()`` gives a column of this Arrow type."""
    import numpy as np
    import pyarrow as pa_

    t: Any = arrow_type
    if not isinstance(t, pa_.DataType):
        text = str(arrow_type).strip()
        m = _TIMESTAMP.fullmatch(text)
        if text.startswith("dictionary<"):
            t = pa_.dictionary(pa_.int32(), pa_.string())
        elif m:
            t = pa_.timestamp(m.group(1), tz=m.group(2))
        else:
            try:
                t = pa_.type_for_alias(text)
            except (ValueError, KeyError):
                return None, "other"  # unknown type: accept any dtype rather than guess
    types = pa_.types
    if types.is_dictionary(t):
        kind = "category"
    elif types.is_boolean(t):
        kind = "bool"
    elif types.is_integer(t):
        kind = "float" if has_nulls else "int"
    elif types.is_floating(t):
        kind = "float"
    elif types.is_timestamp(t):
        kind = "datetime"
    elif types.is_string(t) or types.is_large_string(t) or types.is_string_view(t):
        kind = "string"
    else:
        kind = "other"
    # Arrow has no nullable int / bool in plain to_pandas(): they become float64 / object.
    if has_nulls and types.is_integer(t):
        return np.dtype("float64"), kind
    if has_nulls and types.is_boolean(t):
        return np.dtype("object"), kind
    try:
        dtype = pa_.schema([pa_.field("x", t)]).empty_table().to_pandas()["x"].dtype
    except (pa_.ArrowException, NotImplementedError, TypeError, ValueError):
        return None, kind
    return dtype, kind


def _top_values(top: Any) -> tuple[Any, ...] | None:
    if top is None:
        return None
    if isinstance(top, Mapping):
        return tuple(_py(v) for v in top)
    values = []
    for item in top:
        if isinstance(item, Mapping):
            values.append(_py(item.get("value")))
        elif isinstance(item, Sequence) and not isinstance(item, str | bytes) and item:
            values.append(_py(item[0]))
        else:
            values.append(_py(item))
    return tuple(v for v in values if v is not None)


def _py(value: Any) -> Any:
    """numpy / pandas scalars → plain Python, so YAML can write them; NaN/NaT → None."""
    import pandas as pd

    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return value
    if isinstance(value, pd.Timestamp):
        return value
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    return value


def _sorted(values: Iterable[Any]) -> list[Any]:
    vals = list(values)
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=repr)


__all__ = ["infer_schema"]
