"""Using keys: a holder's lock and unlock, the system's unlock at a trip start, the owner's own
commands (an unlock during someone else's trip only by a recorded override), the rate limits, and
the check the vehicle worker makes right before it calls the car.

Every attempt, allowed or denied, leaves an AuditEntry. An allowed one is recorded in the same
transaction as its command in the outbox, so neither exists without the other; a denied one in
a transaction of its own.
"""

from __future__ import annotations

import datetime
import math
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from keys.models import AuditAction, AuditEntry, DigitalKey, KeyKind, KeyStatus
from keys.services import KeyRefused, audit_denied, audit_record, key_open_on_first_use, local_time
from vehicles import commands as vehicle_commands
from vehicles import connections
from vehicles.models import Car, CommandAction, CommandReason, VehicleCommand

K = KeyStatus
ACTIONS = (CommandAction.LOCK, CommandAction.UNLOCK)


# --- Windows --------------------------------------------------------------------------------


def key_refusal(*, key: DigitalKey, action: str, now: datetime.datetime) -> KeyRefused | None:
    """Why this key cannot `action` the car at `now` (None: it can), in the holder's words.

    The car (its time zone) is read only to word a refusal: the worker's last check before
    every trip-start unlock mostly finds nothing to refuse."""
    if key.status == K.REVOKED:
        return KeyRefused("key_not_active", _("This key was revoked."))
    if key.status == K.EXPIRED:
        return KeyRefused("key_not_active", _("This key has expired."))
    if now < key.valid_from:
        return KeyRefused(
            "key_not_active",
            _("This key works from %(at)s.") % {"at": local_time(key.car, key.valid_from)},
        )
    if action == CommandAction.UNLOCK and now >= key.valid_until:
        if now < key.lock_until:
            return KeyRefused(
                "key_not_active",
                _("The trip is over: you can only lock the car, until %(at)s.")
                % {"at": local_time(key.car, key.lock_until)},
            )
        return KeyRefused("key_not_active", _("This key has expired."))
    if action == CommandAction.LOCK and now >= key.lock_until:
        return KeyRefused("key_not_active", _("This key has expired."))
    return None  # issued keys inside their window are opened on first use (key_command)


# --- Rate limits ---------------------------------------------------------------------------

# A sliding window per bucket: a sorted set of the accepted unlocks' times. In one step (a
# script runs atomically in Redis) it forgets what fell out of every bucket's window, refuses
# when any bucket is full (with the seconds until its oldest entry falls out) and otherwise
# counts the unlock in all of them, so a burst can neither overshoot nor spend one bucket's
# budget on an unlock another bucket refused.
_TAKE = """
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local left = (tonumber(oldest[2]) or now) + window - now
    if left > wait then wait = left end
  end
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('EXPIRE', key, ARGV[2 + 2 * i])
end
return false
"""


class UnlockBudget:
    """The unlock rate limits of one press, per person and per car: taken (`take`, inside the
    command's transaction, only when a new command is written) or left alone (a refused or a
    joined press costs nothing), and given back (`give_back`) if that transaction fails."""

    def __init__(self, *, user_id: int, car_id: int) -> None:
        person_limit, person_window = settings.KEY_UNLOCK_RATE_PER_PERSON
        car_limit, car_window = settings.KEY_UNLOCK_RATE_PER_CAR
        self.buckets = [
            (f"keys:unlocks:user:{user_id}", person_limit, person_window),
            (f"keys:unlocks:car:{car_id}", car_limit, car_window),
        ]
        self.member = ""

    def take(self) -> None:
        now = timezone.now().timestamp()
        member = f"{now:.6f}:{uuid.uuid4().hex}"
        args: list[object] = [now, member]
        for _bucket, limit, window in self.buckets:
            args += [limit, math.ceil(window)]
        keys = [bucket for bucket, _limit, _window in self.buckets]
        wait = connections.redis_client().eval(_TAKE, len(keys), *keys, *args)
        if wait is not None:
            seconds = max(1, math.ceil(float(wait)))
            raise KeyRefused(
                "rate_limited",
                _("Too many unlock attempts; try again in %(s)s seconds.") % {"s": seconds},
                retry_after=seconds,
            )
        self.member = member

    def give_back(self) -> None:
        if self.member:
            client = connections.redis_client()
            for bucket, _limit, _window in self.buckets:
                client.zrem(bucket, self.member)
            self.member = ""


def _unlock_budget(*, action: str, user: User, car_id: int) -> UnlockBudget | None:
    """Unlocks are rate-limited per person and per car: a stolen session or a stuck client
    cannot hammer a car (its 12 V battery and the vehicle cloud's quota pay for each one).
    Locking never is: a renter must always be able to lock up."""
    if action != CommandAction.UNLOCK:
        return None
    return UnlockBudget(user_id=user.pk, car_id=car_id)


