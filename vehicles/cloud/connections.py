"""A car's connection to the vehicle cloud: find it, use its tokens, fall ill.

Created and disconnected by the Connect flow (vehicles.connect), which schedules the revocation.

A connection is healthy from Connect on; it turns unhealthy when its refresh token is refused
(the owner is emailed once to reconnect) and disconnected when the owner disconnects or
reconnects. Tokens are encrypted at rest (vehicles.crypto). Smartcar rotates both tokens on every
refresh and kills the spent refresh token a minute later, so one refresh per connection at a
time: a per-connection Redis lock, never a database row lock held across the HTTP call.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from carshare.errors import DomainError
from vehicles import crypto, tasks_email
from vehicles.cloud import configured, provider
from vehicles.cloud.provider import Tokens
from vehicles.models import ConnectionStatus, VehicleConnection

log = logging.getLogger(__name__)

# Refresh this long before the access token dies, so a call started now still carries a live one.
ACCESS_REFRESH_MARGIN = datetime.timedelta(minutes=5)
# Refresh tokens die after 60 days unused; an idle car's connection is refreshed this early.
REFRESH_AGING_WINDOW = datetime.timedelta(days=10)
LOCK_PREFIX = "carshare:connection-refresh:"

S = ConnectionStatus


class ConnectError(DomainError):
    """Connecting refused; str(error) can be shown to the owner as is."""

    default_status = 409

    def __init__(self, message: str | Promise, *, code: str = "not_connectable") -> None:
        super().__init__(code, message)


# --- selectors -------------------------------------------------------------------------------


def connection_live_for_car(*, car_id: int) -> VehicleConnection | None:
    """The car's healthy or unhealthy connection; None when it has none."""
    return (
        VehicleConnection.objects.filter(car_id=car_id)
        .exclude(status=S.DISCONNECTED)
        .order_by("-connected_at")
        .first()
    )


def connections_aging(*, now: datetime.datetime) -> list[int]:
    """Healthy connections whose refresh token dies within REFRESH_AGING_WINDOW."""
    return list(
        VehicleConnection.objects.filter(
            status=S.HEALTHY, refresh_expires_at__lte=now + REFRESH_AGING_WINDOW
        )
        .exclude(refresh_token_encrypted="")
        .order_by("refresh_expires_at")
        .values_list("pk", flat=True)
    )


def connection_mark_unhealthy(*, connection_id: int, reason: str) -> None:
    """Healthy → unhealthy, and the owner is emailed (once per episode) to reconnect.

    Not durable: callers may already hold a transaction (a command task recording its outcome).
    """
    with transaction.atomic():
        # Conditional UPDATE: of two workers failing at once, one flips it and one emails.
        updated = VehicleConnection.objects.filter(pk=connection_id, status=S.HEALTHY).update(
            status=S.UNHEALTHY, status_reason=reason[:255], unhealthy_notified_at=None
        )
        if updated:
            tasks_email.send_connection_unhealthy_email.delay_on_commit(connection_id=connection_id)


# --- tokens ----------------------------------------------------------------------------------

_redis_lock = threading.Lock()
_redis_clients: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis:
    """One client (and connection pool, fork-safe in redis-py) per REDIS_URL per process."""
    url = settings.REDIS_URL
    client = _redis_clients.get(url)
    if client is None:
        with _redis_lock:
            client = _redis_clients.setdefault(url, redis.Redis.from_url(url))
    return client


def _refresh_lock_seconds() -> float:
    # The lock must outlive the refresh call (connect + read timeout), or a second worker could
    # take it while the first is still spending the refresh token.
    return settings.VEHICLE_CLOUD_CONNECT_TIMEOUT + settings.VEHICLE_CLOUD_READ_TIMEOUT + 15


def cleared_tokens() -> dict[str, object]:
    return {
        "access_token_encrypted": "",
        "refresh_token_encrypted": "",
        "access_expires_at": None,
        "refresh_expires_at": None,
    }


def _access_expiring(connection: VehicleConnection, now: datetime.datetime) -> bool:
    expires = connection.access_expires_at
    return expires is None or expires <= now + ACCESS_REFRESH_MARGIN


def _refresh_aging(connection: VehicleConnection, now: datetime.datetime) -> bool:
    expires = connection.refresh_expires_at
    return expires is None or expires <= now + REFRESH_AGING_WINDOW


def _no_tokens(connection: VehicleConnection) -> provider.AuthenticationFailed:
    return provider.AuthenticationFailed(
        f"Connection {connection.pk} has no usable tokens ({connection.status})",
        type="AUTHENTICATION",
        user_message=_("The car's connection needs renewing: its owner must reconnect it."),
    )


def _tokens_save(connection_id: int, tokens: Tokens) -> None:
    """Store both new tokens: the old refresh token dies a minute after use."""
    with transaction.atomic(durable=True):
        # exclude(""): a disconnected row whose tokens were wiped after revoking stays wiped.
        VehicleConnection.objects.filter(pk=connection_id).exclude(
            refresh_token_encrypted=""
        ).update(
            access_token_encrypted=crypto.encrypt_token(tokens.access_token),
            refresh_token_encrypted=crypto.encrypt_token(tokens.refresh_token),
            access_expires_at=tokens.access_expires_at,
            refresh_expires_at=tokens.refresh_expires_at,
            refreshed_at=timezone.now(),
        )


