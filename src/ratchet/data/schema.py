"""Data schemas: propose one from data or a stored profile, save it as YAML, load it back.

A schema is a plain pandera ``DataFrameSchema``: ratchet does not invent a validation
engine, it proposes a good first draft and keeps the YAML a user edits honest.

    schema = infer_schema(df, name="churn")      # dtype, nullable, ranges, categories, unique
    save_schema(schema, "schemas/churn.yaml")    # edit it, commit it next to the code
    schema = load_schema("schemas/churn.yaml")

Severity: a check carrying pandera's own ``raise_warning: true`` is a *warning* (recorded
and shown, the step goes on); every other check — and dtype, nullability, uniqueness and
a missing column — is an *error* (fails the step). pandera's YAML keeps ``raise_warning``,
so severity needs no side channel; ``set_severity`` flips it from Python.

pandas and pandera are imported inside the functions so that ``import ratchet`` stays fast.
"""

from __future__ import annotations

import copy
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.atomic import write_atomic
from ratchet.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa

SEVERITIES = ("error", "warn")

# Written above the pandera YAML by save_schema: the file is meant to be edited by hand.
YAML_HEADER = """\
# ratchet data schema (pandera YAML): edit it, keep it next to your code, and load it
# with ratchet.data.load_schema(path). Columns not listed here are allowed (strict: false).
#
# Severity: a check is an ERROR (fails the pipeline step that validates) unless it has
# `raise_warning: true`, which makes it a WARNING (recorded in the report, step goes on).
# Checks written in short form take the long form to carry options, e.g.
#     isin: [a, b]          becomes      isin:
#                                          allowed_values: [a, b]
#                                          raise_warning: true
#     in_range:
#       min_value: 0
#       max_value: 120
#       raise_warning: true
# dtype, nullable, unique and a missing column are always errors.
"""

# Keys pandera's schema YAML understands at the top level; anything else is a typo that
# pandera would silently ignore, so load_schema rejects it.
_TOP_LEVEL_KEYS = frozenset(
    {
        "schema_type",
        "version",
        "api",
        "dataframe_library",
        "columns",
        "checks",
        "index",
        "multiindex",
        "dtype",
        "coerce",
        "strict",
        "name",
        "ordered",
        "unique",
        "report_duplicates",
        "unique_column_names",
        "add_missing_columns",
        "title",
        "description",
        "metadata",
        "drop_invalid_rows",
    }
)
_COLUMN_KEYS = frozenset(
    {
        "title",
        "description",
        "dtype",
        "nullable",
        "checks",
        "name",
        "unique",
        "coerce",
        "required",
        "regex",
        "default",
        "report_duplicates",
        "drop_invalid_rows",
        "metadata",
    }
)


# --------------------------------------------------------------------------- inputs


def to_pandas(data: Any, *, where: str) -> pd.DataFrame:
    """Return ``data`` as a pandas DataFrame (pandas as is; pyarrow / polars converted).

    Conversion goes through Arrow so dtypes match what ``pd.read_parquet`` produces.
    polars is never imported unless a polars object is passed in.
    """
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    module = type(data).__module__ or ""
    if module.startswith("pyarrow") and hasattr(data, "schema") and hasattr(data, "to_pandas"):
        return data.to_pandas()
    if module.startswith("polars"):
        import polars as pl

        if isinstance(data, pl.LazyFrame):
            raise InvalidInput(f"{where}: got a polars LazyFrame; call .collect() on it first")
        if isinstance(data, pl.DataFrame):
            return data.to_arrow().to_pandas()
    if isinstance(data, pd.Series):
        raise InvalidInput(f"{where}: got a pandas Series; pass a DataFrame (series.to_frame())")
    to_arrow = getattr(data, "to_arrow", None)  # e.g. a ratchet DatasetVersion
    if callable(to_arrow) and not isinstance(data, type):
        table = to_arrow()
        if hasattr(table, "to_pandas") and hasattr(table, "schema"):
            return table.to_pandas()
    raise InvalidInput(
        f"{where}: expected a pandas DataFrame, pyarrow Table or polars DataFrame, "
        f"got {type(data).__name__}"
    )


