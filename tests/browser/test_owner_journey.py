"""A new owner signs up, verifies the email, lists a car with a photo, learns on My cars that
renters cannot find it until it is connected, and finds it in search once it is."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from tests.factories import VehicleConnectionFactory, make_image_upload
from vehicles.models import Car

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _confirmation_link(email: str) -> str:
    message = next(m for m in reversed(mail.outbox) if email in m.to)
    match = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body)
    assert match, message.body
    return match.group(0)


def test_sign_up_verify_list_a_car_and_find_it(page: Page, live_server, tmp_path) -> None:
    photo = tmp_path / "mycar.jpg"
    photo.write_bytes(make_image_upload().read())
    email = "new.owner@example.test"

    page.goto(f"{live_server.url}/accounts/signup/")
    page.get_by_label("Email").fill(email)
    page.get_by_label(re.compile(r"^Password:?$")).fill("a-long-unusual-passphrase")
    page.get_by_label(re.compile(r"Password \(again\)")).fill("a-long-unusual-passphrase")
    page.get_by_role("button", name=re.compile("Sign up", re.I)).click()
    expect(page.get_by_role("heading", name=re.compile("Verify", re.I))).to_be_visible()

    link = _confirmation_link(email).replace("http://testserver", live_server.url)
    link = re.sub(r"https?://[^/]+", live_server.url, link)
    page.goto(link)
    page.get_by_role("button", name=re.compile("Confirm", re.I)).click()

    page.goto(f"{live_server.url}/cars/new/")
    page.get_by_label("Make").select_option("KIA")
    page.get_by_label("Model").fill("EV6")
    page.get_by_label("Year").fill("2023")
    page.get_by_label("Licence plate").fill("ev-66-kx")
    page.get_by_label("Seats").fill("5")
    page.get_by_label("Fuel").select_option("electric")
    page.get_by_label("Transmission").select_option("automatic")
    page.get_by_label("Pickup address").fill("Neude 1, Utrecht")
    page.get_by_label("City").fill("Utrecht")
    page.get_by_label("Latitude").fill("52.0929")
    page.get_by_label("Longitude").fill("5.1190")
    page.get_by_label("Price per hour (EUR)").fill("12.50")
    page.get_by_label("Price per day (EUR)").fill("80")
    page.get_by_label("Instant book").check()
    page.get_by_label("Photos").set_input_files(str(photo))
    page.get_by_role("button", name=re.compile("List (this|my|the) car|Save", re.I)).click()

    car = Car.objects.get(licence_plate="EV66KX")
    assert car.owner.email == email
    assert car.photos.count() == 1

    page.goto(f"{live_server.url}/my/cars/")
    expect(page.get_by_text("Not public: connect the car to the vehicle cloud")).to_be_visible()
    page.goto(f"{live_server.url}/cars/?city=Utrecht")
    expect(page.get_by_role("link", name=re.compile("Kia EV6"))).to_have_count(0)

    # Connecting through Smartcar Connect is test_connect_browser's journey; here the
    # connection row it leaves behind.
    VehicleConnectionFactory(car=car)
    page.goto(f"{live_server.url}/my/cars/")
    expect(page.get_by_text("Not public")).to_have_count(0)
    page.goto(f"{live_server.url}/cars/?city=Utrecht")
    result = page.get_by_role("link", name=re.compile("Kia EV6"))
    expect(result.first).to_be_visible()
    result.first.click()
    expect(page.get_by_role("heading", name=re.compile("Kia EV6"))).to_be_visible()
    expect(page.get_by_role("img").first).to_be_visible()
