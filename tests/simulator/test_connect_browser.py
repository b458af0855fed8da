"""The Connect pages in a real Chromium: brand, sign in, choose, allow or deny, back to the app."""

from __future__ import annotations

import shutil
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.simulator.conftest import CLIENT_ID, REDIRECT_URI

CHROMIUM = "/usr/bin/chromium" if shutil.which("/usr/bin/chromium") else shutil.which("chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM, reason="no Chromium at /usr/bin/chromium: apt-get install chromium"
    ),
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"],
    }


@pytest.fixture(scope="session")
def base_url() -> None:
    """Replaces pytest-playwright's fallback fixture, whose instance-method form pytest 9 warns
    about (an error under filterwarnings=error); these tests use absolute URLs."""
    return None


@pytest.fixture
def app_callback(page):
    """Stands in for the app at REDIRECT_URI and records where Connect sent the browser."""
    seen: list[str] = []

    def handle(route):
        seen.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>back in the app</p>")

    page.route(REDIRECT_URI + "**", handle)
    return seen


def open_connect(page, sim, **params):
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "read_odometer required:control_security",
        "state": "browser-state",
        **params,
    }
    page.goto(f"{sim.url}/oauth/authorize?{urlencode(query)}")


def test_owner_connects_a_car(page, sim, car, app_callback):
    open_connect(page, sim)
    page.get_by_role("button", name="Ford").click()
    page.get_by_label("Email").fill("owner@example.test")
    page.get_by_label("Password").fill("anything")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(car["vin"]).wait_for()
    page.get_by_label("Retrieve total distance traveled").uncheck()
    page.get_by_role("button", name="Allow").click()
    page.get_by_text("back in the app").wait_for()
    query = parse_qs(urlsplit(app_callback[-1]).query)
    assert query["state"] == ["browser-state"]
    tokens = sim.token(
        grant_type="authorization_code", code=query["code"][0], redirect_uri=REDIRECT_URI
    )
    access = tokens.json()["access_token"]
    perms = sim.api("GET", f"/vehicles/{car['id']}/permissions", access).json()["permissions"]
    assert perms == ["control_security"]


def test_owner_denies_access(page, sim, car, app_callback):
    open_connect(page, sim, make="FORD")
    page.get_by_label("Email").fill("owner@example.test")
    page.get_by_label("Password").fill("anything")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Deny access").click()
    page.get_by_text("back in the app").wait_for()
    query = parse_qs(urlsplit(app_callback[-1]).query)
    assert query["error"] == ["access_denied"]
    assert query["error_description"] == ["User denied access to application."]
