"""``ratchet data …`` driven like a user: files in, tables and JSON out, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli.conftest import Invoke, assert_user_error, strict_json


@pytest.fixture
def churn_csv(project: Path) -> Path:
    rng = np.random.default_rng(3)
    n = 500
    frame = pd.DataFrame({"id": np.arange(n), "age": rng.integers(18, 90, n),
                          "plan": rng.choice(["basic", "pro"], n), "spend": rng.random(n)})
    path = project / "churn.csv"
    frame.to_csv(path, index=False)
    frame.assign(spend=frame.spend * 3).to_csv(project / "churn2.csv", index=False)
    return path


def test_log_list_show_versions(cli: Invoke, churn_csv: Path) -> None:
    out = cli("data", "log", str(churn_csv), "--name", "churn")
    assert out.exit_code == 0 and "churn@1" in out.stdout and "500 rows" in out.stdout
    again = strict_json(cli("data", "log", str(churn_csv), "--name", "churn", "--json").stdout)
    assert again["version"] == 1  # identical content: same version
    cli("data", "log", str(churn_csv.parent / "churn2.csv"), "--name", "churn")
    listed = strict_json(cli("data", "list", "--json").stdout)
    assert listed == [{"name": "churn", "versions": 2, "latest_version": 2}]
    shown = cli("data", "show", "churn@1")
    assert shown.exit_code == 0 and "profile" in shown.stdout and "plan" in shown.stdout
    data = strict_json(cli("data", "show", "churn", "--json").stdout)
    assert data["version"] == 2 and data["parent_version"] == 1
    assert {c["name"] for c in data["profile"]["columns"]} == {"id", "age", "plan", "spend"}
    versions = strict_json(cli("data", "versions", "churn", "--json").stdout)
    assert [v["version"] for v in versions] == [1, 2]


def test_diff(cli: Invoke, churn_csv: Path) -> None:
    cli("data", "log", str(churn_csv), "--name", "churn")
    cli("data", "log", str(churn_csv.parent / "churn2.csv"), "--name", "churn")
    result = strict_json(cli("data", "diff", "churn@1", "churn@2", "--key", "id",
                             "--json").stdout)
    assert result["rows_changed"] == 500 and result["rows_added"] == 0
    spend = next(c for c in result["distribution"] if c["column"] == "spend")
    assert spend["changed"] is True
    table = cli("data", "diff", "churn@1", "churn@2", "-k", "id")
    assert table.exit_code == 0 and "spend" in table.stdout


def test_infer_schema_then_validate(cli: Invoke, churn_csv: Path, project: Path) -> None:
    cli("data", "log", str(churn_csv), "--name", "churn")
    schema = project / "churn.schema.yaml"
    assert cli("data", "infer-schema", "churn@1", "-o", str(schema)).exit_code == 0
    assert "age" in schema.read_text()
    ok = cli("data", "validate", "churn@1", "--schema", str(schema), "--json")
    assert ok.exit_code == 0 and strict_json(ok.stdout)["failures"] == []
    bad = pd.read_csv(churn_csv)
    bad.loc[:9, "age"] = -5
    bad.loc[:2, "plan"] = "gold"
    bad_path = project / "bad.csv"
    bad.to_csv(bad_path, index=False)
    failed = cli("data", "validate", str(bad_path), "--schema", str(schema), "--json")
    assert failed.exit_code == 1
    failures = strict_json(failed.stdout)["failures"]
    by_column = {f["column"]: f["failing_count"] for f in failures}
    assert by_column["age"] == 10 and by_column["plan"] == 3
    printed = cli("data", "validate", str(bad_path), "--schema", str(schema))
    assert printed.exit_code == 1 and "age" in printed.stdout


def test_user_mistakes_are_one_line(cli: Invoke, project: Path) -> None:
    ragged = project / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    assert_user_error(cli("data", "log", str(ragged), "--name", "r"), "ragged.csv:3")
    assert_user_error(cli("data", "log", str(project / "nope.csv"), "--name", "r"),
                      "no such file")
    good = project / "ok.csv"
    good.write_text("a\n1\n")
    assert_user_error(cli("data", "log", str(good), "--name", "bad/name"), "dataset name")
    assert_user_error(cli("data", "show", "ghost@1"), "no dataset named 'ghost'")
    assert_user_error(cli("data", "validate", str(good), "--schema",
                          str(project / "missing.yaml")), "missing.yaml")


def test_missing_file_argument_is_named_as_a_file(cli: Invoke, project: Path) -> None:
    assert_user_error(cli("data", "infer-schema", "nope.parquet"), "nope.parquet: no such file")
    assert_user_error(cli("data", "validate", "dir/x.csv", "--schema", "s.yaml"),
                      "dir/x.csv: no such file")
