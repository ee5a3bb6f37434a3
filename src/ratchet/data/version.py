"""``DatasetVersion``: an immutable dataset snapshot and the ways to read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.clock import to_datetime
from ratchet.errors import InvalidInput
from ratchet.names import dataset_name
from ratchet.refs import parse_reference
from ratchet.store import DatasetInput, DatasetVersionRecord

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ratchet.data.profile import DatasetProfile


def validate_dataset_name(name: object) -> str:
    """Dataset names become path segments and URI parts: the canonical, portable name
    (see ratchet.names), or InvalidInput."""
    return dataset_name(name)


@dataclass(frozen=True)
class DatasetRef:
    """``churn`` or ``churn@latest`` (latest), ``churn@3`` (version) or ``churn@1f3a9c``
    (content hash prefix): the reference grammar of ``ratchet.refs``."""

    name: str
    version: int | None = None
    digest_prefix: str | None = None

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        ref = parse_reference(text, "dataset")
        return cls(validate_dataset_name(ref.name), version=ref.version,
                   digest_prefix=ref.digest_prefix)


@dataclass(frozen=True)
class DatasetVersion:
    name: str
    version: int
    digest: str
    size_bytes: int
    row_count: int
    schema: tuple[dict[str, Any], ...]
    profile: DatasetProfile
    source: str | None
    parent_version: int | None
    created_by_run: str | None
    created_at: int
    _reader: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_record(cls, record: DatasetVersionRecord, reader: Any) -> DatasetVersion:
        from ratchet.data.profile import DatasetProfile

        return cls(
            name=record.name, version=record.version, digest=record.digest,
            size_bytes=record.size_bytes, row_count=record.row_count, schema=record.schema,
            profile=DatasetProfile.from_dict(record.profile), source=record.source,
            parent_version=record.parent_version, created_by_run=record.created_by_run,
            created_at=record.created_at, _reader=reader)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def columns(self) -> list[str]:
        return [c["name"] for c in self.schema]

    @property
    def path(self) -> Path:
        """The Parquet file, for zero-copy readers (DuckDB, polars). Not re-verified:
        call ``verify()`` first if the store may have been tampered with."""
        return self._reader.parquet_path(self.digest)

    def verify(self) -> None:
        """Re-hash the stored file; ``IntegrityError`` if it no longer matches."""
        self._reader.verify(self.digest)

    def to_arrow(self, columns: list[str] | None = None) -> pa.Table:
        import pyarrow.parquet as pq

        self._check_columns(columns)
        return pq.read_table(self.path, columns=columns)

    def to_pandas(self, columns: list[str] | None = None) -> pd.DataFrame:
        return self.to_arrow(columns).to_pandas()

    def as_input(self, role: str = "input") -> DatasetInput:
        """The record a run keeps of having read this version."""
        return DatasetInput(self.name, self.digest, self.version, role, self.source)

    def to_dict(self) -> dict[str, Any]:
        created = to_datetime(self.created_at)
        return {
            "name": self.name, "version": self.version, "ref": self.ref, "digest": self.digest,
            "size_bytes": self.size_bytes, "row_count": self.row_count,
            "schema": list(self.schema), "source": self.source,
            "parent_version": self.parent_version, "created_by_run": self.created_by_run,
            "created_at": created.isoformat() if created else None,
            "profile": self.profile.to_dict(),
        }

    def _check_columns(self, columns: list[str] | None) -> None:
        unknown = sorted(set(columns or ()) - set(self.columns))
        if unknown:
            raise InvalidInput(f"{self.ref} has no column(s) {', '.join(map(repr, unknown))}; "
                               f"it has {', '.join(self.columns)}")
