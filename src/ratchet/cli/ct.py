"""``ratchet ct``: the continuous-training loop's record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ratchet.cli.output import add_row, cell_time, console, iso, note, print_json, table
from ratchet.cli.session import Session
from ratchet.errors import InvalidInput

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


def check(
    candidate: Annotated[str, typer.Argument(help="The candidate model, e.g. churn/7.")],
    data: Annotated[Path, typer.Option(
        "--data", help="A labeled holdout: Parquet or CSV.", exists=True, dir_okay=False)],
    label: Annotated[str, typer.Option("--label", help="The holdout's label column.")],
    champion: Annotated[str | None, typer.Option(
        "--champion", help="Compare with this model, e.g. churn@champion.")] = None,
    policy: Annotated[Path | None, typer.Option(
        "--policy", help="A CT policy YAML; its gate section decides.", exists=True,
        dir_okay=False)] = None,
    metric: Annotated[str, typer.Option(
        "--metric", help="Gate metric when no --policy is given.")] = "accuracy",
    margin: Annotated[float, typer.Option(
        "--margin", help="How much better than the champion the candidate must be.",
        min=0)] = 0.0,
    schema: Annotated[Path | None, typer.Option(
        "--schema", help="Validate the holdout against this schema YAML.", exists=True,
        dir_okay=False)] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Write the Markdown report here (for a pull-request comment).",
        dir_okay=False)] = None,
) -> None:
    """Data validation, model tests and the champion comparison for a candidate; prints a
    Markdown report and exits non-zero if any check fails (for CI)."""
    from ratchet.atomic import write_atomic
    from ratchet.ct.check import run_check
    from ratchet.ct.gate import GatePolicy

    gate = GatePolicy(metric=metric, margin=margin)
    if policy is not None:
        from ratchet.ct.policy import load_policy

        gate = load_policy(policy).gate
    holdout = _read_holdout(data)
    result = run_check(candidate, holdout, label, champion=champion, policy=gate,
                       schema=str(schema) if schema else None, registry=Session().registry)
    text = result.to_markdown()
    if report is not None:
        write_atomic(report, text.encode())
    typer.echo(text)
    if not result.passed:
        raise typer.Exit(1)


def _read_holdout(path: Path) -> Any:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: cannot be read: {exc}") from None
    raise InvalidInput(f"{path}: use a .parquet or .csv holdout")
