"""Celery tasks that talk to cars: run a command, settle lost ones, refresh the live status.

The tasks hold the vehicle-cloud calls, always with no transaction open; vehicles.cloud (sending,
sweep, live_status) holds the rules and every write, each in its own short transaction, and says
when a command is due again: the tasks send that message themselves, so the rules below never
import the tasks. Tasks take ids, re-read their rows
and leave when the work is done or no longer wanted, so a redelivered message does nothing.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable

from celery import shared_task
from django.db import connection
from django.utils import timezone

# tasks_connections, tasks_email: Celery's autodiscovery imports vehicles.tasks only, so
# importing the other task modules here registers them in every worker too.
from vehicles import selectors, tasks_connections, tasks_email  # noqa: F401
from vehicles.cloud import configured, connections, live_status, outbox, provider, sending, sweep
from vehicles.models import Car, CommandAction, CommandStatus, FuelType

logger = logging.getLogger(__name__)

# The cloud accepted the command; the car may apply it a moment later (the simulator after its
# latency, real cars after seconds). The lock status is read right after the answer and, if it
# does not show the command yet, again after each of these pauses; then we give up.
CONFIRM_PAUSES_S = (1.0, 2.0, 4.0)


def _release_connection() -> None:
    """Give the database connection back before a call to a car, which takes seconds.

    The vehicle worker runs hundreds of these calls at once (a wave of trips starting at the same
    minute), each in its own thread: a thread keeping its connection through the call would need
    as many PostgreSQL connections as calls in flight. Closed here, it goes back to the pool
    (DATABASE_POOL_MAX_SIZE) or is reopened by the next query. Never inside a transaction: the
    tasks open none around a call, and a caller's (a test's) stays untouched.
    """
    if not connection.in_atomic_block:
        connection.close()


@shared_task(acks_late=True)
def run_vehicle_command(command_id: int) -> None:
    """Send one queued lock/unlock to the car and record the outcome; safe to run twice."""
    claim = sending.command_claim(command_id=command_id)
    if isinstance(claim, sending.Busy):
        _run_again(command_id, claim.delay)  # another command of the car is in flight
        return
    if claim is None:
        return  # gone, done, not due, expired, or claimed elsewhere
    cloud = configured.get_provider()
    try:
        token = connections.connection_access_token(
            connection_id=claim.connection_id, known=claim.connection
        )
    except provider.VehicleCloudError as error:
        # The token could not be refreshed (the connection is marked unhealthy already).
        _record_error(claim, error)
        return
    send = cloud.lock if claim.action == CommandAction.LOCK else cloud.unlock
    _release_connection()
    try:
        ack = send(access_token=token, vehicle_id=claim.vehicle_id)
    except provider.VehicleCloudError as error:
        if isinstance(error, provider.AuthenticationFailed):
            # A fresh token refused: the grant was revoked on the cloud's side. Tell the owner.
            connections.connection_mark_unhealthy(
                connection_id=claim.connection_id, reason=f"Command refused: {error}"
            )
        _record_error(claim, error)
        if isinstance(error, provider.VehicleStateError):
            # The car said why (a door open, asleep): worth showing on the owner's page.
            _refresh_status(claim.car_id)
        return
    wanted_locked = claim.action == CommandAction.LOCK
    # The car usually shows the new state by the time its cloud answers: read it once now, so
    # the acceptance and the confirmation are recorded in one transaction (at a thousand trips
    # starting together, one transaction fewer per car while the rest are still being sent).
    seen = _read_lock_status(
        cloud, token=token, vehicle_id=claim.vehicle_id, command_id=claim.command_id
    )
    confirmed = seen if seen is not None and seen.is_locked == wanted_locked else None
    if not sending.command_record_ack(claim=claim, ack=ack, confirmed=confirmed):
        return  # the sweep settled this attempt meanwhile
    if seen is not None and confirmed is None:
        _confirm(
            cloud,
            token=token,
            vehicle_id=claim.vehicle_id,
            command_id=claim.command_id,
            wanted_locked=wanted_locked,
        )
    if claim.by_person:
        # Their page shows the car's status: read it all again. The trip clock's commands
        # skip this (the lock state is confirmed above; a page asks for more when viewed),
        # which at a thousand trips starting in one minute is a thousand status reads.
        _refresh_status(claim.car_id)


def _run_again(command_id: int, delay: float) -> None:
    """The command is marked due again in `delay` s (the sweep finds it if this message is lost)."""
    run_vehicle_command.apply_async_on_commit(
        kwargs={"command_id": command_id}, countdown=delay if delay > 0 else None
    )


def _record_error(claim: sending.Claim, error: provider.VehicleCloudError) -> None:
    delay = sending.command_record_error(claim=claim, error=error)
    if delay is not None:
        _run_again(claim.command_id, delay)


def _refresh_status(car_id: int) -> None:
    """A status refresh, unless one was asked for within VEHICLE_STATUS_MIN_INTERVAL."""
    if live_status.vehicle_status_claim_refresh(car_id=car_id):
        refresh_vehicle_status.delay_on_commit(car_id=car_id)


def _read_lock_status(
    cloud: provider.VehicleCloud, *, token: str, vehicle_id: str, command_id: int
) -> provider.LockStatus | None:
    """The car's lock state after its cloud accepted command `command_id`; None if unreadable."""
    _release_connection()
    try:
        return cloud.lock_status(access_token=token, vehicle_id=vehicle_id)
    except provider.VehicleCloudError as error:
        # The command itself succeeded; an unreadable status only leaves it unconfirmed.
        logger.info("Could not confirm command %s: %s", command_id, error)
        return None


