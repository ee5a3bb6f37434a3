"""Data quality of production traffic: missing values, and, against the model's signature,
out-of-range numbers, unknown categories, values of the wrong type, nulls where none are
allowed and missing columns; against a reference frame, the change in missing rates.

Every check is a vectorized pandas/NumPy operation over a column, never a loop over rows.

Column names: a plain frame (``age``, ``plan``) or the prediction log as read by
``ratchet.serving.prediction_query.predictions`` (``input.age``, ``input.plan`` next to
``timestamp``, ``output.prediction`` ...). ``prefix`` says which: ``"input."`` checks only
the columns named ``input.<name>`` and reports them as ``<name>``, ``""`` checks every
column as named, and None (the default) picks ``"input."`` when the frame has such columns
and ``""`` otherwise. ``reference_prefix`` does the same for the reference frame.

What a check means, per signature dtype: the column contract's rules
(``ratchet.columns.ColumnRule``), the very rules serving's request validation applies, so
a row serving accepts never counts as a violation here and a row it rejects always does
(a property test holds the two to it):

- numbers: a value that is not a number (text such as ``"abc"`` or ``"42"``, a boolean, a
  datetime), for an integer dtype a fractional value, or a number the dtype cannot hold
  (``300`` in an ``int8``, ``1e39`` in a ``float32``) is a type violation; numbers outside
  the signature's ``[min, max]`` are out of range;
- booleans: anything but true/false, 1/0 (as values, or as the text in
  ``ratchet.columns.BOOL_TEXT``) is a type violation;
- strings and categories: text (valid Unicode, no NUL) and whole numbers (codes); floats
  and booleans are type violations; values outside the signature's categories are unknown
  categories;
- datetimes: datetime values and ISO 8601 text; anything else is a type violation;
- anything else (``object``): a single value, not an object or a list.

In the prediction log (``input.`` columns), a column that held values of mixed kinds is
stored as text: there, text in a numeric column is read as the number it spells
(``ratchet.columns.number_from_text``), as serving reads a CSV cell.

Missing values never count as violations of the dtype; in a column the signature does not
declare nullable, each one is a null violation.

Infinite numbers (``inf``, ``-inf``) in a numeric column are an issue of their own
(``non_finite``, counted apart from the type violations), in the current data and in the
reference (``reference_non_finite``), and not counted as out of range: no model input
should be infinite, and the drift tests leave them out (one would make a statistic NaN).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ratchet.columns import NUMBER_FAMILIES, ColumnRule, dtype_name, read_text_cells
from ratchet.data.profile_compare import NULL_RATE_THRESHOLD
from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ratchet.packaging.signature import ColumnSpec, Signature

INPUT_PREFIX = "input."
# A rise in the missing rate above this is an issue (profile comparison's threshold).
DEFAULT_MISSING_TOLERANCE = NULL_RATE_THRESHOLD
_EXAMPLES = 3


@dataclass(frozen=True)
class ColumnQuality:
    """One column. A count is None when it was not checked (no signature, no bounds, no
    categories, or a dtype without a rule)."""

    column: str
    dtype: str                       # as observed
    expected_dtype: str | None       # from the signature
    missing: int
    missing_rate: float | None       # None without rows
    out_of_range: int | None
    unknown_categories: int | None
    type_violations: int | None
    null_violations: int | None
    non_finite: int | None           # inf / -inf; None: not a numeric column
    reference_missing_rate: float | None
    missing_rate_change: float | None   # current - reference
    reference_non_finite: int | None
    issues: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["issues"] = list(self.issues)
        return data


@dataclass(frozen=True)
class QualityReport:
    rows: int
    columns: tuple[ColumnQuality, ...]
    missing_columns: tuple[str, ...]   # in the signature (or reference), not in the data
    extra_columns: tuple[str, ...]     # in the data, not in the signature (or reference)

    @property
    def issues(self) -> int:
        """Problems found: one per missing column and per sentence of a column."""
        return len(self.missing_columns) + sum(len(c.issues) for c in self.columns)

    @property
    def messages(self) -> list[str]:
        """Every problem as one line, e.g. for a log."""
        return ([f"column {c!r} is missing" for c in self.missing_columns]
                + [f"column {c.column!r}: {issue}" for c in self.columns for issue in c.issues])

    def column(self, name: str) -> ColumnQuality:
        for column in self.columns:
            if column.column == name:
                return column
        raise InvalidInput(f"no column {name!r} in the report; it has "
                           f"{', '.join(c.column for c in self.columns)}")

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": [c.to_dict() for c in self.columns],
                "missing_columns": list(self.missing_columns),
                "extra_columns": list(self.extra_columns), "issues": self.issues}


def quality_report(current: pd.DataFrame, signature: Signature | None = None,
                   reference: pd.DataFrame | None = None, *, prefix: str | None = None,
                   reference_prefix: str | None = None,
                   missing_tolerance: float = DEFAULT_MISSING_TOLERANCE) -> QualityReport:
    """Quality of ``current`` (see the module docstring for the checks and ``prefix``).

    The expected columns are the signature's inputs, else the reference's columns; those
    absent from ``current`` are ``missing_columns`` and the others present are
    ``extra_columns`` (reported, not an issue: serving ignores them). Columns come in the
    signature's order, then the extra ones. With a reference, a column whose missing rate
    rose by more than ``missing_tolerance`` (absolute, default 5 points) has an issue.
    """
    import pandas as pd

    for name, frame in (("current", current), ("reference", reference)):
        if frame is not None and not isinstance(frame, pd.DataFrame):
            raise InvalidInput(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    if signature is not None and not hasattr(signature, "inputs"):
        raise InvalidInput(f"signature must be a ratchet Signature, got "
                           f"{type(signature).__name__}")
    if isinstance(missing_tolerance, bool) or not isinstance(missing_tolerance, int | float) \
            or not 0 <= missing_tolerance <= 1:
        raise InvalidInput(f"missing_tolerance must be a rate in [0, 1], got "
                           f"{missing_tolerance!r}")
    data, logged = _columns(current, prefix, "prefix")
    ref = None if reference is None else _columns(reference, reference_prefix,
                                                  "reference_prefix")[0]
    specs = {spec.name: spec for spec in signature.inputs} if signature is not None else {}
    if signature is not None:
        expected: list[str] | None = list(specs)
    elif ref is not None:
        expected = list(ref)
    else:
        expected = None
    if expected is None:
        names, missing, extra = list(data), [], []
    else:
        missing = [c for c in expected if c not in data]
        extra = [c for c in data if c not in set(expected)]
        names = [c for c in expected if c in data] + extra
    rows = len(current)
    columns = []
    for name in names:
        reference_rate = reference_inf = None
        if ref is not None and reference is not None and name in ref and len(reference):
            reference_values = reference[ref[name]]
            reference_rate = float(reference_values.isna().mean())
            reference_inf = _infinite(reference_values)
        columns.append(_column(name, current[data[name]], specs.get(name), reference_rate,
                               reference_inf, missing_tolerance, logged))
    return QualityReport(rows, tuple(columns), tuple(missing), tuple(extra))


def _columns(frame: pd.DataFrame, prefix: str | None, what: str
             ) -> tuple[dict[str, Any], bool]:
    """Reported name -> the frame's column label; and whether they are the prediction
    log's ``input.`` columns."""
    if prefix is not None and not isinstance(prefix, str):
        raise InvalidInput(f"{what} must be a string such as {INPUT_PREFIX!r}, '' (plain "
                           f"column names) or None (detect), got {prefix!r}")
    labels = {str(c): c for c in frame.columns}
    if prefix is None:
        prefix = INPUT_PREFIX if any(n.startswith(INPUT_PREFIX) for n in labels) else ""
    if not prefix:
        return labels, False
    return ({n[len(prefix):]: c for n, c in labels.items() if n.startswith(prefix)},
            prefix == INPUT_PREFIX)


