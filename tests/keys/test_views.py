"""The key pages through HTTP, as holder, owner, co-driver, technician and stranger: the key page
and its panel on the trip page, Unlock and Lock with their progress, sharing and revoking, the
owner's keys panel with service keys, the override and the audit log."""

from __future__ import annotations

import datetime
import re
import zoneinfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from bookings import services as booking_services
from bookings.models import Booking
from keys import grants
from keys.models import AuditAction, AuditEntry, DigitalKey, KeyKind
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.factories import CarFactory, RenterFactory, UserFactory
from vehicles import tasks as vehicle_tasks
from vehicles.models import Car, CommandStatus, VehicleCommand

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def local(car: Car, moment: datetime.datetime) -> str:
    """What a datetime-local input sends for `moment` on this car's page."""
    return moment.astimezone(zoneinfo.ZoneInfo(car.time_zone)).strftime("%Y-%m-%dT%H:%M")


def trip_key(booking: Booking) -> DigitalKey:
    return DigitalKey.objects.get(booking_id=booking.pk, kind=KeyKind.TRIP)


def key_url(name: str, key: DigitalKey) -> str:
    return reverse(f"keys:{name}", args=[key.public_id])


def car_url(name: str, car: Car) -> str:
    return reverse(f"keys:{name}", args=[car.public_id])


def is_fragment(response) -> bool:
    return "<html" not in response.content.decode()


def unlock_button(html: str) -> str:
    match = re.search(r"<button[^>]*>\s*Unlock\s*</button>", html)
    assert match, "no Unlock button"
    return match.group(0)


def lock_button(html: str) -> str:
    match = re.search(r"<button[^>]*>\s*Lock\s*</button>", html)
    assert match, "no Lock button"
    return match.group(0)


@pytest.fixture
def active_key(active_booking) -> DigitalKey:
    key = trip_key(active_booking)
    assert key.may_unlock_at()
    return key


@pytest.fixture
def shared_key(active_key, renter, co_driver) -> DigitalKey:
    return grants.key_share(key=active_key, user=renter, email=co_driver.email)


# --- Who sees what ----------------------------------------------------------------------------


