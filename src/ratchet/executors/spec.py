"""An executor from its name: ``"local"``, ``"local:4"``, ``"processes"``, ``"ray"``,
``"ray:<address>"`` (what ``--executor`` and ``RATCHET_EXECUTOR`` take), or an instance.
Backends are imported only when named, so choosing ``"local"`` never imports Ray."""

from __future__ import annotations

import os

from ratchet.errors import InvalidInput
from ratchet.executors.base import Executor


def resolve_executor(spec: str | Executor | None) -> Executor:
    """``None``/``"local"`` (threads), ``"local:4"``, ``"processes"``/``"processes:4"``,
    ``"ray"`` (``RAY_ADDRESS`` or a local cluster) or ``"ray:<address>"``, or an instance."""
    if isinstance(spec, Executor):
        return spec
    if spec is None:
        spec = os.environ.get("RATCHET_EXECUTOR") or "local"
    if not isinstance(spec, str):
        raise InvalidInput(f"executor must be a name like 'local' or 'ray' or an Executor, "
                           f"got {type(spec).__name__}")
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("local", "threads", "processes"):
        from ratchet.executors.local import LocalExecutor

        workers = None
        if arg:
            if not arg.isdigit() or int(arg) < 1:
                raise InvalidInput(f"executor {spec!r}: the worker count after ':' must be a "
                                   "positive integer, e.g. 'local:4'")
            workers = int(arg)
        return LocalExecutor(workers=workers, processes=kind == "processes")
    if kind == "ray":
        from ratchet.executors.ray import RayExecutor

        return RayExecutor(address=arg or None)
    raise InvalidInput(f"unknown executor {spec!r}: use 'local', 'local:N', 'processes', "
                       "'ray' or 'ray:<address>'")
