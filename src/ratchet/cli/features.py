"""``ratchet features``: plan and apply definitions, list and show them, materialize,
push, look up online features and build training sets.

Definitions are declared in the user's own Python file (or module) at module level; the
commands that run on-demand views import that file too (``--definitions``), because
ratchet never loads code from the metadata store
(:mod:`ratchet.features.definition_modules`, the loader the server shares).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ratchet.cli.output import (
    add_row,
    cell_time,
    console,
    error_console,
    iso,
    key_values,
    note,
    print_all,
    print_json,
    say,
    table,
)
from ratchet.cli.session import Session
from ratchet.errors import InvalidInput, NotFound
from ratchet.features.definition_modules import load_definitions

if TYPE_CHECKING:
    from ratchet.features.catalog import FeatureCatalog
    from ratchet.store.feature_definition_store import FeatureDefinitionRecord
    from ratchet.workspace import Workspace

app = typer.Typer(
    help="The feature store: declare entities and feature views, apply them, materialize "
         "them online, look features up and build point-in-time training sets.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
DefinitionsArg = Annotated[str, typer.Argument(
    help="A Python file (features.py) or module (my_project.features) declaring Entity, "
         "FeatureView and OnDemandFeatureView objects at module level.")]
DefinitionsOption = Annotated[str | None, typer.Option(
    "--definitions", "-d",
    help="The file or module declaring the on-demand views the features use (their code "
         "runs here; ratchet never loads code from the metadata store).")]
FeatureOption = Annotated[list[str], typer.Option(
    "--feature", "-f", help="A feature as view:feature (or a view's name for all its "
                            "features); repeat for several.")]
FullNamesOption = Annotated[bool, typer.Option(
    "--full-feature-names", help="Name the columns view__feature instead of feature.")]

_KIND_WORDS = {"entity": "entity", "feature_view": "feature view", "on_demand": "on-demand view"}
_KINDS = ("entity", "feature_view", "on_demand")


# ---------------------------------------------------------------- plan / apply
@app.command("plan")
def plan(
    target: DefinitionsArg,
    exit_code: Annotated[bool, typer.Option(
        "--exit-code", help="Exit 2 when applying would change something (for CI).")] = False,
    as_json: JsonOption = False,
) -> None:
    """What `apply` would register: each definition created, updated or unchanged."""
    loaded = load_definitions(target)
    result = _catalog().plan(loaded.definitions, base_dir=loaded.base_dir)
    _print_plan(result, as_json)
    if exit_code and result.changes:
        raise typer.Exit(2)


@app.command("apply")
def apply(
    target: DefinitionsArg,
    as_json: JsonOption = False,
) -> None:
    """Register the declared definitions; each changed one becomes a new version."""
    loaded = load_definitions(target)
    catalog = _catalog()
    result = catalog.apply(loaded.definitions, base_dir=loaded.base_dir,
                           actor=_actor())
    _print_plan(result, as_json)


def _print_plan(result: Any, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    say(str(result))


def _actor() -> str | None:
    """Who applies: the OS user, as `ratchet ct` requests record it."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in this environment (a bare container)
        return None


def _catalog() -> FeatureCatalog:
    from ratchet.features.catalog import FeatureCatalog

    return FeatureCatalog(Session().workspace)


