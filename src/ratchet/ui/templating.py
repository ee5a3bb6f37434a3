"""Rendering a page: one Jinja2 environment (autoescaped, strict), the filters pages
share, and the headers every page carries.

Every value a user can name (experiment, run, tag, param, column, category) reaches the
HTML through autoescaping; data for scripts travels as JSON in
``<script type="application/json">`` (``|tojson`` escapes ``<``, ``>``, ``&`` and quotes)
and is read with ``JSON.parse``, so nothing a user typed is ever executed: the
Content-Security-Policy allows only this server's own script files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment
    from starlette.requests import Request
    from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
NAV = (("experiments", "Experiments", "/ui/"), ("models", "Models", "/ui/models"),
       ("datasets", "Datasets", "/ui/datasets"), ("pipelines", "Pipelines", "/ui/pipelines"),
       ("deployments", "Deployments", "/ui/deployments"), ("loop", "Loop", "/ui/loop"))


@cache
def static_url(name: str) -> str:
    """``/ui/static/<name>?v=<digest>``: the digest changes with the file, so browsers
    may cache static files for a long time and still get a new version at once."""
    digest = hashlib.blake2b((STATIC / name).read_bytes(), digest_size=6).hexdigest()
    return f"/ui/static/{name}?v={digest}"


def segment(value: object) -> str:
    """``value`` as one URL path segment: every character with a meaning in a URL, ``/``
    included, percent-encoded (a name like ``a/../b`` stays one segment)."""
    from urllib.parse import quote

    return quote(str(value), safe="")


def when(ms: int | float | None) -> str:
    """Epoch milliseconds as ``2026-12-06 04:45:11`` (UTC); blank for None."""
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: int | float | None) -> str:
    """``45ms``, ``3.2s``, ``2m05s``, ``1h02m``; blank for None."""
    from ratchet.durations import elapsed

    return "" if ms is None else elapsed(ms)


def number(value: Any, digits: int = 4) -> str:
    """A metric for a table: 4 significant digits, NaN and infinities spelled out."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.{digits}g}"
    return str(value)


@cache
def environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, duration=duration, number=number, segment=segment)
    env.globals.update(static_url=static_url, nav=NAV)
    return env


def render(request: Request, template: str, *, status: int = 200, section: str = "",
           **context: Any) -> HTMLResponse:
    """The page ``template`` with ``context``; ``section`` marks the current nav item.
    The caller (``user``) is added; pages are never cached (they show live data)."""
    from starlette.responses import HTMLResponse

    who = getattr(request.state, "principal", None)
    options = getattr(request.app.state, "options", None)
    signed_in = options is not None and options.auth_required
    html = environment().get_template(template).render(
        user=who, signed_in=signed_in, section=section, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status, headers=page_headers())


def page_headers() -> dict[str, str]:
    return {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"}
