"""Booking pages: the booking form on the car page (live quote), a booking's page with the
actions its viewer may take, the renter's trips, the owner's requests and bookings, and the
owner's month calendar per car with blocks and a private iCal feed.

Every action has one URL and one view: a normal request is redirected to the page it acted on
(or gets that page back with the error), an htmx request gets the region it changed. Refusals
from the services (BookingError) become messages on the page, never a 500.
"""

from __future__ import annotations

import calendar
import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from accounts.models import User
from bookings import forms, ical, pricing, selectors, services
from bookings.models import ALLOWED_MOVES, Booking, BookingStatus, CarBlock
from carshare.http import (
    AuthedHtmxRequest,
    HtmxRequest,
    ask_to_confirm,
    is_confirmed,
    render_page_or_partial,
)
from keys import selectors as key_selectors
from keys import views as key_views
from vehicles import occupancy
from vehicles import selectors as car_selectors
from vehicles.models import Car

B = BookingStatus
CAR_PAGE = "vehicles/car_detail.html"
BOOKING_PANEL = "bookings/_booking_panel.html"
BOOKING_PAGE = "bookings/booking_detail.html"
CALENDAR_PAGE = "bookings/car_calendar.html"
# How far ahead the car page lists the times a car is taken.
BUSY_AHEAD = datetime.timedelta(weeks=4)
# Tells other regions (the history on the booking page) that the status changed.
BOOKING_EVENT = "booking-changed"
# How the status region of an open booking page follows the trip: often while it runs, starts
# soon or its end lock is pending (BOOKING_PAGE_POLL_SECONDS), now and then while it is
# further off, not at all once nothing more can change.
POLL_CLOSE_TO_START = datetime.timedelta(hours=1)
POLL_NOW_AND_THEN_S = 60


# --- Booking a car: the form on the car page -------------------------------------------------


def booking_quote(request: HtmxRequest, public_id: UUID) -> HttpResponse:
    """Price and availability for the times picked so far: the `#booking-quote` region for htmx
    (refreshed as the renter changes the times), the car page with it otherwise."""
    car = car_selectors.car_for_viewer(user=request.user, public_id=public_id)  # or 404
    form = forms.BookingPeriodForm(request.GET or None, car=car)
    context = _booking_context(request, car, form)
    if request.htmx:
        response = render(request, f"{BOOKING_PANEL}#booking-quote", context)
        patch_vary_headers(response, ["HX-Request"])
        return response
    return _car_page(request, car, context)


@require_http_methods(["GET", "POST"])
def booking_request(request: HtmxRequest, public_id: UUID) -> HttpResponse:
    """The car page with the booking form filled in; POST asks for the car ("Check price"
    only re-renders the page with the quote, for browsers without JavaScript)."""
    car = car_selectors.car_for_viewer(user=request.user, public_id=public_id)  # or 404
    if request.user.is_authenticated and car.owner_id == request.user.pk:
        return redirect(car)  # owners manage their car from its page; they cannot book it
    if request.method != "POST":
        form = forms.BookingPeriodForm(request.GET or None, car=car)
        return _car_page(request, car, _booking_context(request, car, form))
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("bookings:booking_request", args=[car.public_id]))
    form = forms.BookingPeriodForm(request.POST, car=car)
    if form.is_valid() and "quote" not in request.POST:
        try:
            booking = services.booking_request(
                renter=request.user,
                car=car,
                starts_at=form.cleaned_data["starts_at"],
                ends_at=form.cleaned_data["ends_at"],
            )
        except services.BookingError as refusal:  # "not available" among them: a 200 page
            form.add_error(None, str(refusal))
        else:
            if booking.instant:
                messages.success(request, _("Booked: the car is yours for these times."))
            else:
                messages.success(
                    request, _("Request sent: the owner has been asked to confirm it.")
                )
            return redirect(booking)
    return _car_page(request, car, _booking_context(request, car, form))


