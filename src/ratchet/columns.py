"""The column contract: what a column's kind is and whether a value belongs to it.

One module owns every rule about a column that more than one part of ratchet applies:
model signatures (``packaging.signature``), request validation (``serving``), data quality
and drift (``monitoring``), dataset profiles and schema inference (``data``). Each of them
asks this module; none keeps its own table.

Kinds
    A signature records a column's dtype name (``int64``, ``float32``, ``bool``,
    ``string``, ``category``, ``datetime64[ns, UTC]``, ``object`` ...). Its **family**
    (:func:`family`) decides how values are judged: ``integer``, ``float``, ``boolean``,
    ``text`` (strings and categories), ``datetime`` or ``other``. :func:`dtype_name`
    gives the dtype name of observed data (a pandas Series).

    For statistics a column is **numeric** or **categorical** (:func:`statistical_kind`):
    numbers are numeric unless they take at most ``CATEGORICAL_MAX_DISTINCT`` (5)
    distinct values (codes, ratings, flags), which are compared as categories; every
    other family is categorical. Profiles (``semantic_type``) and drift tests use this
    one rule, so a column a profile calls categorical is one drift tests by frequencies.

Values (:class:`ColumnRule`, one per signature column; ``conform`` for one value,
``judge`` for a whole column with NumPy/pandas)
    - **nulls**: ``None``, NaN, ``NaT`` and ``pd.NA`` are missing values; they are never
      of the wrong kind, and a problem only where the column is not nullable.
    - **numbers**: ints and floats (NumPy scalars too), never booleans or text; infinite
      values are not numbers a model can use (``non_finite``); an integer column takes
      whole numbers within its dtype (``int8`` holds -128..127); a float column takes
      what its dtype can hold (``1e39`` does not fit in ``float32``: it would become
      infinity).
    - **booleans**: ``True``/``False``, the numbers 0 and 1, and the text in
      ``BOOL_TEXT`` (``true``, ``false``, ``1``, ``0``; any case, surrounding spaces
      ignored). Nothing else (not ``"yes"``, not ``"1.0"``).
    - **text**: strings that are valid Unicode without NUL, and whole numbers (category
      codes sent as numbers, read as their decimal text); not floats or booleans.
    - **datetimes**: datetime objects, and ISO 8601 text that both Python and pandas read.
    - **other** (``object``, durations): any single value; not a JSON object or array,
      and text as above.
    - **ranges**: numbers outside the training ``[min, max]``; **categories**: text
      outside the training categories. Both are matters of policy (serving rejects or
      flags them; data quality counts them), never of kind.

Text cells
    A CSV body, or a prediction-log column that held values of mixed kinds (stored as
    text), carries numbers as text. :func:`number_from_text` reads such a cell as the
    number it spells (``"42"`` -> 42, ``"1e3"`` -> 1000.0; not ``"1_000"``); a value that
    arrives as a JSON string stays text.
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ratchet.errors import BadValue

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# --------------------------------------------------------------------------- dtype names
STRING, CATEGORY, BOOL, OBJECT = "string", "category", "bool", "object"

# --------------------------------------------------------------------------- families
INTEGER, FLOAT, BOOLEAN, TEXT, DATETIME, OTHER = (
    "integer", "float", "boolean", "text", "datetime", "other")
NUMBER_FAMILIES = frozenset({INTEGER, FLOAT})

# --------------------------------------------------------------------------- statistics
NUMERIC, CATEGORICAL = "numeric", "categorical"
# A numeric column with at most this many distinct values (codes, ratings, flags) is
# categorical: its values are compared as categories (frequencies), not as distances.
CATEGORICAL_MAX_DISTINCT = 5

# --------------------------------------------------------------------------- values
# The one table of text that means a boolean (after strip() and lower()).
BOOL_TEXT: Mapping[str, bool] = MappingProxyType(
    {"true": True, "false": False, "1": True, "0": False})

# Problem kinds (the ``type`` of a request problem, the counters of data quality).
NULL, TYPE, OUT_OF_RANGE, UNKNOWN_CATEGORY = "null", "type", "out_of_range", "unknown_category"

_INT_LIMIT = 2**63
_INFINITE = (float("inf"), float("-inf"))
_MAX_SHOWN = 60  # characters of a value quoted in a message


def family(dtype: str) -> str:
    """The family of a signature dtype name (see the module docstring)."""
    if dtype.startswith(("int", "uint")):
        return INTEGER
    if dtype.startswith("float"):
        return FLOAT
    if dtype == BOOL:
        return BOOLEAN
    if dtype in (STRING, CATEGORY):
        return TEXT
    if dtype.startswith("datetime64"):
        return DATETIME
    return OTHER


def is_numeric(dtype: str) -> bool:
    """True for integer and float dtype names."""
    return dtype.startswith(("int", "uint", "float"))


def dtype_name(series: pd.Series) -> str:
    """A normalized, JSON-friendly dtype name for observed data (a pandas Series)."""
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
        inferred = types.infer_dtype(series, skipna=True)
        return {
            "string": STRING,
            "integer": "int64",
            "floating": "float64",
            "mixed-integer-float": "float64",
            "decimal": "float64",
            "boolean": BOOL,
            "datetime64": "datetime64[ns]",
            "datetime": "datetime64[ns]",
        }.get(inferred, OBJECT)
    return str(dtype)


def statistical_kind(family_: str, distinct: int | None = None, *,
                     max_distinct: int = CATEGORICAL_MAX_DISTINCT) -> str:
    """``numeric`` or ``categorical``: numbers (integer or float family) are numeric
    unless ``distinct`` (their distinct non-null, finite values, when known) is at most
    ``max_distinct``; every other family is categorical."""
    if family_ not in NUMBER_FAMILIES:
        return CATEGORICAL
    if distinct is not None and distinct <= max_distinct:
        return CATEGORICAL
    return NUMERIC


def values_family(values: Any) -> str:
    """The family of observed values (an array or Series) by their dtype alone."""
    import numpy as np
    import pandas as pd

    if not isinstance(values, pd.Series):
        dtype = getattr(values, "dtype", None)
        values = pd.Series(values if dtype is not None else np.asarray(values))
    return family(dtype_name(values))


# --------------------------------------------------------------------------- scalars
def int_bounds(dtype: str) -> tuple[int, int]:
    """The values an integer dtype holds (int8 ... uint64)."""
    import numpy as np

    try:
        info = np.iinfo(np.dtype(dtype))
    except TypeError:
        return -_INT_LIMIT, _INT_LIMIT - 1
    return int(info.min), int(info.max)


def float_overflow(dtype: str) -> int:
    """The smallest magnitude a float dtype rounds to infinity (its largest value plus
    half a step: 3.4028235677973366e38 for float32), exact as a Python int."""
    import numpy as np

    try:
        info = np.finfo(np.dtype(dtype))
    except (TypeError, ValueError):
        info = np.finfo(np.float64)
    largest = info.max
    half_step = (largest - np.nextafter(largest, info.dtype.type(0))) / 2
    return int(largest) + int(half_step)


def float_largest(dtype: str) -> float:
    import numpy as np

    try:
        return float(np.finfo(np.dtype(dtype)).max)
    except (TypeError, ValueError):
        return float(np.finfo(np.float64).max)


def is_null(value: Any) -> bool:
    """None, NaN (Python or NumPy), NaT and pd.NA."""
    if value is None:
        return True
    t = type(value)
    if t is float:
        return value != value
    if t is str or t is int or t is bool:
        return False
    import pandas as pd

    try:
        result = pd.isna(value)
    except (TypeError, ValueError):
        return False
    return result is True or (_numpy_bool(type(result)) and bool(result))


def _numpy_bool(t: type) -> bool:
    """NumPy's boolean scalar type (``numpy.bool_``, named ``bool`` since NumPy 2)."""
    return t.__module__ == "numpy" and t.__name__ in ("bool", "bool_")


