"""Check request columns against a model signature before the model sees them.

Each problem names its field and row (the body of a 422). Two values are matters of
policy rather than errors: a category the training data never had, and a number outside
the training range. Each is either rejected or accepted and flagged on its row; both are
always counted. A value is always one value of its column's kind: never a JSON object or
array, never a number its dtype cannot hold (1e39 in a float32 column would become
infinity), never text that is not valid Unicode (a lone surrogate) or holds NUL. Small requests are checked value by value in Python (cheaper than NumPy's
per-call overhead for one row); large numeric columns (batch scoring) are checked with
NumPy, with the same rules.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ratchet.errors import InvalidInput, RequestInvalid
from ratchet.packaging.signature import BOOL, CATEGORY, STRING, ColumnSpec, Signature
from ratchet.serving.request_formats import (
    CSV_NULLS,
    EXTRA_COLUMNS_ALLOWANCE,
    MISSING,
    BadRequest,
    ParsedRequest,
    ParseLimits,
)

REJECT, FLAG, IGNORE = "reject", "flag", "ignore"
UNKNOWN_CATEGORY, OUT_OF_RANGE = "unknown_category", "out_of_range"
MAX_REPORTED_PROBLEMS = 100
_VECTORIZE_FROM_ROWS = 512
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}
_INT_LIMIT = 2**63
_FLOAT_MAX = sys.float_info.max
# JSON parsers accept Infinity (and 1e400 overflows to it); no model can use it.
_INFINITE = (float("inf"), float("-inf"))
# Columns a request may carry besides the inputs and the allowed extras when extras are
# rejected anyway: enough for a useful list of them, and a bound on the parser's work.
_REJECTED_EXTRA_SLACK = 64
_MAX_SHOWN = 60  # characters of a value quoted in a message


@dataclass(frozen=True)
class ValidationPolicy:
    """What to do with values that are valid but unlike the training data."""

    unknown_category: str = REJECT
    out_of_range: str = FLAG
    extra_columns: str = REJECT
    max_rows: int = 10_000

    def __post_init__(self) -> None:
        for name, allowed in (("unknown_category", (REJECT, FLAG)),
                              ("out_of_range", (REJECT, FLAG)),
                              ("extra_columns", (REJECT, IGNORE))):
            if getattr(self, name) not in allowed:
                raise InvalidInput(f"validation policy {name}: expected one of "
                                   f"{', '.join(allowed)}, got {getattr(self, name)!r}")
        if not isinstance(self.max_rows, int) or self.max_rows < 1:
            raise InvalidInput(f"validation policy max_rows: expected a positive integer, "
                               f"got {self.max_rows!r}")


@dataclass
class ValidatedRequest:
    columns: dict[str, Any]            # signature order; lists, or arrays for big batches
    n_rows: int
    flags: list[list[str] | None] | None  # per row (None: clean row); None: no flags at all
    flag_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    extras: dict[str, Any] = field(default_factory=dict)  # allowed non-model columns


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.total = 0
        self.by_field: Counter[tuple[str, str]] = Counter()

    def add(self, row: int | None, name: str, kind: str, msg: str) -> None:
        self.total += 1
        self.by_field[(name, kind)] += 1
        if len(self.items) < MAX_REPORTED_PROBLEMS:
            loc: list[Any] = ["body", "inputs"] + ([] if row is None else [row]) + [name]
            where = f"row {row}, " if row is not None else ""
            self.items.append({"loc": loc, "msg": f"{where}column {_shown(name)}: {msg}",
                               "type": kind})

    def count(self, name: str, kind: str, n: int) -> None:
        """Problems beyond the reported ones: counted, not described."""
        self.total += n
        self.by_field[(name, kind)] += n


class RequestValidator:
    """Compiled once per model version; ``validate`` runs on every request."""

    def __init__(self, signature: Signature | None, policy: ValidationPolicy | None = None,
                 *, allowed_extra: Sequence[str] = ()) -> None:
        self.signature = signature
        self.policy = policy or ValidationPolicy()
        self.names = signature.input_names if signature else []
        self.allowed_extra = frozenset(allowed_extra)
        self._names_set = frozenset(self.names)
        self._checks = [(spec.name, _checker(spec, self.policy))
                        for spec in (signature.inputs if signature else ())]
        self._numeric = frozenset(spec.name for spec in (signature.inputs if signature else ())
                                  if _is_numeric(spec.dtype))
        # The bounds to parse this model's requests with (``parse_native(..., limits=)``):
        # room for every input and allowed extra, plus a few more (extras rejected) or
        # ``EXTRA_COLUMNS_ALLOWANCE`` (extras ignored); the policy's rows.
        slack = (_REJECTED_EXTRA_SLACK if self.policy.extra_columns == REJECT
                 else EXTRA_COLUMNS_ALLOWANCE)
        self.parse_limits = ParseLimits(
            max_columns=len(self.names) + len(self.allowed_extra) + slack,
            max_rows=self.policy.max_rows)

    def validate(self, request: ParsedRequest) -> ValidatedRequest:
        n = request.n_rows
        if n > self.policy.max_rows:
            raise BadRequest(f"{n} rows in one request; the limit is {self.policy.max_rows} "
                             "(send smaller requests or use `ratchet predict` for batches)",
                             status=413)
        if n == 0:
            raise BadRequest("the request has no rows")
        given: dict[str, Any] = request.columns
        if request.text_cells:
            given = {name: _from_text(values, name in self._numeric)
                     for name, values in given.items()}
        problems = _Problems()
        if self.signature is None:  # nothing to check against: single values, as given
            for name, column in given.items():
                _check_plain(column, name, problems)
            if problems.total:
                raise RequestInvalid(problems.items, problems.total)
            return ValidatedRequest(dict(given), n, None)
        extras = {k: v for k, v in given.items() if k in self.allowed_extra}
        for name, extra in extras.items():  # logged, and a routing key is hashed
            _check_plain(extra, name, problems)
        if self.policy.extra_columns == REJECT:
            for name in given:
                if name not in self.allowed_extra and name not in self._names_set:
                    problems.add(None, name, "extra", "not an input of the model "
                                 f"(inputs: {_shown_names(self.names)})")
        columns: dict[str, Any] = {}
        flags: list[list[str] | None] | None = None  # per row; None where nothing was flagged
        flag_counts: Counter[tuple[str, str]] = Counter()
        for name, check in self._checks:
            values = given.get(name)
            if values is None:
                problems.add(None, name, "missing", "missing")
                continue
            conformed, flagged = check(values, problems)
            columns[name] = conformed
            if not flagged:
                continue
            if flags is None:
                flags = [None] * n
            texts: dict[str, str] = {}
            for row, flag in flagged:
                text = texts.get(flag) or texts.setdefault(flag, f"{name}:{flag}")
                if (marks := flags[row]) is None:
                    flags[row] = [text]
                else:
                    marks.append(text)
            flag_counts.update((name, flag) for _, flag in flagged)
        if problems.total:
            raise RequestInvalid(problems.items, problems.total)
        return ValidatedRequest(columns, n, flags, flag_counts, extras)


# A checker conforms one column and returns (values, [(row, flag), ...]); problems go to
# the collector. Columns are lists from JSON, or NumPy/pandas arrays from batch files.
Checker = Callable[[Any, _Problems], tuple[Any, list[tuple[int, str]]]]


def _checker(spec: ColumnSpec, policy: ValidationPolicy) -> Checker:
    dtype = spec.dtype
    if dtype.startswith(("int", "uint", "float")):
        return _numeric_checker(spec, policy)
    if dtype in (STRING, CATEGORY):
        return _text_checker(spec, policy)
    if dtype == BOOL:
        return _bool_checker(spec)
    if dtype.startswith("datetime64"):
        return _datetime_checker(spec)
    # object, timedelta and friends are passed through (the model decides), one value
    # per row.
    def check(values: Any, problems: _Problems) -> tuple[Any, list[tuple[int, str]]]:
        return _check_plain(values, spec.name, problems), []

    return check


def _check_plain(values: Any, name: str, problems: _Problems) -> list[Any]:
    """One value per row: a scalar (not a JSON object or array), text that is valid
    Unicode without NUL; anything else is a problem on its row."""
    values = _as_list(values)
    for i, v in enumerate(values):
        t = type(v)
        if t is str:
            if (bad := _bad_text(v)) is not None:
                problems.add(i, name, "type", bad)
        elif t is dict or t is list or t is tuple:
            if not _absent(v, i, name, problems):
                problems.add(i, name, "type", "expected a single value, got "
                             f"{'an object' if t is dict else 'a list'}: {_shown(v)}")
        else:
            _absent(v, i, name, problems)
    return values


def _bad_text(v: str) -> str | None:
    """Why a string cannot be stored and read back as sent (None: it can)."""
    if not v.isascii():
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from "\\ud800" in JSON
            return (f"text with a lone surrogate {v[exc.start]!r} at position {exc.start}, "
                    f"which is not valid Unicode: {_shown(v)}; send UTF-8 text")
    if "\x00" in v:  # cut short by C libraries and refused by PostgreSQL text
        return f"text with a NUL character at position {v.index(chr(0))}: {_shown(v)}"
    return None


def _shown_names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:20])
    return shown + (f", … ({len(names) - 20} more)" if len(names) > 20 else "")


def _shown(v: Any) -> str:
    """A value for a message: its repr, cut short."""
    text = repr(v)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN - 1] + "…"


def _is_numeric(dtype: str) -> bool:
    return dtype.startswith(("int", "uint", "float"))


def _from_text(values: Any, numeric: bool) -> Any:
    """CSV cells as values: the pandas null markers become None and, for a numeric column,
    numbers become numbers (what does not parse stays text, a problem on its row only)."""
    if not isinstance(values, list):
        return values  # a typed array (batch scoring): already values
    out = []
    for v in values:
        if type(v) is str:
            if v in CSV_NULLS:
                v = None
            elif numeric and "_" not in v:  # int() and float() read "1_000"; pandas does not
                v = _text_number(v)
        out.append(v)
    return out


def _text_number(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def _null(v: Any) -> bool:
    return v is None or (type(v) is float and v != v)


def _absent(v: Any, row: int, name: str, problems: _Problems) -> bool:
    if v is MISSING:
        problems.add(row, name, "missing", "missing in this row")
        return True
    return False


def _numeric_checker(spec: ColumnSpec, policy: ValidationPolicy) -> Checker:
    name, nullable = spec.name, spec.nullable
    integer = spec.dtype.startswith(("int", "uint"))
    low = spec.min if spec.min is not None else float("-inf")
    high = spec.max if spec.max is not None else float("inf")
    reject_range = policy.out_of_range == REJECT
    kind = "an integer" if integer else "a number"
    int_min, int_max = _int_bounds(spec.dtype) if integer else (0, 0)
    overflow = 0 if integer else _float_overflow(spec.dtype)

    def check(values: Any, problems: _Problems) -> tuple[Any, list[tuple[int, str]]]:
        if not isinstance(values, list) and len(values) >= _VECTORIZE_FROM_ROWS:
            vectorized = _numeric_array(values, spec, policy, problems)
            if vectorized is not None:
                return vectorized
        values = _as_list(values)
        out: list[Any] = values
        flagged: list[tuple[int, str]] = []
        # One verdict per row, first rule that applies; _numeric_array applies the same
        # rules in the same order.
        for i, v in enumerate(values):
            t = type(v)
            if t is not float and t is not int:
                if v is None:
                    if not nullable:
                        problems.add(i, name, "null", "null, but the training data had none")
                    continue
                if _absent(v, i, name, problems):
                    continue
                converted = _number(v)  # NumPy scalars; a NumPy NaN is a null below
                if converted is None:
                    problems.add(i, name, "type", f"expected {kind}, got {_shown(v)}")
                    continue
                if out is values:
                    out = list(values)
                out[i] = v = converted
                t = type(v)
            if t is float:
                if v != v:
                    if not nullable:
                        problems.add(i, name, "null", "null, but the training data had none")
                    continue
                if v in _INFINITE:
                    problems.add(i, name, "type", f"expected a finite number, got {v!r}")
                    continue
                if integer:
                    if not v.is_integer():
                        problems.add(i, name, "type", f"expected {kind}, got {v!r}")
                        continue
                    if out is values:
                        out = list(values)
                    out[i] = v = int(v)
            if integer:
                if not int_min <= v <= int_max:
                    problems.add(i, name, "type", f"{_shown(v)} does not fit in {spec.dtype}")
                    continue
            elif not -overflow < v < overflow:  # 1e39 in a float32, a huge JSON integer
                problems.add(i, name, "type", _float_message(v, spec.dtype))
                continue
            if v < low or v > high:
                if reject_range:
                    problems.add(i, name, OUT_OF_RANGE,
                                 f"{v!r} is outside the training range [{low:g}, {high:g}]")
                else:
                    flagged.append((i, OUT_OF_RANGE))
        return out, flagged

    return check


def _float_overflow(dtype: str) -> int:
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


def _float_message(v: float | int, dtype: str) -> str:
    import numpy as np

    try:
        largest = float(np.finfo(np.dtype(dtype)).max)
    except (TypeError, ValueError):
        largest = _FLOAT_MAX
    return f"{_shown(v)} does not fit in {dtype} (largest magnitude {largest:.8g})"


def _int_bounds(dtype: str) -> tuple[int, int]:
    """The values an integer column's dtype holds (int8 … uint64)."""
    import numpy as np

    try:
        info = np.iinfo(np.dtype(dtype))
    except TypeError:
        return -_INT_LIMIT, _INT_LIMIT - 1
    return int(info.min), int(info.max)


