"""Where :class:`~ratchet.serving.inference.InferenceService` writes what it answered.

The interface is one method, ``record(entry)``, with a
:class:`~ratchet.serving.prediction_log.LoggedRequest` per routed model call (primary,
canary or split variant, shadow; failed calls too). Two implementations:
:class:`~ratchet.serving.prediction_log.PredictionLog` (the server's: buffered Parquet
files) and :class:`MemoryPredictionLog` (a backtest's: the same rows, kept in memory and
read back as the same frame ``predictions()`` returns), so a backtest logs exactly what
the live server would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.serving.prediction_log import LoggedRequest


class PredictionSink(Protocol):
    def record(self, entry: LoggedRequest) -> object:
        """Keep ``entry`` (the live log answers whether it could); never raises."""


class MemoryPredictionLog:
    """Entries kept in memory; :meth:`drain` turns those recorded since the last drain
    into prediction-log rows, with the live log's columns and types (as
    ``ratchet.serving.prediction_query.predictions`` reads them), ordered like it: by
    timestamp, request id and row."""

    def __init__(self) -> None:
        self._entries: list[LoggedRequest] = []
        self.dropped = 0  # rows of malformed entries (the live log drops them too)

    def record(self, entry: LoggedRequest) -> bool:
        from ratchet.serving.prediction_log import stored_rows

        try:
            n = stored_rows(entry)
        except ValueError:
            self.dropped += 1
            return False
        if n:  # as the writer: an answered request without rows has nothing to log
            self._entries.append(entry)
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def drain(self) -> pd.DataFrame:
        from ratchet.serving.prediction_log import meta_schema, to_table

        entries, self._entries = self._entries, []
        table = to_table(entries) if entries else meta_schema().empty_table()
        frame = table.to_pandas()
        frame["row"] = frame["row"].astype("Int32")
        return frame.sort_values(["timestamp", "request_id", "row"], kind="stable",
                                 ignore_index=True)


__all__ = ["MemoryPredictionLog", "PredictionSink"]
