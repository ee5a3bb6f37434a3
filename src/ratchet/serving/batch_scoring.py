"""Batch scoring: files in, scored files out, in record batches of bounded size.

The same :class:`RequestValidator` and :class:`ServedModel` as the server check and
predict each batch; each batch is logged to the prediction log like one request. Inputs
are read by ``ratchet.data.readers`` (the same files ``ratchet data log`` accepts: CSV,
TSV, compressed CSV, Parquet, or a directory of them). The output is written through
``ratchet.atomic`` (a temporary file next to the target, fsynced and renamed into place at
the end), so a failed or interrupted run never leaves a half-written output behind.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import AlreadyExists, InvalidInput, RequestInvalid
from ratchet.ids import new_id
from ratchet.serving.request_formats import ParsedRequest
from ratchet.serving.request_validation import ValidationPolicy
from ratchet.serving.served_model import ModelVersionRef, ServedModel

if TYPE_CHECKING:
    import pyarrow as pa

    from ratchet.workspace import Workspace

logger = logging.getLogger(__name__)
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}  # outputs


@dataclass(frozen=True)
class ScoringResult:
    model_name: str
    model_version: int
    rows: int
    flagged_rows: int
    batches: int
    seconds: float
    output: str
    deployment: str | None
    log_dropped: int = 0  # rows the prediction log could not write (storage failing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_file(model: str, source: str | os.PathLike[str], output: str | os.PathLike[str], *,
               batch_rows: int = 100_000, policy: ValidationPolicy | None = None,
               workspace: Workspace | None = None, deployment: str | None = None,
               log: bool = True, overwrite: bool = False, progress: bool = False,
               features_modules: Sequence[str] = ()) -> ScoringResult:
    """Score every row of ``source`` (a CSV/TSV/Parquet file or a directory of them, as
    ``ratchet.data.readers`` reads it) into ``output`` (``.parquet`` or ``.csv``).
    A model logged with features reads them for each row's entity keys; its on-demand
    views' code comes from ``features_modules`` (modules or ``.py`` files)."""
    from ratchet.atomic import atomic_path
    from ratchet.data.readers import open_source
    from ratchet.registry import RegistryClient
    from ratchet.registry.uris import parse_model_uri
    from ratchet.workspace import resolve

    started = time.perf_counter()
    source, output = Path(source), Path(output)
    out_format = _format(output, "output")
    if output.exists() and not overwrite:
        raise AlreadyExists(f"{output} exists; pass --overwrite (overwrite=True in Python) "
                            "to replace it")
    registry = resolve(workspace).client(RegistryClient)
    resolved = registry.resolve(model)
    name = parse_model_uri(model).name
    if name is None or resolved.version is None:
        raise InvalidInput(f"score with a registered model (name@alias, name/3), not {model!r}")
    ref = ModelVersionRef(name, resolved.version.version)
    policy = policy or ValidationPolicy(extra_columns="ignore", max_rows=batch_rows)
    if policy.max_rows < batch_rows:
        raise InvalidInput(f"policy max_rows ({policy.max_rows}) is below batch_rows "
                           f"({batch_rows})")
    if features_modules:
        from ratchet.features.definition_modules import import_definition_modules

        import_definition_modules(features_modules)
    served = ServedModel(ref, registry.load(f"models:/{ref.name}/{ref.version}"), policy=policy,
                         workspace=registry.workspace)  # a model with features reads them
    data = open_source(source, batch_rows=batch_rows)
    deployment = deployment or name
    prediction_log = None
    if log:
        from ratchet.serving.prediction_log import PredictionLog
        from ratchet.store.deployment_store import validate_deployment_name

        validate_deployment_name(deployment)
        # Flushed after each batch by this thread: scoring waits for the log instead of
        # dropping; rows are lost only if storage keeps failing (counted in the result).
        prediction_log = PredictionLog(registry.tracking.settings.artifacts_uri,
                                       flush_interval_s=3600, max_buffered_rows=batch_rows * 2,
                                       flush_rows=batch_rows * 4)
    total = data.rows if progress else None
    rows = flagged = batches = 0
    writer: Any = None
    try:
        # 0o666: the umask decides, as for any file the user's command creates.
        with atomic_path(output, mode=0o666) as tmp, \
                _Progress(progress, total, f"scoring with {ref}") as advance:
            try:
                for batch in data.batches:
                    if batch.num_rows == 0:
                        continue
                    table, n_flagged = _score_batch(served, batch, rows, prediction_log,
                                                    deployment, text_cells=data.kind == "csv")
                    if writer is None:
                        writer = _writer(tmp, out_format, table.schema)
                    writer.write_table(table)
                    rows += batch.num_rows
                    flagged += n_flagged
                    batches += 1
                    advance(batch.num_rows)
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:
                raise InvalidInput(f"{source}: no rows to score (the first line of a CSV is "
                                   "its header, the column names; the rows follow it)")
    finally:
        if prediction_log is not None:
            prediction_log.close()
    dropped = prediction_log.dropped if prediction_log is not None else 0
    if dropped:
        logger.error("ratchet predict: %d scored rows could not be written to the prediction "
                  "log of %s", dropped, deployment)
    return ScoringResult(ref.name, ref.version, rows, flagged, batches,
                         time.perf_counter() - started, str(output),
                         deployment if log else None, dropped)


