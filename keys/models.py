"""Digital keys: who may lock and unlock which car, when; their events; the audit log of every
attempt; and the end-of-window locks that must reach the car.

A key goes issued → active → expired, or to revoked from issued or active (KEY_MOVES). It works
only while active and inside its window: unlock from `valid_from` to `valid_until`, lock until
`lock_until` (the grace after the end, for locking only). Kinds:

- trip: the renter's key for a confirmed booking; window = the trip, opening the car's early
  access minutes before the start, plus the grace after the end.
- shared: a co-driver's key cut from a trip key, for all or part of the trip; ends with it.
- service: a technician's key for a window the owner chose; the window holds the car like an
  owner block (its vehicles.Occupancy, released when the key is revoked).
"""

from __future__ import annotations

import datetime
import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from vehicles.models import CommandStatus


class KeyKind(models.TextChoices):
    TRIP = "trip", _("Trip key")
    SHARED = "shared", _("Shared key")
    SERVICE = "service", _("Service key")


class KeyStatus(models.TextChoices):
    ISSUED = "issued", _("Issued")
    ACTIVE = "active", _("Active")
    EXPIRED = "expired", _("Expired")
    REVOKED = "revoked", _("Revoked")


K = KeyStatus
KEY_MOVES: dict[str, set[str]] = {  # the lifecycle at a glance; only lifecycle.key_move acts on it
    K.ISSUED: {K.ACTIVE, K.EXPIRED, K.REVOKED},
    K.ACTIVE: {K.EXPIRED, K.REVOKED},
}
LIVE_STATUSES = [K.ISSUED, K.ACTIVE]


class DigitalKey(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=8, choices=KeyKind)
    status = models.CharField(max_length=8, choices=KeyStatus, default=K.ISSUED)
    car = models.ForeignKey("vehicles.Car", models.PROTECT, related_name="digital_keys")
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, related_name="digital_keys"
    )
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )  # null: the system (a trip key, issued on confirmation)
    # The trip the key belongs to (bookings sits above keys: a plain id). Trip and shared keys.
    booking_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # ...and the name pages and the API give that trip, written by bookings when it issues the
    # key, so showing a key never asks bookings (a booking's public id never changes).
    booking_public_id = models.UUIDField(null=True, blank=True, editable=False)
    # A shared key's trip key: revoking or ending that ends this one.
    parent = models.ForeignKey(
        "self", models.PROTECT, null=True, blank=True, related_name="shared_keys"
    )
    valid_from = models.DateTimeField()  # may unlock (and lock) from
    valid_until = models.DateTimeField()  # may unlock until
    lock_until = models.DateTimeField()  # may still lock until (grace after the end)
    note = models.CharField(_("note"), max_length=200, blank=True)  # "cleaning", "new tyres"
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)  # expired or revoked
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoke_reason = models.CharField(max_length=200, blank=True)
    # A service key's window in the car's occupancy (null for other kinds, and once revoked).
    occupancy = models.OneToOneField(
        "vehicles.Occupancy", models.SET_NULL, null=True, blank=True, related_name="service_key"
    )

    class Meta:
        ordering = ["valid_from", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_from__lt=F("valid_until"), valid_until__lte=F("lock_until")),
                name="key_window_in_order",
            ),
            # One trip key per booking, so the trip clock running twice issues one.
            models.UniqueConstraint(
                fields=["booking_id"], condition=Q(kind="trip"), name="key_one_trip_key_per_booking"
            ),
            models.CheckConstraint(
                condition=Q(kind="service") | Q(booking_id__isnull=False),
                name="key_trip_and_shared_keys_have_a_booking",
            ),
            models.CheckConstraint(
                condition=Q(kind="shared", parent__isnull=False)
                | (~Q(kind="shared") & Q(parent__isnull=True)),
                name="key_only_shared_keys_have_a_parent",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "valid_from"]),
            models.Index(fields=["status", "lock_until"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.car_id} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("keys:key_detail", args=[self.public_id])

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def may_unlock_at(self, now: datetime.datetime | None = None) -> bool:
        at = now or timezone.now()
        return self.status == K.ACTIVE and self.valid_from <= at < self.valid_until

    def may_lock_at(self, now: datetime.datetime | None = None) -> bool:
        at = now or timezone.now()
        return self.status == K.ACTIVE and self.valid_from <= at < self.lock_until


class KeyEvent(models.Model):
    """Append-only history of a key's status changes: who, from what to what, when, why."""

    key = models.ForeignKey(DigitalKey, models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )  # null: the system (trip clock, key clock)
    old_status = models.CharField(max_length=8, blank=True)
    new_status = models.CharField(max_length=8)
    reason = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.old_status or '∅'} → {self.new_status}"


class AuditAction(models.TextChoices):
    UNLOCK = "unlock", _("Unlock")
    LOCK = "lock", _("Lock")
    OVERRIDE_UNLOCK = "override_unlock", _("Owner unlock during a trip")
    SHARE = "share", _("Share key")
    REVOKE = "revoke", _("Revoke key")
    ISSUE_SERVICE = "issue_service", _("Issue service key")
    REVEAL_FALLBACK = "reveal_fallback", _("Show the car's fallback")