# ---------------------------------------------------------------- list / show
@app.command("list")
def list_definitions(as_json: JsonOption = False) -> None:
    """Every entity, feature view and on-demand view (latest versions)."""
    records = _catalog().store.list_definitions()
    if as_json:
        print_json([_definition_dict(r) for r in records])
        return
    if not records:
        note("no feature definitions yet: declare them in a file and run "
             "`ratchet features apply FILE`")
        return
    renderables = []
    entities = [r for r in records if r.kind == "entity"]
    views = [r for r in records if r.kind == "feature_view"]
    demands = [r for r in records if r.kind == "on_demand"]
    if entities:
        out = table("name", "version", "join keys", "description", title="entities")
        for r in entities:
            add_row(out, r.name, r.version, ", ".join(r.spec["join_keys"]),
                    r.spec.get("description") or None)
        renderables.append(out)
    if views:
        out = table("name", "version", "entities", "features", "source", "ttl", "online",
                    title="feature views")
        for r in views:
            add_row(out, r.name, r.version,
                    ", ".join(e["name"] for e in r.spec["entities"]),
                    ", ".join(r.spec["features"]), r.spec["source"],
                    _ttl(r.spec.get("ttl_seconds")), bool(r.spec.get("online", True)))
        renderables.append(out)
    if demands:
        out = table("name", "version", "features", "inputs", "request", "function",
                    title="on-demand views")
        for r in demands:
            add_row(out, r.name, r.version, ", ".join(r.spec["features"]),
                    ", ".join(r.spec["inputs"]) or None, ", ".join(r.spec["request"]) or None,
                    r.spec.get("function"))
        renderables.append(out)
    print_all(*renderables)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="An entity's, feature view's or on-demand "
                                             "view's name.")],
    as_json: JsonOption = False,
) -> None:
    """A definition's versions, what changed in each, its materialization and training sets.

    Training sets are the logged ones (`training-set --log`) built from any version.
    """
    session = Session()
    store = session.workspace.stores.features
    found = []
    for kind in _KINDS:
        try:
            found.append((kind, store.definition_history(kind, name)))
        except NotFound:
            continue
    if not found:
        raise NotFound(f"no entity, feature view or on-demand view {name!r} is registered "
                       "(see `ratchet features list`)")
    online_uri = session.settings.online_store_uri
    shown = []
    for kind, history in found:
        item: dict[str, Any] = {
            "kind": kind, "name": name, "_records": history,
            "versions": [{**_definition_dict(r), "changes": _changes(history, i)}
                         for i, r in enumerate(history)],
            "training_sets": [{"dataset": link.dataset_name, "version": link.dataset_version,
                               "definition_version": link.version}
                              for link in store.training_sets_using(kind, name)],
        }
        if kind == "feature_view":
            last = store.last_materialization(name, online_uri)
            item["online_store"] = _safe_uri(online_uri)
            item["last_materialization"] = None if last is None else {
                "view_version": last.view_version, "rows": last.rows,
                "start": _us_iso(last.start_at), "end": _us_iso(last.end_at),
                "at": iso(last.created_at)}
        shown.append(item)
    if as_json:
        public = [{k: v for k, v in item.items() if k != "_records"} for item in shown]
        print_json(public[0] if len(public) == 1 else public)
        return
    renderables: list[Any] = []
    for item in shown:
        renderables.extend(_show_renderables(item))
    print_all(*renderables)


def _show_renderables(item: dict[str, Any]) -> list[Any]:
    latest = item["versions"][-1]
    spec = latest["spec"]
    word = _KIND_WORDS[item["kind"]]
    facts: list[tuple[str, object]] = [(word, f"{item['name']} (version {latest['version']})")]
    if item["kind"] == "entity":
        facts.append(("join keys", ", ".join(spec["join_keys"])))
    elif item["kind"] == "feature_view":
        facts += [("entities", ", ".join(f"{e['name']} ({', '.join(e['join_keys'])})"
                                         for e in spec["entities"])),
                  ("features", ", ".join(spec["features"])), ("source", spec["source"]),
                  ("timestamp", spec["timestamp_field"]),
                  ("created timestamp", spec.get("created_timestamp_field")),
                  ("ttl", _ttl(spec.get("ttl_seconds"))), ("online", spec.get("online"))]
    else:
        facts += [("features", ", ".join(spec["features"])),
                  ("inputs", ", ".join(spec["inputs"]) or None),
                  ("request", ", ".join(spec["request"]) or None),
                  ("function", spec.get("function"))]
    if spec.get("description"):
        facts.append(("description", spec["description"]))
    out: list[Any] = [key_values(facts)]
    versions = table("version", "created", "by", "digest", "changed", title="versions")
    for v, record in zip(item["versions"], item["_records"], strict=True):
        add_row(versions, v["version"], cell_time(record.created_at), v["created_by"],
                v["digest"][:12], ", ".join(v["changes"]) or "(first version)")
    out.append(versions)
    if item["kind"] == "feature_view":
        last = item["last_materialization"]
        if last is None:
            out.append(key_values([("materialized", f"never into {item['online_store']} "
                                                    "(ratchet features materialize)")]))
        else:
            out.append(key_values([
                ("materialized", f"into {item['online_store']} at {last['at']}"),
                ("up to", last["end"]), ("from", last["start"] or "the beginning"),
                ("rows", f"{last['rows']:,} (view version {last['view_version']})")],
                title="last materialization"))
    if item["training_sets"]:
        sets = table("dataset", "version", "built from version", title="training sets")
        for link in item["training_sets"]:
            add_row(sets, link["dataset"], link["version"], link["definition_version"])
        out.append(sets)
    return out


