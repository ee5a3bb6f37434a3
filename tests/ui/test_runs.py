"""The runs pages: an experiment's runs table and a run's page, in a real Chromium.

One seeded workspace and one dashboard per module; each test opens its own page.
"""

from __future__ import annotations

import html
import json
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi.testclient import TestClient

import ratchet
from ratchet.server.app import ServerOptions
from ratchet.store.records import DatasetInput
from ratchet.ui import dashboard_app
from ratchet.ui.pages.runs import DEFAULT_METRICS, DEFAULT_PARAMS
from ratchet.ui.templating import STATIC
from ratchet.workspace import Workspace, use
from tests.ui.browser import Watched, dashboard, dialogs_of, issue_token, local_workspace
from tests.ui.test_shell import sign_in

HOSTILE = "<script>alert(1)</script>{{7*7}}"
EXPERIMENT = "churn/v2 #1?"  # a slash, a hash and a question mark: all URL syntax
RUNS = 60
ODD_KEY = "val/loss: top 1"  # keys may hold '/', ':' and spaces


def png_bytes() -> bytes:
    """A valid 2x2 red PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict[str, str]]:
    root = tmp_path_factory.mktemp("runs")
    workspace = local_workspace(root)
    ids: dict[str, str] = {}
    files = root / "files"
    (files / "plots").mkdir(parents=True)
    (files / "notes.txt").write_text("first line\n<b>not bold</b> {{7*7}}\n")
    (files / "page.html").write_text("<html><script>alert(1)</script></html>")
    (files / "plots" / "red.png").write_bytes(png_bytes())
    (files / "plots" / "vector.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>')
    with use(workspace):
        for i in range(RUNS):
            with ratchet.start_run(experiment=EXPERIMENT, name=f"run-{i:02d}") as run:
                ratchet.log_metrics({"auc": round(0.5 + i / 200, 4), "loss": 1.0 - i / 100})
                ratchet.log_params({"model": "rf" if i % 2 else "gb", "lr": i / 1000})
                if i == RUNS - 1:
                    ratchet.log_metric(ODD_KEY, 0.25)
                    ratchet.set_tags({"note": HOSTILE})
                    ratchet.log_param("hostile", HOSTILE)
                    ratchet.log_artifacts(files)
                    ratchet.log_input(DatasetInput("customers", "ab" * 32, 3, "train", None))
                    ids["rich"] = run.run_id
                    with ratchet.start_run(experiment="nested", nested=True,
                                           name="child-run") as child:
                        ratchet.log_metric("auc", 0.1)
                        ids["child"] = child.run_id
        with ratchet.start_run(experiment=HOSTILE, name=HOSTILE) as hostile:
            ratchet.log_metric("auc", 0.9)
            ratchet.set_tag("team", HOSTILE)
            ids["hostile"] = hostile.run_id
    workspace.stores.registry.create_model_version(
        "churn-model", run_id=ids["rich"], artifact_path="model", content_hash="cd" * 32,
        flavor="sklearn", manifest={})
    return workspace, ids


@pytest.fixture(scope="module")
def server(seeded: tuple[Workspace, dict[str, str]]) -> Iterator[str]:
    with dashboard(seeded[0]) as url:
        yield url


def table_url(url: str, name: str = EXPERIMENT, query: str = "") -> str:
    return f"{url}/ui/experiments/{quote(name, safe='')}" + (f"?{query}" if query else "")


def run_names(page: Any) -> list[str]:
    return page.locator("table.runs tbody tr td:nth-child(2)").all_inner_texts()



# ---------------------------------------------------------------------- the runs table
def test_the_experiment_link_opens_its_runs_newest_first(server: str, page: Any) -> None:
    page.goto(f"{server}/ui/")
    page.get_by_role("link", name=EXPERIMENT).click()
    page.wait_for_selector("table.runs")
    assert page.get_by_role("heading", level=1).inner_text() == EXPERIMENT
    names = run_names(page)
    assert len(names) == 50 and names[0] == f"run-{RUNS - 1:02d}" and names[1] == "run-58"
    assert f"of {RUNS} in the experiment" in page.locator(".count").inner_text()
    started = page.locator("th[aria-sort]")
    assert started.count() == 1 and started.get_attribute("aria-sort") == "descending"
    assert "Started" in started.inner_text()
    headers = page.locator("table.runs thead th").all_inner_texts()
    assert "metrics.auc" in " ".join(headers) and "params.lr" in " ".join(headers)
    assert page.locator("table.runs thead th[scope=col]").count() == len(headers)


def test_filter_then_sort_by_a_metric(server: str, page: Any) -> None:
    page.goto(table_url(server))
    page.get_by_label("Filter").fill("metrics.auc > 0.7 and params.model = 'rf'")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r".*filter=metrics.auc.*"))
    names = run_names(page)
    # auc = 0.5 + i/200 > 0.7 -> i > 40; rf -> odd i: 41, 43, ..., 59 (10 runs), newest first
    assert names == [f"run-{i:02d}" for i in range(59, 40, -2)]
    assert "of 10 matching" in page.locator(".count").inner_text()
    page.locator("table.runs thead").get_by_role("link", name="metrics.loss").click()
    page.wait_for_url(re.compile(r".*sort=metrics.loss.*"))
    header = page.locator("th[aria-sort]")
    assert header.get_attribute("aria-sort") == "descending" and "metrics.loss" in header.inner_text()
    assert run_names(page) == [f"run-{i:02d}" for i in range(41, 60, 2)]  # loss falls with i
    assert page.get_by_label("Filter").input_value() == "metrics.auc > 0.7 and params.model = 'rf'"
    page.locator("table.runs thead").get_by_role("link", name="metrics.loss").click()
    page.wait_for_url(re.compile(r".*dir=asc.*"))
    assert page.locator("th[aria-sort]").get_attribute("aria-sort") == "ascending"
    assert run_names(page)[0] == "run-59"


def test_a_filter_error_shows_the_caret_and_keeps_the_form(server: str, page: Any) -> None:
    answer = page.goto(table_url(server, query="filter=" + quote("metrics.auc >> 0.5")))
    assert answer is not None and answer.status == 200
    alert = page.get_by_role("alert")
    text = alert.locator("pre").inner_text()
    assert "invalid filter at position 13" in text and "metrics.auc >> 0.5" in text
    caret_line = text.splitlines()[-1]
    assert caret_line.strip() == "^" and caret_line.index("^") == text.splitlines()[-2].index(">>") + 1
    assert page.get_by_label("Filter").input_value() == "metrics.auc >> 0.5"
    assert page.locator("table.runs").count() == 0


def test_pages_forward_and_back_with_page_tokens(server: str, page: Any) -> None:
    page.goto(table_url(server))
    page.get_by_label("Runs per page").select_option("50")
    page.get_by_role("link", name="Next").click()
    page.wait_for_url(re.compile(r".*page=.*"))
    assert run_names(page) == [f"run-{i:02d}" for i in range(9, -1, -1)]
    assert "Runs 51\u201360" in page.locator(".count").inner_text()
    assert page.get_by_role("link", name="Next").count() == 0
    page.get_by_role("link", name="Previous").click()
    page.wait_for_selector("table.runs")
    assert len(run_names(page)) == 50 and run_names(page)[0] == "run-59"
    page.goto(table_url(server, query="size=100"))
    assert len(run_names(page)) == RUNS and page.get_by_role("link", name="Next").count() == 0


def test_the_column_chooser_searches_keys_and_keeps_them_in_the_url(
        server: str, page: Any) -> None:
    page.goto(table_url(server))
    page.get_by_text("Choose columns").click()
    page.get_by_label("Search keys").fill("loss")
    assert page.locator("[data-chooser-list] li").count() == 2  # metrics.loss, the odd key
    page.get_by_role("button", name="Clear").click()
    page.get_by_label(f"metrics.{ODD_KEY}").check()
    page.get_by_label("Search keys").fill("params.model")
    page.get_by_label("params.model").check()
    page.get_by_role("button", name="Show these columns").click()
    page.wait_for_url(re.compile(r".*columns=.*"))
    query = parse_qs(urlsplit(page.url).query)
    assert query["columns"] == [f"metrics.{ODD_KEY},params.model"]
    headers = page.locator("table.runs thead th").all_inner_texts()
    assert headers[-2:] == [f"metrics.{ODD_KEY}", "params.model"]
    first = page.locator("table.runs tbody tr").first.locator("td").all_inner_texts()
    assert first[-2:] == ["0.25", "rf"]
    # A key with a space and a colon sorts too (quoted in the order_by the page builds).
    page.locator("table.runs thead").get_by_role("link", name=f"metrics.{ODD_KEY}").click()
    page.wait_for_url(re.compile(r".*sort=.*"))
    assert run_names(page)[0] == "run-59"


def test_keyboard_moves_between_rows_and_enter_opens_the_run(
        server: str, page: Any, seeded: tuple[Workspace, dict[str, str]]) -> None:
    page.goto(table_url(server))
    rows = page.locator("table.runs tbody tr")
    assert rows.nth(0).get_attribute("tabindex") == "0"
    assert rows.nth(1).get_attribute("tabindex") == "-1"  # one tab stop for the table
    rows.nth(0).focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    assert page.evaluate("document.activeElement.dataset.href") == rows.nth(1).get_attribute(
        "data-href")
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.dataset.href") == rows.nth(49).get_attribute(
        "data-href")
    page.keyboard.press("Home")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/ui/runs/{seeded[1]['rich']}")
    assert page.get_by_role("heading", level=1).inner_text().startswith("run-59")


def test_select_runs_with_the_keyboard_and_compare_them(server: str, watched: Watched) -> None:
    page = watched.page
    watched.expect_status(404)  # the compare page is another page's; it may not exist yet
    page.goto(table_url(server))
    compare = page.get_by_role("button", name=re.compile("Compare"))
    assert compare.is_disabled()
    rows = page.locator("table.runs tbody tr")
    rows.nth(0).focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    rows.nth(2).locator("input[type=checkbox]").check()
    assert compare.inner_text() == "Compare 3 runs" and compare.is_enabled()
    expected = [rows.nth(i).locator("input").get_attribute("value") for i in range(3)]
    for i in range(3):
        assert page.get_by_label(f"Select run run-{59 - i:02d}").is_checked()
    compare.click()
    page.wait_for_url(re.compile(r".*/ui/compare\?run=.*"))
    assert parse_qs(urlsplit(page.url).query)["run"] == expected


def test_hostile_names_show_as_text_in_the_table(
        server: str, page: Any) -> None:
    dialogs = dialogs_of(page)
    page.goto(f"{server}/ui/")
    page.get_by_role("link", name=HOSTILE).click()
    page.wait_for_selector("table.runs")
    assert page.get_by_role("heading", level=1).inner_text() == HOSTILE
    assert run_names(page) == [HOSTILE]
    # A hostile filter, column and sort echo back as text too.
    page.goto(table_url(server, HOSTILE, "filter=" + quote(f"tags.team = '{HOSTILE}'")
                        + "&columns=" + quote(f"tags.team,metrics.{HOSTILE}")
                        + "&sort=" + quote(f"params.{HOSTILE}")))
    assert page.get_by_label("Filter").input_value() == f"tags.team = '{HOSTILE}'"
    assert run_names(page) == [HOSTILE]
    assert page.locator("table.runs tbody td").last.inner_text() == HOSTILE  # tags.team
    problems = page.locator("p.warn").all_inner_texts()
    assert len(problems) == 2 and all(HOSTILE in p for p in problems)
    assert "<script>" in page.locator("h1").inner_text()  # text, not an element
    assert not dialogs


# ----------------------------------------------------------------------------- a run
def test_the_run_page_shows_everything_ratchet_knows_about_the_run(
        server: str, page: Any, seeded: tuple[Workspace, dict[str, str]]) -> None:
    dialogs = dialogs_of(page)
    ids = seeded[1]
    page.goto(f"{server}/ui/runs/{ids['rich']}")
    main = page.locator("main")
    assert page.get_by_role("link", name=EXPERIMENT).first.is_visible()
    facts = page.locator("dl.facts").first.inner_text()
    assert ids["rich"] in facts and "finished" in facts
    params = page.locator("section", has=page.locator("#h-params"))
    assert params.locator("tr", has_text="hostile").locator("td").inner_text() == HOSTILE
    tags = page.locator("section", has=page.locator("#h-tags"))
    assert tags.locator("tr", has_text="note").locator("td").inner_text() == HOSTILE
    metrics = page.locator("section", has=page.locator("#h-metrics"))
    assert metrics.locator("table.kv tr", has_text=ODD_KEY).locator("td").first.inner_text() \
        == "0.25"
    charts = page.locator("[data-metric-chart]")
    assert charts.count() == 3
    assert sorted(charts.evaluate_all("els => els.map(e => e.dataset.key)")) == sorted(
        ["auc", "loss", ODD_KEY])
    assert charts.first.get_attribute("data-run") == ids["rich"]
    if (STATIC / "chart.js").is_file():  # drawn by the charts page's script, when present
        page.wait_for_selector(f"[data-metric-chart][data-key='{ODD_KEY}'][data-state=ready] canvas")
    assert page.get_by_role("link", name="child-run").is_visible()
    assert page.get_by_role("link", name="customers").get_attribute("href") == \
        "/ui/datasets/customers"
    assert page.get_by_role("link", name="churn-model").get_attribute("href") == \
        "/ui/models/churn-model"
    assert main.inner_text().count("{{7*7}}") >= 2 and not dialogs  # never evaluated
    page.get_by_role("link", name="child-run").click()
    page.wait_for_url(f"**/ui/runs/{ids['child']}")
    page.get_by_role("link", name="run-59").click()
    page.wait_for_url(f"**/ui/runs/{ids['rich']}")


def test_artifacts_browse_preview_and_download(
        server: str, page: Any, seeded: tuple[Workspace, dict[str, str]]) -> None:
    dialogs = dialogs_of(page)
    page.goto(f"{server}/ui/runs/{seeded[1]['rich']}#artifacts")
    artifacts = page.locator("#artifacts")
    assert "4 files" in artifacts.locator("h2").inner_text()
    artifacts.get_by_role("link", name="notes.txt", exact=True).click()
    text = page.locator("pre.artifact-text")
    assert text.inner_text() == "first line\n<b>not bold</b> {{7*7}}\n"
    with page.expect_download() as download:
        page.get_by_role("link", name="Download notes.txt").click()
    assert download.value.suggested_filename == "notes.txt"
    assert Path(download.value.path()).read_text().startswith("first line")
    # An HTML artifact is shown as its source, never rendered.
    page.goto(f"{server}/ui/runs/{seeded[1]['rich']}?path=page.html#artifacts")
    assert page.locator("pre.artifact-text").inner_text() == \
        "<html><script>alert(1)</script></html>"
    page.locator("#artifacts").get_by_role("link", name="artifacts", exact=True).click()
    page.locator("#artifacts").get_by_role("link", name="plots/", exact=True).click()
    page.wait_for_url(re.compile(r".*path=plots.*"))
    page.locator("#artifacts").get_by_role("link", name="red.png", exact=True).click()
    image = page.get_by_role("img", name="plots/red.png")
    image.wait_for()
    # Polled from here, not by a predicate run in the page: the page's CSP (script-src
    # 'self') refuses the eval a wait_for_function string needs.
    from playwright.sync_api import expect

    expect(page.locator("img.artifact-image")).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") == 2
    page.locator("#artifacts").get_by_role("link", name="plots", exact=True).click()
    page.locator("#artifacts").get_by_role("link", name="vector.svg", exact=True).click()
    assert "onload" in page.locator("pre.artifact-text").inner_text()  # text, not an image
    assert not dialogs


# ------------------------------------------------------------------------ permissions
@pytest.fixture(scope="module")
def team(seeded: tuple[Workspace, dict[str, str]]) -> Iterator[tuple[str, str]]:
    """Sign-in required; a reader who may read every experiment but the hostile one."""
    workspace = seeded[0]
    token = issue_token(workspace, "rita", "reader")
    workspace.stores.auth.grant("rita", "experiment", HOSTILE, "none")
    with dashboard(workspace, auth=True) as url:
        yield url, token


def test_a_reader_without_read_on_the_experiment_gets_403(
        team: tuple[str, str], watched: Watched, seeded: tuple[Workspace, dict[str, str]]
) -> None:
    url, token = team
    page = watched.page
    watched.expect_status(403)
    sign_in(page, url, token)
    allowed = page.goto(table_url(url))
    assert allowed is not None and allowed.status == 200
    hostile_run = f"{url}/ui/runs/{seeded[1]['hostile']}"
    for target in (table_url(url, HOSTILE), hostile_run, f"{hostile_run}/artifact?path=x.txt"):
        answer = page.goto(target)
        assert answer is not None and answer.status == 403
        assert page.get_by_role("heading", level=1).inner_text() == "Forbidden"
        assert page.get_by_role("alert").is_visible()


# ------------------------------------------------------------------ without a browser
@pytest.fixture(scope="module")
def client(seeded: tuple[Workspace, dict[str, str]]) -> Iterator[TestClient]:
    with TestClient(dashboard_app(seeded[0], ServerOptions(auth=False))) as test_client:
        yield test_client


def test_downloads_are_attachments_and_only_raster_images_are_inline(
        client: TestClient, seeded: tuple[Workspace, dict[str, str]]) -> None:
    base = f"/ui/runs/{seeded[1]['rich']}/artifact"
    for path in ("page.html", "plots/vector.svg", "notes.txt"):
        for preview in ("", "&preview=1"):
            answer = client.get(f"{base}?path={quote(path)}{preview}")
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "application/octet-stream"
            assert answer.headers["content-disposition"].startswith("attachment;")
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert "sandbox" in answer.headers["content-security-policy"]
    image = client.get(f"{base}?path=plots/red.png&preview=1")
    assert image.headers["content-type"] == "image/png" and image.content == png_bytes()
    assert image.headers["content-disposition"].startswith("inline;")
    assert image.headers["x-content-type-options"] == "nosniff"
    assert client.get(f"{base}?path=plots/red.png").headers["content-disposition"].startswith(
        "attachment;")
    assert client.get(f"{base}?path=plots").status_code == 404  # a folder is not a file
    assert client.get(f"{base}?path=../etc/passwd").status_code == 422
    assert client.get(f"{base}?path=nope.txt").status_code == 404
    assert client.get("/ui/runs/0123456789abcdef/artifact?path=x").status_code == 404
    assert client.get("/ui/runs/0123456789abcdef").status_code == 404


def test_bad_table_parameters_are_explained_not_500(client: TestClient) -> None:
    base = f"/ui/experiments/{quote(EXPERIMENT, safe='')}"
    answer = client.get(f"{base}?size=7&sort=attributes.nope&columns=weights.x,metrics.auc")
    assert answer.status_code == 200
    assert "page size &#39;7&#39; is not one of 50, 100, 200" in answer.text
    assert "cannot sort by &#39;attributes.nope&#39;" in answer.text
    assert "column &#39;weights.x&#39; is not metrics.&lt;key&gt;" in answer.text
    wrong = client.get(f"{base}?page=bm90LWEtdG9rZW4=")
    assert wrong.status_code == 200 and "page_token" in wrong.text
    assert client.get("/ui/experiments/no-such-experiment").status_code == 404


def test_a_wide_experiment_gets_capped_default_columns(tmp_path: Path) -> None:
    workspace = local_workspace(tmp_path)
    with use(workspace):
        for _ in range(2):
            with ratchet.start_run(experiment="wide"):
                ratchet.log_metrics({f"m{k:05d}": float(k) for k in range(3_000)})
                ratchet.log_params({f"p{k:03d}": k for k in range(50)})
    with TestClient(dashboard_app(workspace, ServerOptions(auth=False))) as test_client:
        answer = test_client.get("/ui/experiments/wide")
    assert answer.status_code == 200
    headers = re.findall(r'data-sort="((?:metrics|params)\.[^"]+)"', answer.text)
    assert len(headers) == DEFAULT_METRICS + DEFAULT_PARAMS
    assert headers[0] == "metrics.m00000" and headers[-1] == f"params.p{DEFAULT_PARAMS - 1:03d}"
    chooser = re.search(r'<script type="application/json" id="runs-chooser">(.*?)</script>',
                        answer.text, re.S)
    assert chooser is not None
    offered = json.loads(chooser.group(1))["keys"]
    assert sum(key.startswith("metrics.") for key in offered) == 3_000 and len(offered) == 3_050


def test_previous_walks_back_through_several_pages(tmp_path: Path) -> None:
    workspace = local_workspace(tmp_path)
    with use(workspace):
        for i in range(120):
            with ratchet.start_run(experiment="long", name=f"r{i:03d}"):
                ratchet.log_metric("auc", i / 1000)

    def visit(target: str) -> tuple[list[str], str | None, str | None]:
        text = test_client.get(target).text
        names = re.findall(r'tabindex="-1">(r\d+)</a>', text)
        links = {rel: re.search(rf'href="([^"]+)" rel="{rel}"', text) for rel in ("next", "prev")}
        follow = {rel: html.unescape(m.group(1)) if m else None for rel, m in links.items()}
        return names, follow["next"], follow["prev"]

    with TestClient(dashboard_app(workspace, ServerOptions(auth=False))) as test_client:
        first, to_second, back = visit("/ui/experiments/long?sort=metrics.auc&dir=asc")
        assert first[0] == "r000" and len(first) == 50 and back is None and to_second
        second, to_third, _ = visit(to_second)
        assert second[0] == "r050" and to_third
        third, beyond, to_second_again = visit(to_third)
        assert third == [f"r{i:03d}" for i in range(100, 120)] and beyond is None
        assert to_second_again
        again, _, to_first = visit(to_second_again)
        assert again == second and to_first
        assert visit(to_first)[0] == first
