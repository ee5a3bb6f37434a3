"""``ratchet data``: log, list, show, diff, validate and infer schemas of datasets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ratchet.cli.output import (
    add_row,
    cell_time,
    console,
    error_console,
    human_size,
    key_values,
    note,
    print_all,
    print_json,
    say,
    short_digest,
    table,
)
from ratchet.cli.session import Session

if TYPE_CHECKING:
    from ratchet.data.version import DatasetVersion

app = typer.Typer(
    help="Versioned datasets: immutable snapshots with profiles, diffs and validation.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
DataArg = Annotated[str, typer.Argument(
    help="A dataset reference (churn, churn@3, churn@<hash prefix>) or a CSV/Parquet path.")]


@app.command("log")
def log_dataset(
    path: Annotated[Path, typer.Argument(help="A CSV or Parquet file, or a directory of them.")],
    name: Annotated[str, typer.Option("--name", "-n", help="The dataset's name.")],
    source: Annotated[str | None, typer.Option(help="Where the data came from.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Store a file as the next version of a dataset (identical content: same version)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    session = Session()
    # Progress goes to stderr, and only to a terminal: stdout stays clean for scripts.
    stderr = error_console()
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=stderr,
                  transient=True, disable=as_json or not stderr.is_terminal) as bar:
        task = bar.add_task(f"hashing and profiling {path.name}", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        version = session.data.log(path, name, source=source, progress=progress)
    if as_json:
        print_json(version.to_dict())
        return
    say(f"{version.ref}  {version.row_count:,} rows  {human_size(version.size_bytes)}  "
        f"hash {short_digest(version.digest)}")


@app.command("list")
def list_datasets(as_json: JsonOption = False) -> None:
    """Every dataset with its number of versions."""
    datasets = Session().data.list_datasets()
    if as_json:
        print_json([{"name": d.name, "versions": d.versions, "latest_version": d.latest_version}
                    for d in datasets])
        return
    if not datasets:
        note("no datasets yet: ratchet data log FILE --name NAME")
        return
    out = table("name", "versions", "latest")
    for d in datasets:
        add_row(out, d.name, d.versions, d.latest_version)
    console().print(out)


@app.command()
def versions(name: Annotated[str, typer.Argument(help="The dataset's name.")],
             as_json: JsonOption = False,
             deleted: Annotated[bool, typer.Option(
                 "--deleted", help="Include deleted versions (restorable until gc).")] = False,
             ) -> None:
    """Every version of a dataset, oldest first."""
    session = Session()
    if deleted:
        from ratchet.data.version import DatasetVersion

        found = [DatasetVersion.from_record(r, session.data)
                 for r in session.data.store.list_versions(name, include_deleted=True)]
    else:
        found = session.data.list_versions(name)
    if as_json:
        print_json([_summary(v) for v in found])
        return
    out = table("version", "rows", "size", "hash", "created", "source", "run")
    for v in found:
        add_row(out, v.version, f"{v.row_count:,}", human_size(v.size_bytes),
                short_digest(v.digest), cell_time(v.created_at), v.source,
                (v.created_by_run or "")[:12])
    console().print(out)


@app.command()
def show(ref: Annotated[str, typer.Argument(help="churn, churn@3 or churn@<hash prefix>.")],
         as_json: JsonOption = False) -> None:
    """A version's facts, schema and column profile."""
    session = Session()
    v = session.data.get(ref)
    if as_json:
        print_json({**v.to_dict(), "used_by": [{"run_id": r, "role": role}
                                               for r, role in session.data.used_by(v.ref)]})
        return
    facts = key_values([
        ("dataset", v.ref), ("hash", v.digest), ("rows", f"{v.row_count:,}"),
        ("size", human_size(v.size_bytes)), ("source", v.source),
        ("parent", f"{v.name}@{v.parent_version}" if v.parent_version else None),
        ("created", cell_time(v.created_at)), ("created by run", v.created_by_run),
        ("file", str(v.path)),
    ])
    profile = table("column", "type", "kind", "nulls", "distinct", "min", "max", "mean",
                    "top", title="profile")
    for c in v.profile.columns:
        top = ", ".join(f"{value} ({count})" for value, count in (c.top or ())[:3])
        add_row(profile, c.name, c.arrow_type, c.semantic_type, c.nulls,
                f"{c.distinct:,}" + ("" if c.distinct_exact else "~"), _short(c.min),
                _short(c.max), _short(c.mean), top)
    used = session.data.used_by(v.ref)
    renderables: list[Any] = [facts, profile]
    if used:
        runs = table("run", "role", title="used by")
        for run_id, role in used:
            add_row(runs, run_id, role)
        renderables.append(runs)
    print_all(*renderables)


