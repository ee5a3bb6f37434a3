"""The continuous-training event log on SQLite and PostgreSQL, and `ratchet ct history`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ratchet.config import Settings
from ratchet.errors import InvalidInput
from ratchet.store.ct_event_store import CTEventStore
from ratchet.workspace import Workspace
from ratchet.workspace import current as current_workspace
from tests.team_server import acted


@pytest.fixture
def events(settings: Settings) -> CTEventStore:
    return Workspace(settings).stores.ct_events


def test_append_and_read_in_order_with_evidence(events: CTEventStore) -> None:
    events.append("churn", "trigger", "drift in age, plan", evidence={"share": 0.4}, at=1_000)
    events.append("churn", "gate", "challenger v4 passed", evidence={"improvement": 0.03},
                  at=2_000, actor="controller")
    events.append("other", "trigger", "manual", at=1_500)
    timeline = events.history("churn")
    assert [(e.kind, e.at) for e in timeline] == [("trigger", 1_000), ("gate", 2_000)]
    assert timeline[1].evidence == {"improvement": 0.03} and acted(timeline[1].actor, "controller")
    assert [e.kind for e in events.history("churn", kinds=("gate",))] == ["gate"]
    assert [e.kind for e in events.history("churn", since=1_500)] == ["gate"]


def test_an_event_commits_with_its_callers_transaction(local_settings: Settings) -> None:
    events = Workspace(local_settings).stores.ct_events  # a transaction: in-process only
    with pytest.raises(RuntimeError), events.db.write() as conn:
        events.append("churn", "promoted", "v4 is champion", conn=conn)
        raise RuntimeError("the state change failed")
    assert events.history("churn") == []
    with events.db.write() as conn:
        events.append("churn", "promoted", "v4 is champion", conn=conn)
    assert [e.kind for e in events.history("churn")] == ["promoted"]


def test_bad_events_are_refused(events: CTEventStore) -> None:
    with pytest.raises(InvalidInput, match="kind"):
        events.append("churn", "", "nothing")
    with pytest.raises(InvalidInput, match="NaN"):
        events.append("churn", "gate", "bad", evidence={"score": math.nan})


def test_cli_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ratchet.cli.main import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / ".ratchet"))
    store = current_workspace().stores.ct_events
    store.append("churn", "trigger", "drift in age", evidence={"columns": ["age"]})
    store.append("churn", "rolled_back", "canary v5 raised on 3% of requests")
    runner = CliRunner()
    shown = runner.invoke(app, ["ct", "history", "churn"])
    assert shown.exit_code == 0 and "rolled_back" in shown.stdout and "drift in age" in shown.stdout
    data = json.loads(runner.invoke(app, ["ct", "history", "churn", "--json",
                                          "--kind", "trigger"]).stdout)
    assert [d["kind"] for d in data] == ["trigger"] and data[0]["evidence"] == {"columns": ["age"]}
    empty = runner.invoke(app, ["ct", "history", "nobody"])
    assert empty.exit_code == 0 and "no continuous-training events" in empty.output