# --- A holder uses a key ----------------------------------------------------------------------


def _reason_for(key: DigitalKey) -> str:
    return CommandReason.SERVICE if key.kind == KeyKind.SERVICE else CommandReason.RENTER


def key_command(*, key: DigitalKey, user: User, action: str, via: str = "web") -> VehicleCommand:
    """Lock or unlock the key's car for its holder; KeyRefused (audited) when not allowed. A
    press while the same action is on its way is answered with that command."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}")
    budget = _unlock_budget(action=action, user=user, car_id=key.car_id)
    try:
        if key.holder_id != user.pk:
            # Access selectors give strangers 404 before this; a guard for other callers.
            raise KeyRefused("not_allowed", _("Only the key's holder can use it."))
        if refusal := key_refusal(key=key, action=action, now=timezone.now()):
            raise refusal
        return _key_command_record(key=key, user=user, action=action, via=via, budget=budget)
    except KeyRefused as error:
        if budget is not None:
            budget.give_back()
        audit_denied(car_id=key.car_id, key=key, actor=user, action=action, error=error, via=via)
        raise
    except BaseException:
        if budget is not None:
            budget.give_back()  # the transaction that counted the unlock did not commit
        raise


@transaction.atomic(durable=True)
def _key_command_record(
    *, key: DigitalKey, user: User, action: str, via: str, budget: UnlockBudget | None
) -> VehicleCommand:
    now = timezone.now()
    vehicle_commands.car_lock(car_id=key.car_id)  # the car before the key, like every path
    current = (
        DigitalKey.objects.select_for_update(of=("self",)).select_related("car").get(pk=key.pk)
    )
    # The window may be open while the key clock has not come by yet.
    current = key_open_on_first_use(key=current, actor=user)
    if refusal := key_refusal(key=current, action=action, now=now):
        raise refusal  # revoked or expired between the check and the lock
    try:
        command = vehicle_commands.vehicle_command_enqueue(
            car_id=current.car_id,
            action=action,
            reason=_reason_for(current),
            actor=user,
            key_id=current.pk,
            audited=True,
            admit=budget.take if budget is not None else None,
        )
    except vehicle_commands.CommandRefused as error:
        raise KeyRefused(error.code, str(error)) from error
    audit_record(
        car_id=current.car_id,
        key=current,
        actor=user,
        action=action,
        via=via,
        command_public_id=command.public_id,
    )
    return command


def system_command(
    *,
    key: DigitalKey,
    action: str,
    reason: str,
    not_before: datetime.datetime | None = None,
) -> VehicleCommand | None:
    """The trip clock's unlock at the start (or an end lock), inside the caller's transaction;
    `not_before` stages it for that moment. A car that lost its connection is recorded as a
    denied attempt, never an exception that would undo the trip's move."""
    try:
        command = vehicle_commands.vehicle_command_enqueue(
            car_id=key.car_id,
            action=action,
            reason=reason,
            actor=None,
            key_id=key.pk,
            audited=True,
            not_before=not_before,
        )
    except vehicle_commands.CommandRefused as error:
        audit_record(
            car_id=key.car_id,
            key=key,
            actor=None,
            action=action,
            code=error.code,
            detail=str(error),
            via="system",
        )
        return None
    audit_record(
        car_id=key.car_id,
        key=key,
        actor=None,
        action=action,
        via="system",
        detail=reason,
        command_public_id=command.public_id,
        # Asked now, due then: the log keeps both (and shows when the car confirmed it).
        staged_for=not_before if not_before is not None and not_before > timezone.now() else None,
    )
    return command


# --- The owner ------------------------------------------------------------------------------


def car_key_in_use(*, car_id: int, now: datetime.datetime) -> DigitalKey | None:
    """Someone else's key that is open on the car now (a trip or a service window)."""
    return (
        DigitalKey.objects.filter(
            car_id=car_id,
            status=K.ACTIVE,
            kind__in=[KeyKind.TRIP, KeyKind.SERVICE],
            valid_from__lte=now,
            valid_until__gt=now,
        )
        .select_related("holder")
        .first()
    )


