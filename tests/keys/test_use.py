"""Using keys: the holder's lock and unlock with their windows and rate limits, the owner's own
commands and overrides, the append-only audit log, and the worker's last check (the command's own row)."""

from __future__ import annotations

import datetime

import pytest
from django.db import DatabaseError, transaction

from bookings import services as booking_services
from keys import errors, grants, lifecycle, selectors, use
from keys.models import AuditEntry, DigitalKey
from vehicles import tasks as vehicle_tasks
from vehicles.cloud import outbox
from vehicles.models import CommandStatus, VehicleCommand

pytestmark = pytest.mark.django_db

H = datetime.timedelta(hours=1)
M = datetime.timedelta(minutes=1)


def refused(code: str, call) -> errors.KeyRefused:
    with pytest.raises(errors.KeyRefused) as caught:
        call()
    assert caught.value.code == code, str(caught.value)
    return caught.value


def last_audit() -> AuditEntry:
    return AuditEntry.objects.order_by("-pk").first()


# --- Only the holder -------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "stranger", "co_driver"])
def test_only_the_holder_uses_a_key(active_trip_key, who, request):
    user = request.getfixturevalue(who)
    refused(
        "not_allowed",
        lambda: use.car_command_request(key=active_trip_key, user=user, action="unlock"),
    )
    denied = last_audit()
    assert (denied.action, denied.allowed, denied.code, denied.actor, denied.key) == (
        "unlock",
        False,
        "not_allowed",
        user,
        active_trip_key,
    )
    assert not VehicleCommand.objects.filter(reason="renter").exists()


def test_the_holder_unlocks_and_locks(active_trip_key, renter):
    unlock = use.car_command_request(key=active_trip_key, user=renter, action="unlock", via="api")
    assert (unlock.action, unlock.reason, unlock.actor, unlock.key_id) == (
        "unlock",
        "renter",
        renter,
        active_trip_key.pk,
    )
    allowed = last_audit()
    assert (allowed.action, allowed.allowed, allowed.code, allowed.via) == (
        "unlock",
        True,
        "ok",
        "api",
    )
    assert allowed.command_public_id == unlock.public_id
    lock = use.car_command_request(key=active_trip_key, user=renter, action="lock")
    assert lock.action == "lock"
    assert last_audit().command_public_id == lock.public_id


def test_an_unknown_action_is_a_programming_error(active_trip_key, renter):
    with pytest.raises(ValueError, match="Unknown action"):
        use.car_command_request(key=active_trip_key, user=renter, action="start_engine")


# --- Windows, with the holder's own words --------------------------------------------------------


def test_before_the_window_says_when_it_opens(trip_key, renter, clock):
    clock.move_to(trip_key.valid_from - 2 * H, tick=False)
    for action in ("unlock", "lock"):
        error = refused(
            "key_not_active",
            lambda a=action: use.car_command_request(key=trip_key, user=renter, action=a),
        )
        assert (
            str(error)
            == f"This key works from {errors.local_time(trip_key.car, trip_key.valid_from)}."
        )
    assert errors.local_time(trip_key.car, trip_key.valid_from) in str(error)
    assert not VehicleCommand.objects.exists()
    assert AuditEntry.objects.filter(allowed=False, code="key_not_active").count() == 2


def test_the_local_time_is_the_cars(trip_key):
    trip_key.car.time_zone = "Europe/Amsterdam"
    at = datetime.datetime(2030, 7, 1, 12, 0, tzinfo=datetime.UTC)  # 14:00 in summer
    assert errors.local_time(trip_key.car, at) == "01 Jul 14:00"


def test_after_the_trip_only_locking_during_the_grace(
    active_booking, active_trip_key, renter, clock
):
    clock.move_to(active_booking.ends_at + 5 * M, tick=False)  # the trip clock not yet by
    error = refused(
        "key_not_active",
        lambda: use.car_command_request(key=active_trip_key, user=renter, action="unlock"),
    )
    until = errors.local_time(active_trip_key.car, active_trip_key.lock_until)
    assert str(error) == f"The trip is over: you can only lock the car, until {until}."
    assert use.car_command_request(key=active_trip_key, user=renter, action="lock").action == "lock"