def _confirm(
    cloud: provider.VehicleCloud,
    *,
    token: str,
    vehicle_id: str,
    command_id: int,
    wanted_locked: bool,
) -> bool:
    """Read the lock status again until the car reports the wanted state, a few times at most
    (the first read, right after the cloud's answer, did not show it yet)."""
    for pause in CONFIRM_PAUSES_S:
        time.sleep(pause)  # a worker thread waits; the car needs the time, not us
        lock_status = _read_lock_status(
            cloud, token=token, vehicle_id=vehicle_id, command_id=command_id
        )
        if lock_status is None:
            return False
        if lock_status.is_locked == wanted_locked:
            return sending.command_record_confirmation(
                command_id=command_id, lock_status=lock_status
            )
    logger.warning("Command %s accepted but the car does not report it yet", command_id)
    return False


@shared_task(acks_late=True)
def confirm_vehicle_commands(car_id: int) -> None:
    """Read the car's lock state and confirm the succeeded commands it shows applied; a webhook
    asks for this when it reports the state a command asked for. Safe to run twice."""
    pending = sending.commands_awaiting_confirmation(car_id=car_id)
    connection = connections.connection_live_for_car(car_id=car_id)
    if not pending or connection is None:
        return  # confirmed meanwhile, or the car is no longer reachable
    try:
        token = connections.connection_access_token(connection_id=connection.pk)
    except provider.VehicleCloudError as error:
        logger.info("Could not read car %s to confirm commands: %s", car_id, error)
        return
    lock_status = _read_lock_status(
        configured.get_provider(),
        token=token,
        vehicle_id=connection.vehicle_id,
        command_id=pending[0],
    )
    if lock_status is None:
        return
    # What the car says is shown whatever it confirms: it corrects a webhook that was wrong.
    live_status.vehicle_status_record_lock(car_id=car_id, lock_status=lock_status)
    for command_id in pending:
        sending.command_record_confirmation(command_id=command_id, lock_status=lock_status)


@shared_task
def sweep_vehicle_commands() -> None:
    """Every few seconds from CELERY_BEAT_SCHEDULE: settle commands whose worker died, expire
    overdue ones, and re-send those whose message was lost. Safe to run twice, or at once."""
    now = timezone.now()
    for stale in sweep.commands_stale_sent(now=now):
        _settle_stale(stale)
    # After the stale ones, so a person's command sent back to queued expires in this pass.
    sweep.commands_expire_overdue(now=timezone.now())
    for command_id in sweep.commands_redispatch_lost(now=timezone.now()):
        _run_again(command_id, 0.0)