def _score_batch(served: ServedModel, batch: pa.RecordBatch, offset: int,
                 prediction_log: Any, deployment: str, *, text_cells: bool = False
                 ) -> tuple[pa.Table, int]:
    import pyarrow as pa

    arrival_ms = time.time_ns() // 1_000_000
    started = time.perf_counter()
    columns: dict[str, Any] = {}
    for name in batch.schema.names:
        array = batch.column(name)
        numeric = pa.types.is_integer(array.type) or pa.types.is_floating(array.type)
        columns[name] = (array.to_numpy(zero_copy_only=False) if numeric and array.null_count == 0
                         else array.to_pylist())
    try:
        # CSV: a column Arrow read as text (one bad cell) is read per cell, as the server
        # reads a CSV body, so only the bad rows are reported.
        validated = served.validator.validate(ParsedRequest(columns, batch.num_rows,
                                                            text_cells=text_cells),
                                              now_ms=arrival_ms)
    except RequestInvalid as exc:
        raise InvalidInput(f"rows {offset}..{offset + batch.num_rows - 1} do not match the "
                           f"model signature (row numbers below count from {offset}): "
                           f"{exc}") from None
    outputs = served.predict(validated.columns, as_lists=False)
    if prediction_log is not None:
        from ratchet.serving.prediction_log import LoggedRequest

        prediction_log.record(LoggedRequest(
            request_id=f"batch-{new_id()}", timestamp_ms=arrival_ms, deployment=deployment,
            model_name=served.ref.name, model_version=served.ref.version, variant="batch",
            latency_ms=(time.perf_counter() - started) * 1000,
            inputs={**validated.columns, **validated.extras},  # + entity keys, feature ages
            outputs=outputs, flags=validated.flags))
        prediction_log.flush()
    table = pa.Table.from_batches([batch])
    for name, values in outputs.items():
        table = table.append_column(name, pa.array(values))
    n_flagged = 0 if validated.flags is None else sum(1 for f in validated.flags if f)
    return table, n_flagged


def _format(path: Path, what: str) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(f"{what} {path}: use a .parquet or .csv file name")
    return fmt


def _writer(path: Path, fmt: str, schema: pa.Schema) -> Any:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(str(path), schema)  # snappy: fast to write and read
    import pyarrow.csv as pcsv

    return pcsv.CSVWriter(str(path), schema)


class _Progress:
    """A Rich progress bar (rows) when asked for, else a no-op."""

    def __init__(self, enabled: bool, total: int | None, label: str) -> None:
        self.enabled, self.total, self.label = enabled, total, label
        self._bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        from rich.progress import Progress

        self._bar = Progress(transient=False)
        self._bar.start()
        task = self._bar.add_task(self.label, total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

