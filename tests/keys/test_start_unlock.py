"""When the car won't open at the start of a trip: the start's unlock is tried again with a pause
that depends on the error, within the start window; the key clock tells the renter, the owner
and the admins when the first attempts fail and when the car opens; and the renter at the car
can say so, which retries at once and asks the owner to unlock it (one tap, an override).

Against the real simulator and PostgreSQL. Most tests drive the vehicle worker's task by hand
and move the clock past each pause (as tests/keys/test_faults.py does for the end lock); the last
ones run a real worker against a car that is unreachable for a few seconds of real time.
"""

from __future__ import annotations

import datetime
import time
from unittest.mock import patch

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings import services as booking_services
from keys import ladder, selectors, startunlocks, tasks_email
from keys import tasks as key_tasks
from keys.errors import KeyRefused
from keys.models import AuditEntry, StartUnlock
from tests.api.conftest import session_token
from tests.bookings.fixtures_bookings import hour_from_now, request_booking
from tests.keys.helpers import wait_for
from vehicles import tasks as vehicle_tasks
from vehicles.cloud import sending
from vehicles.models import CommandReason, CommandStatus, VehicleCommand

C = CommandStatus
S = datetime.timedelta(seconds=1)
HTMX = {"HX-Request": "true"}


def start_of(booking) -> StartUnlock:
    return StartUnlock.objects.select_related("command").get(key__booking_id=booking.pk)


def start_command(booking) -> VehicleCommand:
    return VehicleCommand.objects.get(key_id=start_of(booking).key_id, reason="trip_start")


def run(command: VehicleCommand) -> VehicleCommand:
    vehicle_tasks.run_vehicle_command(command_id=command.pk)
    command.refresh_from_db()
    return command


def pause_of(command: VehicleCommand) -> float:
    return (command.next_attempt_at - timezone.now()).total_seconds()


def car_log(sim, vehicle_id: str) -> list[tuple[str, str]]:
    return [(c["action"], c["result"]) for c in sim.vehicle(vehicle_id)["commands"]]


def unlocks(sim, vehicle_id: str) -> list[str]:
    return [outcome for action, outcome in car_log(sim, vehicle_id) if action == "UNLOCK"]


def alerted(mailoutbox) -> list[str]:
    return sorted(m.to[0] for m in mailoutbox if m.subject.startswith("Action needed: "))


def told_open(mailoutbox) -> list[str]:
    return sorted(m.to[0] for m in mailoutbox if m.subject.endswith(" is open now"))


def clock_check(booking) -> str:
    return startunlocks.start_unlock_check(start_unlock_id=start_of(booking).pk)


@pytest.fixture(autouse=True)
def emails_sent_inline():
    """The key emails queued on commit are sent right here, as a worker would send them (a spy
    around the real tasks instead of the broker): these tests drive the worker by hand."""

    def inline(task):
        def deliver(args=None, kwargs=None, **options):
            return task(*(args or ()), **(kwargs or {}))

        return patch.object(task, "apply_async", side_effect=deliver)

    with inline(tasks_email.send_start_unlock_alert), inline(tasks_email.send_owner_at_car_request):
        yield


@pytest.fixture
def started(active_booking, sim, sim_vehicle_id, clock):
    """The trip has started (the clock stands at the start): its unlock is queued, not run."""
    sim.set_state(sim_vehicle_id, is_locked=True)
    return active_booking


# --- The start window: retried by error -------------------------------------------------------


@pytest.mark.django_db
def test_an_unreachable_car_is_tried_again_until_it_answers(started, sim, sim_vehicle_id, clock):
    sim.set_state(sim_vehicle_id, reachable=False)
    command = start_command(started)
    assert command.retry_until == started.starts_at + datetime.timedelta(minutes=15)

    pauses = []
    for attempt in (1, 2, 3):
        command = run(command)
        assert (command.status, command.error_code, command.attempts) == (
            C.QUEUED,
            "UNREACHABLE",
            attempt,
        )
        pauses.append(pause_of(command))
        clock.move_to(command.next_attempt_at, tick=False)
    # Every 8 s for the first two minutes, each up to a fifth later (spread), never sooner.
    assert all(8 <= pause <= 9.6 for pause in pauses)

    sim.set_state(sim_vehicle_id, reachable=True)
    command = run(command)
    assert (command.status, command.attempts) == (C.SUCCEEDED, 4)
    assert command.confirmed_at is not None
    assert unlocks(sim, sim_vehicle_id) == ["VEHICLE_STATE:UNREACHABLE"] * 3 + ["success"]
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is False
    assert clock_check(started) == "opened"
    assert start_of(started).opened_at == command.confirmed_at