def to_bool(value: Any) -> bool | None:
    """The boolean a non-null value stands for, or None when it stands for none."""
    t = type(value)
    if t is bool:
        return value
    if t is str:
        return BOOL_TEXT.get(value.strip().lower())
    if _numpy_bool(t):
        return bool(value)
    if isinstance(value, str):
        return BOOL_TEXT.get(value.strip().lower())
    if isinstance(value, numbers.Real) and value in (0, 1):
        return bool(value)
    return None


def number_from_text(text: str) -> Any:
    """A text cell as the number it spells (int, else float), else the text itself.

    ``"1_000"`` stays text: Python's int() reads it, pandas and CSV readers do not."""
    if "_" in text:
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_text_cells(values: pd.Series) -> pd.Series:
    """A column whose text may be cells (a CSV, a log column stored as text, a frame
    built from text): each string read by :func:`number_from_text`, once per distinct
    string; other values kept. For number columns only."""
    import numpy as np
    import pandas as pd
    from pandas.api import types

    if not (types.is_object_dtype(values.dtype) or types.is_string_dtype(values.dtype)):
        return values
    array = values.to_numpy(dtype=object)
    is_text = np.frompyfunc(_is_str, 1, 1)(array).astype(bool) if len(array) else \
        np.zeros(0, dtype=bool)
    if not is_text.any():
        return values
    codes, uniques = pd.factorize(array[is_text])
    read = np.empty(len(uniques), dtype=object)
    read[:] = [number_from_text(u) for u in uniques]
    out = array.copy()
    out[is_text] = read[codes]
    return pd.Series(out, index=values.index, name=values.name, dtype=object)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def shown(value: Any) -> str:
    """A value for a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN - 1] + "…"


def bad_text(value: str) -> str | None:
    """Why a string cannot be stored and read back as sent (None: it can)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from "\\ud800" in JSON
            return (f"text with a lone surrogate {value[exc.start]!r} at position "
                    f"{exc.start}, which is not valid Unicode: {shown(value)}; send UTF-8 text")
    if "\x00" in value:  # cut short by C libraries and refused by PostgreSQL text
        return f"text with a NUL character at position {value.index(chr(0))}: {shown(value)}"
    return None


