"""Accessibility basics on every area's main pages, in Chromium: a language, one h1, a
main landmark, a name for every control, alt text for images, header cells in tables,
a text alternative for every chart; and the runs table reachable by keyboard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import ratchet
from ratchet.workspace import Workspace, use
from tests.ui.browser import Watched, dashboard, local_workspace

# Runs in the page: what a screen reader or keyboard user would miss, one line each.
CHECK = """() => {
  const problems = [];
  const said = el => el.outerHTML.slice(0, 140);
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
  if (!document.querySelector("main")) problems.push("no main landmark");
  for (const el of document.querySelectorAll(
      "input:not([type=hidden]), select, textarea, button")) {
    const name = (el.labels && el.labels.length && el.labels[0].textContent.trim())
      || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || el.title
      || (el.tagName === "BUTTON" && el.textContent.trim());
    if (!name) problems.push("control without a name: " + said(el));
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) problems.push("image without alt: " + said(img));
  }
  for (const table of document.querySelectorAll("table")) {
    if (!table.querySelector("th")) problems.push("table without header cells: " + said(table));
  }
  for (const svg of document.querySelectorAll("main svg")) {
    if (svg.closest("[aria-hidden=true]") || svg.closest("a, button, [role=img] svg")) continue;
    const labelled = svg.getAttribute("role") === "img" && (svg.getAttribute("aria-label")
      || svg.getAttribute("aria-labelledby") || svg.querySelector("title"));
    if (!labelled && !svg.closest("[role=img][aria-label]")) {
      problems.push("chart without a text alternative: " + said(svg));
    }
  }
  return problems;
}"""


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, str]]:
    workspace = local_workspace(tmp_path_factory.mktemp("a11y"))
    X, y = load_iris(return_X_y=True, as_frame=True)
    with use(workspace):
        for C in (0.5, 1.0):
            with ratchet.start_run(experiment="iris") as run:
                ratchet.data.log(X.assign(species=y), "iris-train", role="train")
                ratchet.log_params({"C": C})
                for step in range(5):
                    ratchet.log_metric("loss", 1 / (step + C), step=step)
                ratchet.log_model(LogisticRegression(C=C, max_iter=300).fit(X, y), name="iris",
                                  input_example=X.head(3))
        ratchet.models.set_alias("iris", "champion", version=1)
    yield workspace, run.id


PAGES = ["/ui/", "/ui/experiments/iris", "/ui/runs/{run}", "/ui/models", "/ui/models/iris",
         "/ui/models/iris?version=1", "/ui/datasets", "/ui/datasets/iris-train",
         "/ui/datasets/iris-train/1", "/ui/pipelines", "/ui/deployments", "/ui/loop"]


def test_every_main_page_passes_the_basic_checks(seeded: tuple[Workspace, str],
                                                 watched: Watched) -> None:
    workspace, run_id = seeded
    page = watched.page
    found: dict[str, list[str]] = {}
    with dashboard(workspace) as url:
        for path in PAGES:
            page.goto(url + path.format(run=run_id))
            page.wait_for_load_state("networkidle")
            problems = page.evaluate(CHECK)
            if problems:
                found[path] = problems
    assert not found, "\n".join(f"{path}: {p}" for path, ps in found.items() for p in ps)


def test_the_runs_table_is_one_tab_stop_with_arrow_keys(seeded: tuple[Workspace, str],
                                                        page: Any) -> None:
    workspace, _ = seeded
    with dashboard(workspace) as url:
        page.goto(f"{url}/ui/experiments/iris")
        rows = page.locator("tbody tr[tabindex]")
        assert rows.count() == 2
        rows.first.focus()
        page.keyboard.press("ArrowDown")
        focused = page.evaluate("document.activeElement.tagName + ':' + "
                                "document.activeElement.getAttribute('tabindex')")
        assert focused == "TR:0"
        assert page.locator("tbody tr[tabindex='0']").count() == 1  # roving tab stop
        headers = page.locator("thead th")
        assert all(headers.nth(i).get_attribute("scope") == "col"
                   for i in range(headers.count()))
