"""``ratchet data diff``: what changed between two dataset versions.

Rows added / removed (as multisets over the shared columns, or by a key), schema changes,
and per-column distribution changes from the stored profiles. Row comparisons run in
DuckDB over the two Parquet snapshots, so they stream and spill instead of loading both
tables into memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    from ratchet.data.profile_compare import ColumnComparison
    from ratchet.data.version import DatasetVersion


@dataclass(frozen=True)
class DatasetDiff:
    base: str
    other: str
    rows_base: int
    rows_other: int
    key: tuple[str, ...] | None
    rows_added: int
    rows_removed: int
    rows_changed: int | None  # only with a key: same key, different values
    columns_added: tuple[str, ...]
    columns_removed: tuple[str, ...]
    type_changes: tuple[tuple[str, str, str], ...]  # (column, base type, other type)
    distribution: tuple[ColumnComparison, ...] = field(default=())

    @property
    def identical(self) -> bool:
        return (not self.rows_added and not self.rows_removed and not self.rows_changed
                and not self.columns_added and not self.columns_removed
                and not self.type_changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base, "other": self.other, "rows_base": self.rows_base,
            "rows_other": self.rows_other, "key": list(self.key) if self.key else None,
            "rows_added": self.rows_added, "rows_removed": self.rows_removed,
            "rows_changed": self.rows_changed, "columns_added": list(self.columns_added),
            "columns_removed": list(self.columns_removed),
            "type_changes": [list(t) for t in self.type_changes],
            "distribution": [asdict(c) for c in self.distribution],
        }


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def diff_versions(base: DatasetVersion, other: DatasetVersion,
                  key: Sequence[str] | None = None) -> DatasetDiff:
    from ratchet.data.duckdb_connection import duckdb_connection
    from ratchet.data.profile_compare import compare_profiles

    base_types = {c["name"]: c["type"] for c in base.schema}
    other_types = {c["name"]: c["type"] for c in other.schema}
    common = [c for c in base_types if c in other_types]
    keys = tuple(key) if key else None
    if keys:
        missing = [(k, v.ref) for v in (base, other) for k in keys if k not in v.columns]
        if missing:
            k, ref = missing[0]
            raise InvalidInput(f"key column {k!r} is not in {ref} "
                               f"(its columns: {', '.join(base.columns if ref == base.ref else other.columns)})")
    if not common:
        raise InvalidInput(f"{base.ref} and {other.ref} share no columns: nothing to compare")

    with duckdb_connection() as con:
        con.execute(f"CREATE VIEW a AS SELECT * FROM read_parquet({_literal(str(base.path))})")
        con.execute(f"CREATE VIEW b AS SELECT * FROM read_parquet({_literal(str(other.path))})")
        if keys:
            added, removed, changed = _by_key(con, keys, common, base.ref, other.ref)
        else:
            cols = ", ".join(quote_identifier(c) for c in common)
            added = _scalar(con, f"SELECT count(*) FROM (SELECT {cols} FROM b "
                                 f"EXCEPT ALL SELECT {cols} FROM a)")
            removed = _scalar(con, f"SELECT count(*) FROM (SELECT {cols} FROM a "
                                   f"EXCEPT ALL SELECT {cols} FROM b)")
            changed = None
    return DatasetDiff(
        base=base.ref, other=other.ref, rows_base=base.row_count, rows_other=other.row_count,
        key=keys, rows_added=added, rows_removed=removed, rows_changed=changed,
        columns_added=tuple(c for c in other_types if c not in base_types),
        columns_removed=tuple(c for c in base_types if c not in other_types),
        type_changes=tuple((c, base_types[c], other_types[c]) for c in common
                           if base_types[c] != other_types[c]),
        distribution=tuple(compare_profiles(base.profile, other.profile)),
    )


def _by_key(con: Any, keys: tuple[str, ...], common: list[str], base_ref: str,
            other_ref: str) -> tuple[int, int, int]:
    k = ", ".join(quote_identifier(c) for c in keys)
    for view, ref in (("a", base_ref), ("b", other_ref)):
        dupes = _scalar(con, f"SELECT count(*) FROM (SELECT {k} FROM {view} GROUP BY {k} "
                             "HAVING count(*) > 1)")
        if dupes:
            raise InvalidInput(f"key ({', '.join(keys)}) is not unique in {ref}: {dupes} key "
                               "values repeat; pick a key that identifies a row")
    on = " AND ".join(f"a.{quote_identifier(c)} IS NOT DISTINCT FROM b.{quote_identifier(c)}"
                      for c in keys)
    values = [c for c in common if c not in keys]
    differs = " OR ".join(f"a.{quote_identifier(c)} IS DISTINCT FROM b.{quote_identifier(c)}"
                          for c in values) or "false"
    added = _scalar(con, f"SELECT count(*) FROM b ANTI JOIN a ON {on}")
    removed = _scalar(con, f"SELECT count(*) FROM a ANTI JOIN b ON {on}")
    changed = _scalar(con, f"SELECT count(*) FROM a JOIN b ON {on} WHERE {differs}")
    return added, removed, changed


def _scalar(con: Any, sql: str) -> int:
    return int(con.execute(sql).fetchone()[0])
