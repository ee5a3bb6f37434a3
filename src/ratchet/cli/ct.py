"""``ratchet ct``: the continuous-training loop's record."""

from __future__ import annotations

from typing import Annotated

import typer

from ratchet.cli.output import add_row, cell_time, console, iso, note, print_json, table
from ratchet.cli.session import Session

app = typer.Typer(
    help="Continuous training: the timeline of every trigger, retrain, gate, rollout step, "
    "promotion and rollback, with evidence.",
    no_args_is_help=True,
)


@app.command("history")
def history(
    model: Annotated[str, typer.Argument(help="The registered model the loop moves.")],
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", help="Only events of this kind (trigger, gate, promoted, ...); "
        "repeatable.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """The loop's timeline for a model, oldest first."""
    from ratchet.store.ct_event_store import CTEventStore

    events = CTEventStore(Session().tracking.store.db).history(
        model, kinds=tuple(kind) if kind else None)
    if as_json:
        print_json([{"event_id": e.event_id, "at": iso(e.at), "kind": e.kind,
                     "summary": e.summary, "actor": e.actor, "evidence": e.evidence}
                    for e in events])
        return
    if not events:
        note(f"no continuous-training events for {model!r} yet")
        return
    out = table("at", "event", "what", "by", no_wrap=("at",))
    for e in events:
        add_row(out, cell_time(e.at, precise=True), e.kind, e.summary, e.actor)
    console().print(out)
