"""``ratchet models``: registered models, versions, aliases and lineage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text
from rich.tree import Tree

from ratchet.cli.output import (
    add_row,
    alias_event_dict,
    cell,
    cell_time,
    console,
    iso,
    key_values,
    mapping_table,
    model_dict,
    note,
    print_all,
    print_json,
    say,
    short_digest,
    table,
    version_dict,
)
from ratchet.cli.session import Session
from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    from rich.table import Table

    from ratchet.registry.client import Lineage
    from ratchet.store.records import ModelVersion

app = typer.Typer(
    help="The model registry: models, versions, aliases, lineage.", no_args_is_help=True
)
alias_app = typer.Typer(
    help="Aliases: movable names (champion, challenger, ...) on versions; every move is recorded.",
    no_args_is_help=True,
)
app.add_typer(alias_app, name="alias")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
ModelName = Annotated[str, typer.Argument(help="The registered model name.")]
AliasName = Annotated[str, typer.Argument(help="The alias, e.g. champion.")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", "-r", help="Why; kept in the alias history.")
]


def _aliases_text(aliases: dict[str, int]) -> str:
    return ", ".join(f"{a}→v{v}" for a, v in sorted(aliases.items())) or "-"


def _versions_table(versions: Sequence[ModelVersion], title: str | None = None) -> Table:
    out = table(
        "version",
        "aliases",
        "created",
        "run id",
        "flavor",
        "content",
        "description",
        title=title,
        no_wrap=("run id",),
    )
    for mv in versions:
        add_row(
            out,
            mv.version,
            ", ".join(mv.aliases) or None,
            cell_time(mv.created_at),
            mv.run_id,
            mv.flavor,
            short_digest(mv.content_hash),
            mv.description,
        )
    return out


DeletedOption = Annotated[
    bool, typer.Option("--deleted", help="Include deleted ones (restorable until gc).")
]


@app.command("list")
def list_models(as_json: JsonOption = False, deleted: DeletedOption = False) -> None:
    """List registered models with their latest version and aliases."""
    found = Session().registry.store.list_registered_models(include_deleted=deleted)
    if as_json:
        print_json([model_dict(m) for m in found])
        return
    if not found:
        note("no registered models yet")
        return
    out = table("name", "latest", "aliases", "updated", "description")
    for model in found:
        add_row(
            out,
            model.name,
            model.latest_version,
            _aliases_text(model.aliases),
            cell_time(model.updated_at),
            model.description,
        )
    console().print(out)


@app.command()
def show(name: ModelName, as_json: JsonOption = False) -> None:
    """Show a model: description, tags, aliases and its versions."""
    registry = Session().registry
    model = registry.get_model(name)
    versions = registry.list_versions(name)
    if as_json:
        data = model_dict(model)
        data["versions"] = [version_dict(v) for v in versions]
        print_json(data)
        return
    parts: list[object] = [
        key_values(
            [
                ("name", model.name),
                ("description", model.description),
                ("latest version", model.latest_version),
                ("aliases", _aliases_text(model.aliases)),
                ("created", cell_time(model.created_at)),
                ("updated", cell_time(model.updated_at)),
            ]
        )
    ]
    if model.tags:
        parts.append(mapping_table("tags", model.tags))
    if versions:
        parts.append(_versions_table(versions, title="versions"))
    print_all(*parts)


@app.command()
def versions(name: ModelName, as_json: JsonOption = False,
             deleted: DeletedOption = False) -> None:
    """List a model's versions, oldest first."""
    found = Session().registry.store.list_model_versions(name, include_deleted=deleted)
    if as_json:
        print_json([version_dict(v) for v in found])
        return
    if not found:
        note(f"model {name} has no versions")
        return
    console().print(_versions_table(found))


