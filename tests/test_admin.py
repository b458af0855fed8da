"""Every admin list as staff see it: real plurals, times in the car's zone with its offset
(never the raw UTC bounds of a range), and a change page for each row."""

from __future__ import annotations

import datetime
import re
import zoneinfo

import pytest
from django.contrib import admin
from django.urls import reverse

from bookings import services as booking_services
from keys import grants
from keys.models import DigitalKey
from vehicles import commands as vehicle_commands

pytestmark = pytest.mark.django_db


@pytest.fixture
def every_kind_of_row(active_booking, renter, co_driver, owner, clock):
    """A trip under way with a co-driver, an owner block, then the trip's end (an end lock and
    its LOCK command) and the car's status row: at least one row for every admin."""
    car = active_booking.car
    trip_key = DigitalKey.objects.get(booking_id=active_booking.pk, kind="trip")
    grants.key_share(key=trip_key, user=renter, email=co_driver.email)
    later = active_booking.ends_at + datetime.timedelta(days=2)
    booking_services.block_create(
        car=car, user=owner, starts_at=later, ends_at=later + datetime.timedelta(hours=3),
        reason="maintenance", note="Tyres",
    )  # fmt: skip
    clock.move_to(active_booking.ends_at, tick=False)
    booking_services.booking_complete(booking_id=active_booking.pk)
    vehicle_commands.vehicle_status_request_refresh(car_id=car.pk)
    return active_booking


def test_every_changelist_and_change_page_opens(admin_client, every_kind_of_row):
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        response = admin_client.get(url)
        assert response.status_code == 200, url
        row = model_admin.get_queryset(response.wsgi_request).first()
        if row is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk])
            assert admin_client.get(change).status_code == 200, change


def test_lists_are_named_with_real_plurals(admin_client, every_kind_of_row):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Audit entries" in html
    assert "Vehicle statuses" in html
    assert not re.search(r"\b\w+(entrys|statuss)\b", html, re.I)


@pytest.mark.parametrize(
    "changelist",
    [
        "admin:bookings_booking_changelist",
        "admin:vehicles_occupancy_changelist",
        "admin:bookings_carblock_changelist",
        "admin:keys_digitalkey_changelist",
    ],
)
def test_periods_show_in_the_cars_zone(admin_client, every_kind_of_row, changelist):
    """A car in Amsterdam: its trip, hold, block and key windows read in Amsterdam time with
    its offset, not as a range's UTC bounds."""
    car = every_kind_of_row.car
    assert car.time_zone == "Europe/Amsterdam"
    zone = zoneinfo.ZoneInfo(car.time_zone)
    html = admin_client.get(reverse(changelist)).content.decode()
    assert "+00:00" not in html
    assert "UTC" not in html
    assert "DateTimeTZRange" not in html
    if changelist.endswith(("booking_changelist", "digitalkey_changelist")):
        start = every_kind_of_row.starts_at.astimezone(zone)
        offset = start.isoformat()[-6:]
        assert f"{start:%H:%M} \u2013 " in html
        assert f"{start.day} {start:%b %Y}, {start:%H:%M} \u2013 " in html
        assert offset in html
        assert offset != "+00:00"


def test_admin_actions_speak_in_the_cars_zone(admin_client, every_kind_of_row):
    """The reason page of "Cancel with a reason" lists the trip in the car's time."""
    booking = booking_services.booking_request(
        renter=every_kind_of_row.renter,
        car=every_kind_of_row.car,
        starts_at=every_kind_of_row.ends_at + datetime.timedelta(days=5),
        ends_at=every_kind_of_row.ends_at + datetime.timedelta(days=5, hours=2),
    )
    response = admin_client.post(
        reverse("admin:bookings_booking_changelist"),
        {"action": "cancel_with_reason", "_selected_action": [booking.pk]},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "UTC" not in html
    start = booking.starts_at.astimezone(zoneinfo.ZoneInfo(booking.car.time_zone))
    assert f"{start:%H:%M} \u2013 " in html
