"""Benchmark ``ui``: ratchet's dashboard vs the MLflow UI on the same data, same Chromium.

    .venv/bin/python bench/ui_bench.py                    # 100,000 runs (data cached)
    .venv/bin/python bench/ui_bench.py --small            # 1,000 runs, 10,000 steps
    .venv/bin/python bench/ui_bench.py --runs 20000 --only ratchet --reps 5

Prints one JSON document on stdout (progress on stderr; also written to
``bench/results/ui.json``). The data: ``bench/ui_data.py`` (ratchet, through its store
API) and ``bench/ui_mlflow_load.py`` (MLflow, in ``bench/.venv-mlflow-ui``), both cached
under ``bench/.cache/ui``. Each tool's server runs in its own process group on a free
127.0.0.1 port with its defaults (``ratchet server``: one uvicorn worker; ``mlflow
server``: its default uvicorn workers), and each page is opened in Debian's Chromium
(``/usr/bin/chromium``, Playwright, headless, 1400x900, a fresh browser context = empty
cache for every load, after one unmeasured warm-up load of the same page):

- ``runs_first``: the experiment's runs table, first load (ratchet ``/ui/experiments/
  bench-ui``; MLflow ``#/experiments/<id>``);
- ``runs_filtered``: the same table filtered by ``ui_data.FILTER`` and sorted by
  ``ui_data.ORDER_BY`` (the first row checked against the expected run);
- ``chart``: the run with a 1,000,000-step ``loss`` (ratchet ``/ui/runs/<id>``; MLflow
  the run's *Model metrics* tab);
- ``compare``: the 100 compare runs (ratchet ``/ui/compare?run=..``; MLflow
  ``#/compare-runs?runs=[..]``).

Per load, measured in the page (``performance.now()``, 0 = navigation start):
``ready_ms`` = the page's content is there (rows of the table visible; the chart drawn
with its data; the compare page's charts and tables), polled every animation frame;
``tti_ms`` = time to interactive = the latest of ``ready_ms``, the end of the last
network response and the end of the last long task (>50 ms main-thread task) once the
network has been quiet for 500 ms. Same definition for both tools.

``server_ms``: the page's HTTP requests (the document and every XHR/fetch the page
made, as captured from the browser; not scripts, styles, images or fonts) replayed
``--server-reps`` times in sequence over one keep-alive connection with ``http.client``;
per repetition the sum of their times (send to last body byte); p50 and p95.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import ui_data  # noqa: E402

CACHE = BENCH / ".cache" / "ui"
RESULTS = BENCH / "results" / "ui.json"
MLFLOW_VENV = BENCH / ".venv-mlflow-ui"
MLFLOW_REQUIREMENTS = ["mlflow==3.17.2"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
VIEWPORT = {"width": 1400, "height": 900}
DROPPED_PREFIXES = ("RATCHET_", "MLFLOW_", "UVICORN_", "WEB_CONCURRENCY", "GUNICORN_")
READY_TIMEOUT_S = 300
PAGE_TIMEOUT_MS = 120_000  # a page not ready by then is reported as timed out
PAGE_TIMEOUT = [PAGE_TIMEOUT_MS]  # --page-timeout
QUIET_S = 0.5
STUCK_S = 10.0
GOALS = {"server_ms": 150.0, "tti_ms": 1500.0, "chart_ms": 1000.0, "compare_ms": 2000.0}

# Recorded in every page before its own scripts: long tasks, and room for every
# resource timing entry (the default buffer keeps 250).
INIT_SCRIPT = """
window.__bench = {longtasks: []};
performance.setResourceTimingBufferSize(100000);
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__bench.longtasks.push([e.startTime, e.duration]);
  }).observe({type: 'longtask', buffered: true});
} catch (e) {}
"""
IDLE_SCRIPT = """() => {
  const res = performance.getEntriesByType('resource');
  const nav = performance.getEntriesByType('navigation')[0];
  const ends = res.map((e) => e.responseEnd).concat([nav ? nav.responseEnd : 0]);
  const lt = window.__bench ? window.__bench.longtasks : [];
  return {last_response_ms: Math.max(...ends),
          last_longtask_end_ms: lt.length ? Math.max(...lt.map(([s, d]) => s + d)) : 0,
          longtasks: lt.length, longtask_ms: lt.reduce((a, [, d]) => a + d, 0),
          resources: res.length,
          transfer_bytes: res.reduce((a, e) => a + (e.transferSize || 0), 0)
                          + (nav ? nav.transferSize || 0 : 0),
          dom_content_loaded_ms: nav ? nav.domContentLoadedEventEnd : null,
          load_ms: nav ? nav.loadEventEnd : null};
}"""
# JS helpers for the ready conditions: visible elements; a chart drawn with data (a
# plotted SVG line, or a canvas with coloured pixels: axes and grids are grey).
HELPERS = """
const vis = (el) => !!el && el.getClientRects().length > 0 &&
  getComputedStyle(el).visibility !== 'hidden';