def test_holder_sees_big_buttons_and_the_live_status(active_key, renter):
    response = as_user(renter).get(active_key.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    assert "disabled" not in unlock_button(html)
    assert "disabled" not in lock_button(html)
    assert key_url("key_car_status", active_key) in html  # polled while the key is open
    assert 'hx-trigger="every 10s' in html
    assert "Co-drivers" in html  # a trip key can be shared
    assert "Trip start" in html  # the history


def test_owner_sees_the_key_without_buttons(active_key, owner):
    response = as_user(owner).get(active_key.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    assert key_url("key_unlock", active_key) not in html
    assert key_url("key_car_status", active_key) not in html
    assert "Held by Rick Renter" in html


def test_co_driver_uses_their_shared_key(shared_key, co_driver, renter):
    html = as_user(co_driver).get(shared_key.get_absolute_url()).content.decode()
    assert "disabled" not in unlock_button(html)
    assert "Give the key back" in html
    assert key_url("key_share", shared_key) not in html  # only the renter shares

    # The renter who shared it sees it, with Revoke and without the buttons.
    html = as_user(renter).get(shared_key.get_absolute_url()).content.decode()
    assert key_url("key_unlock", shared_key) not in html
    assert key_url("key_revoke", shared_key) in html


def test_co_driver_gets_404_on_the_trip_key_and_the_trip(shared_key, active_key, co_driver):
    client = as_user(co_driver)
    assert client.get(active_key.get_absolute_url()).status_code == 404
    assert client.post(key_url("key_unlock", active_key)).status_code == 404
    booking = Booking.objects.get(pk=active_key.booking_id)
    assert client.get(booking.get_absolute_url()).status_code == 404


def stranger_requests(key: DigitalKey, command: VehicleCommand) -> list[tuple[str, str]]:
    return [
        ("get", key_url("key_detail", key)),
        ("post", key_url("key_unlock", key)),
        ("post", key_url("key_lock", key)),
        ("get", key_url("key_car_status", key)),
        ("post", key_url("key_share", key)),
        ("post", key_url("key_revoke", key)),
        ("get", reverse("keys:key_command_status", args=[command.public_id])),
        ("get", car_url("car_keys", key.car)),
        ("post", car_url("service_key_issue", key.car)),
        ("post", car_url("car_unlock", key.car)),
        ("get", car_url("car_audit", key.car)),
    ]


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_stranger_gets_404_on_every_url(active_key, renter, stranger, headers):
    command = VehicleCommand.objects.get(key_id=active_key.pk)  # the trip start's unlock
    client = as_user(stranger)
    for method, url in stranger_requests(active_key, command):
        response = getattr(client, method)(url, headers=headers)
        assert response.status_code == 404, (method, url)
    assert not VehicleCommand.objects.filter(actor=stranger).exists()


def test_anonymous_is_sent_to_sign_in(active_key):
    response = Client().get(active_key.get_absolute_url())
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_owner_cannot_use_the_renters_key(active_key, owner):
    client = as_user(owner)
    assert client.post(key_url("key_unlock", active_key), headers=HTMX).status_code == 404
    assert client.get(key_url("key_car_status", active_key), headers=HTMX).status_code == 404
    assert (
        client.post(key_url("key_share", active_key), {"email": "x@example.test"}).status_code
        == 404
    )
    assert not VehicleCommand.objects.filter(actor=owner).exists()


def test_invalid_uuid_is_404(renter):
    assert as_user(renter).get("/keys/not-a-uuid/").status_code == 404


# --- Lists --------------------------------------------------------------------------------------


def test_key_list_groups_the_keys(active_key, renter, owner, technician, connected_car):
    start = hour_from_now(days=5)
    grants.service_key_issue(
        car=connected_car,
        user=owner,
        email=technician.email,
        starts_at=start,
        ends_at=start + datetime.timedelta(hours=2),
    )
    html = as_user(renter).get(reverse("keys:key_list")).content.decode()
    assert "Open now" in html
    assert active_key.get_absolute_url() in html
    assert "Keys to my cars" not in html

    html = as_user(technician).get(reverse("keys:key_list")).content.decode()
    assert "Upcoming" in html
    assert "Service key" in html

    html = as_user(owner).get(reverse("keys:key_list")).content.decode()
    assert "Keys to my cars" in html
    assert "Rick Renter" in html
    assert "Ted Technician" in html


def test_nav_links_to_the_keys(renter):
    html = as_user(renter).get(reverse("keys:key_list")).content.decode()
    assert f'href="{reverse("keys:key_list")}"' in html


def _key_list_queries(django_assert_num_queries, user, expected: int) -> None:
    client = as_user(user)
    with django_assert_num_queries(expected):
        assert client.get(reverse("keys:key_list")).status_code == 200


def test_key_list_query_count_does_not_grow_with_keys(
    django_assert_num_queries, owner, renter, connected_car, technician
):
    # session, user, the holder's live and past keys, the keys to the owner's cars
    _key_list_queries(django_assert_num_queries, renter, 5)
    _key_list_queries(django_assert_num_queries, owner, 5)
    for days in (2, 4, 6):
        booking = request_booking(connected_car, renter, starts_at=hour_from_now(days=days))
        assert trip_key(booking)
    other_car = CarFactory(owner=owner)
    start = hour_from_now(days=8)
    grants.service_key_issue(
        car=other_car,
        user=owner,
        email=technician.email,
        starts_at=start,
        ends_at=start + datetime.timedelta(hours=2),
    )
    _key_list_queries(django_assert_num_queries, renter, 5)
    _key_list_queries(django_assert_num_queries, owner, 5)
    _key_list_queries(django_assert_num_queries, technician, 5)


# --- The window -------------------------------------------------------------------------------


def test_buttons_disabled_with_the_reason_before_the_trip(confirmed_booking, renter):
    key = trip_key(confirmed_booking)
    html = as_user(renter).get(key.get_absolute_url()).content.decode()
    assert "disabled" in unlock_button(html)
    assert "disabled" in lock_button(html)
    assert "This key works from" in html
    assert "every 30s" not in html  # days ahead: no need to poll
    assert key_url("key_car_status", key) not in html  # no live status before the window

    # The same panel on the trip page.
    html = as_user(renter).get(confirmed_booking.get_absolute_url()).content.decode()
    assert "Digital key" in html
    assert "disabled" in unlock_button(html)
    assert "This key works from" in html


def test_panel_polls_shortly_before_the_window_opens(confirmed_booking, renter, clock):
    key = trip_key(confirmed_booking)
    clock.move_to(key.valid_from - datetime.timedelta(minutes=30), tick=False)
    client = as_user(renter)
    html = client.get(confirmed_booking.get_absolute_url()).content.decode()
    assert (
        f'hx-get="{key.get_absolute_url()}" hx-trigger="booking-changed from:body, every 30s"'
        in html
    )
    assert "disabled" in unlock_button(html)

    # The window opens (the key clock has not come by yet): the refreshed panel is usable.
    clock.move_to(key.valid_from + datetime.timedelta(seconds=5), tick=False)
    response = client.get(key.get_absolute_url(), headers=HTMX)
    html = response.content.decode()
    assert is_fragment(response)
    assert "disabled" not in unlock_button(html)
    assert "every 30s" not in html
    response = client.post(key_url("key_unlock", key), headers=HTMX)
    assert VehicleCommand.objects.get(actor=renter).action == "unlock"
    key.refresh_from_db()
    assert key.status == "active"  # opened by the first press


def test_during_the_grace_only_lock_works(active_booking, renter, clock):
    clock.move_to(active_booking.ends_at + datetime.timedelta(minutes=1), tick=False)
    booking_services.booking_complete(booking_id=active_booking.pk)
    key = trip_key(active_booking)
    html = as_user(renter).get(key.get_absolute_url()).content.decode()
    assert "disabled" in unlock_button(html)
    assert "disabled" not in lock_button(html)
    assert "you can only lock the car" in html

    # Pressing Unlock anyway (an old page) is refused in the progress slot.
    response = as_user(renter).post(key_url("key_unlock", key), headers=HTMX)
    assert response.status_code == 200
    assert "you can only lock the car" in response.content.decode()


def test_the_panel_refreshes_as_a_fragment(active_key, renter):
    response = as_user(renter).get(active_key.get_absolute_url(), headers=HTMX)
    assert response.status_code == 200
    assert is_fragment(response)
    assert 'id="key-panel"' in response.content.decode()
    assert "HX-Request" in response["Vary"]


# --- Unlock and Lock ---------------------------------------------------------------------------


def test_unlock_records_a_command_and_answers_with_its_progress(
    active_key, renter, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = as_user(renter).post(key_url("key_unlock", active_key), headers=HTMX)
    assert response.status_code == 200
    assert is_fragment(response)
    command = VehicleCommand.objects.filter(actor=renter).get()
    assert (command.action, command.key_id, command.status) == ("unlock", active_key.pk, "queued")
    assert len(callbacks) == 1  # the worker is rung once the command is committed
    html = response.content.decode()
    assert reverse("keys:key_command_status", args=[command.public_id]) in html
    assert 'hx-trigger="every 2s"' in html
    assert "Queued" in html
    # The one event the live status, the audit log and the owner's car page listen for.
    assert "car-command-changed" in response["HX-Trigger"]
    entry = AuditEntry.objects.get(command_public_id=command.public_id)
    assert (entry.action, entry.allowed, entry.actor) == ("unlock", True, renter)


def test_lock_without_htmx_redirects_to_the_key_with_progress(active_key, renter):
    client = as_user(renter)
    response = client.post(key_url("key_lock", active_key))
    assert response.status_code == 302
    assert response["Location"] == active_key.get_absolute_url()
    command = VehicleCommand.objects.filter(actor=renter).get()
    assert command.action == "lock"
    html = client.get(response["Location"]).content.decode()
    assert "Locking the car" in html
    assert f'id="command-{command.public_id}"' in html


def test_refused_unlock_is_shown_not_raised(active_key, renter, settings):
    settings.KEY_UNLOCK_RATE_PER_PERSON = (1, 300)
    client = as_user(renter)
    assert client.post(key_url("key_unlock", active_key), headers=HTMX).status_code == 200
    # A second Unlock while the first is on its way joins it (the same progress, no cost)...
    joined = client.post(key_url("key_unlock", active_key), headers=HTMX)
    unlock = VehicleCommand.objects.get(actor=renter)
    assert f'id="command-{unlock.public_id}"' in joined.content.decode()
    # ...and after a Lock replaced it, a new Unlock is over the limit.
    assert client.post(key_url("key_lock", active_key), headers=HTMX).status_code == 200
    response = client.post(key_url("key_unlock", active_key), headers=HTMX)
    assert response.status_code == 200  # htmx swaps only 2xx
    assert "Too many unlock attempts" in response.content.decode()
    assert "HX-Trigger" not in response
    assert VehicleCommand.objects.filter(actor=renter, action="unlock").count() == 1

    response = client.post(key_url("key_unlock", active_key))
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert "Too many unlock attempts" in html
    assert AuditEntry.objects.filter(actor=renter, code="rate_limited").count() == 2


def test_command_status_follows_the_car(active_key, renter, owner, co_driver, shared_key, sim):
    client = as_user(renter)
    client.post(key_url("key_unlock", active_key), headers=HTMX)
    command = VehicleCommand.objects.filter(actor=renter).get()
    url = reverse("keys:key_command_status", args=[command.public_id])

    vehicle_tasks.run_vehicle_command(command_id=command.pk)  # what the worker does
    response = client.get(url, headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Done" in html
    assert "hx-trigger" not in html  # polling stops
    assert "car-command-changed" in response["HX-Trigger"]

    # The car's owner may follow it too; a co-driver on the same trip may not.
    assert as_user(owner).get(url, headers=HTMX).status_code == 200
    assert as_user(co_driver).get(url, headers=HTMX).status_code == 404
    # Without htmx: back to the key.
    assert client.get(url)["Location"] == active_key.get_absolute_url()


def test_a_failed_command_shows_the_cars_own_message(active_key, renter, sim, sim_vehicle_id):
    sim.fault(sim_vehicle_id, endpoint="security", type="VEHICLE_STATE", code="DOOR_OPEN")
    client = as_user(renter)
    client.post(key_url("key_lock", active_key), headers=HTMX)
    command = VehicleCommand.objects.filter(actor=renter).get()
    vehicle_tasks.run_vehicle_command(command_id=command.pk)
    command.refresh_from_db()
    assert command.status == CommandStatus.FAILED
    assert command.error_message
    url = reverse("keys:key_command_status", args=[command.public_id])
    html = client.get(url, headers=HTMX).content.decode()
    assert "Failed" in html
    assert command.error_message in html


def test_live_status_for_the_holder(active_key, renter, sim, sim_vehicle_id):
    client = as_user(renter)
    url = key_url("key_car_status", active_key)
    assert client.get(url, headers=HTMX).status_code == 200  # asks the worker for a read
    vehicle_tasks.refresh_vehicle_status(car_id=active_key.car_id)  # what the worker does
    response = client.get(url, headers=HTMX)
    assert response.status_code == 200
    assert is_fragment(response)
    html = response.content.decode()
    assert 'id="key-live"' in html
    assert "openstreetmap.org/?mlat=52.374000&amp;mlon=4.898000" in html
    assert "Unlocked" in html  # the connected_car fixture's car
    assert 'hx-trigger="every 10s' in html


def test_live_status_stops_when_the_key_closes(active_booking, renter, clock):
    key = trip_key(active_booking)
    clock.move_to(active_booking.ends_at + datetime.timedelta(minutes=20), tick=False)
    response = as_user(renter).get(key_url("key_car_status", key), headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "hx-trigger" not in html
    assert "openstreetmap" not in html


# --- The trip page ----------------------------------------------------------------------------


def test_trip_page_has_the_key_panel_for_the_renter_only(active_booking, renter, owner):
    key = trip_key(active_booking)
    html = as_user(renter).get(active_booking.get_absolute_url()).content.decode()
    assert "Digital key" in html
    assert "disabled" not in unlock_button(html)
    assert key_url("key_unlock", key) in html
    assert key_url("key_share", key) in html

    html = as_user(owner).get(active_booking.get_absolute_url()).content.decode()
    assert key_url("key_unlock", key) not in html
    assert "Digital key" not in html


def test_owner_override_is_shown_to_the_renter(active_key, owner, renter):
    client = as_user(owner)
    url = car_url("car_unlock", active_key.car)

    # Someone holds the key: the owner is told, and nothing reaches the car.
    response = client.post(url, {}, headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Rick holds the key now" in html
    assert 'name="override"' in html
    response = client.post(url, {"override": "on", "note": " "}, headers=HTMX)
    assert "Say why you unlock during their trip." in response.content.decode()
    assert not VehicleCommand.objects.filter(actor=owner).exists()
    denied = AuditEntry.objects.get(actor=owner)
    assert (denied.action, denied.allowed, denied.code) == (
        AuditAction.OVERRIDE_UNLOCK,
        False,
        "override_required",
    )

    response = client.post(url, {"override": "on", "note": "Forgot my sunglasses"}, headers=HTMX)
    assert response.status_code == 200
    command = VehicleCommand.objects.get(actor=owner)
    assert command.action == "unlock"
    html = response.content.decode()
    assert reverse("keys:key_command_status", args=[command.public_id]) in html
    assert "car-command-changed" in response["HX-Trigger"]
    assert AuditEntry.objects.filter(
        action=AuditAction.OVERRIDE_UNLOCK, allowed=True, detail="Forgot my sunglasses"
    ).exists()

    # The renter sees it on the key and on the trip page.
    trip_page = Booking.objects.get(pk=active_key.booking_id).get_absolute_url()
    for page in (active_key.get_absolute_url(), trip_page):
        html = as_user(renter).get(page).content.decode()
        assert "The owner unlocked the car at" in html
        assert "Forgot my sunglasses" in html


def test_owner_unlocks_freely_when_nobody_holds_a_key(connected_car, owner):
    response = as_user(owner).post(car_url("car_unlock", connected_car), headers=HTMX)
    assert response.status_code == 200
    assert 'name="override"' not in response.content.decode()
    assert VehicleCommand.objects.get(actor=owner).action == "unlock"
    assert AuditEntry.objects.get(actor=owner).action == AuditAction.UNLOCK


# --- Sharing ---------------------------------------------------------------------------------


def test_share_form_errors_save_nothing(active_key, renter, stranger):
    client = as_user(renter)
    url = key_url("key_share", active_key)
    car = active_key.car
    cases = [
        ({"email": "not an email"}, "Enter a valid email address."),
        ({"email": renter.email}, "You already hold this trip"),
        (
            {
                "email": "co@example.test",
                "starts_at": local(car, active_key.valid_from - datetime.timedelta(hours=2)),
            },
            "must fit inside the trip",
        ),
        (
            {
                "email": "co@example.test",
                "starts_at": local(car, active_key.valid_from + datetime.timedelta(hours=2)),
                "ends_at": local(car, active_key.valid_from + datetime.timedelta(hours=1)),
            },
            "The end must be after the start.",
        ),
        ({"email": "co@example.test", "starts_at": "tomorrow"}, "Enter a valid date/time."),
    ]
    RenterFactory(email="co@example.test")
    for data, error in cases:
        response = client.post(url, data, headers=HTMX)
        assert response.status_code == 200, data
        assert is_fragment(response)
        assert error in response.content.decode(), data
    response = client.post(url, cases[1][0])  # without htmx: the page with the errors
    assert response.status_code == 200
    assert "You already hold this trip" in response.content.decode()
    assert not DigitalKey.objects.filter(kind=KeyKind.SHARED).exists()


def test_share_then_revoke_from_the_trip_page(active_key, renter, co_driver):
    client = as_user(renter)
    car = active_key.car
    until = active_key.valid_from + datetime.timedelta(hours=2)
    response = client.post(
        key_url("key_share", active_key),
        {"email": co_driver.email, "ends_at": local(car, until)},
        headers=HTMX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert escape(grants.share_answer(email=co_driver.email)) in html
    assert "Cleo Codriver" in html  # in the list of co-drivers
    shared = DigitalKey.objects.get(kind=KeyKind.SHARED)
    assert (shared.holder, shared.valid_until, shared.status) == (co_driver, until, "active")
    assert key_url("key_revoke", shared) in html

    response = client.post(key_url("key_revoke", shared), {"confirm": "1"}, headers=HTMX)
    assert response.status_code == 200
    assert 'id="key-sharing"' in response.content.decode()
    assert "Key revoked" in response.content.decode()
    shared.refresh_from_db()
    assert shared.status == "revoked"
    assert as_user(co_driver).post(key_url("key_unlock", shared), headers=HTMX).status_code == 200
    assert not VehicleCommand.objects.filter(actor=co_driver).exists()


def share_answer_seen(response, email: str) -> tuple[int, str]:
    """What the sharer is told, without the list of co-drivers (which shows who got a key)."""
    html = response.content.decode()
    answer = re.search(
        r'<(?:p class="notice|li class="message) message-success"[^>]*>(.*?)</(?:p|li)>', html, re.S
    )
    assert answer, html
    return response.status_code, answer.group(1).replace(email, "EMAIL")


def test_share_answers_alike_whether_or_not_the_email_can_get_a_key(
    active_key, renter, co_driver, django_capture_on_commit_callbacks
):
    """Unknown address, an account that may not drive (no licence, unverified), an eligible
    co-driver: the same status and words, in the fragment and after the redirect; only the
    eligible one gets a key, and each is sent one email."""
    UserFactory(email="nolicence@example.test")
    RenterFactory(email="unverified@example.test", verified=False)
    client = as_user(renter)
    url = key_url("key_share", active_key)
    emails = [
        "nobody@example.test",
        "nolicence@example.test",
        "unverified@example.test",
        co_driver.email,
    ]
    fragments, pages = set(), set()
    for email in emails:
        with django_capture_on_commit_callbacks() as queued:
            fragments.add(
                share_answer_seen(client.post(url, {"email": email}, headers=HTMX), email)
            )
        assert [repr(c).count("send_") for c in queued].count(1) == 1, (
            email
        )  # one email queued each: the key's, or an invitation
        response = client.post(url, {"email": email})  # again, without JavaScript
        assert (response.status_code, response["Location"]) == (302, active_key.get_absolute_url())
        pages.add(share_answer_seen(client.get(response["Location"]), email))
    assert len(fragments) == 1, fragments
    assert len(pages) == 1, pages
    assert fragments == pages
    shared = DigitalKey.objects.filter(kind=KeyKind.SHARED)
    assert [k.holder.email for k in shared] == [co_driver.email]


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_revoke_and_give_back_ask_first(shared_key, active_key, renter, co_driver, htmx):
    """Revoke (the renter, on the trip page) and Give the key back (the co-driver, on the key's
    page) ask before they act; only the confirmed press revokes."""
    url = key_url("key_revoke", shared_key)
    headers = HTMX if htmx else {}
    for user, question, target in [
        (renter, "Revoke Cleo Codriver&#x27;s key?", 'hx-target="#key-sharing"'),
        (co_driver, "Give the key back?", ""),
    ]:
        response = as_user(user).post(url, headers=headers)
        html = response.content.decode()
        assert response.status_code == 200
        assert question in html
        assert 'name="confirm" value="1"' in html
        assert ("<html" in html) is not htmx
        if htmx and target:
            assert target in html
        shared_key.refresh_from_db()
        assert shared_key.status == "active"
    page = as_user(co_driver).get(shared_key.get_absolute_url()).content.decode()
    assert f'hx-post="{url}" hx-target="this"' in page  # the button asks in place

    response = as_user(co_driver).post(url, {"confirm": "1"}, headers=headers)
    assert response.status_code == (200 if htmx else 302)
    shared_key.refresh_from_db()
    assert shared_key.status == "revoked"


def test_share_without_htmx_redirects(active_key, renter, co_driver):
    response = as_user(renter).post(key_url("key_share", active_key), {"email": co_driver.email})
    assert response.status_code == 302
    assert response["Location"] == active_key.get_absolute_url()
    assert DigitalKey.objects.filter(kind=KeyKind.SHARED, holder=co_driver).exists()


# --- The owner's keys panel and service keys -----------------------------------------------


def test_car_page_loads_the_keys_panel_for_the_owner_only(connected_car, owner, renter):
    url = car_url("car_keys", connected_car)
    html = as_user(owner).get(connected_car.get_absolute_url()).content.decode()
    assert f'hx-get="{url}" hx-trigger="load"' in html
    assert f'href="{url}"' in html  # without JavaScript, a link
    html = as_user(renter).get(connected_car.get_absolute_url()).content.decode()
    assert url not in html


def test_keys_panel_page_and_fragment(active_key, owner):
    client = as_user(owner)
    url = car_url("car_keys", active_key.car)
    page = client.get(url)
    assert page.status_code == 200
    assert not is_fragment(page)
    fragment = client.get(url, headers=HTMX)
    assert is_fragment(fragment)
    html = fragment.content.decode()
    for text in ("Keys and access", "Service keys", "Every key", "Audit log", "Rick Renter"):
        assert text in html
    assert "HX-Request" in fragment["Vary"]
    audit = client.get(car_url("car_audit", active_key.car), headers=HTMX)
    assert 'id="car-audit"' in audit.content.decode()
    assert is_fragment(audit)


def service_data(car: Car, email: str, start: datetime.datetime, hours: int = 2) -> dict:
    return {
        "email": email,
        "starts_at": local(car, start),
        "ends_at": local(car, start + datetime.timedelta(hours=hours)),
        "note": "Cleaning",
    }


def test_service_key_form_errors_save_nothing(connected_car, owner, renter, technician):
    client = as_user(owner)
    url = car_url("service_key_issue", connected_car)
    start = hour_from_now(days=2)
    request_booking(connected_car, renter, starts_at=start)  # the car is taken then
    cases = [
        ({}, "This field is required."),
        (
            service_data(connected_car, "nobody@example.test", start + datetime.timedelta(days=1)),
            "needs a carshare account with a verified email",
        ),
        (service_data(connected_car, technician.email, start), "booked or blocked"),
        (service_data(connected_car, technician.email, start, hours=24 * 15), "at most 14 days"),
        (
            service_data(connected_car, owner.email, start + datetime.timedelta(days=1)),
            "You don&#x27;t need a key to your own car.",
        ),
        (
            {**service_data(connected_car, technician.email, start), "ends_at": "soon"},
            "Enter a valid date/time.",
        ),
    ]
    for data, error in cases:
        response = client.post(url, data, headers=HTMX)
        assert response.status_code == 200, data
        assert is_fragment(response)
        assert error in response.content.decode(), data
    response = client.post(url, {})  # without htmx: the page with the errors
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not DigitalKey.objects.filter(kind=KeyKind.SERVICE).exists()


def test_technician_gets_and_uses_a_service_key(connected_car, owner, technician, clock):
    start = hour_from_now(days=1)
    response = as_user(owner).post(
        car_url("service_key_issue", connected_car),
        service_data(connected_car, technician.email, start),
        headers=HTMX,
    )
    assert response.status_code == 200
    assert "Service key sent to tech@example.test" in response.content.decode()
    key = DigitalKey.objects.get(kind=KeyKind.SERVICE)
    assert (key.holder, key.valid_from, key.note) == (technician, start, "Cleaning")

    client = as_user(technician)
    html = client.get(key.get_absolute_url()).content.decode()
    assert "disabled" in unlock_button(html)
    clock.move_to(start + datetime.timedelta(minutes=5), tick=False)
    html = client.get(key.get_absolute_url()).content.decode()
    assert "disabled" not in unlock_button(html)
    assert "Co-drivers" not in html  # service keys are not shared
    response = client.post(key_url("key_unlock", key), headers=HTMX)
    assert response.status_code == 200
    assert VehicleCommand.objects.get(actor=technician).reason == "service"

    # The owner revokes it from the panel: the panel comes back without it being live.
    response = as_user(owner).post(key_url("key_revoke", key), {"confirm": "1"}, headers=HTMX)
    assert response.status_code == 200
    assert 'id="car-keys"' in response.content.decode()
    assert "Key revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.status == "revoked"


def test_renter_cannot_revoke_their_trip_key(active_key, renter):
    client = as_user(renter)
    response = client.post(key_url("key_revoke", active_key), {"confirm": "1"})
    assert response.status_code == 302
    active_key.refresh_from_db()
    assert active_key.status == "active"
    html = client.get(response["Location"]).content.decode()
    assert "You can&#x27;t revoke this key." in html


def test_other_owners_car_is_404(connected_car):
    other = UserFactory(email="other.owner@example.test")
    client = as_user(other)
    assert client.get(car_url("car_keys", connected_car)).status_code == 404
    assert client.post(car_url("car_unlock", connected_car)).status_code == 404


def test_a_press_joining_someone_elses_unlock_follows_it_without_javascript(
    active_key, shared_key, renter, co_driver
):
    as_user(renter).post(key_url("key_unlock", active_key), headers=HTMX)
    unlock = VehicleCommand.objects.get(actor=renter, action="unlock")
    client = as_user(co_driver)
    response = client.post(key_url("key_unlock", shared_key))  # the renter's is on its way
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert "Unlocking the car" in html
    assert f'id="command-{unlock.public_id}"' in html
    assert VehicleCommand.objects.filter(action="unlock", actor=co_driver).count() == 0
