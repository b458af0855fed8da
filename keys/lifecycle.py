"""The lifecycle of digital keys: the one place a status changes, and the key clock.

A key goes issued → active → expired, or revoked from issued or active (keys.models.KEY_MOVES).
key_move() is the one place a status changes; each change leaves a KeyEvent. Moves are
conditional (None when the key is no longer where the caller saw it), so the key clock, the trip
clock and a person pressing a button may all reach for the same move and it happens once.

The key clock (keys.tasks: ETA tasks near a moment, a sweep for everything else) runs the
moves that time makes: key_activate, service_window_end, key_expire, as keys_due lists them.
Keys come into being in keys.services (issue, the trip hooks) and keys.grants (share, service
keys); revoking is keys.grants too.
"""

from __future__ import annotations

import datetime
from typing import TypedDict

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from keys import endlocks
from keys.errors import key_ended_message
from keys.models import KEY_MOVES, LIVE_STATUSES, DigitalKey, KeyEvent, KeyKind, KeyStatus
from vehicles import commands as vehicle_commands

K = KeyStatus
# Key-clock moves due within this horizon get an ETA task; the run_key_clock sweep (every 15 s)
# catches everything else, since Redis may redeliver far-future ETAs (visibility timeout).
KEY_CLOCK_HORIZON = datetime.timedelta(hours=1)


def lock_grace() -> datetime.timedelta:
    """After a window ends its holder may still lock (never unlock) for this long."""
    return datetime.timedelta(minutes=settings.KEY_LOCK_GRACE_MINUTES)


# --- The one place a status changes ---------------------------------------------------------


def key_move(
    key: DigitalKey | int,
    to: str,
    *,
    actor: User | None,
    reason: str = "",
    presses_fail: bool = True,
    **fields: object,
) -> DigitalKey | None:
    """Move the key under a row lock, with an event row; None if it is not where it could move.

    A key that ends takes its queued commands with it, with the words the holder would be told
    (revoked, expired): a holder's press fails, or with `presses_fail=False` expires, unsent,
    like the system's own."""
    if not transaction.get_connection().in_atomic_block:  # a row lock ends with its transaction
        raise RuntimeError("key_move() needs the calling service's transaction")
    pk = key.pk if isinstance(key, DigitalKey) else key
    current = DigitalKey.objects.select_for_update().filter(pk=pk).first()
    if current is None or to not in KEY_MOVES.get(current.status, set()):
        return None
    now = timezone.now()
    KeyEvent.objects.create(
        key=current, actor=actor, old_status=current.status, new_status=to, reason=reason[:200]
    )
    current.status = to
    changed = ["status", *fields]
    for name, value in fields.items():
        setattr(current, name, value)
    if to == K.ACTIVE:
        current.activated_at = now
        changed.append("activated_at")
    elif to in (K.EXPIRED, K.REVOKED):
        current.ended_at = now
        changed.append("ended_at")
    current.save(update_fields=changed)
    if to in (K.EXPIRED, K.REVOKED):
        # What the key still had queued never goes: the worker only reads the command's row.
        vehicle_commands.vehicle_commands_withdraw(
            key_id=current.pk,
            note=f"key {to}: {reason}"[:500],
            message=key_ended_message(to),
            fail=presses_fail,
        )
    return current


def key_open_on_first_use(*, key: DigitalKey, actor: User) -> DigitalKey:
    """Inside the caller's transaction: an issued key whose window has opened is opened by its
    holder's first press, without waiting for the key clock."""
    now = timezone.now()
    if key.status == K.ISSUED and key.valid_from <= now < key.lock_until:
        return key_move(key, K.ACTIVE, actor=actor, reason=_("First use")) or key
    return key


# --- The key clock --------------------------------------------------------------------------


@transaction.atomic(durable=True)
def key_activate(*, key_id: int) -> DigitalKey | None:
    """Open the window of an issued key whose time has come; None when nothing to do."""
    now = timezone.now()
    key = (
        DigitalKey.objects.select_for_update()
        .filter(pk=key_id, status=K.ISSUED, valid_from__lte=now, lock_until__gt=now)
        .first()
    )
    if key is None:
        return None
    return key_move(key, K.ACTIVE, actor=None, reason=_("Window opened"))


@transaction.atomic(durable=True)
def key_expire(*, key_id: int) -> DigitalKey | None:
    now = timezone.now()
    # The car before the key, like every path: expiring withdraws the key's queued commands,
    # which a press or the owner may hold while their audit row points at this key.
    car_id = DigitalKey.objects.filter(pk=key_id).values_list("car_id", flat=True).first()
    if car_id is None:
        return None
    vehicle_commands.car_lock(car_id=car_id)
    key = (
        DigitalKey.objects.select_for_update()
        .filter(pk=key_id, status__in=LIVE_STATUSES, lock_until__lte=now)
        .first()
    )
    if key is None:
        return None
    return key_move(key, K.EXPIRED, actor=None, reason=_("Window over"))


@transaction.atomic(durable=True)
def service_window_end(*, key_id: int) -> DigitalKey | None:
    """A service window is over: lock the car (the end lock retries and alerts). Once only."""
    now = timezone.now()
    key = (
        # of=("self",): end_lock__isnull is an outer join, whose nullable side can't be locked.
        DigitalKey.objects.select_for_update(of=("self",))
        .filter(
            pk=key_id,
            kind=KeyKind.SERVICE,
            status__in=LIVE_STATUSES,
            valid_until__lte=now,
            end_lock__isnull=True,
        )
        .first()
    )
    if key is None:
        return None
    endlocks.end_lock_begin(key=key, reason="service_end")
    return key


class KeysDue(TypedDict):
    activate: list[int]
    end_service: list[int]
    expire: list[int]
    end_service_soon: list[tuple[int, datetime.datetime]]  # (key id, end of its window)


def keys_due(*, now: datetime.datetime) -> KeysDue:
    """What the key clock has to do now, by job; read without locks (each job re-checks)."""
    live = DigitalKey.objects.filter(status__in=LIVE_STATUSES)
    return {
        "activate": list(
            live.filter(status=K.ISSUED, valid_from__lte=now, lock_until__gt=now).values_list(
                "pk", flat=True
            )[:500]
        ),
        "end_service": list(
            live.filter(
                kind=KeyKind.SERVICE, valid_until__lte=now, end_lock__isnull=True
            ).values_list("pk", flat=True)[:500]
        ),
        "expire": list(live.filter(lock_until__lte=now).values_list("pk", flat=True)[:500]),
        # Service windows ending before the next sweep get an ETA task, for precision.
        "end_service_soon": list(
            live.filter(
                kind=KeyKind.SERVICE,
                valid_until__gt=now,
                valid_until__lte=now + datetime.timedelta(seconds=settings.KEY_CLOCK_SWEEP_S * 2),
            ).values_list("pk", "valid_until")
        ),
    }
