"""``ratchet runs|experiments|models|data delete/restore`` and ``ratchet gc``, like a user."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Invoke, Seeded, assert_user_error, strict_json


def _run_ids(cli: Invoke, *extra: str) -> set[str]:
    done = cli("runs", "list", "--json", *extra)
    assert done.exit_code == 0, done.output
    return {r["run_id"] for r in strict_json(done.stdout)}


def test_delete_restore_and_gc_a_run(cli: Invoke, seeded: Seeded) -> None:
    done = cli("runs", "delete", seeded.second)
    assert done.exit_code == 0, done.output
    assert f"deleted run {seeded.second}" in done.stdout
    assert seeded.second not in _run_ids(cli)
    assert seeded.second in _run_ids(cli, "--deleted")
    listed = strict_json(cli("runs", "list", "--json", "--deleted").stdout)
    assert [r["run_id"] for r in listed if "deleted_at" in r] == [seeded.second]
    assert_user_error(cli("runs", "show", seeded.second), "was deleted at",
                      f"ratchet runs restore {seeded.second}")

    assert cli("runs", "restore", seeded.second).exit_code == 0
    assert seeded.second in _run_ids(cli)

    cli("runs", "delete", seeded.second)
    dry = cli("gc", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert strict_json(dry.stdout)["runs"] == [seeded.second]
    assert seeded.second in _run_ids(cli, "--deleted")  # the dry run changed nothing
    done = cli("gc")
    assert done.exit_code == 0, done.output
    assert f"removed 1 run: {seeded.second}" in done.stdout
    assert seeded.second not in _run_ids(cli, "--deleted")
    assert_user_error(cli("runs", "restore", seeded.second), "no run with id")


def test_a_run_behind_a_model_version_is_refused(cli: Invoke, seeded: Seeded) -> None:
    assert_user_error(cli("runs", "delete", seeded.best), "model versions were registered",
                      "churn/1", "force")
    done = cli("runs", "delete", seeded.best, "--force")
    assert done.exit_code == 0, done.output
    assert "1 nested run" in done.stdout  # the child went with it
    lineage = cli("models", "lineage", "churn/1")  # the version still points at it
    assert lineage.exit_code == 0, lineage.output
    assert seeded.best in lineage.stdout


def test_models_delete_refusals_force_restore(cli: Invoke, seeded: Seeded) -> None:
    assert_user_error(cli("models", "delete", "churn", "--version", "2"),
                      "alias 'champion' points at version 2", "force")
    assert cli("models", "delete", "churn", "--version", "1").exit_code == 0
    listed = strict_json(cli("models", "versions", "churn", "--json").stdout)
    assert [v["version"] for v in listed] == [2]
    listed = strict_json(cli("models", "versions", "churn", "--json", "--deleted").stdout)
    assert [v["version"] for v in listed] == [1, 2]
    assert "deleted_at" in listed[0] and "deleted_at" not in listed[1]
    assert cli("models", "restore", "churn", "--version", "1").exit_code == 0

    assert_user_error(cli("models", "delete", "churn"), "champion")
    assert cli("models", "delete", "churn", "--force").exit_code == 0
    assert strict_json(cli("models", "list", "--json").stdout) == []
    assert cli("models", "restore", "churn").exit_code == 0
    assert [m["name"] for m in strict_json(cli("models", "list", "--json").stdout)] == ["churn"]


def test_experiments_delete_and_restore(cli: Invoke, seeded: Seeded) -> None:
    done = cli("experiments", "delete", "other")
    assert done.exit_code == 0, done.output
    assert "1 run(s)" in done.stdout
    names = [e["name"] for e in strict_json(cli("experiments", "list", "--json").stdout)]
    assert names == ["churn"]
    assert seeded.failed not in _run_ids(cli)
    assert_user_error(cli("experiments", "show", "other"), "ratchet experiments restore other")
    assert_user_error(cli("experiments", "create", "other"), "deleted")
    assert cli("experiments", "restore", "other").exit_code == 0
    assert seeded.failed in _run_ids(cli)


def test_data_delete_restore_and_gc_frees_the_snapshot(cli: Invoke, project: Path) -> None:
    import os
    import time

    (project / "a.csv").write_text("x,y\n1,2\n3,4\n")
    (project / "b.csv").write_text("x,y\n5,6\n")
    assert cli("data", "log", "a.csv", "--name", "points").exit_code == 0
    assert cli("data", "log", "b.csv", "--name", "points").exit_code == 0
    assert_user_error(cli("data", "delete", "points"), "name@number")
    assert cli("data", "delete", "points@2").exit_code == 0
    listed = strict_json(cli("data", "versions", "points", "--json").stdout)
    assert [v["version"] for v in listed] == [1]
    assert_user_error(cli("data", "show", "points@2"), "ratchet data restore points@2")
    assert cli("data", "restore", "points@2").exit_code == 0
    assert cli("data", "show", "points@2").exit_code == 0

    assert cli("data", "delete", "points@2").exit_code == 0
    blobs = [p for p in (project / ".ratchet").rglob("blobs/*/*") if p.is_file()]
    old = time.time() - 7200
    for path in blobs:
        os.utime(path, (old, old))
    done = cli("gc", "--json")
    assert done.exit_code == 0, done.output
    report = strict_json(done.stdout)
    assert report["dataset_versions"] == ["points@2"]
    assert len(report["blobs"]) == 1  # its Parquet snapshot
    assert cli("data", "show", "points@1").exit_code == 0
    assert_user_error(cli("data", "restore", "points@2"), "cannot be restored")


def test_gc_rejects_a_bad_age(cli: Invoke, project: Path) -> None:
    assert_user_error(cli("gc", "--older-than", "soon"), "'soon' is not a duration")