def _settle_stale(stale: sweep.StaleCommand) -> None:
    lock_status: provider.LockStatus | None = None
    if stale.connection_id is not None:
        try:
            token = connections.connection_access_token(connection_id=stale.connection_id)
            lock_status = configured.get_provider().lock_status(
                access_token=token, vehicle_id=stale.vehicle_id
            )
        except provider.VehicleCloudError as error:
            logger.info("Could not read the car for stale command %s: %s", stale.command_id, error)
    if sweep.command_settle_stale(stale=stale, lock_status=lock_status) == CommandStatus.QUEUED:
        _run_again(stale.command_id, 0.0)  # sent again (past its deadline, the claim ends it)


@shared_task(acks_late=True)
def refresh_vehicle_status(car_id: int) -> None:
    """Read the car's lock state, position, odometer and fuel or battery into VehicleStatus."""
    status = selectors.vehicle_status_for_car(car_id=car_id)
    if status is None or status.refresh_requested_at is None:
        return
    if status.fetched_at is not None and status.fetched_at >= status.refresh_requested_at:
        return  # this request was served already (a redelivered message)
    connection = connections.connection_live_for_car(car_id=car_id)
    if connection is None:
        return
    fuel_type = Car.objects.filter(pk=car_id).values_list("fuel_type", flat=True).first()
    try:
        token = connections.connection_access_token(connection_id=connection.pk)
    except provider.VehicleCloudError as failure:
        live_status.vehicle_status_record(
            car_id=car_id, readings={}, data_age=None, error=outbox.user_message(failure)
        )
        return
    cloud = configured.get_provider()
    vid = connection.vehicle_id

    def lock() -> tuple[dict[str, object], provider.Meta]:
        answer = cloud.lock_status(access_token=token, vehicle_id=vid)
        return {"is_locked": answer.is_locked, "doors_open": answer.doors_open}, answer.meta

    def location() -> tuple[dict[str, object], provider.Meta]:
        answer = cloud.location(access_token=token, vehicle_id=vid)
        return {"latitude": answer.latitude, "longitude": answer.longitude}, answer.meta

    def odometer() -> tuple[dict[str, object], provider.Meta]:
        answer = cloud.odometer(access_token=token, vehicle_id=vid)
        return {"odometer_km": answer.distance_km}, answer.meta

    def fuel() -> tuple[dict[str, object], provider.Meta]:
        answer = cloud.fuel(access_token=token, vehicle_id=vid)
        return {"fuel_percent": answer.percent, "range_km": answer.range_km}, answer.meta

    def battery() -> tuple[dict[str, object], provider.Meta]:
        answer = cloud.battery(access_token=token, vehicle_id=vid)
        readings: dict[str, object] = {"battery_percent": answer.percent}
        if fuel_type == FuelType.ELECTRIC:  # a hybrid's range is the fuel's
            readings["range_km"] = answer.range_km
        return readings, answer.meta

    reads: list[Callable[[], tuple[dict[str, object], provider.Meta]]] = [lock, location, odometer]
    if fuel_type == FuelType.ELECTRIC:
        reads.append(battery)
    elif fuel_type == FuelType.HYBRID:
        reads += [fuel, battery]
    else:
        reads.append(fuel)

    readings: dict[str, object] = {}
    ages: list[datetime.datetime] = []
    error = ""
    _release_connection()  # the reads below touch only the cloud
    for read in reads:
        try:
            values, meta = read()
        except (provider.PermissionDenied, provider.NotCapable):
            continue  # not granted or not on this car: that reading simply stays empty
        except provider.VehicleCloudError as failure:
            # Throttled, asleep, unreachable, cloud trouble: keep what we have, try next time,
            # and spend no more of the car's quota now. People read it: their words, not codes.
            logger.info("Status read of car %s stopped: %s", car_id, failure)
            error = outbox.user_message(failure)
            break
        readings.update(values)
        if meta.data_age is not None:
            ages.append(meta.data_age)
    # The oldest reading is how old the picture is as a whole.
    live_status.vehicle_status_record(
        car_id=car_id, readings=readings, data_age=min(ages) if ages else None, error=error
    )