def test_after_the_grace_nothing(active_booking, active_trip_key, renter, clock):
    clock.move_to(active_trip_key.lock_until, tick=False)
    for action in ("unlock", "lock"):
        error = refused(
            "key_not_active",
            lambda a=action: use.car_command_request(key=active_trip_key, user=renter, action=a),
        )
        assert str(error) == "This key has expired."


def test_an_expired_or_revoked_key_says_so(active_trip_key, shared_key, renter, co_driver, clock):
    grants.key_revoke(key=shared_key, user=renter)
    error = refused(
        "key_not_active",
        lambda: use.car_command_request(key=shared_key, user=co_driver, action="lock"),
    )
    assert str(error) == "This key was revoked."
    clock.move_to(active_trip_key.lock_until, tick=False)
    lifecycle.key_expire(key_id=active_trip_key.pk)
    error = refused(
        "key_not_active",
        lambda: use.car_command_request(
            key=DigitalKey.objects.get(pk=active_trip_key.pk), user=renter, action="lock"
        ),
    )
    assert str(error) == "This key has expired."


def test_a_key_revoked_after_the_page_loaded_is_refused(shared_key, renter, co_driver):
    stale = DigitalKey.objects.get(pk=shared_key.pk)  # what the co-driver's page read
    grants.key_revoke(key=shared_key, user=renter)
    error = refused(
        "key_not_active",
        lambda: use.car_command_request(key=stale, user=co_driver, action="unlock"),
    )
    assert str(error) == "This key was revoked."
    assert not VehicleCommand.objects.filter(actor=co_driver).exists()


# --- Rate limits -----------------------------------------------------------------------------


def unlock_anew(key, user, **kwargs) -> VehicleCommand:
    """An unlock that is a new command: the Lock before it replaces any unlock still queued (a
    press of Unlock while one is on its way joins it, and costs nothing)."""
    use.car_command_request(key=key, user=user, action="lock")
    return use.car_command_request(key=key, user=user, action="unlock", **kwargs)


def test_unlocks_are_limited_per_person(active_trip_key, renter, settings, clock):
    settings.KEY_UNLOCK_RATE_PER_PERSON = (2, 60)
    settings.KEY_UNLOCK_RATE_PER_CAR = (100, 60)
    unlock_anew(active_trip_key, renter)
    unlock_anew(active_trip_key, renter)
    error = refused("rate_limited", lambda: unlock_anew(active_trip_key, renter))
    assert error.retry_after == 60  # the clock stands still: the first leaves in a minute
    assert f"try again in {error.retry_after} seconds" in str(error)
    denied = last_audit()
    assert (denied.allowed, denied.code, denied.action) == (False, "rate_limited", "unlock")
    # Locking is never limited: a renter must always be able to lock up.
    assert use.car_command_request(key=active_trip_key, user=renter, action="lock").action == "lock"
    clock.shift(datetime.timedelta(seconds=error.retry_after))
    assert (
        use.car_command_request(key=active_trip_key, user=renter, action="unlock").action
        == "unlock"
    )


def test_unlocks_are_limited_per_car(active_trip_key, shared_key, renter, co_driver, settings):
    settings.KEY_UNLOCK_RATE_PER_PERSON = (100, 60)
    settings.KEY_UNLOCK_RATE_PER_CAR = (3, 60)
    unlock_anew(active_trip_key, renter)
    unlock_anew(shared_key, co_driver)
    unlock_anew(active_trip_key, renter)
    refused("rate_limited", lambda: unlock_anew(shared_key, co_driver))
    assert AuditEntry.objects.filter(code="rate_limited", actor=co_driver).count() == 1


