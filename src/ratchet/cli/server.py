"""``ratchet server``: the team server over this workspace's database and artifact store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ratchet.cli.output import note, say

if TYPE_CHECKING:
    from ratchet.server.app import ServerOptions


def server(
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by "
                                      "default; any other address turns auth on).")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to bind.", min=1,
                                      max=65535)] = 8765,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Worker processes (the "
                                         "server is stateless: any number share the "
                                         "database).", min=1, max=64)] = 1,
    auth: Annotated[bool | None, typer.Option(
        "--auth/--no-auth", help="Require API tokens (default: on unless bound to "
        "loopback; --no-auth is refused on other addresses).")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="A Host name clients use to reach the server (repeatable; "
        "DNS rebinding protection answers 421 to others). localhost, 127.0.0.1 and the "
        "--host address are always allowed.")] = None,
    allowed_origin: Annotated[list[str] | None, typer.Option(
        "--allowed-origin", help="A web origin (https://host:port) allowed to make state "
        "changes from a browser (repeatable).")] = None,
) -> None:
    """Serve this workspace to a team: the dashboard at /ui/, the REST API under /api/v1
    (OpenAPI schema at /api/v1/openapi.json), artifact upload and download, users and
    tokens. Clients point at it with RATCHET_TRACKING_URI=http://HOST:PORT and
    RATCHET_TRACKING_TOKEN."""
    from ratchet.server.app import ServerOptions

    options = ServerOptions(host=host, auth=auth, allowed_hosts=tuple(allowed_host or ()),
                            allowed_origins=tuple(allowed_origin or ()))
    _serve(options, port, workers)


def ui(
    port: Annotated[int, typer.Option("--port", "-p", help="Port to bind on 127.0.0.1.",
                                      min=1, max=65535)] = 8765,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the "
                                               "dashboard in a browser.")] = True,
) -> None:
    """Open the dashboard on this workspace: a server on 127.0.0.1 only, no sign-in (the
    person at this machine can read the workspace anyway). For a team, use `ratchet
    server`."""
    from ratchet.server.app import ServerOptions

    options = ServerOptions(host="127.0.0.1", auth=False)
    url = f"http://127.0.0.1:{port}/ui/"
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    _serve(options, port, 1)


def _serve(options: ServerOptions, port: int, workers: int) -> None:
    import uvicorn

    from ratchet.server.app import options_to_environment
    from ratchet.ui.app import dashboard_app
    from ratchet.workspace import Workspace

    options.check()
    host = options.host
    workspace = Workspace()
    app = dashboard_app(workspace, options)  # fails here, before binding, on a bad setup
    users = workspace.stores.auth.list_users()
    if options.auth_required and not any(u.role == "admin" and u.disabled_at is None
                                         for u in users):
        note("no admin user yet: create one with `ratchet users create NAME --role admin` "
             "and a token with `ratchet tokens create --user NAME`")
    mode = "tokens required" if options.auth_required else "no authentication (loopback)"
    say(f"ratchet server on http://{host}:{port} ({workers} worker"
        f"{'s' if workers != 1 else ''}, {mode}); dashboard at http://{host}:{port}/ui/; "
        "Ctrl+C stops")
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
        return
    options_to_environment(options)
    uvicorn.run("ratchet.ui.app:app_from_environment", factory=True, host=host,
                port=port, workers=workers, log_level="warning", server_header=False)
