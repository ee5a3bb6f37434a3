"""Shared rendering for the command line: tables, JSON, times, and the error boundary.

Everything printed for people goes through Rich; everything printed for machines
(``--json``) is plain JSON on stdout with nothing around it. Errors a user can cause
(``RatchetError``, and an ``OSError`` about a named path) become one ``error: ...`` line
on stderr and exit code 1; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from ratchet.clock import to_datetime
from ratchet.errors import RatchetError

if TYPE_CHECKING:
    from ratchet.store.records import (
        AliasEvent,
        ArtifactEntry,
        Experiment,
        Metric,
        ModelVersion,
        RegisteredModel,
    )

DIGEST_PREFIX = 12
MISSING = "-"
PIPE_WIDTH = 200


# ---------------------------------------------------------------- consoles
def console() -> Console:
    """A console on the current stdout (looked up per call, so test runners capture it).

    Piped output gets a wide page rather than Rich's 80 columns, so ids stay on one line
    for grep and cut; ``COLUMNS`` still wins.
    """
    out = Console(highlight=False, markup=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPE_WIDTH
    return out


def error_console() -> Console:
    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def print_error(message: str) -> None:
    """``error: <message>`` on stderr, never wrapped (continuation lines kept as they are)."""
    error_console().print(Text(f"error: {message}", style="red"))


def say(message: str) -> None:
    """One line of plain text for people, never wrapped."""
    console().print(Text(message), soft_wrap=True)


def note(message: str) -> None:
    """A dim remark for people (e.g. "no runs"); never printed in ``--json`` mode."""
    console().print(Text(message, style="dim"), soft_wrap=True)


# ---------------------------------------------------------------- error boundary
class RatchetGroup(TyperGroup):
    """The root command group: a ``RatchetError`` becomes one line and exit code 1; a usage
    error (unknown option, missing argument, bad value) one line and exit code 2, with a
    pointer to ``--help`` instead of Typer's five-line box."""

    def make_context(self, info_name: Any, args: Any, *rest: Any, **kwargs: Any) -> Any:
        with usage_errors_in_one_line():
            ctx = super().make_context(info_name, args, *rest, **kwargs)
        # The command as typed, up to its first option (options may carry secrets).
        words = [str(info_name or "ratchet")]
        for arg in args:
            if str(arg).startswith("-"):
                break
            words.append(str(arg))
        ctx.meta["ratchet.command"] = " ".join(words)
        return ctx

    def invoke(self, ctx: Any) -> Any:  # Any: typer may vendor click's Context
        from ratchet.user_code import launched

        # Runs started from here ran the user's code in the working directory, not
        # ratchet's own console script (a pipeline run narrows this to its file).
        command = ctx.meta.get("ratchet.command", "ratchet")
        with usage_errors_in_one_line(), launched(os.getcwd(), command):
            try:
                return super().invoke(ctx)
            except RatchetError as exc:
                print_error(str(exc) or type(exc).__name__)
                raise typer.Exit(exc.exit_code) from None
            except OSError as exc:  # a path the user gave: too long, a folder, no access
                if exc.filename is None:
                    raise
                print_error(f"{exc.filename}: {exc.strerror or exc}")
                raise typer.Exit(1) from None


@contextmanager
def usage_errors_in_one_line() -> Iterator[None]:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    try:
        yield
    except NoArgsIsHelpError:  # a bare group prints its help, as it should
        raise
    except ClickException as exc:
        where = getattr(exc, "ctx", None)
        command = where.command_path if where is not None else "ratchet"
        print_error(f"{exc.format_message().rstrip('.')}; see {command} --help")
        raise typer.Exit(exc.exit_code) from None


def hide_flag_types() -> None:
    """Typer's help puts ``<bool>`` after every flag although a flag takes no value: show
    nothing there, as for ``--help`` in any other tool."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "ratchet_hides_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_bool_flag else shown(self, ctx)

    display_type_rich.ratchet_hides_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


# ---------------------------------------------------------------- values
def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as a UTC ISO-8601 string, as ``Run.to_dict`` writes them."""
    moment = to_datetime(ms)
    return None if moment is None else moment.isoformat()


def cell_time(ms: int | None, *, precise: bool = False) -> str:
    """A compact UTC ISO-8601 time for tables: ``2024-05-01T12:00:00Z`` (``precise``: ms)."""
    moment = to_datetime(ms)
    if moment is None:
        return MISSING
    return moment.isoformat(timespec="milliseconds" if precise else "seconds").replace(
        "+00:00", "Z"
    )


