"""Admin: bookings with their history, owner blocks, and the occupancies that take cars.

Nothing here assigns a status or writes an Occupancy: those change through bookings.services only,
so the database guarantee and the event log hold for admins too. Bookings are read-only;
"Cancel with a reason" asks for the reason on an intermediate page and calls booking_cancel
with the admin as the actor. Occupancies are shown so support staff can see why a car is taken.
"""

from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import ngettext

from bookings import services
from bookings.models import Booking, BookingEvent, CarBlock
from carshare import times
from carshare.adminlib import (
    ReadOnlyAdmin,
    ReadOnlyInline,
    ask_for_reason,
    car_range,
    car_time,
    short_id,
    staff_user,
)
from vehicles.models import Occupancy, OccupancyKind


class PeriodStartFilter(admin.SimpleListFilter):
    """When the trip (or block) starts, in days as the admin's calendar counts them."""

    title = "start"
    parameter_name = "starts"
    field = "period__startswith"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("past", "Before today"),
            ("today", "Today"),
            ("week", "In the next 7 days"),
            ("month", "In the next 30 days"),
            ("later", "Later"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        midnight = timezone.make_aware(
            datetime.datetime.combine(timezone.localdate(), datetime.time())
        )
        day = datetime.timedelta(days=1)
        ranges = {
            "past": (None, midnight),
            "today": (midnight, midnight + day),
            "week": (midnight, midnight + 7 * day),
            "month": (midnight, midnight + 30 * day),
            "later": (midnight + 30 * day, None),
        }
        value = self.value()
        if value not in ranges:
            return None
        low, high = ranges[value]
        if low is not None:
            queryset = queryset.filter(**{f"{self.field}__gte": low})
        if high is not None:
            queryset = queryset.filter(**{f"{self.field}__lt": high})
        return queryset


class BookingEventInline(ReadOnlyInline):
    model = BookingEvent
    fields = ("when", "actor", "old_status", "new_status", "reason")
    readonly_fields = fields
    when = car_time("at", "at", car="booking__car")


class CancelWithReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the booking's history and sent to the renter and the owner.",
    )


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "car", "owner", "renter", "status", "trip", "price", "requested"]
    list_filter = [
        "status",
        ("car", admin.RelatedOnlyFieldListFilter),
        ("car__owner", admin.RelatedOnlyFieldListFilter),
        ("renter", admin.RelatedOnlyFieldListFilter),
        PeriodStartFilter,
        "instant",
    ]
    search_fields = [
        "public_id",
        "renter__email",
        "renter__name",
        "car__licence_plate",
        "car__owner__email",
        "car__owner__name",
    ]
    list_select_related = ["car__owner", "renter"]
    date_hierarchy = "requested_at"
    readonly_fields = (
        "public_id",
        "car",
        "renter",
        "trip",
        "status",
        "instant",
        "currency",
        "hourly_rate",
        "daily_rate",
        "price",
        "cancelled_by",
        "cancellation_fee",
        "refund",
        "requested",
        "answer_by",
        "confirmed",
        "started",
        "ended",
        "reminder_sent",
    )
    fields = readonly_fields
    inlines = [BookingEventInline]
    short_id = short_id
    trip = car_range("period", "trip")
    requested = car_time("requested_at", "requested")
    answer_by = car_time("respond_by", "answer by")
    confirmed = car_time("confirmed_at", "confirmed")
    started = car_time("started_at", "started")
    ended = car_time("ended_at", "ended")
    reminder_sent = car_time("reminder_sent_at", "reminder sent")
    actions = ["cancel_with_reason"]

    @admin.display(description="owner", ordering="car__owner__email")
    def owner(self, booking: Booking) -> str:
        return str(booking.car.owner)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        # The booking's fields are never edited here, but cancelling is a change: it takes
        # the same permission a staff member would need to change a booking.
        return request.user.has_perm("bookings.change_booking")

    @admin.action(description="Cancel with a reason", permissions=["cancel"])
    def cancel_with_reason(
        self, request: HttpRequest, queryset: QuerySet[Booking]
    ) -> TemplateResponse | None:
        form = CancelWithReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._cancel(request, queryset, reason=form.cleaned_data["reason"])
            return None  # back to the changelist, with the messages
        return ask_for_reason(
            self,
            request,
            action="cancel_with_reason",
            title="Cancel bookings",
            explanation=(
                "These bookings will be cancelled through the same rules as a renter's or "
                "owner's cancellation: the renter is refunded in full, both sides are told, and "
                "the reason goes into each booking's history with you as the one who cancelled. "
                "Bookings that can no longer be cancelled are left as they are and reported."
            ),
            submit_label="Cancel these bookings",
            chosen=(
                (
                    b,
                    f"{b.car}, {times.local_period(b.car, b.starts_at, b.ends_at)}, "
                    f"{b.renter}: {b.get_status_display()}",
                )
                for b in queryset.select_related("car", "renter")
            ),
            form=form,
        )

    def _cancel(self, request: HttpRequest, queryset: QuerySet[Booking], *, reason: str) -> None:
        cancelled = 0
        for booking in queryset.select_related("car", "renter"):
            try:
                # The same service as the renter's and owner's cancel: the event row names
                # this admin, the renter is refunded in full, both are told.
                services.booking_cancel(booking=booking, user=staff_user(request), reason=reason)
            except services.BookingError as refusal:
                self.message_user(request, f"{booking}: {refusal}", messages.ERROR)
            else:
                cancelled += 1
        if cancelled:
            self.message_user(
                request,
                ngettext("Cancelled %d booking.", "Cancelled %d bookings.", cancelled) % cancelled,
                messages.SUCCESS,
            )