const rows = (sel) => Array.from(document.querySelectorAll(sel)).filter(vis);
const coloured = (c) => {
  if (!vis(c) || !c.width || !c.height) return false;
  let ctx; try { ctx = c.getContext('2d', {willReadFrequently: true}); } catch (e) { return false; }
  if (!ctx) return false;
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < d.length; i += 4 * 7) {
    const [r, g, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
    if (a > 100 && Math.max(r, g, b) - Math.min(r, g, b) > 60) return true;
  }
  return false;
};
const svgLine = (root) => Array.from((root || document).querySelectorAll(
  'svg path.js-line, svg .scatterlayer path, svg .trace path')).some(
  (p) => (p.getAttribute('d') || '').length > 40);
const charted = (root) => svgLine(root) ||
  Array.from((root || document).querySelectorAll('canvas')).some(coloured);
"""


def log(message: str) -> None:
    print(f"[ui_bench] {message}", file=sys.stderr, flush=True)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return harness.child_env(DROPPED_PREFIXES, extra)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# --- servers ------------------------------------------------------------------------------


class Server:
    """One tool's server in its own process group."""

    def __init__(self, tool: str, cmd: list[str], env: dict[str, str], workdir: Path) -> None:
        self.tool, self.cmd, self.env, self.workdir = tool, cmd, env, workdir
        self.port = int(cmd[cmd.index("--port") + 1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{tool}-server.log"

    def start(self) -> float:
        with open(self.log_path, "ab") as out:
            started = time.perf_counter()
            self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.workdir, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        while time.perf_counter() - started < READY_TIMEOUT_S:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.tool} server exited ({self.proc.returncode}):\n"
                                   f"{self.log_tail()}")
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - started
            time.sleep(0.1)
        raise RuntimeError(f"{self.tool} server: no /health in {READY_TIMEOUT_S}s\n"
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        startup_s = server.start()
        log(f"{server.tool} server up on {server.base} in {startup_s:.1f}s")
        yield server
    finally:
        server.stop()


def ratchet_server(built: ui_data.Built, workdir: Path) -> Server:
    cmd = [str(REPO / ".venv" / "bin" / "ratchet"), "server", "--host", "127.0.0.1",
           "--port", str(free_port())]
    return Server("ratchet", cmd, child_env(built.env()), workdir)


def mlflow_server(manifest: dict[str, Any], workdir: Path) -> Server:
    cmd = [str(MLFLOW_VENV / "bin" / "mlflow"), "server", "--backend-store-uri",
           manifest["db_url"], "--default-artifact-root",
           Path(manifest["artifacts"]).as_uri(), "--host", "127.0.0.1",
           "--port", str(free_port())]
    # mlflow execs uvicorn and its job runner from its own venv's bin
    env = child_env({"PATH": f"{MLFLOW_VENV / 'bin'}{os.pathsep}{os.environ['PATH']}"})
    return Server("mlflow", cmd, env, workdir)


# --- pages --------------------------------------------------------------------------------


@dataclass
class Page:
    name: str
    path: str                   # after the server's base URL
    ready: str                  # a JS expression, true once the content is there
    check: str | None = None    # a JS expression returning text to check (first row...)
    expect: str | None = None   # ... which must contain this


@dataclass
class Load:
    ready_ms: float
    tti_ms: float
    idle: dict[str, Any]
    checked: str | None
    requests: list[dict[str, Any]] = field(default_factory=list)


def first_row_is(first_row_js: str, name: str) -> str:
    return f"({first_row_js}).includes({json.dumps(name)})"


def ratchet_pages(built: ui_data.Built) -> list[Page]:
    exp = urllib.parse.quote(ui_data.EXPERIMENT)
    sort_key, _, direction = ui_data.ORDER_BY.partition(" ")
    filtered = urllib.parse.urlencode({"filter": ui_data.FILTER, "sort": sort_key,
                                       "dir": direction.lower()})
    table = "rows('table[data-runs-table] tbody tr').length > 0"
    first = "(rows('table[data-runs-table] tbody tr')[0] || {}).textContent || ''"
    expected = ui_data.expected_page(built.runs, 1)[0]
    compare = "&".join(f"run={r}" for r in built.compare_run_ids)
    return [
        Page("runs_first", f"/ui/experiments/{exp}", table),
        # Ready once the first row is the expected run (not merely any row).
        Page("runs_filtered", f"/ui/experiments/{exp}?{filtered}",
             f"{table} && {first_row_is(first, expected)}", first, expected),
        Page("chart", f"/ui/runs/{built.history_run_id}",
             "document.querySelectorAll('[data-metric-chart][data-state=ready]').length > 0"
             " && charted(document.querySelector('[data-metric-chart]'))"),
        Page("compare", f"/ui/compare?{compare}",
             "document.querySelectorAll('[data-compare-chart][data-state=ready]').length >= 2"
             " && document.querySelectorAll('[data-parallel][data-state=ready]').length > 0"
             " && rows('table[data-diff] tbody tr').length > 0"),
    ]


def mlflow_pages(manifest: dict[str, Any]) -> list[Page]:
    ids = manifest["experiment_ids"]
    sort_key, _, direction = ui_data.ORDER_BY.partition(" ")
    kind, _, key = sort_key.partition(".")
    # The runs table's state in MLflow 3's URL (what its search box and sort menu set).
    filtered = urllib.parse.urlencode({
        "searchFilter": ui_data.FILTER, "orderByKey": f"{kind}.`{key}`",
        "orderByAsc": "true" if direction.upper() == "ASC" else "false"},
        quote_via=urllib.parse.quote)
    table = "rows('.ag-center-cols-container .ag-row').length > 0"
    first = ("Array.from(document.querySelectorAll('.ag-row[row-index=\"0\"]'))"
             ".map((r) => r.textContent).join(' ')")
    expected = ui_data.expected_page(manifest["runs"], 1)[0]
    runs = json.dumps(manifest["compare_run_ids"], separators=(",", ":"))
    experiments = json.dumps([ids[ui_data.COMPARE_EXPERIMENT]])
    compare_q = urllib.parse.urlencode({"runs": runs, "experiments": experiments},
                                       quote_via=urllib.parse.quote)
    last = json.dumps(f"compare-{manifest['compare_runs'] - 1:07d}")
    exp_runs = f"/#/experiments/{ids[ui_data.EXPERIMENT]}/runs"
    return [
        Page("runs_first", exp_runs, table),
        Page("runs_filtered", f"{exp_runs}?{filtered}",
             f"{table} && {first_row_is(first, expected)}", first, expected),
        Page("chart", f"/#/experiments/{ids[ui_data.HISTORY_EXPERIMENT]}/runs/"
                      f"{manifest['history_run_id']}/model-metrics",
             "charted(document.querySelector('main') || document)"),
        # Its parallel coordinates (plotly parcoords, WebGL: the axes' ticks are drawn
        # with the data) and the run details table down to the last run.
        Page("compare", f"/#/compare-runs?{compare_q}",
             "document.querySelectorAll('.js-plotly-plot .parcoords .tick').length > 0"
             f" && document.body.textContent.includes({last})"),
    ]


def load_page(browser: Any, base: str, page_def: Page) -> Load:
    """One load in a fresh context: ready, then network-quiet; what it measured."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.add_init_script(INIT_SCRIPT)
        inflight: dict[Any, float] = {}
        seen: list[Any] = []
        last = [time.monotonic()]

        def started(request: Any) -> None:
            inflight[request] = time.monotonic()
            seen.append(request)
            last[0] = time.monotonic()

        def ended(request: Any) -> None:
            inflight.pop(request, None)
            last[0] = time.monotonic()

        page.on("request", started)
        page.on("response", lambda response: ended(response.request))
        page.on("requestfinished", ended)
        page.on("requestfailed", ended)
        page.goto(base + page_def.path, wait_until="commit", timeout=PAGE_TIMEOUT[0])
        ready = page.wait_for_function(
            f"() => {{ {HELPERS} return ({page_def.ready}) ? performance.now() : false; }}",
            polling="raf", timeout=PAGE_TIMEOUT[0]).json_value()
        deadline = time.monotonic() + PAGE_TIMEOUT[0] / 1000
        while time.monotonic() < deadline:
            page.wait_for_timeout(100)
            now = time.monotonic()
            # A request open for STUCK_S is a long poll or a worker's script whose end
            # Playwright does not report (MLflow's telemetry worker): not page load.
            if all(now - t > STUCK_S for t in inflight.values()) and now - last[0] >= QUIET_S:
                break
        idle = page.evaluate(IDLE_SCRIPT)
        checked = None
        if page_def.check:
            checked = page.evaluate(f"() => {{ {HELPERS} return {page_def.check}; }}")
        tti = max(float(ready), float(idle["last_response_ms"]),
                  float(idle["last_longtask_end_ms"]))
        requests = [{"method": r.method, "url": r.url, "type": r.resource_type,
                     "body": r.post_data,
                     "content_type": r.headers.get("content-type")}
                    for r in seen if r.resource_type in ("document", "xhr", "fetch")]
        return Load(float(ready), tti, idle, checked, requests)
    finally:
        context.close()


def replay(base: str, requests: list[dict[str, Any]], reps: int) -> dict[str, Any]:
    """The page's own requests, again and again: the server's share of a page load."""
    port = urllib.parse.urlsplit(base).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PAGE_TIMEOUT[0] / 1000)
    totals: list[float] = []
    each: dict[str, list[float]] = {}
    statuses: dict[str, int] = {}
    try:
        for _ in range(reps):
            total = 0.0
            for r in requests:
                parts = urllib.parse.urlsplit(r["url"])
                target = parts.path + (f"?{parts.query}" if parts.query else "")
                headers = {"Accept": "*/*"}
                body = r["body"].encode() if r["body"] else None
                if body is not None:
                    headers["Content-Type"] = r["content_type"] or "application/json"
                started = time.perf_counter()
                conn.request(r["method"], target, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                spent = (time.perf_counter() - started) * 1000
                total += spent
                label = f"{r['method']} {target[:160]}"
                each.setdefault(label, []).append(spent)
                statuses[label] = resp.status
            totals.append(total)
    finally:
        conn.close()
    return {"p50_ms": percentile(totals, 0.5), "p95_ms": percentile(totals, 0.95),
            "reps": reps, "totals_ms": [round(t, 1) for t in totals],
            "requests": [{"request": label, "status": statuses[label],
                          "p50_ms": round(percentile(times, 0.5), 2)}
                         for label, times in each.items()]}


def measure_tool(tool: str, server: Server, pages: list[Page], reps: int,
                 server_reps: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            for page_def in pages:
                log(f"{tool} {page_def.name}: warm-up, then {reps} loads")
                try:
                    load_page(browser, server.base, page_def)  # unmeasured
                    loads = [load_page(browser, server.base, page_def) for _ in range(reps)]
                except Exception as exc:  # a page that never got ready: say so, go on
                    log(f"{tool} {page_def.name} FAILED: {exc}")
                    timed_out = "Timeout" in str(exc)
                    results[page_def.name] = {
                        "error": str(exc).splitlines()[0][:300],
                        # not ready after this long: a lower bound, not a measurement
                        "timed_out_after_ms": PAGE_TIMEOUT[0] if timed_out else None}
                    continue
                requests = loads[-1].requests
                log(f"{tool} {page_def.name}: ready {[round(ld.ready_ms) for ld in loads]} ms; "
                    f"replaying its {len(requests)} requests")
                try:
                    server_time = replay(server.base, requests, server_reps)
                except OSError as exc:  # a request slower than the page timeout
                    server_time = {"p50_ms": None, "p95_ms": None, "error": str(exc),
                                   "timed_out_after_ms": PAGE_TIMEOUT[0], "requests": []}
                ok = None
                if page_def.expect is not None:
                    ok = all(page_def.expect in (ld.checked or "") for ld in loads)
                results[page_def.name] = {
                    "url": page_def.path if len(page_def.path) < 300 else
                    page_def.path[:300] + "...",
                    "ready_ms_p50": statistics.median(ld.ready_ms for ld in loads),
                    "tti_ms_p50": statistics.median(ld.tti_ms for ld in loads),
                    "server_ms_p50": server_time["p50_ms"],
                    "server_ms_p95": server_time["p95_ms"],
                    "ready_ms": [round(ld.ready_ms, 1) for ld in loads],
                    "tti_ms": [round(ld.tti_ms, 1) for ld in loads],
                    "idle": loads[-1].idle,
                    "page_requests": len(requests),
                    "server": server_time,
                    "content_check": None if ok is None else {
                        "expected_in_first_row": page_def.expect, "pass": ok,
                        "first_row": (loads[-1].checked or "")[:300]},
                }
                log(f"{tool} {page_def.name}: ready p50 "
                    f"{results[page_def.name]['ready_ms_p50']:.0f} ms, TTI p50 "
                    f"{results[page_def.name]['tti_ms_p50']:.0f} ms, server p50 "
                    f"{server_time['p50_ms']} ms ({len(requests)} requests)")
        finally:
            browser.close()
    return results


# --- data ---------------------------------------------------------------------------------


def ensure_mlflow() -> dict[str, str | None]:
    pins = dict(r.split("==") for r in MLFLOW_REQUIREMENTS)
    python = MLFLOW_VENV / "bin" / "python"
    if not (python.exists() and harness.installed(python, list(pins), child_env()) == pins):
        log(f"installing {' '.join(MLFLOW_REQUIREMENTS)} into "
            f"{MLFLOW_VENV.relative_to(REPO)} (one-time)")
        harness.install_venv(MLFLOW_VENV, MLFLOW_REQUIREMENTS, child_env())
    return harness.installed(python, [*pins, "sqlalchemy", "uvicorn"], child_env())


def mlflow_data(args: argparse.Namespace) -> dict[str, Any]:
    cmd = [str(MLFLOW_VENV / "bin" / "python"), str(BENCH / "ui_mlflow_load.py"),
           str(args.cache), "--runs", str(args.runs), "--history-steps",
           str(args.history_steps), "--compare-runs", str(args.compare_runs)]
    out = subprocess.run(cmd, env=child_env(), stdout=subprocess.PIPE, text=True,
                         cwd=BENCH, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# --- main ---------------------------------------------------------------------------------


def checks(doc: dict[str, Any]) -> list[dict[str, Any]]:
    r = doc["tools"].get("ratchet", {})
    m = doc["tools"].get("mlflow", {})

    def get(side: dict[str, Any], page: str, key: str) -> float | None:
        value = side.get(page, {}).get(key)
        return None if value is None else float(value)

    out = []
    for page in ("runs_first", "runs_filtered"):
        out.append(harness.check(f"ratchet {page} server p50 ms", get(r, page, "server_ms_p50"),
                                 "<", GOALS["server_ms"]))
        out.append(harness.check(f"ratchet {page} time to interactive p50 ms",
                                 get(r, page, "tti_ms_p50"), "<", GOALS["tti_ms"]))
    sizes = doc["sizes"]
    out.append(harness.check(f"ratchet {sizes['history_steps']:,}-step chart visible p50 ms",
                             get(r, "chart", "ready_ms_p50"), "<", GOALS["chart_ms"]))
    out.append(harness.check(f"ratchet compare of {sizes['compare_runs']} runs p50 ms",
                             get(r, "compare", "ready_ms_p50"), "<", GOALS["compare_ms"]))
    for page in ("runs_first", "runs_filtered", "chart", "compare"):
        for key in ("server_ms_p50", "ready_ms_p50", "tti_ms_p50"):
            ratio = harness.ratio(get(m, page, key), get(r, page, key))
            if ratio is not None:
                doc.setdefault("ratios_mlflow_over_ratchet", {})[f"{page}.{key}"] = \
                    round(ratio, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=ui_data.DEFAULT_RUNS)
    parser.add_argument("--history-steps", type=int, default=ui_data.DEFAULT_HISTORY_STEPS)
    parser.add_argument("--compare-runs", type=int, default=ui_data.DEFAULT_COMPARE_RUNS)
    parser.add_argument("--small", action="store_true", help="1,000 runs, 10,000 steps")
    parser.add_argument("--reps", type=int, default=5, help="measured loads per page")
    parser.add_argument("--server-reps", type=int, default=20,
                        help="replays of a page's requests for server_ms")
    parser.add_argument("--only", choices=("ratchet", "mlflow"), action="append")
    parser.add_argument("--pages", action="append",
                        choices=("runs_first", "runs_filtered", "chart", "compare"))
    parser.add_argument("--workers", type=int, default=1, help="ui_data build processes")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--compact", action="store_true")
    parser.add_argument("--page-timeout", type=float, default=PAGE_TIMEOUT_MS / 1000,
                        help="seconds a page may take to be ready before it counts as "
                             "timed out")
    args = parser.parse_args(argv)
    PAGE_TIMEOUT[0] = int(args.page_timeout * 1000)
    if args.small:
        args.runs, args.history_steps, args.compare_runs = (
            ui_data.SMALL["runs"], ui_data.SMALL["history_steps"],
            ui_data.SMALL["compare_runs"])
    tools = args.only or ["ratchet", "mlflow"]
    # Stopped from outside: still stop the servers (``finally`` blocks run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    from run import git_commit, machine_info

    doc: dict[str, Any] = {
        "benchmark": "ui",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/ui_bench.py", *(argv if argv is not None
                                                     else sys.argv[1:])]),
        "sizes": {"runs": args.runs, "params": ui_data.N_PARAMS,
                  "metrics": ui_data.N_METRICS, "history_steps": args.history_steps,
                  "compare_runs": args.compare_runs, "reps": args.reps,
                  "server_reps": args.server_reps},
        "filter": ui_data.FILTER, "order_by": ui_data.ORDER_BY,
        "machine": machine_info(),
        "versions": {"ratchet_git_commit": git_commit(),
                     "ratchet": harness.installed(harness.ratchet_python(),
                                                  ["ratchet-mlops", "playwright"],
                                                  child_env()),
                     "chromium": _chromium_version()},
        "goals": GOALS, "data": {}, "tools": {},
    }
    pages_wanted = set(args.pages or ("runs_first", "runs_filtered", "chart", "compare"))
    workdir = Path(tempfile.mkdtemp(prefix="ratchet-ui-bench-"))
    try:
        if "ratchet" in tools:
            built = ui_data.build(args.cache, args.runs, history_steps=args.history_steps,
                                  compare_runs_n=args.compare_runs, workers=args.workers)
            doc["data"]["ratchet"] = {"home": built.home, "build_s": built.build_s,
                                      "phases_s": built.phases_s, "cached": built.cached}
            with running(ratchet_server(built, workdir)) as server:
                pages = [p for p in ratchet_pages(built) if p.name in pages_wanted]
                doc["tools"]["ratchet"] = measure_tool("ratchet", server, pages, args.reps,
                                                       args.server_reps)
        if "mlflow" in tools:
            doc["versions"]["mlflow_venv"] = ensure_mlflow()
            manifest = mlflow_data(args)
            doc["data"]["mlflow"] = {k: manifest.get(k) for k in (
                "home", "build_s", "phases_s", "cached", "runs_via", "api_runs_per_s")}
            with running(mlflow_server(manifest, workdir)) as server:
                pages = [p for p in mlflow_pages(manifest) if p.name in pages_wanted]
                doc["tools"]["mlflow"] = measure_tool("mlflow", server, pages, args.reps,
                                                      args.server_reps)
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    doc["checks"] = checks(doc)
    doc["total_s"] = round(time.perf_counter() - started, 1)
    harness.write_json(doc, args.out, args.compact)
    return 0


def _chromium_version() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True,
                             timeout=30)
        return out.stdout.strip() or None
    return None


if __name__ == "__main__":
    sys.exit(main())