def _number(v: Any) -> float | int | None:
    """NumPy scalars (from files) count as numbers; bools and text do not."""
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return None
    try:
        import numbers

        if isinstance(v, numbers.Integral):
            return int(v)
        if isinstance(v, numbers.Real):
            return float(v)
    except (TypeError, ValueError, OverflowError):
        pass
    return None


def _numeric_array(values: Any, spec: ColumnSpec, policy: ValidationPolicy,
                   problems: _Problems) -> tuple[Any, list[tuple[int, str]]] | None:
    """The NumPy path for a numeric array; None when the array is not numeric.

    The same rules as the Python path, one verdict per row (null, then type, then range),
    and problems reported in row order, so both paths report the same problems.
    """
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind not in "iuf" or array.ndim != 1:
        return None
    name = spec.name
    integer = spec.dtype.startswith(("int", "uint"))
    low = spec.min if spec.min is not None else -np.inf
    high = spec.max if spec.max is not None else np.inf
    none = np.zeros(len(array), dtype=bool)
    nulls, bad = none, none
    with np.errstate(invalid="ignore", over="ignore"):  # float16 vs 2**63: inf, as it should
        if array.dtype.kind == "f":
            nulls = np.isnan(array)
            bad = np.isinf(array)
            if integer:
                int_min, int_max = _int_bounds(spec.dtype)
                bad = bad | (~nulls & ((array != np.round(array)) | (array < int_min)
                                       | (array >= float(int_max) + 1)))
        elif integer:
            int_min, int_max = _int_bounds(spec.dtype)
            bad = (array < int_min) | (array > int_max)  # e.g. int64 values for an int32
        if not integer and spec.dtype in ("float16", "float32"):  # else never past float64
            overflow = float(_float_overflow(spec.dtype))  # exact in float64
            bad = bad | (array >= overflow) | (array <= -overflow)
        outside = ~nulls & ~bad & ((array < low) | (array > high))
    reject_range = policy.out_of_range == REJECT
    null_problem = none if spec.nullable else nulls
    rejected = null_problem | bad | (outside if reject_range else none)
    rows = np.flatnonzero(rejected)
    for i in rows[:MAX_REPORTED_PROBLEMS].tolist():
        v = array[i].item()
        if null_problem[i]:
            problems.add(i, name, "null", "null, but the training data had none")
        elif bad[i]:
            problems.add(i, name, "type", _numeric_type_message(v, spec))
        else:
            shown = int(v) if integer else v  # 99, not 99.0, as the Python path says
            problems.add(i, name, OUT_OF_RANGE,
                         f"{shown!r} is outside the training range [{low:g}, {high:g}]")
    rest = rows[MAX_REPORTED_PROBLEMS:]
    if len(rest):  # beyond what a response shows: counted, not described
        for kind, mask in (("null", null_problem), ("type", bad), (OUT_OF_RANGE, outside)):
            problems.count(name, kind, int(np.count_nonzero(mask[rest])))
    flagged = [] if reject_range else [(i, OUT_OF_RANGE) for i in np.flatnonzero(outside).tolist()]
    return array, flagged