def _booking_context(request: HtmxRequest, car: Car, form: forms.BookingPeriodForm) -> dict:
    """What the booking panel shows: the quote for valid times, whether the car is free then,
    what stands in the way of this viewer booking, and when the car is taken."""
    now = timezone.now()
    quote = None
    taken: list[tuple[datetime.datetime, datetime.datetime, str]] = []
    if form.is_bound and form.is_valid():
        starts_at, ends_at = form.cleaned_data["starts_at"], form.cleaned_data["ends_at"]
        try:
            quote = services.booking_quote(car=car, starts_at=starts_at, ends_at=ends_at)
        except services.BookingError as refusal:
            form.add_error(None, str(refusal))  # the very words booking these times would get
            if refusal.code == "not_available":
                # Say when it is taken, so the renter can pick other times. The trip's own
                # buffer must fit before the next hold too, as booking_request checks.
                buffer = datetime.timedelta(minutes=car.buffer_minutes)
                taken = occupancy.busy_intervals(car=car, start=starts_at, end=ends_at + buffer)
    busy = occupancy.busy_intervals(car=car, start=now, end=now + BUSY_AHEAD)
    return {
        "car": car,
        "booking_form": form,
        "quote": quote,
        "quote_taken": taken,
        "busy": busy,
        "busy_loaded": True,
        "booking_blocker": _booking_blocker(request.user, car, form),
    }


def _booking_blocker(user: Any, car: Car, form: forms.BookingPeriodForm) -> dict | None:
    """Why this viewer cannot book (shown before they try), or None."""
    if not user.is_authenticated:
        return None  # the panel offers "Sign in to book"
    through = None
    if form.is_bound and not form.errors:
        through = timezone.localdate(form.cleaned_data["ends_at"], form.zone)
    if not user.has_valid_licence(through=through):
        return {
            "reason": _(
                "Add a driving licence that is valid through the end of the trip to your "
                "profile before you book."
            ),
            "link": reverse("accounts:profile"),
            "link_text": _("Go to your profile"),
        }
    return None