def _definition_dict(r: FeatureDefinitionRecord) -> dict[str, Any]:
    return {"kind": r.kind, "name": r.name, "version": r.version, "digest": r.digest,
            "created_at": iso(r.created_at), "created_by": r.created_by, "spec": r.spec}


def _changes(history: Sequence[FeatureDefinitionRecord], index: int) -> list[str]:
    if index == 0:
        return []
    old, new = history[index - 1].spec, history[index].spec
    return sorted(k for k in {*old, *new} if old.get(k) != new.get(k))


def _us_iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def _us_cell(us: int) -> str:
    """A time for a table cell, to the second: 2024-05-01T12:00:00Z."""
    return cell_time(us // 1000)


def _ttl(seconds: float | None) -> str:
    from datetime import timedelta

    from ratchet.durations import format_duration

    return "-" if seconds is None else format_duration(timedelta(seconds=seconds))


def _safe_uri(uri: str) -> str:
    """The online store's URI without a password."""
    from ratchet.redaction import redact_url

    return redact_url(uri)


# ---------------------------------------------------------------- times
def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time from the command line as an aware UTC datetime (naive is UTC)."""
    if value is None:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} {value!r} is not an ISO 8601 time "
                           "(e.g. 2026-11-22 or 2026-11-22T13:00:00Z; naive times are UTC)"
                           ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# ---------------------------------------------------------------- materialize / push
@app.command("materialize")
def materialize(
    view: Annotated[list[str] | None, typer.Option(
        "--view", "-v", help="Only this feature view; repeat for several (default: every "
                             "view with online=True).")] = None,
    start: Annotated[str | None, typer.Option(
        "--start", help="Only rows with event time after this ISO 8601 time (default: where "
                        "the last materialization of the view into this store ended).")] = None,
    end: Annotated[str | None, typer.Option(
        "--end", help="Only rows with event time up to this ISO 8601 time (default: now).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write the latest values per entity into the online store (incremental by default).

    Each run starts where the view's last materialization into this store ended.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ratchet import features

    start_at, end_at = parse_time(start, "--start"), parse_time(end, "--end")
    if start_at is not None and end_at is not None and start_at >= end_at:
        raise InvalidInput(f"--start {start} is not before --end {end}")
    session = Session()
    stderr = error_console()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("rows"), console=stderr, transient=True,
                  disable=as_json or not stderr.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def progress(view_name: str, done: int, total: int | None) -> None:
            if view_name not in tasks:
                tasks[view_name] = bar.add_task(f"materializing {view_name}", total=total)
            bar.update(tasks[view_name], completed=done, total=total)

        results = features.materialize(view or None, start=start_at, end=end_at,
                                       workspace=session.workspace, progress=progress)
    rows = [_materialized_dict(r) for r in results]
    if as_json:
        print_json(rows)
        return
    if not rows:
        note("nothing to materialize: no feature view with online=True is registered")
        return
    out = table("view", "version", "entities", "from", "up to",
                no_wrap=("view", "version", "entities", "from", "up to"))
    for result, r in zip(results, rows, strict=True):
        add_row(out, r["view"], r["view_version"], f"{r['rows']:,}",
                _us_cell(result.start_at) if result.start_at is not None else "the beginning",
                _us_cell(result.end_at))
    console().print(out)
    for r in rows:
        if r["skipped"]:
            note(f"{r['view']}: {r['skipped']}")
    note(f"online store: {rows[0]['online_store']}")


def _materialized_dict(result: Any) -> dict[str, Any]:
    return {"view": result.view, "view_version": result.view_version, "rows": result.rows,
            "start": _us_iso(result.start_at), "end": _us_iso(result.end_at),
            "seconds": round(result.seconds, 3), "skipped": result.skipped,
            "online_store": _safe_uri(result.online_store)}


@app.command("push")
def push(
    view: Annotated[str, typer.Argument(help="The feature view to write to.")],
    file: Annotated[Path, typer.Argument(help="A Parquet or CSV file of rows: the view's join "
                                              "keys, its timestamp column and features.")],
    to: Annotated[str, typer.Option(
        "--to", help="Where the rows go: online_and_offline (the online store and the "
                     "view's offline log, which training sets read), online or offline.")
    ] = "online_and_offline",
    as_json: JsonOption = False,
) -> None:
    """Write rows to a feature view now (streaming writes).

    Newer rows replace older ones online; training sets see them through the offline log.
    """
    from ratchet import features
    from ratchet.data.readers import read_table

    if to not in ("online_and_offline", "online", "offline"):
        raise InvalidInput(f"--to {to!r}: give online_and_offline, online or offline")
    if not file.exists():
        raise NotFound(f"{file}: no such file (give a Parquet or CSV file of rows)")
    session = Session()
    data = read_table(file)
    result = features.push(view, data, to=to, workspace=session.workspace)
    if as_json:
        print_json({**result.to_dict(), "to": to, "file": str(file)})
        return
    if result.rows == 0:
        note(f"{file} has no rows: nothing pushed")
        return
    where = []
    if to != "offline":
        where.append(f"{result.online_rows:,} online entries")
    if result.offline_file is not None:
        where.append(f"the offline log ({Path(result.offline_file).name})")
    say(f"pushed {result.rows:,} rows to {view} v{result.view_version}: "
        f"{' and '.join(where)}")


def _load_on_demand_code(definitions: str | None, refs: Sequence[str],
                         workspace: Workspace) -> None:
    """Import ``--definitions``; without it, an on-demand view among ``refs`` (whose code
    must run here) is a one-line error saying to pass it."""
    from ratchet.features.definitions import loaded_on_demand, split_feature_ref

    if definitions is not None:
        load_definitions(definitions, require=False)
        return
    store = workspace.stores.features
    for ref in refs:
        name, _feature = split_feature_ref(ref)
        if loaded_on_demand(name) is not None:
            continue
        try:
            record = store.get_definition("on_demand", name)
        except NotFound:
            continue
        raise InvalidInput(f"{ref!r} is an on-demand view: its code runs here, so pass the "
                           f"file or module that declares it with --definitions (its "
                           f"function is {record.spec.get('function')})")


# ---------------------------------------------------------------- online lookup
@app.command("get")
def get(
    feature: FeatureOption,
    entity: Annotated[list[str] | None, typer.Option(
        "--entity", "-e",
        help="One entity row as KEY=VALUE[,KEY=VALUE...] (join keys, plus the request fields "
             "of on-demand views); repeat for more rows.")] = None,
    entities_json: Annotated[str | None, typer.Option(
        "--entities-json", help="The entity rows as a JSON list of objects, e.g. "
                                "'[{\"driver_id\": 7}]' (typed as written).")] = None,
    definitions: DefinitionsOption = None,
    full_feature_names: FullNamesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Look features up in the online store: each value and its age.

    Missing entities, and values older than their view's ttl, are null.
    """
    from ratchet import features

    if (entity is None) == (entities_json is None):
        raise InvalidInput("give the entities with --entity KEY=VALUE (repeatable) or "
                           "--entities-json '[{...}]', one of the two")
    session = Session()
    _load_on_demand_code(definitions, feature, session.workspace)
    if entities_json is not None:
        rows = _entities_from_json(entities_json)
    else:
        assert entity is not None
        rows = _entities_from_pairs(entity, feature, session.workspace)
    result = features.get_online_features(list(feature), rows,
                                          full_feature_names=full_feature_names,
                                          workspace=session.workspace)
    data = result.to_dict()
    if as_json:
        print_json(data)
        return
    columns = list(data)
    out = table(*columns)
    for i in range(len(rows)):
        add_row(out, *(_value(data[c][i]) for c in columns))
    console().print(out)


def _value(value: object) -> object:
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def _entities_from_json(text: str) -> list[dict[str, Any]]:
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"--entities-json is not JSON: {exc}") from None
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and r
                                                         for r in rows):
        raise InvalidInput("--entities-json must be a non-empty JSON list of objects, e.g. "
                           "'[{\"driver_id\": 7}]'")
    return rows


