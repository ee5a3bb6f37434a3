"""A Rich progress bar for trials on stderr; shown only when stderr is a terminal."""

from __future__ import annotations

import sys
from typing import Any


class TrialProgress:
    def __init__(self, total: int, study_name: str, enabled: bool | None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total = total
        self.study_name = study_name
        self._progress: Any = None
        self._task: Any = None
        self.counts = {"complete": 0, "pruned": 0, "fail": 0}

    def __enter__(self) -> TrialProgress:
        if self.enabled and self.total:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[status]}"),
                console=Console(stderr=True), transient=False)
            self._progress.start()
            self._task = self._progress.add_task(self.study_name, total=self.total, status="")
        return self

    def advance(self, state: str, best: float | None, metric: str) -> None:
        self.counts[state] += 1
        if self._progress is None:
            return
        status = f"best {metric}={best:.6g}" if best is not None else "no result yet"
        extra = [f"{n} {s}" for s, n in self.counts.items() if s != "complete" and n]
        if extra:
            status += f" ({', '.join(extra)})"
        self._progress.update(self._task, advance=1, status=status)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