@pytest.mark.django_db
def test_an_asleep_car_is_tried_again_shortly_then_calmer(started, sim, sim_vehicle_id, clock):
    sim.set_state(sim_vehicle_id, asleep=True)
    command = start_command(started)
    command = run(command)
    assert (command.status, command.error_code) == (C.QUEUED, "ASLEEP")
    assert 6 <= pause_of(command) <= 6.5  # 5 s, but never faster than the make allows (6 s)
    clock.move_to(command.next_attempt_at, tick=False)
    command = run(command)
    assert 15 <= pause_of(command) <= 18


@pytest.mark.django_db
def test_a_rate_limited_start_waits_what_retry_after_says(started, sim, sim_vehicle_id, clock):
    sim.fault(
        sim_vehicle_id, endpoint="security", type="RATE_LIMIT", code="VEHICLE", retry_after=40
    )
    command = run(start_command(started))
    assert (command.status, command.error_type) == (C.QUEUED, "RATE_LIMIT")
    assert 40 <= pause_of(command) <= 48  # Retry-After is a floor
    clock.move_to(command.next_attempt_at - 2 * S, tick=False)
    assert run(command).attempts == 1  # a message early: nothing sent
    clock.move_to(command.next_attempt_at, tick=False)
    assert run(command).status == C.SUCCEEDED


@pytest.mark.django_db
def test_a_burst_of_cloud_errors_backs_off_and_opens_without_alarm(
    started, sim, sim_vehicle_id, clock, mailoutbox
):
    sim.fault(
        sim_vehicle_id, endpoint="security", type="SERVER", code="INTERNAL", status=500, count=3
    )
    command = start_command(started)
    pauses = []
    for _ in range(3):
        command = run(command)
        assert command.status == C.QUEUED
        pauses.append(pause_of(command))
        clock.move_to(command.next_attempt_at, tick=False)
    assert run(command).status == C.SUCCEEDED
    # 2, 4, 8 s (a fifth more at most), each raised to the make's 6 s.
    assert pauses[:2] == [6.0, 6.0]
    assert 8 <= pauses[2] <= 9.6
    clock.shift(startunlocks.CHECK_AFTER)
    key_tasks.run_key_clock()
    assert start_of(started).status == "opened"
    assert alerted(mailoutbox) == []


@pytest.mark.django_db
def test_a_refusal_that_needs_a_person_is_not_retried(started, sim, sim_vehicle_id):
    sim.set_state(sim_vehicle_id, remote_access_enabled=False)
    command = run(start_command(started))
    assert (command.status, command.error_code, command.attempts) == (
        C.FAILED,
        "REMOTE_ACCESS_DISABLED",
        1,
    )
    assert clock_check(started).startswith("failed")


@pytest.mark.django_db
def test_the_start_window_bounds_the_commands_to_the_car(started, sim, sim_vehicle_id, clock):
    sim.set_state(sim_vehicle_id, reachable=False)
    command = start_command(started)
    while command.status == C.QUEUED:
        command = run(command)
        if command.status == C.QUEUED:
            assert command.next_attempt_at <= command.retry_until
            clock.move_to(command.next_attempt_at, tick=False)
    assert command.status == C.FAILED
    assert timezone.now() <= command.retry_until
    # Every 8 s for two minutes, then 15 s, then every 30-36 s for the rest of 15 minutes:
    # about 40 sends, no storm.
    assert 30 <= command.attempts <= sending.START_MAX_ATTEMPTS
    assert len(unlocks(sim, sim_vehicle_id)) == command.attempts


