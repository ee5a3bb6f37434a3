"""A monitor result as an HTML page that works offline.

    page = render_report(result, history)      # history: earlier results, oldest first
    write_report(path, render_report(result, history, plotly_js=SHARED))

Sections: a header (deployment, model version, window, verdict, rows, reference), the drift
table (with prediction, target and multivariate drift), one plot per column of the reference
and current distributions (share of rows per equal-width bin, or per category), drift share
and performance over time, the data-quality table and realized against estimated
performance. Each plot's title is an HTML caption above it, clear of plotly's toolbar.

Offline by construction: plotly.js (4.7 MB) comes from the installed ``plotly`` package.
``plotly_js=INLINE`` (the default) puts it in the page's head: one file that works anywhere.
``plotly_js=SHARED`` references it as ``<script src="plotly-<version>-<hash>.min.js">``, a
relative, content-addressed file that ``write_report`` writes once next to the pages, so a
folder of reports holds one copy (a page copied without it shows its tables and says the
plots need that file). Figures are a ``<div>`` and a small inline script each. Nothing in
the page names a network address: no absolute ``<script src>`` or ``<link href>``, no
MathJax (``typesetMath`` off, so a ``$`` in a column name stays text), no plotly logo and no
"send to cloud" button (which would post to plotly's server). Only bar and line traces are
drawn; geo traces would fetch topojson and map traces tiles, so none are used. Every string
from the result (deployment, column names, categories, issue texts) is escaped with
``html.escape``; plotly's JSON escapes ``<`` as well, so a column named ``</script>``
cannot end a script.
"""

from __future__ import annotations

import functools
import hashlib
import html
import math
import re
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    import plotly.graph_objects as go

PLOT_CONFIG = {"displaylogo": False, "showSendToCloud": False, "typesetMath": False,
               "responsive": True}
VERDICT_COLORS = {"ok": "#1a7f37", "drift": "#9a6700", "degraded": "#cf222e",
                  "drift+degraded": "#a40e26", "no data": "#6e7781"}
REFERENCE_COLOR, CURRENT_COLOR, ESTIMATE_COLOR = "#8c959f", "#0969da", "#bc4c00"
PLOT_HEIGHT = 280
INLINE, SHARED = "inline", "shared"   # where a page gets plotly.js (see the docstring)
ESTIMATE_NOTE = ("Estimated metrics come from the model's own confidence (confidence-based "
                 "performance estimation) and assume calibrated probabilities: if the model "
                 "is over- or under-confident, so are the estimates. They are estimates, not "
                 "measurements; realized metrics replace them as labels arrive.")
_LAYOUT = {"template": "none", "height": PLOT_HEIGHT, "font": {"size": 11},
           "margin": {"l": 50, "r": 10, "t": 30, "b": 50}, "legend": {"orientation": "h"},
           "xaxis": {"gridcolor": "#eaeef2", "automargin": True},
           "yaxis": {"gridcolor": "#eaeef2", "automargin": True}}
_PAGE = string.Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1f2328; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.flag td { background: #fff8c5; }
.verdict { color: #fff; padding: .15rem .6rem; border-radius: 1rem; font-weight: 600; }
.missing, .note { color: #59636e; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr));
         gap: 1rem; }
figure { margin: 0; }
figcaption { font-size: .9rem; font-weight: 600; margin: .3rem 0 0 .3rem; }
figcaption .note { font-weight: normal; }
</style>
$script
</head>
<body>
<h1>$title</h1>
$body
<footer class="note">$footer</footer>
$check
</body>
</html>
""")


class _Plots:
    """The page's figures, numbered so their div ids are stable."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, fig: go.Figure, title: str, note: str = "", height: int = PLOT_HEIGHT
             ) -> str:
        """``title`` and ``note`` are HTML: a caption above the plot, where plotly's toolbar
        (top right, on hover) cannot cover it."""
        self.count += 1
        fig.update_layout(_LAYOUT, height=height)
        div = str(fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False,
                              config=PLOT_CONFIG, div_id=f"ratchet-plot-{self.count}",
                              default_height=f"{height}px"))
        caption = title + (f'<br><span class="note">{note}</span>' if note else "")
        return f"<figure>\n<figcaption>{caption}</figcaption>\n{div}\n</figure>"


