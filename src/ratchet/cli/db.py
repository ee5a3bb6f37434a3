"""``ratchet db``: schema migrations and where the store lives."""

from __future__ import annotations

from typing import Annotated

import typer

from ratchet.cli.output import key_values, print_all, print_json
from ratchet.cli.session import Session

app = typer.Typer(help="The metadata store: migrations and location.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]

def mask_password(url: str) -> str:
    """The database URL with any password replaced by ``***``."""
    from ratchet.store.database import redact_url

    return redact_url(url)


@app.command()
def upgrade() -> None:
    """Apply pending schema migrations and print the revision the store is at."""
    from ratchet.store.database import Database
    from ratchet.store.database import upgrade as apply_migrations

    database = Database(Session().settings.db_url, migrate=False)
    try:
        revision = apply_migrations(database)
    finally:
        database.dispose()
    typer.echo(f"database at revision {revision}")


@app.command()
def current(as_json: JsonOption = False) -> None:
    """Print the store's schema revision and the newest one this version knows."""
    from ratchet.store.database import HEAD_REVISION, Database, current_revision

    database = Database(Session().settings.db_url, migrate=False)
    try:
        revision = current_revision(database)
    finally:
        database.dispose()
    if as_json:
        print_json(
            {"current": revision, "head": HEAD_REVISION, "up_to_date": revision == HEAD_REVISION}
        )
        return
    print_all(
        key_values(
            [
                ("current", revision or "none (empty store; run `ratchet db upgrade`)"),
                ("head", HEAD_REVISION),
            ]
        )
    )


@app.command()
def info(as_json: JsonOption = False) -> None:
    """Print the database URL (password masked), artifact location, home and config file."""
    settings = Session().settings
    data = {
        "db": mask_password(settings.db_url),
        "artifacts": mask_password(settings.artifacts_uri),
        "home": str(settings.home),
        "config_file": str(settings.config_file) if settings.config_file else None,
        "tracking_uri": mask_password(settings.tracking_uri) if settings.tracking_uri else None,
    }
    if as_json:
        print_json(data)
        return
    print_all(
        key_values(
            [
                ("database", data["db"]),
                ("artifacts", data["artifacts"]),
                ("home", data["home"]),
                ("config file", data["config_file"] or "none (defaults and environment)"),
                ("tracking uri", data["tracking_uri"] or "none (local store)"),
            ]
        )
    )