class AuditVia(models.TextChoices):
    """Where an audited attempt came from."""

    WEB = "web", _("Website")
    API = "api", _("API")
    ADMIN = "admin", _("Admin")
    SYSTEM = "system", _("carshare (trip or key clock)")
    # The owner's own lock or unlock outside any key ("Lock now" on the car page or through
    # the API), audited by the command itself, which does not know which door it came in by.
    OWNER = "owner", _("The owner's own command")


class AuditEntry(models.Model):
    """Every attempt to use, share or revoke a key, allowed or denied. Append-only: a database
    trigger (migration 0002) refuses UPDATE and DELETE from anyone, the admin included."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    car = models.ForeignKey("vehicles.Car", models.PROTECT, related_name="+")
    key = models.ForeignKey(
        DigitalKey, models.PROTECT, null=True, blank=True, related_name="audit_entries"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=16, choices=AuditAction)
    allowed = models.BooleanField()
    code = models.CharField(max_length=32)  # "ok" or why not: key_not_active, rate_limited, ...
    detail = models.CharField(max_length=300, blank=True)
    command_public_id = models.UUIDField(null=True, blank=True)
    # `at` is when the attempt was made; a command staged ahead (a trip's unlock, staged before
    # its start) is due later, at this moment. When the car confirmed it is the command's
    # confirmed_at (selectors.audit_of_car shows it beside the entry): the log stays append-only.
    staged_for = models.DateTimeField(null=True, blank=True)
    via = models.CharField(max_length=8, choices=AuditVia, default=AuditVia.WEB)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["car", "-at"])]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else f"denied ({self.code})"
        return f"{self.get_action_display()} of {self.car_id}: {verdict}"

    @property
    def command_outcome(self) -> str:
        """Where the entry's command stands, in words ("" without one), when the entry was read
        by selectors.audit_of_car, which annotates it."""
        status = getattr(self, "car_command_status", None)
        if not status:
            return ""
        return str(CommandStatus(status).label)


class EndLockStatus(models.TextChoices):
    PENDING = "pending", _("Locking")
    LOCKED = "locked", _("Locked")
    HANDED_OVER = "handed_over", _("Next trip started")


class EndLock(models.Model):
    """The car must be locked at the end of a trip or service window. Until a lock is confirmed
    by the car, the sweep sends another every few minutes and tells the owner, the key holder
    and the admins."""

    key = models.OneToOneField(DigitalKey, models.PROTECT, related_name="end_lock")
    car = models.ForeignKey("vehicles.Car", models.PROTECT, related_name="+")
    status = models.CharField(max_length=12, choices=EndLockStatus, default="pending")
    created_at = models.DateTimeField(auto_now_add=True)
    command = models.ForeignKey(
        "vehicles.VehicleCommand", models.PROTECT, null=True, blank=True, related_name="+"
    )  # the latest lock sent for this end
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    alerts_sent = models.PositiveSmallIntegerField(default=0)
    last_alert_at = models.DateTimeField(null=True, blank=True)
    last_problem = models.CharField(max_length=500, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"End lock of {self.car_id} ({self.status})"


class StartUnlockStatus(models.TextChoices):
    PENDING = "pending", _("Opening")
    OPENED = "opened", _("Opened")
    FAILED = "failed", _("Could not be opened")
    CANCELLED = "cancelled", _("Trip cancelled")


class StartUnlock(models.Model):
    """The car must open at the start of a trip. Its unlock is tried again while the car cannot
    be reached, within the start window (vehicles.cloud.sending); the key clock watches it
    (keys.startunlocks): it tells the renter, the owner and the admins when the first attempts
    fail, and again when the car opens, and keeps what the renter did at the car."""

    key = models.OneToOneField(DigitalKey, models.PROTECT, related_name="start_unlock")
    car = models.ForeignKey("vehicles.Car", models.PROTECT, related_name="+")
    starts_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=StartUnlockStatus, default="pending")
    created_at = models.DateTimeField(auto_now_add=True)
    command = models.ForeignKey(
        "vehicles.VehicleCommand", models.PROTECT, null=True, blank=True, related_name="+"
    )  # the latest unlock sent for this start: the staged one, or one the ladder asked for
    alerts_sent = models.PositiveSmallIntegerField(default=0)
    last_alert_at = models.DateTimeField(null=True, blank=True)
    last_problem = models.CharField(max_length=500, blank=True)
    # "I'm at the car and it won't open": when the renter said so, and when the owner was asked
    # to unlock it themselves.
    at_car_at = models.DateTimeField(null=True, blank=True)
    owner_asked_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["status", "starts_at"])]

    def __str__(self) -> str:
        return f"Start unlock of {self.car_id} ({self.status})"


class SupportCaseStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class SupportCase(models.Model):
    """A renter at a car that would not open, for staff: opened by the key clock when the car
    is still locked a while after the renter said they were at it (keys.startunlocks). Staff
    see the command log beside it in the admin and close it with a note."""

    start_unlock = models.OneToOneField(StartUnlock, models.PROTECT, related_name="case")
    car = models.ForeignKey("vehicles.Car", models.PROTECT, related_name="+")
    opened_at = models.DateTimeField(default=timezone.now)
    reason = models.CharField(max_length=300)
    status = models.CharField(max_length=8, choices=SupportCaseStatus, default="open")
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-status", "-opened_at"]  # "open" after "closed" alphabetically: open first

    def __str__(self) -> str:
        return f"Support case {self.pk}: car {self.car_id} ({self.status})"