# --------------------------------------------------------------------------- columns
@dataclass
class Judgement:
    """A whole column judged against its rule; boolean masks, one entry per row.

    ``bad`` (not of the column's kind, including ``non_finite``), ``nulls``, ``outside``
    and ``unknown`` never overlap; ``outside`` / ``unknown`` are None when the rule has
    no range / categories. ``numbers`` holds the values of a number column as float64
    (NaN where null or bad)."""

    nulls: np.ndarray
    bad: np.ndarray
    non_finite: np.ndarray
    outside: np.ndarray | None
    unknown: np.ndarray | None
    numbers: np.ndarray | None = None


class ColumnRule:
    """The contract for one column, compiled once from its dtype name, nullability, range
    and categories (a signature's ``ColumnSpec`` has them all)."""

    def __init__(self, dtype: str, *, nullable: bool = True, min: float | None = None,
                 max: float | None = None, categories: Sequence[str] | None = None) -> None:
        self.dtype = dtype
        self.family = family(dtype)
        self.nullable = nullable
        self.min = min
        self.max = max
        self.categories = None if categories is None else tuple(categories)
        # Categories bind text columns only, ranges number columns only.
        self.known = None if categories is None or self.family != TEXT else frozenset(categories)
        self.has_range = self.family in NUMBER_FAMILIES and (min is not None or max is not None)
        self.low = float("-inf") if min is None else min
        self.high = float("inf") if max is None else max
        if self.family == INTEGER:
            self.int_min, self.int_max = int_bounds(dtype)
        elif self.family == FLOAT:
            self.overflow = float_overflow(dtype)
        self.conform: Callable[[Any], Any]
        if self.family == INTEGER:
            self.conform = _integer_conform(dtype, self.int_min, self.int_max)
        elif self.family == FLOAT:
            self.conform = _float_conform(dtype, self.overflow)
        else:
            self.conform = {BOOLEAN: _conform_bool, TEXT: _conform_text,
                            DATETIME: _conform_datetime, OTHER: _conform_other}[self.family]

    @classmethod
    def of(cls, spec: Any) -> ColumnRule:
        """The rule of a signature column (anything with dtype, nullable, min, max and
        categories)."""
        return cls(spec.dtype, nullable=spec.nullable, min=spec.min, max=spec.max,
                   categories=spec.categories)

    # ------------------------------------------------------------------ one value
    # ``conform(value)`` returns the value as its column's kind (None for a null) or
    # raises BadValue.
    def outside(self, number: float | int) -> bool:
        """A (conformed) number outside the training range."""
        return number < self.low or number > self.high

    def unknown(self, text: str) -> bool:
        """A (conformed) text outside the training categories."""
        return self.known is not None and text not in self.known

    @staticmethod
    def _other_number(v: Any, kind: str) -> int | float | None:
        """NumPy scalars count as numbers; bools and text do not; nulls are None."""
        if v is None:
            return None
        if isinstance(v, bool) or _numpy_bool(type(v)):
            raise BadValue(f"expected {kind}, got {shown(v)}")
        if isinstance(v, numbers.Integral):
            return int(v)
        if isinstance(v, numbers.Real):
            return float(v)
        if not isinstance(v, str | dict | list | tuple) and is_null(v):
            return None
        raise BadValue(f"expected {kind}, got {shown(v)}")

    # ------------------------------------------------------------------ a column
    def judge(self, values: Any) -> Judgement:
        """Judge a whole column (a Series or 1-D array) with NumPy/pandas: typed numeric
        arrays fully vectorized; other columns by their distinct values, each judged
        by ``conform`` (so both paths agree by construction)."""
        import numpy as np
        import pandas as pd
        from pandas.api import types

        if isinstance(values, pd.Series):
            series = values
        elif isinstance(values, np.ndarray) and values.ndim == 1:
            series = pd.Series(values, copy=False)
        else:
            series = pd.Series(list(values), dtype=object)
        n = len(series)
        dtype = series.dtype
        none = np.zeros(n, dtype=bool)
        if self.family in NUMBER_FAMILIES and types.is_numeric_dtype(dtype) \
                and not types.is_bool_dtype(dtype):
            return self._judge_numbers(series)
        nulls = series.isna().to_numpy()
        # No range or category problem where the dtype alone decides every row.
        outside = none if self.has_range else None
        unknown = none if self.known is not None else None
        if self.family == BOOLEAN and types.is_bool_dtype(dtype):
            return Judgement(nulls, none, none, outside, unknown)
        if self.family == DATETIME and types.is_datetime64_any_dtype(dtype):
            return Judgement(nulls, none, none, outside, unknown)
        if self.family in NUMBER_FAMILIES and (
                types.is_bool_dtype(dtype) or types.is_datetime64_any_dtype(dtype)
                or types.is_timedelta64_dtype(dtype)):
            return Judgement(nulls, ~nulls, none, outside, unknown, np.full(n, np.nan))
        if self.family == OTHER and not types.is_object_dtype(dtype) \
                and not types.is_string_dtype(dtype):
            return Judgement(nulls, none, none, outside, unknown)
        return self._judge_distinct(series, nulls)

    def _judge_numbers(self, series: pd.Series) -> Judgement:
        """A numeric dtype column, fully vectorized (the rules of ``conform``)."""
        import numpy as np

        dtype = series.dtype
        kind = getattr(dtype, "kind", "f")
        if kind in "iu" and not (hasattr(dtype, "numpy_dtype") and series.isna().any()):
            array = series.to_numpy(dtype=getattr(dtype, "numpy_dtype", dtype))
        else:
            array = series.to_numpy(dtype=np.float64, na_value=np.nan)
        n = len(array)
        none = np.zeros(n, dtype=bool)
        nulls, bad, non_finite = none, none, none
        with np.errstate(invalid="ignore", over="ignore"):
            if array.dtype.kind == "f":
                nulls = np.isnan(array)
                non_finite = np.isinf(array)
                bad = non_finite
                if self.family == INTEGER:
                    bad = bad | (~nulls & ((array != np.round(array))
                                           | (array < self.int_min)
                                           | (array >= float(self.int_max) + 1)))
            elif self.family == INTEGER:
                if array.dtype.kind == "u" and self.int_max >= 2**63:
                    bad = array > self.int_max
                elif array.dtype.kind == "u":
                    bad = array > np.uint64(self.int_max)
                elif self.int_min >= 0:  # unsigned target from signed values
                    bad = (array < 0) | (array.astype(np.uint64) > np.uint64(self.int_max))
                else:
                    bad = (array < self.int_min) | (array > self.int_max)
            if self.family == FLOAT and self.dtype in ("float16", "float32"):
                limit = float(self.overflow)  # exact in float64; float64 never overflows
                bad = bad | (array >= limit) | (array <= -limit)
            numbers = array.astype(np.float64, copy=False)
            outside = None
            if self.has_range and array.dtype.kind in "iu":
                outside = ~bad & _ints_outside(array, self.low, self.high)
            elif self.has_range:
                outside = ~nulls & ~bad & ((numbers < self.low) | (numbers > self.high))
        numbers = np.where(bad, np.nan, numbers) if bad.any() else numbers
        return Judgement(nulls, bad, non_finite, outside, None, numbers)

    def _judge_distinct(self, series: pd.Series, nulls: np.ndarray) -> Judgement:
        """Any other column: each distinct (type, value) pair judged once by ``conform``."""
        import numpy as np
        import pandas as pd

        n = len(series)
        dtype = series.dtype
        if self.family == TEXT and getattr(dtype, "storage", None) == "pyarrow":
            # Arrow strings are valid UTF-8 (no lone surrogate): only NUL and the
            # categories are left to judge, vectorized.
            present = ~nulls
            bad = series.str.contains("\x00", regex=False).fillna(False).to_numpy(
                dtype=bool) & present
            unknown = None
            if self.known is not None:
                unknown = ~series.isin(self.known).to_numpy(dtype=bool) & present & ~bad
            none = np.zeros(n, dtype=bool)
            return Judgement(nulls, bad, none, None, unknown)
        if isinstance(dtype, pd.CategoricalDtype) or (
                pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype)):
            # One kind of value already (strings, or a categorical's categories): factorized
            # by pandas (Arrow for Arrow strings) without a detour through Python objects.
            found, distinct = pd.factorize(series, use_na_sentinel=True)
            codes = np.where(found < 0, len(distinct), found)
            uniques = np.empty(len(distinct) + 1, dtype=object)
            uniques[:-1] = np.asarray(distinct, dtype=object)
            uniques[-1] = None
            return self._verdicts(codes, uniques, nulls)
        objects = series.astype(object).to_numpy()
        try:
            codes, uniques = pd.factorize(objects, use_na_sentinel=False)
            # 1, 1.0 and True hash alike: tell them apart by their type (unless pandas
            # sees one kind of value only).
            if pd.api.types.infer_dtype(objects, skipna=True) not in _ONE_KIND:
                type_codes, type_uniques = pd.factorize(_types(objects))
                if len(type_uniques) > 1:
                    codes, uniques = _pairs(codes, type_codes, objects)
        except TypeError:  # unhashable values (a dict, a list): one by one
            codes, uniques = np.arange(n), objects
        return self._verdicts(codes, uniques, nulls)

    def _verdicts(self, codes: np.ndarray, uniques: Any, nulls: np.ndarray) -> Judgement:
        """Each distinct value judged by ``conform``; the verdicts spread to its rows."""
        import numpy as np

        count = len(uniques)
        null_u = np.zeros(count, dtype=bool)
        bad_u = np.zeros(count, dtype=bool)
        inf_u = np.zeros(count, dtype=bool)
        outside_u = np.zeros(count, dtype=bool) if self.has_range else None
        unknown_u = np.zeros(count, dtype=bool) if self.known is not None else None
        numbers_u = np.full(count, np.nan) if self.family in NUMBER_FAMILIES else None
        for i, value in enumerate(uniques):
            try:
                conformed = self.conform(value)
            except BadValue:
                bad_u[i] = True
                inf_u[i] = numbers_u is not None and _infinite(value)
                continue
            if conformed is None:
                null_u[i] = True
            elif numbers_u is not None:
                numbers_u[i] = conformed
                if outside_u is not None and self.outside(conformed):
                    outside_u[i] = True
            elif unknown_u is not None and self.unknown(conformed):
                unknown_u[i] = True
        return Judgement(
            null_u[codes] | nulls, bad_u[codes], inf_u[codes],
            None if outside_u is None else outside_u[codes],
            None if unknown_u is None else unknown_u[codes],
            None if numbers_u is None else numbers_u[codes])


