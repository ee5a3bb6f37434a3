"""The dashboard's model pages in a real browser: versions, the alias history and "who
was champion at time T", lineage down to datasets, moving an alias (writers only), and
hostile names shown as text."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import ratchet
from ratchet.server.app import ServerOptions
from ratchet.store import AliasEvent
from ratchet.ui import dashboard_app
from ratchet.workspace import Workspace, use
from tests.ui.browser import Watched, dashboard, dialogs_of, issue_token, local_workspace
from tests.ui.test_shell import sign_in

HOSTILE = "<script>alert(1)</script>{{7*7}}"
# Model names may not hold "/" (nor "@", "\"): the hostile model name has no closing tag.
HOSTILE_MODEL = "<img src=x onerror=alert(1)> {{7*7}}"


@dataclass
class Seeded:
    workspace: Workspace
    runs: list[str]  # the run of each iris version, v1 first
    events: list[AliasEvent]  # the seeded alias moves, oldest first


def _pause() -> None:
    time.sleep(0.005)  # alias events a few milliseconds apart: "at T" has moments between


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    workspace = local_workspace(tmp_path_factory.mktemp("models"))
    X, y = load_iris(return_X_y=True, as_frame=True)
    frame = X.assign(species=y)
    runs = []
    with use(workspace):
        for rows, C in ((100, 0.1), (150, 1.0), (150, 10.0)):
            with ratchet.start_run(experiment="iris") as run:
                ratchet.data.log(frame.head(rows), "iris-train", role="train")
                ratchet.log_metric("accuracy", 0.9 + C / 100)
                ratchet.log_model(LogisticRegression(C=C, max_iter=300).fit(X, y), name="iris",
                                  input_example=X.head(5),
                                  tags={"note": HOSTILE} if C == 1.0 else None)
            runs.append(run.id)
        registry = ratchet.models.client()
        registry.set_tag("iris", "ratchet.importance", json.dumps(
            {"top_features": ["petal width (cm)", HOSTILE], "holdout": "iris-train@2"}), 2)
        events = [registry.set_alias("iris", "champion", 1, reason="first", actor="ana")]
        _pause()
        events.append(registry.set_alias("iris", "champion", 2, reason=HOSTILE, actor="ana"))
        _pause()
        events.append(registry.set_alias("iris", "challenger", 3, actor="bob"))
        with ratchet.start_run(experiment="iris"):
            ratchet.log_model(LogisticRegression(max_iter=300).fit(X, y), name=HOSTILE_MODEL,
                              tags={"owner": HOSTILE})
        registry.set_alias(HOSTILE_MODEL, "champion", 1, reason=HOSTILE, actor="ana")
    return Seeded(workspace, runs, events)


@pytest.fixture(scope="module")
def team(seeded: Seeded) -> Iterator[tuple[str, dict[str, str]]]:
    """Sign-in required: a writer, a reader, and a reader who may not see the hostile
    model (a ``none`` grant on it)."""
    workspace = seeded.workspace
    tokens = {"writer": issue_token(workspace, "wendy", "writer"),
              "reader": issue_token(workspace, "rita", "reader"),
              "narrow": issue_token(workspace, "nina", "reader")}
    workspace.stores.auth.grant("nina", "model", HOSTILE_MODEL, "none")
    with dashboard(workspace, auth=True) as url:
        yield url, tokens



def _moment(ms: int) -> str:
    """A ``datetime-local`` value (UTC) with milliseconds."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


