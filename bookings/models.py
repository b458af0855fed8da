"""Bookings and owner blocks.

A booking goes requested → confirmed → active → completed, leaving early as declined, expired
or cancelled (see ALLOWED_MOVES). A booking that holds its car (requested, confirmed, active;
its period plus the owner's buffer) and an owner block each point at one vehicles.Occupancy,
whose exclusion constraint refuses any two that overlap for the same car (service windows
too), from any code path, however many requests race.
"""

from __future__ import annotations

import datetime
import uuid

from django.conf import settings
from django.contrib.postgres.fields import DateTimeRangeField
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class BookingStatus(models.TextChoices):
    REQUESTED = "requested", _("Waiting for the owner")
    CONFIRMED = "confirmed", _("Confirmed")
    ACTIVE = "active", _("On the road")
    COMPLETED = "completed", _("Completed")
    DECLINED = "declined", _("Declined")
    EXPIRED = "expired", _("Expired: the owner did not answer")
    CANCELLED = "cancelled", _("Cancelled")


B = BookingStatus
ALLOWED_MOVES: dict[
    str, set[str]
] = {  # the lifecycle at a glance; only services._move() acts on it
    B.REQUESTED: {B.CONFIRMED, B.DECLINED, B.CANCELLED, B.EXPIRED},
    B.CONFIRMED: {B.ACTIVE, B.CANCELLED},
    B.ACTIVE: {B.COMPLETED},
}
# Moves only carshare itself makes, never offered to people: an active trip whose car never
# opened is cancelled without a fee (services.booking_cancel_unopened).
SYSTEM_MOVES: dict[str, set[str]] = {B.ACTIVE: {B.CANCELLED}}
HOLDING_STATUSES = [B.REQUESTED, B.CONFIRMED, B.ACTIVE]


class CancelledBy(models.TextChoices):
    RENTER = "renter", _("Renter")
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    # carshare itself: the car could not be opened at the start (keys.startunlocks).
    CARSHARE = "carshare", _("carshare (the car could not be opened)")


class Booking(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    car = models.ForeignKey("vehicles.Car", models.PROTECT, related_name="bookings")
    renter = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, related_name="bookings_as_renter"
    )
    period = DateTimeRangeField(_("trip"))  # [start, end) in UTC
    status = models.CharField(max_length=16, choices=BookingStatus, default=B.REQUESTED)
    instant = models.BooleanField(default=False)  # booked on an instant-book car

    # Price, computed once at request time from the car's rates then (EUR).
    currency = models.CharField(max_length=3, default="EUR")
    hourly_rate = models.DecimalField(max_digits=8, decimal_places=2)
    daily_rate = models.DecimalField(max_digits=8, decimal_places=2)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    # Set on cancellation: what the renter pays and gets back. Payment fields are for later.
    cancelled_by = models.CharField(max_length=8, choices=CancelledBy, blank=True)
    cancellation_fee = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    refund = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)

    requested_at = models.DateTimeField(auto_now_add=True)
    respond_by = models.DateTimeField(null=True, blank=True)  # a request's hold ends here
    confirmed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    # When the trip clock scheduled the start (ETA task, staged unlock): once per trip.
    start_scheduled_at = models.DateTimeField(null=True, blank=True)
    # The car's time this booking holds (trip plus buffer), while it holds; expires with
    # respond_by while the request waits. Released (null) once declined, expired, cancelled.
    occupancy = models.OneToOneField(
        "vehicles.Occupancy", models.SET_NULL, null=True, blank=True, related_name="booking"
    )

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="booking_price_not_negative"),
            models.CheckConstraint(
                condition=~Q(period__isempty=True), name="booking_period_not_empty"
            ),
        ]
        indexes = [models.Index(fields=["status", "respond_by"])]

    def __str__(self) -> str:
        return f"Booking {self.public_id} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("bookings:booking_detail", args=[self.public_id])

    @property
    def starts_at(self) -> datetime.datetime:
        return self.period.lower

    @property
    def ends_at(self) -> datetime.datetime:
        return self.period.upper

    @property
    def is_cancellable(self) -> bool:
        return B.CANCELLED in ALLOWED_MOVES.get(self.status, set())

    @property
    def is_answerable(self) -> bool:
        return self.status == B.REQUESTED


class BookingEvent(models.Model):
    """Append-only history: who moved the booking from what to what, when and why."""

    booking = models.ForeignKey(Booking, models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )  # null: the system (trip clock, expiry sweep)
    old_status = models.CharField(max_length=16, blank=True)
    new_status = models.CharField(max_length=16)
    reason = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.old_status or '∅'} → {self.new_status}"


class BlockReason(models.TextChoices):
    MAINTENANCE = "maintenance", _("Maintenance")
    PERSONAL = "personal", _("Personal use")
    OTHER = "other", _("Other")


class CarBlock(models.Model):
    """The owner keeps the car for themselves (or the garage) for a while."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    car = models.ForeignKey("vehicles.Car", models.CASCADE, related_name="blocks")
    period = DateTimeRangeField()
    reason = models.CharField(max_length=16, choices=BlockReason, default=BlockReason.PERSONAL)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The car's time the block takes: released with the block.
    occupancy = models.OneToOneField(
        "vehicles.Occupancy", models.SET_NULL, null=True, blank=True, related_name="block"
    )

    class Meta:
        ordering = ["period"]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} block of {self.car_id}"