def _entities_from_pairs(pairs: Sequence[str], refs: Sequence[str],
                         workspace: Workspace) -> list[dict[str, Any]]:
    """``driver_id=7,city=SF`` per row, each value typed as the views' sources type that key
    (an integer key stays an integer: the online store tells 7 and "7" apart)."""
    selection = _catalog_of(workspace).resolve(list(refs))
    key_types = _key_types(selection, workspace)
    rows = []
    for text in pairs:
        row: dict[str, Any] = {}
        for pair in text.split(","):
            key, sep, raw = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise InvalidInput(f"--entity {text!r}: give KEY=VALUE pairs separated by "
                                   "commas, e.g. driver_id=7")
            if key in row:
                raise InvalidInput(f"--entity {text!r}: {key!r} is given twice")
            if key in selection.entity_keys:
                row[key] = _typed_key(key, raw, key_types.get(key), text)
            elif key in selection.request_fields:
                row[key] = _literal(raw)
            else:
                known = [*selection.entity_keys, *selection.request_fields]
                raise InvalidInput(f"--entity {text!r}: {key!r} is not a join key or request "
                                   f"field of these features (they take {', '.join(known)})")
        missing = [k for k in selection.entity_keys if k not in row]
        if missing:
            raise InvalidInput(f"--entity {text!r}: missing join key "
                               f"{', '.join(map(repr, missing))}")
        rows.append(row)
    return rows


