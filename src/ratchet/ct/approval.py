"""Answering the controller: ask it to retrain, approve or reject a challenger.

A request is a row the controller reads on its next tick (``CTStateStore.request``); it
never acts here. The rule for who may answer what lives in this one place, for the CLI,
the server and any script:

- ``retrain`` is always accepted for a registered model (a manual trigger: cooldowns do
  not apply), and applies to whatever cycle comes next;
- ``approve`` and ``reject`` are accepted only while a challenger waits for approval
  (state ``awaiting_approval``), and answer that cycle — an answer cannot leak into a
  later one.

    ratchet.ct.approve("churn", actor="ana", reason="checked the slices")
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Literal

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    from ratchet.workspace import Workspace

RequestKind = Literal["retrain", "approve", "reject"]
REQUEST_KINDS: tuple[RequestKind, ...] = ("retrain", "approve", "reject")
AWAITING_APPROVAL = "awaiting_approval"


def request(model: str, kind: RequestKind, *, actor: str | None = None,
            reason: str | None = None, workspace: Workspace | None = None) -> None:
    """Record ``kind`` for ``model``'s controller; it acts on its next tick.

    ``NotFound`` for a model that is not registered; ``InvalidInput`` for an approval or
    rejection while no challenger is waiting for one. ``actor`` defaults to the OS user.
    """
    from ratchet.registry.client import RegistryClient
    from ratchet.workspace import resolve

    if kind not in REQUEST_KINDS:
        raise InvalidInput(f"unknown controller request {kind!r}; one of "
                           f"{', '.join(REQUEST_KINDS)}")
    ws = resolve(workspace)
    ws.client(RegistryClient).get_model(model)  # NotFound for a model that is not registered
    store = ws.stores.ct_state
    current = store.get(model)
    if kind in ("approve", "reject") and (current is None
                                          or current.state != AWAITING_APPROVAL):
        where = current.state if current else "not started"
        raise InvalidInput(f"model {model!r}: no challenger is waiting for approval (the "
                           f"controller is {where})")
    store.request(model, kind, actor=actor or getpass.getuser(), reason=reason,
                  cycle=current.cycle if current is not None and kind != "retrain" else None)


def request_retrain(model: str, *, actor: str | None = None, reason: str | None = None,
                    workspace: Workspace | None = None) -> None:
    """Ask ``model``'s controller to retrain now (a manual trigger: cooldowns do not
    apply)."""
    request(model, "retrain", actor=actor, reason=reason, workspace=workspace)


def approve(model: str, *, actor: str | None = None, reason: str | None = None,
            workspace: Workspace | None = None) -> None:
    """Approve the challenger waiting for approval (policies with ``approval: true``)."""
    request(model, "approve", actor=actor, reason=reason, workspace=workspace)


def reject(model: str, *, actor: str | None = None, reason: str | None = None,
           workspace: Workspace | None = None) -> None:
    """Reject the challenger waiting for approval; the champion stays."""
    request(model, "reject", actor=actor, reason=reason, workspace=workspace)


__all__ = ["REQUEST_KINDS", "RequestKind", "approve", "reject", "request", "request_retrain"]
