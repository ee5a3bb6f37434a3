"""Model signatures: the input and output schema a model was trained with.

A signature is inferred from the training frame (or an input example) and the model's
output, stored as JSON in the model manifest, and used by serving to check requests
before they reach the model. Numeric ranges and categories are recorded as well: the
categories are enforced, the ranges are informational (for monitoring), never errors.

What a column's dtype is and which values belong to it are the column contract's
(``ratchet.columns``): ``validate`` judges each column with ``ColumnRule.judge`` and then
casts it. A frame built in Python may carry numbers as text (``"40"``): in a number
column, text is read as a text cell (``ratchet.columns.read_text_cells``) first, and an
infinite number in a float column passes (a model trained on it may take it; serving's
request validation, which guards a live endpoint, rejects it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.columns import (
    BOOL,  # noqa: F401 (re-exported: dtype names)
    BOOLEAN,
    CATEGORY,
    DATETIME,
    FLOAT,
    NUMBER_FAMILIES,
    OBJECT,
    STRING,
    TEXT,
    ColumnRule,
    bad_text,
    dtype_name,
    read_text_cells,
    to_bool,
)
from ratchet.columns import is_numeric as _is_numeric
from ratchet.errors import InvalidInput, SignatureMismatch

if TYPE_CHECKING:
    import pandas as pd

# Above this many distinct values a text column is free text, not a category.
MAX_CATEGORIES = 100


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


_EXPECTED = {BOOLEAN: "bool", TEXT: "a string", DATETIME: "a datetime"}


def _conform(series: pd.Series, spec: ColumnSpec, problems: list[str]) -> pd.Series:
    """Judge one request column by the column contract and cast it to its spec, appending
    any problems found."""
    import numpy as np
    import pandas as pd

    rule = ColumnRule.of(spec)
    where = f"column {spec.name!r}"
    if rule.family in NUMBER_FAMILIES:
        series = read_text_cells(series)
    judged = rule.judge(series)
    if judged.nulls.any() and not spec.nullable:
        problems.append(
            f"{where}: null {_describe(series, judged.nulls, show_value=False)}, "
            "but the column is not nullable"
        )
    bad = judged.bad
    if rule.family == FLOAT:  # a model trained on inf may take it; serving does not
        bad = bad & ~judged.non_finite
    if bad.any():
        first = series.iloc[int(np.flatnonzero(np.asarray(bad, dtype=bool))[0])]
        why = bad_text(first) if rule.family == TEXT and isinstance(first, str) else None
        if why is not None:  # a string, but one that cannot be kept as sent (NUL, ...)
            problems.append(f"{where}: {why} {_describe(series, bad, show_value=False)}")
            return series
        expected = _EXPECTED.get(rule.family, spec.dtype)
        if rule.family not in NUMBER_FAMILIES and rule.family not in _EXPECTED:
            expected = "a single value"
        problems.append(f"{where}: expected {expected}, {_describe(series, bad)}")
        return series
    if judged.unknown is not None and judged.unknown.any():
        categories = spec.categories or ()
        shown = ", ".join(repr(c) for c in categories[:10])
        more = "" if len(categories) <= 10 else f" and {len(categories) - 10} more"
        problems.append(f"{where}: unknown category, {_describe(series, judged.unknown)}"
                        f" (known: {shown}{more})")
        return series
    if rule.family in NUMBER_FAMILIES:
        return _cast_numeric(series, spec)
    if rule.family == BOOLEAN:
        return _cast_bool(series)
    if rule.family == TEXT:
        return _cast_text(series, spec)
    if rule.family == DATETIME:
        return _cast_datetime(series, spec)
    try:
        return (
            series if spec.dtype == OBJECT else series.astype(pd.api.types.pandas_dtype(spec.dtype))
        )
    except (TypeError, ValueError) as e:
        problems.append(f"{where}: expected {spec.dtype}, cannot cast {series.dtype} ({e})")
        return series


def _cast_numeric(series: pd.Series, spec: ColumnSpec) -> pd.Series:
    """A column the contract found all numbers (or nulls) as the spec's dtype."""
    import numpy as np
    import pandas as pd
    from pandas.api import types

    raw = series.astype(object) if isinstance(series.dtype, pd.CategoricalDtype) else series
    numbers = pd.to_numeric(raw)
    values = numbers.to_numpy(dtype="float64", na_value=np.nan)
    target = np.dtype(spec.dtype)
    exact_ints = types.is_integer_dtype(numbers.dtype) and not numbers.isna().any()
    if target.kind in "iu" and np.isnan(values).any():
        # Integers with (allowed) nulls become floats, as pandas does at training time.
        return pd.Series(values, index=series.index, name=series.name)
    source = numbers.to_numpy() if exact_ints else values
    return pd.Series(source.astype(target), index=series.index, name=series.name)


def _cast_bool(series: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype) and not series.isna().any():
        return series.astype(bool)
    nulls = series.isna().to_numpy()
    converted = [None if null else to_bool(v)
                 for v, null in zip(series.astype(object), nulls, strict=True)]
    return pd.Series(converted, index=series.index, dtype=object if nulls.any() else bool)


def _cast_text(series: pd.Series, spec: ColumnSpec) -> pd.Series:
    import pandas as pd

    text = series.astype(str).where(series.notna(), None)
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


def _cast_datetime(series: pd.Series, spec: ColumnSpec) -> pd.Series:
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


__all__ = ["ColumnSpec", "Signature", "SignatureMismatch", "as_frame", "infer_signature"]
