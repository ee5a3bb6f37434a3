"""Severity of a schema's checks: a check with pandera's ``raise_warning: true`` is a
warning (recorded, the step goes on), every other one an error (fails the step)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pandera.pandas as pa

SEVERITIES = ("error", "warn")


def check_severity(check: Any) -> str:
    """``"warn"`` for a check with ``raise_warning=True``, else ``"error"``."""
    return "warn" if getattr(check, "raise_warning", False) else "error"


def check_label(check: Any) -> str:
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
    matched = [c for c in checks if check in (getattr(c, "name", None), check_label(c))]
    if not matched:
        have = ", ".join(check_label(c) for c in checks) or "(none)"
        raise NotFound(f"set_severity: {where} has no check {check!r}; its checks: {have}")
    for c in matched:
        c.raise_warning = severity == "warn"
    return new


__all__ = ["SEVERITIES", "check_label", "check_severity", "set_severity"]