def _numeric_type_message(v: float | int, spec: ColumnSpec) -> str:
    """The Python path's message for a row the NumPy path found of the wrong type."""
    if isinstance(v, float) and v in _INFINITE:
        return f"expected a finite number, got {v!r}"
    if not spec.dtype.startswith(("int", "uint")):
        return _float_message(v, spec.dtype)
    if isinstance(v, float) and not v.is_integer():
        return f"expected an integer, got {v!r}"
    return f"{_shown(int(v))} does not fit in {spec.dtype}"


def _text_checker(spec: ColumnSpec, policy: ValidationPolicy) -> Checker:
    name, nullable = spec.name, spec.nullable
    known = frozenset(spec.categories) if spec.categories is not None else None
    reject_unknown = policy.unknown_category == REJECT
    shown = ", ".join(repr(c) for c in (spec.categories or ())[:10])

    def check(values: Any, problems: _Problems) -> tuple[Any, list[tuple[int, str]]]:
        values = _as_list(values)
        out: list[Any] = values
        flagged: list[tuple[int, str]] = []
        for i, v in enumerate(values):
            if type(v) is not str:
                if _absent(v, i, name, problems):
                    continue
                if _null(v):
                    if not nullable:
                        problems.add(i, name, "null", "null, but the training data had none")
                    continue
                if isinstance(v, bool) or not isinstance(v, int):
                    problems.add(i, name, "type", f"expected a string, got {_shown(v)}")
                    continue
                if out is values:
                    out = list(values)
                out[i] = v = str(v)  # category codes sent as numbers
            elif (bad := _bad_text(v)) is not None:
                problems.add(i, name, "type", bad)
                continue
            if known is not None and v not in known:
                if reject_unknown:
                    problems.add(i, name, UNKNOWN_CATEGORY,
                                 f"unknown category {_shown(v)} (known: {shown}"
                                 f"{' …' if len(known) > 10 else ''})")
                else:
                    flagged.append((i, UNKNOWN_CATEGORY))
        return out, flagged

    return check