@admin.register(CarBlock)
class CarBlockAdmin(ReadOnlyAdmin):
    list_display = ["car", "blocked", "reason", "note", "created_by", "created"]
    list_filter = ["reason", ("car", admin.RelatedOnlyFieldListFilter), PeriodStartFilter]
    search_fields = ["public_id", "car__licence_plate", "car__owner__email", "note"]
    list_select_related = ["car", "created_by"]
    readonly_fields = ("public_id", "car", "blocked", "reason", "note", "created_by", "created")
    fields = readonly_fields
    actions = ["remove_blocks"]
    blocked = car_range("period", "blocked")
    created = car_time("created_at", "created")

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bookings.delete_carblock")

    @admin.action(description="Remove the selected blocks (frees the car)", permissions=["remove"])
    def remove_blocks(self, request: HttpRequest, queryset: QuerySet[CarBlock]) -> None:
        # Through the service, so the block's hold goes with it.
        removed = 0
        for block in queryset.select_related("car"):
            try:
                services.block_delete(block=block, user=staff_user(request))
            except services.BookingError as refusal:
                self.message_user(request, f"{block}: {refusal}", messages.ERROR)
            else:
                removed += 1
        if removed:
            self.message_user(
                request,
                ngettext("Removed %d block.", "Removed %d blocks.", removed) % removed,
                messages.SUCCESS,
            )


@admin.register(Occupancy)
class OccupancyAdmin(ReadOnlyAdmin):
    """Why a car is unavailable: each row is a trip (with its buffer), a block or a service
    window, as the exclusion constraint sees it. Registered here rather than in vehicles,
    which cannot know the bookings, blocks and keys that point at an occupancy."""

    list_display = ["car", "held", "held_by", "expires_at", "booking", "block", "service_key"]
    list_filter = [("car", admin.RelatedOnlyFieldListFilter), "kind", PeriodStartFilter]
    search_fields = ["car__licence_plate", "car__owner__email", "booking__public_id"]
    list_select_related = ["car", "booking", "block", "service_key"]
    readonly_fields = ("car", "held", "held_by", "expires_at", "booking", "block", "service_key")
    fields = readonly_fields
    held = car_range("period", "held")

    @admin.display(description="held by", ordering="kind")
    def held_by(self, occupancy: Occupancy) -> str:
        return {
            OccupancyKind.TRIP: "trip (with the buffer after it)",
            OccupancyKind.OWNER_BLOCK: "owner's block",
            OccupancyKind.SERVICE: "service window",
        }[OccupancyKind(occupancy.kind)]