@functools.cache
def plotly_js_name() -> str:
    """The shared script's file name: plotly's version and a hash of its content, so pages
    written by different plotly versions in one folder each find their own."""
    import plotly
    import plotly.offline

    digest = hashlib.blake2b(plotly.offline.get_plotlyjs().encode(), digest_size=6).hexdigest()
    return f"plotly-{plotly.__version__}-{digest}.min.js"


def _script_and_footer(plotly_js: str, plots: _Plots) -> tuple[str, str, str]:
    """(the head's script, the footer's sentence, the body's end check) for a page."""
    import plotly
    import plotly.offline

    if not plots.count:
        return "", "", ""
    if plotly_js == INLINE:
        return (f"<script>{plotly.offline.get_plotlyjs()}</script>",
                f"Self-contained: plotly.js from the installed plotly "
                f"{_e(plotly.__version__)} package is part of the page.", "")
    if plotly_js == SHARED:
        name = plotly_js_name()
        return (f'<script src="{name}"></script>',
                f"The plots use plotly.js from the installed plotly {_e(plotly.__version__)} "
                f"package, in the file {name} next to this page (copy both to share it).",
                '<script>if (!window.Plotly) { document.body.insertAdjacentHTML("afterbegin", '
                f"'<p class=\"missing\">The plots need the file {name} next to this page; "
                "the tables are complete without it.</p>'); }</script>")
    raise InvalidInput(f"plotly_js must be {INLINE!r} or {SHARED!r}, got {plotly_js!r}")


_SHARED_SCRIPT = re.compile(r'<script src="(plotly-[0-9A-Za-z.+-]+\.min\.js)"></script>')


def write_report(path: str | Path, page: str) -> Path:
    """Write ``page`` to ``path`` (atomically); when it references the shared plotly.js
    (``plotly_js=SHARED``), also write that file next to it unless it is there already:
    its name holds its content's hash, so one copy serves every page of the folder."""
    import plotly.offline

    from ratchet.atomic import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    found = _SHARED_SCRIPT.search(page)
    if found is not None:
        if found.group(1) != plotly_js_name():
            raise InvalidInput(f"{path.name}: the page references {found.group(1)}, but the "
                               f"installed plotly provides {plotly_js_name()}; render it again")
        script = path.parent / found.group(1)
        if not script.is_file():
            write_atomic(script, plotly.offline.get_plotlyjs().encode())
    write_atomic(path, page.encode())
    return path


def render_report(result: Mapping[str, Any], history: Sequence[Mapping[str, Any]] | None = None,
                  *, title: str | None = None, plotly_js: str = INLINE) -> str:
    """The HTML page of one monitor ``result``; ``history`` (earlier results of the same
    deployment, oldest first) feeds the over-time plots. ``plotly_js``: ``INLINE`` (one
    self-contained page) or ``SHARED`` (a file next to it: write the page with
    ``write_report``)."""
    if not isinstance(result, Mapping):
        raise InvalidInput(f"result must be a monitor result (a dict), got {type(result).__name__}")
    history = list(history or [])
    if not all(isinstance(r, Mapping) for r in history):
        raise InvalidInput("history must be a list of monitor results (dicts), oldest first")
    plots = _Plots()
    drift = result.get("drift")
    body = "\n".join([
        _header(result), _drift(drift),
        _distributions(result.get("distributions"), drift, plots),
        _over_time([*history, result], plots), _quality(result.get("quality")),
        _performance(result.get("performance"))])
    script, plotly_note, check = _script_and_footer(plotly_js, plots)
    footer = f"Written by ratchet for the monitor result of {_e(result.get('created_at'))}." \
        + (f" {plotly_note}" if plotly_note else "")
    name = title if title is not None else f"ratchet monitor: {result.get('deployment')}"
    return _PAGE.substitute(title=_e(name), script=script, body=body, footer=footer,
                            check=check)