def _catalog_of(workspace: Workspace) -> FeatureCatalog:
    from ratchet.features.catalog import FeatureCatalog

    return FeatureCatalog(workspace)


_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                  "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")


def _key_types(selection: Any, workspace: Workspace) -> dict[str, str]:
    """Each join key's DuckDB type in the first selected view's source that has it."""
    from ratchet.data.duckdb_connection import duckdb_connection
    from ratchet.features.sources import view_files

    types: dict[str, str] = {}
    for chosen in selection.views:
        keys = [k for k in chosen.view.join_keys if k not in types]
        if not keys:
            continue
        try:
            scan = view_files(chosen.view, workspace)
            with duckdb_connection(memory_limit="256MB") as con:
                described = con.execute(f"DESCRIBE SELECT * FROM {scan.sql()}").fetchall()
        except (InvalidInput, NotFound):
            continue  # no rows anywhere: nothing to match a type against
        except Exception:
            continue
        for name, kind, *_ in described:
            if name in keys:
                types[name] = str(kind).upper()
    return types


def _typed_key(key: str, raw: str, kind: str | None, given: str) -> Any:
    value = raw.strip()
    if kind is None or kind in ("VARCHAR", "STRING", "TEXT") or kind.startswith("VARCHAR"):
        return raw
    if kind in _INTEGER_TYPES:
        try:
            return int(value)
        except ValueError:
            raise InvalidInput(f"--entity {given!r}: {key} is an integer key ({kind} in the "
                               f"source), got {raw!r}") from None
    if kind in _FLOAT_TYPES or kind.startswith("DECIMAL"):
        try:
            return float(value)
        except ValueError:
            raise InvalidInput(f"--entity {given!r}: {key} is a numeric key ({kind} in the "
                               f"source), got {raw!r}") from None
    if kind == "BOOLEAN":
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise InvalidInput(f"--entity {given!r}: {key} is a boolean key, give true or false")
    return raw