def car_owner_command(
    *, car: Car, user: User, action: str, override: bool = False, note: str = "", via: str = "web"
) -> VehicleCommand:
    """The owner locks their car at any time; unlocks it during someone else's trip or service
    window only with `override`, which is recorded and shown to that key's holder. A press while
    the same action is on its way is answered with that command."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}")
    audited = AuditAction.LOCK if action == CommandAction.LOCK else AuditAction.UNLOCK
    in_use = car_key_in_use(car_id=car.pk, now=timezone.now())
    budget = _unlock_budget(action=action, user=user, car_id=car.pk)
    try:
        if car.owner_id != user.pk and not user.is_staff:
            raise KeyRefused("not_allowed", _("Only the car's owner can do that."))
        if action == CommandAction.UNLOCK and in_use is not None:
            audited = AuditAction.OVERRIDE_UNLOCK
            if not override or not note.strip():
                raise KeyRefused(
                    "override_required",
                    _(
                        "%(name)s holds the key now. To unlock anyway, confirm the override "
                        "and say why: %(name)s will see it."
                    )
                    % {"name": in_use.holder.get_short_name()},
                )
        return _owner_command_record(
            car=car,
            user=user,
            action=action,
            audited=audited,
            key=in_use,
            note=note,
            via=via,
            budget=budget,
        )
    except KeyRefused as error:
        if budget is not None:
            budget.give_back()
        audit_denied(car_id=car.pk, key=in_use, actor=user, action=audited, error=error, via=via)
        raise
    except BaseException:
        if budget is not None:
            budget.give_back()  # the transaction that counted the unlock did not commit
        raise


@transaction.atomic(durable=True)
def _owner_command_record(
    *,
    car: Car,
    user: User,
    action: str,
    audited: str,
    key: DigitalKey | None,
    note: str,
    via: str,
    budget: UnlockBudget | None,
) -> VehicleCommand:
    reason = CommandReason.OWNER if car.owner_id == user.pk else CommandReason.ADMIN
    try:
        # Locks the car's row first, before the audit row below points at the key in use.
        command = vehicle_commands.vehicle_command_enqueue(
            car_id=car.pk,
            action=action,
            reason=reason,
            actor=user,
            audited=True,
            admit=budget.take if budget is not None else None,
        )
    except vehicle_commands.CommandRefused as error:
        raise KeyRefused(error.code, str(error)) from error
    audit_record(
        car_id=car.pk,
        key=key,
        actor=user,
        action=audited,
        via=via,
        detail=note.strip(),
        command_public_id=command.public_id,
    )
    return command


def audit_unkeyed_command(command: VehicleCommand, actor: User | None, reason: str) -> None:
    """Registered with vehicles.commands: a lock or unlock asked for without going through
    this module (the owner's "Lock now" on the car page or in the API, an admin's force lock)
    is audited too, in the command's own transaction; `actor` and `reason` are the press's
    (a joined press answered with someone else's command is still its presser's row)."""
    audit_record(
        car_id=command.car_id,
        key=None,
        actor=actor,
        action=command.action,
        via="admin" if reason == CommandReason.ADMIN else "owner",
        detail=str(CommandReason(reason).label),
        command_public_id=command.public_id,
    )


def pressed_for(user: User, command: VehicleCommand) -> bool:
    """Registered with vehicles.commands: `user` may follow `command` because a press of theirs
    was answered with it (every allowed press leaves an audit row naming its command)."""
    return AuditEntry.objects.filter(
        car_id=command.car_id, actor=user, allowed=True, command_public_id=command.public_id
    ).exists()


# --- The vehicle worker's last check --------------------------------------------------------


def command_guard(command: VehicleCommand, now: datetime.datetime) -> str | None:
    """Registered with vehicles.commands: may this command, asked under a key, still go? The
    end lock always goes; anything else needs the key still open for its action right now."""
    if command.reason in (CommandReason.TRIP_END, CommandReason.SERVICE_END):
        return None
    # No select_related("car"): the car is only needed to word a refusal, which is rare.
    key = next(iter(DigitalKey.objects.filter(pk=command.key_id)[:1]), None)
    if key is None:
        return _("The key no longer exists.")
    if command.reason == CommandReason.TRIP_START and key.status == K.ISSUED:
        # The unlock staged for the start goes at the start, even if the trip clock has not
        # opened the key yet (a thousand trips starting in one minute); a cancelled trip
        # revoked the key, which stops it here.
        # Measured from the moment it was staged for: a worker may take a message up to a
        # second early (vehicles.commands.DUE_TOLERANCE, for clock skew between machines).
        at = max(now, command.next_attempt_at or now)
        refusal = key_refusal(key=key, action=command.action, now=at)
        return str(refusal) if refusal else None
    if key.status != K.ACTIVE:
        refusal = key_refusal(key=key, action=command.action, now=now)
        return str(refusal) if refusal else _("This key is not active.")
    refusal = key_refusal(key=key, action=command.action, now=now)
    return str(refusal) if refusal else None
