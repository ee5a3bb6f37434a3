"""What a profiled column is: its type family (from the Arrow type) and its semantic type.

Whether numbers are numeric or categorical is the column contract's rule
(``ratchet.columns.statistical_kind``: at most ``CATEGORICAL_MAX_DISTINCT`` distinct
values make a numeric column categorical), the rule drift tests use too; the rest
(identifiers, free text, constants, empty columns) is the profile's own.
"""

from __future__ import annotations

from ratchet.columns import CATEGORICAL_MAX_DISTINCT, FLOAT, statistical_kind

SEMANTIC_TYPES = (
    "numeric",
    "categorical",
    "boolean",
    "datetime",
    "text",
    "identifier",
    "constant",
    "empty",
    "other",
)
# Any numeric column this discrete gets `top` (value counts), for chi-square-style tests.
DISCRETE_MAX_DISTINCT = 20
# String columns: identifier / text thresholds.
IDENTIFIER_MIN_ROWS = 50
TEXT_MIN_MEAN_LENGTH = 50.0
TEXT_MIN_DISTINCT_RATIO = 0.5
# HyperLogLog is within ~3 %: an estimate this close to the row count counts as unique.
APPROX_UNIQUE_RATIO = 0.97

# Type families: what a column's values can be compared as.
NUMERIC, BOOLEAN, DATETIME, STRING, NULL, OTHER = (
    "numeric",
    "boolean",
    "datetime",
    "string",
    "null",
    "other",
)


def type_family(arrow_type: str) -> str:
    """The comparable family of an Arrow type string (``str(pyarrow type)``).

    numeric: ints, floats, decimals; boolean; datetime: timestamps and dates; string;
    null: the Arrow null type (an all-null column with nothing to infer a type from);
    other: binary, nested, time-of-day, durations, ….
    """
    t = arrow_type.strip().lower()
    if t.startswith("dictionary<values="):
        t = t[len("dictionary<values=") :].split(",", 1)[0]
    if t.startswith(("int", "uint", "float", "double", "halffloat", "decimal")):
        return NUMERIC
    if t in ("bool", "boolean"):
        return BOOLEAN
    if t.startswith(("timestamp", "date")):
        return DATETIME
    if t in ("string", "large_string", "string_view", "utf8", "large_utf8"):
        return STRING
    if t == "null":
        return NULL
    return OTHER


def infer_semantic_type(
    family: str,
    *,
    non_null: int,
    distinct: int,
    distinct_exact: bool = True,
    is_integer: bool = False,
    mean_length: float | None = None,
) -> str:
    """What a column means, from its type family and counts. In order:

    - ``empty``: no non-null value; ``constant``: exactly one distinct value;
    - booleans → ``boolean``; timestamps / dates → ``datetime``;
    - numbers → ``numeric``, except a column with at most ``CATEGORICAL_MAX_DISTINCT`` (5)
      distinct values (codes, ratings, flags) → ``categorical``: the column contract's
      rule (``ratchet.columns.statistical_kind``), the one drift tests apply;
      ``is_integer`` is accepted for callers and no longer changes the answer;
    - strings → ``text`` if the mean length exceeds 50 characters; ``identifier`` if
      there are more than 50 values and all are distinct (≥ 97 % for an estimate);
      ``text`` if more than 50 values and over half are distinct; else ``categorical``;
    - anything else (binary, nested, durations) → ``other``.
    """
    if non_null == 0:
        return "empty"
    if distinct == 1:
        return "constant"
    if family == BOOLEAN:
        return "boolean"
    if family == DATETIME:
        return "datetime"
    if family == NUMERIC:
        return statistical_kind(FLOAT, distinct)
    if family == STRING:
        if mean_length is not None and mean_length > TEXT_MIN_MEAN_LENGTH:
            return "text"
        if non_null > IDENTIFIER_MIN_ROWS:
            unique = (
                distinct >= non_null
                if distinct_exact
                else distinct >= APPROX_UNIQUE_RATIO * non_null
            )
            if unique:
                return "identifier"
            if distinct > TEXT_MIN_DISTINCT_RATIO * non_null:
                return "text"
        return "categorical"
    return "other"


def wants_top(family: str, semantic: str, distinct: int) -> bool:
    if semantic == "empty" or family in (OTHER, NULL):
        return False
    if semantic in ("boolean", "categorical", "constant"):
        return True
    return family == NUMERIC and distinct <= DISCRETE_MAX_DISTINCT



__all__ = [
    "CATEGORICAL_MAX_DISTINCT",
    "DISCRETE_MAX_DISTINCT",
    "SEMANTIC_TYPES",
    "infer_semantic_type",
    "type_family",
    "wants_top",
]
