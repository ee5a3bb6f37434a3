"""Metric charts and compare page in Chromium: time until drawn. Prints JSON.

    .venv/bin/python bench/ui_charts_bench.py ROOT [--db URL] [--repeat 5]

Seeds (once, cached in ROOT or the given database): one run with ``loss`` over
1,000,000 steps (``log_batch`` in batches of 100,000) and 100 runs with 20 params and
``loss``/``accuracy`` over 1,000 steps each. Then, on a live dashboard (uvicorn in a
thread) and Debian's Chromium:

- ``history_api_ms``: the server's time for the 1M-step window (1,000 buckets);
- ``chart_ms``: from navigation start to the chart drawn (``data-state=ready``) on the
  run's page charting ``loss`` (``/ui/runs/ID?chart=loss``, a ``data-metric-chart``),
  measured in the page with ``performance.now()``;
- ``zoom_ms``: a zoom (a finer window fetched and drawn);
- ``compare_ms``: ``/ui/compare`` of the 100 runs until both overlays, the parallel
  coordinates and the diff table are there;
- ``server_cpu_ms``: the CPU time the server spends on the 1M-step window, the compare
  page and one compare overlay (in-process), which a busy machine does not inflate.

Medians of ``--repeat`` page loads (a fresh browser context each). Loopback only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEPS = 1_000_000
RUNS = 100


def seed(workspace: Any) -> dict[str, Any]:
    import ratchet
    from ratchet.workspace import use

    tracking = workspace.stores.tracking
    found = tracking.find_experiment("bench-charts")
    if found is not None:
        runs, _ = tracking.search_runs([found.experiment_id], max_results=1000)
        history = next(r.run_id for r in runs if r.name == "history")
        compared = sorted(r.run_id for r in runs if r.name.startswith("trial"))
        return {"history": history, "compare": compared, "seeded_s": None}
    started = time.perf_counter()
    with use(workspace):
        with ratchet.start_run(experiment="bench-charts", name="history") as run:
            history = run.info.run_id if hasattr(run, "info") else run.run_id
            for lo in range(0, STEPS, 100_000):
                ratchet.log_batch([("loss", math.exp(-s / 200_000) + 0.05 * math.sin(s),
                                    s, 1_000 + s) for s in range(lo, lo + 100_000)])
        compared = []
        for i in range(RUNS):
            with ratchet.start_run(experiment="bench-charts", name=f"trial {i:03d}") as run:
                ratchet.log_params({f"p{j}": (i * (j + 3)) % 17 for j in range(20)})
                ratchet.log_batch([(key, math.exp(-s / (100 + i)) + (0.01 * i if key == "loss"
                                                                    else 0.5), s, s)
                                   for key in ("loss", "accuracy") for s in range(1000)])
                compared.append(run.info.run_id if hasattr(run, "info") else run.run_id)
    return {"history": history, "compare": sorted(compared),
            "seeded_s": round(time.perf_counter() - started, 1)}


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in ROOT)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS, dashboard

    from ratchet.config import Settings
    from ratchet.workspace import Workspace

    args.root.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(Settings(
        home=args.root / ".ratchet", artifacts_uri=str(args.root / "artifacts"),
        db_url=args.db or f"sqlite:///{args.root / 'ratchet.db'}"))
    ids = seed(workspace)
    tracking = workspace.stores.tracking
    api = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        tracking.metric_window(ids["history"], "loss", points=1000)
        api.append((time.perf_counter() - started) * 1000)
    server_cpu = server_cpu_ms(workspace, ids, args.repeat)
    chart, zoom, compare = [], [], []
    with dashboard(workspace) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        for _ in range(args.repeat):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(f"{url}/ui/runs/{ids['history']}?chart=loss", wait_until="commit")
            page.locator("[data-metric-chart][data-state=ready]").wait_for(timeout=60_000)
            chart.append(page.evaluate("performance.now()"))
            context.close()
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(f"{url}/ui/compare?" + "&".join(f"run={r}" for r in ids["compare"]),
                      wait_until="commit")
            for i in range(2):
                page.locator("[data-compare-chart][data-state=ready]").nth(i).wait_for(
                    timeout=60_000)
            page.locator("[data-parallel][data-state=ready]").wait_for()
            page.locator("table[data-diff]").wait_for()
            compare.append(page.evaluate("performance.now()"))
            context.close()
        zoom = measure_zoom(browser, url, ids["history"], args.repeat)
        browser.close()
    print(json.dumps({
        "database": workspace.stores.tracking.db.dialect, "steps": STEPS, "compare_runs": RUNS,
        "seeded_s": ids["seeded_s"], "history_api_ms": median(api),
        "chart_ms": median(chart), "zoom_ms": median(zoom), "compare_ms": median(compare),
        "server_cpu_ms": server_cpu,
        "load_average": [round(v, 1) for v in os.getloadavg()],
        "samples": {"history_api_ms": [round(v, 1) for v in api],
                    "chart_ms": [round(v, 1) for v in chart],
                    "zoom_ms": [round(v, 1) for v in zoom],
                    "compare_ms": [round(v, 1) for v in compare]},
    }, indent=2))


def server_cpu_ms(workspace: Any, ids: dict[str, Any], repeat: int) -> dict[str, float]:
    """CPU time of this process per request (in-process client): what the server spends
    whatever else the machine is doing (wall times above include waiting for a core)."""
    from fastapi.testclient import TestClient

    from ratchet.server.app import ServerOptions
    from ratchet.ui import dashboard_app

    client = TestClient(dashboard_app(workspace, ServerOptions(auth=False)))
    runs = "&".join(f"run={r}" for r in ids["compare"])
    urls = {"history_metric_api": f"/ui/api/runs/{ids['history']}/metric?key=loss&points=1400",
            "compare_page": f"/ui/compare?{runs}",
            "compare_overlay_api": f"/ui/api/compare/metric?key=loss&points=300&{runs}"}
    found = {}
    for name, url in urls.items():
        spent = []
        for _ in range(repeat):
            started = time.process_time()
            assert client.get(url).status_code == 200
            spent.append((time.process_time() - started) * 1000)
        found[name] = median(spent)
    return found


def measure_zoom(browser: Any, url: str, run_id: str, repeat: int) -> list[float]:
    """A drag-select on the chart until the finer window is drawn."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/ui/compare?run={run_id}&key=loss")
    chart = page.locator("[data-compare-chart]")
    chart.and_(page.locator("[data-state=ready]")).wait_for(timeout=60_000)
    # The compare overlay is drawn by ratchetCharts.lines; add a metric chart to zoom.
    page.evaluate("""([run]) => {
        const el = document.createElement("div");
        el.className = "chart"; el.id = "zoomed";
        document.querySelector("main").prepend(el);
        window.ratchetCharts.metric(el, run, "loss");
    }""", [run_id])
    zoomed = page.locator("#zoomed")
    page.locator("#zoomed[data-state=ready]").wait_for(timeout=60_000)
    times = []
    for i in range(repeat):
        window = zoomed.get_attribute("data-window")
        box = zoomed.locator(".u-over").bounding_box()
        left = 0.2 + 0.1 * i
        started = page.evaluate("performance.now()")
        page.mouse.move(box["x"] + box["width"] * left, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * (left + 0.1), box["y"] + 60, steps=3)
        page.mouse.up()
        page.locator(f"#zoomed[data-state=ready]:not([data-window='{window}'])").wait_for(
            timeout=60_000)
        times.append(page.evaluate("performance.now()") - started)
        zoomed.locator(".u-over").dblclick()
        page.locator("#zoomed[data-state=ready][data-window^='0:']").wait_for(timeout=60_000)
    context.close()
    return times


if __name__ == "__main__":
    main()
