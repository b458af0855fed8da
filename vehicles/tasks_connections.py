"""Celery tasks for vehicle-cloud connections: revoke on disconnect, the aging sweep.

The two that call the vehicle cloud go to the `vehicle` queue (CELERY_TASK_ROUTES).

Each task takes ids, re-reads its row and leaves when the work is done or no longer wanted, so a
second delivery is harmless.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.utils import timezone

from carshare import once
from vehicles.cloud import configured, connections, provider
from vehicles.models import ConnectionStatus, VehicleConnection

log = logging.getLogger(__name__)

# Worth another try: the cloud or the network may answer next time. Refusals end the task.
CLOUD_TRANSIENT = (provider.TransientError,)
MAIL_TRANSIENT = once.MAIL_TRANSIENT


@shared_task(
    bind=True,
    autoretry_for=CLOUD_TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
    acks_late=True,
)
def revoke_vehicle_access(self: Task, connection_id: int) -> None:
    """DELETE /application for a disconnected connection, then wipe its tokens."""
    connection = VehicleConnection.objects.filter(pk=connection_id).first()
    if (
        connection is None
        or connection.status != ConnectionStatus.DISCONNECTED
        or not connection.refresh_token_encrypted
    ):
        return  # gone, or already revoked (tokens wiped)
    if connections.connection_vehicle_live_elsewhere(connection=connection):
        # The owner reconnected this vehicle meanwhile: DELETE /application would cut the new
        # grant too, since it acts on every Connect session of the app for that car.
        connections.connection_forget_tokens(connection_id=connection_id)
        return
    try:
        access_token = connections.connection_access_token(
            connection_id=connection_id, allow_disconnected=True
        )
        configured.get_provider().disconnect(
            access_token=access_token, vehicle_id=connection.vehicle_id
        )
    except provider.RateLimited as error:
        raise self.retry(countdown=error.retry_after or 60, exc=error) from error
    except provider.AuthenticationFailed:
        pass  # the tokens are dead already: nothing left to revoke with, nothing to protect
    except provider.TransientError:
        raise  # autoretry
    except provider.VehicleCloudError as error:
        # Permission, validation, a vanished vehicle: retrying will not help. Keep a trace.
        log.warning("Could not revoke connection %s: %s", connection_id, error)
    connections.connection_forget_tokens(connection_id=connection_id)


@shared_task
def refresh_aging_connections() -> None:
    """From CELERY_BEAT_SCHEDULE: refresh idle connections before their refresh token dies."""
    for connection_id in connections.connections_aging(now=timezone.now()):
        refresh_connection_tokens.delay_on_commit(connection_id=connection_id)


@shared_task(
    autoretry_for=(*CLOUD_TRANSIENT, provider.RateLimited),
    retry_backoff=True,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=10,
    acks_late=True,
)
def refresh_connection_tokens(connection_id: int) -> None:
    """Refresh one aging connection; a refusal marks it unhealthy and emails the owner."""
    try:
        connections.connection_refresh_if_aging(connection_id=connection_id)
    except provider.AuthenticationFailed:
        pass  # recorded (unhealthy, email on its way); nothing to retry
    except provider.OAuthError as error:
        log.error("Aging refresh of connection %s refused: %s", connection_id, error)
