"""The booking pages through HTTP, as renter, owner, stranger and anonymous visitor."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.urls import reverse

from bookings import ical, services
from bookings.models import Booking, BookingStatus, CarBlock
from keys import grants
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.factories import CarFactory, RenterFactory, UserFactory
from vehicles.models import Car

pytestmark = pytest.mark.django_db

B = BookingStatus
HTMX = {"HX-Request": "true"}


def local(car: Car, moment: datetime.datetime) -> str:
    """What a datetime-local input sends for `moment` on this car's page."""
    return moment.astimezone(zoneinfo.ZoneInfo(car.time_zone)).strftime("%Y-%m-%dT%H:%M")


def period(car: Car, starts_at: datetime.datetime, hours: float = 4) -> dict[str, str]:
    return {
        "starts_at": local(car, starts_at),
        "ends_at": local(car, starts_at + datetime.timedelta(hours=hours)),
    }


def car_url(name: str, car: Car) -> str:
    return reverse(f"bookings:{name}", args=[car.public_id])


def booking_url(name: str, booking: Booking) -> str:
    return reverse(f"bookings:{name}", args=[booking.public_id])


def assert_varies_on_htmx(response) -> None:
    assert "HX-Request" in response.get("Vary", "")


# --- the car page: booking form, quote, availability -----------------------------------------


