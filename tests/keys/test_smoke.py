import datetime

import pytest
from django.db import DatabaseError, transaction

from bookings import services as booking_services
from keys import endlocks, services, use
from keys.models import AuditEntry, DigitalKey, EndLock
from tests.factories import RenterFactory
from vehicles.models import VehicleCommand

pytestmark = pytest.mark.django_db


def test_trip_lifecycle(confirmed_booking, clock, renter, owner):
    key = DigitalKey.objects.get(booking_id=confirmed_booking.pk)
    assert key.status == "issued"
    assert key.holder == renter
    clock.move_to(confirmed_booking.starts_at, tick=False)
    booking_services.booking_start(booking_id=confirmed_booking.pk)
    key.refresh_from_db()
    assert key.status == "active"
    unlock = VehicleCommand.objects.get(key_id=key.pk)
    assert unlock.action == "unlock"
    assert unlock.reason == "trip_start"
    co = RenterFactory(email="co@example.test")
    shared = services.key_share(key=key, user=renter, email=co.email)
    assert shared.status == "active"
    cmd = use.key_command(key=shared, user=co, action="unlock")
    assert cmd.key_id == shared.pk
    assert use.command_guard(cmd, cmd.requested_at) is None
    services.key_revoke(key=shared, user=renter)
    cmd.refresh_from_db()
    assert use.command_guard(cmd, cmd.requested_at)
    with pytest.raises(services.KeyRefused) as err:
        use.key_command(key=shared, user=co, action="unlock")
    assert err.value.code == "key_not_active"
    clock.move_to(confirmed_booking.ends_at, tick=False)
    booking_services.booking_complete(booking_id=confirmed_booking.pk)
    end_lock = EndLock.objects.get(key=key)
    assert end_lock.command.action == "lock"
    with pytest.raises(services.KeyRefused):
        use.key_command(key=key, user=renter, action="unlock")
    use.key_command(key=key, user=renter, action="lock")
    clock.move_to(confirmed_booking.ends_at + datetime.timedelta(minutes=16), tick=False)
    due = services.keys_due(now=confirmed_booking.ends_at + datetime.timedelta(minutes=16))
    for k in due["expire"]:
        services.key_expire(key_id=k)
    key.refresh_from_db()
    assert key.status == "expired"
    assert endlocks.end_lock_check(end_lock_id=end_lock.pk) == "waiting"
    assert AuditEntry.objects.filter(allowed=False).exists()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.all().delete()


def test_service_key_blocks_bookings(connected_car, owner, renter):
    tech = RenterFactory(email="tech@example.test")
    from tests.bookings.fixtures_bookings import hour_from_now, request_booking

    start = hour_from_now(days=2)
    key = services.service_key_issue(
        car=connected_car,
        user=owner,
        email=tech.email,
        starts_at=start,
        ends_at=start + datetime.timedelta(hours=2),
    )
    assert key.kind == "service"
    with pytest.raises(booking_services.BookingError):
        request_booking(connected_car, renter, starts_at=start)
    services.key_revoke(key=key, user=owner)
    request_booking(connected_car, renter, starts_at=start)