@app.command()
def register(
    source: Annotated[str, typer.Argument(
        help="A model logged with a run: runs:/<run id>/<artifact path>.")],
    name: ModelName,
    description: Annotated[str | None, typer.Option(
        "--description", help="What this version is.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Register a model logged with a run as the next version of NAME."""
    found = Session().registry.register(source, name, description=description)
    if as_json:
        print_json(version_dict(found))
        return
    say(f"registered {found.name} version {found.version} from {source}")


# ---------------------------------------------------------------- aliases
@alias_app.command("set")
def alias_set(
    name: ModelName,
    alias: AliasName,
    version: Annotated[int, typer.Argument(help="The version number to point it at.")],
    reason: ReasonOption = None,
) -> None:
    """Point an alias at a version (creating or moving it)."""
    event = Session().registry.set_alias(name, alias, version, reason=reason)
    was = "" if event.from_version is None else f" (was version {event.from_version})"
    say(f"{event.name}@{event.alias} → version {event.to_version}{was}")


@alias_app.command("delete")
def alias_delete(name: ModelName, alias: AliasName, reason: ReasonOption = None) -> None:
    """Remove an alias from a model (the removal is recorded)."""
    event = Session().registry.delete_alias(name, alias, reason=reason)
    say(f"deleted {event.name}@{event.alias} (was version {event.from_version})")


@alias_app.command("history")
def alias_history(
    name: ModelName,
    alias: Annotated[str | None, typer.Argument(help="Only this alias.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every move of a model's aliases, oldest first."""
    events = Session().registry.alias_history(name, alias)
    if as_json:
        print_json([alias_event_dict(e) for e in events])
        return
    if not events:
        note(f"no alias changes recorded for {name}" + (f"@{alias}" if alias else ""))
        return
    out = table("time", "alias", "from", "to", "actor", "reason")
    for event in events:
        add_row(
            out,
            cell_time(event.at),
            event.alias,
            event.from_version,
            event.to_version,
            event.actor,
            event.reason,
        )
    console().print(out)


def parse_when(text: str) -> datetime:
    """An ISO-8601 datetime; without an offset it is taken as UTC."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not an ISO-8601 datetime; use e.g. 2024-05-01T12:00:00Z "
            "(no offset means UTC)"
        ) from None


@alias_app.command("at")
def alias_at(
    name: ModelName,
    alias: AliasName,
    when: Annotated[
        str,
        typer.Argument(help="ISO-8601 datetime, e.g. 2024-05-01T12:00:00Z (no offset means UTC)."),
    ],
    as_json: JsonOption = False,
) -> None:
    """Print the version an alias pointed at, at a moment in time (or "unset")."""
    moment = parse_when(when)
    version = Session().registry.version_at(name, alias, moment)
    if as_json:
        from ratchet.clock import to_ms

        print_json(
            {
                "model": name,
                "alias": alias,
                "at": iso(to_ms(moment)),
                "version": version,
            }
        )
        return
    typer.echo("unset" if version is None else str(version))


# ---------------------------------------------------------------- lineage
@app.command()
def lineage(
    uri: Annotated[
        str,
        typer.Argument(
            help="churn@champion, churn/3, models:/churn@champion, models:/churn/latest."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Trace a model version to its run, the datasets it read and the code commit."""
    found = Session().registry.lineage(uri)
    if as_json:
        print_json(found.to_dict())
        return
    console().print(lineage_tree(found))


def lineage_tree(found: Lineage) -> Tree:
    mv = found.version
    label = Text(f"{mv.name} v{mv.version}", style="bold")
    if mv.aliases:
        label.append(f"  @{', @'.join(mv.aliases)}")
    label.append(f"  flavor {mv.flavor}  content {short_digest(mv.content_hash)}")
    tree = Tree(label)
    run = found.run
    if run is None:
        tree.add(Text("run: none recorded", style="dim"))
        return tree
    run_node = tree.add(Text(f"run {run.run_id}  {run.name}  {run.status}"))
    if run.metrics:
        metrics = run_node.add(Text("metrics"))
        for key in sorted(run.metrics):
            metrics.add(Text(f"{key} = {cell(run.metrics[key])}"))
    datasets = run_node.add(Text("datasets"))
    if not run.inputs:
        datasets.add(Text("none recorded", style="dim"))
    for item in run.inputs:
        name = item.name if item.version is None else f"{item.name}@{item.version}"
        datasets.add(Text(f"{name}  digest {short_digest(item.digest)}  role {item.role}"))
    code = run.code
    if code.git_commit is None:
        commit = Text("commit: none recorded (not a git checkout)", style="dim")
    else:
        commit = Text(f"commit {code.git_commit}")
        if code.git_branch:
            commit.append(f"  branch {code.git_branch}")
        if code.git_dirty:
            commit.append("  dirty", style="yellow")
        elif code.git_dirty is False:
            commit.append("  clean")
    if code.entry_point:
        commit.append(f"  entry point {code.entry_point}")
    run_node.add(commit)
    return tree


ForceOption = Annotated[
    bool, typer.Option("--force", help="Delete even though an alias or a deployment uses it "
                                       "(its aliases are removed).")
]
VersionOption = Annotated[
    int | None, typer.Option("--version", "-v", help="Only this version, not the whole model.",
                             min=1)
]


@app.command()
def delete(name: ModelName, version: VersionOption = None, force: ForceOption = False) -> None:
    """Delete a model version, or a whole model (restorable until `ratchet gc`)."""
    from ratchet.tracking.deletion import delete_model, delete_model_version

    tracking = Session().tracking
    if version is None:
        delete_model(name, force=force, workspace=tracking.workspace)
        say(f"deleted model {name}; `ratchet models restore {name}` undoes it")
    else:
        delete_model_version(name, version, force=force, workspace=tracking.workspace)
        say(f"deleted model {name} version {version}; "
            f"`ratchet models restore {name} --version {version}` undoes it")


@app.command()
def restore(name: ModelName, version: VersionOption = None) -> None:
    """Restore a deleted model version, or a deleted model."""
    from ratchet.tracking.deletion import restore_model, restore_model_version

    tracking = Session().tracking
    if version is None:
        restore_model(name, workspace=tracking.workspace)
        say(f"restored model {name}")
    else:
        restore_model_version(name, version, workspace=tracking.workspace)
        say(f"restored model {name} version {version}")