def _car_page(request: HtmxRequest, car: Car, context: dict[str, Any]) -> HttpResponse:
    """The car page as a renter sees it, with the booking panel filled in."""
    context = {
        "car": car,
        "is_owner": False,
        "is_connected": car_selectors.car_is_connected(car),
        **context,
    }
    response = render(request, CAR_PAGE, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- A booking's page and its actions --------------------------------------------------------


@login_required
@require_GET
def booking_detail(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    booking = selectors.booking_for_participant(user=request.user, public_id=public_id)
    return _booking_page(request, booking, partial="")


@login_required
@require_GET
def booking_status(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The status region, polled by an open booking page while the trip can still change (the
    whole page without htmx). 204 while it would show what the page has (`seen`), so polling
    costs little and an open question (End trip now?) is not wiped by a poll."""
    booking = selectors.booking_for_participant(user=request.user, public_id=public_id)
    if not request.htmx:
        return _booking_page(request, booking, partial="booking-status")
    context = _booking_detail_context(request.user, booking)
    seen = request.GET.get("seen")
    if seen is not None and context["status_poll"] and seen == context["status_poll"]["seen"]:
        response = HttpResponse(status=204)
        patch_vary_headers(response, ["HX-Request"])
        return response
    response = render_page_or_partial(request, BOOKING_PAGE, "booking-status", context)
    # The key panel and the history follow (the trip started, ended or was cancelled).
    return trigger_client_event(response, BOOKING_EVENT)


@login_required
@require_GET
def booking_history(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The event history, refreshed after an action on the page."""
    booking = selectors.booking_for_participant(user=request.user, public_id=public_id)
    return _booking_page(request, booking, partial="booking-history")


@login_required
@require_POST
def booking_confirm(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    booking = selectors.booking_for_participant(user=request.user, public_id=public_id)
    try:
        booking = services.booking_confirm(booking=booking, user=request.user)
    except services.BookingError as refusal:
        return _action_refused(request, booking, str(refusal))
    return _action_done(request, booking, _("Approved: the renter has been told."))


@login_required
@require_POST
def booking_decline(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    booking = selectors.booking_for_participant(user=request.user, public_id=public_id)
    form = forms.BookingReasonForm(request.POST)
    if not form.is_valid():
        return _action_refused(request, booking, _("The reason is too long."), decline_form=form)
    if not is_confirmed(request):  # the renter is told at once: ask first
        return ask_to_confirm(
            request,
            question=_("Decline this request?"),
            detail=_(
                "The renter is told at once and the car is free for others again. This can't "
                "be undone."
            ),
            yes=_("Yes, decline"),
            back_url=booking.get_absolute_url(),
            target="#booking-status",
            hidden={"reason": form.cleaned_data["reason"]},
        )
    try:
        booking = services.booking_decline(
            booking=booking, user=request.user, reason=form.cleaned_data["reason"]
        )
    except services.BookingError as refusal:
        return _action_refused(request, booking, str(refusal))
    return _action_done(request, booking, _("Declined: the renter has been told."))


@login_required
@require_http_methods(["GET", "POST"])
def booking_cancel(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """GET: what cancelling would cost and refund, with the confirm button; POST: cancel."""
    booking = selectors.booking_for_participant(user=request.user, public_id=public_id)
    if request.method != "POST":
        # "Keep it" comes back here with ?keep=1 to fold the question away again.
        confirm = "keep" not in request.GET
        return _booking_page(
            request, booking, partial="booking-status", extra={"confirm_cancel": confirm}
        )
    form = forms.BookingReasonForm(request.POST)
    if not form.is_valid():
        return _action_refused(
            request,
            booking,
            _("The reason is too long."),
            extra={"confirm_cancel": True, "cancel_form": form},
        )
    try:
        booking = services.booking_cancel(
            booking=booking, user=request.user, reason=form.cleaned_data["reason"]
        )
    except services.BookingError as refusal:
        return _action_refused(request, booking, str(refusal))
    return _action_done(request, booking, _("Cancelled: the other side has been told."))


@login_required
@require_POST
def booking_end(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    booking = selectors.booking_for_participant(user=request.user, public_id=public_id)
    if not is_confirmed(request):  # one tap must not end a trip: ask first
        return ask_to_confirm(
            request,
            question=_("End the trip now?"),
            detail=_(
                "The trip ends at once: your key stops opening the car, carshare locks it and "
                "the price stays as booked. This can't be undone."
            ),
            yes=_("Yes, end the trip"),
            back_url=booking.get_absolute_url(),
            target="#booking-status",
        )
    try:
        booking = services.booking_end(booking=booking, user=request.user)
    except services.BookingError as refusal:
        return _action_refused(request, booking, str(refusal))
    return _action_done(request, booking, _("Trip ended. Thank you!"))


def _action_done(request: AuthedHtmxRequest, booking: Booking, message: str) -> HttpResponse:
    if not request.htmx:
        messages.success(request, message)
        return redirect(booking)  # post/redirect/get
    response = _booking_page(
        request, booking, partial="booking-status", extra={"action_message": message}
    )
    return trigger_client_event(response, BOOKING_EVENT)


def _action_refused(
    request: AuthedHtmxRequest,
    booking: Booking,
    error: str,
    *,
    extra: dict[str, Any] | None = None,
    **forms_: Any,
) -> HttpResponse:
    # Re-read: the refusal is often "someone (or the sweep) got there first".
    booking = selectors.booking_for_participant(user=request.user, public_id=booking.public_id)
    context = {"action_error": error, **forms_, **(extra or {})}
    # 200 in both cases: htmx swaps only 2xx, and the page shows the error in the panel.
    return _booking_page(request, booking, partial="booking-status", extra=context)


def _booking_page(
    request: AuthedHtmxRequest,
    booking: Booking,
    *,
    partial: str,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    context = _booking_detail_context(request.user, booking) | (extra or {})
    if not request.htmx:
        context |= _key_panel_context(request.user, booking)
    if partial:
        return render_page_or_partial(request, BOOKING_PAGE, partial, context)
    response = render(request, BOOKING_PAGE, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _key_panel_context(user: User, booking: Booking) -> dict[str, Any]:
    """The renter's digital key on the trip page (Unlock, Lock, co-drivers) while it lives; the
    keys app renders it, and its buttons post to the keys app."""
    if booking.renter_id != user.pk:
        return {}
    key = key_selectors.trip_key_for_booking(booking_id=booking.pk)
    if key is None or not key.is_live:
        return {}
    return key_views.key_panel_context(user=user, key=key)


def _booking_detail_context(user: User, booking: Booking) -> dict[str, Any]:
    car = booking.car
    is_renter = booking.renter_id == user.pk
    is_owner = car.owner_id == user.pk
    moves = ALLOWED_MOVES.get(booking.status, set())
    can_cancel = (is_renter or is_owner) and B.CANCELLED in moves
    terms = None
    if can_cancel:
        # What the renter would get back if this viewer cancelled now, shown before they do.
        terms = pricing.cancellation_terms(
            trip_price=booking.price,
            starts_at=booking.starts_at,
            now=timezone.now(),
            by_renter=is_renter,
            confirmed=booking.status != B.REQUESTED,
            active=booking.status == B.ACTIVE,
        )
    trip_key = key_selectors.trip_key_for_booking(booking_id=booking.pk)
    end_lock = key_selectors.end_lock_state(key_id=trip_key.pk) if trip_key else None
    # The renter's key may still lock for a while after the end (the Lock on this page).
    renter_can_lock = (
        is_renter
        and trip_key is not None
        and trip_key.is_live
        and timezone.now() < trip_key.lock_until
    )
    events = [
        {
            "event": event,
            "from_label": B(event.old_status).label if event.old_status in B.values else "",
            "to_label": B(event.new_status).label
            if event.new_status in B.values
            else event.new_status,
        }
        for event in booking.events.select_related("actor").order_by("at", "pk")
    ]
    return {
        "booking": booking,
        "car": car,
        "zone": forms.car_zone(car).key,
        "is_renter": is_renter,
        "is_owner": is_owner,
        "can_answer": is_owner and booking.is_answerable,
        "can_cancel": can_cancel,
        "can_end": is_renter and B.COMPLETED in moves,
        "terms": terms,
        "free_cancellation_until": booking.starts_at - pricing.FREE_CANCELLATION_BEFORE,
        "events": events,
        "cancel_form": forms.BookingReasonForm(),
        "decline_form": forms.BookingReasonForm(),
        "end_lock": end_lock,
        "renter_can_lock": renter_can_lock,
        "status_poll": _status_poll(booking, end_lock, renter_can_lock=renter_can_lock),
    }


def _status_poll(
    booking: Booking, end_lock: key_selectors.EndLockState | None, *, renter_can_lock: bool
) -> dict | None:
    """How often the open page asks for the status region, and what it shows now (`seen`);
    None once nothing on it can change."""
    seen = f"{booking.status}.{end_lock.seen if end_lock else ''}.{int(renter_can_lock)}"
    if end_lock is not None or booking.status == B.ACTIVE:
        return {"every": settings.BOOKING_PAGE_POLL_SECONDS, "seen": seen}
    if booking.status == B.CONFIRMED and booking.starts_at - timezone.now() <= POLL_CLOSE_TO_START:
        return {"every": settings.BOOKING_PAGE_POLL_SECONDS, "seen": seen}
    if booking.status in (B.REQUESTED, B.CONFIRMED):
        return {"every": POLL_NOW_AND_THEN_S, "seen": seen}
    return None


# --- Lists: the renter's trips, the owner's requests and bookings -----------------------------


@login_required
@require_GET
def my_trips(request: AuthedHtmxRequest) -> HttpResponse:
    groups = selectors.bookings_of_renter(user=request.user)
    context = {
        "upcoming": list(groups["upcoming"]),
        "active": list(groups["active"]),
        "past": list(groups["past"]),
    }
    return render(request, "bookings/my_trips.html", context)


@login_required
@require_GET
def owner_bookings(request: AuthedHtmxRequest) -> HttpResponse:
    """Requests waiting for an answer first, then trips under way, coming and past."""
    now = timezone.now()
    pending, active, upcoming, past = [], [], [], []
    for booking in selectors.bookings_of_owner(user=request.user):
        if booking.is_answerable and (booking.respond_by is None or booking.respond_by > now):
            pending.append(booking)
        elif booking.status == B.ACTIVE:
            active.append(booking)
        elif booking.status == B.CONFIRMED:
            upcoming.append(booking)
        else:
            past.append(booking)  # completed, declined, expired, cancelled, overdue requests
    pending.sort(key=lambda b: b.starts_at)
    upcoming.sort(key=lambda b: b.starts_at)
    past.sort(key=lambda b: b.starts_at, reverse=True)
    context = {"pending": pending, "active": active, "upcoming": upcoming, "past": past}
    return render(request, "bookings/owner_bookings.html", context)


# --- The owner's calendar of one car: month grid, blocks, iCal feed ---------------------------


@login_required
@require_GET
def car_calendar(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    car = car_selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    return _calendar_page(request, car, forms.BlockForm(car=car))


@login_required
@require_POST
def block_create(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    car = car_selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    form = forms.BlockForm(request.POST, car=car)
    if form.is_valid():
        data = form.cleaned_data
        try:
            block = services.block_create(
                car=car,
                user=request.user,
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                reason=data["reason"],
                note=data["note"],
            )
        except services.BookingError as refusal:  # overlaps a booking or another block
            form.add_error(None, str(refusal))
        else:
            messages.success(request, _("Blocked: renters cannot book the car then."))
            local = block.period.lower.astimezone(form.zone)
            return redirect(_calendar_url(car, local.year, local.month))
    return _calendar_page(request, car, form)


@login_required
@require_POST
def block_delete(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    block = (
        CarBlock.objects.select_related("car")
        .filter(public_id=public_id, car__owner=request.user)
        .first()
    )
    if block is None:
        raise Http404("No such block.")  # strangers learn nothing about other cars
    car = block.car
    local = block.period.lower.astimezone(forms.car_zone(car))
    try:
        services.block_delete(block=block, user=request.user)
    except services.BookingError as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, _("Block removed: renters can book the car then again."))
    return redirect(_calendar_url(car, local.year, local.month))


@require_GET
def car_ical(request: HtmxRequest, public_id: UUID, token: str) -> HttpResponse:
    """The private feed: no sign-in (calendar apps cannot), the token in the URL instead."""
    car = Car.objects.filter(public_id=public_id).first()
    if car is None or not ical.token_matches(car, token):
        raise Http404("No such calendar.")
    response = HttpResponse(ical.car_feed(car), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="car-{car.public_id}.ics"'
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


def _calendar_url(car: Car, year: int, month: int) -> str:
    url = reverse("bookings:car_calendar", args=[car.public_id])
    return f"{url}?month={year:04d}-{month:02d}"


def _month_from_query(value: str, today: datetime.date) -> tuple[int, int]:
    """`?month=YYYY-MM`; anything else is the current month (a bad link is no error)."""
    try:
        year_text, month_text = value.split("-")
        year, month = int(year_text), int(month_text)
    except ValueError:
        return today.year, today.month
    if not (forms.EARLIEST_YEAR <= year <= forms.LATEST_YEAR and 1 <= month <= 12):
        return today.year, today.month
    return year, month


def _calendar_page(
    request: AuthedHtmxRequest, car: Car, block_form: forms.BlockForm
) -> HttpResponse:
    zone = forms.car_zone(car)
    today = timezone.localdate(timezone=zone)
    year, month = _month_from_query(request.GET.get("month", ""), today)
    month_data = selectors.calendar_month(car=car, year=year, month=month)
    feed_url = request.build_absolute_uri(
        reverse("bookings:car_ical", args=[car.public_id, ical.feed_token(car)])
    )
    context = {
        "car": car,
        "zone": zone.key,
        "today": today,
        "month": month_data,
        "weekdays": [calendar.day_name[day] for day in range(7)],  # Monday first, as the grid
        "previous_url": _calendar_url(car, *month_data.previous),
        "next_url": _calendar_url(car, *month_data.next),
        "block_form": block_form,
        "feed_url": feed_url,
    }
    response = render(request, CALENDAR_PAGE, context)
    patch_vary_headers(response, ["HX-Request"])
    return response