# --------------------------------------------------------------------------- inference


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


def _kind(col: pd.Series) -> str:
    import pandas as pd
    from pandas.api import types

    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if types.is_bool_dtype(dtype):
        return "bool"
    if types.is_integer_dtype(dtype):
        return "int"
    if types.is_float_dtype(dtype):
        return "float"
    if types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if types.is_object_dtype(dtype):
        inferred = types.infer_dtype(col, skipna=True)
        return {"string": "string", "boolean": "bool"}.get(inferred, "other")
    if types.is_string_dtype(dtype):
        return "string"
    return "other"


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


# --------------------------------------------------------------------------- severity


def check_severity(check: Any) -> str:
    """``"warn"`` for a check with ``raise_warning=True``, else ``"error"``."""
    return "warn" if getattr(check, "raise_warning", False) else "error"


def _check_label(check: Any) -> str:
    return str(getattr(check, "error", None) or getattr(check, "name", None) or check)


def set_severity(
    schema: pa.DataFrameSchema, column: str | None, check: str, severity: str
) -> pa.DataFrameSchema:
    """Return a copy of ``schema`` whose check(s) named ``check`` on ``column`` have ``severity``.

    ``check`` is a check name (``"isin"``, ``"in_range"``) or its full label
    (``"in_range(0, 120)"``); ``column=None`` addresses dataframe-level checks.
    """
    if severity not in SEVERITIES:
        raise InvalidInput(f"set_severity: severity must be 'error' or 'warn', got {severity!r}")
    new = copy.deepcopy(schema)
    if column is None:
        checks = new.checks
        where = "the dataframe"
    else:
        if column not in new.columns:
            raise NotFound(
                f"set_severity: schema {schema.name!r} has no column {column!r}; "
                f"columns: {', '.join(map(str, new.columns)) or '(none)'}"
            )
        checks = new.columns[column].checks
        where = f"column {column!r}"
    matched = [c for c in checks if check in (getattr(c, "name", None), _check_label(c))]
    if not matched:
        have = ", ".join(_check_label(c) for c in checks) or "(none)"
        raise NotFound(f"set_severity: {where} has no check {check!r}; its checks: {have}")
    for c in matched:
        c.raise_warning = severity == "warn"
    return new


# --------------------------------------------------------------------------- YAML


def save_schema(schema: pa.DataFrameSchema, path: str | os.PathLike[str]) -> Path:
    """Write ``schema`` as commented pandera YAML to ``path`` atomically; return the path.

    Refuses (InvalidInput) a schema that YAML cannot hold — e.g. a custom lambda check,
    which pandera would otherwise drop without a word.
    """
    import pandera.pandas as pa
    import yaml

    from ratchet.safe_load import load_yaml

    if not isinstance(schema, pa.DataFrameSchema):
        raise InvalidInput(
            f"save_schema: expected a pandera DataFrameSchema, got {type(schema).__name__}"
        )
    target = Path(path)
    try:
        with warnings.catch_warnings():  # pandera warns about checks it drops: we raise below
            warnings.filterwarnings("ignore", "Only registered checks", UserWarning)
            body = schema.to_yaml()
    except yaml.YAMLError as e:
        raise InvalidInput(
            f"save_schema: schema {schema.name!r} holds a value YAML cannot write ({_one_line(e)}); "
            "use plain numbers, strings or datetimes in checks"
        ) from e
    assert body is not None
    _ensure_checks_survive(schema, load_yaml(body, "save_schema"))
    text = YAML_HEADER + body
    return write_atomic(target, text)


