"""Capture a step's stdout/stderr while still showing it.

Steps run on pool threads at the same time, so ``sys.stdout`` is swapped once for a
router that sends each write to the buffer of the step running on that thread and on to
the real stream (a tee: ``print`` and ``pdb`` behave as usual).
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO, cast

MAX_CAPTURE_CHARS = 5_000_000  # a runaway step cannot fill memory; the tail is kept

_local = threading.local()
_install_lock = threading.Lock()


class _Router(io.TextIOBase):
    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label

    def write(self, text: str) -> int:
        buffer: _Capture | None = getattr(_local, "capture", None)
        if buffer is not None:
            buffer.add(self.label, text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class _Capture:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.last_label: str | None = None

    def add(self, label: str, text: str) -> None:
        if not text:
            return
        if label != self.last_label:
            self.parts.append(f"[{label}] " if self.parts or label != "stdout" else "")
            self.last_label = label
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * MAX_CAPTURE_CHARS:
            joined = "".join(self.parts)[-MAX_CAPTURE_CHARS:]
            self.parts, self.size = [joined], len(joined)

    def text(self) -> str:
        return "".join(self.parts)[-MAX_CAPTURE_CHARS:]


def _routed(stream: TextIO, label: str) -> TextIO:
    if isinstance(stream, _Router):
        if stream.label == label:
            return stream
        stream = stream.stream  # e.g. stdout redirected to stderr: route the real stream
    return cast(TextIO, _Router(stream, label))


def _install() -> None:
    with _install_lock:
        sys.stdout = _routed(sys.stdout, "stdout")
        sys.stderr = _routed(sys.stderr, "stderr")


@contextmanager
def captured_output() -> Iterator[_Capture]:
    """Collect what this thread prints during the block (stderr lines are labelled)."""
    _install()
    previous = getattr(_local, "capture", None)
    capture = _Capture()
    _local.capture = capture
    try:
        yield capture
    finally:
        _local.capture = previous
