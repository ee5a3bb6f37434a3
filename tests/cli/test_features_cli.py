"""``ratchet features``: plan/apply a definitions file, list/show, materialize, push, get and
training-set, driven like a user through the CLI on a real embedded workspace; and every
wrong input a one-line error with exit code 1."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.cli.conftest import Invoke, assert_user_error, strict_json

DEFS = """\
from datetime import timedelta

import pandas as pd

from ratchet.features import Entity, FeatureView, on_demand

driver = Entity("driver", join_keys=["driver_id"])
stats = FeatureView("driver_stats", entities=[driver], source="data/driver_stats.parquet",
                    timestamp_field="event_ts", features=["trips", "rating"],
                    ttl=timedelta(days={ttl_days}))


@on_demand(inputs=["driver_stats:trips"], request=["distance_km"],
           features=["trips_per_km"])
def {function}(df):
    return pd.DataFrame({{"trips_per_km": df["trips"] / df["distance_km"]}})
"""


def _write_defs(folder: Path, *, name: str = "defs_a", ttl_days: int = 7,
                function: str = "trip_ratios") -> Path:
    path = folder / f"{name}.py"
    path.write_text(DEFS.format(ttl_days=ttl_days, function=function))
    return path


def _write_source(folder: Path) -> Path:
    data = folder / "data"
    data.mkdir(exist_ok=True)
    path = data / "driver_stats.parquet"
    pd.DataFrame({
        "driver_id": [7, 7, 8],
        "event_ts": pd.to_datetime(["2024-05-01 10:00", "2024-05-02 10:00",
                                    "2024-05-01 09:00"], utc=True),
        "trips": [10, 12, 3],
        "rating": [4.5, 4.6, 3.9],
    }).to_parquet(path)
    return path


@pytest.fixture
def declared(project: Path) -> Path:
    """A project with a Parquet source and a definitions file next to it (a fresh module
    name per test: the CLI imports files under their stem, once per process)."""
    _write_source(project)
    return _write_defs(project, name=f"defs_{project.name.replace('-', '_')}")


# ---------------------------------------------------------------- plan / apply
def test_plan_shows_creates_and_changes_nothing(cli: Invoke, declared: Path) -> None:
    result = cli("features", "plan", str(declared))
    assert result.exit_code == 0, result.output
    assert "+ create entity driver" in result.stdout
    assert "+ create feature view driver_stats" in result.stdout
    assert "+ create on-demand view trip_ratios" in result.stdout
    assert "3 to create, 0 to update (to apply)" in result.stdout
    listed = strict_json(cli("features", "list", "--json").stdout)
    assert listed == []  # plan registered nothing


def test_plan_exit_code_for_ci(cli: Invoke, declared: Path) -> None:
    assert cli("features", "plan", str(declared), "--exit-code").exit_code == 2
    assert cli("features", "apply", str(declared)).exit_code == 0
    unchanged = cli("features", "plan", str(declared), "--exit-code")
    assert unchanged.exit_code == 0, unchanged.output
    assert "0 to create, 0 to update" in unchanged.stdout


def test_apply_registers_versions_and_a_change_is_a_new_version(
        cli: Invoke, declared: Path) -> None:
    first = strict_json(cli("features", "apply", str(declared), "--json").stdout)
    assert first["applied"] is True
    assert {(i["kind"], i["name"], i["action"], i["version"]) for i in first["items"]} == {
        ("entity", "driver", "create", 1), ("feature_view", "driver_stats", "create", 1),
        ("on_demand", "trip_ratios", "create", 1)}
    again = strict_json(cli("features", "apply", str(declared), "--json").stdout)
    assert {i["action"] for i in again["items"]} == {"unchanged"}

    declared.write_text(DEFS.format(ttl_days=3, function="trip_ratios"))
    # The module is already imported in this process: a new file name re-reads it.
    changed = _write_defs(declared.parent, name=declared.stem + "_v2", ttl_days=3)
    plan = cli("features", "plan", str(changed))
    assert "~ update feature view driver_stats (v1): ttl_seconds" in plan.stdout
    updated = strict_json(cli("features", "apply", str(changed), "--json").stdout)
    by_name = {i["name"]: i for i in updated["items"]}
    assert by_name["driver_stats"]["action"] == "update"
    assert by_name["driver_stats"]["version"] == 2


def test_relative_sources_are_taken_from_the_files_folder(
        cli: Invoke, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = project / "repo"
    repo.mkdir()
    _write_source(repo)
    defs = _write_defs(repo, name="defs_relative")
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli("features", "apply", str(defs)).exit_code == 0
    views = [d for d in strict_json(cli("features", "list", "--json").stdout)
             if d["kind"] == "feature_view"]
    assert views[0]["spec"]["source"] == str((repo / "data/driver_stats.parquet").resolve())


def test_a_module_name_works_from_the_project_directory(cli: Invoke, project: Path) -> None:
    _write_source(project)
    package = project / "featpkg_mod"
    package.mkdir()
    (package / "__init__.py").write_text("")
    _write_defs(package, name="repo_defs")
    (package / "data").mkdir()
    _write_source(package)
    result = cli("features", "apply", "featpkg_mod.repo_defs")
    assert result.exit_code == 0, result.output
    shown = strict_json(cli("features", "show", "trip_ratios", "--json").stdout)
    assert shown["versions"][-1]["spec"]["function"] == "featpkg_mod.repo_defs:trip_ratios"


def test_a_file_is_imported_under_its_stem(cli: Invoke, declared: Path) -> None:
    """The registered function reference is the same in every process (not a name with a
    per-process hash in it): serving and training import the same module name."""
    cli("features", "apply", str(declared))
    shown = strict_json(cli("features", "show", "trip_ratios", "--json").stdout)
    assert shown["versions"][0]["spec"]["function"] == f"{declared.stem}:trip_ratios"


# ---------------------------------------------------------------- list / show
def test_list_and_show(cli: Invoke, declared: Path) -> None:
    assert cli("features", "list").stdout.strip().startswith("no feature definitions")
    cli("features", "apply", str(declared))
    listed = cli("features", "list")
    assert listed.exit_code == 0
    for fragment in ("entities", "driver_id", "feature views", "trips, rating", "7d",
                     "on-demand views", "trips_per_km", "distance_km"):
        assert fragment in listed.stdout, fragment
    as_json = strict_json(cli("features", "list", "--json").stdout)
    assert [(d["kind"], d["name"], d["version"]) for d in as_json] == [
        ("entity", "driver", 1), ("feature_view", "driver_stats", 1),
        ("on_demand", "trip_ratios", 1)]

    shown = cli("features", "show", "driver_stats")
    assert shown.exit_code == 0, shown.output
    for fragment in ("driver_stats (version 1)", "driver (driver_id)", "event_ts",
                     "(first version)", "materialized", "never into"):
        assert fragment in shown.stdout, fragment
    detail = strict_json(cli("features", "show", "driver_stats", "--json").stdout)
    assert detail["kind"] == "feature_view"
    assert detail["last_materialization"] is None
    assert detail["training_sets"] == []


def test_show_lists_what_changed_between_versions(cli: Invoke, declared: Path) -> None:
    cli("features", "apply", str(declared))
    changed = _write_defs(declared.parent, name=declared.stem + "_ttl", ttl_days=1)
    cli("features", "apply", str(changed))
    detail = strict_json(cli("features", "show", "driver_stats", "--json").stdout)
    assert [(v["version"], v["changes"]) for v in detail["versions"]] == [
        (1, []), (2, ["ttl_seconds"])]
    assert "ttl_seconds" in cli("features", "show", "driver_stats").stdout


# ---------------------------------------------------------------- wrong input
def test_a_file_that_does_not_exist(cli: Invoke, project: Path) -> None:
    assert_user_error(cli("features", "plan", "missing.py"), "missing.py", "does not exist")
    assert_user_error(cli("features", "apply", "no_such_module_xyz"),
                      "no_such_module_xyz", "no such file or module")


def test_a_folder_is_not_a_definitions_file(cli: Invoke, project: Path) -> None:
    (project / "somewhere").mkdir()
    assert_user_error(cli("features", "plan", "somewhere"), "somewhere", "folder")
    assert_user_error(cli("features", "plan", "somewhere/"), "folder")


def test_a_file_with_no_definitions(cli: Invoke, project: Path) -> None:
    (project / "nothing_here.py").write_text("x = 1\n")
    assert_user_error(cli("features", "plan", "nothing_here.py"),
                      "declares no Entity, FeatureView or OnDemandFeatureView")


def test_a_syntax_error_names_file_and_line(cli: Invoke, project: Path) -> None:
    (project / "broken_syntax.py").write_text("x = 1\ndef f(:\n    pass\n")
    lines = assert_user_error(cli("features", "plan", "broken_syntax.py"), "SyntaxError")
    assert f"{project / 'broken_syntax.py'}:2" in lines[0]


def test_an_error_raised_by_the_file_names_its_line(cli: Invoke, project: Path) -> None:
    (project / "raises_here.py").write_text(textwrap.dedent("""\
        from ratchet.features import Entity

        ok = Entity("driver")
        bad = Entity("no spaces allowed")
    """))
    lines = assert_user_error(cli("features", "apply", "raises_here.py"),
                              "InvalidInput", "no spaces allowed")
    assert f"{project / 'raises_here.py'}:4" in lines[0]
    (project / "imports_missing.py").write_text("import not_installed_anywhere_xyz\n")
    assert_user_error(cli("features", "plan", "imports_missing.py"),
                      "imports_missing.py:1", "ModuleNotFoundError", "not_installed_anywhere_xyz")


def test_a_file_named_like_an_imported_module(cli: Invoke, project: Path) -> None:
    (project / "json.py").write_text("x = 1\n")
    assert_user_error(cli("features", "plan", "json.py"), "module 'json'", "rename the file")
    # Not imported yet, but the standard library's or an installed package's name: taking
    # it would shadow that module for the rest of the process.
    (project / "tomllib.py").write_text("x = 1\n")
    assert_user_error(cli("features", "plan", "tomllib.py"), "module 'tomllib'", "rename")
    (project / "hypothesis.py").write_text("x = 1\n")
    assert_user_error(cli("features", "plan", "hypothesis.py"), "module 'hypothesis'",
                      "site-packages")


def test_a_source_that_does_not_exist(cli: Invoke, project: Path) -> None:
    _write_defs(project, name="defs_no_source")
    assert_user_error(cli("features", "plan", "defs_no_source.py"),
                      "driver_stats", "does not exist")
    assert strict_json(cli("features", "list", "--json").stdout) == []


def test_an_unknown_definition(cli: Invoke, project: Path) -> None:
    assert_user_error(cli("features", "show", "nope"), "'nope'", "ratchet features list")


def test_bad_times(cli: Invoke, project: Path) -> None:
    assert_user_error(cli("features", "materialize", "--start", "yesterday"),
                      "--start 'yesterday'", "ISO 8601")
    assert_user_error(cli("features", "materialize", "--end", "2024-13-01"),
                      "--end", "ISO 8601")
    assert_user_error(cli("features", "materialize", "--start", "2024-05-02",
                          "--end", "2024-05-01"), "is not before")


def test_get_needs_entities_one_way(cli: Invoke, declared: Path) -> None:
    cli("features", "apply", str(declared))
    assert_user_error(cli("features", "get", "-f", "driver_stats:trips"),
                      "--entity", "--entities-json")
    assert_user_error(cli("features", "get", "-f", "driver_stats:trips",
                          "--entities-json", "{not json"), "--entities-json is not JSON")
    assert_user_error(cli("features", "get", "-f", "driver_stats:trips",
                          "--entities-json", "[1, 2]"), "list of objects")
    assert_user_error(cli("features", "get", "-f", "driver_stats:trips",
                          "--entity", "driver_id"), "KEY=VALUE")
    assert_user_error(cli("features", "get", "-f", "driver_stats:trips",
                          "--entity", "driver_id=seven"), "integer key", "'seven'")
    assert_user_error(cli("features", "get", "-f", "driver_stats:trips",
                          "--entity", "rider=7"), "'rider' is not a join key")
    assert_user_error(cli("features", "get", "-f", "nope:trips", "--entity", "driver_id=7"),
                      "'nope'")


def test_push_and_training_set_wrong_files(cli: Invoke, declared: Path) -> None:
    cli("features", "apply", str(declared))
    assert_user_error(cli("features", "push", "driver_stats", "missing.parquet"),
                      "missing.parquet", "no such file")
    assert_user_error(cli("features", "push", "driver_stats", str(declared.parent / "x.csv"),
                          "--to", "everywhere"), "--to 'everywhere'")
    assert_user_error(cli("features", "training-set", "missing.parquet", "-f",
                          "driver_stats:trips", "--out", "out.parquet"),
                      "missing.parquet", "no such file")
    entities = declared.parent / "entities.parquet"
    pd.DataFrame({"driver_id": [7]}).to_parquet(entities)
    assert_user_error(cli("features", "training-set", str(entities), "-f",
                          "driver_stats:trips", "--out", "out.csv"), "--out", ".parquet")


def test_help_everywhere(cli: Invoke) -> None:
    for command in ("plan", "apply", "list", "show", "materialize", "push", "get",
                    "training-set"):
        result = cli("features", command, "--help")
        assert result.exit_code == 0, command
        assert "Usage" in result.stdout


# ---------------------------------------------------------------- online: materialize, push, get
def _recent_source(folder: Path, *, key: str = "driver_id", keys: list[object] | None = None
                   ) -> pd.Timestamp:
    """Rows an hour old (inside the 7-day ttl at now), so online lookups return them."""
    now = pd.Timestamp.now(tz="UTC").floor("s")
    data = folder / "data"
    data.mkdir(exist_ok=True)
    keys = keys if keys is not None else [7, 7, 8]
    pd.DataFrame({
        key: keys,
        "event_ts": [now - pd.Timedelta(hours=3), now - pd.Timedelta(hours=1),
                     now - pd.Timedelta(hours=2)],
        "trips": [10, 12, 3],
        "rating": [4.5, 4.6, 3.9],
    }).to_parquet(data / "driver_stats.parquet")
    return now


def _online_project(project: Path, name: str) -> Path:
    _recent_source(project)
    return _write_defs(project, name=name)


def test_materialize_then_get(cli: Invoke, project: Path) -> None:
    defs = _online_project(project, "defs_materialize")
    assert cli("features", "apply", str(defs)).exit_code == 0
    done = strict_json(cli("features", "materialize", "--json").stdout)
    assert [(r["view"], r["view_version"], r["rows"], r["start"]) for r in done] == [
        ("driver_stats", 1, 2, None)]
    again = strict_json(cli("features", "materialize", "--view", "driver_stats",
                            "--json").stdout)
    assert again[0]["rows"] == 0 and again[0]["start"] == done[0]["end"]  # incremental

    got = strict_json(cli("features", "get", "-f", "driver_stats:trips", "-f",
                          "driver_stats:rating", "-e", "driver_id=7", "-e", "driver_id=8",
                          "-e", "driver_id=99", "--json").stdout)
    assert got["driver_id"] == [7, 8, 99]
    assert got["trips"] == [12, 3, None]
    assert got["rating"] == [4.6, 3.9, None]
    ages = got["driver_stats__age_s"]
    assert 3600 <= ages[0] < 3600 + 120 and 7200 <= ages[1] < 7200 + 120 and ages[2] is None

    shown = cli("features", "get", "-f", "driver_stats", "-e", "driver_id=7")
    assert shown.exit_code == 0
    assert "12" in shown.stdout and "4.6" in shown.stdout and "driver_stats__age_s" in shown.stdout
    same = strict_json(cli("features", "get", "-f", "driver_stats:trips", "--entities-json",
                           '[{"driver_id": 7}, {"driver_id": 8}]', "--json").stdout)
    assert same["trips"] == [12, 3]

    detail = strict_json(cli("features", "show", "driver_stats", "--json").stdout)
    assert detail["last_materialization"]["rows"] == 0  # the last (incremental) run
    text = cli("features", "show", "driver_stats").stdout
    assert "last materialization" in text and "online.sqlite" in text


def test_materialize_a_window_and_unknown_views(cli: Invoke, project: Path) -> None:
    defs = _online_project(project, "defs_window")
    cli("features", "apply", str(defs))
    window = strict_json(cli("features", "materialize", "--start", "2020-01-01",
                             "--end", "2020-01-02T00:00:00Z", "--json").stdout)
    assert window[0]["rows"] == 0
    assert window[0]["start"] == "2020-01-01T00:00:00Z"
    assert window[0]["end"] == "2020-01-02T00:00:00Z"
    assert_user_error(cli("features", "materialize", "--view", "nope"), "'nope'")


def test_push_then_get(cli: Invoke, project: Path) -> None:
    defs = _online_project(project, "defs_push")
    cli("features", "apply", str(defs))
    cli("features", "materialize")
    now = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=2)
    pd.DataFrame({"driver_id": [7, 9], "event_ts": [now, now], "trips": [40, 1],
                  "rating": [5.0, 3.0]}).to_parquet(project / "new.parquet")
    pushed = cli("features", "push", "driver_stats", "new.parquet")
    assert pushed.exit_code == 0, pushed.output
    assert "pushed 2 rows to driver_stats v1" in pushed.stdout
    assert "offline log" in pushed.stdout
    later = (now + pd.Timedelta(seconds=1)).isoformat()
    pd.DataFrame({"driver_id": [7], "event_ts": [later], "trips": [41], "rating": [5.0]}
                 ).to_csv(project / "newer.csv", index=False)
    online_only = strict_json(cli("features", "push", "driver_stats", "newer.csv", "--to",
                                  "online", "--json").stdout)
    assert online_only["rows"] == 1 and online_only["offline_file"] is None
    got = strict_json(cli("features", "get", "-f", "driver_stats:trips", "-e", "driver_id=7",
                          "-e", "driver_id=9", "-e", "driver_id=8", "--json").stdout)
    assert got["trips"] == [41, 1, 3]

    pd.DataFrame({"driver_id": [7], "event_ts": [now], "speed": [1.0]}
                 ).to_parquet(project / "wrong.parquet")
    assert_user_error(cli("features", "push", "driver_stats", "wrong.parquet"),
                      "missing column", "'trips'")
    assert_user_error(cli("features", "push", "nope", "new.parquet"), "'nope'")
    (project / "rows.txt").write_text("driver_id\n7\n")
    assert_user_error(cli("features", "push", "driver_stats", "rows.txt"), "rows.txt")


def test_get_types_keys_as_the_source_does(cli: Invoke, project: Path) -> None:
    """A string key that looks like a number stays a string; an integer key is parsed."""
    _recent_source(project, key="customer_id", keys=["0042", "0042", "17"])
    (project / "defs_string_keys.py").write_text(textwrap.dedent("""\
        from ratchet.features import Entity, FeatureView

        customer = Entity("customer", join_keys=["customer_id"])
        spend = FeatureView("customer_stats", entities=[customer],
                            source="data/driver_stats.parquet", timestamp_field="event_ts",
                            features=["trips", "rating"])
    """))
    assert cli("features", "apply", "defs_string_keys.py").exit_code == 0
    cli("features", "materialize")
    got = strict_json(cli("features", "get", "-f", "customer_stats:trips", "-e",
                          "customer_id=0042", "-e", "customer_id=17", "--json").stdout)
    assert got["customer_id"] == ["0042", "17"]
    assert got["trips"] == [12, 3]
    by_json = strict_json(cli("features", "get", "-f", "customer_stats:trips",
                              "--entities-json", '[{"customer_id": 17}]', "--json").stdout)
    assert by_json["trips"] == [None]  # 17 is not "17": typed as written


def test_get_with_on_demand_views_needs_their_code(cli: Invoke, project: Path) -> None:
    defs = _online_project(project, "defs_on_demand_get")
    cli("features", "apply", str(defs))
    cli("features", "materialize")
    got = strict_json(cli("features", "get", "-f", "trip_ratios", "-e",
                          "driver_id=7,distance_km=4", "-d", str(defs), "--json").stdout)
    assert got["trips_per_km"] == [3.0]
    assert_user_error(cli("features", "get", "-f", "trip_ratios", "-e",
                          "driver_id=7,distance_km=4", "-d", "missing_defs.py"),
                      "missing_defs.py", "does not exist")
    assert_user_error(cli("features", "get", "-f", "trip_ratios", "-e", "driver_id=7",
                          "-d", str(defs)), "distance_km")


# ---------------------------------------------------------------- training sets
def _labels(project: Path) -> Path:
    path = project / "labels.csv"
    pd.DataFrame({
        "driver_id": [7, 7, 8, 9],
        "event_timestamp": ["2024-05-01T11:00:00Z", "2024-05-03T00:00:00Z",
                            "2024-05-01T08:00:00Z", "2024-05-02T00:00:00Z"],
        "distance_km": [2.0, 4.0, 1.0, 1.0],
        "completed": [1, 0, 1, 0],
    }).to_csv(path, index=False)
    return path


def test_training_set_written_logged_and_linked(cli: Invoke, declared: Path) -> None:
    cli("features", "apply", str(declared))
    labels = _labels(declared.parent)
    out = declared.parent / "sets" / "train.parquet"
    result = cli("features", "training-set", str(labels), "-f", "driver_stats:trips",
                 "-f", "driver_stats:rating", "--out", str(out), "--log", "drivers-train",
                 "--json")
    assert result.exit_code == 0, result.output
    summary = strict_json(result.stdout)
    assert summary["rows"] == 4
    assert summary["dataset"] == {"name": "drivers-train", "version": 1}
    assert summary["definitions"] == [{"kind": "feature_view", "name": "driver_stats",
                                       "version": 1}]
    built = pd.read_parquet(out)
    assert built["driver_id"].tolist() == [7, 7, 8, 9]  # entity rows keep their order
    assert built["completed"].tolist() == [1, 0, 1, 0]
    assert built["trips"].astype("Int64").tolist() == [10, 12, pd.NA, pd.NA]
    assert built["rating"].tolist()[:2] == [4.5, 4.6]

    detail = strict_json(cli("features", "show", "driver_stats", "--json").stdout)
    assert detail["training_sets"] == [{"dataset": "drivers-train", "version": 1,
                                        "definition_version": 1}]
    assert "drivers-train" in cli("features", "show", "driver_stats").stdout

    text = cli("features", "training-set", str(labels), "-f", "driver_stats:trips",
               "--out", str(out))
    assert text.exit_code == 0, text.output
    assert f"wrote {out}: 4 rows" in text.stdout


def test_training_set_with_on_demand_views_and_a_dataset(cli: Invoke, declared: Path) -> None:
    import ratchet

    cli("features", "apply", str(declared))
    labels = _labels(declared.parent)
    ratchet.data.log(pd.read_csv(labels), name="labels")
    out = declared.parent / "ratios.parquet"
    result = cli("features", "training-set", "dataset:labels", "-f",
                 "trip_ratios:trips_per_km", "-d", str(declared), "--out", str(out),
                 "--full-feature-names")
    assert result.exit_code == 0, result.output
    built = pd.read_parquet(out)
    assert built["trip_ratios__trips_per_km"].tolist()[:2] == [5.0, 3.0]
    assert "driver_stats__trips" not in built.columns  # fetched as an input only


def test_on_demand_views_without_their_code_say_to_pass_definitions(
        cli: Invoke, project: Path) -> None:
    """A fresh process has not imported the on-demand code: --definitions is needed."""
    import subprocess
    import sys

    defs = _online_project(project, "defs_code_needed")
    assert cli("features", "apply", str(defs)).exit_code == 0
    labels = _labels(project)
    for args in (["get", "-f", "trip_ratios", "-e", "driver_id=7,distance_km=2"],
                 ["training-set", str(labels), "-f", "trip_ratios:trips_per_km", "--out",
                  str(project / "t.parquet")]):
        done = subprocess.run([sys.executable, "-m", "ratchet.cli.main", "features", *args],
                              capture_output=True, text=True, cwd=project)
        assert done.returncode == 1, done.stderr
        assert done.stdout == ""
        assert done.stderr.count("error:") == 1 and "Traceback" not in done.stderr
        assert "--definitions" in done.stderr
        assert "defs_code_needed:trip_ratios" in done.stderr


def test_training_set_wrong_input(cli: Invoke, declared: Path) -> None:
    cli("features", "apply", str(declared))
    labels = _labels(declared.parent)
    out = str(declared.parent / "t.parquet")
    assert_user_error(cli("features", "training-set", str(labels), "-f", "driver_stats:trips",
                          "--out", out, "--timestamp-field", "when"), "'when'")
    assert_user_error(cli("features", "training-set", str(labels), "-f", "nope:trips",
                          "--out", out), "'nope'")
    assert_user_error(cli("features", "training-set", str(labels), "-f",
                          "driver_stats:speed", "--out", out), "'speed'")
    assert_user_error(cli("features", "training-set", "dataset:no_such_labels", "-f",
                          "driver_stats:trips", "--out", out), "no_such_labels")
    (declared.parent / "folder.parquet").mkdir()
    assert_user_error(cli("features", "training-set", str(labels), "-f", "driver_stats:trips",
                          "--out", str(declared.parent / "folder.parquet")), "folder")
    assert not Path(out).exists()


# ---------------------------------------------------------------- every metadata backend
@pytest.fixture
def on_backend(client_backend: dict[str, str], project: Path,
               monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project's metadata on SQLite, PostgreSQL, or a live team server (remote mode)."""
    for key, value in client_backend.items():
        monkeypatch.setenv(key, value)
    return project


