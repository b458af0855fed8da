"""What the car last reported: its lock state after a command, and a full status refresh."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from vehicles.cloud import connections, provider
from vehicles.models import VehicleStatus


def vehicle_status_claim_refresh(*, car_id: int) -> bool:
    """Claim a status refresh for the car: False when it has no live connection or one was
    claimed within VEHICLE_STATUS_MIN_INTERVAL. The caller sends the refresh task.

    A conditional UPDATE of refresh_requested_at, so however many pages ask at once, one refresh
    per interval reaches the car (the vehicle cloud's quota and the car's 12 V battery).
    """
    if connections.connection_live_for_car(car_id=car_id) is None:
        return False
    now = timezone.now()
    VehicleStatus.objects.get_or_create(car_id=car_id)
    interval = datetime.timedelta(seconds=settings.VEHICLE_STATUS_MIN_INTERVAL)
    claimed = (
        VehicleStatus.objects.filter(car_id=car_id)
        .filter(Q(refresh_requested_at__isnull=True) | Q(refresh_requested_at__lte=now - interval))
        .update(refresh_requested_at=now)
    )
    return bool(claimed)


def vehicle_status_record_lock(*, car_id: int, lock_status: provider.LockStatus) -> None:
    """What a lock-status read told us (after a command), outside a full refresh."""
    lock = {"is_locked": lock_status.is_locked, "doors_open": lock_status.doors_open}
    # A plain UPDATE first: the row almost always exists, and update_or_create would lock and
    # re-read it inside a savepoint (four statements instead of one, after every command).
    if not VehicleStatus.objects.filter(car_id=car_id).update(**lock):
        VehicleStatus.objects.update_or_create(car_id=car_id, defaults=lock)


def vehicle_status_record(
    *, car_id: int, readings: dict[str, object], data_age: datetime.datetime | None, error: str
) -> None:
    """Store what a refresh read; fields it could not read keep their last known values."""
    defaults: dict[str, object] = {
        **readings,
        "fetched_at": timezone.now(),
        "last_error": error[:255],
    }
    if data_age is not None:
        defaults["data_age"] = data_age
    VehicleStatus.objects.update_or_create(car_id=car_id, defaults=defaults)