def render_timeline_report(title: str, accuracy: Mapping[str, Sequence[tuple[str, Any]]],
                           events: Sequence[Mapping[str, Any]],
                           summary: Sequence[Mapping[str, Any]], *, metric: str = "accuracy",
                           note: str = "", plotly_js: str = INLINE) -> str:
    """A continuous-training page: ``metric`` over time per strategy (``{"loop": [(period
    start, value), ...], "never retrained": ...}``, period starts as ISO dates), a summary
    table (one dict per strategy) and the loop's timeline (events with ``at``, ``kind``,
    ``summary``). Promotions and rollbacks are marked on the plot as vertical lines."""
    plots = _Plots()
    palette = [CURRENT_COLOR, REFERENCE_COLOR, ESTIMATE_COLOR, "#8250df", "#1a7f37",
               "#cf222e"]
    lines = [(name, [v for _, v in points], palette[i % len(palette)],
              "solid" if i == 0 else "dash") for i, (name, points) in enumerate(
                  accuracy.items())]
    x = [str(p) for p, _ in next(iter(accuracy.values()), [])]
    plot = _timeline_plot(x, lines, events, metric, plots) if x else \
        '<p class="missing">No periods to plot.</p>'
    columns = list(summary[0]) if summary else []
    table = _table([_e(c) for c in columns], [
        ([_num(r.get(c)) if _is_number(r.get(c)) else _e(r.get(c)) for c in columns], False)
        for r in summary], numeric=frozenset(range(1, len(columns))))
    flagged = {"rejected", "rolled-back", "canary-failed", "shadow-failed", "retrain-failed"}
    timeline = _table(["at", "event", "what"], [
        ([_e(e.get("at")), _e(e.get("kind")), _e(e.get("summary"))],
         e.get("kind") in flagged) for e in events])
    body = "\n".join([
        f'<p class="note">{_e(note)}</p>' if note else "",
        _section("accuracy", f"Live {_e(metric)} over time", plot),
        _section("summary", "Summary", table),
        _section("timeline", "Timeline", timeline if events else
                 '<p class="missing">No events.</p>')])
    script, plotly_note, check = _script_and_footer(plotly_js, plots)
    footer = "Written by ratchet." + (f" {plotly_note}" if plotly_note else "")
    return _PAGE.substitute(title=_e(title), script=script, body=body, footer=footer,
                            check=check)


MARKED_EVENTS = {"promoted": ("promotion", "#1f2328"), "rolled-back": ("rollback", "#cf222e")}


