"""Emails about a car's connection, sent by a worker (the owner's "please reconnect").

At the bottom of vehicles: it reads rows and sends mail, and imports nothing that talks to a car,
so the connection code below the Celery tasks can ring it.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from carshare import once
from vehicles.models import ConnectionStatus, VehicleConnection

MAIL_TRANSIENT = once.MAIL_TRANSIENT


# Its name from before it moved here, so that a message queued before a deploy still runs.
@shared_task(
    name="vehicles.tasks_connections.send_connection_unhealthy_email", **once.EMAIL_TASK_OPTIONS
)
def send_connection_unhealthy_email(connection_id: int) -> None:
    """Ask the owner to reconnect their car; one email per unhealthy episode."""
    # Claim first (conditional UPDATE), so two deliveries of this message send one email.
    claimed = VehicleConnection.objects.filter(
        pk=connection_id, status=ConnectionStatus.UNHEALTHY, unhealthy_notified_at__isnull=True
    ).update(unhealthy_notified_at=timezone.now())
    if not claimed:
        return  # healthy again, disconnected, or already emailed
    connection = VehicleConnection.objects.select_related("car__owner").get(pk=connection_id)
    car = connection.car
    context = {
        "owner": car.owner,
        "car": car,
        "reason": connection.status_reason,
        "car_url": settings.SITE_URL + car.get_absolute_url(),
    }
    message = EmailMultiAlternatives(
        subject=_("[carshare] Please reconnect your %(car)s") % {"car": car.title},
        body=render_to_string("emails/vehicles/connection_unhealthy.txt", context),
        to=[car.owner.email],
    )
    message.attach_alternative(
        render_to_string("emails/vehicles/connection_unhealthy.html", context), "text/html"
    )
    try:
        message.send()
    except MAIL_TRANSIENT:
        # Give the claim back so the retry (or the next episode) can send it.
        VehicleConnection.objects.filter(pk=connection_id).update(unhealthy_notified_at=None)
        raise