_ONE_KIND = frozenset({"string", "integer", "floating", "boolean", "empty", "datetime"})


def _infinite(value: Any) -> bool:
    """inf / -inf as a (Python or NumPy) float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or isinstance(value, numbers.Integral):
        return False
    return float(value) in _INFINITE


def _integer_conform(dtype: str, int_min: int, int_max: int) -> Callable[[Any], Any]:
    """``conform`` of an integer column (a closure: this runs for every request value)."""

    def conform(v: Any) -> int | None:
        t = type(v)
        if t is not int:
            if t is not float:
                v = ColumnRule._other_number(v, "an integer")
                if v is None:
                    return None
            if type(v) is float:
                if v != v:
                    return None
                if v in _INFINITE:
                    raise BadValue(f"expected a finite number, got {v!r}")
                if not v.is_integer():
                    raise BadValue(f"expected an integer, got {v!r}")
                v = int(v)
        if not int_min <= v <= int_max:
            raise BadValue(f"{shown(v)} does not fit in {dtype}")
        return v

    return conform


def _float_conform(dtype: str, overflow: int) -> Callable[[Any], Any]:
    """``conform`` of a float column: finite numbers its dtype can hold."""
    try:
        limit = float(overflow)  # exact for float16 / float32
    except OverflowError:
        limit = float("inf")  # float64: every finite float fits

    def conform(v: Any) -> float | int | None:
        t = type(v)
        if t is float:
            if -limit < v < limit:
                return v
            if v != v:
                return None
            if v in _INFINITE:
                raise BadValue(f"expected a finite number, got {v!r}")
        elif t is not int:
            v = ColumnRule._other_number(v, "a number")
            if v is None:
                return None
            return conform(v)
        elif -overflow < v < overflow:  # a huge JSON integer compares exactly
            return v
        raise BadValue(f"{shown(v)} does not fit in {dtype} "
                       f"(largest magnitude {float_largest(dtype):.8g})")

    return conform


def _conform_bool(v: Any) -> bool | None:
    if type(v) is bool:
        return v
    flag = to_bool(v)
    if flag is None:
        if is_null(v):
            return None
        raise BadValue(f"expected true or false, got {shown(v)}")
    return flag


def _conform_text(v: Any) -> str | None:
    if type(v) is not str:
        if isinstance(v, str):
            v = str(v)
        elif v is None or (is_null(v) and not isinstance(v, dict | list | tuple)):
            return None
        elif isinstance(v, numbers.Integral) and not (
                isinstance(v, bool) or _numpy_bool(type(v))):
            return str(int(v))  # category codes sent as numbers
        else:
            raise BadValue(f"expected a string, got {shown(v)}")
    elif v.isascii() and "\x00" not in v:
        return v
    if (problem := bad_text(v)) is not None:
        raise BadValue(problem)
    return v


def _conform_datetime(v: Any) -> Any:
    if isinstance(v, str):
        # Accept what both pandas and the ISO 8601 parser read (fromisoformat alone
        # takes week dates pandas can't).
        import pandas as pd

        try:
            dt.datetime.fromisoformat(v)
            pd.Timestamp(v)
        except ValueError:  # pandas' DateParseError is a ValueError
            raise BadValue(f"expected an ISO 8601 datetime, got {shown(v)}") from None
        return v
    if isinstance(v, dt.datetime) or type(v).__name__ in ("Timestamp", "datetime64"):
        return None if is_null(v) else v
    if v is None or (not isinstance(v, dict | list | tuple) and is_null(v)):
        return None
    raise BadValue(f"expected an ISO 8601 datetime, got {shown(v)}")


def _conform_other(v: Any) -> Any:
    t = type(v)
    if t is int or t is bool:
        return v
    if t is str:
        if (not v.isascii() or "\x00" in v) and (problem := bad_text(v)) is not None:
            raise BadValue(problem)
        return v
    if t is float:
        return v if v == v else None
    if t is dict or t is list or t is tuple:
        raise BadValue("expected a single value, got "
                       f"{'an object' if t is dict else 'a list'}: {shown(v)}")
    return None if is_null(v) else v


def _ints_outside(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Integers outside [low, high], compared exactly (2**53 + 1 > 2.0**53, as in Python)."""
    import math

    import numpy as np

    info = np.iinfo(array.dtype)
    outside = np.zeros(len(array), dtype=bool)
    if math.isfinite(low):
        bound = math.ceil(low)
        if bound > info.max:
            return np.ones(len(array), dtype=bool)  # no value of the dtype is inside
        if bound > info.min:
            outside |= array < array.dtype.type(bound)
    if math.isfinite(high):
        bound = math.floor(high)
        if bound < info.min:
            return np.ones(len(array), dtype=bool)  # no value of the dtype is inside
        if bound < info.max:
            outside |= array > array.dtype.type(bound)
    return outside


def _types(objects: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.frompyfunc(type, 1, 1)(objects) if len(objects) else objects


def _pairs(codes: np.ndarray, type_codes: np.ndarray, objects: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Codes of distinct (value, type) pairs and one value of each."""
    import numpy as np

    combined = codes.astype(np.int64) * (int(type_codes.max()) + 1) + type_codes
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    return inverse.reshape(-1), objects[first]


__all__ = [
    "BOOL", "BOOLEAN", "BOOL_TEXT", "CATEGORICAL", "CATEGORICAL_MAX_DISTINCT", "CATEGORY",
    "DATETIME", "FLOAT", "INTEGER", "NULL", "NUMERIC", "OBJECT", "OTHER", "OUT_OF_RANGE",
    "STRING", "TEXT", "TYPE", "UNKNOWN_CATEGORY", "BadValue", "ColumnRule", "Judgement",
    "bad_text", "dtype_name", "family", "float_overflow", "int_bounds", "is_null",
    "is_numeric", "number_from_text", "read_text_cells", "shown", "statistical_kind", "to_bool",
    "values_family",
]