def _bool_checker(spec: ColumnSpec) -> Checker:
    name, nullable = spec.name, spec.nullable

    def check(values: Any, problems: _Problems) -> tuple[Any, list[tuple[int, str]]]:
        out: list[bool | None] = []
        for i, v in enumerate(_as_list(values)):
            if type(v) is bool:
                out.append(v)
            elif _absent(v, i, name, problems):
                out.append(None)
            elif _null(v):
                if not nullable:
                    problems.add(i, name, "null", "null, but the training data had none")
                out.append(None)
            elif type(v) in (int, float) and v in (0, 1):
                out.append(bool(v))
            elif isinstance(v, str) and v.strip().lower() in _BOOL_TEXT:
                out.append(_BOOL_TEXT[v.strip().lower()])
            else:
                problems.add(i, name, "type", f"expected true or false, got {_shown(v)}")
                out.append(None)
        return out, []

    return check


def _datetime_checker(spec: ColumnSpec) -> Checker:
    import pandas as pd

    name, nullable = spec.name, spec.nullable

    def check(values: Any, problems: _Problems) -> tuple[Any, list[tuple[int, str]]]:
        values = _as_list(values)
        for i, v in enumerate(values):
            if _absent(v, i, name, problems):
                continue
            if _null(v):
                if not nullable:
                    problems.add(i, name, "null", "null, but the training data had none")
            elif isinstance(v, str):
                # The model input is built with pandas: accept what both it and the
                # ISO 8601 parser read (fromisoformat alone takes week dates pandas can't).
                try:
                    dt.datetime.fromisoformat(v)
                    pd.Timestamp(v)
                except ValueError:  # pandas' DateParseError is a ValueError
                    problems.add(i, name, "type",
                                 f"expected an ISO 8601 datetime, got {_shown(v)}")
            elif not isinstance(v, dt.datetime) and type(v).__name__ != "Timestamp":
                problems.add(i, name, "type",
                             f"expected an ISO 8601 datetime, got {_shown(v)}")
        return values, []

    return check


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, list):
        return values
    tolist = getattr(values, "tolist", None)
    return tolist() if tolist is not None else list(values)


def validate_mapping(validator: RequestValidator, columns: Mapping[str, Any], n_rows: int
                     ) -> ValidatedRequest:
    """Validate already-columnar data (batch scoring) with the request rules."""
    return validator.validate(ParsedRequest(dict(columns), n_rows))
