"""The controller's record, read back: where a model's controller is, and every decision
it took (triggers, retrains, gates, rollout steps, promotions, rollbacks) with evidence.

    ratchet.ct.get_controller_state("churn").state        # e.g. "canary"
    [e.summary for e in ratchet.ct.list_events("churn", kinds=("promoted",))]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ratchet.errors import NotFound

if TYPE_CHECKING:
    from ratchet.store.ct_event_store import CTEvent
    from ratchet.store.ct_state_store import ControllerState
    from ratchet.workspace import Workspace


def get_controller_state(model: str, *,
                         workspace: Workspace | None = None) -> ControllerState:
    """``model``'s controller: its state, cycle, working data, pending requests and lease.
    ``NotFound`` if no controller has run for it yet."""
    from ratchet.workspace import resolve

    state = resolve(workspace).stores.ct_state.get(model)
    if state is None:
        raise NotFound(f"no controller has run for model {model!r} yet (ratchet ct tick "
                       "POLICY, or ratchet controller POLICY)")
    return state


def list_events(model: str, *, kinds: Iterable[str] | None = None,
                since_ms: int | None = None,
                workspace: Workspace | None = None) -> list[CTEvent]:
    """``model``'s continuous-training events, oldest first; only ``kinds`` if given
    (``trigger``, ``gate``, ``promoted``, ...), only from ``since_ms`` (epoch ms) if given."""
    from ratchet.workspace import resolve

    chosen = tuple(kinds) if kinds is not None else None
    return resolve(workspace).stores.ct_events.history(model, since=since_ms,
                                                       kinds=chosen or None)


__all__ = ["get_controller_state", "list_events"]