def _refreshed(
    connection_id: int, *, needed: Callable[[VehicleConnection, datetime.datetime], bool]
) -> VehicleConnection | str:
    """Refresh under the connection's lock if `needed` still holds once we have the lock.

    Returns the new access token, or the re-read row when someone else refreshed meanwhile.
    """
    # An empty durable block raises inside a caller's transaction. Fail here, before spending
    # the refresh token: its successor must be committed on its own, not rolled back with them.
    with transaction.atomic(durable=True):
        pass
    lock = _redis().lock(
        f"{LOCK_PREFIX}{connection_id}",
        timeout=_refresh_lock_seconds(),
        blocking_timeout=_refresh_lock_seconds(),
    )
    if not lock.acquire():
        raise provider.TransientError(
            f"Connection {connection_id}: another worker is still refreshing", type="LOCK_TIMEOUT"
        )
    try:
        # Re-read under the lock: the worker we waited for may have refreshed already.
        connection = VehicleConnection.objects.get(pk=connection_id)
        if not needed(connection, timezone.now()):
            return connection
        if connection.status == S.UNHEALTHY or not connection.refresh_token_encrypted:
            raise _no_tokens(connection)  # a refused refresh token is never spent twice
        client = configured.get_provider()
        try:
            tokens = client.refresh(
                refresh_token=crypto.decrypt_token(connection.refresh_token_encrypted)
            )
        except (provider.OAuthError, provider.AuthenticationFailed) as error:
            if isinstance(error, provider.OAuthError) and error.type != "invalid_grant":
                # invalid_client & co. are our configuration, not the owner's car: emailing
                # every owner to reconnect would not help. Loud in the log, connection kept.
                log.error("Token endpoint refused our request: %s", error)
                raise
            connection_mark_unhealthy(
                connection_id=connection_id, reason=f"Refresh refused: {error}"
            )
            raise provider.AuthenticationFailed(
                f"Connection {connection_id}: refresh refused ({error})",
                type="AUTHENTICATION",
                code=error.code,
                status=error.status,
                request_id=error.request_id,
                user_message=_("The car's connection needs renewing: its owner must reconnect it."),
            ) from error
        # TransientError and RateLimited propagate untouched: the refresh token was not judged.
        _tokens_save(connection_id, tokens)
        return tokens.access_token
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            # It expired while we worked; the TTL above makes that a slow-network event.
            log.warning("Refresh lock of connection %s expired before release", connection_id)


def _access_token(
    connection_id: int, *, allow_disconnected: bool = False, known: VehicleConnection | None = None
) -> str:
    if known is not None and known.pk == connection_id:
        connection = known
    else:
        connection = VehicleConnection.objects.get(pk=connection_id)
    if connection.status == S.DISCONNECTED and not allow_disconnected:
        raise _no_tokens(connection)
    if not connection.access_token_encrypted:
        raise _no_tokens(connection)
    if not _access_expiring(connection, timezone.now()):
        # Unhealthy connections still serve an unexpired access token: a trip-end lock is
        # worth sending even when the refresh token has already been refused.
        return crypto.decrypt_token(connection.access_token_encrypted)
    result = _refreshed(connection_id, needed=_access_expiring)
    if isinstance(result, str):
        return result
    if not result.access_token_encrypted:
        raise _no_tokens(result)
    return crypto.decrypt_token(result.access_token_encrypted)


def connection_access_token(
    *,
    connection_id: int,
    allow_disconnected: bool = False,
    known: VehicleConnection | None = None,
) -> str:
    """The decrypted access token, refreshed first when it expires within 5 minutes.

    Network I/O: never call inside a transaction. Raises provider.AuthenticationFailed when the
    connection is disconnected (unless allowed: revoking needs one last token) or its refresh
    token was refused (it is then marked unhealthy). `known`: the row as the caller has just
    read it (a command's claim), used instead of reading it again unless it needs a refresh.
    """
    return _access_token(connection_id, allow_disconnected=allow_disconnected, known=known)


def connection_refresh_if_aging(*, connection_id: int) -> bool:
    """Refresh a healthy connection whose refresh token nears its 60 days; True if refreshed.

    A refused refresh marks it unhealthy (and emails the owner) and raises AuthenticationFailed.
    """
    connection = VehicleConnection.objects.filter(pk=connection_id, status=S.HEALTHY).first()
    if connection is None or not _refresh_aging(connection, timezone.now()):
        return False
    return isinstance(_refreshed(connection_id, needed=_refresh_aging), str)


def connection_forget_tokens(*, connection_id: int) -> None:
    """Wipe a disconnected connection's tokens once they are revoked or useless."""
    VehicleConnection.objects.filter(pk=connection_id, status=S.DISCONNECTED).update(
        **cleared_tokens()
    )


def connection_vehicle_live_elsewhere(*, connection: VehicleConnection) -> bool:
    """True when another live connection serves the same vehicle (the owner reconnected)."""
    return (
        VehicleConnection.objects.filter(
            provider=connection.provider, vehicle_id=connection.vehicle_id
        )
        .exclude(pk=connection.pk)
        .exclude(Q(status=S.DISCONNECTED))
        .exists()
    )
