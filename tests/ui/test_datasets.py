"""The dashboard's dataset pages in a real browser: versions, a version's schema, profile
charts and validation reports, the diff of two versions, and hostile column names and
category values shown as text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect

import ratchet
from ratchet.server.app import ServerOptions
from ratchet.ui import dashboard_app
from ratchet.workspace import Workspace, use
from tests.ui.browser import Watched, dashboard, dialogs_of, issue_token, local_workspace

SCRIPT = "<script>alert(1)</script>"
TEMPLATE = "{{7*7}}"
HOSTILE = SCRIPT + TEMPLATE


@dataclass
class Seeded:
    workspace: Workspace
    run_id: str  # the run that made churn@2, read it for training and validated it


def _frame(rows: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(rows),
        "age": rng.integers(18, 90, rows),
        "income": rng.normal(50 + shift, 10, rows),
        HOSTILE: rng.choice(["plain", SCRIPT, TEMPLATE], rows),
        "flag": rng.random(rows) > 0.5,
        "joined": pd.date_range("2024-01-01", periods=rows, freq="h"),
    })


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    workspace = local_workspace(tmp_path_factory.mktemp("datasets"))
    first = _frame(500, 0, seed=1)
    second = _frame(600, 8, seed=2).drop(columns=["flag"]).assign(extra=1.5)
    with use(workspace):
        ratchet.data.log(first, "churn", source=HOSTILE)
        with ratchet.start_run(experiment="prep") as run:
            ratchet.data.log(second, "churn", source="warehouse.churn", role="train")
            ratchet.data.validate(second, ratchet.data.infer_schema(first, name="churn"))
        ratchet.data.log(pd.DataFrame({f"c{i:03d}": range(5) for i in range(130)}), "wide")
    return Seeded(workspace, run.id)


@pytest.fixture(scope="module")
def url(seeded: Seeded) -> Iterator[str]:
    with dashboard(seeded.workspace) as base:
        yield base



# ----------------------------------------------------------------------------- browser
def test_the_datasets_list(url: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{url}/ui/")
    page.get_by_role("link", name="Datasets").click()
    page.wait_for_url(f"{url}/ui/datasets")
    churn = page.locator("tbody tr", has=page.get_by_role("link", name="churn", exact=True))
    assert churn.locator("td").all_inner_texts()[:4] == ["churn", "2", "v2", "600"]
    assert page.locator("tbody tr").count() == 2


def test_the_versions_of_a_dataset(seeded: Seeded, url: str, watched: Watched) -> None:
    page = watched.page
    dialogs = dialogs_of(page)
    page.goto(f"{url}/ui/datasets/churn")
    rows = page.locator("tbody tr")
    assert rows.count() == 2
    newest, oldest = rows.nth(0), rows.nth(1)
    v2 = seeded.workspace.stores.datasets.get_version("churn", 2)
    digest = newest.locator("td.mono")
    assert digest.inner_text() == v2.digest[:12] and digest.get_attribute("title") == v2.digest
    assert newest.get_by_role("link", name="v1").get_attribute("href") == "/ui/datasets/churn/1"
    assert newest.locator(f"a[href='/ui/runs/{seeded.run_id}']").count() == 1
    assert "warehouse.churn" in newest.inner_text() and "600" in newest.inner_text()
    assert HOSTILE in oldest.inner_text()  # the source, as text
    assert not dialogs


def test_a_version_shows_schema_and_profile_with_hostile_names_as_text(
        url: str, watched: Watched) -> None:
    page = watched.page
    dialogs = dialogs_of(page)
    page.goto(f"{url}/ui/datasets/churn/1")
    schema = page.locator("table.schema tbody tr")
    assert schema.count() == 6
    hostile = page.locator("table.schema tbody tr", has=page.get_by_role("rowheader",
                                                                       name=HOSTILE))
    cells = hostile.locator("td").all_inner_texts()
    assert cells[:3] == ["large_string", "categorical", "yes"]
    assert "one of " in cells[4]
    assert sorted(cells[4].split("one of ", 1)[1].split(", ")) == sorted(
        [SCRIPT, TEMPLATE, "plain"])
    age = page.locator("table.schema tbody tr", has=page.get_by_role("rowheader", name="age"))
    assert "no nulls" in age.inner_text() and "between 18 and 89" in age.inner_text()
    # One card per column; a chart where the profile stores a distribution.
    cards = page.locator("section.card.column")
    assert cards.count() == 6
    income = page.get_by_role("region", name="Column income")
    assert income.locator("svg.dist rect").count() == 20  # the stored 20-bin histogram
    category = page.get_by_role("region", name=f"Column {HOSTILE}")
    labels = category.locator("svg.dist text > title").all_text_contents()  # full labels
    assert sorted(labels) == sorted([SCRIPT, TEMPLATE, "plain"])
    tips = category.locator("svg.dist rect > title").all_text_contents()
    assert any(t.startswith(f"{SCRIPT}: ") and " rows (" in t for t in tips)
    bars = category.locator("svg.dist rect")
    assert bars.count() == 3
    assert sum(float(bars.nth(i).get_attribute("width") or 0) for i in range(3)) > 100
    joined = page.get_by_role("region", name="Column joined")
    assert joined.locator("svg.dist rect").count() == 20  # from the stored quantiles
    assert page.locator("svg.dist").count() == 6
    assert page.locator("h1").inner_text() == "churn version 1"
    assert TEMPLATE in page.locator("main").inner_text() and not dialogs


def test_runs_that_read_a_version_and_its_validation_reports(
        seeded: Seeded, url: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{url}/ui/datasets/churn/2")
    used = page.locator("table.narrow tbody tr")
    assert used.count() == 1
    assert used.locator("td").all_inner_texts() == [seeded.run_id, "train"]
    report = page.locator("section.report")
    assert report.count() == 1
    assert "failed" in report.locator("h3").inner_text()
    failures = report.locator("tbody tr")
    texts = [failures.nth(i).inner_text() for i in range(failures.count())]
    assert any("flag" in t and "column_in_dataframe" in t for t in texts)
    assert "/ui/datasets/churn/diff?a=1&b=2" in (
        page.get_by_role("link", name="diff with it").get_attribute("href") or "")


def test_the_diff_of_two_versions(seeded: Seeded, url: str, watched: Watched) -> None:
    page = watched.page
    dialogs = dialogs_of(page)
    page.goto(f"{url}/ui/datasets/churn")
    page.get_by_label("From").select_option("1")
    page.get_by_label("to", exact=True).select_option("2")
    page.get_by_role("button", name="Diff").click()
    page.wait_for_url("**/ui/datasets/churn/diff?a=1&b=2*")
    with use(seeded.workspace):
        expected = ratchet.data.diff("churn@1", "churn@2")
    # The row counts arrive from the JSON route after the page.
    expect(page.locator("[data-field=rows_added]")).to_have_text(f"{expected.rows_added:,}")
    expect(page.locator("[data-field=rows_removed]")).to_have_text(
        f"{expected.rows_removed:,}")
    facts = page.locator("dl.facts").first.inner_text()
    assert "500 → 600" in facts and "(+100)" in facts
    assert page.locator("p.identical").is_hidden()
    changes = page.locator("ul.schema-changes").inner_text()
    assert "added extra" in changes and "removed flag" in changes
    distribution = page.locator("table.distribution tbody tr")
    statuses = {distribution.nth(i).locator("th").inner_text():
                distribution.nth(i).locator("td").first.inner_text()
                for i in range(distribution.count())}
    assert statuses == {c.column: c.status for c in expected.distribution}
    assert statuses["income"] == "changed"
    # Both versions on one chart per shared column.
    income = page.get_by_role("region", name="Column income")
    assert income.locator("rect.s0").count() == income.locator("rect.s1").count() == 20
    category = page.get_by_role("region", name=f"Column {HOSTILE}")
    assert category.locator("rect.s0").count() == category.locator("rect.s1").count() == 3
    assert page.locator("section.card.column").count() == 5  # flag and extra are one-sided
    assert not dialogs


def test_a_diff_by_key_counts_changed_rows(seeded: Seeded, url: str,
                                          watched: Watched) -> None:
    page = watched.page
    page.goto(f"{url}/ui/datasets/churn/diff?a=1&b=2&key=id")
    with use(seeded.workspace):
        expected = ratchet.data.diff("churn@1", "churn@2", key="id")
    expect(page.locator("[data-field=rows_changed]")).to_have_text(
        f"{expected.rows_changed:,}")
    assert "by key id" in page.locator("dl.facts").first.inner_text()
    assert page.get_by_label("Key column").input_value() == "id"


def test_wide_data_pages_its_columns(url: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{url}/ui/datasets/wide/1")
    assert "columns 1 to 100 of 130" in page.locator("nav.pager").inner_text()
    assert page.locator("table.schema tbody tr").count() == 100
    page.get_by_role("link", name="next columns →").click()
    page.wait_for_url("**page=2")
    assert page.locator("table.schema tbody tr").count() == 30
    assert page.locator("table.schema tbody th").first.inner_text() == "c100"


def test_bad_references_are_error_pages(url: str, watched: Watched) -> None:
    page = watched.page
    watched.expect_status(404, 422)
    for path, status, text in (("/ui/datasets/churn/9", 404, "version 9"),
                               ("/ui/datasets/churn/first", 422, "version number"),
                               ("/ui/datasets/wide/1?page=two", 422, "page number"),
                               ("/ui/datasets/churn/diff?a=1&b=2&key=nope", 422, "nope"),
                               ("/ui/datasets/nothing", 404, "nothing")):
        answer = page.goto(f"{url}{path}")
        assert answer is not None and answer.status == status, path
        assert text in page.locator("main").inner_text(), path


def test_no_datasets_says_how_to_log_one(tmp_path: Path, watched: Watched) -> None:
    page = watched.page
    with dashboard(local_workspace(tmp_path)) as base:
        page.goto(f"{base}/ui/datasets")
        assert "ratchet data log" in page.locator(".empty").inner_text()


# ----------------------------------------------------------------------------- no browser
def test_datasets_need_a_signed_in_reader(seeded: Seeded) -> None:
    token = issue_token(seeded.workspace, "rosa", "reader")
    with TestClient(dashboard_app(seeded.workspace, ServerOptions(auth=True))) as client:
        anonymous = client.get("/ui/datasets/churn/1", follow_redirects=False)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/ui/login?next=")
        signed = client.get("/ui/datasets/churn/1", headers={"Authorization": f"Bearer {token}"})
        assert signed.status_code == 200
        assert "script-src 'self'" in signed.headers["content-security-policy"]
        assert SCRIPT not in signed.text  # every user string arrives escaped
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in signed.text


def test_the_row_comparison_route(seeded: Seeded) -> None:
    with use(seeded.workspace):
        expected = ratchet.data.diff("churn@1", "churn@2", key="id")
    with TestClient(dashboard_app(seeded.workspace, ServerOptions(auth=False))) as client:
        answer = client.get("/ui/api/datasets/churn/diff?a=1&b=2&key=id")
        assert answer.status_code == 200
        assert answer.json() == {
            "base": "churn@1", "other": "churn@2", "rows_base": 500, "rows_other": 600,
            "key": ["id"], "rows_added": expected.rows_added,
            "rows_removed": expected.rows_removed, "rows_changed": expected.rows_changed,
            "identical": False}
        same = client.get("/ui/api/datasets/churn/diff?a=2&b=2").json()
        assert same["identical"] and same["rows_added"] == same["rows_removed"] == 0
        for query, status in (("a=x&b=2", 422), ("a=1&b=2&key=nope", 422), ("a=1&b=7", 404),
                              ("a=1", 422)):
            bad = client.get(f"/ui/api/datasets/churn/diff?{query}")
            assert bad.status_code == status, query
            assert bad.headers["content-type"] == "application/json"
            assert bad.json()["error"]["message"]