def _ensure_checks_survive(schema: pa.DataFrameSchema, raw: Any) -> None:
    """pandera silently omits unregistered checks from YAML: fail loudly instead."""
    loaded = _deserialize(raw, where="save_schema")
    pairs = [(None, schema.checks, loaded.checks)]
    pairs += [
        (k, col.checks, loaded.columns[k].checks if k in loaded.columns else [])
        for k, col in schema.columns.items()
    ]
    for column, before, after in pairs:
        if len(before) != len(after):
            kept = {_check_label(c) for c in after}
            lost = [_check_label(c) for c in before if _check_label(c) not in kept] or ["?"]
            where = "dataframe" if column is None else f"column {column!r}"
            raise InvalidInput(
                f"save_schema: {where} check {lost[0]!r} cannot be written to YAML (custom, "
                "unregistered check); register it with pandera.extensions.register_check_method "
                "or remove it before saving"
            )


def load_schema(path: str | os.PathLike[str]) -> pa.DataFrameSchema:
    """Read a schema YAML written by ``save_schema`` (or by hand, in pandera's format)."""
    from ratchet.safe_load import compose_yaml, load_yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise NotFound(
            f"schema file {p} does not exist; write one with "
            "ratchet.data.save_schema(ratchet.data.infer_schema(df), path)"
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{p}: cannot read schema file: {_one_line(e)}") from e
    # Bounded in depth and alias expansion; YAML errors become "<file>:<line>: ..."
    node = compose_yaml(text, str(p))
    raw = load_yaml(text, str(p))
    _check_structure(raw, node, p)
    return _deserialize(raw, where=str(p))


def _deserialize(raw: Any, *, where: str) -> pa.DataFrameSchema:
    from pandera.io import pandas_io

    try:
        return pandas_io.deserialize_schema(raw)
    except Exception as e:  # pandera raises many types for bad content; all are user input
        raise InvalidInput(f"{where}: not a valid pandera schema: {_one_line(e)}") from e


def _check_structure(raw: Any, node: Any, path: Path) -> None:
    """Reject what pandera would misread or silently ignore, pointing at the line."""
    import pandera.pandas as pa

    if not isinstance(raw, dict) or not isinstance(raw.get("columns", {}), dict | list | None):
        raise InvalidInput(
            f"{path}: not a pandera schema: expected a mapping with 'columns', "
            f"got {type(raw).__name__}"
        )
    if raw.get("schema_type", "dataframe") != "dataframe":
        raise InvalidInput(
            f"{_at(path, node, 'schema_type')}: schema_type must be 'dataframe', "
            f"got {raw['schema_type']!r}"
        )
    for key in raw:
        if key not in _TOP_LEVEL_KEYS:
            raise InvalidInput(f"{_at(path, node, key)}: unknown schema key {key!r}")
    if "columns" not in raw and "checks" not in raw:
        raise InvalidInput(f"{path}: not a pandera schema: no 'columns' (or 'checks') key")
    columns = raw.get("columns")
    if not isinstance(columns, dict):
        return
    for col, spec in columns.items():
        if spec is None:  # `age:` with nothing under it: any dtype, required
            columns[col] = {}
            continue
        if not isinstance(spec, dict):
            raise InvalidInput(
                f"{_at(path, node, 'columns', col)}: column {col!r} must be a mapping "
                f"(dtype, nullable, checks...), got {type(spec).__name__}"
            )
        for key in spec:
            known = key in _COLUMN_KEYS or callable(getattr(pa.Check, str(key), None))
            if not known:
                raise InvalidInput(
                    f"{_at(path, node, 'columns', col, key)}: column {col!r}: unknown key "
                    f"{key!r} (not a column option nor a pandera check)"
                )


def _at(path: Path, node: Any, *keys: Any) -> str:
    """``path:line`` of the YAML key at ``keys`` (``path`` alone if it cannot be found)."""
    line = None
    for key in keys:
        if node is None or not hasattr(node, "value") or not isinstance(node.value, list):
            break
        for k_node, v_node in node.value:
            if getattr(k_node, "value", None) == str(key):
                line = k_node.start_mark.line + 1
                node = v_node
                break
        else:
            break
    return f"{path}:{line}" if line is not None else str(path)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