def _literal(raw: str) -> Any:
    """A request field's value: a JSON number, true/false/null as such, else the text."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if value is None or isinstance(value, bool | int | float) else raw


# ---------------------------------------------------------------- training sets
@app.command("training-set")
def training_set(
    entity_file: Annotated[str, typer.Argument(
        help="A Parquet or CSV file of entity rows: the join keys and a timestamp column "
             "(plus labels and request fields); or a dataset, dataset:NAME[@VERSION].")],
    feature: FeatureOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Write the training set here "
                                                          "(Parquet).")],
    timestamp_field: Annotated[str, typer.Option(
        "--timestamp-field", "-t", help="The entity rows' time column: features are taken "
                                        "as of this time.")] = "event_timestamp",
    created_cutoff: Annotated[bool, typer.Option(
        "--created-cutoff", help="Also ignore feature rows created after each entity row's "
                                 "time (no leakage from backfills).")] = False,
    log: Annotated[str | None, typer.Option(
        "--log", help="Also log the training set as a version of this dataset, with lineage "
                      "to the feature view versions.")] = None,
    definitions: DefinitionsOption = None,
    full_feature_names: FullNamesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Build a point-in-time correct training set from entity rows.

    For each entity row, each feature's latest value as of the row's time (within the
    view's ttl).
    """
    import pyarrow.parquet as pq

    from ratchet import features
    from ratchet.atomic import atomic_path

    if not entity_file.startswith("dataset:") and not Path(entity_file).exists():
        raise NotFound(f"{entity_file}: no such file (give a Parquet or CSV file of entity "
                       "rows, or dataset:NAME for a logged dataset)")
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise InvalidInput(f"--out {out}: the training set is written as Parquet; name the "
                           "file .parquet")
    if out.exists() and out.is_dir():
        raise InvalidInput(f"--out {out} is a folder; give a file name ending in .parquet")
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    session = Session()
    _load_on_demand_code(definitions, feature, session.workspace)
    stderr = error_console()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=stderr, transient=True,
                  disable=as_json or not stderr.is_terminal) as spinner:
        task = spinner.add_task("joining features as of each entity row", total=None)
        result = features.training_set(entity_file, list(feature),
                                       timestamp_field=timestamp_field,
                                       created_cutoff=created_cutoff,
                                       full_feature_names=full_feature_names,
                                       workspace=session.workspace)
        built = result.to_arrow()
        spinner.update(task, description=f"writing {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            pq.write_table(built, tmp)
        if log is not None:
            spinner.update(task, description=f"logging dataset {log}")
        logged = result.log(log) if log is not None else None
    summary: dict[str, Any] = {
        "out": str(out), "rows": built.num_rows, "columns": built.column_names,
        "definitions": [{"kind": k, "name": n, "version": v}
                        for k, n, v in result.selection.definitions()],
        "dataset": None if logged is None else {"name": logged.name,
                                                "version": logged.version}}
    if as_json:
        print_json(summary)
        return
    say(f"wrote {out}: {built.num_rows:,} rows, {len(built.column_names)} columns")
    if logged is not None:
        say(f"logged as dataset {logged.name}@{logged.version}")