def _infinite(values: pd.Series) -> int | None:
    """inf / -inf in a numeric column (None for other dtypes)."""
    import numpy as np
    from pandas.api import types

    if getattr(values, "ndim", 1) != 1 or types.is_bool_dtype(values.dtype) or \
            not types.is_numeric_dtype(values.dtype):
        return None
    return int(np.isinf(values.to_numpy(dtype=np.float64, na_value=np.nan)).sum())


def _column(name: str, values: pd.Series, spec: ColumnSpec | None,
            reference_rate: float | None, reference_inf: int | None,
            tolerance: float, logged: bool = False) -> ColumnQuality:
    if getattr(values, "ndim", 1) != 1:
        raise InvalidInput(f"column {name!r} appears more than once")
    rows = len(values)
    observed = dtype_name(values)
    issues: list[str] = []
    out_of_range = unknown = type_bad = null_bad = None
    if spec is None:
        nulls = values.isna().to_numpy()
        infinite = _infinite(values)
    else:
        rule = ColumnRule.of(spec)
        if logged and rule.family in NUMBER_FAMILIES:
            values = read_text_cells(values)
        judged = rule.judge(values)
        nulls = judged.nulls
        null_bad = 0 if spec.nullable else int(nulls.sum())
        if null_bad:
            issues.append(f"{_count(null_bad, rows, 'null')} but the column is not nullable")
        wrong = judged.bad & ~judged.non_finite
        type_bad = int(wrong.sum())
        if type_bad:
            issues.insert(0, f"{_count(type_bad, rows, 'value')} not of type {spec.dtype}, "
                             f"e.g. {_examples(values, wrong)}")
        if judged.outside is not None:
            out_of_range = int(judged.outside.sum())
            if out_of_range:
                issues.append(f"{_count(out_of_range, rows, 'value')} outside the training "
                              f"range [{_fmt(spec.min, '-inf')}, {_fmt(spec.max, 'inf')}], "
                              f"e.g. {_examples(values, judged.outside)}")
        if judged.unknown is not None:
            unknown = int(judged.unknown.sum())
            if unknown:
                issues.append(f"{_count(unknown, rows, 'unknown category', 'unknown categories')}"
                              f", e.g. {_examples(values, judged.unknown)}")
        infinite = int(judged.non_finite.sum()) if rule.family in NUMBER_FAMILIES else None
    missing = int(nulls.sum())
    rate = missing / rows if rows else None
    if infinite:
        issues.append(f"{_count(infinite, rows, 'infinite value')}, left out of the drift "
                      "tests")
    if reference_inf:
        issues.append(f"the reference has {reference_inf} infinite value"
                      f"{'' if reference_inf == 1 else 's'}, left out of the drift tests")
    change = None
    if reference_rate is not None and rate is not None:
        change = rate - reference_rate
        if change > tolerance and not null_bad:
            issues.append(f"missing rate {rate:.1%}, up from {reference_rate:.1%} in the "
                          "reference")
    return ColumnQuality(name, observed, None if spec is None else spec.dtype,
                         missing, rate, out_of_range, unknown, type_bad, null_bad, infinite,
                         reference_rate, change, reference_inf, tuple(issues))


def _count(n: int, rows: int, noun: str, plural: str | None = None) -> str:
    word = noun if n == 1 else (plural or f"{noun}s")
    return f"{n} {word} ({n / rows:.1%})"


def _examples(values: pd.Series, mask: np.ndarray) -> str:
    """The most frequent offending values (one value_counts over the offending rows)."""
    offending = values[mask].astype(object)
    try:
        index = list(offending.value_counts(dropna=True).index)
    except TypeError:  # unhashable values (objects, lists): the first ones
        index = offending.head(_EXAMPLES).tolist()
    shown = [repr(v.item() if type(v).__module__ == "numpy" else v)
             for v in index[:_EXAMPLES]]
    more = len(index) - _EXAMPLES
    return ", ".join(shown) + (f" (and {more} more distinct)" if more > 0 else "")


def _fmt(bound: float | None, unbounded: str) -> str:
    return unbounded if bound is None else f"{bound:g}"


__all__ = ["ColumnQuality", "QualityReport", "quality_report"]