def test_the_commands_on_every_backend(cli: Invoke, on_backend: Path) -> None:
    defs = _online_project(on_backend, f"defs_backend_{on_backend.name.replace('-', '_')}")
    applied = cli("features", "apply", str(defs), "--json")
    assert applied.exit_code == 0, applied.output
    assert {i["action"] for i in strict_json(applied.stdout)["items"]} == {"create"}
    assert cli("features", "plan", str(defs), "--exit-code").exit_code == 0
    listed = strict_json(cli("features", "list", "--json").stdout)
    assert [(d["kind"], d["name"]) for d in listed] == [
        ("entity", "driver"), ("feature_view", "driver_stats"), ("on_demand", "trip_ratios")]
    done = strict_json(cli("features", "materialize", "--json").stdout)
    assert done[0]["rows"] == 2
    got = strict_json(cli("features", "get", "-f", "driver_stats:trips", "-f", "trip_ratios",
                          "-e", "driver_id=7,distance_km=2", "-d", str(defs),
                          "--json").stdout)
    assert got["trips"] == [12] and got["trips_per_km"] == [6.0]
    labels = on_backend / "now_labels.parquet"
    pd.DataFrame({"driver_id": [7, 8],
                  "event_timestamp": [pd.Timestamp.now(tz="UTC")] * 2}).to_parquet(labels)
    built = cli("features", "training-set", str(labels), "-f", "driver_stats:trips",
                "--out", str(on_backend / "now.parquet"), "--log", "now-set", "--json")
    assert built.exit_code == 0, built.output
    assert pd.read_parquet(on_backend / "now.parquet")["trips"].tolist() == [12, 3]
    detail = strict_json(cli("features", "show", "driver_stats", "--json").stdout)
    assert detail["last_materialization"]["rows"] == 2
    assert [t["dataset"] for t in detail["training_sets"]] == ["now-set"]


def test_show_entities_and_on_demand_views(cli: Invoke, declared: Path) -> None:
    cli("features", "apply", str(declared))
    entity = cli("features", "show", "driver")
    assert entity.exit_code == 0, entity.output
    assert "entity" in entity.stdout and "driver_id" in entity.stdout
    on_demand = cli("features", "show", "trip_ratios")
    assert on_demand.exit_code == 0, on_demand.output
    for fragment in ("on-demand view", "trips_per_km", "driver_stats:trips", "distance_km",
                     f"{declared.stem}:trip_ratios"):
        assert fragment in on_demand.stdout, fragment
    plan = strict_json(cli("features", "plan", str(declared), "--json").stdout)
    assert plan["applied"] is False
    assert {i["action"] for i in plan["items"]} == {"unchanged"}