def test_denied_attempts_do_not_count_against_the_limit(trip_key, renter, settings, clock):
    settings.KEY_UNLOCK_RATE_PER_PERSON = (2, 60)
    clock.move_to(trip_key.valid_from - H, tick=False)
    for _ in range(3):
        refused(
            "key_not_active",
            lambda: use.car_command_request(key=trip_key, user=renter, action="unlock"),
        )
    clock.move_to(trip_key.valid_from, tick=False)
    assert use.car_command_request(key=trip_key, user=renter, action="unlock").action == "unlock"


# --- The audit log is append-only ------------------------------------------------------------


def test_the_audit_log_cannot_be_changed(active_trip_key, renter):
    use.car_command_request(key=active_trip_key, user=renter, action="unlock")
    entry = last_audit()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(detail="nothing happened")
    entry.allowed = False
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        entry.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    entry.refresh_from_db()
    assert (entry.allowed, entry.detail) == (True, "")


# --- The owner -------------------------------------------------------------------------------


def test_the_owner_locks_at_any_time(active_trip_key, request_car, owner):
    command = use.car_command_request(car=request_car, user=owner, action="lock")
    assert (command.reason, command.actor, command.key_id) == ("owner", owner, None)
    entry = last_audit()
    assert (entry.action, entry.allowed, entry.key) == ("lock", True, active_trip_key)


def test_the_owner_unlocks_freely_between_trips(request_car, owner):
    command = use.car_command_request(car=request_car, user=owner, action="unlock")
    assert command.action == "unlock"
    assert (last_audit().action, last_audit().key) == ("unlock", None)


@pytest.mark.parametrize(
    ("override", "note"), [(False, ""), (False, "Forgot my bag"), (True, "  ")]
)
def test_an_owner_unlock_during_a_trip_needs_an_override_and_a_reason(
    active_trip_key, request_car, owner, override, note
):
    error = refused(
        "override_required",
        lambda: use.car_command_request(
            car=request_car, user=owner, action="unlock", override=override, note=note
        ),
    )
    assert "Rick" in str(error)  # who holds the key
    denied = last_audit()
    assert (denied.action, denied.allowed, denied.key) == (
        "override_unlock",
        False,
        active_trip_key,
    )
    assert not selectors.overrides_during(key=active_trip_key).exists()
    assert not VehicleCommand.objects.filter(reason="owner").exists()


def test_an_owner_override_is_recorded_and_shown_to_the_renter(active_trip_key, request_car, owner):
    command = use.car_command_request(
        car=request_car, user=owner, action="unlock", override=True, note="Spare key inside"
    )
    assert (command.action, command.reason) == ("unlock", "owner")
    entry = last_audit()
    assert (entry.action, entry.allowed, entry.detail, entry.actor, entry.key) == (
        "override_unlock",
        True,
        "Spare key inside",
        owner,
        active_trip_key,
    )
    assert list(selectors.overrides_during(key=active_trip_key)) == [entry]


def test_a_stranger_cannot_command_the_car(request_car, stranger):
    refused(
        "not_allowed",
        lambda: use.car_command_request(car=request_car, user=stranger, action="lock"),
    )
    assert last_audit().actor == stranger


# --- The worker's last check -----------------------------------------------------------------


def test_the_guard_refuses_an_unlock_of_a_key_revoked_while_queued(
    shared_key, renter, co_driver, sim, sim_vehicle_id
):
    unlock = use.car_command_request(key=shared_key, user=co_driver, action="unlock")
    grants.key_revoke(key=shared_key, user=renter)
    vehicle_tasks.run_vehicle_command(command_id=unlock.pk)
    unlock.refresh_from_db()
    assert (unlock.status, unlock.error_type) == (CommandStatus.FAILED, "KEY_NOT_ACTIVE")
    assert unlock.error_message == "This key was revoked."
    assert sim.vehicle(sim_vehicle_id)["commands"] == []  # it never reached the car


