"""Validate a table against a schema and report every failed check.

    report = validate(df, "schemas/churn.yaml")
    print(report.summary())
    report.raise_for_errors()        # ValidationFailed if any error-severity check failed

pandera does the checking (lazily, so every failure is collected, not just the first);
this module turns its failure cases into a small, JSON-serialisable ``ValidationReport``
that a pipeline step stores with its run. Checks marked ``raise_warning: true`` are
evaluated too and reported with severity ``warn``: they never fail ``passed``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.data.schema import check_severity, load_schema, to_pandas
from ratchet.errors import InvalidInput, ValidationFailed
from ratchet.json_safe import json_safe

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa

# pandera reports these dataframe-level failures with the column label as the failure case.
_COLUMN_PRESENCE = ("column_in_dataframe", "column_in_schema")
_MESSAGE_CHECK_WIDTH = 80
_EXAMPLE_WIDTH = 40


@dataclass(frozen=True)
class CheckFailure:
    """One check that failed, with how many rows failed it and a few examples."""

    column: str | None  # None for dataframe-level checks
    check: str  # pandera's label: "in_range(0, 120)", "not_nullable", "field_uniqueness"...
    severity: str  # "error" | "warn"
    failing_count: int  # failing rows; 1 per schema-level failure (e.g. a missing column)
    examples: tuple[Any, ...]  # distinct failing values, JSON-safe (NaN -> None)
    example_rows: tuple[int, ...]  # index labels (positions if labels are not integers)
    message: str  # one line, for people

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "check": self.check,
            "severity": self.severity,
            "failing_count": self.failing_count,
            "examples": list(self.examples),
            "example_rows": list(self.example_rows),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckFailure:
        try:
            return cls(
                column=None if d["column"] is None else str(d["column"]),
                check=str(d["check"]),
                severity=str(d["severity"]),
                failing_count=int(d["failing_count"]),
                examples=tuple(d.get("examples", ())),
                example_rows=tuple(int(r) for r in d.get("example_rows", ())),
                message=str(d.get("message", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"CheckFailure.from_dict: malformed failure: {e!r}") from e


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one table against one schema."""

    schema_name: str | None
    rows: int
    columns: int
    checks_run: int
    failures: tuple[CheckFailure, ...] = ()

    @property
    def errors(self) -> tuple[CheckFailure, ...]:
        return tuple(f for f in self.failures if f.severity == "error")

    @property
    def warnings(self) -> tuple[CheckFailure, ...]:
        return tuple(f for f in self.failures if f.severity == "warn")

    @property
    def passed(self) -> bool:
        """True when no error-severity check failed (warnings do not count)."""
        return not self.errors

    def headline(self) -> str:
        errors, warnings = len(self.errors), len(self.warnings)
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"validation {verdict}: schema {self.schema_name!r}, {self.rows} rows x "
            f"{self.columns} columns, {self.checks_run} checks, "
            f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
        )

    def raise_for_errors(self) -> None:
        """Raise ``ValidationFailed`` listing every error failure, one per line.

        The exception carries this report as ``.report`` so a caller can store it.
        """
        errors = self.errors
        if not errors:
            return
        lines = [self.headline()] + [f"  {f.severity}: {f.message}" for f in errors]
        exc = ValidationFailed("\n".join(lines))
        exc.report = self  # type: ignore[attr-defined]
        raise exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_name": self.schema_name,
            "rows": self.rows,
            "columns": self.columns,
            "checks_run": self.checks_run,
            "passed": self.passed,
            "failures": [f.to_dict() for f in self.failures],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ValidationReport:
        if not isinstance(d, Mapping):
            raise InvalidInput(
                f"ValidationReport.from_dict: expected a mapping, got {type(d).__name__}"
            )
        try:
            return cls(
                schema_name=None if d["schema_name"] is None else str(d["schema_name"]),
                rows=int(d["rows"]),
                columns=int(d["columns"]),
                checks_run=int(d["checks_run"]),
                failures=tuple(CheckFailure.from_dict(f) for f in d.get("failures", ())),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"ValidationReport.from_dict: malformed report: {e!r}") from e

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ValidationReport:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"ValidationReport.from_json: invalid JSON: {e}") from e
        return cls.from_dict(data)

    def summary(self) -> str:
        """A headline and one row per failure, errors first."""
        lines = [self.headline()]
        if not self.failures:
            return lines[0]
        rows = [("severity", "column", "check", "failing", "examples")]
        for f in self.failures:
            rows.append(
                (
                    f.severity,
                    "-" if f.column is None else f.column,
                    _clip(f.check, 40),
                    str(f.failing_count),
                    _clip(", ".join(_fmt(v) for v in f.examples), 60),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            lines.append(
                "  "
                + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
                + "  "
                + r[4]
            )
        return "\n".join(line.rstrip() for line in lines)


def validate(
    data: Any, schema: pa.DataFrameSchema | str | os.PathLike[str], *, max_examples: int = 5
) -> ValidationReport:
    """Check ``data`` against ``schema`` and report every failure (never raises for bad data).

    ``data`` is a pandas DataFrame, pyarrow Table or polars DataFrame; ``schema`` a pandera
    ``DataFrameSchema`` or the path of a schema YAML. Failures are grouped per (column,
    check) with exact failing-row counts and up to ``max_examples`` distinct failing values.
    Call ``raise_for_errors()`` on the report to fail a step.
    """
    import pandera.pandas as pa

    if isinstance(schema, str | os.PathLike):
        schema = load_schema(schema)
    elif not isinstance(schema, pa.DataFrameSchema):
        raise InvalidInput(
            "validate: schema must be a pandera DataFrameSchema or the path of a schema "
            f"YAML, got {type(schema).__name__}"
        )
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 0:
        raise InvalidInput(f"validate: max_examples must be an int >= 0, got {max_examples!r}")
    df = to_pandas(data, where="validate")

    warn_keys = _warn_checks(schema)
    run_schema = _all_checks_as_errors(schema) if warn_keys else schema
    failures: tuple[CheckFailure, ...] = ()
    try:
        # pandera copies the frame unless inplace; safe to skip when nothing is rewritten.
        run_schema.validate(df, lazy=True, inplace=not _rewrites_data(schema))
    except pa.errors.SchemaErrors as e:
        failures = _failures(e.failure_cases, df, schema, warn_keys, max_examples)
    except pa.errors.SchemaError as e:  # some failures escape lazy collection
        failures = (_single_failure(e),)
    except pa.errors.SchemaDefinitionError as e:
        raise InvalidInput(f"validate: schema {schema.name!r} is not usable: {e}") from e

    return ValidationReport(
        schema_name=schema.name,
        rows=len(df),
        columns=len(df.columns),
        checks_run=_count_checks(schema),
        failures=failures,
    )


# --------------------------------------------------------------------------- severity


def _warn_checks(schema: pa.DataFrameSchema) -> set[tuple[str, Any, int]]:
    """(context, column key, check number) of every check with severity warn."""
    keys: set[tuple[str, Any, int]] = set()
    for n, check in enumerate(schema.checks):
        if check_severity(check) == "warn":
            keys.add(("DataFrameSchema", None, n))
    for name, col in schema.columns.items():
        for n, check in enumerate(col.checks):
            if check_severity(check) == "warn":
                keys.add(("Column", name, n))
    return keys


def _all_checks_as_errors(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    # pandera's lazy mode only emits a Python warning for raise_warning checks and leaves
    # them out of the failure cases; validating a copy where they raise collects them too.
    run = copy.deepcopy(schema)
    for check in run.checks:
        check.raise_warning = False
    for col in run.columns.values():
        for check in col.checks:
            check.raise_warning = False
    return run


def _severity(
    schema: pa.DataFrameSchema,
    warn_keys: set[tuple[str, Any, int]],
    context: str,
    column: Any,
    number: float,
) -> str:
    if not warn_keys or math.isnan(number):
        return "error"
    n = int(number)
    if context == "DataFrameSchema":
        return "warn" if ("DataFrameSchema", None, n) in warn_keys else "error"
    if context != "Column":
        return "error"
    if column in schema.columns:
        return "warn" if ("Column", column, n) in warn_keys else "error"
    for name, col in schema.columns.items():  # regex columns: the data label matches a pattern
        if col.regex and isinstance(name, str) and re.match(name, str(column)):
            return "warn" if ("Column", name, n) in warn_keys else "error"
    return "error"


# --------------------------------------------------------------------------- failures


def _failures(
    fc: pd.DataFrame,
    df: pd.DataFrame,
    schema: pa.DataFrameSchema,
    warn_keys: set[tuple[str, Any, int]],
    max_examples: int,
) -> tuple[CheckFailure, ...]:
    import pandas as pd

    fc = fc.reset_index(drop=True)
    context = fc["schema_context"].astype(str)
    frame_level = (context == "DataFrameSchema").to_numpy()
    presence = frame_level & fc["check"].isin(_COLUMN_PRESENCE).to_numpy()
    # Dataframe-level rows carry the schema name or the melted row's column as "column":
    # keep it aside, then use the missing column's label for presence checks, else None.
    fc["_data_column"] = fc["column"]
    fc["column"] = fc["column"].where(~frame_level, None)
    fc.loc[presence, "column"] = fc.loc[presence, "failure_case"]
    fc["_number"] = pd.to_numeric(fc["check_number"], errors="coerce").astype("float64")
    fc["_ctx"] = context
    keys = ["_ctx", "column", "check", "_number"]

    # Integer group ids: NaN / None in the keys make tuple keys unreliable for lookups.
    fc["_g"] = fc.groupby(keys, dropna=False, sort=False).ngroup()
    counts = fc["_g"].value_counts(sort=False)
    try:
        distinct = fc.drop_duplicates(subset=["_g", "failure_case"])
    except TypeError:  # unhashable failure values (e.g. lists): dedupe on their text
        distinct = fc.assign(_v=fc["failure_case"].astype(str)).drop_duplicates(subset=["_g", "_v"])
    heads = distinct.groupby("_g", sort=False).head(max(max_examples, 1))
    examples = {int(g): part for g, part in heads.groupby("_g", sort=False)}
    firsts = fc.drop_duplicates("_g")

    out = []
    for g, ctx, column, check, number in zip(
        firsts["_g"],
        firsts["_ctx"],
        firsts["column"],
        firsts["check"],
        firsts["_number"],
        strict=True,
    ):
        label = None if _missing(column) else str(column)
        severity = _severity(schema, warn_keys, ctx, column, number)
        if ctx == "DataFrameSchema" and check not in _COLUMN_PRESENCE:
            part = fc[fc["_g"].to_numpy() == g]  # few such groups: a mask per group is fine
            out.append(_row_failure(part, str(check), severity, max_examples, df))
            continue
        count = int(counts[g])
        sample = examples[int(g)]
        raw = list(sample["failure_case"].head(max_examples))
        index = [i for i in sample["index"] if not _missing(i)]
        schema_level = not index  # no row index: the column (or frame) failed as a whole
        out.append(
            CheckFailure(
                column=label,
                check=str(check),
                severity=severity,
                failing_count=count,
                examples=tuple(json_safe(v) for v in raw),
                example_rows=_row_numbers(index[:max_examples], df),
                message=_message(label, str(check), count, raw, schema_level, df),
            )
        )
    out.sort(key=lambda f: f.severity != "error")  # stable: errors first, pandera's order kept
    return tuple(out)


def _row_failure(
    part: pd.DataFrame, check: str, severity: str, max_examples: int, df: pd.DataFrame
) -> CheckFailure:
    """A dataframe-level check: pandera lists each failing row once per column; count rows
    and show each example row as ``{column: value}``."""
    has_index = part["index"].map(lambda i: not _missing(i)).to_numpy()
    scalar = part[~has_index]  # the check returned one value for the whole frame
    rows = part[has_index]
    labels = list(rows["index"].drop_duplicates())
    count = len(labels) + len(scalar)
    raw: list[Any] = list(scalar["failure_case"].head(max_examples))
    shown = []
    for lab in labels:  # distinct rows (duplicates under a uniqueness check look alike)
        if len(raw) >= max_examples:
            break
        cells = rows[rows["index"] == lab]
        row = dict(zip(map(str, cells["_data_column"]), cells["failure_case"], strict=True))
        if row not in raw:
            raw.append(row)
            shown.append(lab)
    return CheckFailure(
        column=None,
        check=check,
        severity=severity,
        failing_count=count,
        examples=tuple(json_safe(v) for v in raw),
        example_rows=_row_numbers(shown, df),
        message=_message(None, check, count, raw, not labels, df),
    )


def _single_failure(e: Any) -> CheckFailure:
    schema = getattr(e, "schema", None)
    column = getattr(schema, "name", None) if type(schema).__name__ == "Column" else None
    check = getattr(e, "check", None)
    label = str(getattr(check, "error", None) or getattr(check, "name", None) or check or "schema")
    text = " ".join(str(e).split())
    where = "dataframe" if column is None else f"column {str(column)!r}"
    return CheckFailure(
        column=None if column is None else str(column),
        check=label,
        severity=check_severity(check) if check is not None else "error",
        failing_count=1,
        examples=(_clip(text, 200),),
        example_rows=(),
        message=f"{where}: {_clip(label, _MESSAGE_CHECK_WIDTH)} failed: {_clip(text, 200)}",
    )


def _message(
    column: str | None,
    check: str,
    count: int,
    examples: list[Any],
    schema_level: bool,
    df: pd.DataFrame,
) -> str:
    where = "dataframe" if column is None else f"column {column!r}"
    label = _clip(check, _MESSAGE_CHECK_WIDTH)
    if check in _COLUMN_PRESENCE:
        what = "missing from the data" if check == "column_in_dataframe" else "not in the schema"
        return f"{where}: {what} ({check})"
    got = ""
    if check.startswith("dtype(") and column is not None and column in df.columns:
        got = f" (data has {df[column].dtype})"
        if schema_level:
            return f"{where}: {label} failed: data has {df[column].dtype}"
    shown = ", ".join(_fmt(v) for v in examples)
    if schema_level:
        return f"{where}: {label} failed" + (f": {_clip(shown, 200)}" if shown else "")
    rows = "row fails" if count == 1 else "rows fail"
    return f"{where}: {count} {rows} {label}{got}" + (f", e.g. {shown}" if shown else "")


# --------------------------------------------------------------------------- helpers


def _count_checks(schema: pa.DataFrameSchema) -> int:
    """dtype, non-null and unique constraints and every Check, per column and overall."""
    n = len(schema.checks) + (1 if schema.unique else 0)
    for col in schema.columns.values():
        n += len(col.checks)
        n += col.dtype is not None
        n += not col.nullable
        n += bool(col.unique)
    return n


def _rewrites_data(schema: pa.DataFrameSchema) -> bool:
    """Whether pandera may modify the frame while validating (coercion, parsers...)."""
    if schema.coerce or schema.add_missing_columns or schema.strict == "filter":
        return True
    if getattr(schema, "parsers", None) or getattr(schema, "drop_invalid_rows", False):
        return True
    for col in schema.columns.values():
        if col.coerce or getattr(col, "parsers", None) or getattr(col, "default", None) is not None:
            return True
        if getattr(col, "drop_invalid_rows", False):
            return True
    return False


def _row_numbers(labels: list[Any], df: pd.DataFrame) -> tuple[int, ...]:
    import numpy as np

    if all(isinstance(x, int | np.integer) and not isinstance(x, bool) for x in labels):
        return tuple(int(x) for x in labels)
    positions = df.index.get_indexer_for(labels)  # labels that are not ints: use positions
    return tuple(int(p) for p in positions if p >= 0)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-like: not missing
        return False


def _fmt(value: Any) -> str:
    if _missing(value):
        return "None"
    return _clip(repr(value) if isinstance(value, str) else str(value), _EXAMPLE_WIDTH)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
