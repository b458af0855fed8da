"""The unlock at the start of a trip, until the car confirms it opened.

start_unlock_begin() records a StartUnlock with the trip's unlock (staged for the start, or sent
at the start), in the transaction that queued it. The vehicle worker tries a car that cannot be
reached again within the start window, each error with its own pause (vehicles.cloud.sending).
Every sweep of the key clock looks at each started, pending one:

- the car confirmed an unlock since shortly before the start (the start's own, the renter's
  press, the owner's) → opened; whoever was alerted hears that it opened;
- its unlock is still queued or on its way → trying; once it has failed
  TRIP_START_ALERT_AFTER_ATTEMPTS sends or TRIP_START_ALERT_AFTER_S have passed since the start,
  the renter, the owner and the admins are told, once;
- the cloud accepted it but the car does not report itself unlocked after UNCONFIRMED_AFTER →
  opened, unconfirmed (the lock state of some cars cannot be read back);
- it failed or expired (the window spent, a refusal that needs a person) → could not be opened;
  everyone is told, and the renter's page offers the ladder (keys.ladder);
- the key was revoked or the trip cancelled → cancelled.

Every step is a conditional update under a row lock (skip_locked), so two sweeps at once, or one
run twice, tell each person once.
"""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from keys import tasks_email
from keys.models import DigitalKey, KeyStatus, StartUnlock, StartUnlockStatus, SupportCase
from keys.selectors import OPENED_SINCE_MARGIN
from vehicles.models import CommandAction, CommandStatus, VehicleCommand

log = logging.getLogger(__name__)
S = StartUnlockStatus
C = CommandStatus
# An accepted unlock the car has not reported as applied after this long: opened, unconfirmed.
UNCONFIRMED_AFTER = datetime.timedelta(minutes=2)
# The first look at a start, one by one, this long after it: the unlock's first send takes a
# car's own seconds, and most starts are closed in bulk by then.
CHECK_AFTER = datetime.timedelta(seconds=20)
# The renter said they were at the car this long ago and it is still locked: staff take over.
SUPPORT_CASE_AFTER = datetime.timedelta(minutes=3)


