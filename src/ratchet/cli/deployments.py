"""``ratchet deploy``: deployments, their traffic plans, and rollback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ratchet.cli.output import (
    add_row,
    cell_time,
    console,
    iso,
    key_values,
    note,
    print_all,
    print_json,
    say,
    table,
)
from ratchet.cli.session import Session
from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    from ratchet.serving.deployments import DeploymentClient, DeploymentStatus
    from ratchet.serving.traffic_plan import TrafficPlan

app = typer.Typer(
    help="Deployments: what a served endpoint answers with (single, split, shadow, canary), "
    "plan changes that running servers pick up within seconds, and rollback.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
DeploymentName = Annotated[str, typer.Argument(help="The deployment's name.")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why (kept in the history).")]


def _client() -> DeploymentClient:
    return Session().deployments


def _show(status: DeploymentStatus, as_json: bool, headline: str | None = None) -> None:
    if as_json:
        print_json(status.to_dict())
        return
    if headline:
        say(headline)
    versions = ", ".join(f"{k}: {m} v{v}" for k, (m, v) in status.versions.items())
    print_all(key_values([
        ("deployment", status.name),
        ("revision", status.revision),
        ("plan", f"{status.plan.kind}: {status.plan.describe()}"),
        ("serving", versions),
        ("reason", status.reason),
        ("since", cell_time(status.created_at)),
    ]))


def build_plan(model: str | None, canary: str | None, percent: float | None,
               shadow: str | None, split: list[str] | None, key: str | None) -> TrafficPlan:
    """A plan from the command-line options (exactly one shape)."""
    from ratchet.serving.traffic_plan import TrafficPlan

    if split:
        if model or canary or shadow:
            raise InvalidInput("--split takes the whole plan; do not combine it with "
                               "--model, --canary or --shadow")
        weights: dict[str, float] = {}
        for item in split:
            ref, sep, weight = item.rpartition("=")
            try:
                weights[ref] = float(weight)
            except ValueError:
                sep = ""
            if not sep or not ref:
                raise InvalidInput(f"--split {item!r}: expected MODEL=WEIGHT, e.g. churn/3=50")
        return TrafficPlan.split(weights, key=key)
    if model is None:
        raise InvalidInput("give --model (the primary), or --split MODEL=WEIGHT ...")
    if canary and shadow:
        raise InvalidInput("a plan has a canary or a shadow, not both")
    if canary:
        if percent is None:
            raise InvalidInput("--canary needs --percent (the canary's share, 0-100)")
        return TrafficPlan.canary(model, canary, percent, key=key)
    if percent is not None or key is not None:
        raise InvalidInput("--percent and --key go with --canary or --split")
    if shadow:
        return TrafficPlan.shadowed(model, shadow)
    return TrafficPlan.single(model)


ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="The primary model, e.g. churn@champion.")]
CanaryOpt = Annotated[str | None, typer.Option(
    "--canary", help="A model that gets --percent of the traffic.")]
PercentOpt = Annotated[float | None, typer.Option(
    "--percent", help="The canary's share of traffic, 0-100.", min=0, max=100)]
ShadowOpt = Annotated[str | None, typer.Option(
    "--shadow", help="A model that sees a copy of the traffic; its answers are only logged.")]
SplitOpt = Annotated[list[str] | None, typer.Option(
    "--split", help="MODEL=WEIGHT for an A/B split; repeat for each variant.")]
KeyOpt = Annotated[str | None, typer.Option(
    "--key", help="A request field that makes routing sticky (same value, same variant).")]


@app.command("create")
def create(name: DeploymentName, model: ModelOpt = None, canary: CanaryOpt = None,
           percent: PercentOpt = None, shadow: ShadowOpt = None, split: SplitOpt = None,
           key: KeyOpt = None, description: Annotated[str | None, typer.Option(
               "--description", help="What it is for.")] = None,
           as_json: JsonOption = False) -> None:
    """Create a deployment with a plan."""
    plan = build_plan(model, canary, percent, shadow, split, key)
    _show(_client().create(name, plan, description=description), as_json,
          f"created deployment {name}")


@app.command("set-plan")
def set_plan(name: DeploymentName, model: ModelOpt = None, canary: CanaryOpt = None,
             percent: PercentOpt = None, shadow: ShadowOpt = None, split: SplitOpt = None,
             key: KeyOpt = None, reason: Reason = None, as_json: JsonOption = False) -> None:
    """Give a deployment a new plan; running servers switch within seconds, no restart."""
    plan = build_plan(model, canary, percent, shadow, split, key)
    status = _client().set_plan(name, plan, reason=reason)
    _show(status, as_json, f"{name}: revision {status.revision}")


@app.command("rollback")
def rollback(name: DeploymentName, reason: Reason = None, as_json: JsonOption = False) -> None:
    """Undo the newest change (an alias move or a plan change): serve what was served before."""
    status = _client().rollback(name, reason=reason)
    _show(status, as_json, f"{name}: rolled back (revision {status.revision})")


@app.command("show")
def show(name: DeploymentName, as_json: JsonOption = False) -> None:
    """What a deployment serves now."""
    _show(_client().status(name), as_json)


@app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """List deployments and their current plans."""
    from ratchet.serving.traffic_plan import TrafficPlan

    found = _client().list_deployments()
    rows: list[dict[str, Any]] = [
        {"name": d.name, "revision": d.current.revision, "plan": d.current.plan,
         "updated_at": iso(d.current.created_at), "description": d.description}
        for d in found]
    if as_json:
        print_json(rows)
        return
    if not found:
        note("no deployments yet (`ratchet serve MODEL` or `ratchet deploy create` makes one)")
        return
    out = table("name", "revision", "plan", "updated")
    for d in found:
        plan = TrafficPlan.from_dict(d.current.plan)
        add_row(out, d.name, d.current.revision, f"{plan.kind}: {plan.describe()}",
                cell_time(d.current.created_at))
    console().print(out)


@app.command("history")
def history(name: DeploymentName, as_json: JsonOption = False) -> None:
    """Every plan a deployment had, with who changed it and why."""
    from ratchet.serving.traffic_plan import TrafficPlan

    revisions = _client().history(name)
    if as_json:
        print_json([{"revision": r.revision, "plan": r.plan, "reason": r.reason,
                     "actor": r.actor, "created_at": iso(r.created_at)} for r in revisions])
        return
    out = table("revision", "plan", "reason", "actor", "at")
    for r in revisions:
        plan = TrafficPlan.from_dict(r.plan)
        add_row(out, r.revision, f"{plan.kind}: {plan.describe()}", r.reason, r.actor,
                cell_time(r.created_at))
    console().print(out)


@app.command("delete")
def delete(name: DeploymentName, as_json: JsonOption = False) -> None:
    """Delete a deployment and its plan history (the prediction log stays)."""
    _client().delete(name)
    if as_json:
        print_json({"deleted": name})
        return
    say(f"deleted deployment {name}")
