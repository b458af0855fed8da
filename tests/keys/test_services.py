"""Key services: issuing with the trip, the trip hooks, sharing, service keys, revoking, the key
clock and the event row behind every move. Real PostgreSQL, Redis and simulator; time moves
with time-machine."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from unittest.mock import patch

import pytest
from django.db import IntegrityError, connection, transaction

from bookings import services as booking_services
from bookings.models import Booking, BookingStatus
from keys import errors, grants, lifecycle, selectors, services, tasks, tasks_email, use
from keys.models import AuditEntry, DigitalKey, EndLock, KeyEvent
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.factories import RenterFactory, UserFactory
from vehicles import tasks as vehicle_tasks
from vehicles.cloud import outbox
from vehicles.models import CommandStatus, Occupancy, VehicleCommand

pytestmark = pytest.mark.django_db

H = datetime.timedelta(hours=1)
M = datetime.timedelta(minutes=1)


def refused(code: str, call: Callable[[], object]) -> errors.KeyRefused:
    """Run `call`, which must be refused with `code`; the refusal, for its message."""
    with pytest.raises(errors.KeyRefused) as caught:
        call()
    assert caught.value.code == code, str(caught.value)
    return caught.value


def moves(key: DigitalKey) -> list[tuple[str, str]]:
    return [(e.old_status, e.new_status) for e in key.events.order_by("pk")]


def fresh(key: DigitalKey) -> DigitalKey:
    key.refresh_from_db()
    return key


# --- Issuing with the trip -------------------------------------------------------------------


def test_confirmation_issues_the_renters_trip_key(requested_booking, request_car, owner, settings):
    settings.KEY_LOCK_GRACE_MINUTES = 20
    request_car.early_access_minutes = 30
    request_car.save(update_fields=["early_access_minutes"])

    booking = booking_services.booking_confirm(booking=requested_booking, user=owner)

    key = DigitalKey.objects.get(booking_id=booking.pk)
    assert (key.kind, key.status, key.holder, key.car) == (
        "trip",
        "issued",
        booking.renter,
        request_car,
    )
    assert key.issued_by is None  # the system, on confirmation
    assert key.valid_from == booking.starts_at - 30 * M
    assert key.valid_until == booking.ends_at
    assert key.lock_until == booking.ends_at + 20 * M
    event = key.events.get()
    assert (event.old_status, event.new_status, event.actor) == ("", "issued", None)


def test_a_trip_key_opens_at_the_start_by_default(trip_key, confirmed_booking, settings):
    assert trip_key.valid_from == confirmed_booking.starts_at
    grace = datetime.timedelta(minutes=settings.KEY_LOCK_GRACE_MINUTES)
    assert trip_key.lock_until == confirmed_booking.ends_at + grace


def test_a_request_has_no_key_until_it_is_confirmed(requested_booking):
    assert not DigitalKey.objects.filter(booking_id=requested_booking.pk).exists()


def test_an_instant_booking_gets_its_key_at_once(instant_car, renter):
    booking = request_booking(instant_car, renter, starts_at=hour_from_now(days=2))
    assert booking.status == BookingStatus.CONFIRMED
    assert DigitalKey.objects.get(booking_id=booking.pk).holder == renter


def test_a_trip_key_knows_its_booking_by_public_id(confirmed_booking, trip_key):
    # Pages and the API name the trip by its public id without asking bookings for it.
    assert trip_key.booking_public_id == confirmed_booking.public_id


def test_the_issue_hook_running_twice_keeps_one_key(confirmed_booking, trip_key):
    again = services.trip_key_issue(
        booking_id=confirmed_booking.pk,
        booking_public_id=confirmed_booking.public_id,
        car=confirmed_booking.car,
        renter=confirmed_booking.renter,
        starts_at=confirmed_booking.starts_at,
        ends_at=confirmed_booking.ends_at,
    )
    assert again == trip_key
    assert DigitalKey.objects.filter(booking_id=confirmed_booking.pk).count() == 1
    assert KeyEvent.objects.filter(key=trip_key).count() == 1


def test_the_database_refuses_a_second_trip_key(trip_key):
    with pytest.raises(IntegrityError), transaction.atomic():
        DigitalKey.objects.create(
            kind="trip",
            car=trip_key.car,
            holder=trip_key.holder,
            booking_id=trip_key.booking_id,
            valid_from=trip_key.valid_from,
            valid_until=trip_key.valid_until,
            lock_until=trip_key.lock_until,
        )


# --- The trip starts ---------------------------------------------------------------------------


def test_trip_start_activates_the_key_and_queues_the_unlock(
    confirmed_booking, trip_key, clock, django_capture_on_commit_callbacks
):
    clock.move_to(confirmed_booking.starts_at, tick=False)
    with (
        patch.object(vehicle_tasks.run_vehicle_command, "apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert booking_services.booking_start(booking_id=confirmed_booking.pk) is not None

    key = fresh(trip_key)
    assert key.status == "active"
    assert key.activated_at == confirmed_booking.starts_at
    unlock = VehicleCommand.objects.get(car=key.car)
    assert (unlock.action, unlock.reason, unlock.key_id, unlock.actor) == (
        "unlock",
        "trip_start",
        key.pk,
        None,
    )
    assert unlock.send_by is None  # the system's command has no person's send window
    # Sent to the vehicle worker only once the trip's transaction committed.
    apply_async.assert_called_once_with(kwargs={"command_id": unlock.pk}, countdown=None)
    audit = AuditEntry.objects.get(command_public_id=unlock.public_id)
    assert (audit.action, audit.allowed, audit.actor, audit.via) == ("unlock", True, None, "system")


def test_the_unlock_commits_with_the_trip_or_not_at_all(confirmed_booking, trip_key, clock):
    clock.move_to(confirmed_booking.starts_at, tick=False)
    real = services.trip_keys_start

    def start_then_fail(**kwargs):
        real(**kwargs)
        raise RuntimeError("the database went away mid-transaction")

    with (
        patch.object(services, "trip_keys_start", side_effect=start_then_fail),
        pytest.raises(RuntimeError),
    ):
        booking_services.booking_start(booking_id=confirmed_booking.pk)

    confirmed_booking.refresh_from_db()
    assert confirmed_booking.status == BookingStatus.CONFIRMED
    assert fresh(trip_key).status == "issued"
    assert not VehicleCommand.objects.exists()
    assert not AuditEntry.objects.exists()


def test_no_unlock_when_the_owner_turned_it_off(confirmed_booking, trip_key, request_car, clock):
    request_car.unlock_at_start = False
    request_car.save(update_fields=["unlock_at_start"])
    clock.move_to(confirmed_booking.starts_at, tick=False)
    booking_services.booking_start(booking_id=confirmed_booking.pk)
    assert fresh(trip_key).status == "active"
    assert not VehicleCommand.objects.exists()


def test_the_trip_clock_twice_unlocks_once(confirmed_booking, trip_key, clock):
    clock.move_to(confirmed_booking.starts_at, tick=False)
    assert booking_services.booking_start(booking_id=confirmed_booking.pk) is not None
    assert booking_services.booking_start(booking_id=confirmed_booking.pk) is None
    assert VehicleCommand.objects.filter(action="unlock").count() == 1
    assert moves(trip_key) == [("", "issued"), ("issued", "active")]


# --- The trip ends -----------------------------------------------------------------------------


def test_trip_end_queues_the_end_lock(active_booking, active_trip_key, clock, settings):
    clock.move_to(active_booking.ends_at, tick=False)
    booking_services.booking_complete(booking_id=active_booking.pk)

    key = fresh(active_trip_key)
    assert key.status == "active"  # locking still works during the grace
    assert key.valid_until == active_booking.ends_at
    grace = datetime.timedelta(minutes=settings.KEY_LOCK_GRACE_MINUTES)
    assert key.lock_until == active_booking.ends_at + grace
    end_lock = EndLock.objects.get(key=key)
    assert (end_lock.status, end_lock.attempts, end_lock.car) == ("pending", 1, key.car)
    assert (end_lock.command.action, end_lock.command.reason) == ("lock", "trip_end")
    assert end_lock.next_attempt_at == active_booking.ends_at + datetime.timedelta(minutes=3)


def test_ending_early_clips_every_key_of_the_trip(
    active_booking, active_trip_key, shared_key, renter, co_driver, clock, settings
):
    ended_at = active_booking.starts_at + H
    clock.move_to(ended_at, tick=False)
    booking_services.booking_end(booking=active_booking, user=renter)

    grace = datetime.timedelta(minutes=settings.KEY_LOCK_GRACE_MINUTES)
    for key in (fresh(active_trip_key), fresh(shared_key)):
        assert (key.status, key.valid_until, key.lock_until) == (
            "active",
            ended_at,
            ended_at + grace,
        )
    assert EndLock.objects.get(key=active_trip_key).command.reason == "trip_end"
    assert not EndLock.objects.filter(key=shared_key).exists()  # one lock per trip end
    message = str(
        refused(
            "key_not_active",
            lambda: use.car_command_request(key=shared_key, user=co_driver, action="unlock"),
        )
    )
    assert message.startswith("The trip is over: you can only lock the car")
    assert use.car_command_request(key=active_trip_key, user=renter, action="lock").action == "lock"


def test_a_shared_key_ends_with_the_trip(active_booking, active_trip_key, shared_key, clock):
    clock.move_to(active_booking.ends_at, tick=False)
    booking_services.booking_complete(booking_id=active_booking.pk)
    assert fresh(shared_key).valid_until == active_booking.ends_at

    clock.move_to(fresh(active_trip_key).lock_until, tick=False)
    tasks.run_key_clock()
    assert fresh(active_trip_key).status == "expired"
    assert fresh(shared_key).status == "expired"
    assert moves(shared_key)[-1] == ("active", "expired")


def test_a_shared_part_that_never_began_expires_with_an_early_end(
    active_booking, active_trip_key, renter, co_driver, clock
):
    later = grants.key_share(
        key=active_trip_key,
        user=renter,
        email=co_driver.email,
        starts_at=active_booking.starts_at + 2 * H,
        ends_at=active_booking.ends_at,
    )
    clock.move_to(active_booking.starts_at + H, tick=False)
    booking_services.booking_end(booking=active_booking, user=renter)
    assert fresh(later).status == "expired"
    clock.move_to(active_booking.starts_at + 2 * H, tick=False)
    tasks.run_key_clock()
    assert fresh(later).status == "expired"  # never opened afterwards


# --- Cancellation ------------------------------------------------------------------------------


def test_cancelling_revokes_the_trip_key_and_its_shared_keys(
    confirmed_booking, trip_key, renter, co_driver
):
    shared = grants.key_share(key=trip_key, user=renter, email=co_driver.email)
    assert shared.status == "issued"  # the trip has not started

    booking_services.booking_cancel(booking=confirmed_booking, user=renter, reason="Plans changed")

    for key in (fresh(trip_key), fresh(shared)):
        assert key.status == "revoked"
        assert key.revoked_by == renter
        assert key.revoke_reason == "Plans changed"
        assert key.ended_at is not None
        event = key.events.order_by("pk").last()
        assert (event.old_status, event.new_status, event.actor, event.reason) == (
            "issued",
            "revoked",
            renter,
            "Plans changed",
        )
    assert not EndLock.objects.exists()  # never opened, nothing to lock


def test_cancelling_stops_an_unlock_from_reaching_the_car(
    requested_booking, request_car, owner, renter, sim, sim_vehicle_id, clock
):
    # The owner gives 30 minutes' early access; the renter opens the car before the start.
    request_car.early_access_minutes = 30
    request_car.save(update_fields=["early_access_minutes"])
    booking = booking_services.booking_confirm(booking=requested_booking, user=owner)
    key = selectors.trip_key_for_booking(booking_id=booking.pk)
    sim.set_state(sim_vehicle_id, is_locked=True)
    clock.move_to(booking.starts_at - 20 * M, tick=False)
    unlock = use.car_command_request(key=key, user=renter, action="unlock")

    booking_services.booking_cancel(booking=booking, user=owner, reason="Car damaged")

    assert fresh(key).status == "revoked"
    unlock.refresh_from_db()
    # Not sent yet: revoking the key withdrew it from the outbox (and the worker's last check
    # would refuse it anyway).
    assert unlock.status == CommandStatus.EXPIRED
    assert outbox.command_refusal(unlock, booking.starts_at - 19 * M) == "This key was revoked."
    vehicle_tasks.run_vehicle_command(command_id=unlock.pk)
    end_lock = EndLock.objects.get(key=key)  # the key had opened: the car is locked
    vehicle_tasks.run_vehicle_command(command_id=end_lock.command_id)
    car_log = [(c["action"], c["result"]) for c in sim.vehicle(sim_vehicle_id)["commands"]]
    assert car_log == [("LOCK", "success")]
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is True


# --- Sharing -----------------------------------------------------------------------------------


def test_the_renter_shares_during_the_trip(
    active_trip_key, renter, co_driver, django_capture_on_commit_callbacks
):
    with (
        patch.object(tasks_email.send_key_email, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        shared = grants.key_share(key=active_trip_key, user=renter, email="CO@example.test ")

    assert (shared.kind, shared.status, shared.holder, shared.parent) == (
        "shared",
        "active",
        co_driver,
        active_trip_key,
    )
    assert (shared.valid_from, shared.valid_until) == (
        active_trip_key.valid_from,
        active_trip_key.valid_until,
    )
    assert shared.lock_until == active_trip_key.lock_until
    assert (shared.booking_id, shared.issued_by) == (active_trip_key.booking_id, renter)
    assert moves(shared) == [("", "issued"), ("issued", "active")]
    audit = AuditEntry.objects.get(action="share")
    assert (audit.actor, audit.key, audit.allowed) == (renter, shared, True)
    delay.assert_called_once_with(key_id=shared.pk, kind="issued")


def test_a_key_for_part_of_the_trip_opens_on_its_own(
    active_booking, active_trip_key, renter, co_driver, clock
):
    starts = active_booking.starts_at + H
    shared = grants.key_share(
        key=active_trip_key,
        user=renter,
        email=co_driver.email,
        starts_at=starts,
        ends_at=starts + H,
    )
    assert shared.status == "issued"
    assert shared.lock_until == starts + H + lifecycle.lock_grace()
    tasks.run_key_clock()
    assert fresh(shared).status == "issued"
    clock.move_to(starts, tick=False)
    tasks.run_key_clock()
    assert fresh(shared).status == "active"


@pytest.mark.parametrize("who", ["co_driver", "owner", "stranger"])
def test_only_the_renter_shares(active_trip_key, who, request):
    user = request.getfixturevalue(who)
    refused(
        "not_allowed",
        lambda: grants.key_share(key=active_trip_key, user=user, email="x@example.test"),
    )


def test_a_shared_key_cannot_be_shared_again(shared_key, co_driver):
    RenterFactory(email="third@example.test")
    refused(
        "not_allowed",
        lambda: grants.key_share(key=shared_key, user=co_driver, email="third@example.test"),
    )


def test_sharing_with_an_unknown_email(active_trip_key, renter):
    error = refused(
        "no_such_user",
        lambda: grants.key_share(key=active_trip_key, user=renter, email="nobody@example.test"),
    )
    assert "sign up" in str(error)
    denied = AuditEntry.objects.get(action="share")  # refused attempts are audited too
    assert (denied.allowed, denied.code, denied.actor, denied.key) == (
        False,
        "no_such_user",
        renter,
        active_trip_key,
    )


def test_an_address_that_cannot_get_the_key_is_invited_once(
    active_trip_key, renter, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="nolicence@example.test")
    with django_capture_on_commit_callbacks() as queued:
        for email in ("nobody@example.test", "nolicence@example.test"):
            assert grants.key_share_offer(key=active_trip_key, user=renter, email=email) is None
        # Their own email is said plainly (it tells them nothing), and nothing is sent.
        refused(
            "not_eligible",
            lambda: grants.key_share_offer(
                key=active_trip_key, user=renter, email=renter.email.upper()
            ),
        )
    assert len(queued) == 2
    for email, remedy in [
        ("nobody@example.test", "sign_up"),
        ("nolicence@example.test", "licence"),
    ]:
        tasks_email.send_share_invitation(key_id=active_trip_key.pk, email=email, remedy=remedy)
        tasks_email.send_share_invitation(key_id=active_trip_key.pk, email=email, remedy=remedy)
    assert [m.to for m in mailoutbox] == [["nobody@example.test"], ["nolicence@example.test"]]
    signup, licence = mailoutbox
    assert "Rick wants to share" in signup.subject
    assert "/accounts/signup/" in signup.body
    assert "driving licence" in licence.body
    assert "/profile/" in licence.body
    assert not DigitalKey.objects.filter(kind="shared").exists()


@pytest.mark.parametrize(
    ("make_person", "words"),
    [
        (lambda: RenterFactory(email="x@example.test", verified=False), "verify their email"),
        (lambda: UserFactory(email="x@example.test"), "driving licence"),
        (
            lambda: RenterFactory(
                email="x@example.test", licence_expires_on=datetime.date(2001, 1, 1)
            ),
            "driving licence",
        ),
    ],
    ids=["unverified", "no-licence", "expired-licence"],
)
def test_a_co_driver_must_be_verified_and_licensed(active_trip_key, renter, make_person, words):
    make_person()
    error = refused(
        "not_eligible",
        lambda: grants.key_share(key=active_trip_key, user=renter, email="x@example.test"),
    )
    assert words in str(error)


def test_a_co_drivers_licence_must_last_through_the_shared_window(
    active_booking, active_trip_key, renter
):
    last_day = active_booking.ends_at.date()
    RenterFactory(email="x@example.test", licence_expires_on=last_day - datetime.timedelta(days=1))
    refused(
        "not_eligible",
        lambda: grants.key_share(key=active_trip_key, user=renter, email="x@example.test"),
    )


def test_no_key_for_oneself_or_the_owner(active_trip_key, renter, owner):
    assert "already hold" in str(
        refused(
            "not_eligible",
            lambda: grants.key_share(key=active_trip_key, user=renter, email=renter.email),
        )
    )
    assert "owner" in str(
        refused(
            "not_eligible",
            lambda: grants.key_share(key=active_trip_key, user=renter, email=owner.email),
        )
    )


def test_one_key_per_co_driver(shared_key, active_trip_key, renter, co_driver):
    error = refused(
        "not_eligible",
        lambda: grants.key_share(key=active_trip_key, user=renter, email=co_driver.email),
    )
    assert "already has a key" in str(error)
    # Handed back, it can be given again.
    grants.key_revoke(key=shared_key, user=co_driver)
    assert (
        grants.key_share(key=active_trip_key, user=renter, email=co_driver.email).status == "active"
    )


def test_at_most_five_co_drivers(active_trip_key, renter):
    for _ in range(grants.MAX_SHARED_KEYS_PER_TRIP):
        grants.key_share(key=active_trip_key, user=renter, email=RenterFactory().email)
    extra = RenterFactory()
    error = refused(
        "not_eligible",
        lambda: grants.key_share(key=active_trip_key, user=renter, email=extra.email),
    )
    assert "at most 5" in str(error)


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        (-H, 2 * H, "must fit inside the trip"),  # starts before the trip
        (H, 5 * H, "must fit inside the trip"),  # ends after it
        (2 * H, H, "end after it starts"),
    ],
)
def test_a_shared_window_must_fit_the_trip(
    active_booking, active_trip_key, renter, co_driver, start, end, words
):
    base = active_booking.starts_at
    error = refused(
        "invalid_window",
        lambda: grants.key_share(
            key=active_trip_key,
            user=renter,
            email=co_driver.email,
            starts_at=base + start,
            ends_at=base + end,
        ),
    )
    assert words in str(error)


def test_a_shared_window_that_is_over_is_refused(
    active_booking, active_trip_key, renter, co_driver, clock
):
    clock.move_to(active_booking.starts_at + 2 * H, tick=False)
    refused(
        "invalid_window",
        lambda: grants.key_share(
            key=active_trip_key,
            user=renter,
            email=co_driver.email,
            starts_at=active_booking.starts_at,
            ends_at=active_booking.starts_at + H,
        ),
    )


def test_a_finished_trip_cannot_be_shared(
    active_booking, active_trip_key, renter, co_driver, clock
):
    clock.move_to(active_booking.ends_at, tick=False)
    booking_services.booking_complete(booking_id=active_booking.pk)
    refused(
        "key_not_active",
        lambda: grants.key_share(key=fresh(active_trip_key), user=renter, email=co_driver.email),
    )


# --- Service keys ------------------------------------------------------------------------------


def issue_service_key(car, owner, technician, *, starts_at=None, hours=2, **kwargs) -> DigitalKey:
    starts_at = starts_at or hour_from_now(days=1)
    return grants.service_key_issue(
        car=car,
        user=owner,
        email=technician.email,
        starts_at=starts_at,
        ends_at=starts_at + hours * H,
        **kwargs,
    )


def test_a_service_key_holds_its_window(connected_car, owner, renter, technician):
    start = hour_from_now(days=1)
    key = issue_service_key(connected_car, owner, technician, starts_at=start, note="New tyres")

    assert (key.kind, key.status, key.holder, key.issued_by, key.note) == (
        "service",
        "issued",
        technician,
        owner,
        "New tyres",
    )
    assert key.booking_id is None
    assert key.lock_until == start + 2 * H + lifecycle.lock_grace()
    assert Occupancy.objects.get(service_key=key.pk).period.lower == start
    assert AuditEntry.objects.get(action="issue_service").key == key
    with pytest.raises(booking_services.BookingError) as caught:
        request_booking(connected_car, renter, starts_at=start + H, hours=3)
    assert caught.value.code == "not_available"


def test_a_service_key_is_refused_over_a_booking(confirmed_booking, request_car, owner, technician):
    error = refused(
        "not_available",
        lambda: issue_service_key(
            request_car, owner, technician, starts_at=confirmed_booking.starts_at + H
        ),
    )
    assert "booked or blocked" in str(error)
    assert not DigitalKey.objects.filter(kind="service").exists()


def test_revoking_a_service_key_frees_its_window(
    connected_car, owner, renter, technician, django_capture_on_commit_callbacks
):
    start = hour_from_now(days=1)
    key = issue_service_key(connected_car, owner, technician, starts_at=start)
    with (
        patch.object(tasks_email.send_key_email, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        grants.key_revoke(key=key, user=owner, reason="Garage closed")
    assert fresh(key).status == "revoked"
    assert not Occupancy.objects.filter(service_key=key.pk).exists()
    assert not EndLock.objects.exists()  # it never opened
    delay.assert_called_once_with(key_id=key.pk, kind="revoked")
    assert request_booking(connected_car, renter, starts_at=start).status == BookingStatus.CONFIRMED


def test_only_the_owner_gives_out_service_keys(connected_car, renter, technician):
    refused("not_allowed", lambda: issue_service_key(connected_car, renter, technician))


def test_staff_may_give_out_service_keys(connected_car, admin, technician):
    assert issue_service_key(connected_car, admin, technician).issued_by == admin


@pytest.mark.parametrize(
    ("email", "code"),
    [("nobody@example.test", "not_eligible"), ("owner@example.test", "not_eligible")],
)
def test_service_key_recipient_rules(connected_car, owner, email, code):
    start = hour_from_now(days=1)
    refused(
        code,
        lambda: grants.service_key_issue(
            car=connected_car, user=owner, email=email, starts_at=start, ends_at=start + H
        ),
    )


def test_a_technician_must_be_verified(connected_car, owner):
    unverified = UserFactory(email="new@example.test", verified=False)
    error = refused("not_eligible", lambda: issue_service_key(connected_car, owner, unverified))
    assert "verify" in str(error)


def test_a_service_key_answers_alike_for_no_account_and_an_unverified_one(connected_car, owner):
    # Anyone can list a car: the answer must not tell them which addresses have an account.
    UserFactory(email="new@example.test", verified=False)
    start = hour_from_now(days=1)
    answers = [
        refused(
            "not_eligible",
            lambda email=email: grants.service_key_issue(
                car=connected_car, user=owner, email=email, starts_at=start, ends_at=start + H
            ),
        )
        for email in ("new@example.test", "nobody@example.test")
    ]
    assert str(answers[0]) == str(answers[1])
    assert "sign up" in str(answers[0])


@pytest.mark.parametrize(
    ("start_days", "hours"),
    [(1, 0), (1, -1), (-1, 2), (1, 15 * 24)],
    ids=["empty", "backwards", "over", "longer-than-14-days"],
)
def test_service_window_rules(connected_car, owner, technician, start_days, hours):
    start = hour_from_now(days=start_days) if start_days > 0 else hour_from_now() - 4 * H
    refused(
        "invalid_window",
        lambda: issue_service_key(connected_car, owner, technician, starts_at=start, hours=hours),
    )


RACERS = 10


@pytest.mark.django_db(transaction=True)
def test_a_booking_and_a_service_key_racing_for_a_window_one_wins(
    transactional_db, request_car, owner
):
    renters = [RenterFactory() for _ in range(RACERS)]
    technician = UserFactory(email="tech@example.test")
    start = hour_from_now(days=4)
    barrier = threading.Barrier(RACERS)
    outcomes: list[object] = [None] * RACERS

    def race(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            if i % 2:
                outcomes[i] = grants.service_key_issue(
                    car=request_car,
                    user=owner,
                    email=technician.email,
                    starts_at=start + H,
                    ends_at=start + 3 * H,
                )
            else:
                outcomes[i] = booking_services.booking_request(
                    renter=renters[i], car=request_car, starts_at=start, ends_at=start + 2 * H
                )
        except Exception as error:  # recorded and asserted below
            outcomes[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [o for o in outcomes if isinstance(o, Booking | DigitalKey)]
    assert len(winners) == 1, outcomes
    losers = [o for o in outcomes if o not in winners]
    assert all(isinstance(o, booking_services.BookingError | errors.KeyRefused) for o in losers), (
        outcomes
    )
    assert {o.code for o in losers} == {"not_available"}
    assert Occupancy.objects.filter(car=request_car).count() == 1
    assert DigitalKey.objects.filter(kind="service").count() == sum(
        isinstance(o, DigitalKey) for o in outcomes
    )


def test_a_service_window_ends_with_a_lock(connected_car, owner, technician, clock):
    start = hour_from_now(days=1)
    key = issue_service_key(connected_car, owner, technician, starts_at=start)
    clock.move_to(start, tick=False)
    tasks.run_key_clock()
    assert fresh(key).status == "active"
    assert lifecycle.service_window_end(key_id=key.pk) is None  # not over yet

    clock.move_to(start + 2 * H, tick=False)
    assert lifecycle.service_window_end(key_id=key.pk) == key
    assert lifecycle.service_window_end(key_id=key.pk) is None  # once only
    end_lock = EndLock.objects.get(key=key)
    assert (end_lock.command.action, end_lock.command.reason) == ("lock", "service_end")
    assert fresh(key).status == "active"  # locking during the grace

    clock.move_to(key.lock_until, tick=False)
    tasks.run_key_clock()
    assert fresh(key).status == "expired"


# --- Revoking ----------------------------------------------------------------------------------


def test_the_renter_revokes_a_shared_key(shared_key, renter):
    key = grants.key_revoke(key=shared_key, user=renter, reason="Not needed")
    assert (key.status, key.revoked_by, key.revoke_reason) == ("revoked", renter, "Not needed")
    assert moves(key)[-1] == ("active", "revoked")
    audit = AuditEntry.objects.get(action="revoke")
    assert (audit.actor, audit.key, audit.allowed) == (renter, shared_key, True)
    assert not EndLock.objects.filter(key=shared_key).exists()  # the trip goes on


def test_the_co_driver_hands_a_key_back(shared_key, co_driver, django_capture_on_commit_callbacks):
    with (
        patch.object(tasks_email.send_key_email, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        grants.key_revoke(key=shared_key, user=co_driver)
    assert fresh(shared_key).status == "revoked"
    delay.assert_not_called()  # they know: they did it


@pytest.mark.parametrize("who", ["owner", "stranger"])
def test_others_cannot_revoke_a_shared_key(shared_key, who, request):
    user = request.getfixturevalue(who)
    refused("not_allowed", lambda: grants.key_revoke(key=shared_key, user=user))
    assert fresh(shared_key).status == "active"
    denied = AuditEntry.objects.get(action="revoke")
    assert (denied.allowed, denied.code, denied.actor) == (False, "not_allowed", user)


@pytest.mark.parametrize("who", ["renter", "owner"])
def test_a_trip_key_is_not_revoked_by_hand(active_trip_key, who, request):
    refused(
        "not_allowed",
        lambda: grants.key_revoke(key=active_trip_key, user=request.getfixturevalue(who)),
    )


def test_the_technician_cannot_revoke_a_service_key(connected_car, owner, technician):
    key = issue_service_key(connected_car, owner, technician)
    refused("not_allowed", lambda: grants.key_revoke(key=key, user=technician))


def test_staff_revoke_any_key_and_an_open_trip_is_locked(active_trip_key, shared_key, admin):
    grants.key_revoke(key=active_trip_key, user=admin, reason="Payment fraud")
    assert fresh(active_trip_key).status == "revoked"
    assert fresh(shared_key).status == "revoked"
    assert fresh(shared_key).revoked_by == admin
    assert EndLock.objects.get(key=active_trip_key).command.reason == "trip_end"


def test_revoking_twice_says_it_has_ended(shared_key, renter):
    grants.key_revoke(key=shared_key, user=renter)
    refused("key_not_active", lambda: grants.key_revoke(key=shared_key, user=renter))
    assert moves(shared_key).count(("active", "revoked")) == 1


# --- Every move leaves an event ----------------------------------------------------------------


def test_every_move_of_a_trip_leaves_an_event(
    confirmed_booking, trip_key, renter, co_driver, clock
):
    clock.move_to(confirmed_booking.starts_at, tick=False)
    booking_services.booking_start(booking_id=confirmed_booking.pk)
    shared = grants.key_share(key=fresh(trip_key), user=renter, email=co_driver.email)
    grants.key_revoke(key=shared, user=renter, reason="Swap drivers")
    clock.move_to(confirmed_booking.ends_at, tick=False)
    booking_services.booking_complete(booking_id=confirmed_booking.pk)
    clock.move_to(fresh(trip_key).lock_until, tick=False)
    tasks.run_key_clock()

    trip_events = [
        (e.old_status, e.new_status, e.actor, e.reason) for e in trip_key.events.order_by("pk")
    ]
    assert trip_events == [
        ("", "issued", None, "Booking confirmed"),
        ("issued", "active", None, "Trip start"),
        ("active", "expired", None, "Window over"),
    ]
    shared_events = [(e.old_status, e.new_status, e.actor) for e in shared.events.order_by("pk")]
    assert shared_events == [
        ("", "issued", renter),
        ("issued", "active", renter),
        ("active", "revoked", renter),
    ]


# --- The key clock -----------------------------------------------------------------------------


def test_key_activate_is_conditional_and_once(trip_key, clock):
    assert lifecycle.key_activate(key_id=trip_key.pk) is None  # not yet
    clock.move_to(trip_key.valid_from, tick=False)
    assert lifecycle.key_activate(key_id=trip_key.pk).status == "active"
    assert lifecycle.key_activate(key_id=trip_key.pk) is None
    assert moves(trip_key) == [("", "issued"), ("issued", "active")]


def test_key_expire_is_conditional_and_once(active_trip_key, clock):
    clock.move_to(active_trip_key.lock_until - datetime.timedelta(seconds=1), tick=False)
    assert lifecycle.key_expire(key_id=active_trip_key.pk) is None
    clock.move_to(active_trip_key.lock_until, tick=False)
    assert lifecycle.key_expire(key_id=active_trip_key.pk).status == "expired"
    assert lifecycle.key_expire(key_id=active_trip_key.pk) is None
    assert moves(active_trip_key).count(("active", "expired")) == 1


def test_a_revoked_key_is_neither_opened_nor_expired(confirmed_booking, trip_key, renter, clock):
    booking_services.booking_cancel(booking=confirmed_booking, user=renter)
    clock.move_to(trip_key.valid_from, tick=False)
    assert lifecycle.key_activate(key_id=trip_key.pk) is None
    clock.move_to(trip_key.lock_until, tick=False)
    assert lifecycle.key_expire(key_id=trip_key.pk) is None
    assert fresh(trip_key).status == "revoked"


def test_the_key_clock_twice_changes_nothing_the_second_time(
    connected_car, owner, renter, technician, co_driver, clock
):
    # Due at once: a service window that opened and one that closed, and a trip past its grace.
    start = hour_from_now(days=1)
    opening = issue_service_key(connected_car, owner, technician, starts_at=start)
    closing = issue_service_key(connected_car, owner, co_driver, starts_at=start - 3 * H, hours=3)
    booking = request_booking(connected_car, renter, starts_at=start - 8 * H, hours=2)
    clock.move_to(booking.starts_at, tick=False)
    booking_services.booking_start(booking_id=booking.pk)
    clock.move_to(start, tick=False)
    booking_services.booking_complete(booking_id=booking.pk)

    tasks.run_key_clock()
    first = _snapshot()
    tasks.run_key_clock()
    assert _snapshot() == first

    assert fresh(opening).status == "active"
    assert fresh(closing).status == "active"  # in its grace, its window's lock queued
    # The window's lock joined the trip's end lock, still queued: one LOCK goes to the car.
    end_lock = EndLock.objects.get(key=closing).command
    assert (end_lock.action, end_lock.status, end_lock.reason) == ("lock", "queued", "trip_end")
    trip_key = selectors.trip_key_for_booking(booking_id=booking.pk)
    assert trip_key.status == "expired"


def _snapshot() -> dict[str, object]:
    return {
        "keys": sorted(DigitalKey.objects.values_list("pk", "status")),
        "events": KeyEvent.objects.count(),
        "end_locks": sorted(EndLock.objects.values_list("pk", "status", "attempts", "alerts_sent")),
        "commands": VehicleCommand.objects.count(),
        "audit": AuditEntry.objects.count(),
    }


def test_keys_due_lists_each_job(connected_car, owner, technician, clock):
    start = hour_from_now(days=1)
    key = issue_service_key(connected_car, owner, technician, starts_at=start)
    assert lifecycle.keys_due(now=start - M) == {
        "activate": [],
        "end_service": [],
        "expire": [],
        "end_service_soon": [],
    }
    assert lifecycle.keys_due(now=start)["activate"] == [key.pk]
    soon = lifecycle.keys_due(now=start + 2 * H - 10 * datetime.timedelta(seconds=1))[
        "end_service_soon"
    ]
    assert soon == [(key.pk, start + 2 * H)]
    assert lifecycle.keys_due(now=start + 2 * H)["end_service"] == [key.pk]
    assert lifecycle.keys_due(now=key.lock_until)["expire"] == [key.pk]


def test_first_use_opens_an_issued_key_in_its_window(
    requested_booking, request_car, owner, renter, clock
):
    request_car.early_access_minutes = 15
    request_car.save(update_fields=["early_access_minutes"])
    booking = booking_services.booking_confirm(booking=requested_booking, user=owner)
    key = selectors.trip_key_for_booking(booking_id=booking.pk)
    clock.move_to(booking.starts_at - 10 * M, tick=False)  # before the key clock came by

    command = use.car_command_request(key=key, user=renter, action="unlock")

    key = fresh(key)
    assert key.status == "active"
    event = key.events.order_by("pk").last()
    assert (event.old_status, event.new_status, event.actor, event.reason) == (
        "issued",
        "active",
        renter,
        "First use",
    )
    assert (command.action, command.reason, command.key_id, command.actor) == (
        "unlock",
        "renter",
        key.pk,
        renter,
    )
