"""Admin: bookings with their history, owner blocks, and the holds that take cars.

Nothing here assigns a status or writes a Hold: those change through bookings.services only,
so the database guarantee and the event log hold for admins too. Bookings are read-only;
"Cancel with a reason" asks for the reason on an intermediate page and calls booking_cancel
with the admin as the actor. Holds are shown so support staff can see why a car is taken.
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

from bookings import services
from bookings.models import Booking, BookingEvent, CarBlock, Hold
from carshare.adminlib import ReadOnlyAdmin, ReadOnlyInline, ask_for_reason


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
        if self.value() not in ranges:
            return None
        low, high = ranges[self.value()]
        if low is not None:
            queryset = queryset.filter(**{f"{self.field}__gte": low})
        if high is not None:
            queryset = queryset.filter(**{f"{self.field}__lt": high})
        return queryset


class BookingEventInline(ReadOnlyInline):
    model = BookingEvent
    fields = ["at", "actor", "old_status", "new_status", "reason"]
    readonly_fields = fields


class CancelWithReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the booking's history and sent to the renter and the owner.",
    )


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdmin):
    list_display = [
        "public_id",
        "car",
        "owner",
        "renter",
        "status",
        "starts_at",
        "ends_at",
        "price",
        "requested_at",
    ]
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
    readonly_fields = [
        "public_id",
        "car",
        "renter",
        "period",
        "status",
        "instant",
        "currency",
        "hourly_rate",
        "daily_rate",
        "price",
        "cancelled_by",
        "cancellation_fee",
        "refund",
        "requested_at",
        "respond_by",
        "confirmed_at",
        "started_at",
        "ended_at",
        "reminder_sent_at",
    ]
    fields = readonly_fields
    inlines = [BookingEventInline]
    actions = ["cancel_with_reason"]

    @admin.display(description="owner", ordering="car__owner__email")
    def owner(self, booking: Booking) -> str:
        return str(booking.car.owner)

    @admin.display(description="starts", ordering="period")
    def starts_at(self, booking: Booking) -> datetime.datetime:
        return booking.starts_at

    @admin.display(description="ends")
    def ends_at(self, booking: Booking) -> datetime.datetime:
        return booking.ends_at

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
                    f"{b.car}, {b.starts_at:%Y-%m-%d %H:%M} to {b.ends_at:%Y-%m-%d %H:%M} UTC, "
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
                services.booking_cancel(booking=booking, user=request.user, reason=reason)
            except services.BookingError as refusal:
                self.message_user(request, f"{booking}: {refusal}", messages.ERROR)
            else:
                cancelled += 1
        if cancelled:
            self.message_user(request, f"Cancelled {cancelled} booking(s).", messages.SUCCESS)


@admin.register(CarBlock)
class CarBlockAdmin(ReadOnlyAdmin):
    list_display = ["car", "period", "reason", "note", "created_by", "created_at"]
    list_filter = ["reason", ("car", admin.RelatedOnlyFieldListFilter), PeriodStartFilter]
    search_fields = ["public_id", "car__licence_plate", "car__owner__email", "note"]
    list_select_related = ["car", "created_by"]
    readonly_fields = ["public_id", "car", "period", "reason", "note", "created_by", "created_at"]
    fields = readonly_fields
    actions = ["remove_blocks"]

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bookings.delete_carblock")

    @admin.action(description="Remove the selected blocks (frees the car)", permissions=["remove"])
    def remove_blocks(self, request: HttpRequest, queryset: QuerySet[CarBlock]) -> None:
        # Through the service, so the block's hold goes with it.
        removed = 0
        for block in queryset.select_related("car"):
            try:
                services.block_delete(block=block, user=request.user)
            except services.BookingError as refusal:
                self.message_user(request, f"{block}: {refusal}", messages.ERROR)
            else:
                removed += 1
        if removed:
            self.message_user(request, f"Removed {removed} block(s).", messages.SUCCESS)


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    """Why a car is unavailable: each row is a trip (with its buffer), a block or a service
    window, as the exclusion constraint sees it."""

    list_display = ["car", "period", "held_by", "booking", "block", "service_key_id"]
    list_filter = [("car", admin.RelatedOnlyFieldListFilter), PeriodStartFilter]
    search_fields = ["car__licence_plate", "car__owner__email", "booking__public_id"]
    list_select_related = ["car", "booking", "block"]
    readonly_fields = ["car", "period", "held_by", "booking", "block", "service_key_id"]
    fields = readonly_fields

    @admin.display(description="held by")
    def held_by(self, hold: Hold) -> str:
        if hold.booking_id is not None:
            return "trip (with the buffer after it)"
        if hold.block_id is not None:
            return "owner's block"
        return "service window"