@app.command()
def diff(
    base: Annotated[str, typer.Argument(help="The older version, e.g. churn@2.")],
    other: Annotated[str, typer.Argument(help="The newer version, e.g. churn@3.")],
    key: Annotated[list[str] | None, typer.Option(
        "--key", "-k", help="Column(s) identifying a row; repeat for a compound key.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Rows added/removed (by key if given), schema changes, distribution changes."""
    result = Session().data.diff(base, other, key)
    if as_json:
        print_json(result.to_dict())
        return
    rows = [("rows", f"{result.rows_base:,} -> {result.rows_other:,}"),
            ("added", f"{result.rows_added:,}"), ("removed", f"{result.rows_removed:,}")]
    if result.rows_changed is not None:
        rows.append(("changed", f"{result.rows_changed:,} (same key, other values)"))
    if result.columns_added:
        rows.append(("new columns", ", ".join(result.columns_added)))
    if result.columns_removed:
        rows.append(("dropped columns", ", ".join(result.columns_removed)))
    for column, old, new in result.type_changes:
        rows.append(("type change", f"{column}: {old} -> {new}"))
    out = table("column", "status", "change", title="distributions")
    for comparison in result.distribution:
        add_row(out, comparison.column, comparison.status, _comparison_text(comparison))
    print_all(key_values(rows, title=f"{result.base} -> {result.other}"), out)


@app.command("infer-schema")
def infer_schema(
    data: DataArg,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the YAML here (default: print it).")] = None,
) -> None:
    """Propose a validation schema (types, nulls, ranges, categories) to edit and keep."""
    import ratchet.data.schema as schemas

    source = _resolve(data)
    schema = schemas.infer_schema(source.profile if hasattr(source, "profile") else source,
                                  name=getattr(source, "name", None))
    if output is None:
        typer.echo(schema.to_yaml())
        return
    say(f"wrote {schemas.save_schema(schema, output)}")


@app.command()
def validate(
    data: DataArg,
    schema: Annotated[Path, typer.Option("--schema", "-s", help="A schema YAML file.")],
    as_json: JsonOption = False,
) -> None:
    """Check data against a schema; exit 1 when an error-severity check fails."""
    from ratchet.data.validation import validate as run_validation

    source = _resolve(data)
    frame = source.to_pandas() if hasattr(source, "to_pandas") else source
    report = run_validation(frame, schema)
    if as_json:
        print_json(report.to_dict())
    else:
        console().print(report.summary())
    if not report.passed:
        raise typer.Exit(1)


def _resolve(data: str) -> Any:
    """A dataset version for a reference, or an Arrow table for a file path."""
    from ratchet.data.readers import CSV_SUFFIXES, PARQUET_SUFFIXES
    from ratchet.errors import NotFound

    path = Path(data)
    looks_like_file = "/" in data or data.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES)
    if looks_like_file and not path.exists():
        raise NotFound(f"{data}: no such file (to name a dataset version, use churn@3)")
    if path.exists():
        import pyarrow as pa

        from ratchet.data.readers import open_source

        src = open_source(path)
        return pa.Table.from_batches(list(src.batches), schema=src.schema).to_pandas()
    return Session().data.get(data)


def _summary(v: DatasetVersion) -> dict[str, Any]:
    data = v.to_dict()
    data.pop("profile")
    return data


def _short(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 24 else text[:23] + "…"


def _comparison_text(comparison: Any) -> str:
    shown = []
    for key, value in comparison.statistics.items():
        if value is None or key.endswith(("_ref", "_cur")):
            continue
        shown.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(shown[:4])


@app.command()
def delete(
    refs: Annotated[list[str], typer.Argument(help="Dataset versions as name@number.")],
    force: Annotated[bool, typer.Option(
        "--force", help="Delete even though runs recorded it as an input.")] = False,
) -> None:
    """Delete dataset versions (restorable until `ratchet gc` purges them)."""
    from ratchet.tracking.deletion import delete_dataset_version

    tracking = Session().tracking
    for ref in refs:
        delete_dataset_version(ref, force=force, workspace=tracking.workspace)
        say(f"deleted dataset {ref}; `ratchet data restore {ref}` undoes it")


@app.command()
def restore(
    refs: Annotated[list[str], typer.Argument(help="Dataset versions as name@number.")],
) -> None:
    """Restore deleted dataset versions."""
    from ratchet.tracking.deletion import restore_dataset_version

    tracking = Session().tracking
    for ref in refs:
        restore_dataset_version(ref, workspace=tracking.workspace)
        say(f"restored dataset {ref}")
