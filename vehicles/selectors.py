"""Reads of cars: the access doors (owner or public), the search, and what the pages show of a
car's connection to the vehicle cloud, its commands and its last known status."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.contrib.auth.models import AnonymousUser
from django.db.models import (
    Exists,
    F,
    FloatField,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import ACos, Cos, Greatest, Least, Radians, Sin
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from carshare.db import one_or_404
from vehicles import crypto, occupancy
from vehicles.makes import can_lock_remotely
from vehicles.models import (
    COMMAND_PENDING,
    Car,
    CarQuerySet,
    CommandAction,
    CommandStatus,
    ConnectionStatus,
    VehicleCommand,
    VehicleConnection,
    VehicleStatus,
)

EARTH_RADIUS_KM = 6371.0


def car_for_owner(*, user: User, public_id: UUID | str) -> Car:
    """The owner's car, listed or not; anyone else gets 404."""
    if not user.is_authenticated:
        raise Http404("No such car.")
    return one_or_404(Car.objects.filter(owner=user), public_id=public_id, message="No such car.")


def car_for_viewer(*, user: User | AnonymousUser, public_id: UUID | str) -> Car:
    """A public car (CarQuerySet.public) for everyone, any of theirs for its owner; otherwise
    404, so nobody learns of a car they could not use as listed."""
    car = (
        Car.objects.select_related("owner")
        .prefetch_related("photos")
        .with_public()
        .annotate(is_connected=_healthy_connection())
        .filter(public_id=public_id)
        .first()
    )
    # is_public, is_connected: annotations of with_public() and _healthy_connection().
    if car is None or not (car.is_public or (user.is_authenticated and car.owner_id == user.pk)):  # type: ignore[attr-defined]
        raise Http404("No such car.")
    return car


def cars_of_owner(*, user: User) -> QuerySet[Car]:
    """The owner's cars, each with what car_not_public_reason needs (no query per car)."""
    return (
        _with_public_facts(Car.objects.filter(owner=user))
        .prefetch_related("photos")
        .order_by("-is_listed", "-created_at")
    )


# --- Public or not: the rule lives in CarQuerySet.public; this says why not -----------------


@dataclass(frozen=True)
class NotPublic:
    """Why a car is not public, for its owner: what to say and where to fix it."""

    code: str  # unlisted, make_cannot_lock, not_connected, connection_expired, lock_not_granted
    message: str | Promise
    fix_url: str
    fix_label: str | Promise


def _live_connection_status() -> Subquery:
    return Subquery(
        VehicleConnection.objects.filter(car=OuterRef("pk"))
        .exclude(status=ConnectionStatus.DISCONNECTED)
        .values("status")[:1]
    )


def _with_public_facts(cars: CarQuerySet) -> QuerySet[Car]:
    return cars.with_public().annotate(live_connection_status=_live_connection_status())


def car_not_public_reason(car: Car, *, fresh: bool = False) -> NotPublic | None:
    """None when the car is public (by CarQuerySet's rule, so the two never disagree); otherwise
    the first thing standing in the way, in the order the owner would fix them. Uses
    cars_of_owner's annotations unless `fresh`: then one query reads the car as it is now."""
    if fresh or not hasattr(car, "live_connection_status"):
        car = _with_public_facts(Car.objects.filter(pk=car.pk)).get()
    # is_public, live_connection_status: annotations of _with_public_facts().
    if car.is_public:  # type: ignore[attr-defined]
        return None
    page = car.get_absolute_url()
    if not car.is_listed:
        return NotPublic(
            "unlisted",
            _("Not public: you unlisted it"),
            page,
            _("List it again"),
        )
    if not can_lock_remotely(car.make):
        return NotPublic(
            "make_cannot_lock",
            _("Not public: this make can't be locked remotely"),
            reverse("vehicles:car_edit", args=[car.public_id]),
            _("Check the make"),
        )
    connect = f"{page}#car-connection"
    if car.live_connection_status is None:  # type: ignore[attr-defined]
        return NotPublic(
            "not_connected",
            _("Not public: connect the car to the vehicle cloud"),
            connect,
            _("Connect it"),
        )
    if car.live_connection_status == ConnectionStatus.UNHEALTHY:  # type: ignore[attr-defined]
        return NotPublic(
            "connection_expired",
            _("Not public: reconnect: the connection expired"),
            connect,
            _("Reconnect it"),
        )
    # Healthy, but granted without lock and unlock (Connect now refuses such a grant).
    return NotPublic(
        "lock_not_granted",
        _("Not public: reconnect and allow carshare to lock and unlock the car"),
        connect,
        _("Reconnect it"),
    )


