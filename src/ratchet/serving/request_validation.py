"""Check request columns against a model signature before the model sees them.

Each problem names its field and row (the body of a 422). Two values are matters of
policy rather than errors: a category the training data never had, and a number outside
the training range. Each is either rejected or accepted and flagged on its row; both are
always counted. A value is always one value of its column's kind: never a JSON object or
array, never a number its dtype cannot hold (1e39 in a float32 column would become
infinity), never text that is not valid Unicode (a lone surrogate) or holds NUL. What
belongs to a column's kind is the column contract's (``ratchet.columns``): this module
applies it to requests and says which policy a problem falls under. Small requests are
checked value by value in Python (``ColumnRule.conform``, cheaper than NumPy's per-call
overhead for one row); large numeric columns (batch scoring) are checked with NumPy
(``ColumnRule.judge``), with the same rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ratchet.columns import (
    BOOLEAN,
    NULL,
    NUMBER_FAMILIES,
    OBJECT,
    OUT_OF_RANGE,
    TEXT,
    TYPE,
    UNKNOWN_CATEGORY,
    BadValue,
    ColumnRule,
    is_numeric,
    number_from_text,
)
from ratchet.columns import shown as _shown
from ratchet.errors import InvalidInput, RequestInvalid
from ratchet.packaging.signature import ColumnSpec, Signature
from ratchet.serving.request_formats import (
    CSV_NULLS,
    EXTRA_COLUMNS_ALLOWANCE,
    MISSING,
    BadRequest,
    ParsedRequest,
    ParseLimits,
)

REJECT, FLAG, IGNORE = "reject", "flag", "ignore"
MAX_REPORTED_PROBLEMS = 100
_VECTORIZE_FROM_ROWS = 512
# Columns a request may carry besides the inputs and the allowed extras when extras are
# rejected anyway: enough for a useful list of them, and a bound on the parser's work.
_REJECTED_EXTRA_SLACK = 64


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
                                  if is_numeric(spec.dtype))
        # The bounds to parse this model's requests with (``parse_native(..., limits=)``):
        # room for every input and allowed extra, plus a few more (extras rejected) or
        # ``EXTRA_COLUMNS_ALLOWANCE`` (extras ignored); the policy's rows.
        slack = (_REJECTED_EXTRA_SLACK if self.policy.extra_columns == REJECT
                 else EXTRA_COLUMNS_ALLOWANCE)
        self.parse_limits = ParseLimits(
            max_columns=len(self.names) + len(self.allowed_extra) + slack,
            max_rows=self.policy.max_rows)

    def validate(self, request: ParsedRequest, *, now_ms: int | None = None
                 ) -> ValidatedRequest:
        """``now_ms``: unused here (a model served from entity keys reads its features as
        of it, ``feature_lookup.FeatureRequestValidator``)."""
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
    rule = ColumnRule.of(spec)
    if rule.family in NUMBER_FAMILIES:
        return _numeric_checker(spec, rule, policy)
    if rule.family == TEXT:
        return _text_checker(spec, rule, policy)
    # booleans, datetimes, and object, timedelta and friends (passed through: the model
    # decides), one value per row.
    return _value_checker(spec, rule)


_PLAIN = ColumnRule(OBJECT)


def _check_plain(values: Any, name: str, problems: _Problems) -> list[Any]:
    """One value per row: a scalar (not a JSON object or array), text that is valid
    Unicode without NUL; anything else is a problem on its row."""
    values = _as_list(values)
    conform = _PLAIN.conform
    for i, v in enumerate(values):
        if v is MISSING:
            problems.add(i, name, "missing", "missing in this row")
            continue
        try:
            conform(v)
        except BadValue as exc:
            problems.add(i, name, TYPE, str(exc))
    return values


def _shown_names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:20])
    return shown + (f", … ({len(names) - 20} more)" if len(names) > 20 else "")


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
            elif numeric:
                v = number_from_text(v)
        out.append(v)
    return out


_NULL_MESSAGE = "null, but the training data had none"
_NAN = float("nan")


def _numeric_checker(spec: ColumnSpec, rule: ColumnRule, policy: ValidationPolicy
                     ) -> Checker:
    name, nullable = spec.name, spec.nullable
    conform, low, high = rule.conform, rule.low, rule.high
    reject_range = policy.out_of_range == REJECT

    def check(values: Any, problems: _Problems) -> tuple[Any, list[tuple[int, str]]]:
        if not isinstance(values, list) and len(values) >= _VECTORIZE_FROM_ROWS:
            vectorized = _numeric_array(values, rule, spec, policy, problems)
            if vectorized is not None:
                return vectorized
        values = _as_list(values)
        out: list[Any] = values
        flagged: list[tuple[int, str]] = []
        # One verdict per row, first rule that applies (null, kind, range); _numeric_array
        # applies the same rules in the same order.
        for i, v in enumerate(values):
            if v is MISSING:
                problems.add(i, name, "missing", "missing in this row")
                continue
            try:
                c = conform(v)
            except BadValue as exc:
                problems.add(i, name, TYPE, str(exc))
                continue
            if c is None:
                if not nullable:
                    problems.add(i, name, NULL, _NULL_MESSAGE)
                elif v is not None and type(v) is not float:  # NumPy NaN, pd.NA, NaT
                    if out is values:
                        out = list(values)
                    out[i] = _NAN
                continue
            if c is not v:  # 30.0 for an int column, a NumPy scalar
                if out is values:
                    out = list(values)
                out[i] = c
            if c < low or c > high:
                if reject_range:
                    problems.add(i, name, OUT_OF_RANGE,
                                 f"{c!r} is outside the training range [{low:g}, {high:g}]")
                else:
                    flagged.append((i, OUT_OF_RANGE))
        return out, flagged

    return check


def _numeric_array(values: Any, rule: ColumnRule, spec: ColumnSpec, policy: ValidationPolicy,
                   problems: _Problems) -> tuple[Any, list[tuple[int, str]]] | None:
    """The NumPy path for a numeric array; None when the array is not numeric.

    The contract's vectorized judgement (``ColumnRule.judge``): one verdict per row (null,
    then kind, then range), and the messages of the rows shown come from the same
    ``conform`` as the Python path, so both paths report the same problems.
    """
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind not in "iuf" or array.ndim != 1:
        return None
    name = spec.name
    judged = rule.judge(array)
    none = np.zeros(len(array), dtype=bool)
    outside = judged.outside if judged.outside is not None else none
    reject_range = policy.out_of_range == REJECT
    null_problem = none if spec.nullable else judged.nulls
    rejected = null_problem | judged.bad | (outside if reject_range else none)
    rows = np.flatnonzero(rejected)
    for i in rows[:MAX_REPORTED_PROBLEMS].tolist():
        v = array[i].item()
        if null_problem[i]:
            problems.add(i, name, NULL, _NULL_MESSAGE)
        elif judged.bad[i]:
            try:
                rule.conform(v)
                message = f"expected a value of {spec.dtype}, got {_shown(v)}"
            except BadValue as exc:
                message = str(exc)
            problems.add(i, name, TYPE, message)
        else:
            shown = rule.conform(v)  # 99, not 99.0, as the Python path says
            problems.add(i, name, OUT_OF_RANGE, f"{shown!r} is outside the training range "
                                                f"[{rule.low:g}, {rule.high:g}]")
    rest = rows[MAX_REPORTED_PROBLEMS:]
    if len(rest):  # beyond what a response shows: counted, not described
        for kind, mask in ((NULL, null_problem), (TYPE, judged.bad), (OUT_OF_RANGE, outside)):
            problems.count(name, kind, int(np.count_nonzero(mask[rest])))
    flagged = [] if reject_range else [(i, OUT_OF_RANGE) for i in np.flatnonzero(outside).tolist()]
    return array, flagged


def _text_checker(spec: ColumnSpec, rule: ColumnRule, policy: ValidationPolicy) -> Checker:
    name, nullable = spec.name, spec.nullable
    conform, known = rule.conform, rule.known
    reject_unknown = policy.unknown_category == REJECT
    shown = ", ".join(repr(c) for c in (spec.categories or ())[:10])

    def check(values: Any, problems: _Problems) -> tuple[Any, list[tuple[int, str]]]:
        values = _as_list(values)
        out: list[Any] = values
        flagged: list[tuple[int, str]] = []
        for i, v in enumerate(values):
            if v is MISSING:
                problems.add(i, name, "missing", "missing in this row")
                continue
            try:
                c = conform(v)
            except BadValue as exc:
                problems.add(i, name, TYPE, str(exc))
                continue
            if c is None:
                if not nullable:
                    problems.add(i, name, NULL, _NULL_MESSAGE)
                elif v is not None and type(v) is not float:  # pd.NA, NaT: one null, None
                    if out is values:
                        out = list(values)
                    out[i] = None
                continue
            if c is not v:  # category codes sent as numbers
                if out is values:
                    out = list(values)
                out[i] = c
            if known is not None and c not in known:
                if reject_unknown:
                    problems.add(i, name, UNKNOWN_CATEGORY,
                                 f"unknown category {_shown(c)} (known: {shown}"
                                 f"{' …' if len(known) > 10 else ''})")
                else:
                    flagged.append((i, UNKNOWN_CATEGORY))
        return out, flagged

    return check


def _value_checker(spec: ColumnSpec, rule: ColumnRule) -> Checker:
    """Booleans (conformed to True/False), datetimes and other values (kept as sent)."""
    name, nullable, conform = spec.name, spec.nullable, rule.conform
    keep = rule.family != BOOLEAN

    def check(values: Any, problems: _Problems) -> tuple[Any, list[tuple[int, str]]]:
        values = _as_list(values)
        out: list[Any] = []
        for i, v in enumerate(values):
            if v is MISSING:
                problems.add(i, name, "missing", "missing in this row")
                out.append(None)
                continue
            try:
                c = conform(v)
            except BadValue as exc:
                problems.add(i, name, TYPE, str(exc))
                out.append(None)
                continue
            if c is None and not nullable:
                problems.add(i, name, NULL, _NULL_MESSAGE)
            out.append(c)
        return (values if keep else out), []

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