def test_anonymous_sees_the_form_and_sign_in_to_book(client, instant_car):
    response = client.get(instant_car.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    assert "Sign in to book" in html
    assert 'type="datetime-local"' in html
    assert instant_car.time_zone in html  # the page says which zone the times are in
    assert "Book now" not in html


def test_renter_sees_book_now_on_an_instant_car(renter_client, instant_car):
    html = renter_client.get(instant_car.get_absolute_url()).content.decode()
    assert "Book now" in html
    assert "Sign in to book" not in html


def test_renter_sees_request_to_book_on_a_request_car(renter_client, request_car):
    html = renter_client.get(request_car.get_absolute_url()).content.decode()
    assert "Request to book" in html


def test_renter_without_licence_is_told_why_and_where(stranger_client, instant_car):
    response = stranger_client.get(car_url("booking_request", instant_car))
    html = response.content.decode()
    assert "driving licence" in html
    assert reverse("accounts:profile") in html
    assert "Book now" not in html


def test_owner_sees_links_to_manage_not_a_booking_form(owner_client, instant_car):
    html = owner_client.get(instant_car.get_absolute_url()).content.decode()
    assert car_url("car_calendar", instant_car) in html
    assert "Book now" not in html
    # The owner panels the vehicles pages put there are still there.
    assert 'id="car-connection"' in html


def test_owner_opening_the_booking_page_goes_to_the_car(owner_client, instant_car):
    response = owner_client.get(car_url("booking_request", instant_car))
    assert response.status_code == 302
    assert response["Location"] == instant_car.get_absolute_url()


def test_unconnected_car_cannot_be_found_or_booked(renter_client, renter, car):
    # Not public until it can be opened for a renter (tests/vehicles/test_public_cars.py).
    assert renter_client.get(car.get_absolute_url()).status_code == 404
    response = renter_client.post(
        car_url("booking_request", car), period(car, hour_from_now(days=2))
    )
    assert response.status_code == 404
    assert not Booking.objects.filter(renter=renter).exists()


def test_quote_partial_shows_price_and_availability(renter_client, instant_car):
    starts_at = hour_from_now(days=2)
    response = renter_client.get(
        car_url("booking_quote", instant_car), period(instant_car, starts_at, hours=3), headers=HTMX
    )
    assert response.status_code == 200
    assert_varies_on_htmx(response)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="booking-quote"')
    assert "<html" not in html
    assert "€24.00" in html  # 3 h at €8
    assert "Available" in html


def test_quote_says_not_available_over_a_taken_time(renter_client, instant_car):
    starts_at = hour_from_now(days=2)
    request_booking(instant_car, RenterFactory(), starts_at=starts_at, hours=4)
    response = renter_client.get(
        car_url("booking_quote", instant_car),
        period(instant_car, starts_at + datetime.timedelta(hours=1), hours=1),
        headers=HTMX,
    )
    assert "Not available" in response.content.decode()


def test_quote_lists_busy_times_in_the_cars_zone(renter_client, instant_car):
    starts_at = hour_from_now(days=2)
    request_booking(instant_car, RenterFactory(), starts_at=starts_at, hours=4)
    response = renter_client.get(car_url("booking_quote", instant_car), headers=HTMX)
    shown = starts_at.astimezone(zoneinfo.ZoneInfo(instant_car.time_zone)).strftime("%H:%M")
    html = response.content.decode()
    assert "Taken in the next four weeks" in html
    assert shown in html


@pytest.mark.parametrize(
    "params",
    [
        {"starts_at": "garbage", "ends_at": "2026-13-45T99:99"},
        {"starts_at": "9999-12-31T23:59", "ends_at": "9999-12-31T23:59"},
        {"starts_at": "0001-01-01T00:00", "ends_at": "0001-01-01T01:00"},
        {"starts_at": "2030-01-01T12:00"},
        {"starts_at": "2030-01-02T12:00", "ends_at": "2030-01-01T12:00"},
        {"starts_at": "2030-03-31T02:30", "ends_at": "2030-03-31T05:00"},  # DST gap (Europe)
        {"starts_at": "\x00", "ends_at": ""},
    ],
)
@pytest.mark.parametrize("htmx", [True, False])
def test_quote_with_bad_input_answers_200(client, instant_car, params, htmx):
    headers = HTMX if htmx else {}
    response = client.get(car_url("booking_quote", instant_car), params, headers=headers)
    assert response.status_code == 200
    assert "€" not in response.content.decode().split('id="booking-quote"')[1].split("</dl>")[0]


def test_quote_end_before_start_says_so(client, instant_car):
    starts_at = hour_from_now(days=2)
    params = {
        "starts_at": local(instant_car, starts_at),
        "ends_at": local(instant_car, starts_at - datetime.timedelta(hours=1)),
    }
    response = client.get(car_url("booking_quote", instant_car), params, headers=HTMX)
    assert "The end must be after the start." in response.content.decode()


def test_quote_without_htmx_is_the_car_page(client, instant_car):
    response = client.get(
        car_url("booking_quote", instant_car), period(instant_car, hour_from_now(days=2))
    )
    html = response.content.decode()
    assert "<html" in html
    assert "€32.00" in html  # 4 h at €8
    assert_varies_on_htmx(response)


def test_quote_of_unlisted_car_is_404_for_others(renter_client, instant_car):
    instant_car.is_listed = False
    instant_car.save(update_fields=["is_listed"])
    assert renter_client.get(car_url("booking_quote", instant_car)).status_code == 404
    assert renter_client.get(car_url("booking_request", instant_car)).status_code == 404


def _quote_text(html: str) -> str:
    """The #booking-quote region without the busy list under it."""
    return html.split('id="booking-quote"')[1].split("busy-heading")[0]


@pytest.mark.parametrize(
    ("rules", "starts_in", "hours", "refusal"),
    [
        ({}, -3, 4, "The trip can&#x27;t start in the past."),
        ({"min_notice_hours": 24}, 2, 4, "This car needs 24 hours notice: start the trip later."),
        ({"min_duration_hours": 6}, 24, 2, "Trips with this car last at least 6 hours."),
        ({"max_duration_days": 2}, 24, 3 * 24, "Trips with this car last at most 2 days."),
    ],
    ids=["past_start", "min_notice", "too_short", "too_long"],
)
def test_the_quote_refuses_what_booking_refuses(
    renter_client, renter, instant_car, rules, starts_in, hours, refusal
):
    for field, value in rules.items():
        setattr(instant_car, field, value)
    instant_car.save()
    times = period(instant_car, hour_from_now(hours=starts_in), hours=hours)

    booked = renter_client.post(car_url("booking_request", instant_car), times)
    assert booked.status_code == 200
    assert refusal in _quote_text(booked.content.decode())
    assert not Booking.objects.filter(renter=renter).exists()

    for headers in (HTMX, {}):
        quoted = renter_client.get(car_url("booking_quote", instant_car), times, headers=headers)
        assert quoted.status_code == 200
        quote = _quote_text(quoted.content.decode())
        assert refusal in quote  # the same words as booking it
        assert "€" not in quote  # and no price for a trip that cannot be booked
        assert "quote-available" not in quote


def test_the_quote_of_a_taken_time_says_what_booking_says(renter_client, instant_car):
    starts_at = hour_from_now(days=2)
    request_booking(instant_car, RenterFactory(), starts_at=starts_at, hours=4)
    times = period(instant_car, starts_at + datetime.timedelta(hours=1), hours=1)
    quote = _quote_text(
        renter_client.get(
            car_url("booking_quote", instant_car), times, headers=HTMX
        ).content.decode()
    )
    assert str(services.ERROR_MESSAGES["not_available"]) in quote
    assert "€" not in quote
    assert "taken from" in quote  # and when it is taken, to pick other times


# --- requesting and booking ------------------------------------------------------------------


def test_book_now_confirms_and_redirects_to_the_booking(renter_client, renter, instant_car):
    response = renter_client.post(
        car_url("booking_request", instant_car), period(instant_car, hour_from_now(days=2))
    )
    booking = Booking.objects.get(renter=renter)
    assert response.status_code == 302
    assert response["Location"] == booking.get_absolute_url()
    assert booking.status == B.CONFIRMED


def test_request_to_book_waits_for_the_owner(renter_client, renter, request_car):
    starts_at = hour_from_now(days=2)
    response = renter_client.post(
        car_url("booking_request", request_car), period(request_car, starts_at, hours=5)
    )
    booking = Booking.objects.get(renter=renter)
    assert response.status_code == 302
    assert booking.status == B.REQUESTED
    # Entered in the car's zone, stored in UTC.
    assert booking.starts_at == starts_at
    assert booking.ends_at == starts_at + datetime.timedelta(hours=5)


def test_check_price_without_javascript_shows_the_quote_and_books_nothing(
    renter_client, instant_car
):
    data = {**period(instant_car, hour_from_now(days=2), hours=2), "quote": "1"}
    response = renter_client.post(car_url("booking_request", instant_car), data)
    assert response.status_code == 200
    assert "€16.00" in response.content.decode()
    assert not Booking.objects.exists()


def test_taken_time_is_a_form_error_not_a_500(renter_client, renter, instant_car):
    starts_at = hour_from_now(days=2)
    request_booking(instant_car, RenterFactory(), starts_at=starts_at)
    response = renter_client.post(
        car_url("booking_request", instant_car), period(instant_car, starts_at, hours=2)
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert str(services.ERROR_MESSAGES["not_available"]) in html
    assert 'role="alert"' in html
    assert not Booking.objects.filter(renter=renter).exists()


def test_rule_refusal_is_shown_on_the_page(renter_client, instant_car):
    instant_car.min_duration_hours = 6
    instant_car.save(update_fields=["min_duration_hours"])
    response = renter_client.post(
        car_url("booking_request", instant_car), period(instant_car, hour_from_now(days=2), 2)
    )
    assert response.status_code == 200
    assert "at least 6 hours" in response.content.decode()


def test_garbage_booking_post_is_a_form_error(renter_client, instant_car):
    response = renter_client.post(
        car_url("booking_request", instant_car), {"starts_at": "x", "ends_at": ""}
    )
    assert response.status_code == 200
    assert 'aria-invalid="true"' in response.content.decode()
    assert not Booking.objects.exists()


def test_anonymous_post_is_sent_to_sign_in(client, instant_car):
    response = client.post(
        car_url("booking_request", instant_car), period(instant_car, hour_from_now(days=2))
    )
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert not Booking.objects.exists()


# --- a booking's page ------------------------------------------------------------------------


def test_renter_sees_the_booking_with_times_in_the_cars_zone(renter_client, requested_booking):
    response = renter_client.get(requested_booking.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    zone = zoneinfo.ZoneInfo(requested_booking.car.time_zone)
    assert requested_booking.starts_at.astimezone(zone).strftime("%H:%M") in html
    assert requested_booking.car.time_zone in html
    assert "Waiting for the owner" in html
    assert "Approve" not in html  # the renter cannot answer their own request
    assert "Cancel booking" in html


def test_owner_sees_approve_and_decline(owner_client, requested_booking):
    html = owner_client.get(requested_booking.get_absolute_url()).content.decode()
    assert "Approve" in html
    assert "Decline" in html
    assert "Rick Renter" in html


def test_staff_can_see_any_booking(client, requested_booking):
    client.force_login(RenterFactory(is_staff=True))
    assert client.get(requested_booking.get_absolute_url()).status_code == 200


def test_history_shows_actor_and_moves(owner_client, confirmed_booking):
    html = owner_client.get(confirmed_booking.get_absolute_url()).content.decode()
    assert "Rick Renter" in html
    assert "Waiting for the owner → <strong>Confirmed</strong>" in html
    assert "Olga Owner" in html


def test_approve_with_htmx_swaps_the_status_panel(owner_client, requested_booking):
    response = owner_client.post(booking_url("booking_confirm", requested_booking), headers=HTMX)
    assert response.status_code == 200
    assert_varies_on_htmx(response)
    assert "booking-changed" in response["HX-Trigger"]
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="booking-status"')
    assert "Confirmed" in html
    requested_booking.refresh_from_db()
    assert requested_booking.status == B.CONFIRMED


def test_approve_without_javascript_redirects(owner_client, requested_booking):
    response = owner_client.post(booking_url("booking_confirm", requested_booking))
    assert response.status_code == 302
    assert response["Location"] == requested_booking.get_absolute_url()


def test_renter_cannot_approve(renter_client, requested_booking):
    response = renter_client.post(booking_url("booking_confirm", requested_booking), headers=HTMX)
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    requested_booking.refresh_from_db()
    assert requested_booking.status == B.REQUESTED


def test_approving_twice_shows_the_refusal(owner_client, confirmed_booking):
    response = owner_client.post(booking_url("booking_confirm", confirmed_booking))
    assert response.status_code == 200
    assert "Not possible now" in response.content.decode()


def test_decline_asks_first_and_records_the_reason(owner_client, requested_booking):
    url = booking_url("booking_decline", requested_booking)
    page = owner_client.post(url, {"reason": "In the garage"})  # one tap: only the question
    fragment = owner_client.post(url, {"reason": "In the garage"}, headers=HTMX)
    for response in (page, fragment):
        html = response.content.decode()
        assert response.status_code == 200
        assert "Decline this request?" in html
        assert 'name="confirm" value="1"' in html
        assert 'name="reason" value="In the garage"' in html  # carried to the confirmation
    assert "<html" not in fragment.content.decode()
    requested_booking.refresh_from_db()
    assert requested_booking.status == B.REQUESTED

    response = owner_client.post(url, {"reason": "In the garage", "confirm": "1"})
    assert response.status_code == 302
    requested_booking.refresh_from_db()
    assert requested_booking.status == B.DECLINED
    assert requested_booking.events.last().reason == "In the garage"


def test_decline_by_renter_is_refused(renter_client, requested_booking):
    response = renter_client.post(
        booking_url("booking_decline", requested_booking), {"confirm": "1"}, headers=HTMX
    )
    assert response.status_code == 200
    requested_booking.refresh_from_db()
    assert requested_booking.status == B.REQUESTED


def test_cancel_asks_first_and_shows_the_refund(renter_client, confirmed_booking):
    response = renter_client.get(booking_url("booking_cancel", confirmed_booking), headers=HTMX)
    assert response.status_code == 200
    assert_varies_on_htmx(response)
    html = response.content.decode()
    assert f"you get €{confirmed_booking.price:.2f} back and pay €0.00" in html  # 3 days ahead
    assert "Yes, cancel the booking" in html
    confirmed_booking.refresh_from_db()
    assert confirmed_booking.status == B.CONFIRMED


def test_late_cancel_shows_half_back(renter_client, confirmed_booking, clock):
    clock.move_to(confirmed_booking.starts_at - datetime.timedelta(hours=2), tick=False)
    html = renter_client.get(booking_url("booking_cancel", confirmed_booking)).content.decode()
    half = confirmed_booking.price / 2
    assert f"you get €{half:.2f} back and pay €{half:.2f}" in html


def test_owner_is_told_the_renter_gets_everything_back(owner_client, confirmed_booking, clock):
    clock.move_to(confirmed_booking.starts_at - datetime.timedelta(hours=2), tick=False)
    html = owner_client.get(booking_url("booking_cancel", confirmed_booking)).content.decode()
    assert f"the renter gets all of the €{confirmed_booking.price:.2f} back" in html


def test_keep_it_folds_the_question_away(renter_client, confirmed_booking):
    url = booking_url("booking_cancel", confirmed_booking)
    response = renter_client.get(url, {"keep": "1"}, headers=HTMX)
    html = response.content.decode()
    assert "Yes, cancel the booking" not in html
    assert "Cancel booking" in html


def test_renter_cancels_with_a_reason(renter_client, confirmed_booking):
    response = renter_client.post(
        booking_url("booking_cancel", confirmed_booking), {"reason": "Plans changed"}
    )
    assert response.status_code == 302
    confirmed_booking.refresh_from_db()
    assert confirmed_booking.status == B.CANCELLED
    assert confirmed_booking.refund == confirmed_booking.price
    assert confirmed_booking.events.last().reason == "Plans changed"


def test_owner_cancels_with_htmx(owner_client, confirmed_booking):
    response = owner_client.post(booking_url("booking_cancel", confirmed_booking), headers=HTMX)
    assert response.status_code == 200
    assert "Cancelled" in response.content.decode()


def test_cancelling_a_cancelled_booking_is_refused(renter_client, confirmed_booking, renter):
    services.booking_cancel(booking=confirmed_booking, user=renter)
    response = renter_client.post(booking_url("booking_cancel", confirmed_booking), headers=HTMX)
    assert response.status_code == 200
    assert "Not possible now" in response.content.decode()


def test_renter_ends_an_active_trip(renter_client, active_booking):
    html = renter_client.get(active_booking.get_absolute_url()).content.decode()
    assert "End trip now" in html
    response = renter_client.post(
        booking_url("booking_end", active_booking), {"confirm": "1"}, headers=HTMX
    )
    assert response.status_code == 200
    active_booking.refresh_from_db()
    assert active_booking.status == B.COMPLETED


def test_end_trip_now_asks_first(renter_client, active_booking):
    """One tap asks; only the confirmation ends the trip, with JavaScript or without."""
    url = booking_url("booking_end", active_booking)
    page = renter_client.post(url)  # no JavaScript: a page with the question and a real form
    fragment = renter_client.post(url, headers=HTMX)  # htmx: the question in place of the button
    for response in (page, fragment):
        html = response.content.decode()
        assert response.status_code == 200
        assert "End the trip now?" in html
        assert f'action="{url}"' in html
        assert 'name="confirm" value="1"' in html
        assert_varies_on_htmx(response)
    assert "<html" in page.content.decode()
    assert "<html" not in fragment.content.decode()
    assert 'hx-target="#booking-status"' in fragment.content.decode()
    active_booking.refresh_from_db()
    assert active_booking.status == B.ACTIVE

    response = renter_client.post(url, {"confirm": "1"})
    assert (response.status_code, response["Location"]) == (302, active_booking.get_absolute_url())
    active_booking.refresh_from_db()
    assert active_booking.status == B.COMPLETED


def test_ending_a_trip_not_started_is_refused(renter_client, confirmed_booking):
    response = renter_client.post(booking_url("booking_end", confirmed_booking), {"confirm": "1"})
    assert response.status_code == 200
    assert "Not possible now" in response.content.decode()
    confirmed_booking.refresh_from_db()
    assert confirmed_booking.status == B.CONFIRMED


def test_owner_cannot_end_the_trip(owner_client, active_booking):
    response = owner_client.post(
        booking_url("booking_end", active_booking), {"confirm": "1"}, headers=HTMX
    )
    assert response.status_code == 200
    active_booking.refresh_from_db()
    assert active_booking.status == B.ACTIVE


def test_history_partial(renter_client, confirmed_booking):
    response = renter_client.get(booking_url("booking_history", confirmed_booking), headers=HTMX)
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<section id="booking-history"')


# --- strangers and anonymous visitors --------------------------------------------------------


BOOKING_URLS = [
    ("get", "booking_detail"),
    ("get", "booking_history"),
    ("post", "booking_confirm"),
    ("post", "booking_decline"),
    ("get", "booking_cancel"),
    ("post", "booking_cancel"),
    ("post", "booking_end"),
]


@pytest.mark.parametrize(("method", "name"), BOOKING_URLS)
def test_stranger_gets_404_on_booking_urls(stranger_client, requested_booking, method, name):
    response = getattr(stranger_client, method)(booking_url(name, requested_booking))
    assert response.status_code == 404
    requested_booking.refresh_from_db()
    assert requested_booking.status == B.REQUESTED


@pytest.mark.parametrize(("method", "name"), BOOKING_URLS)
def test_anonymous_is_sent_to_sign_in_on_booking_urls(client, requested_booking, method, name):
    response = getattr(client, method)(booking_url(name, requested_booking))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize(("method", "name"), [("get", "car_calendar"), ("post", "block_create")])
def test_stranger_and_renter_get_404_on_the_calendar(client, renter, stranger, car, method, name):
    for person in (renter, stranger):
        client.force_login(person)
        assert getattr(client, method)(car_url(name, car)).status_code == 404


def test_stranger_gets_404_removing_a_block(stranger_client, car, owner):
    block = services.block_create(
        car=car, user=owner, starts_at=hour_from_now(days=1), ends_at=hour_from_now(days=2),
        reason="maintenance",
    )  # fmt: skip
    response = stranger_client.post(reverse("bookings:block_delete", args=[block.public_id]))
    assert response.status_code == 404
    assert CarBlock.objects.filter(pk=block.pk).exists()


def test_feed_token_of_one_car_does_not_open_another(client, car):
    other = CarFactory()
    url = reverse("bookings:car_ical", args=[other.public_id, ical.feed_token(car)])
    assert client.get(url).status_code == 404


# --- lists -----------------------------------------------------------------------------------


def test_my_trips_groups_and_pins_queries(
    renter_client, renter, request_car, django_assert_num_queries
):
    for days in (2, 4, 6):
        request_booking(request_car, renter, starts_at=hour_from_now(days=days))
    cancelled = request_booking(request_car, renter, starts_at=hour_from_now(days=8))
    services.booking_cancel(booking=cancelled, user=renter)
    # session, user, then one query per group, whatever the number of trips
    with django_assert_num_queries(5):
        response = renter_client.get(reverse("bookings:my_trips"))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="booking-item ') == 4
    assert "Upcoming" in html
    assert "Past" in html


def test_my_trips_query_count_does_not_grow(
    renter_client, renter, request_car, django_assert_num_queries
):
    request_booking(request_car, renter, starts_at=hour_from_now(days=2))
    with django_assert_num_queries(5):
        renter_client.get(reverse("bookings:my_trips"))


def test_owner_bookings_puts_requests_first_and_pins_queries(
    owner_client, request_car, django_assert_num_queries
):
    for days in (2, 4, 6):
        request_booking(request_car, RenterFactory(), starts_at=hour_from_now(days=days))
    confirmed = request_booking(request_car, RenterFactory(), starts_at=hour_from_now(days=8))
    services.booking_confirm(booking=confirmed, user=request_car.owner)
    with django_assert_num_queries(3):  # session, user, the bookings with car and renter
        response = owner_client.get(reverse("bookings:owner_bookings"))
    html = response.content.decode()
    assert html.count(">Approve<") == 3
    assert html.index("Waiting for your answer") < html.index("Upcoming")


def test_owner_bookings_approve_from_the_list(owner_client, requested_booking):
    response = owner_client.post(booking_url("booking_confirm", requested_booking))
    assert response.status_code == 302
    requested_booking.refresh_from_db()
    assert requested_booking.status == B.CONFIRMED


def test_lists_show_only_ones_own(stranger_client, requested_booking):
    assert "booking-item" not in stranger_client.get(reverse("bookings:my_trips")).content.decode()
    html = stranger_client.get(reverse("bookings:owner_bookings")).content.decode()
    assert "booking-item" not in html


# --- the owner's calendar --------------------------------------------------------------------


def test_calendar_shows_the_months_bookings_and_blocks(owner_client, owner, confirmed_booking):
    car = confirmed_booking.car
    services.block_create(
        car=car, user=owner, starts_at=hour_from_now(days=5), ends_at=hour_from_now(days=5, hours=3),
        reason="maintenance",
    )  # fmt: skip
    start = confirmed_booking.starts_at.astimezone(zoneinfo.ZoneInfo(car.time_zone))
    response = owner_client.get(car_url("car_calendar", car), {"month": f"{start:%Y-%m}"})
    assert response.status_code == 200
    html = response.content.decode()
    assert confirmed_booking.get_absolute_url() in html
    assert f"{start:%B %Y}" in html
    assert "Previous month" in html
    assert "Next month" in html
    assert ical.feed_token(car) in html


def test_calendar_shows_service_windows_with_who_and_note(owner_client, owner, car):
    technician = UserFactory(email="tech@example.test", name="Tina Technician")
    start = hour_from_now(days=5)
    grants.service_key_issue(
        car=car,
        user=owner,
        email=technician.email,
        starts_at=start,
        ends_at=start + datetime.timedelta(hours=3),
        note="New tyres",
    )
    local = start.astimezone(zoneinfo.ZoneInfo(car.time_zone))
    response = owner_client.get(car_url("car_calendar", car), {"month": f"{local:%Y-%m}"})
    html = response.content.decode()
    assert "month-entry-service" in html
    assert "Service: Tina Technician (New tyres)" in html
    assert "Service windows this month" in html
    assert f'datetime="{local.isoformat()}"' in html
    assert f"{local:%a %-d %b %H:%M}" in html


@pytest.mark.parametrize("month", ["garbage", "2026-13", "0-1", "99999-01", ""])
def test_calendar_with_bad_month_shows_this_month(owner_client, car, month):
    assert owner_client.get(car_url("car_calendar", car), {"month": month}).status_code == 200


def test_block_create_and_remove(owner_client, car):
    starts_at = hour_from_now(days=3)
    data = {**period(car, starts_at, hours=6), "reason": "maintenance", "note": "Tyres"}
    response = owner_client.post(car_url("block_create", car), data)
    assert response.status_code == 302
    block = CarBlock.objects.get(car=car)
    assert block.period.lower == starts_at
    assert block.note == "Tyres"
    html = owner_client.get(response["Location"]).content.decode()
    assert "Tyres" in html

    response = owner_client.post(reverse("bookings:block_delete", args=[block.public_id]))
    assert response.status_code == 302
    assert not CarBlock.objects.exists()


def test_block_over_a_booking_is_a_form_error(owner_client, confirmed_booking):
    car = confirmed_booking.car
    data = {**period(car, confirmed_booking.starts_at, hours=1), "reason": "personal"}
    response = owner_client.post(car_url("block_create", car), data)
    assert response.status_code == 200
    assert str(services.ERROR_MESSAGES["not_available"]) in response.content.decode()
    assert not CarBlock.objects.exists()


def test_block_with_garbage_is_a_form_error(owner_client, car):
    response = owner_client.post(
        car_url("block_create", car), {"starts_at": "x", "ends_at": "y", "reason": "nope"}
    )
    assert response.status_code == 200
    assert 'aria-invalid="true"' in response.content.decode()
