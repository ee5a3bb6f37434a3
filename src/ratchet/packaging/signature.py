"""Model signatures: the input and output schema a model was trained with.

A signature is inferred from the training frame (or an input example) and the model's
output, stored as JSON in the model manifest, and used by serving to check requests
before they reach the model. Numeric ranges and categories are recorded as well: the
categories are enforced, the ranges are informational (for monitoring), never errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, SignatureMismatch

if TYPE_CHECKING:
    import pandas as pd

# Above this many distinct values a text column is free text, not a category.
MAX_CATEGORIES = 100

STRING = "string"
CATEGORY = "category"
BOOL = "bool"
OBJECT = "object"

_BOOL_STRINGS = {"true": True, "false": False, "1": True, "0": False}


@dataclass(frozen=True)
class ColumnSpec:
    """One column: a normalized dtype name plus what training data looked like."""

    name: str
    dtype: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "nullable": self.nullable,
            "min": self.min,
            "max": self.max,
            "categories": None if self.categories is None else list(self.categories),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "signature") -> ColumnSpec:
        if not isinstance(d, Mapping):
            raise InvalidInput(f"{where}: a column must be an object, got {d!r}")
        name, dtype = d.get("name"), d.get("dtype")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"{where}: column 'name' must be a non-empty string, got {name!r}")
        if not isinstance(dtype, str) or not dtype:
            raise InvalidInput(f"{where}: column {name!r} has no 'dtype' string")
        nullable = d.get("nullable", False)
        if not isinstance(nullable, bool):
            raise InvalidInput(f"{where}: column {name!r}: 'nullable' must be true or false")
        bounds: list[float | None] = []
        for key in ("min", "max"):
            value = d.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise InvalidInput(f"{where}: column {name!r}: {key!r} must be a number or null")
            bounds.append(None if value is None else float(value))
        categories = d.get("categories")
        if categories is not None and (
            not isinstance(categories, list) or not all(isinstance(c, str) for c in categories)
        ):
            raise InvalidInput(f"{where}: column {name!r}: 'categories' must be a list of strings")
        return cls(
            name=name,
            dtype=dtype,
            nullable=nullable,
            min=bounds[0],
            max=bounds[1],
            categories=None if categories is None else tuple(categories),
        )


@dataclass(frozen=True)
class Signature:
    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = ()

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [c.to_dict() for c in self.inputs],
            "outputs": [c.to_dict() for c in self.outputs],
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "signature") -> Signature:
        if not isinstance(d, Mapping):
            raise InvalidInput(f"{where}: expected an object with 'inputs' and 'outputs'")
        parts: list[tuple[ColumnSpec, ...]] = []
        for key in ("inputs", "outputs"):
            columns = d.get(key, [])
            if not isinstance(columns, list):
                raise InvalidInput(f"{where}: {key!r} must be a list of columns")
            parts.append(tuple(ColumnSpec.from_dict(c, f"{where}.{key}") for c in columns))
        names = [c.name for c in parts[0]]
        if len(set(names)) != len(names):
            raise InvalidInput(f"{where}: input column names are not unique: {names}")
        return cls(inputs=parts[0], outputs=parts[1])

    def validate(self, frame: Any) -> pd.DataFrame:
        """Check a request and return it as a DataFrame in signature order and dtypes.

        Accepts what :func:`as_frame` accepts; a 2-D array is matched to the inputs by
        position. Every problem is collected before raising :class:`SignatureMismatch`.
        Extra columns are dropped. Row numbers in messages count from 0.
        """
        import pandas as pd

        names = self.input_names
        if _is_ndarray(frame) and (frame.ndim != 2 or frame.shape[1] != len(names)):
            raise SignatureMismatch(
                [f"expected a 2-D array with {len(names)} columns, got shape {frame.shape}"]
            )
        df = as_frame(frame, names)
        by_name: dict[str, Any] = {}
        duplicated: set[str] = set()
        for col in df.columns:
            key = str(col)
            if key in by_name:
                duplicated.add(key)
            by_name[key] = col
        problems: list[str] = []
        columns: dict[str, pd.Series] = {}
        for spec in self.inputs:
            if spec.name in duplicated:
                problems.append(f"column {spec.name!r}: appears more than once")
                continue
            if spec.name not in by_name:
                problems.append(f"column {spec.name!r}: missing")
                continue
            series = df[by_name[spec.name]].reset_index(drop=True)
            columns[spec.name] = _conform(series, spec, problems)
        if problems:
            raise SignatureMismatch(problems)
        out = pd.DataFrame(columns, columns=names)
        out.index = df.index  # keep the caller's row labels
        return out


def infer_signature(
    X: Any, y_pred: Any = None, *, feature_names: Sequence[str] | None = None
) -> Signature:
    """Infer a signature from training inputs (and optionally the model's outputs).

    A 2-D array's columns are named ``feature_names`` when given (e.g. a model's
    ``feature_names_in_``), else ``f0``..``fN``.
    """
    frame = as_frame(X, feature_names)
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise InvalidInput(f"input column names are not unique: {names}")
    inputs = tuple(_infer_column(n, frame[c]) for n, c in zip(names, frame.columns, strict=True))
    outputs: tuple[ColumnSpec, ...] = ()
    if y_pred is not None:
        out = _output_frame(y_pred)
        outputs = tuple(_infer_column(str(c), out[c]) for c in out.columns)
    return Signature(inputs=inputs, outputs=outputs)


def as_frame(X: Any, names: Sequence[str] | None = None) -> pd.DataFrame:
    """A DataFrame from a DataFrame, 2-D array, records, a mapping or a pyarrow Table.

    Array columns are named ``names`` when given (and of the right length), else f0..fN.
    """
    import numpy as np
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, pd.Series):
        return X.to_frame()
    if type(X).__module__.startswith("pyarrow") and hasattr(X, "to_pandas"):
        return X.to_pandas()
    if isinstance(X, Mapping):
        # One record ({"a": 1}) or columns ({"a": [1, 2]}).
        if all(_is_scalar(v) for v in X.values()):
            return pd.DataFrame.from_records([dict(X)])
        return pd.DataFrame(dict(X))
    if isinstance(X, list | tuple) and X and all(isinstance(r, Mapping) for r in X):
        return pd.DataFrame.from_records(list(X))
    if isinstance(X, list | tuple) or _is_ndarray(X):
        array = np.asarray(X)
        if array.ndim != 2:
            raise InvalidInput(
                f"expected 2-D input (rows x columns), got an array of shape {array.shape}"
            )
        width = array.shape[1]
        if names is not None and len(names) == width:
            columns = [str(n) for n in names]
        else:
            columns = [f"f{i}" for i in range(width)]
        return pd.DataFrame(array, columns=columns)
    raise InvalidInput(
        f"cannot use a {type(X).__name__} as model input; pass a pandas DataFrame, "
        "a 2-D numpy array, a list of records (dicts) or a pyarrow Table"
    )


def _is_ndarray(X: Any) -> bool:
    return type(X).__module__ == "numpy" and type(X).__name__ == "ndarray"


def _is_scalar(value: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_scalar(value))


def _output_frame(y: Any) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    if isinstance(y, pd.DataFrame):
        return y
    if isinstance(y, pd.Series):
        return y.to_frame(name=str(y.name) if y.name is not None else "prediction")
    if isinstance(y, list | tuple) and y and all(isinstance(r, Mapping) for r in y):
        return pd.DataFrame.from_records(list(y))
    array = np.asarray(y)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim == 1:
        return pd.DataFrame({"prediction": array})
    if array.ndim == 2:
        return pd.DataFrame(array, columns=[f"prediction_{i}" for i in range(array.shape[1])])
    raise InvalidInput(f"cannot describe a model output of shape {array.shape}")


def dtype_name(series: pd.Series) -> str:
    """A normalized, JSON-friendly dtype name for a column."""
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return CATEGORY
    if types.is_bool_dtype(dtype):
        return BOOL
    if types.is_integer_dtype(dtype) or types.is_float_dtype(dtype):
        # Nullable extension dtypes (Int64, Float64) map to their numpy names.
        return str(getattr(dtype, "numpy_dtype", dtype))
    if types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
        return str(dtype)
    if isinstance(dtype, pd.StringDtype) or str(dtype) in ("string", "str"):
        return STRING
    if types.is_object_dtype(dtype):
        kind = types.infer_dtype(series, skipna=True)
        return {
            "string": STRING,
            "integer": "int64",
            "floating": "float64",
            "mixed-integer-float": "float64",
            "decimal": "float64",
            "boolean": BOOL,
            "datetime64": "datetime64[ns]",
            "datetime": "datetime64[ns]",
        }.get(kind, OBJECT)
    return str(dtype)


def _infer_column(name: str, series: pd.Series) -> ColumnSpec:
    import numpy as np
    import pandas as pd

    dtype = dtype_name(series)
    nullable = bool(series.isna().any())
    low = high = None
    categories = None
    if _is_numeric(dtype):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
    elif dtype in (STRING, CATEGORY):
        distinct = {str(v) for v in series.dropna().unique()}
        if len(distinct) <= MAX_CATEGORIES:
            categories = tuple(sorted(distinct))
    return ColumnSpec(name, dtype, nullable, low, high, categories)


def _is_numeric(dtype: str) -> bool:
    return dtype.startswith(("int", "uint", "float"))


def _describe(series: pd.Series, bad: Any, *, show_value: bool = True) -> str:
    """ "got 'abc' in row 3 (and 2 more rows)" for a boolean mask of bad positions."""
    import numpy as np

    positions = np.flatnonzero(np.asarray(bad, dtype=bool))
    first = int(positions[0])
    more = len(positions) - 1
    tail = f" (and {more} more row{'s' if more != 1 else ''})" if more else ""
    if not show_value:
        return f"in row {first}{tail}"
    value = series.iloc[first]
    if isinstance(value, np.generic):
        value = value.item()  # 2.5, not np.float64(2.5)
    return f"got {value!r} in row {first}{tail}"


def _conform(series: pd.Series, spec: ColumnSpec, problems: list[str]) -> pd.Series:
    """Cast one request column to its spec, appending any problems found."""
    import pandas as pd

    nulls = series.isna().to_numpy()
    where = f"column {spec.name!r}"
    if nulls.any() and not spec.nullable:
        problems.append(
            f"{where}: null {_describe(series, nulls, show_value=False)}, "
            "but the column is not nullable"
        )
    if _is_numeric(spec.dtype):
        return _conform_numeric(series, spec, problems)
    if spec.dtype == BOOL:
        return _conform_bool(series, spec, problems)
    if spec.dtype in (STRING, CATEGORY):
        return _conform_text(series, spec, problems)
    if spec.dtype.startswith("datetime64"):
        return _conform_datetime(series, spec, problems)
    try:
        return (
            series if spec.dtype == OBJECT else series.astype(pd.api.types.pandas_dtype(spec.dtype))
        )
    except (TypeError, ValueError) as e:
        problems.append(f"{where}: expected {spec.dtype}, cannot cast {series.dtype} ({e})")
        return series


def _conform_numeric(series: pd.Series, spec: ColumnSpec, problems: list[str]) -> pd.Series:
    import numpy as np
    import pandas as pd
    from pandas.api import types

    where = f"column {spec.name!r}"
    if types.is_datetime64_any_dtype(series.dtype) or types.is_timedelta64_dtype(series.dtype):
        problems.append(f"{where}: expected {spec.dtype}, got {series.dtype}")
        return series
    raw = series.astype(object) if isinstance(series.dtype, pd.CategoricalDtype) else series
    numbers = pd.to_numeric(raw, errors="coerce")
    values = numbers.to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isnan(values) & series.notna().to_numpy()
    target = np.dtype(spec.dtype)
    exact_ints = types.is_integer_dtype(numbers.dtype) and not numbers.isna().any()
    if target.kind in "iu":
        info = np.iinfo(target)
        if exact_ints:
            # Compare integers as integers: ids above 2**53 must not round through float.
            ints = numbers.to_numpy()
            bad |= (ints < info.min) | (ints > info.max)
        else:
            with np.errstate(invalid="ignore"):
                bad |= ~np.isnan(values) & (
                    (values != np.round(values)) | (values < info.min) | (values > info.max)
                )
    if bad.any():
        problems.append(f"{where}: expected {spec.dtype}, {_describe(series, bad)}")
        return series
    if target.kind in "iu" and np.isnan(values).any():
        # Integers with (allowed) nulls become floats, as pandas does at training time.
        return pd.Series(values, index=series.index, name=series.name)
    source = numbers.to_numpy() if exact_ints else values
    return pd.Series(source.astype(target), index=series.index, name=series.name)


def _conform_bool(series: pd.Series, spec: ColumnSpec, problems: list[str]) -> pd.Series:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype) and not series.isna().any():
        return series.astype(bool)
    converted: list[Any] = []
    bad = np.zeros(len(series), dtype=bool)
    for i, value in enumerate(series.astype(object)):
        if _is_null(value):
            converted.append(None)
        elif isinstance(value, bool | np.bool_ | int | float | np.integer | np.floating) and (
            value in (0, 1)
        ):
            converted.append(bool(value))
        elif isinstance(value, str) and value.strip().lower() in _BOOL_STRINGS:
            converted.append(_BOOL_STRINGS[value.strip().lower()])
        else:
            bad[i] = True
            converted.append(None)
    if bad.any():
        problems.append(f"column {spec.name!r}: expected bool, {_describe(series, bad)}")
        return series
    has_null = any(v is None for v in converted)
    return pd.Series(converted, index=series.index, dtype=object if has_null else bool)


def _conform_text(series: pd.Series, spec: ColumnSpec, problems: list[str]) -> pd.Series:
    import pandas as pd

    present = series.notna().to_numpy()
    text = series.astype(str).where(series.notna(), None)
    if spec.categories is not None:
        allowed = set(spec.categories)
        unknown = present & ~text.isin(allowed).to_numpy()
        if unknown.any():
            shown = ", ".join(repr(c) for c in spec.categories[:10])
            more = "" if len(spec.categories) <= 10 else f" and {len(spec.categories) - 10} more"
            problems.append(
                f"column {spec.name!r}: unknown category, {_describe(series, unknown)}"
                f" (known: {shown}{more})"
            )
            return series
    if spec.dtype == STRING:
        return series if _is_text(series) else text
    if spec.categories is None:
        return series.astype("category")
    values, categories = text, list(spec.categories)
    non_null = series.dropna()
    if len(non_null) and not any(isinstance(v, str) for v in non_null):
        # Non-string categories (e.g. ints) were recorded as strings; map them back.
        numeric = pd.to_numeric(pd.Series(categories), errors="coerce")
        if not numeric.isna().any():
            values, categories = series.astype(object), numeric.tolist()
    return pd.Series(
        pd.Categorical(values, categories=categories), index=series.index, name=series.name
    )


def _conform_datetime(series: pd.Series, spec: ColumnSpec, problems: list[str]) -> pd.Series:
    import pandas as pd
    from pandas.api import types

    try:
        target = types.pandas_dtype(spec.dtype)
    except TypeError:
        return series
    if types.is_datetime64_any_dtype(series.dtype):
        parsed = series
    else:
        parsed = pd.to_datetime(series, errors="coerce", format="mixed", utc=True)
        bad = parsed.isna().to_numpy() & series.notna().to_numpy()
        if bad.any():
            problems.append(f"column {spec.name!r}: expected a datetime, {_describe(series, bad)}")
            return series
    # Naive means UTC on the way in; the spec decides whether the result keeps a zone.
    tz = getattr(target, "tz", None)
    if parsed.dt.tz is None and tz is not None:
        parsed = parsed.dt.tz_localize("UTC")
    if tz is not None:
        parsed = parsed.dt.tz_convert(tz)
    elif parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype(target)


def _is_text(series: pd.Series) -> bool:
    import pandas as pd

    if isinstance(series.dtype, pd.StringDtype):
        return True
    return pd.api.types.is_object_dtype(series.dtype) and pd.api.types.infer_dtype(
        series, skipna=True
    ) in ("string", "empty")


def _is_null(value: Any) -> bool:
    import numpy as np
    import pandas as pd

    result = pd.isna(value)
    return isinstance(result, bool | np.bool_) and bool(result)


__all__ = ["ColumnSpec", "Signature", "SignatureMismatch", "as_frame", "infer_signature"]
