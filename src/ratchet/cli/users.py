"""``ratchet users``: the team server's users, their roles and per-resource grants.

They live in the workspace's store: run these on the server's workspace (the first admin
is made this way), or anywhere with ``RATCHET_TRACKING_URI`` and an admin's token.
"""

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
    from ratchet.store.auth_store import AuthStore, Grant, User

app = typer.Typer(
    help="Users of the team server: roles (reader, writer, admin) and per-experiment, "
    "per-model and per-deployment grants. No passwords: users sign in with API tokens "
    "(`ratchet tokens`).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
UserName = Annotated[str, typer.Argument(help="The user's name (case does not matter).")]
ROLE_HELP = "reader (read everything), writer (read and change), admin (also manage users)."
ExperimentOption = Annotated[str | None, typer.Option(
    "--experiment", help="The experiment's name.")]
ModelOption = Annotated[str | None, typer.Option(
    "--model", help="The registered model's name.")]
DeploymentOption = Annotated[str | None, typer.Option(
    "--deployment", help="The deployment's name.")]


def _store() -> AuthStore:
    return Session().workspace.stores.auth


def user_dict(user: User, grants: list[Grant] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": user.name,
        "role": user.role,
        "created_at": iso(user.created_at),
        "disabled_at": iso(user.disabled_at),
    }
    if grants is not None:
        data["grants"] = [grant_dict(g) for g in grants]
    return data


def grant_dict(grant: Grant) -> dict[str, Any]:
    return {"kind": grant.kind, "resource": grant.resource, "level": grant.level}


def _status(user: User) -> str:
    return "active" if user.disabled_at is None else f"disabled {cell_time(user.disabled_at)}"


def _grants_text(grants: list[Grant]) -> str:
    return ", ".join(f"{g.kind} {g.resource}: {g.level}" for g in grants) or "-"


def _resource(experiment: str | None, model: str | None,
              deployment: str | None) -> tuple[str, str]:
    given = [(kind, value) for kind, value in (("experiment", experiment), ("model", model),
                                               ("deployment", deployment)) if value is not None]
    if len(given) != 1:
        raise InvalidInput("name exactly one resource: --experiment NAME, --model NAME or "
                           "--deployment NAME")
    return given[0]


@app.command()
def create(
    name: UserName,
    role: Annotated[str, typer.Option("--role", help=ROLE_HELP)] = "reader",
    as_json: JsonOption = False,
) -> None:
    """Add a user (the first admin: `ratchet users create NAME --role admin` on the
    server's workspace). Then give them a token with `ratchet tokens create --user NAME`."""
    user = _store().create_user(name, role)
    if as_json:
        print_json(user_dict(user, []))
        return
    say(f"created user {user.name} ({user.role}); give them a token with "
        f"`ratchet tokens create --user {user.name}`")


@app.command("list")
def list_users(as_json: JsonOption = False) -> None:
    """List users with their roles, status and grants, by name."""
    store = _store()
    users = store.list_users()
    grants = {user.name: store.grants_of(user.name) for user in users}
    if as_json:
        print_json([user_dict(u, grants[u.name]) for u in users])
        return
    if not users:
        note("no users yet; the first admin: ratchet users create NAME --role admin")
        return
    out = table("name", "role", "status", "created", "grants", no_wrap=("name",))
    for user in users:
        add_row(out, user.name, user.role, _status(user), cell_time(user.created_at),
                _grants_text(grants[user.name]))
    console().print(out)


@app.command()
def show(name: UserName, as_json: JsonOption = False) -> None:
    """Show one user: role, status and each grant."""
    store = _store()
    user = store.get_user(name)
    grants = store.grants_of(user.name)
    if as_json:
        print_json(user_dict(user, grants))
        return
    parts: list[object] = [key_values([
        ("name", user.name), ("role", user.role), ("status", _status(user)),
        ("created", cell_time(user.created_at)),
    ])]
    if grants:
        out = table("kind", "resource", "level", title="grants")
        for grant in grants:
            add_row(out, grant.kind, grant.resource, grant.level)
        parts.append(out)
    print_all(*parts)


@app.command("set-role")
def set_role(
    name: UserName,
    role: Annotated[str, typer.Argument(help=ROLE_HELP)],
) -> None:
    """Change a user's role (their grants stay)."""
    user = _store().set_role(name, role)
    say(f"user {user.name} is now {user.role}")


@app.command()
def disable(name: UserName) -> None:
    """Disable a user: every one of their tokens is refused from now on (within seconds
    on a running server). `ratchet users enable` undoes it."""
    user = _store().disable_user(name)
    say(f"disabled user {user.name}; their tokens no longer work")


@app.command()
def enable(name: UserName) -> None:
    """Enable a disabled user again: their tokens that are neither expired nor revoked
    work again."""
    user = _store().enable_user(name)
    say(f"enabled user {user.name}")


@app.command()
def grant(
    name: UserName,
    level: Annotated[str, typer.Option(
        "--level", help="none, read, write or admin: replaces the role's level on this "
        "resource, up or down (none shuts the user out of it).")],
    experiment: ExperimentOption = None,
    model: ModelOption = None,
    deployment: DeploymentOption = None,
) -> None:
    """Give a user a level on one experiment, model or deployment (it need not exist
    yet). Admins are admin everywhere, whatever a grant says."""
    kind, resource = _resource(experiment, model, deployment)
    given = _store().grant(name, kind, resource, level)
    say(f"granted {given.user_name} {given.level} on {given.kind} {given.resource}")


@app.command()
def revoke(
    name: UserName,
    experiment: ExperimentOption = None,
    model: ModelOption = None,
    deployment: DeploymentOption = None,
) -> None:
    """Remove a user's grant on one resource: their role's level applies there again."""
    from ratchet.store.auth_store import resource_name, user_name

    kind, resource = resource_name(*_resource(experiment, model, deployment))
    _store().revoke_grant(name, kind, resource)
    say(f"revoked the grant of {user_name(name)} on {kind} {resource}; their role's level "
        "applies there again")
