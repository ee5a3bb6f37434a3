"""The HTML report: every section and its numbers, well-formed and offline (plotly.js inlined
once, no network sources), escaping of every user string, and sentences for missing parts."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly
import plotly.offline
import pytest

from ratchet.errors import InvalidInput
from ratchet.monitoring import dataset_drift
from ratchet.monitoring.drift import binned_counts, category_counts, numeric_bins
from ratchet.monitoring.histograms import column_histogram
from ratchet.monitoring.multivariate_drift import classifier_drift
from ratchet.monitoring.report_html import ESTIMATE_NOTE, render_report

RNG = np.random.default_rng(7)
EVIL = "<script>alert('x')</script>"
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}
NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"([^"]+)",\s*')
PLOTLY_JS_START = plotly.offline.get_plotlyjs()[:200]


class Page(HTMLParser):
    """Tags must nest and close; records scripts, figure divs and network references."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.scripts: list[str] = []
        self.figures: list[str] = []
        self.sources: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed {self.stack}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.sources += [f"{tag} {k}={v}" for k, v in attrs if k in ("src", "href") and v]
        if tag == "div" and "plotly-graph-div" in (values.get("class") or ""):
            self.figures.append(values.get("id") or "")
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def figure(page: str, div_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The data and layout that a figure's script hands to Plotly.newPlot(id, data, layout)."""
    decoder = json.JSONDecoder()
    call = NEW_PLOT.search(page, page.index(f'id="{div_id}"'))
    assert call is not None and call.group(1) == div_id
    data, end = decoder.raw_decode(page, call.end())
    comma = re.compile(r"\s*,\s*").match(page, end)
    assert comma is not None
    layout, _ = decoder.raw_decode(page, comma.end())
    return data, layout


def caption(page: str, div_id: str) -> str:
    """The HTML caption above a figure (its title, outside plotly's canvas)."""
    div = page.index(f'id="{div_id}"')
    start = page.rindex("<figure>\n<figcaption>", 0, div) + len("<figure>\n<figcaption>")
    end = page.index("</figcaption>", start)
    assert end < div and "</figure>" not in page[start:div]
    return page[start:end]


# ----------------------------------------------------------------------------- fixtures
def frames(n: int = 600, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({
        "age": RNG.normal(40 + shift, 10, n),
        "plan": RNG.choice(["basic", "pro", "team"], n,
                           p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5]),
        "tenure": RNG.exponential(12, n),
        "prediction": RNG.choice(["stay", "churn"], n, p=[0.8, 0.2])})


def distributions(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """age as the monitor records it now (equal-width bins, values beyond the range
    counted); plan as aligned category counts; tenure as results written before equal-width
    bins recorded it (full edges at the reference's quantiles: unequal widths)."""
    inner = numeric_bins(reference["tenure"].to_numpy())
    full = [float(reference["tenure"].min()), *inner.tolist(),
            float(reference["tenure"].max())]
    cats = pd.unique(pd.concat([reference["plan"], current["plan"]]))
    ref_cat, cur_cat = category_counts(reference["plan"], current["plan"])
    return {
        "age": column_histogram(reference["age"], current["age"], numeric=True),
        "plan": {"kind": "categorical", "categories": list(cats),
                 "reference": ref_cat.tolist(), "current": cur_cat.tolist()},
        "tenure": {"kind": "numeric", "edges": full,
                   "reference": binned_counts(reference["tenure"].to_numpy(), inner).tolist(),
                   "current": binned_counts(current["tenure"].to_numpy(), inner).tolist()}}


def quality() -> dict[str, Any]:
    return {"rows": 600, "issues": 3, "missing_columns": ["region"], "extra_columns": [],
            "columns": [
                {"column": "age", "missing": 12, "missing_rate": 0.02, "out_of_range": 2,
                 "unknown_categories": 0, "type_violations": 0, "null_violations": 0,
                 "reference_missing_rate": 0.005,
                 "issues": ["missing rate 2.0% (reference 0.5%)",
                            "2 values outside [18, 99]"]},
                {"column": "plan", "missing": 0, "missing_rate": 0.0, "out_of_range": 0,
                 "unknown_categories": 0, "type_violations": 0, "null_violations": 0,
                 "reference_missing_rate": 0.0, "issues": []}]}


def performance(accuracy: float, labeled: int = 321) -> dict[str, Any]:
    return {"task": "classification", "labeled": labeled,
            "metrics": {"accuracy": accuracy, "f1": accuracy - 0.1, "roc_auc": None,
                        "n": labeled},
            "estimated": {"accuracy": accuracy + 0.02, "f1": accuracy - 0.07,
                          "estimated": True, "note": "assumes calibrated probabilities"}}


def monitor_result(end: str = "2026-11-22T23:00:00+00:00", *, shift: float = 8.0,
                   accuracy: float = 0.81) -> dict[str, Any]:
    reference, current = frames(), frames(shift=shift)
    drift = dataset_drift(reference, current, prediction="prediction").to_dict()
    drift["multivariate"] = classifier_drift(reference, current, columns=["age", "plan"],
                                             sample=300).to_dict()
    return {
        "deployment": "churn", "created_at": end,
        "window": {"start": end.replace("T23", "T22"), "end": end},
        "model": {"name": "churn", "version": 3},
        "reference": {"dataset": "churn-train", "version": 2, "rows": 5000},
        "rows": 1234, "verdict": "drift+degraded", "drift": drift, "quality": quality(),
        "performance": performance(accuracy),
        "distributions": distributions(reference, current)}


@pytest.fixture(scope="module")
def history() -> list[dict[str, Any]]:
    return [monitor_result(f"2026-11-22T{h:02d}:00:00+00:00", shift=0.0, accuracy=0.9)
            for h in (20, 21)] + [monitor_result("2026-11-22T22:00:00+00:00", shift=3.0)]


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return monitor_result()


# Distributions (3) + drift share + multivariate AUC + accuracy + f1 + rows/labeled.
EXPECTED_FIGURES = 3 + 2 + 2 + 1


# ----------------------------------------------------------------------------- tests
def test_every_section_and_its_numbers_appear(result: dict[str, Any],
                                              history: list[dict[str, Any]]) -> None:
    page = Page(render_report(result, history))
    text = page.plain
    for needle in ("Deployment churn", "churn version 3", "drift+degraded", "1,234",
                   "churn-train version 2 (5,000 rows)",
                   "2026-11-22T22:00:00+00:00 to 2026-11-22T23:00:00+00:00",
                   "Over time (4 results)", "Multivariate drift",
                   f"ROC AUC {result['drift']['multivariate']['auc']:.4g}",
                   "3 issue(s) in 600 rows", "region", "2 values outside [18, 99]",
                   "Realized metrics from 321 labeled rows", "assume calibrated probabilities"):
        assert needle in text, needle
    drift = result["drift"]
    assert drift["drifted_columns"]
    assert f"{len(drift['drifted_columns'])} of 3 columns drifted" in text
    for column in drift["columns"]:
        assert f"{column['statistic']:.4g}" in text
        assert f"{column['p_value']:.4g}" in text          # small samples: KS / chi-square
    assert "prediction: prediction" in text
    assert "0.81" in text and "0.83" in text and "0.71" in text    # realized vs estimated
    assert ESTIMATE_NOTE in text
    assert "2.0%" in text and "0.5%" in text                        # missing rates


def test_page_is_well_formed_offline_and_inlines_plotly_once(
        result: dict[str, Any], history: list[dict[str, Any]], tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_report(result, history), encoding="utf-8")
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    assert page.errors == []
    assert html.startswith("<!DOCTYPE html>")
    assert [s for s in page.sources if "http" in s or "//" in s] == []
    assert "<script src" not in html.lower() and "<link" not in html.lower()
    assert sum(s.lstrip().startswith(PLOTLY_JS_START.strip()) for s in page.scripts) == 1
    assert html.count(PLOTLY_JS_START) == 1
    assert len(page.figures) == EXPECTED_FIGURES
    assert page.figures == [f"ratchet-plot-{i}" for i in range(1, EXPECTED_FIGURES + 1)]
    assert len(page.scripts) == 1 + EXPECTED_FIGURES               # plotly.js + one per plot
    # Outside plotly.js nothing names a server: no logo, no cloud button, no MathJax.
    figure_scripts = "".join(s for s in page.scripts if "Plotly.newPlot" in s)
    assert "http" not in figure_scripts
    assert '"displaylogo": false' in figure_scripts
    assert '"showSendToCloud": false' in figure_scripts
    assert '"typesetMath": false' in figure_scripts
    assert "MathJax" not in html.replace(plotly.offline.get_plotlyjs(), "")


def test_distribution_plots_show_shares_of_reference_and_current(result: dict[str, Any]
                                                                 ) -> None:
    html = render_report(result)
    dists = result["distributions"]
    for i, name in enumerate(dists, start=1):
        data, layout = figure(html, f"ratchet-plot-{i}")
        assert [t["name"] for t in data] == ["reference", "current"]
        # The title is an HTML caption above the plot, not in plotly's canvas where the
        # toolbar (top right) covers it.
        assert "title" not in layout and caption(html, f"ratchet-plot-{i}").startswith(name)
    # age: equal-width bins overlaid on a numeric axis; the shares count every value, those
    # beyond the plotted range too, and the caption says how many those are.
    age, age_layout = figure(html, "ratchet-plot-1")
    spec = dists["age"]
    edges = np.asarray(spec["edges"])
    assert np.allclose(np.diff(edges), edges[1] - edges[0])
    assert age[0]["x"] == pytest.approx(((edges[:-1] + edges[1:]) / 2).tolist())
    assert age[0]["width"] == pytest.approx(np.diff(edges).tolist())
    assert age_layout["barmode"] == "overlay" and age_layout["yaxis"]["tickformat"] == ".0%"
    for trace, side in zip(age, ("reference", "current"), strict=True):
        counts = np.asarray(spec[side], dtype=float)
        total = counts.sum() + sum(spec["outside"][side])
        assert trace["y"] == pytest.approx((counts / total).tolist())
    beyond = sum(spec["outside"]["reference"])
    assert beyond > 0 and f"{beyond} reference values" in caption(html, "ratchet-plot-1")
    # plan: categories side by side, shares summing to one.
    plan, plan_layout = figure(html, "ratchet-plot-2")
    assert plan[0]["x"] == dists["plan"]["categories"]
    assert plan_layout["xaxis"]["type"] == "category"
    for trace, side in zip(plan, ("reference", "current"), strict=True):
        counts = np.asarray(dists["plan"][side], dtype=float)
        assert trace["y"] == pytest.approx((counts / counts.sum()).tolist())
    # tenure, an older result's unequal bins: densities, so a wide tail bin is not a slab.
    tenure, tenure_layout = figure(html, "ratchet-plot-3")
    full = np.asarray(dists["tenure"]["edges"])
    counts = np.asarray(dists["tenure"]["reference"], dtype=float)
    assert tenure[0]["x"][0] == pytest.approx((full[0] + full[1]) / 2)
    assert tenure[0]["y"] == pytest.approx((counts / counts.sum() / np.diff(full)).tolist())
    assert tenure_layout["yaxis"]["title"]["text"] == "share of rows per unit"


def test_over_time_plots_follow_the_history(result: dict[str, Any],
                                            history: list[dict[str, Any]]) -> None:
    html = render_report(result, history)
    share, share_layout = figure(html, "ratchet-plot-4")
    assert share[0]["x"] == [f"2026-11-22 {h}:00:00" for h in (20, 21, 22, 23)]
    assert share[0]["y"] == [r["drift"]["share"] for r in [*history, result]]
    assert share_layout["shapes"][0]["y0"] == result["drift"]["drift_share"]
    auc, _ = figure(html, "ratchet-plot-5")
    assert auc[0]["y"] == [r["drift"]["multivariate"]["auc"] for r in [*history, result]]
    accuracy, _ = figure(html, "ratchet-plot-6")
    assert caption(html, "ratchet-plot-6") == "accuracy"
    assert [t["name"] for t in accuracy] == ["realized", "estimated"]
    assert accuracy[0]["y"] == [0.9, 0.9, 0.81, 0.81]
    assert accuracy[1]["y"] == pytest.approx([0.92, 0.92, 0.83, 0.83])
    rows, _ = figure(html, "ratchet-plot-8")
    assert rows[1]["y"] == [321] * 4


def test_every_user_string_is_escaped(result: dict[str, Any]) -> None:
    evil = copy.deepcopy(result)
    evil["deployment"] = "<b>churn</b>"
    evil["verdict"] = "<i>odd</i>"
    evil["drift"]["columns"][0]["column"] = EVIL
    evil["distributions"] = {EVIL: evil["distributions"]["plan"]}
    evil["distributions"][EVIL]["categories"][0] = "</script><img src=x onerror=alert(1)>"
    evil["quality"]["columns"][0].update(column=EVIL, issues=["<img src=x onerror=alert(2)>"])
    evil["quality"]["missing_columns"] = ["<u>region</u>"]
    evil["performance"]["estimated"]["note"] = "<a href='http://evil.example'>note</a>"
    html = render_report(evil, title="</title><h1>owned")
    page = Page(html)
    assert page.errors == []
    ours = html.replace(plotly.offline.get_plotlyjs(), "")      # plotly.js holds its own tags
    for raw in (EVIL, "<b>churn</b>", "<i>odd</i>", "<img", "<u>region", "<a href", "<h1>owned"):
        assert raw not in ours, raw
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in ours
    assert "&lt;b&gt;churn&lt;/b&gt;" in ours and "&lt;/title&gt;&lt;h1&gt;owned" in ours
    assert page.sources == []                          # the escaped href is text, not a link
    assert len(page.scripts) == 2 and len(page.figures) == 1
    # Inside the figure, plotly gets the escaped text and shows it literally.
    data, _ = figure(html, "ratchet-plot-1")
    assert caption(html, "ratchet-plot-1").startswith("&lt;script&gt;")
    assert data[0]["x"][0].startswith("&lt;/script&gt;&lt;img")
    assert EVIL in page.plain and "<b>churn</b>" in page.plain     # the reader sees the text


@pytest.mark.parametrize("verdict, colour", [("ok", "#1a7f37"), ("drift", "#9a6700"),
                                             ("degraded", "#cf222e"), ("no data", "#6e7781")])
def test_verdict_has_its_colour(verdict: str, colour: str) -> None:
    html = render_report({"deployment": "churn", "verdict": verdict})
    assert f'<span class="verdict" style="background:{colour}">{verdict}</span>' in html


def test_missing_parts_become_sentences_and_the_page_stays_small() -> None:
    empty = {"deployment": "churn", "created_at": "2026-11-22T23:00:00+00:00",
             "window": {"start": "2026-11-22T22:00:00+00:00",
                        "end": "2026-11-22T23:00:00+00:00"},
             "model": {"name": "churn", "version": 3}, "reference": None, "rows": 0,
             "verdict": "no data", "drift": None, "quality": None, "performance": None,
             "distributions": {}}
    html = render_report(empty, None)
    page = Page(html)
    assert page.errors == []
    text = page.plain
    for sentence in ("No drift result for this window",
                     "No distributions were recorded for this window.",
                     "No earlier results of this deployment",
                     "No data-quality result for this window.",
                     "No performance for this window",
                     "none (drift needs a reference dataset)"):
        assert sentence in text, sentence
    assert page.figures == [] and page.scripts == [] and "<table>" in html
    assert len(html) < 20_000                           # no plot, so no plotly.js
    assert html.count("<table>") == 1                   # only the summary


def test_history_without_drift_or_labels_plots_what_there_is(result: dict[str, Any]) -> None:
    quiet = copy.deepcopy(result)
    quiet["drift"] = None
    quiet["performance"] = None
    html = render_report(quiet, [quiet])
    assert "No earlier results" not in html
    assert "Neither drift nor performance was measured" in Page(html).plain
    assert len(Page(html).figures) == 3

    only_estimates = copy.deepcopy(result)
    only_estimates["performance"] = performance(0.8, labeled=0)
    only_estimates["performance"]["metrics"] = {}
    page = Page(render_report(only_estimates, [only_estimates]))
    assert "No labels have arrived for this window yet." in page.plain
    assert ESTIMATE_NOTE in page.plain
    # distributions 3 + drift share + AUC + estimated accuracy + estimated f1 + rows
    assert len(page.figures) == 3 + 2 + 2 + 1


def test_empty_history_keeps_the_current_plots(result: dict[str, Any]) -> None:
    page = Page(render_report(result, []))
    assert "No earlier results of this deployment" in page.plain
    assert len(page.figures) == len(result["distributions"])


@pytest.mark.parametrize("change, message", [
    (lambda d: d["plan"].update(current=[1, 2]), "reference has 3 bins, current 2"),
    (lambda d: d["plan"].update(kind="text"), "kind must be"),
    (lambda d: d["tenure"].update(edges=[0, 1, 2]), "do not match its edges"),
    (lambda d: d["plan"].update(reference="many"), "must be a list of counts")])
def test_malformed_distributions_are_rejected(result: dict[str, Any], change: Any,
                                              message: str) -> None:
    bad = copy.deepcopy(result)
    change(bad["distributions"])
    with pytest.raises(InvalidInput, match=message):
        render_report(bad)


def test_result_and_history_must_be_dicts(result: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="monitor result"):
        render_report([result])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="history"):
        render_report(result, ["yesterday"])  # type: ignore[list-item]


def test_footer_names_the_inlined_plotly(result: dict[str, Any]) -> None:
    assert f"installed plotly {plotly.__version__} package" in render_report(result)


# ----------------------------------------------------------------------------- shared plotly.js
def test_reports_of_one_folder_share_one_plotly_file(result: dict[str, Any],
                                                     history: list[dict[str, Any]],
                                                     tmp_path: Path) -> None:
    from ratchet.monitoring.report_html import SHARED, plotly_js_name, write_report

    folder = tmp_path / "reports"
    first = write_report(folder / "a.html", render_report(result, history, plotly_js=SHARED))
    second = write_report(folder / "b.html", render_report(result, plotly_js=SHARED))
    scripts = sorted(p.name for p in folder.glob("*.js"))
    assert scripts == [plotly_js_name()]                       # one copy for both pages
    assert (folder / scripts[0]).read_text(encoding="utf-8") == plotly.offline.get_plotlyjs()
    assert plotly.__version__ in scripts[0]
    for path in (first, second):
        html = path.read_text(encoding="utf-8")
        page = Page(html)
        assert page.errors == []
        assert page.sources == [f"script src={plotly_js_name()}"]   # relative, no network
        assert PLOTLY_JS_START not in html and len(html) < 200_000   # not 4.7 MB each
        assert "window.Plotly" in html and plotly_js_name() in page.plain  # says what it needs
    # A page written alone in another folder gets its own copy: it works offline too.
    alone = write_report(tmp_path / "elsewhere" / "c.html",
                         render_report(result, plotly_js=SHARED))
    assert (alone.parent / plotly_js_name()).is_file()
    # The default stays one self-contained page.
    assert render_report(result).count(PLOTLY_JS_START) == 1
    with pytest.raises(InvalidInput, match="plotly_js must be"):
        render_report(result, plotly_js="cdn")


def test_timeline_marks_promotions_and_rollbacks(tmp_path: Path) -> None:
    from ratchet.monitoring.report_html import render_timeline_report

    periods = {"loop": [("2020-01-01", 0.8), ("2021-01-01", 0.6), ("2022-01-01", 0.85)],
               "never retrained": [("2020-01-01", 0.8), ("2021-01-01", 0.55),
                                   ("2022-01-01", 0.5)]}
    events = [{"at": "2021-03-02", "kind": "promoted", "summary": "v2 is champion"},
              {"at": "2021-06-01", "kind": "rolled-back", "summary": "v3: canary failed"},
              {"at": "2021-09-09", "kind": "promoted", "summary": "v4 is champion"},
              {"at": "2021-09-09", "kind": "retrained", "summary": "v4 trained"}]
    html = render_timeline_report("ct", periods, events, [{"strategy": "loop",
                                                          "accuracy": 0.75}])
    data, layout = figure(html, "ratchet-plot-1")
    names = [t["name"] for t in data]
    assert names == ["loop", "never retrained", "promotion (2)", "rollback (1)"]
    promotions, rollbacks = data[2], data[3]
    assert [x for x in promotions["x"] if x] == ["2021-03-02"] * 2 + ["2021-09-09"] * 2
    assert [x for x in rollbacks["x"] if x] == ["2021-06-01"] * 2
    assert "v2 is champion" in promotions["text"][0]
    low, high = layout["yaxis"]["range"]        # the lines span the plotted values
    assert low < 0.5 and high > 0.85
    assert layout["xaxis"]["type"] == "date"
    assert "promotions" in caption(html, "ratchet-plot-1")
