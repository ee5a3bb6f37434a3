"""``ratchet``: the root command, its groups, and ``ratchet init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ratchet.cli import (
    artifacts,
    build,
    ct,
    data,
    db,
    deployments,
    experiments,
    features,
    gc,
    importing,
    models,
    monitoring,
    pipelines,
    runs,
    schedules,
    server,
    serving,
    tokens,
    users,
)
from ratchet.cli.output import RatchetGroup, hide_flag_types, say

hide_flag_types()

app = typer.Typer(
    name="ratchet",
    cls=RatchetGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(experiments.app, name="experiments")
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(artifacts.app, name="artifacts")
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(db.app, name="db")
app.add_typer(pipelines.app, name="pipeline")
app.add_typer(schedules.app, name="schedule")
app.command("scheduler")(schedules.scheduler)
app.add_typer(deployments.app, name="deploy")
app.add_typer(monitoring.app, name="monitor")
app.add_typer(ct.app, name="ct")
app.add_typer(users.app, name="users")
app.add_typer(tokens.app, name="tokens")
app.add_typer(importing.app, name="import")
app.command("check")(ct.check)
app.command("controller")(ct.controller)
app.command("serve")(serving.serve)
app.command("server")(server.server)
app.command("ui")(server.ui)
app.command("predict")(serving.predict)
app.command("build")(build.build)
app.command("gc")(gc.gc)


def _print_version(value: bool) -> None:
    if value:
        from ratchet import __version__

        typer.echo(f"ratchet {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """ratchet: track experiments, register models, and move them forward safely.

    Settings come from the nearest ratchet.toml and RATCHET_* environment variables.
    """


@app.command()
def init(
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing ratchet.toml.")
    ] = False,
) -> None:
    """Write a starter ratchet.toml in the current directory."""
    from ratchet.config import write_starter_config

    path = write_starter_config(Path.cwd(), force=force)
    say(f"wrote {path}")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="ratchet")


if __name__ == "__main__":
    main()
