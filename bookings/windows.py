"""Service windows in the car's calendar: what bookings offers keys (keys.grants.WindowHolds).

A service key's window takes the car like an owner block: one Hold row carrying the key's id,
under the same exclusion constraint as trips and blocks. Keys sits below bookings, so bookings
registers this object with keys from its AppConfig.ready() rather than keys importing it.
"""

from __future__ import annotations

import datetime

from django.db import IntegrityError, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.utils import timezone

from bookings import selectors, services
from bookings.models import Hold


class ServiceWindowHolds:
    def is_free(
        self, *, car_id: int, starts_at: datetime.datetime, ends_at: datetime.datetime
    ) -> bool:
        """The friendly early answer; the constraint still decides under a race."""
        now = timezone.now()
        # Overdue requests still count for the constraint until marked expired (STYLE §5).
        services.bookings_expire_unanswered(now=now, car_id=car_id)
        period = DateTimeTZRange(starts_at, ends_at)
        return not selectors.holds_that_matter(car_id=car_id, period=period, now=now).exists()

    def reserve(
        self, *, car_id: int, key_id: int, starts_at: datetime.datetime, ends_at: datetime.datetime
    ) -> None:
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("reserve() runs inside the service key's transaction")
        Hold.objects.create(
            car_id=car_id, service_key_id=key_id, period=DateTimeTZRange(starts_at, ends_at)
        )

    def release(self, *, key_id: int) -> None:
        Hold.objects.filter(service_key_id=key_id).delete()

    def is_conflict(self, error: IntegrityError) -> bool:
        return services.is_hold_conflict(error)
