"""``ratchet tokens``: API tokens for the team server (shown once, stored hashed)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from ratchet.cli.output import (
    add_row,
    cell_time,
    console,
    error_console,
    iso,
    note,
    print_json,
    say,
    table,
)
from ratchet.cli.session import Session
from ratchet.clock import now_ms

if TYPE_CHECKING:
    from ratchet.store.auth_store import AuthStore, TokenRecord

app = typer.Typer(
    help="API tokens: how users and jobs sign in to the team server "
    "(`Authorization: Bearer <token>`; clients read RATCHET_TRACKING_TOKEN). A token is "
    "shown once when created; only its hash is stored.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
SHORTEST_EXPIRY = timedelta(minutes=1)


def _store() -> AuthStore:
    return Session().workspace.stores.auth


def token_status(record: TokenRecord, now: int) -> str:
    if record.revoked_at is not None:
        return "revoked"
    if record.expires_at is not None and record.expires_at <= now:
        return "expired"
    return "active"


def token_dict(record: TokenRecord, now: int) -> dict[str, Any]:
    return {
        "token_id": record.token_id,
        "user": record.user_name,
        "label": record.label,
        "status": token_status(record, now),
        "created_at": iso(record.created_at),
        "expires_at": iso(record.expires_at),
        "revoked_at": iso(record.revoked_at),
        "last_used_at": iso(record.last_used_at),
    }


@app.command()
def create(
    user: Annotated[str, typer.Option("--user", help="The user the token signs in as.")],
    label: Annotated[str | None, typer.Option(
        "--label", help="What the token is for (a laptop, a CI job), shown in `tokens list`."
    )] = None,
    expires: Annotated[str | None, typer.Option(
        "--expires", help="Lifetime, e.g. 90d, 12h or 1w (default: until revoked).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print it once: it cannot be shown again (only its hash is
    kept). Store it as a secret; revoke it with `ratchet tokens revoke ID`."""
    from ratchet.durations import duration_ms

    expires_at = None
    if expires is not None:
        expires_at = now_ms() + duration_ms(expires, "--expires", at_least=SHORTEST_EXPIRY)
    issued = _store().create_token(user, label=label, expires_at=expires_at)
    if as_json:
        print_json({"token": issued.token, "token_id": issued.token_id,
                    "user": issued.user_name, "label": issued.label,
                    "created_at": iso(issued.created_at), "expires_at": iso(issued.expires_at)})
        return
    until = cell_time(issued.expires_at) if issued.expires_at is not None else "revoked"
    say(f"token {issued.token_id} for {issued.user_name} (valid until {until}):")
    say(issued.token)
    # On stderr: `TOKEN=$(ratchet tokens create ... | tail -1)` keeps only the token.
    error_console().print(Text(
        "warning: this token is not shown again; copy it now into a secret store (clients "
        "read it from RATCHET_TRACKING_TOKEN)", style="yellow"))


@app.command("list")
def list_tokens(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List tokens (never their secrets), oldest first: status, expiry and last use."""
    records = _store().list_tokens(user)
    now = now_ms()
    if as_json:
        print_json([token_dict(r, now) for r in records])
        return
    if not records:
        note("no tokens" + (f" for {user}" if user else "") +
             "; create one with: ratchet tokens create --user NAME")
        return
    out = table("id", "user", "label", "status", "created", "expires", "last used",
                no_wrap=("id",))
    for r in records:
        add_row(out, r.token_id, r.user_name, r.label, token_status(r, now),
                cell_time(r.created_at), cell_time(r.expires_at), cell_time(r.last_used_at))
    console().print(out)


@app.command()
def revoke(
    token_id: Annotated[str, typer.Argument(
        help="The token's id (from `ratchet tokens list`), or the token itself.")],
) -> None:
    """Revoke a token for good: a running server refuses it within seconds."""
    from ratchet.store.auth_store import parse_token

    parsed = parse_token(token_id)
    record = _store().revoke_token(parsed[0] if parsed is not None else token_id.strip())
    say(f"revoked token {record.token_id} of {record.user_name} "
        f"(at {cell_time(record.revoked_at)})")
