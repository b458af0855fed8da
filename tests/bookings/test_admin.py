"""The bookings admin: lists that filter, history that cannot be edited, and cancellation with
a reason through the same service as everyone else's."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.utils import timezone

from bookings import services
from bookings.models import Booking, BookingStatus, CarBlock
from tests.factories import UserFactory
from vehicles.models import Car, Occupancy

B = BookingStatus
BOOKINGS = "/admin/bookings/booking/"


def at(days: float, hour: int = 10) -> datetime.datetime:
    moment = timezone.now() + datetime.timedelta(days=days)
    return moment.replace(hour=hour, minute=0, second=0, microsecond=0)


@pytest.fixture
def confirmed(instant_car: Car, renter) -> Booking:
    return services.booking_request(
        renter=renter, car=instant_car, starts_at=at(3), ends_at=at(3, hour=16)
    )


@pytest.fixture
def block(bookable_car: Car) -> CarBlock:
    return services.block_create(
        car=bookable_car,
        user=bookable_car.owner,
        starts_at=at(8),
        ends_at=at(9),
        reason="maintenance",
        note="Tyres",
    )


def cancel_action(admin_client, bookings: list[Booking], **extra: str):
    data = {"action": "cancel_with_reason", ACTION_CHECKBOX_NAME: [b.pk for b in bookings]}
    return admin_client.post(BOOKINGS, data | extra)


def test_the_changelist_and_every_filter_load(admin_client, confirmed):
    car = confirmed.car
    filters = [
        {},
        {"status": "confirmed"},
        {"car__id__exact": car.pk},
        {"car__owner__id__exact": car.owner_id},
        {"renter__id__exact": confirmed.renter_id},
        {"instant__exact": "1"},
        {"requested_at__year": confirmed.requested_at.year},
        {"q": confirmed.renter.email},
        {"q": car.licence_plate},
        {"q": str(confirmed.public_id)[:8]},
    ]
    for params in filters:
        response = admin_client.get(BOOKINGS, params)
        assert response.status_code == 200, params
        assert str(confirmed.public_id) in response.content.decode(), params
    for starts in ["past", "today", "week", "month", "later"]:
        assert admin_client.get(BOOKINGS, {"starts": starts}).status_code == 200
    shown = admin_client.get(BOOKINGS, {"starts": "week"}).content.decode()
    assert str(confirmed.public_id) in shown
    hidden = admin_client.get(BOOKINGS, {"status": "requested"}).content.decode()
    assert str(confirmed.public_id) not in hidden


def test_the_change_page_shows_the_history_and_edits_nothing(admin_client, confirmed):
    response = admin_client.get(f"{BOOKINGS}{confirmed.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Instant book" in page  # the system's confirmation, from the event inline
    assert 'name="status"' not in page
    assert 'name="period_0"' not in page
    assert admin_client.get(f"{BOOKINGS}add/").status_code == 403


def test_cancel_asks_for_a_reason_first(admin_client, confirmed):
    response = cancel_action(admin_client, [confirmed])

    assert response.status_code == 200
    assert 'name="reason"' in response.content.decode()
    confirmed.refresh_from_db()
    assert confirmed.status == B.CONFIRMED


def test_cancel_without_a_reason_asks_again(admin_client, confirmed):
    response = cancel_action(admin_client, [confirmed], apply="yes", reason="  ")

    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    confirmed.refresh_from_db()
    assert confirmed.status == B.CONFIRMED


def test_cancel_goes_through_the_service_with_the_admin_as_actor(admin_client, admin, confirmed):
    response = cancel_action(admin_client, [confirmed], apply="yes", reason="Car reported stolen")

    assert response.status_code == 302
    confirmed.refresh_from_db()
    assert (confirmed.status, confirmed.cancelled_by) == (B.CANCELLED, "admin")
    assert (confirmed.cancellation_fee, confirmed.refund) == (0, confirmed.price)
    last = confirmed.events.order_by("pk").last()
    assert (last.actor, last.old_status, last.new_status, last.reason) == (
        admin,
        "confirmed",
        "cancelled",
        "Car reported stolen",
    )
    assert not Occupancy.objects.filter(booking=confirmed).exists()  # the car is free again
    messages = [str(m) for m in admin_client.get(BOOKINGS).context["messages"]]
    assert messages == ["Cancelled 1 booking."]


def test_cancel_reports_what_it_cannot_cancel(admin_client, confirmed, renter):
    later = services.booking_request(
        renter=renter, car=confirmed.car, starts_at=at(5), ends_at=at(5, hour=14)
    )
    services.booking_cancel(booking=confirmed, user=renter)

    cancel_action(admin_client, [confirmed, later], apply="yes", reason="Fleet check")

    later.refresh_from_db()
    assert later.status == B.CANCELLED
    assert confirmed.events.filter(reason="Fleet check").count() == 0
    messages = [str(m) for m in admin_client.get(BOOKINGS).context["messages"]]
    assert any(
        str(confirmed.public_id) in message and "Not possible now" in message
        for message in messages
    )
    assert "Cancelled 1 booking." in messages


def test_staff_without_the_change_permission_get_no_cancel_action(client, confirmed):
    from django.contrib.auth.models import Permission

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_booking"))
    client.force_login(viewer)

    assert client.get(BOOKINGS).status_code == 200
    cancel_action(client, [confirmed], apply="yes", reason="Not mine to do")

    confirmed.refresh_from_db()
    assert confirmed.status == B.CONFIRMED


@pytest.mark.parametrize(
    "url",
    [BOOKINGS, "/admin/bookings/carblock/", "/admin/vehicles/occupancy/"],
)
def test_non_staff_are_sent_to_sign_in(client, renter, url):
    client.force_login(renter)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_blocks_and_holds_are_listed(admin_client, confirmed, block):
    blocks = admin_client.get("/admin/bookings/carblock/", {"reason": "maintenance"})
    assert blocks.status_code == 200
    assert "Tyres" in blocks.content.decode()
    for params in [{}, {"car__id__exact": block.car_id}, {"starts": "month"}]:
        holds = admin_client.get("/admin/vehicles/occupancy/", params)
        assert holds.status_code == 200
        page = holds.content.decode()
        assert "trip (with the buffer after it)" in page
        assert "owner&#x27;s block" in page
    hold = Occupancy.objects.get(block=block)
    assert admin_client.get(f"/admin/vehicles/occupancy/{hold.pk}/change/").status_code == 200
    assert admin_client.get("/admin/vehicles/occupancy/add/").status_code == 403


def test_removing_a_block_frees_the_car(admin_client, block):
    admin_client.post(
        "/admin/bookings/carblock/",
        {"action": "remove_blocks", ACTION_CHECKBOX_NAME: [block.pk]},
    )

    assert not CarBlock.objects.filter(pk=block.pk).exists()
    assert not Occupancy.objects.filter(block=block.pk).exists()
