"""Dataset profile records: what a profile holds per column and how it is stored (JSON).

The statistics are computed by ``ratchet.data.profile`` (see its docstring for the exact
rules); this module is the record and its persistence only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ratchet.data.profile_types import type_family
from ratchet.errors import InvalidInput, NotFound

PROFILE_FORMAT = 1
QUANTILE_PROBS: tuple[float, ...] = tuple(i / 100 for i in range(101))


@dataclass(frozen=True)
class ColumnProfile:
    """Statistics of one column; see the module docstring for the exact rules."""

    name: str
    arrow_type: str
    semantic_type: str
    count: int
    nulls: int
    distinct: int
    distinct_exact: bool
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: tuple[float, ...] | None = None
    histogram: dict[str, list[Any]] | None = None
    top: tuple[tuple[str, int], ...] | None = None
    other_count: int | None = None
    mean_length: float | None = None

    @property
    def non_null(self) -> int:
        return self.count - self.nulls

    @property
    def null_rate(self) -> float:
        return self.nulls / self.count if self.count else 0.0

    @property
    def family(self) -> str:
        """numeric | boolean | datetime | string | null | other, from ``arrow_type``."""
        return type_family(self.arrow_type)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: tuples become lists, non-finite floats become None."""
        return {
            "name": self.name,
            "arrow_type": self.arrow_type,
            "semantic_type": self.semantic_type,
            "count": self.count,
            "nulls": self.nulls,
            "distinct": self.distinct,
            "distinct_exact": self.distinct_exact,
            "min": _finite_or_none(self.min),
            "max": _finite_or_none(self.max),
            "mean": _finite_or_none(self.mean),
            "std": _finite_or_none(self.std),
            "quantiles": None
            if self.quantiles is None
            else [_finite_or_none(q) for q in self.quantiles],
            "histogram": None
            if self.histogram is None
            else {
                "edges": [_finite_or_none(e) for e in self.histogram["edges"]],
                "counts": [int(c) for c in self.histogram["counts"]],
            },
            "top": None if self.top is None else [[v, int(c)] for v, c in self.top],
            "other_count": self.other_count,
            "mean_length": _finite_or_none(self.mean_length),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnProfile:
        """Inverse of ``to_dict``; unknown keys (from newer versions) are ignored."""
        try:
            known = {f.name for f in fields(cls)}
            kw = {k: v for k, v in d.items() if k in known}
            if kw.get("quantiles") is not None:
                kw["quantiles"] = tuple(float(q) for q in kw["quantiles"])
            if kw.get("top") is not None:
                kw["top"] = tuple((str(v), int(c)) for v, c in kw["top"])
            if kw.get("histogram") is not None:
                h = kw["histogram"]
                kw["histogram"] = {
                    "edges": [float(e) for e in h["edges"]],
                    "counts": [int(c) for c in h["counts"]],
                }
            return cls(**kw)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            name = d.get("name", "?") if isinstance(d, Mapping) else "?"
            raise InvalidInput(f"column profile {name!r} is malformed: {e}") from e


@dataclass(frozen=True)
class DatasetProfile:
    rows: int
    columns: tuple[ColumnProfile, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnProfile:
        for c in self.columns:
            if c.name == name:
                return c
        raise NotFound(
            f"column {name!r} is not in the profile; its columns are: "
            f"{', '.join(repr(n) for n in self.column_names) or '(none)'}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "rows": self.rows,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetProfile:
        try:
            rows = int(d["rows"])
            columns = tuple(ColumnProfile.from_dict(c) for c in d["columns"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"dataset profile is malformed: {e!r}") from e
        return cls(rows=rows, columns=columns)



def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


__all__ = ["PROFILE_FORMAT", "QUANTILE_PROBS", "ColumnProfile", "DatasetProfile"]