# ----------------------------------------------------------------------------- browser
def test_the_models_list_shows_hostile_names_as_text(
        team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    dialogs = dialogs_of(page)
    sign_in(page, url, tokens["reader"])
    page.get_by_role("link", name="Models").click()
    page.wait_for_url(f"{url}/ui/models")
    assert page.locator("tbody tr").count() == 2
    hostile = page.get_by_role("link", name=HOSTILE_MODEL)
    assert hostile.inner_text() == HOSTILE_MODEL
    iris = page.locator("tbody tr", has=page.get_by_role("link", name="iris", exact=True))
    assert "v3" in iris.inner_text()
    assert "champion → v2" in iris.inner_text() and "challenger → v3" in iris.inner_text()
    hostile.click()
    page.wait_for_url("**/ui/models/*")
    assert page.get_by_role("heading", level=1).inner_text() == HOSTILE_MODEL
    history = page.locator("table.history tbody tr")
    assert history.count() == 1 and HOSTILE in history.inner_text()
    assert HOSTILE in page.locator("table.versions").inner_text()  # the tag value
    assert page.title().startswith(HOSTILE_MODEL)
    assert not dialogs


def test_versions_and_the_alias_history(
        seeded: Seeded, team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    dialogs = dialogs_of(page)
    sign_in(page, url, tokens["reader"])
    page.goto(f"{url}/ui/models/iris")
    rows = page.locator("table.versions tbody tr")
    assert [rows.nth(i).get_attribute("data-version") for i in range(3)] == ["3", "2", "1"]
    v2 = page.locator("table.versions tr[data-version='2']")
    assert v2.locator("a.mono").get_attribute("href") == f"/ui/runs/{seeded.runs[1]}"
    assert "sklearn" in v2.inner_text() and "4 inputs → 1 output" in v2.inner_text()
    assert "accuracy=0.91" in v2.inner_text()
    importance = v2.locator(".importance")
    assert "1. petal width (cm)" in importance.inner_text()
    assert f"2. {HOSTILE}" in importance.inner_text()
    assert importance.get_by_role("link", name="iris-train@2").get_attribute("href") == \
        "/ui/datasets/iris-train/2"
    assert f"note={HOSTILE}" in v2.inner_text()
    # Every move, newest first, with who and from → to.
    history = page.locator("table.history tbody tr")
    assert history.count() == 3
    cells = [history.nth(i).locator("td").all_inner_texts() for i in range(3)]
    assert [c[1:5] for c in cells] == [["challenger", "unset", "v3", "bob"],
                                      ["champion", "v1", "v2", "ana"],
                                      ["champion", "unset", "v1", "ana"]]
    assert cells[1][5] == HOSTILE
    # The timeline: one lane per alias; champion has two segments (v1 then v2).
    lanes = page.locator("svg.timeline text.lane").all_text_contents()
    assert lanes == ["challenger", "champion"]
    assert page.locator("svg.timeline g.segment").count() == 3
    assert not dialogs


def test_who_was_champion_at_time_t(
        seeded: Seeded, team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    sign_in(page, url, tokens["reader"])
    page.goto(f"{url}/ui/models/iris")
    first, second, _ = seeded.events
    expected = ((first.at - 1, "was not set"), (first.at, "version 1"),
                (second.at - 1, "version 1"), (second.at, "version 2"))
    for ms, answer in expected:
        page.locator("#at-alias").select_option("champion")
        page.get_by_label("at (UTC)").fill(_moment(ms))
        page.get_by_role("button", name="Look up").click()
        page.wait_for_url("**at=*")
        text = page.locator("#alias-at .answer").inner_text()
        assert answer in text, (ms, text)
        kept = page.get_by_label("at (UTC)").input_value()  # Chromium trims trailing zeros
        assert dt.datetime.fromisoformat(kept) == dt.datetime.fromisoformat(_moment(ms))
    link = page.locator("#alias-at .answer a")
    assert link.get_attribute("href") == "/ui/models/iris?version=2"
    assert "moved by ana" in page.locator("#alias-at .answer").inner_text()


def test_a_version_traces_to_its_datasets_and_commit(
        seeded: Seeded, team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    sign_in(page, url, tokens["reader"])
    page.goto(f"{url}/ui/models/iris")
    page.get_by_role("link", name="v2", exact=True).first.click()
    page.wait_for_url("**/ui/models/iris?version=2")
    lineage = page.locator(".lineage")
    run = seeded.workspace.stores.tracking.get_run(seeded.runs[1])
    assert lineage.locator(f"a[href='/ui/runs/{run.run_id}']").count() == 1
    if run.code.git_commit:
        assert lineage.locator(".commit").inner_text() == run.code.git_commit
    else:
        assert "no commit recorded" in lineage.inner_text()
    assert page.locator("table.signature caption").first.inner_text() == "Inputs"
    assert page.locator("table.signature").first.locator("tbody tr").count() == 4
    dataset = lineage.get_by_role("link", name="iris-train@2")
    assert dataset.get_attribute("href") == "/ui/datasets/iris-train/2"
    dataset.click()
    page.wait_for_url("**/ui/datasets/iris-train/2")
    assert "Rows\n150" in page.locator("dl.facts").first.inner_text()
    assert page.locator("nav[aria-label=Sections] a[aria-current=page]").inner_text() == \
        "Datasets"


def test_a_writer_moves_an_alias_and_the_move_is_recorded(
        seeded: Seeded, team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    sign_in(page, url, tokens["writer"])
    page.goto(f"{url}/ui/models/iris")
    page.locator("#move-alias").fill("champion")
    page.get_by_label("Version", exact=True).select_option("3")
    page.get_by_label("Reason", exact=True).fill("better on the new holdout")
    with page.expect_navigation():
        page.get_by_role("button", name="Move alias").click()
    assert "champion → v3" in page.locator("#current-aliases").inner_text()
    newest = page.locator("table.history tbody tr").first.locator("td").all_inner_texts()
    assert newest[1:] == ["champion", "v2", "v3", "wendy", "better on the new holdout"]
    recorded = seeded.workspace.stores.registry.alias_history("iris", "champion")[-1]
    assert (recorded.from_version, recorded.to_version, recorded.actor) == (2, 3, "wendy")
    # A bad alias is refused with the registry's message, next to the form.
    page.locator("#move-alias").fill("123")
    watched.expect_status(422)
    page.get_by_role("button", name="Move alias").click()
    error = page.locator("form[data-move-alias] .error")
    error.wait_for()
    assert "cannot be all digits" in error.inner_text()


def test_a_reader_gets_no_form_and_the_route_refuses(
        seeded: Seeded, team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    sign_in(page, url, tokens["reader"])
    page.goto(f"{url}/ui/models/iris")
    page.locator("table.history").wait_for()
    assert page.locator("form[data-move-alias]").count() == 0
    assert page.get_by_role("button", name="Move alias").count() == 0
    before = seeded.workspace.stores.registry.resolve_alias("iris", "challenger")
    watched.expect_status(403)
    message = page.evaluate("""async () => {
        try { await ratchet.postJSON('/ui/api/models/alias',
                                     {name: 'iris', alias: 'challenger', version: 1});
              return 'moved'; }
        catch (e) { return e.message; } }""")
    assert "may not write" in message
    assert seeded.workspace.stores.registry.resolve_alias("iris", "challenger") == before


def test_a_model_hidden_by_a_grant_is_neither_listed_nor_shown(
        team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    sign_in(page, url, tokens["narrow"])
    page.goto(f"{url}/ui/models")
    assert page.get_by_role("link", name="iris", exact=True).is_visible()
    assert page.get_by_role("link", name=HOSTILE_MODEL).count() == 0
    watched.expect_status(403)
    from urllib.parse import quote

    answer = page.goto(f"{url}/ui/models/{quote(HOSTILE_MODEL)}")
    assert answer is not None and answer.status == 403
    assert "may not read" in page.locator("main").inner_text()


def test_no_models_says_how_to_register_one(tmp_path: Any, watched: Watched) -> None:
    page = watched.page
    with dashboard(local_workspace(tmp_path)) as url:
        page.goto(f"{url}/ui/models")
        assert "ratchet.log_model" in page.locator(".empty").inner_text()


# ----------------------------------------------------------------------------- no browser
@pytest.fixture(scope="module")
def client(seeded: Seeded) -> Iterator[tuple[TestClient, dict[str, str]]]:
    workspace = seeded.workspace
    headers = {role: {"Authorization": f"Bearer {issue_token(workspace, user, role)}"}
               for user, role in (("walt", "writer"), ("rex", "reader"))}
    with TestClient(dashboard_app(workspace, ServerOptions(auth=True))) as test_client:
        yield test_client, headers  # type: ignore[misc]


def test_the_alias_route_checks_permission_and_input(
        seeded: Seeded, client: tuple[TestClient, dict[str, Any]]) -> None:
    test_client, headers = client
    move = {"name": HOSTILE_MODEL, "alias": "challenger", "version": 1}
    refused = test_client.post("/ui/api/models/alias", json=move, headers=headers["reader"])
    assert refused.status_code == 403 and "may not write" in refused.json()["error"]["message"]
    form = test_client.post("/ui/api/models/alias", content="name=x&alias=y&version=1",
                            headers={**headers["writer"],
                                     "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415  # a cross-site form cannot move an alias
    for body, status in (({**move, "version": 9}, 404), ({**move, "version": "1"}, 422),
                         ({**move, "version": True}, 422), ({**move, "alias": "latest"}, 422),
                         ({**move, "name": "no such model"}, 404), ({**move, "x": 1}, 422)):
        answer = test_client.post("/ui/api/models/alias", json=body, headers=headers["writer"])
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["error"]["message"]
    moved = test_client.post("/ui/api/models/alias", json=move, headers=headers["writer"])
    assert moved.status_code == 200
    assert moved.json() | {"at": 0} == {"name": HOSTILE_MODEL, "alias": "challenger",
                                        "from_version": None, "to_version": 1,
                                        "actor": "walt", "at": 0}
    last = seeded.workspace.stores.registry.alias_history(HOSTILE_MODEL)[-1]
    assert (last.alias, last.actor) == ("challenger", "walt")


def test_bad_page_input_is_an_html_error_not_a_traceback(
        client: tuple[TestClient, dict[str, Any]]) -> None:
    test_client, headers = client
    for path, status, text in (("/ui/models/iris?version=abc", 422, "positive whole number"),
                               ("/ui/models/iris?version=99", 404, "no version 99"),
                               ("/ui/models/nothing-here", 404, "nothing-here")):
        answer = test_client.get(path, headers=headers["reader"])
        assert answer.status_code == status, path
        assert answer.headers["content-type"].startswith("text/html")
        assert text in answer.text, (path, answer.text)
    bad_time = test_client.get("/ui/models/iris?alias=champion&at=yesterday",
                               headers=headers["reader"])
    assert bad_time.status_code == 200 and "is not a date and time" in bad_time.text
    never = test_client.get("/ui/models/iris?alias=nobody&at=2026-01-01T00:00",
                            headers=headers["reader"])
    assert "never had an alias" in never.text