def test_the_guard_refuses_an_unlock_whose_window_closed_meanwhile(
    active_booking, active_trip_key, renter, clock
):
    clock.move_to(active_booking.ends_at - datetime.timedelta(seconds=5), tick=False)
    unlock = use.car_command_request(key=active_trip_key, user=renter, action="unlock")
    assert (
        outbox.command_refusal(unlock, active_booking.ends_at - datetime.timedelta(seconds=4))
        is None
    )
    refusal = outbox.command_refusal(unlock, active_booking.ends_at)
    assert refusal.startswith("The trip is over: you can only lock the car")


def test_the_guard_refuses_commands_of_expired_keys(active_trip_key, renter, clock):
    lock = use.car_command_request(key=active_trip_key, user=renter, action="lock")
    clock.move_to(active_trip_key.lock_until, tick=False)
    lifecycle.key_expire(key_id=active_trip_key.pk)
    lock.refresh_from_db()  # withdrawn with the key, in the same transaction
    assert outbox.command_refusal(lock, active_trip_key.lock_until) == "This key has expired."


def test_the_guard_lets_window_end_locks_through(active_booking, active_trip_key, clock, admin):
    clock.move_to(active_booking.ends_at, tick=False)
    booking_services.booking_complete(booking_id=active_booking.pk)
    grants.key_revoke(key=active_trip_key, user=admin)
    end_lock = VehicleCommand.objects.filter(reason="trip_end").first()
    assert outbox.command_refusal(end_lock, active_booking.ends_at + 3 * H) is None


def test_the_guard_lets_a_service_window_end_lock_through(connected_car, owner, technician, clock):
    from tests.bookings.fixtures_bookings import hour_from_now

    start = hour_from_now(days=1)
    key = grants.service_key_issue(
        car=connected_car, user=owner, email=technician.email, starts_at=start, ends_at=start + H
    )
    clock.move_to(start + H, tick=False)
    lifecycle.service_window_end(key_id=key.pk)
    grants.key_revoke(key=key, user=owner)
    lock = VehicleCommand.objects.get(reason="service_end")
    assert outbox.command_refusal(lock, start + 5 * H) is None


def test_a_holders_press_carries_its_own_deadline(active_booking, active_trip_key, renter, clock):
    clock.move_to(active_booking.ends_at - datetime.timedelta(seconds=5), tick=False)
    unlock = use.car_command_request(key=active_trip_key, user=renter, action="unlock")
    lock = use.car_command_request(key=active_trip_key, user=renter, action="lock")
    # The trip ends before the send window does: the unlock stops with the trip, the lock
    # goes on until the send window closes (locking works through the grace).
    assert unlock.not_after == active_booking.ends_at
    assert unlock.late_message.startswith("The trip is over: you can only lock the car")
    assert lock.not_after == lock.send_by
    assert lock.late_message == ""


def test_revoking_a_key_withdraws_its_queued_press_at_once(shared_key, renter, co_driver):
    unlock = use.car_command_request(key=shared_key, user=co_driver, action="unlock")
    grants.key_revoke(key=shared_key, user=renter)
    unlock.refresh_from_db()  # no worker has run: the revoke itself withdrew it
    assert (unlock.status, unlock.error_type) == (CommandStatus.FAILED, "KEY_NOT_ACTIVE")
    assert unlock.error_message == "This key was revoked."
    assert unlock.events.last().note.startswith("key revoked")


def test_ending_a_trip_early_withdraws_a_queued_unlock_but_not_the_end_lock(
    active_booking, active_trip_key, renter
):
    unlock = use.car_command_request(key=active_trip_key, user=renter, action="unlock")
    booking_services.booking_end(booking=active_booking, user=renter)
    unlock.refresh_from_db()
    assert (unlock.status, unlock.error_type) == (CommandStatus.FAILED, "KEY_NOT_ACTIVE")
    assert unlock.error_message.startswith("The trip is over: you can only lock the car")
    end_lock = VehicleCommand.objects.get(key_id=active_trip_key.pk, reason="trip_end")
    assert end_lock.status == CommandStatus.QUEUED
    assert end_lock.not_after is None  # an end lock always goes
