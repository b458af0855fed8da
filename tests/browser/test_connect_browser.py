"""An owner connects their car through the simulator's real Connect pages, then locks it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.factories import CarFactory, UserFactory
from vehicles.cloud import connections

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery"  # UserFactory's


@pytest.fixture
def connect_to_live_server(sim, settings, live_server):
    """Connect must send the browser back to this test's server, so the simulator's client
    learns that redirect URI."""
    settings.SMARTCAR_REDIRECT_URI = f"{live_server.url}/connect/callback/"
    sim.register_client(
        client_id=settings.SMARTCAR_CLIENT_ID,
        client_secret=settings.SMARTCAR_CLIENT_SECRET,
        redirect_uri=settings.SMARTCAR_REDIRECT_URI,
    )
    return sim


def sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label(re.compile("Email", re.I)).fill(email)
    page.get_by_label(re.compile("^Password", re.I)).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    expect(page.get_by_role("button", name=re.compile("Sign out", re.I))).to_be_visible()


def test_owner_connects_the_car_and_locks_it(
    page: Page, live_server, connect_to_live_server, celery_worker_thread
) -> None:
    sim = connect_to_live_server
    owner = UserFactory(email="connecting.owner@example.test", name="Cora Owner")
    car = CarFactory(owner=owner, make="VOLKSWAGEN", model="Golf", year=2021)
    twin = sim.add_vehicle(make="VOLKSWAGEN", model="Golf", year=2021, owner_email=owner.email)
    sim.set_state(twin["id"], is_locked=False)

    sign_in(page, live_server.url, owner.email)
    page.goto(f"{live_server.url}{car.get_absolute_url()}")
    expect(page.get_by_text("Not connected")).to_be_visible()
    page.get_by_role("button", name="Connect this car").click()

    # The simulator's Connect: the make was passed, so it starts at the carmaker's sign-in.
    expect(page).to_have_url(re.compile(rf"^{re.escape(sim.url)}/"))
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("whatever-the-carmaker-wants")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(re.compile(r"2021 Volkswagen Golf"))).to_be_visible()
    page.get_by_role("button", name="Allow").click()

    # Back on carshare, on the car's page.
    expect(page).to_have_url(f"{live_server.url}{car.get_absolute_url()}")
    expect(page.get_by_text("Your car is connected")).to_be_visible()
    expect(page.locator("#car-connection")).to_contain_text("Connected")
    expect(page.locator("#car-connection")).to_contain_text("Lock and unlock the car")
    connection = connections.connection_live_for_car(car_id=car.pk)
    assert connection is not None
    assert connection.vehicle_id == twin["id"]

    # The worker reads the car; the panel polls every 10 s and shows what it found.
    expect(page.locator("#car-status")).to_contain_text("Unlocked", timeout=25_000)

    page.get_by_role("button", name="Lock now").click()
    command = page.locator("#car-command-slot")
    expect(command).to_contain_text("Lock:")
    expect(command).to_contain_text("Done", timeout=20_000)
    assert sim.vehicle(twin["id"])["is_locked"] is True
    # The car's one history: the keys panel's audit log, with what the car did.
    expect(page.locator("#car-audit")).to_contain_text("Cora Owner")
    expect(page.locator("#car-audit")).to_contain_text("Car: Done", timeout=20_000)
