"""Executors: where a step or a trial runs. Pipelines and tuning hand an executor small,
self-contained tasks (picklable callables that read and write the artifact store
themselves) and get futures back; nothing else about them is shared.
"""

from __future__ import annotations

from ratchet.executors.base import Executor, Resources
from ratchet.executors.spec import resolve_executor

__all__ = ["Executor", "Resources", "resolve_executor"]