def cell(value: object) -> str:
    """A value for a table cell: floats compact, ``None`` as ``-``."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def short_digest(digest: str | None) -> str:
    return digest[:DIGEST_PREFIX] if digest else MISSING


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def duration(ms: int | None) -> str:
    from ratchet.durations import elapsed

    return MISSING if ms is None else elapsed(ms)


# ---------------------------------------------------------------- JSON
def jsonable(value: Any) -> Any:
    """Plain JSON values (``ratchet.json_safe``: NaN and missing -> null, +-inf ->
    "Infinity" / "-Infinity")."""
    from ratchet.json_safe import json_safe

    return json_safe(value)


def print_json(data: Any) -> None:
    """Machine-readable output: JSON on stdout and nothing else."""
    from ratchet.json_safe import dumps

    typer.echo(dumps(data, indent=2))


def experiment_dict(exp: Experiment, run_count: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "experiment_id": exp.experiment_id,
        "name": exp.name,
        "description": exp.description,
        "lifecycle": exp.lifecycle,
        "created_at": iso(exp.created_at),
        "tags": dict(exp.tags),
    }
    if run_count is not None:
        data["run_count"] = run_count
    if exp.deleted_at is not None:  # listed with --deleted
        data["deleted_at"] = iso(exp.deleted_at)
    return data


def model_dict(model: RegisteredModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "description": model.description,
        "created_at": iso(model.created_at),
        "updated_at": iso(model.updated_at),
        "latest_version": model.latest_version,
        "aliases": dict(model.aliases),
        "tags": dict(model.tags),
        **({"deleted_at": iso(model.deleted_at)} if model.deleted_at is not None else {}),
    }


def version_dict(mv: ModelVersion) -> dict[str, Any]:
    return {
        "name": mv.name,
        "version": mv.version,
        "uri": mv.uri,
        "run_id": mv.run_id,
        "artifact_path": mv.artifact_path,
        "content_hash": mv.content_hash,
        "flavor": mv.flavor,
        "description": mv.description,
        "created_at": iso(mv.created_at),
        "created_by": mv.created_by,
        "aliases": list(mv.aliases),
        "tags": dict(mv.tags),
        **({"deleted_at": iso(mv.deleted_at)} if mv.deleted_at is not None else {}),
        "manifest": mv.manifest,
    }


def alias_event_dict(event: AliasEvent) -> dict[str, Any]:
    return {
        "model": event.name,
        "alias": event.alias,
        "from_version": event.from_version,
        "to_version": event.to_version,
        "actor": event.actor,
        "reason": event.reason,
        "at": iso(event.at),
    }


def artifact_dict(entry: ArtifactEntry) -> dict[str, Any]:
    return {"path": entry.path, "size": entry.size, "digest": entry.digest}


def metric_dict(metric: Metric) -> dict[str, Any]:
    return {
        "key": metric.key,
        "step": metric.step,
        "value": metric.value,
        "timestamp": iso(metric.timestamp),
    }


# ---------------------------------------------------------------- tables
def table(*columns: str, title: str | None = None, no_wrap: Iterable[str] = ()) -> Table:
    """A table with the house style; columns named in ``no_wrap`` are never broken."""
    keep = set(no_wrap)
    result = Table(title=title, title_justify="left", header_style="bold", show_edge=False)
    for name in columns:
        result.add_column(name, no_wrap=name in keep, overflow="fold")
    return result


def key_values(rows: Sequence[tuple[str, object]], title: str | None = None) -> Table:
    """Two columns, label and value: for a single record's fields."""
    grid = Table.grid(padding=(0, 2))
    grid.title = title
    grid.title_justify = "left"
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else Text(cell(value)))
    return grid


def add_row(target: Table, *values: object) -> None:
    """Add a row of plain text (names and values are never read as Rich markup)."""
    target.add_row(*(v if isinstance(v, Text) else Text(cell(v)) for v in values))


def mapping_table(
    title: str, data: Mapping[str, object], key: str = "key", value: str = "value"
) -> Table:
    result = table(key, value, title=title)
    for k in sorted(data):
        add_row(result, k, data[k])
    return result


def artifacts_table(entries: Sequence[ArtifactEntry], title: str | None = "artifacts") -> Table:
    out = table("path", "size", "digest", title=title)
    for entry in entries:
        add_row(out, entry.path, human_size(entry.size), short_digest(entry.digest))
    return out


def print_all(*renderables: Any) -> None:
    out = console()
    for i, item in enumerate(renderables):
        if i:
            out.print()
        out.print(item)
