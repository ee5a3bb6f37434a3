"""The dashboard: server-rendered pages over a workspace, served by ``ratchet server``
(``/ui/``) and by ``ratchet ui`` (a loopback server on the local workspace, no sign-in).

Pages are thin adapters: each one reads through the workspace's stores and the same
Python functions a user calls, checks the caller's permission on what it shows, and
renders a Jinja2 template (autoescaped). Charts are drawn in the browser from JSON
the page embeds or fetches (uPlot, vendored); no CDN, no build step.
"""

from __future__ import annotations

from ratchet.ui.app import dashboard_app, install_dashboard

__all__ = ["dashboard_app", "install_dashboard"]