# --- Who is told ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_everyone_is_told_once_when_the_first_attempts_fail_and_again_when_it_opens(
    started, sim, sim_vehicle_id, clock, admin, mailoutbox, django_capture_on_commit_callbacks
):
    sim.set_state(sim_vehicle_id, reachable=False)
    command = start_command(started)
    for _ in range(3):
        command = run(command)
        clock.move_to(command.next_attempt_at, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert clock_check(started) == "trying+alerted"
    assert alerted(mailoutbox) == [
        "admin@example.test",
        "owner@example.test",
        "renter@example.test",
    ]
    renter_mail = next(m for m in mailoutbox if m.to == ["renter@example.test"])
    assert "I'm at the car and it won't open" in renter_mail.body
    owner_mail = next(m for m in mailoutbox if m.to == ["owner@example.test"])
    assert "car maker's app" in owner_mail.body
    assert "VEHICLE_STATE" not in renter_mail.body + owner_mail.body  # words, not codes
    with django_capture_on_commit_callbacks(execute=True):
        assert clock_check(started) == "trying"  # told once

    sim.set_state(sim_vehicle_id, reachable=True)
    run(command)
    with django_capture_on_commit_callbacks(execute=True):
        assert clock_check(started) == "opened"
    assert told_open(mailoutbox) == [
        "admin@example.test",
        "owner@example.test",
        "renter@example.test",
    ]


@pytest.mark.django_db
def test_a_window_spent_fails_the_start_and_tells_everyone(
    started, sim, sim_vehicle_id, clock, admin, mailoutbox, django_capture_on_commit_callbacks
):
    sim.set_state(sim_vehicle_id, remote_access_enabled=False)
    run(start_command(started))
    with django_capture_on_commit_callbacks(execute=True):
        assert clock_check(started) == "failed+alerted"
    assert start_of(started).status == "failed"
    assert len(alerted(mailoutbox)) == 3
    assert all("could not be opened" in m.body for m in mailoutbox)


# --- The page ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_trip_page_shows_each_attempt_in_words(started, sim, sim_vehicle_id, renter, clock):
    sim.set_state(sim_vehicle_id, reachable=False)
    command = run(run_and_wait(start_command(started), clock))
    client = Client()
    client.force_login(renter)
    key = selectors.trip_key_for_booking(booking_id=started.pk)

    page = client.get(reverse("bookings:booking_detail", args=[started.public_id]))

    html = page.content.decode()
    assert "Trying to reach your car…" in html
    assert f"attempt {command.attempts + 1}, next in" in html
    assert "I'm at the car and it won't open" in html
    assert reverse("keys:key_start_status", args=[key.public_id]) in html  # followed live
    assert "VEHICLE_STATE" not in html
    region = client.get(reverse("keys:key_start_status", args=[key.public_id]), headers=HTMX)
    assert region.content.decode().lstrip().startswith('<div id="key-start"')


def run_and_wait(command: VehicleCommand, clock) -> VehicleCommand:
    command = run(command)
    clock.move_to(command.next_attempt_at, tick=False)
    return command


# --- At the car: the ladder -------------------------------------------------------------------


@pytest.mark.django_db
def test_at_the_car_the_waiting_unlock_goes_now_and_the_owner_is_asked_once(
    started, sim, sim_vehicle_id, renter, owner, clock, mailoutbox,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    renter.phone = "+31 6 1234 5678"
    renter.save(update_fields=["phone"])
    sim.set_state(sim_vehicle_id, reachable=False)
    command = run(start_command(started))
    clock.shift(7 * S)  # the pause is 8-9.6 s; the make allows a send every 6 s
    key = selectors.trip_key_for_booking(booking_id=started.pk)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        done = ladder.at_car(key=key, user=renter)

    assert (done.retry, done.command.pk, done.owner_asked) == ("now", command.pk, True)
    command.refresh_from_db()
    assert command.next_attempt_at == timezone.now()
    assert len(callbacks) == 2  # the command's message, the owner's email
    callbacks[-1]()  # the email (the command's message would go to the broker)
    [asked] = [m for m in mailoutbox if m.to == ["owner@example.test"]]
    assert "is at your" in asked.subject
    assert "+31 6 1234 5678" in asked.body
    assert reverse("keys:start_rescue", args=[key.public_id]) in asked.body

    with django_capture_on_commit_callbacks(execute=True):
        ladder.at_car(key=key, user=renter)  # pressed again
    assert len([m for m in mailoutbox if m.to == ["owner@example.test"]]) == 1


@pytest.mark.django_db
def test_at_the_car_after_the_start_failed_the_renters_own_unlock_goes(
    started, sim, sim_vehicle_id, renter, clock, admin, mailoutbox,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    sim.set_state(sim_vehicle_id, remote_access_enabled=False)
    run(start_command(started))
    clock_check(started)
    key = selectors.trip_key_for_booking(booking_id=started.pk)
    sim.set_state(sim_vehicle_id, remote_access_enabled=True)  # the owner switched it back on

    done = ladder.at_car(key=key, user=renter)

    assert done.retry == "sent"
    assert (done.command.reason, done.command.actor_id) == (CommandReason.RENTER, renter.pk)
    assert AuditEntry.objects.filter(command_public_id=done.command.public_id).exists()
    start = start_of(started)
    assert (start.status, start.command_id) == ("pending", done.command.pk)
    run(done.command)
    with django_capture_on_commit_callbacks(execute=True):
        assert clock_check(started) == "opened"
    assert len(told_open(mailoutbox)) == 3


@pytest.mark.django_db
def test_at_the_car_from_the_page(started, sim, sim_vehicle_id, renter, clock):
    sim.set_state(sim_vehicle_id, reachable=False)
    run(start_command(started))
    key = selectors.trip_key_for_booking(booking_id=started.pk)
    client = Client()
    client.force_login(renter)

    answer = client.post(reverse("keys:key_at_car", args=[key.public_id]), headers=HTMX)

    html = answer.content.decode()
    assert "trying to open the car again right now" in html
    assert "We have asked" in html
    assert "to unlock it and to call you" in html


@pytest.mark.django_db
def test_only_the_holder_climbs_the_ladder(started, owner, stranger):
    key = selectors.trip_key_for_booking(booking_id=started.pk)
    for user in (owner, stranger):
        client = Client()
        client.force_login(user)
        assert client.post(reverse("keys:key_at_car", args=[key.public_id])).status_code == 404


@pytest.mark.django_db
def test_the_owners_one_tap_unlock_is_an_override_shown_to_the_renter(
    started, sim, sim_vehicle_id, owner, renter, stranger
):
    key = selectors.trip_key_for_booking(booking_id=started.pk)
    url = reverse("keys:start_rescue", args=[key.public_id])
    client = Client()
    client.force_login(owner)

    question = client.get(url)
    assert question.status_code == 200
    assert "Unlock now" in question.content.decode()
    answer = client.post(url, {"confirm": "1"})

    assert answer.status_code == 302
    unlock = VehicleCommand.objects.filter(reason=CommandReason.OWNER, action="unlock").get()
    entry = AuditEntry.objects.get(command_public_id=unlock.public_id)
    assert (entry.action, entry.actor_id) == ("override_unlock", owner.pk)
    assert "was at the car and it would not open" in entry.detail
    for user in (renter, stranger):
        other = Client()
        other.force_login(user)
        assert other.get(url).status_code == 404


# --- With a real worker ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_car_unreachable_past_the_start_opens_once_it_answers(
    celery_worker_thread, connected_car, renter, sim, sim_vehicle_id, time_machine, monkeypatch
):
    # The pauses shortened, so that real seconds stand in for the 10-30 s a car gets.
    monkeypatch.setitem(sending.START_STATE_PAUSES_S, "UNREACHABLE", (1.0, 1.0, 1.0))
    monkeypatch.setattr("vehicles.cloud.sending.command_min_interval", lambda make: 0.5)
    sim.set_state(sim_vehicle_id, is_locked=True, unreachable_until=time.time() + 3)
    booking = request_booking(connected_car, renter, starts_at=hour_from_now(days=1), hours=2)
    time_machine.move_to(booking.starts_at, tick=True)

    booking_services.booking_start(booking_id=booking.pk)

    command = wait_for(
        lambda: (c := start_command(booking)).status == C.SUCCEEDED and c,
        what="the start's unlock to succeed once the car answers",
    )
    assert command.attempts >= 2
    outcomes = unlocks(sim, sim_vehicle_id)
    assert outcomes[-1] == "success"
    assert outcomes.count("success") == 1  # nothing doubled
    assert set(outcomes[:-1]) == {"VEHICLE_STATE:UNREACHABLE"}
    assert sim.vehicle(sim_vehicle_id)["is_locked"] is False


# --- The car's fallback (rung 3) --------------------------------------------------------------


@pytest.fixture
def with_fallback(started):
    from vehicles import services as car_services

    car_services.car_update(car=started.car, data={"fallback": "Lockbox by the gate: 4711"})
    return started


@pytest.mark.django_db
def test_the_fallback_is_encrypted_at_rest(with_fallback):
    from vehicles.selectors import car_fallback

    with_fallback.car.refresh_from_db()
    assert "4711" not in with_fallback.car.fallback_encrypted
    assert car_fallback(with_fallback.car) == "Lockbox by the gate: 4711"


@pytest.mark.django_db
def test_the_fallback_is_shown_only_at_a_car_that_would_not_open(
    with_fallback, sim, sim_vehicle_id, renter
):
    key = selectors.trip_key_for_booking(booking_id=with_fallback.pk)
    sim.set_state(sim_vehicle_id, reachable=False)
    run(start_command(with_fallback))

    with pytest.raises(KeyRefused) as refused:  # still trying, nobody at the car yet
        ladder.fallback_reveal(key=key, user=renter)
    assert refused.value.code == "fallback_not_offered"
    ladder.at_car(key=key, user=renter)
    assert ladder.fallback_reveal(key=key, user=renter) == "Lockbox by the gate: 4711"

    looks = AuditEntry.objects.filter(action="reveal_fallback").order_by("pk")
    assert [(e.allowed, e.code, e.actor_id) for e in looks] == [
        (False, "fallback_not_offered", renter.pk),
        (True, "ok", renter.pk),
    ]


@pytest.mark.django_db
def test_the_fallback_on_the_page_and_in_the_api(with_fallback, sim, sim_vehicle_id, renter):
    key = selectors.trip_key_for_booking(booking_id=with_fallback.pk)
    sim.set_state(sim_vehicle_id, remote_access_enabled=False)
    run(start_command(with_fallback))
    clock_check(with_fallback)  # the start gave up
    client = Client()
    client.force_login(renter)

    page = client.get(key.get_absolute_url()).content.decode()
    assert "Show the owner&#x27;s fallback" in page or "Show the owner's fallback" in page
    assert "4711" not in page  # not until asked for
    shown = client.post(reverse("keys:key_fallback", args=[key.public_id]), headers=HTMX)
    assert "Lockbox by the gate: 4711" in shown.content.decode()

    token = session_token(Client(), renter)
    api = Client().post(
        f"/api/v1/keys/{key.public_id}/fallback", headers={"X-Session-Token": token}
    )
    assert api.status_code == 200, api.content
    assert api.json() == {"instructions": "Lockbox by the gate: 4711"}
    assert AuditEntry.objects.filter(action="reveal_fallback", allowed=True).count() == 2


@pytest.mark.django_db
def test_strangers_and_the_owner_never_see_the_fallback(with_fallback, owner, stranger):
    key = selectors.trip_key_for_booking(booking_id=with_fallback.pk)
    for user in (owner, stranger):
        client = Client()
        client.force_login(user)
        assert client.post(reverse("keys:key_fallback", args=[key.public_id])).status_code == 404


# --- The API ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_shows_the_start_and_takes_i_am_at_the_car(started, sim, sim_vehicle_id, renter):
    sim.set_state(sim_vehicle_id, reachable=False)
    command = run(start_command(started))
    key = selectors.trip_key_for_booking(booking_id=started.pk)
    client = Client()
    auth = {"X-Session-Token": session_token(Client(), renter)}

    start = client.get(f"/api/v1/keys/{key.public_id}/start", headers=auth)
    assert start.status_code == 200, start.content
    body = start.json()
    assert (body["status"], body["attempts"], body["sending_now"]) == ("pending", 1, False)
    assert body["next_attempt_at"] is not None
    assert body["may_say_at_car"] is True
    assert "VEHICLE_STATE" not in body["problem"]

    at_car = client.post(f"/api/v1/keys/{key.public_id}/at-car", headers=auth)
    assert at_car.status_code == 202, at_car.content
    answer = at_car.json()
    assert (answer["retry"], answer["owner_asked"]) == ("now", True)
    assert answer["start"]["at_car_at"] is not None
    command.refresh_from_db()
    assert command.next_attempt_at <= timezone.now() + datetime.timedelta(seconds=6)


@pytest.mark.django_db
def test_the_api_start_is_the_holders_only(started, owner):
    key = selectors.trip_key_for_booking(booking_id=started.pk)
    client = Client()
    auth = {"X-Session-Token": session_token(Client(), owner)}
    assert client.get(f"/api/v1/keys/{key.public_id}/start", headers=auth).status_code == 404
    assert client.post(f"/api/v1/keys/{key.public_id}/at-car", headers=auth).status_code == 404


# --- The renter never pays for a car that did not open (rung 5) ------------------------------


@pytest.mark.django_db
def test_a_trip_whose_car_never_opened_is_cancelled_without_a_fee(
    started, sim, sim_vehicle_id, clock, renter
):
    from bookings import tasks as booking_tasks
    from bookings.models import Booking

    sim.set_state(sim_vehicle_id, remote_access_enabled=False)
    run(start_command(started))
    clock_check(started)
    clock.move_to(started.starts_at + datetime.timedelta(minutes=29), tick=False)
    booking_tasks.run_trip_clock()
    assert Booking.objects.get(pk=started.pk).status == "active"  # the ladder still has time

    clock.move_to(started.starts_at + datetime.timedelta(minutes=30), tick=False)
    booking_tasks.run_trip_clock()

    booking = Booking.objects.get(pk=started.pk)
    assert (booking.status, booking.cancelled_by) == ("cancelled", "carshare")
    assert (booking.cancellation_fee, booking.refund) == (0, booking.price)
    assert selectors.trip_key_for_booking(booking_id=booking.pk).status == "revoked"
    event = booking.events.order_by("-pk").first()
    assert "could not be opened" in event.reason


@pytest.mark.django_db
def test_a_trip_whose_car_opened_late_is_not_cancelled(started, sim, sim_vehicle_id, clock, owner):
    from bookings import tasks as booking_tasks
    from bookings.models import Booking
    from keys import use

    sim.set_state(sim_vehicle_id, remote_access_enabled=False)
    run(start_command(started))
    sim.set_state(sim_vehicle_id, remote_access_enabled=True)
    clock.shift(datetime.timedelta(minutes=20))
    rescue = use.car_command_request(
        user=owner, car=started.car, action="unlock", override=True, note="at the car"
    )
    run(rescue)
    clock.move_to(started.starts_at + datetime.timedelta(minutes=31), tick=False)

    booking_tasks.run_trip_clock()

    assert Booking.objects.get(pk=started.pk).status == "active"


# --- Staff take over (rung 4) ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_renter_still_at_a_locked_car_opens_a_support_case_with_the_command_log(
    started, sim, sim_vehicle_id, renter, clock, admin, mailoutbox
):
    from keys.models import SupportCase

    sim.set_state(sim_vehicle_id, reachable=False)
    command = run(start_command(started))
    key = selectors.trip_key_for_booking(booking_id=started.pk)
    ladder.at_car(key=key, user=renter)
    clock.shift(startunlocks.SUPPORT_CASE_AFTER - S)
    key_tasks.run_key_clock()
    assert not SupportCase.objects.exists()

    clock.shift(2 * S)
    key_tasks.run_key_clock()
    key_tasks.run_key_clock()  # once

    case = SupportCase.objects.get()
    assert (case.status, case.car_id) == ("open", started.car_id)
    assert "at the car for 3 min" in case.reason
    client = Client()
    client.force_login(admin)
    page = client.get(reverse("admin:keys_supportcase_change", args=[case.pk])).content.decode()
    # The command log, attempt by attempt, with what the cloud said.
    assert f"attempt {command.attempts}: VEHICLE_STATE:UNREACHABLE" in page
    renter_page = Client()
    renter_page.force_login(renter)
    html = renter_page.get(key.get_absolute_url()).content.decode()
    assert "support team has been told" in html


@pytest.mark.django_db
def test_staff_are_emailed_about_a_support_case(started, admin, renter, mailoutbox):
    from keys.models import SupportCase

    start = start_of(started)
    case = SupportCase.objects.create(start_unlock=start, car=started.car, reason="test")
    tasks_email.send_support_case_email(case_id=case.pk)
    tasks_email.send_support_case_email(case_id=case.pk)  # delivered again
    [mail] = [m for m in mailoutbox if m.to == ["admin@example.test"]]
    assert "renter at a locked" in mail.subject
    assert renter.email in mail.body
    assert reverse("admin:keys_supportcase_change", args=[case.pk]) in mail.body