def _distance_km(lat: Decimal, lng: Decimal) -> Any:
    """Great-circle distance in km (spherical law of cosines), clamped so ACOS never errs."""
    cosine = Cos(Radians(Value(float(lat)))) * Cos(Radians(F("latitude"))) * Cos(
        Radians(F("longitude")) - Radians(Value(float(lng)))
    ) + Sin(Radians(Value(float(lat)))) * Sin(Radians(F("latitude")))
    return Value(EARTH_RADIUS_KM) * ACos(
        Least(Greatest(cosine, Value(-1.0)), Value(1.0)), output_field=FloatField()
    )


def cars_search(*, filters: dict[str, Any]) -> QuerySet[Car]:
    """Public cars (CarQuerySet.public) matching cleaned CarSearchForm data, sorted as asked;
    with available_from and available_to, only cars free for that whole trip (see
    occupancy.cars_free_between)."""
    cars: QuerySet[Car] = Car.objects.public().prefetch_related("photos")
    if city := (filters.get("city") or "").strip():
        cars = cars.filter(city__iexact=city)
    if make := filters.get("make"):
        cars = cars.filter(make=make)
    if (low := filters.get("min_price")) is not None:
        cars = cars.filter(hourly_price__gte=low)
    if (high := filters.get("max_price")) is not None:
        cars = cars.filter(hourly_price__lte=high)
    if seats := filters.get("seats"):
        cars = cars.filter(seats__gte=seats)
    if fuel := filters.get("fuel_type"):
        cars = cars.filter(fuel_type=fuel)
    if transmission := filters.get("transmission"):
        cars = cars.filter(transmission=transmission)
    if filters.get("instant_book"):
        cars = cars.filter(instant_book=True)
    start, end = filters.get("available_from"), filters.get("available_to")
    if start is not None and end is not None:
        cars = occupancy.cars_free_between(cars, start, end, timezone.now())

    lat, lng = filters.get("lat"), filters.get("lng")
    if lat is not None and lng is not None:
        cars = cars.annotate(distance_km=_distance_km(lat, lng))
        if (radius := filters.get("radius_km")) is not None:
            cars = cars.filter(distance_km__lte=float(radius))
    else:
        # Every result has distance_km (None without a position): a template asking a car
        # for a missing attribute costs a dir() of the model per card (bench/README.md).
        cars = cars.annotate(distance_km=Value(None, output_field=FloatField()))

    sort = filters.get("sort") or ("distance" if lat is not None else "price")
    ordering = {
        "price": ["hourly_price", "daily_price", "pk"],
        "-price": ["-hourly_price", "-daily_price", "pk"],
        "newest": ["-created_at", "pk"],
        "distance": ["distance_km", "pk"],
    }[sort]
    return cars.order_by(*ordering)


# --- The connection to the vehicle cloud, as pages and the API show it ----------------------


def _healthy_connection() -> Exists:
    return Exists(
        VehicleConnection.objects.filter(car=OuterRef("pk"), status=ConnectionStatus.HEALTHY)
    )