def start_unlock_begin(
    *, key: DigitalKey, command: VehicleCommand, starts_at: datetime.datetime
) -> StartUnlock:
    """Record the trip's start unlock; inside the caller's transaction, once per trip key."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("start_unlock_begin() needs the calling service's transaction")
    start, created = StartUnlock.objects.get_or_create(
        key=key, defaults={"car_id": key.car_id, "starts_at": starts_at, "command": command}
    )
    if not created and start.status == S.PENDING and start.command_id != command.pk:
        start.command = command
        start.save(update_fields=["command"])
    return start


def start_unlock_follow(*, start: StartUnlock, command: VehicleCommand) -> None:
    """The ladder sent another unlock for this start (inside the caller's transaction): the key
    clock follows that one, and a start that had failed is pending again until the car opens."""
    StartUnlock.objects.filter(pk=start.pk).exclude(status__in=(S.OPENED, S.CANCELLED)).update(
        command=command, status=S.PENDING, done_at=None
    )
    start.refresh_from_db()


def start_unlocks_settle_opened(*, now: datetime.datetime) -> int:
    """Close, in one statement, every pending start whose own unlock the car confirmed and of
    which nobody was told anything: at a thousand trips starting in one minute, the sweep then
    looks only at the cars that did not open."""
    confirmed = VehicleCommand.objects.filter(pk=OuterRef("command_id")).values("confirmed_at")
    return StartUnlock.objects.filter(
        status=S.PENDING, alerts_sent=0, command__confirmed_at__isnull=False
    ).update(status=S.OPENED, opened_at=Subquery(confirmed[:1]), done_at=now)


def start_unlocks_stuck(*, now: datetime.datetime) -> int:
    """Failed starts whose renter is at the car and has no case yet: open one (rung 4); pending
    ones get theirs in start_unlock_check. Returns how many were opened."""
    opened = 0
    stuck = StartUnlock.objects.filter(
        status=S.FAILED, at_car_at__lte=now - SUPPORT_CASE_AFTER, case__isnull=True
    ).values_list("pk", flat=True)
    for pk in list(stuck[:100]):
        with transaction.atomic(durable=True):
            start = StartUnlock.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if start is not None and start.status == S.FAILED and _open_case_if_stuck(start, now):
                opened += 1
    return opened


def start_unlocks_due(*, now: datetime.datetime, limit: int = 500) -> list[int]:
    """Pending starts to look at one by one: started at least CHECK_AFTER ago (before, the
    unlock is still on its first try; the bulk close above settles most)."""
    return list(
        StartUnlock.objects.filter(status=S.PENDING, starts_at__lte=now - CHECK_AFTER)
        .order_by("starts_at")
        .values_list("pk", flat=True)[:limit]
    )


def _confirmed_unlock_since(start: StartUnlock) -> VehicleCommand | None:
    return (
        VehicleCommand.objects.filter(
            car_id=start.car_id,
            action=CommandAction.UNLOCK,
            confirmed_at__isnull=False,
            confirmed_at__gte=start.starts_at - OPENED_SINCE_MARGIN,
        )
        .order_by("confirmed_at")
        .first()
    )


def _alert_due(start: StartUnlock, command: VehicleCommand | None, now: datetime.datetime) -> bool:
    if start.alerts_sent:
        return False
    late = now - start.starts_at >= datetime.timedelta(seconds=settings.TRIP_START_ALERT_AFTER_S)
    failing = command is not None and command.attempts >= settings.TRIP_START_ALERT_AFTER_ATTEMPTS
    return late or failing


def start_problem(command: VehicleCommand | None) -> str:
    """What the car or its cloud said last, in words for people ("" while all is well)."""
    if command is None:
        return "The unlock could not be sent: the car is not connected to its vehicle cloud."
    return command.error_message


@transaction.atomic(durable=True)
def start_unlock_check(*, start_unlock_id: int) -> str:
    """One sweep step for one started start unlock; returns what it did (for logs and tests)."""
    now = timezone.now()
    start = (
        StartUnlock.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("key", "command")
        .filter(pk=start_unlock_id, status=S.PENDING)
        .first()
    )
    if start is None:
        return ""  # done, or another sweep holds it right now
    if start.key.status in (KeyStatus.REVOKED, KeyStatus.EXPIRED):
        _finish(start, S.CANCELLED, now)
        return "cancelled"
    confirmed = _confirmed_unlock_since(start)
    if confirmed is not None:
        start.opened_at = confirmed.confirmed_at
        _finish(start, S.OPENED, now)
        return "opened"
    command = start.command
    if command is not None and command.status == C.SUCCEEDED:
        if command.answered_at is not None and now - command.answered_at >= UNCONFIRMED_AFTER:
            start.opened_at = command.answered_at
            start.last_problem = "The car accepted the unlock but does not report itself unlocked."
            _finish(start, S.OPENED, now)
            return "opened_unconfirmed"
        return "waiting"
    _open_case_if_stuck(start, now)
    start.last_problem = start_problem(command)[:500]
    changed = ["last_problem"]
    failed = command is None or command.status in (C.FAILED, C.EXPIRED, C.SUPERSEDED)
    did = "failed" if failed else "trying"
    if failed or _alert_due(start, command, now):
        if failed:
            start.status = S.FAILED
            start.done_at = now
            changed += ["status", "done_at"]
        if failed or not start.alerts_sent:
            start.alerts_sent += 1
            start.last_alert_at = now
            changed += ["alerts_sent", "last_alert_at"]
            tasks_email.send_start_unlock_alert.delay_on_commit(
                start_unlock_id=start.pk, number=start.alerts_sent
            )
            did += "+alerted"
    start.save(update_fields=changed)
    if did != "trying":
        log.warning("Start unlock %s of car %s: %s (%s)", start.pk, start.car_id, did, command)
    return did


def _open_case_if_stuck(start: StartUnlock, now: datetime.datetime) -> bool:
    """Rung 4: the renter has been at the locked car for SUPPORT_CASE_AFTER; staff get a case
    (once per start) with the car's command log, and an email."""
    if start.at_car_at is None or now - start.at_car_at < SUPPORT_CASE_AFTER:
        return False
    minutes = int((now - start.at_car_at).total_seconds() // 60)
    case, created = SupportCase.objects.get_or_create(
        start_unlock=start,
        defaults={
            "car_id": start.car_id,
            "opened_at": now,
            "reason": f"The renter has been at the car for {minutes} min and it is still locked.",
        },
    )
    if created:
        tasks_email.send_support_case_email.delay_on_commit(case_id=case.pk)
        log.warning("Support case %s: renter at the locked car %s", case.pk, start.car_id)
    return created


def _finish(start: StartUnlock, status: str, now: datetime.datetime) -> None:
    start.status = status
    start.done_at = now
    start.save(update_fields=["status", "done_at", "opened_at", "last_problem"])
    if start.alerts_sent and status == S.OPENED:
        # Those told it would not open hear that it did.
        tasks_email.send_start_unlock_alert.delay_on_commit(start_unlock_id=start.pk, number=0)