def _timeline_plot(x: list[str], lines: Sequence[tuple[str, list[Any], str, str]],
                   events: Sequence[Mapping[str, Any]], metric: str, plots: _Plots) -> str:
    """``metric`` per period (a point at each period's start, on a date axis), with a
    vertical line at each promotion and rollback (hover: what happened)."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=x, y=[v if _is_number(v) and math.isfinite(v) else None
                                        for v in y], mode="lines+markers",
                                name=html.escape(name, quote=False),
                                line={"color": color, "dash": dash, "shape": "hv"},
                                hovertemplate="%{y:.3f}")
                     for name, y, color, dash in lines])
    values = [v for _, y, _, _ in lines for v in y if _is_number(v) and math.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((high - low) * 0.08, 0.01)
    low, high = low - pad, high + pad
    for kind, (label, color) in MARKED_EVENTS.items():
        marked = [e for e in events if e.get("kind") == kind and e.get("at")]
        if not marked:
            continue
        xs: list[Any] = []
        ys: list[Any] = []
        texts: list[Any] = []
        for e in marked:
            xs += [str(e["at"]), str(e["at"]), None]
            ys += [low, high, None]
            text = f"{_e(e.get('at'))} {label}: {_e(e.get('summary'))}"
            texts += [text, text, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{label} ({len(marked)})",
                                 line={"color": color, "width": 1.5, "dash": "dot"},
                                 text=texts, hovertemplate="%{text}<extra></extra>"))
    fig.update_xaxes(type="date")
    fig.update_yaxes(range=[low, high], title_text=_e(metric))
    fig.update_layout(hovermode="closest")
    return plots.html(fig, f"{_e(metric)} per period",
                      "each step is one period, from its first day (UTC); dotted lines: "
                      "promotions (black) and rollbacks (red)",
                      height=PLOT_HEIGHT + 120)


# ----------------------------------------------------------------------------- formatting
def _e(value: Any) -> str:
    return "—" if value is None else html.escape(str(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _num(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return ("∞" if value > 0 else "-∞") if math.isinf(value) else f"{value:.4g}"
    return _e(value)


def _pct(value: Any) -> str:
    return f"{value:.1%}" if _is_number(value) and math.isfinite(value) else "—"


def _section(key: str, heading: str, content: str) -> str:
    return f'<section id="{key}">\n<h2>{heading}</h2>\n{content}\n</section>'


def _missing(key: str, heading: str, sentence: str) -> str:
    return _section(key, heading, f'<p class="missing">{sentence}</p>')


def _table(headers: Sequence[str], rows: Sequence[tuple[Sequence[str], bool]],
           numeric: frozenset[int] = frozenset()) -> str:
    """Cells are already HTML; a flagged row is highlighted; ``numeric`` columns align right."""
    head = f"<thead><tr>{''.join(f'<th>{h}</th>' for h in headers)}</tr></thead>\n" \
        if headers else ""
    body = "".join(
        ('<tr class="flag">' if flag else "<tr>")
        + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                  for i, c in enumerate(cells)) + "</tr>\n"
        for cells, flag in rows)
    return f"<table>\n{head}<tbody>\n{body}</tbody>\n</table>"


# ----------------------------------------------------------------------------- sections
def _header(result: Mapping[str, Any]) -> str:
    model = result.get("model") or {}
    window = result.get("window") or {}
    reference = result.get("reference")
    verdict = str(result.get("verdict") or "unknown")
    color = VERDICT_COLORS.get(verdict, VERDICT_COLORS["no data"])
    rows = [
        ("Deployment", _e(result.get("deployment"))),
        ("Model", f"{_e(model.get('name'))} version {_num(model.get('version'))}"
         if model else "—"),
        ("Window", f"{_e(window.get('start'))} to {_e(window.get('end'))}"),
        ("Verdict", f'<span class="verdict" style="background:{color}">{_e(verdict)}</span>'),
        ("Rows in the window", _num(result.get("rows"))),
        ("Reference", f"{_e(reference.get('dataset'))} version "
         f"{_num(reference.get('version'))} ({_num(reference.get('rows'))} rows)"
         if reference else "none (drift needs a reference dataset)"),
        ("Computed at", _e(result.get("created_at")))]
    return _section("summary", "Summary", _table(
        [], [([f"<strong>{k}</strong>", v], False) for k, v in rows]))


def _drift_rows(columns: Sequence[Mapping[str, Any]], prefix: Mapping[int, str] | None = None
                ) -> list[tuple[list[str], bool]]:
    rows = []
    for i, c in enumerate(columns):
        p_value = c.get("p_value")
        rule = f"p &lt; {_num(c.get('threshold'))}" if p_value is not None else \
            f"&gt; {_num(c.get('threshold'))}"
        name = (prefix or {}).get(i, "") + _e(c.get("column"))
        rows.append(([name, _e(c.get("kind")), _e(c.get("test")), _num(c.get("statistic")),
                      _num(p_value), rule, "<strong>drifted</strong>" if c.get("drifted")
                      else "no"], bool(c.get("drifted"))))
    return rows


_DRIFT_HEADERS = ["column", "kind", "test", "statistic", "p-value", "drift if", "drifted"]


def _drift(drift: Mapping[str, Any] | None) -> str:
    if not drift:
        return _missing("drift", "Drift", "No drift result for this window: drift needs a "
                        "reference dataset and rows in the window.")
    columns = drift.get("columns") or []
    parts = [f"<p>{len(drift.get('drifted_columns') or [])} of {len(columns)} columns drifted "
             f"(share {_pct(drift.get('share'))}); the dataset drifts when at least "
             f"{_pct(drift.get('drift_share'))} of its columns do: <strong>"
             f"{'dataset drift' if drift.get('drift') else 'no dataset drift'}</strong>.</p>"]
    if columns:
        parts.append(_table(_DRIFT_HEADERS, _drift_rows(columns), frozenset({3, 4})))
    special = [(role, drift[role]) for role in ("prediction", "target") if drift.get(role)]
    if special:
        parts.append("<h3>Prediction and target drift</h3>")
        parts.append(_table(_DRIFT_HEADERS, _drift_rows(
            [c for _, c in special], {i: f"{role}: " for i, (role, _) in enumerate(special)}),
            frozenset({3, 4})))
    multi = drift.get("multivariate")
    if multi:
        parts.append(
            f"<p>Multivariate drift (a classifier telling reference rows from current ones, on "
            f"{_num(multi.get('n_reference'))} reference and {_num(multi.get('n_current'))} "
            "current rows): ROC "
            f"AUC <strong>{_num(multi.get('auc'))}</strong>, drift above "
            f"{_num(multi.get('threshold'))}: <strong>"
            f"{'drifted' if multi.get('drifted') else 'no drift'}</strong>.</p>")
    return _section("drift", "Drift", "\n".join(parts))


def _distributions(distributions: Mapping[str, Any] | None, drift: Mapping[str, Any] | None,
                   plots: _Plots) -> str:
    if not distributions:
        return _missing("distributions", "Distributions", "No distributions were recorded "
                        "for this window.")
    drift = drift or {}
    tests = {c.get("column"): c for c in [*(drift.get("columns") or []),
                                          drift.get("prediction") or {},
                                          drift.get("target") or {}]}
    figures = [_distribution_plot(str(name), spec, tests.get(name), plots)
               for name, spec in distributions.items()]
    return _section("distributions", "Reference and current distributions",
                    '<p class="note">Share of rows per bin (numbers: equal-width bins over the '
                    'range both sides share) or per category; grey is the reference (training '
                    'data), blue the current window.</p>\n<div class="plots">\n'
                    + "\n".join(figures) + "\n</div>")


def _shares(counts: Any, column: str, side: str) -> list[float]:
    if not isinstance(counts, Sequence) or not all(_is_number(c) for c in counts):
        raise InvalidInput(f"distribution of {column!r}: {side} must be a list of counts")
    total = float(sum(counts))
    return [c / total if total else 0.0 for c in counts]


def _beyond(spec: Mapping[str, Any], side: str) -> int:
    """Values of ``side`` beyond the plotted range (``outside``: [below, above] per side)."""
    outside = spec.get("outside")
    counts = outside.get(side) if isinstance(outside, Mapping) else None
    if not isinstance(counts, Sequence):
        return 0
    return int(sum(v for v in counts if _is_number(v)))


def _distribution_plot(column: str, spec: Mapping[str, Any], test: Mapping[str, Any] | None,
                       plots: _Plots) -> str:
    import plotly.graph_objects as go

    ref_counts, cur_counts = spec.get("reference"), spec.get("current")
    ref = _shares(ref_counts, column, "reference")
    cur = _shares(cur_counts, column, "current")
    if len(ref) != len(cur):
        raise InvalidInput(f"distribution of {column!r}: reference has {len(ref)} bins, "
                           f"current {len(cur)}")
    kind = spec.get("kind")
    widths: list[float] | None = None
    note = ""
    y_title = "share of rows"
    if kind == "categorical":
        x: list[Any] = [_e("(missing)" if c is None else c) for c in spec.get("categories") or []]
    elif kind == "numeric":
        edges = [float(e) for e in spec.get("edges") or []]
        if len(edges) == len(ref) + 1:        # full edges: a histogram on a numeric axis
            x = [(a + b) / 2 for a, b in pairwise(edges)]
            widths = [b - a for a, b in pairwise(edges)]
            # Shares of every value, those beyond the plotted range included.
            beyond = []
            for side, shares, counts in (("reference", ref, ref_counts),
                                         ("current", cur, cur_counts)):
                extra, plotted = _beyond(spec, side), float(sum(counts or []))
                if extra:
                    shares[:] = [v * plotted / (plotted + extra) for v in shares]
                    beyond.append(f"{_num(extra)} {side} value{'s' if extra != 1 else ''} "
                                  f"({_pct(extra / (plotted + extra))})")
            note = " and ".join(beyond) + " beyond the plotted range" if beyond else ""
            if widths and max(widths) - min(widths) > 1e-9 * max(abs(w) for w in widths):
                # Unequal bins (results written before equal-width bins): plot densities,
                # so a wide bin's bar is as tall as its values are dense, not as it is wide.
                ref = [s / w for s, w in zip(ref, widths, strict=True)]
                cur = [s / w for s, w in zip(cur, widths, strict=True)]
                y_title = "share of rows per unit"
        else:                                 # inner edges (drift.numeric_bins): labelled bins
            x = ([f"&lt; {edges[0]:.4g}"] if edges else []) + [
                f"[{a:.4g}, {b:.4g})" for a, b in pairwise(edges)] + (
                [f"≥ {edges[-1]:.4g}"] if edges else ["all"])
    else:
        raise InvalidInput(f"distribution of {column!r}: kind must be 'numeric' or "
                           f"'categorical', got {kind!r}")
    if len(x) != len(ref):
        raise InvalidInput(f"distribution of {column!r}: {len(ref)} counts do not match its "
                           f"{'categories' if kind == 'categorical' else 'edges'}")
    hover = "%{x}: %{y:.1%}<extra>%{fullData.name}</extra>" if y_title == "share of rows" \
        else "%{x}: %{y:.3g}<extra>%{fullData.name}</extra>"
    fig = go.Figure([go.Bar(x=x, y=ref, width=widths, name="reference",
                            marker_color=REFERENCE_COLOR, hovertemplate=hover),
                     go.Bar(x=x, y=cur, width=widths, name="current",
                            marker_color=CURRENT_COLOR, hovertemplate=hover)])
    if widths:  # overlaid on a numeric axis, the reference behind
        fig.update_layout(barmode="overlay", bargap=0)
        fig.update_traces(opacity=0.55, marker_line_width=0)
    else:
        fig.update_layout(barmode="group")
        fig.update_xaxes(type="category")
    fig.update_yaxes(title_text=y_title,
                     tickformat=".0%" if y_title == "share of rows" else None)
    label = _e(column)
    if test:
        label += (f' <span class="note">{_e(test.get("test"))} {_num(test.get("statistic"))}'
                  + (", <strong>drifted</strong>" if test.get("drifted") else "") + "</span>")
    return plots.html(fig, label, _e(note) if note else "")


def _when(result: Mapping[str, Any]) -> str:
    """The end of a result's window as naive UTC (plotly's date axis has no time zones)."""
    raw = (result.get("window") or {}).get("end") or result.get("created_at")
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        return str(raw)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(sep=" ")


def _metric_names(performances: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    names: dict[str, None] = {}
    for perf in performances:
        for name, value in (perf.get(key) or {}).items():
            if name != "n" and _is_number(value):
                names[name] = None
    return list(names)


def _line_plot(x: list[str], lines: Sequence[tuple[str, list[Any], str, str]], title: str,
               plots: _Plots, *, bound: float | None = None) -> str:
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=x, y=[v if _is_number(v) and math.isfinite(v) else None
                                        for v in y], name=name, mode="lines+markers",
                                line={"color": color, "dash": dash})
                     for name, y, color, dash in lines])
    if bound is not None:
        fig.add_hline(y=bound, line_dash="dot", line_color=VERDICT_COLORS["degraded"])
    fig.update_xaxes(title_text="window end (UTC)")
    return plots.html(fig, title)


def _over_time(series: Sequence[Mapping[str, Any]], plots: _Plots) -> str:
    if len(series) < 2:
        return _missing("over-time", "Over time", "No earlier results of this deployment: "
                        "the over-time plots start with the next result.")
    x = [_when(r) for r in series]
    figures = []
    drifts = [r.get("drift") or {} for r in series]
    if any(d for d in drifts):
        bound = series[-1].get("drift") and series[-1]["drift"].get("drift_share")
        figures.append(_line_plot(x, [("share of drifted columns",
                                       [d.get("share") for d in drifts], CURRENT_COLOR,
                                       "solid")],
                                  "Share of drifted columns", plots,
                                  bound=bound if _is_number(bound) else None))
        if any((d.get("multivariate") or {}).get("auc") is not None for d in drifts):
            figures.append(_line_plot(
                x, [("classifier ROC AUC", [(d.get("multivariate") or {}).get("auc")
                                            for d in drifts], CURRENT_COLOR, "solid")],
                "Multivariate drift (ROC AUC)", plots))
    perfs = [r.get("performance") or {} for r in series]
    estimates = [p.get("estimated") or {} for p in perfs]
    realized_names = _metric_names(perfs, "metrics")
    for name in [*realized_names, *(n for n in _metric_names(perfs, "estimated")
                                    if n not in realized_names)]:
        lines = [(label, values, color, dash) for label, values, color, dash in [
            ("realized", [(p.get("metrics") or {}).get(name) for p in perfs], CURRENT_COLOR,
             "solid"),
            ("estimated", [e.get(name) for e in estimates], ESTIMATE_COLOR, "dash")]
            if any(_is_number(v) for v in values)]
        figures.append(_line_plot(x, lines, _e(name), plots))
    if any(perfs):
        figures.append(_line_plot(x, [
            ("rows", [r.get("rows") for r in series], REFERENCE_COLOR, "solid"),
            ("labeled rows", [p.get("labeled") for p in perfs], CURRENT_COLOR, "solid")],
            "Rows and labeled rows", plots))
    if not figures:
        return _missing("over-time", "Over time", "Neither drift nor performance was "
                        "measured in these results: nothing to plot over time.")
    return _section("over-time", f"Over time ({len(series)} results)",
                    '<div class="plots">\n' + "\n".join(figures) + "\n</div>")


def _quality(quality: Mapping[str, Any] | None) -> str:
    if not quality:
        return _missing("quality", "Data quality", "No data-quality result for this window.")
    parts = [f"<p>{_num(quality.get('issues'))} issue(s) in {_num(quality.get('rows'))} "
             "rows.</p>"]
    for key, sentence in (("missing_columns", "Columns the model expects but the data lacks"),
                          ("extra_columns", "Columns the model does not expect")):
        if quality.get(key):
            parts.append(f"<p>{sentence}: {', '.join(_e(c) for c in quality[key])}.</p>")
    rows = [([_e(c.get("column")), _num(c.get("missing")), _pct(c.get("missing_rate")),
              _pct(c.get("reference_missing_rate")), _num(c.get("out_of_range")),
              _num(c.get("unknown_categories")), _num(c.get("type_violations")),
              _num(c.get("null_violations")), _num(c.get("non_finite")),
              "<br>".join(_e(i) for i in c.get("issues") or []) or "—"], bool(c.get("issues")))
            for c in quality.get("columns") or []]
    if rows:
        parts.append(_table(["column", "missing", "missing rate", "reference missing rate",
                             "out of range", "unknown categories", "type violations",
                             "null violations", "infinite", "issues"], rows,
                            frozenset(range(1, 9))))
    return _section("quality", "Data quality", "\n".join(parts))


def _performance(performance: Mapping[str, Any] | None) -> str:
    if not performance:
        return _missing("performance", "Performance", "No performance for this window: no "
                        "labels have arrived and no estimate was made.")
    realized = performance.get("metrics") or {}
    estimated = performance.get("estimated") or {}
    names = _metric_names([performance], "metrics")
    names += [n for n in _metric_names([performance], "estimated") if n not in names]
    labeled = performance.get("labeled")
    parts = [f"<p>Task: {_e(performance.get('task'))}. " + (
        f"Realized metrics from {_num(labeled)} labeled rows.</p>" if realized and labeled
        else "No labels have arrived for this window yet.</p>")]
    if names:
        headers = ["metric", "realized"] + (["estimated"] if estimated else [])
        parts.append(_table(headers, [
            ([_e(n), _num(realized.get(n))] + ([_num(estimated.get(n))] if estimated else []),
             False) for n in names], frozenset({1, 2})))
    if estimated:
        parts.append(f'<p class="note"><strong>{ESTIMATE_NOTE}</strong></p>')
        if estimated.get("note"):
            parts.append(f'<p class="note">{_e(estimated["note"])}</p>')
    return _section("performance", "Performance", "\n".join(parts))