def cars_with_connection(cars: QuerySet[Car], *, live_connections: bool = False) -> QuerySet[Car]:
    """`cars` annotated with `is_connected` (no extra query), and with `live_connections`
    prefetched (one extra query) when the caller shows owners their connection."""
    cars = cars.annotate(is_connected=_healthy_connection())
    if live_connections:
        cars = cars.prefetch_related(
            Prefetch(
                "connections",
                queryset=VehicleConnection.objects.exclude(status=ConnectionStatus.DISCONNECTED),
                to_attr="live_connections",
            )
        )
    return cars


def car_is_connected(car: Car) -> bool:
    """Can carshare lock and unlock this car now? Only a healthy connection counts: a car whose
    connection needs reconnecting could not be opened for a renter, so it cannot be booked."""
    annotated: bool | None = getattr(car, "is_connected", None)  # from cars_with_connection()
    if annotated is not None:
        return annotated
    return VehicleConnection.objects.filter(car=car, status=ConnectionStatus.HEALTHY).exists()


def car_live_connection(car: Car) -> VehicleConnection | None:
    """The car's healthy or unhealthy connection, using the prefetch when there was one."""
    prefetched: list[VehicleConnection] | None = getattr(car, "live_connections", None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return (
        VehicleConnection.objects.filter(car=car)
        .exclude(status=ConnectionStatus.DISCONNECTED)
        .first()
    )


def vehicle_status_for_car(*, car_id: int) -> VehicleStatus | None:
    """What the car last told us, or None before the first read."""
    return VehicleStatus.objects.filter(car_id=car_id).first()


def command_for_owner(*, user: User, public_id: UUID | str) -> VehicleCommand:
    """The command for its car's owner, the person who asked for it or anyone whose press
    joined it; 404 for anyone else."""
    command = None
    if user.is_authenticated:
        command = VehicleCommand.objects.select_related("car").filter(public_id=public_id).first()
    if command is None or (
        user.pk not in (command.car.owner_id, command.actor_id)
        and not command.joined_by.filter(pk=user.pk).exists()
    ):
        raise Http404("No such command.")
    return command


def commands_for_car(*, car_id: int, limit: int = 20) -> QuerySet[VehicleCommand]:
    """The car's latest commands, newest first."""
    return VehicleCommand.objects.filter(car_id=car_id).order_by("-requested_at", "-pk")[:limit]


def car_fallback(car: Car) -> str:
    """The owner's fallback for a car that will not open remotely, decrypted ("" when none)."""
    return crypto.decrypt_token(car.fallback_encrypted) if car.fallback_encrypted else ""


# The car's answer to a LOCK when a door, the boot or the bonnet is open (Smartcar's code).
DOOR_OPEN = "DOOR_OPEN"


def latest_lock_answer(
    *, car_id: int, since: datetime.datetime | None = None
) -> VehicleCommand | None:
    """The newest LOCK of the car that is over (done, failed, expired or replaced; one still on
    its way is skipped), whoever sent it: what the car last said about being locked."""
    locks = VehicleCommand.objects.filter(car_id=car_id, action=CommandAction.LOCK).exclude(
        status__in=COMMAND_PENDING
    )
    if since is not None:
        locks = locks.filter(requested_at__gte=since)
    return locks.order_by("-requested_at", "-pk").first()


def lock_refused_door_open(
    *, car_id: int, newest_first: Iterable[VehicleCommand] | None = None
) -> bool:
    """Whether the car's latest answer to a LOCK was "a door is open". The status pages show
    the doors as open then: the last status read may be older and say "closed", and the car's
    refusal is the newer word. `newest_first`: the car's latest commands, when the page has
    them already (spares a query)."""
    if newest_first is None:
        latest = latest_lock_answer(car_id=car_id)
    else:
        latest = next(
            (c for c in newest_first if c.action == CommandAction.LOCK and not c.is_pending), None
        )
    return (
        latest is not None
        and latest.status == CommandStatus.FAILED
        and latest.error_code == DOOR_OPEN
    )
