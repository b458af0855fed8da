"""Car listings and their photos.

A car is listed or unlisted; unlisting keeps the row, because bookings and keys will point at
it. A listed car is public (in search, its page open to everyone, bookable) only while it can
be used as listed: see CarQuerySet.public. Invariants the database can hold live in
Meta.constraints.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import ArrayField, DateTimeRangeField, RangeOperators
from django.contrib.postgres.indexes import GistIndex
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q
from django.db.models.functions import Upper
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from vehicles.makes import MAKE_NAMES, NO_REMOTE_LOCK, SUPPORTED_MAKES

MIN_YEAR = 2015  # the vehicle cloud connects cars of model year 2015 and newer
DEFAULT_TIME_ZONE = "Europe/Amsterdam"
# Constraint names the services recognise an IntegrityError by (carshare.db.violates).
PLATE_UNIQUE_WHEN_LISTED = "car_plate_unique_when_listed"
VEHICLE_CONNECTED_ONCE = "connection_vehicle_once"
OCCUPANCY_CONSTRAINT = "occupancy_car_never_double_booked"

# 17 characters, digits and capitals without I, O and Q (ISO 3779).
vin_validator = RegexValidator(
    r"^[A-HJ-NPR-Z0-9]{17}$",
    _("A VIN has 17 characters: digits and capital letters except I, O and Q."),
)


class FuelType(models.TextChoices):
    PETROL = "petrol", _("Petrol")
    DIESEL = "diesel", _("Diesel")
    HYBRID = "hybrid", _("Hybrid")
    ELECTRIC = "electric", _("Electric")


class Transmission(models.TextChoices):
    MANUAL = "manual", _("Manual")
    AUTOMATIC = "automatic", _("Automatic")


def normalise_plate(value: str) -> str:
    """'ab-123-c ' and 'AB 123 C' are the same plate: keep letters and digits, upper case."""
    return "".join(ch for ch in value.upper() if ch.isalnum())


# The permission a connection needs for carshare to lock and unlock the car (Smartcar's).
LOCK_PERMISSION = "control_security"


class CarQuerySet(models.QuerySet["Car"]):
    """`public()` is the one rule for "bookable as listed", used by search, the car page, the
    API and booking alike: listed, of a make the vehicle cloud can lock and unlock remotely,
    with a healthy connection that was granted lock and unlock. A car that fails it could not
    be opened for a renter, so nobody but its owner may find it."""

    def public(self) -> CarQuerySet:
        return self.filter(_public_condition())

    def with_public(self) -> CarQuerySet:
        """Annotate `is_public` with the same rule (no extra query)."""
        return self.annotate(
            is_public=ExpressionWrapper(_public_condition(), output_field=BooleanField())
        )


def _public_condition() -> Q:
    lockable_connection = VehicleConnection.objects.filter(
        car=OuterRef("pk"),
        status=ConnectionStatus.HEALTHY,
        scopes__contains=[LOCK_PERMISSION],
    )
    return Q(is_listed=True) & ~Q(make__in=NO_REMOTE_LOCK) & Q(Exists(lockable_connection))


class Car(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, related_name="cars", verbose_name=_("owner")
    )
    make = models.CharField(_("make"), max_length=32, choices=SUPPORTED_MAKES)
    model = models.CharField(_("model"), max_length=64)
    year = models.PositiveSmallIntegerField(
        _("year"),
        validators=[
            MinValueValidator(
                MIN_YEAR,
                _("carshare can only connect cars from %(year)s or newer.") % {"year": MIN_YEAR},
            ),
            MaxValueValidator(2100),
        ],
    )
    licence_plate = models.CharField(_("licence plate"), max_length=16)
    vin = models.CharField(_("VIN"), max_length=17, blank=True, validators=[vin_validator])
    seats = models.PositiveSmallIntegerField(
        _("seats"), validators=[MinValueValidator(1), MaxValueValidator(9)]
    )
    fuel_type = models.CharField(_("fuel"), max_length=16, choices=FuelType)
    transmission = models.CharField(_("transmission"), max_length=16, choices=Transmission)
    description = models.TextField(_("description"), blank=True, max_length=4000)
    rules = models.TextField(
        _("rules"), blank=True, max_length=2000, help_text=_("No smoking, pets allowed, ...")
    )

    address = models.CharField(_("pickup address"), max_length=255)
    city = models.CharField(_("city"), max_length=100, db_index=True)
    latitude = models.DecimalField(
        _("latitude"),
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(Decimal(-90)), MaxValueValidator(Decimal(90))],
    )
    longitude = models.DecimalField(
        _("longitude"),
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(Decimal(-180)), MaxValueValidator(Decimal(180))],
    )
    time_zone = models.CharField(_("time zone"), max_length=64, default=DEFAULT_TIME_ZONE)

    hourly_price = models.DecimalField(
        _("price per hour (EUR)"),
        max_digits=8,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    daily_price = models.DecimalField(
        _("price per day (EUR)"),
        max_digits=8,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    min_notice_hours = models.PositiveSmallIntegerField(
        _("minimum notice (hours)"), default=1, validators=[MaxValueValidator(24 * 30)]
    )
    min_duration_hours = models.PositiveSmallIntegerField(
        _("minimum trip (hours)"), default=1, validators=[MinValueValidator(1)]
    )
    max_duration_days = models.PositiveSmallIntegerField(
        _("maximum trip (days)"), default=14, validators=[MinValueValidator(1)]
    )
    buffer_minutes = models.PositiveSmallIntegerField(
        _("time between trips (minutes)"),
        default=30,
        validators=[MaxValueValidator(24 * 60)],
        help_text=_("Kept free after each trip for handover and cleaning."),
    )
    instant_book = models.BooleanField(
        _("instant book"), default=False, help_text=_("Renters book without waiting for you.")
    )
    # Digital keys (keys app): how the trip key behaves around the trip.
    unlock_at_start = models.BooleanField(
        _("unlock automatically at the start"),
        default=True,
        help_text=_("carshare unlocks the car when a trip starts; otherwise the renter does."),
    )
    # What the renter can do when the car will not open remotely (a lockbox code, where a key
    # is left): encrypted at rest like the tokens, shown only to a key holder inside the window
    # and only when the remote unlock failed, every reveal audited (keys.ladder).
    fallback_encrypted = models.TextField(blank=True, editable=False)
    early_access_minutes = models.PositiveSmallIntegerField(
        _("early access (minutes)"),
        default=0,
        validators=[MaxValueValidator(120)],
        help_text=_("The renter's key works this long before the trip starts."),
    )

    is_listed = models.BooleanField(_("listed"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CarQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Two listed cars cannot carry the same plate; an unlisted one may be re-listed by a
            # new owner after a sale.
            models.UniqueConstraint(
                fields=["licence_plate"],
                condition=Q(is_listed=True),
                name=PLATE_UNIQUE_WHEN_LISTED,
                violation_error_message=_("A listed car already has this licence plate."),
            ),
            models.CheckConstraint(condition=Q(year__gte=MIN_YEAR), name="car_year_min"),
            models.CheckConstraint(condition=Q(hourly_price__gt=0), name="car_hourly_price_pos"),
            models.CheckConstraint(condition=Q(daily_price__gt=0), name="car_daily_price_pos"),
            models.CheckConstraint(condition=Q(seats__gte=1, seats__lte=9), name="car_seats"),
            models.CheckConstraint(condition=Q(min_duration_hours__gte=1), name="car_min_dur"),
            models.CheckConstraint(
                condition=Q(vin="") | Q(vin__regex=r"^[A-HJ-NPR-Z0-9]{17}$"), name="car_vin_format"
            ),
        ]
        indexes = [
            models.Index(fields=["is_listed", "hourly_price"]),
            # The search's city filter (city__iexact): also gives PostgreSQL statistics on
            # UPPER(city), without which it guesses 0.5 % of the cars per city and picks a
            # per-car plan for the count over a city (bench/README.md).
            models.Index(Upper("city"), name="car_city_upper"),
        ]

    def __str__(self) -> str:
        return f"{self.make_name} {self.model} {self.year} ({self.licence_plate})"

    def get_absolute_url(self) -> str:
        return reverse("vehicles:car_detail", args=[self.public_id])

    @property
    def make_name(self) -> str:
        return MAKE_NAMES.get(self.make, self.make)

    @property
    def title(self) -> str:
        return f"{self.make_name} {self.model}"

    @property
    def cover_photo(self) -> CarPhoto | None:
        photos = list(self.photos.all())  # uses the prefetch when the selector did one
        return photos[0] if photos else None


def car_photo_path(instance: CarPhoto, filename: str) -> str:
    return f"cars/{instance.car.public_id}/{uuid.uuid4().hex}.jpg"


def car_thumb_path(instance: CarPhoto, filename: str) -> str:
    return f"cars/{instance.car.public_id}/thumb-{uuid.uuid4().hex}.jpg"


class CarPhoto(models.Model):
    car = models.ForeignKey(Car, models.CASCADE, related_name="photos")
    image = models.ImageField(upload_to=car_photo_path)
    thumbnail = models.ImageField(upload_to=car_thumb_path)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return f"Photo {self.position} of {self.car}"


# --- Occupancy: the stretches of time a car is taken ----------------------------------------


class OccupancyKind(models.TextChoices):
    TRIP = "trip", _("Trip")
    OWNER_BLOCK = "owner_block", _("Owner block")
    SERVICE = "service", _("Service window")


class Occupancy(models.Model):
    """One stretch of time the car is taken: a trip (its period plus the owner's buffer), an
    owner block or a service window. What takes it lives in a higher app and points here
    (Booking.occupancy, CarBlock.occupancy, DigitalKey.occupancy), so this app never needs to
    know them. A row exists only while it holds: its owner deletes it when it stops holding,
    except that `expires_at` lets an unanswered request stop holding on its own (see
    vehicles.occupancy)."""

    car = models.ForeignKey(Car, models.CASCADE, related_name="occupancies")
    period = DateTimeRangeField()  # [start, end) in UTC
    kind = models.CharField(max_length=16, choices=OccupancyKind)
    # When an unanswered request stops holding (its respond_by); null: holds until released.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "occupancies"
        constraints = [
            # The guarantee: no two occupancies of one car overlap (btree_gist for `car =`).
            # It counts an expired row until its owner releases it, which is why whoever
            # inserts releases the car's expired rows first (occupancy_release_expired).
            ExclusionConstraint(
                name=OCCUPANCY_CONSTRAINT,
                expressions=[("car", RangeOperators.EQUAL), ("period", RangeOperators.OVERLAPS)],
            ),
            # Only a trip waits for an answer; blocks and service windows hold until released.
            models.CheckConstraint(
                name="occupancy_only_trips_expire",
                condition=Q(expires_at__isnull=True) | Q(kind=OccupancyKind.TRIP),
            ),
        ]
        indexes = [
            # Search by free dates asks "which occupancies are near these dates, whatever the
            # car", which the constraint's (car, period) index answers ten times slower with
            # the car left open (bench/README.md, "Browse with availability"). It carries car
            # and expiry so the search reads them from the index alone (index-only scan).
            GistIndex(
                fields=["period"], include=["car", "expires_at"], name="occupancy_period_gist"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.car_id} {self.period}"


# --- The connection to the vehicle cloud ---------------------------------------------------


class ConnectionStatus(models.TextChoices):
    HEALTHY = "healthy", _("Connected")
    UNHEALTHY = "unhealthy", _("Needs reconnecting")
    DISCONNECTED = "disconnected", _("Disconnected")


class VehicleConnection(models.Model):
    """A car's grant from the vehicle cloud: which vehicle, which scopes, and its tokens.

    Tokens are stored encrypted (vehicles.crypto, MultiFernet); the raw columns never hold a
    usable token. One live connection per car; a disconnected row stays for the history.
    """

    car = models.ForeignKey(Car, models.CASCADE, related_name="connections")
    provider = models.CharField(max_length=32, default="smartcar")
    mode = models.CharField(max_length=16, default="simulator")  # simulator|live|test|simulated
    vehicle_id = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    # Encrypted with vehicles.crypto; read and write through the services only.
    access_token_encrypted = models.TextField(blank=True)
    refresh_token_encrypted = models.TextField(blank=True)
    access_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=ConnectionStatus, default=ConnectionStatus.HEALTHY
    )
    status_reason = models.CharField(max_length=255, blank=True)
    # What the vehicle cloud reported about the car, for matching against the listing.
    reported_make = models.CharField(max_length=32, blank=True)
    reported_model = models.CharField(max_length=64, blank=True)
    reported_year = models.PositiveSmallIntegerField(null=True, blank=True)
    reported_vin = models.CharField(max_length=17, blank=True)
    connected_at = models.DateTimeField(auto_now_add=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    unhealthy_notified_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-connected_at"]
        constraints = [
            # One live connection per car, and one car per vehicle of the vehicle cloud.
            models.UniqueConstraint(
                fields=["car"],
                condition=~Q(status="disconnected"),
                name="connection_one_live_per_car",
            ),
            models.UniqueConstraint(
                fields=["provider", "vehicle_id"],
                condition=~Q(status="disconnected"),
                name=VEHICLE_CONNECTED_ONCE,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.vehicle_id} for {self.car_id} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status != ConnectionStatus.DISCONNECTED


# --- Vehicle commands: the outbox every lock and unlock goes through -----------------------


class CommandAction(models.TextChoices):
    LOCK = "lock", _("Lock")
    UNLOCK = "unlock", _("Unlock")


class CommandReason(models.TextChoices):
    TRIP_START = "trip_start", _("Trip start")
    TRIP_END = "trip_end", _("Trip end")
    SERVICE_END = "service_end", _("End of a service window")
    RENTER = "renter", _("Renter")
    OWNER = "owner", _("Owner")
    SERVICE = "service", _("Service")
    ADMIN = "admin", _("Admin")


class CommandStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENT = "sent", _("Sent to the car")
    SUCCEEDED = "succeeded", _("Done")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Expired")
    SUPERSEDED = "superseded", _("Replaced by a newer command")


C = CommandStatus
COMMAND_MOVES: dict[
    str, set[str]
] = {  # the lifecycle at a glance; vehicles.cloud.outbox.command_move acts on it
    C.QUEUED: {C.SENT, C.FAILED, C.EXPIRED, C.SUPERSEDED},
    # A sent command may go back to queued for a retry after a transient error.
    C.SENT: {C.SUCCEEDED, C.FAILED, C.QUEUED},
}
COMMAND_PENDING = [C.QUEUED, C.SENT]


class VehicleCommand(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    car = models.ForeignKey(Car, models.PROTECT, related_name="commands")
    # The digital key it was asked under (keys app; a plain id since keys sits above vehicles).
    key_id = models.BigIntegerField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )  # null: the system (trip clock, sweeps)
    # Whoever else pressed for it while it was on its way (a co-driver's Unlock joining the
    # renter's): they follow its progress too.
    joined_by = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="+", blank=True)
    action = models.CharField(max_length=8, choices=CommandAction)
    reason = models.CharField(max_length=16, choices=CommandReason)
    status = models.CharField(max_length=16, choices=CommandStatus, default=C.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    provider_request_id = models.CharField(max_length=64, blank=True)
    error_type = models.CharField(max_length=64, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    # A command a person asked for must not run after they walked away (see services).
    send_by = models.DateTimeField(null=True, blank=True)
    # From this moment on it is not sent: the person's send window, or earlier the end of the
    # key it was asked under, for its action (null: no deadline, as for an end lock). The
    # worker's last check before calling the car reads this row only.
    not_after = models.DateTimeField(null=True, blank=True)
    # Shown to whoever asked when the key's end (rather than the send window) stopped it.
    late_message = models.CharField(max_length=200, blank=True)
    # Staged by the system for a later moment (a trip's unlock at its start), and never sent
    # yet: until next_attempt_at it supersedes nothing and nothing supersedes it.
    staged = models.BooleanField(default=False)
    # A trip's unlock at its start: until this moment a car that cannot be reached (asleep,
    # out of coverage, the cloud down or throttling) is tried again, with a pause that depends on
    # the error (vehicles.cloud.sending). Null: the ordinary budgets, no start window.
    retry_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            # At most one command in flight per car: PostgreSQL refuses a second sent one.
            models.UniqueConstraint(
                fields=["car"], condition=Q(status="sent"), name="command_one_in_flight_per_car"
            ),
            # One lock and one unlock on its way per car: a press while one is queued or sent
            # joins it (commands.vehicle_command_enqueue). A trip's unlock staged for its start
            # stands apart, so a press during early access unlocks at once.
            models.UniqueConstraint(
                fields=["car", "action"],
                condition=Q(status__in=["queued", "sent"]) & ~Q(reason="trip_start"),
                name="command_one_pending_per_car_and_action",
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.car_id} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status in COMMAND_PENDING


class VehicleCommandEvent(models.Model):
    """Append-only history of a command's status changes."""

    command = models.ForeignKey(VehicleCommand, models.CASCADE, related_name="events")
    old_status = models.CharField(max_length=16, blank=True)
    new_status = models.CharField(max_length=16)
    note = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.old_status} → {self.new_status}"


# --- Last known status ---------------------------------------------------------------------


class VehicleStatus(models.Model):
    """What the car last told us; pages read this and never call the vehicle cloud."""

    car = models.OneToOneField(Car, models.CASCADE, related_name="live_status")
    is_locked = models.BooleanField(null=True)
    doors_open = models.BooleanField(null=True)
    latitude = models.FloatField(null=True)
    longitude = models.FloatField(null=True)
    odometer_km = models.FloatField(null=True)
    fuel_percent = models.FloatField(null=True)
    battery_percent = models.FloatField(null=True)
    range_km = models.FloatField(null=True)
    data_age = models.DateTimeField(null=True)  # when the car recorded the data (SC-Data-Age)
    fetched_at = models.DateTimeField(null=True)  # when we last read it
    refresh_requested_at = models.DateTimeField(null=True)
    last_error = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name = _("vehicle status")
        verbose_name_plural = _("vehicle statuses")

    def __str__(self) -> str:
        return f"Status of {self.car_id}"


class WebhookEvent(models.Model):
    """Every accepted vehicle-cloud webhook event, once: deliveries are at-least-once, so the
    event id is the dedupe key, and a replayed delivery changes nothing."""

    event_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=32)
    vehicle_id = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField()

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
