"""The dashboard's shell: signing in and out, the home page, escaping, permissions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import ratchet
from ratchet.server.app import ServerOptions
from ratchet.server.permissions import SESSION_COOKIE
from ratchet.ui import dashboard_app
from ratchet.workspace import Workspace, use
from tests.ui.browser import Watched, dashboard, dialogs_of, issue_token, local_workspace

HOSTILE = "<script>alert(1)</script>{{7*7}}"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    workspace = local_workspace(tmp_path_factory.mktemp("shell"))
    with use(workspace):
        for name in ("churn", HOSTILE):
            with ratchet.start_run(experiment=name):
                ratchet.log_metric("auc", 0.9)
    return workspace


@pytest.fixture(scope="module")
def team(seeded: Workspace) -> Iterator[tuple[str, dict[str, str]]]:
    """The dashboard with sign-in required, and tokens of an admin and of a reader who
    may read experiment churn only (``none`` by role is a grant-only user)."""
    tokens = {"admin": issue_token(seeded, "ana", "admin"),
              "reader": issue_token(seeded, "rui", "reader")}
    seeded.stores.auth.grant("rui", "experiment", HOSTILE, "none")
    with dashboard(seeded, auth=True) as url:
        yield url, tokens


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/ui/")
    page.wait_for_url("**/ui/login?next=*")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/ui/")


def test_sign_in_shows_the_experiments_with_hostile_names_as_text(
        team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    dialogs = dialogs_of(page)
    sign_in(page, url, tokens["admin"])
    rows = page.get_by_role("row")
    assert page.get_by_role("link", name="churn").is_visible()
    hostile = page.get_by_role("link", name=HOSTILE)
    assert hostile.is_visible() and hostile.inner_text() == HOSTILE  # text, not markup
    assert "{{7*7}}" in page.locator("main").inner_text()  # no template evaluation
    assert rows.count() == 3 and not dialogs
    assert page.locator(".user").inner_text() == "ana"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/login")
    page.goto(f"{url}/ui/")
    page.wait_for_url("**/ui/login?next=*")


def test_a_wrong_token_says_so_on_the_sign_in_page(
        team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, _ = team
    watched.expect_status(401)
    page = watched.page
    page.goto(f"{url}/ui/login")
    page.get_by_label("API token").fill("rt_not_a_token")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "not valid" in alert.inner_text()
    assert page.url == f"{url}/ui/login"


def test_a_reader_sees_only_what_they_may_read(
        team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    sign_in(page, url, tokens["reader"])
    assert page.get_by_role("link", name="churn").is_visible()
    assert page.get_by_role("link", name=HOSTILE).count() == 0


def test_keyboard_reaches_the_content_first(
        seeded: Workspace, watched: Watched) -> None:
    page = watched.page
    with dashboard(seeded) as url:
        page.goto(f"{url}/ui/")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "churn"
        assert page.locator("nav[aria-label=Sections] a[aria-current=page]").inner_text() \
            == "Experiments"


def test_an_empty_workspace_says_what_to_do(tmp_path: Path, watched: Watched) -> None:
    page = watched.page
    with dashboard(local_workspace(tmp_path)) as url:
        page.goto(f"{url}/")
        page.wait_for_url(f"{url}/ui/")
        assert "No experiments yet" in page.locator(".empty").inner_text()


# ----------------------------------------------------------------- without a browser
@pytest.fixture(scope="module")
def client(seeded: Workspace) -> Iterator[tuple[TestClient, str]]:
    token = issue_token(seeded, "eva", "writer")
    with TestClient(dashboard_app(seeded, ServerOptions(auth=True))) as test_client:
        yield test_client, token


def test_the_cookie_is_http_only_strict_and_scoped_to_the_dashboard(
        client: tuple[TestClient, str]) -> None:
    test_client, token = client
    answer = test_client.post("/ui/api/session", json={"token": token})
    assert answer.status_code == 200 and answer.json() == {"name": "eva", "role": "writer"}
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    test_client.cookies.clear()


def test_the_cookie_never_authenticates_the_api(client: tuple[TestClient, str]) -> None:
    test_client, token = client
    test_client.cookies.set(SESSION_COOKIE, token)
    try:
        assert test_client.get("/ui/").status_code == 200
        assert test_client.get("/api/v1/whoami").status_code == 401
    finally:
        test_client.cookies.clear()


def test_pages_carry_a_script_policy_and_sign_in_redirects_stay_home(
        client: tuple[TestClient, str]) -> None:
    test_client, _ = client
    gone = test_client.get("/ui/?page=2", follow_redirects=False)
    assert gone.status_code == 303
    assert gone.headers["location"] == "/ui/login?next=%2Fui%2F%3Fpage%3D2"
    login = test_client.get("/ui/login?next=//evil.example/x")
    assert "script-src 'self'" in login.headers["content-security-policy"]
    assert 'data-next="/ui/"' in login.text  # another site is never a target
    assert test_client.post("/ui/api/session", json={"token": ""}).status_code == 422
    bad = test_client.post("/ui/api/session", content="token=x",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 415  # a form post from another site cannot sign anyone in


def test_an_unknown_page_is_an_html_404(client: tuple[TestClient, str]) -> None:
    test_client, token = client
    test_client.cookies.set(SESSION_COOKIE, token)
    try:
        answer = test_client.get("/ui/no-such-page")
        assert answer.status_code == 404
    finally:
        test_client.cookies.clear()
