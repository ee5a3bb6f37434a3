"""The ``ratchet`` command line, driven in-process like a user would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Invoke, Seeded, assert_user_error, strict_json

GROUPS = [
    [],
    ["experiments"],
    ["runs"],
    ["models"],
    ["models", "alias"],
    ["artifacts"],
    ["data"],
    ["db"],
    ["pipeline"],
    ["schedule"],
    ["deploy"],
    ["monitor"],
    ["ct"],
    ["users"],
    ["tokens"],
    ["import"],
    ["features"],
]
COMMANDS = [
    ["init"],
    ["features", "plan"], ["features", "apply"], ["features", "list"], ["features", "show"],
    ["features", "materialize"], ["features", "push"], ["features", "get"],
    ["features", "training-set"],
    ["import", "mlflow"],
    ["experiments", "list"],
    ["experiments", "show"],
    ["experiments", "create"],
    ["experiments", "delete"],
    ["experiments", "restore"],
    ["runs", "list"],
    ["runs", "show"],
    ["runs", "search"],
    ["runs", "metric"],
    ["runs", "delete"],
    ["runs", "restore"],
    ["models", "list"],
    ["models", "show"],
    ["models", "versions"],
    ["models", "lineage"],
    ["models", "delete"],
    ["models", "restore"],
    ["models", "register"],
    ["models", "alias", "set"],
    ["models", "alias", "delete"],
    ["models", "alias", "history"],
    ["models", "alias", "at"],
    ["artifacts", "list"],
    ["artifacts", "download"],
    ["data", "log"],
    ["data", "list"],
    ["data", "versions"],
    ["data", "show"],
    ["data", "diff"],
    ["data", "infer-schema"],
    ["data", "validate"],
    ["data", "delete"],
    ["data", "restore"],
    ["db", "upgrade"],
    ["db", "current"],
    ["db", "info"],
    ["pipeline", "run"],
    ["pipeline", "resume"],
    ["pipeline", "list"],
    ["pipeline", "show"],
    ["pipeline", "logs"],
    ["schedule", "create"],
    ["schedule", "list"],
    ["schedule", "delete"],
    ["schedule", "enable"],
    ["schedule", "disable"],
    ["scheduler"],
    ["deploy", "create"],
    ["deploy", "set-plan"],
    ["deploy", "rollback"],
    ["deploy", "show"],
    ["deploy", "list"],
    ["deploy", "history"],
    ["deploy", "delete"],
    ["serve"],
    ["server"],
    ["ui"],
    ["predict"],
    ["build"],
    ["gc"],
    ["monitor", "run"],
    ["monitor", "history"],
    ["ct", "history"],
    ["ct", "tick"],
    ["ct", "status"],
    ["ct", "retrain"],
    ["ct", "approve"],
    ["ct", "reject"],
    ["ct", "backtest"],
    ["controller"],
    ["check"],
    ["users", "create"],
    ["users", "list"],
    ["users", "show"],
    ["users", "set-role"],
    ["users", "disable"],
    ["users", "enable"],
    ["users", "grant"],
    ["users", "revoke"],
    ["tokens", "create"],
    ["tokens", "list"],
    ["tokens", "revoke"],
]


# ---------------------------------------------------------------- help and usage
@pytest.mark.parametrize("args", GROUPS + COMMANDS, ids=lambda a: " ".join(a) or "ratchet")
def test_help(cli: Invoke, args: list[str]) -> None:
    result = cli(*args, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


def test_every_command_and_group_has_help_text() -> None:
    import typer

    from ratchet.cli.main import app

    def walk(command: Any, path: str) -> Iterator[tuple[str, Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    found = dict(walk(typer.main.get_command(app), "ratchet"))
    assert {" ".join(["ratchet", *c]) for c in COMMANDS + GROUPS} == set(found)
    for path, command in found.items():
        assert (command.help or "").strip(), f"{path} has no help text"
        for param in command.params:
            if param.name not in {"help"} and getattr(param, "param_type_name", "") != "argument":
                assert getattr(param, "help", None), f"{path} {param.name} has no help"


def test_group_without_command_shows_help(cli: Invoke) -> None:
    result = cli("runs")
    assert "show" in result.output and "search" in result.output


def test_bad_usage_is_typer_exit_2(cli: Invoke) -> None:
    assert cli("runs", "show").exit_code == 2
    assert cli("runs", "list", "--max-results", "zero").exit_code == 2
    assert cli("no-such-command").exit_code == 2


def test_version(cli: Invoke) -> None:
    from ratchet import __version__

    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ratchet {__version__}"


# ---------------------------------------------------------------- init and db
def test_init_writes_config_and_refuses_to_overwrite(cli: Invoke, project: Path) -> None:
    result = cli("init")
    assert result.exit_code == 0, result.output
    config = project / "ratchet.toml"
    assert config.is_file()
    assert str(config) in result.stdout
    config.write_text("# mine\n")
    assert_user_error(cli("init"), "already exists", "--force")
    assert config.read_text() == "# mine\n"
    assert cli("init", "--force").exit_code == 0
    assert "[ratchet]" in config.read_text()


def test_db_upgrade_and_current(cli: Invoke) -> None:
    from ratchet.store.database import HEAD_REVISION

    before = strict_json(cli("db", "current", "--json").stdout)
    assert before == {"current": None, "head": HEAD_REVISION, "up_to_date": False}
    assert "none" in cli("db", "current").stdout
    result = cli("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert HEAD_REVISION in result.stdout
    after = strict_json(cli("db", "current", "--json").stdout)
    assert after == {"current": HEAD_REVISION, "head": HEAD_REVISION, "up_to_date": True}
    assert cli("db", "upgrade").exit_code == 0  # idempotent


def test_db_info(cli: Invoke, project: Path) -> None:
    cli("init")
    data = strict_json(cli("db", "info", "--json").stdout)
    assert data["db"] == f"sqlite:///{project / '.ratchet' / 'ratchet.db'}"
    assert data["artifacts"] == str(project / ".ratchet" / "artifacts")
    assert data["home"] == str(project / ".ratchet")
    assert data["config_file"] == str(project / "ratchet.toml")
    text = cli("db", "info").stdout
    assert "ratchet.toml" in text and "artifacts" in text


def test_db_info_masks_the_password(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATCHET_DB", "postgresql+psycopg://alice:s3cret@db.example:5432/ml")
    for args in (["db", "info"], ["db", "info", "--json"]):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert "s3cret" not in result.output
        assert "alice:***@db.example" in result.output
    assert strict_json(cli("db", "info", "--json").stdout)["config_file"] is None


def test_config_error_is_one_line(cli: Invoke, project: Path) -> None:
    (project / "ratchet.toml").write_text("[ratchet]\nhome = 3\n")
    assert_user_error(cli("experiments", "list"), "must be a string")


# ---------------------------------------------------------------- experiments
def test_experiments_list(cli: Invoke, seeded: Seeded) -> None:
    data = strict_json(cli("experiments", "list", "--json").stdout)
    assert [(e["name"], e["experiment_id"], e["run_count"]) for e in data] == [
        ("churn", seeded.churn_id, 3),
        ("other", seeded.other_id, 1),
    ]
    assert data[0]["created_at"].endswith("+00:00")
    text = cli("experiments", "list").stdout
    assert "churn" in text and seeded.churn_id in text and "other" in text


def test_experiments_list_empty(cli: Invoke) -> None:
    assert "no experiments" in cli("experiments", "list").stdout
    assert strict_json(cli("experiments", "list", "--json").stdout) == []


def test_experiments_show_by_name_and_id(cli: Invoke, seeded: Seeded) -> None:
    by_name = strict_json(cli("experiments", "show", "churn", "--json").stdout)
    by_id = strict_json(cli("experiments", "show", seeded.churn_id, "--json").stdout)
    assert by_name == by_id
    assert by_name["description"] == "predict churn [beta]"
    assert by_name["run_count"] == 3
    text = cli("experiments", "show", "churn").stdout
    assert "predict churn [beta]" in text  # not eaten as Rich markup
    assert_user_error(cli("experiments", "show", "nope"), "'nope'")


def test_experiments_create(cli: Invoke, project: Path) -> None:
    result = cli("experiments", "create", "fraud", "--description", "card fraud")
    assert result.exit_code == 0, result.output
    assert "fraud" in result.stdout
    shown = strict_json(cli("experiments", "show", "fraud", "--json").stdout)
    assert shown["description"] == "card fraud"
    assert_user_error(cli("experiments", "create", "fraud"), "already exists")


# ---------------------------------------------------------------- runs
def test_runs_list_newest_first(cli: Invoke, seeded: Seeded) -> None:
    data = strict_json(cli("runs", "list", "--json").stdout)
    assert [r["run_id"] for r in data] == list(seeded.run_order)
    text = cli("runs", "list").stdout
    for name in ("lgbm-best", "rf-second", "fold-1", "broken"):
        assert name in text
    assert seeded.best in text


def test_runs_list_filters(cli: Invoke, seeded: Seeded) -> None:
    def ids(*args: str) -> list[str]:
        return [r["run_id"] for r in strict_json(cli("runs", "list", *args, "--json").stdout)]

    assert ids("--experiment", "other") == [seeded.failed]
    assert ids("--experiment", "other", "--experiment", "churn") == list(seeded.run_order)
    assert ids("--status", "failed") == [seeded.failed]
    assert ids("--status", "finished", "--max-results", "1") == [seeded.second]
    assert "raise --max-results" in cli("runs", "list", "--max-results", "2").stdout
    assert_user_error(cli("runs", "list", "--status", "sleeping"), "sleeping")
    assert_user_error(cli("runs", "list", "--experiment", "nope"), "'nope'")


def test_runs_show(cli: Invoke, seeded: Seeded) -> None:
    data = strict_json(cli("runs", "show", seeded.best, "--json").stdout)
    assert data["run_id"] == seeded.best
    assert data["params"] == {"model": "lgbm", "C": "1.0"}
    assert data["metrics"]["auc"] == pytest.approx(0.82)
    assert data["metrics"]["loss"] is None  # ratchet.json_safe: NaN -> null
    assert data["tags"] == {"team": "growth"}
    assert data["code"]["git_commit"].startswith("0123456789ab")
    assert data["inputs"][0]["name"] == "customers"
    assert [a["path"] for a in data["artifacts"]] == ["model/weights.txt", "report.md"]
    assert data["child_runs"] == [{"run_id": seeded.child, "name": "fold-1", "status": "running"}]

    text = cli("runs", "show", seeded.best).stdout
    for expected in (
        "lgbm-best",
        "churn",
        "finished",
        "0123456789abcdef",
        "main",
        "train.py",
        "lgbm",
        "auc",
        "0.82",
        "team",
        "customers@3",
        "abababababab",
        "training",
        "model/weights.txt",
        seeded.child,
        "2024-05-01T12:00:00Z",
    ):
        assert expected in text, expected


def test_runs_show_failed_run_shows_the_last_error_line(cli: Invoke, seeded: Seeded) -> None:
    text = cli("runs", "show", seeded.failed).stdout
    assert "ValueError: bad input" in text
    assert "Traceback" not in text


def test_runs_show_unknown(cli: Invoke, seeded: Seeded) -> None:
    lines = assert_user_error(cli("runs", "show", "0000"), "no run with id '0000'")
    assert len(lines) == 1


def test_runs_search(cli: Invoke, seeded: Seeded) -> None:
    result = cli("runs", "search", "metrics.auc > 0.7", "--order-by", "metrics.auc DESC", "--json")
    data = strict_json(result.stdout)
    assert [r["run_id"] for r in data["runs"]] == [seeded.best, seeded.second]
    assert data["next_page_token"] is None
    text = cli("runs", "search", "params.model = 'lgbm'").stdout
    assert "lgbm-best" in text and "rf-second" not in text
    assert "auc" in text  # metric columns
    only_other = strict_json(cli("runs", "search", "", "--experiment", "other", "--json").stdout)
    assert [r["run_id"] for r in only_other["runs"]] == [seeded.failed]


def test_runs_search_pages(cli: Invoke, seeded: Seeded) -> None:
    args = ["runs", "search", "attributes.status != 'failed'", "--max-results", "2"]
    first = strict_json(cli(*args, "--json").stdout)
    assert [r["run_id"] for r in first["runs"]] == list(seeded.run_order[1:3])
    token = first["next_page_token"]
    assert token
    assert f"--page-token {token}" in cli(*args).stdout
    second = strict_json(cli(*args, "--page-token", token, "--json").stdout)
    assert [r["run_id"] for r in second["runs"]] == [seeded.best]
    assert second["next_page_token"] is None
    assert_user_error(cli("runs", "search", "", "--page-token", token), "page_token")


def test_runs_search_bad_filter_shows_the_caret(cli: Invoke, seeded: Seeded) -> None:
    lines = assert_user_error(
        cli("runs", "search", "metrics.auc >> 0.5"), "error: invalid filter at position"
    )
    # The message itself carries the offending text with a caret under the position.
    assert any(line.strip() == "metrics.auc >> 0.5" for line in lines)
    caret_line = next(line for line in lines if "^" in line)
    source_line = next(line for line in lines if line.strip() == "metrics.auc >> 0.5")
    assert caret_line.index("^") == source_line.index(">>") + 1


def test_runs_search_bad_order_by(cli: Invoke, seeded: Seeded) -> None:
    assert_user_error(cli("runs", "search", "", "--order-by", "metrics.auc SIDEWAYS"), "order_by")


def test_runs_metric_history(cli: Invoke, seeded: Seeded) -> None:
    data = strict_json(cli("runs", "metric", seeded.best, "auc", "--json").stdout)
    assert [(m["step"], m["value"]) for m in data] == [(0, 0.80), (1, 0.81), (2, 0.82)]
    assert data[0]["timestamp"] == "2024-05-01T12:00:00+00:00"
    text = cli("runs", "metric", seeded.best, "auc").stdout
    assert "0.81" in text and "2024-05-01T12:00:00.001Z" in text
    nan = strict_json(cli("runs", "metric", seeded.best, "loss", "--json").stdout)
    assert nan[0]["value"] is None  # ratchet.json_safe: NaN -> null
    assert "no values" in cli("runs", "metric", seeded.best, "nope").stdout
    assert_user_error(cli("runs", "metric", "0000", "auc"), "no run with id")


# ---------------------------------------------------------------- artifacts
def test_artifacts_list(cli: Invoke, seeded: Seeded) -> None:
    data = strict_json(cli("artifacts", "list", seeded.best, "--json").stdout)
    assert [(a["path"], a["size"]) for a in data] == [
        ("model/weights.txt", len("weights v1\n")),
        ("report.md", len("# report\n")),
    ]
    assert all(len(a["digest"]) == 64 for a in data)
    under = strict_json(cli("artifacts", "list", seeded.best, "model", "--json").stdout)
    assert [a["path"] for a in under] == ["model/weights.txt"]
    text = cli("artifacts", "list", seeded.best).stdout
    assert "model/weights.txt" in text and data[0]["digest"][:12] in text
    assert data[0]["digest"] not in text  # a prefix, not the whole digest
    assert "no artifacts" in cli("artifacts", "list", seeded.second).stdout
    assert_user_error(cli("artifacts", "list", "0000"), "no run with id")


def test_artifacts_download(cli: Invoke, seeded: Seeded, project: Path) -> None:
    dest = project / "out"
    result = cli("artifacts", "download", seeded.best, "model", str(dest))
    assert result.exit_code == 0, result.output
    assert (dest / "weights.txt").read_text() == "weights v1\n"
    single = project / "report-copy.md"
    assert cli("artifacts", "download", seeded.best, "report.md", str(single)).exit_code == 0
    assert single.read_text() == "# report\n"
    assert_user_error(
        cli("artifacts", "download", seeded.best, "nope", str(dest)), "no artifact 'nope'"
    )


# ---------------------------------------------------------------- models
def test_models_list(cli: Invoke, seeded: Seeded) -> None:
    data = strict_json(cli("models", "list", "--json").stdout)
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in data] == [
        ("churn", 2, {"champion": 2})
    ]
    text = cli("models", "list").stdout
    assert "churn" in text and "champion" in text


def test_models_list_empty(cli: Invoke) -> None:
    assert "no registered models" in cli("models", "list").stdout
    assert strict_json(cli("models", "list", "--json").stdout) == []


def test_models_show_and_versions(cli: Invoke, seeded: Seeded) -> None:
    data = strict_json(cli("models", "show", "churn", "--json").stdout)
    assert data["aliases"] == {"champion": 2}
    assert [(v["version"], v["aliases"], v["run_id"]) for v in data["versions"]] == [
        (1, [], seeded.best),
        (2, ["champion"], seeded.best),
    ]
    assert data["versions"][0]["uri"] == "models:/churn/1"
    text = cli("models", "show", "churn").stdout
    assert "champion" in text and "aaaaaaaaaaaa" in text and "bbbbbbbbbbbb" in text
    versions = strict_json(cli("models", "versions", "churn", "--json").stdout)
    assert [v["content_hash"][:1] for v in versions] == ["a", "b"]
    assert "sklearn" in cli("models", "versions", "churn").stdout


@pytest.mark.parametrize(
    "args",
    [
        ["models", "show", "nope"],
        ["models", "versions", "nope"],
        ["models", "alias", "history", "nope"],
        ["models", "lineage", "nope@champion"],
        ["models", "lineage", "nope/1"],
    ],
)
def test_models_unknown(cli: Invoke, seeded: Seeded, args: list[str]) -> None:
    lines = assert_user_error(cli(*args), "'nope'")
    assert len(lines) == 1


def test_alias_set_move_delete_and_history(cli: Invoke, seeded: Seeded) -> None:
    result = cli("models", "alias", "set", "churn", "champion", "1", "--reason", "rollback")
    assert result.exit_code == 0, result.output
    assert "version 1" in result.stdout and "was version 2" in result.stdout
    assert cli("models", "alias", "set", "churn", "challenger", "2").exit_code == 0
    result = cli("models", "alias", "delete", "churn", "challenger", "--reason", "done")
    assert result.exit_code == 0, result.output
    assert "challenger" in result.stdout

    history = strict_json(cli("models", "alias", "history", "churn", "--json").stdout)
    assert [(e["alias"], e["from_version"], e["to_version"], e["reason"]) for e in history] == [
        ("champion", None, 1, "first model"),
        ("champion", 1, 2, "better auc"),
        ("champion", 2, 1, "rollback"),
        ("challenger", None, 2, None),
        ("challenger", 2, None, "done"),
    ]
    only = strict_json(cli("models", "alias", "history", "churn", "challenger", "--json").stdout)
    assert len(only) == 2
    text = cli("models", "alias", "history", "churn").stdout
    assert "rollback" in text and "challenger" in text


def test_alias_mistakes(cli: Invoke, seeded: Seeded) -> None:
    assert_user_error(cli("models", "alias", "set", "churn", "latest", "1"), "reserved")
    assert_user_error(cli("models", "alias", "set", "churn", "champion", "9"), "no version 9")
    assert_user_error(cli("models", "alias", "delete", "churn", "nope"), "no alias 'nope'")


def test_alias_at(cli: Invoke, seeded: Seeded) -> None:
    assert cli("models", "alias", "at", "churn", "champion", "2000-01-01").stdout == "unset\n"
    later = cli("models", "alias", "at", "churn", "champion", "2999-01-01T00:00:00Z")
    assert later.exit_code == 0, later.output
    assert later.stdout == "2\n"
    data = strict_json(
        cli(
            "models", "alias", "at", "churn", "champion", "2999-01-01T02:00:00+02:00", "--json"
        ).stdout
    )
    assert data == {
        "model": "churn",
        "alias": "champion",
        "at": "2999-01-01T00:00:00+00:00",
        "version": 2,
    }
    lines = assert_user_error(
        cli("models", "alias", "at", "churn", "champion", "last tuesday"), "ISO-8601"
    )
    assert len(lines) == 1


def test_lineage_tree(cli: Invoke, seeded: Seeded) -> None:
    for uri in ("churn@champion", "churn/2", "models:/churn@champion", "models:/churn/latest"):
        result = cli("models", "lineage", uri)
        assert result.exit_code == 0, result.output
        text = result.stdout
        for expected in (
            "churn v2",
            "@champion",
            f"run {seeded.best}",
            "lgbm-best",
            "finished",
            "auc = 0.82",
            "customers@3",
            "abababababab",
            "role training",
            "commit 0123456789abcdef",
            "branch main",
            "dirty",
            "entry point train.py",
        ):
            assert expected in text, (uri, expected)
        assert "└──" in text


def test_lineage_json(cli: Invoke, seeded: Seeded) -> None:
    data = strict_json(cli("models", "lineage", "churn@champion", "--json").stdout)
    assert data["model"] == "churn" and data["version"] == 2
    assert data["aliases"] == ["champion"]
    assert data["run"]["run_id"] == seeded.best
    assert data["run"]["metrics"]["loss"] is None
    assert data["run"]["inputs"][0]["version"] == 3


def test_lineage_bad_uri(cli: Invoke, seeded: Seeded) -> None:
    assert_user_error(cli("models", "lineage", "churn/0"), "numbered from 1")
    assert_user_error(cli("models", "lineage", "churn@nope"), "no alias 'nope'")
    assert_user_error(cli("models", "lineage", "a/b/c"), "not a model URI")


# ---------------------------------------------------------------- the error boundary
def test_bugs_are_not_swallowed(
    cli: Invoke, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ratchet.tracking.client import TrackingClient

    def broken(self: TrackingClient, run_id: str) -> None:
        raise RuntimeError("a real bug")

    monkeypatch.setattr(TrackingClient, "get_run", broken)
    with pytest.raises(RuntimeError, match="a real bug"):
        cli("runs", "show", seeded.best)
    result = cli("runs", "show", seeded.best, catch_exceptions=True)
    assert isinstance(result.exception, RuntimeError)
    assert "error:" not in result.stderr
