"""The keys admin: read-only keys, audit log and end locks; revoke and lock through the
services, with the admin recorded as the actor."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from keys import grants
from keys.models import AuditEntry, DigitalKey, KeyStatus
from vehicles.models import VehicleCommand

KEYS = "/admin/keys/digitalkey/"
AUDIT = "/admin/keys/auditentry/"
END_LOCKS = "/admin/keys/endlock/"


@pytest.fixture
def shared_key(active_booking, renter, co_driver) -> DigitalKey:
    trip_key = DigitalKey.objects.get(booking_id=active_booking.pk, kind="trip")
    return grants.key_share(key=trip_key, user=renter, email=co_driver.email)


def test_lists_and_pages_open_for_admins(admin_client, shared_key):
    for url in (KEYS, AUDIT, END_LOCKS, f"{KEYS}{shared_key.pk}/change/"):
        assert admin_client.get(url).status_code == 200
    entry = AuditEntry.objects.first()
    assert admin_client.get(f"{AUDIT}{entry.pk}/change/").status_code == 200


def test_nothing_can_be_added_changed_or_deleted(admin_client, shared_key):
    entry = AuditEntry.objects.first()
    assert admin_client.get(f"{KEYS}add/").status_code == 403
    assert admin_client.get(f"{AUDIT}add/").status_code == 403
    assert admin_client.get(f"{AUDIT}{entry.pk}/delete/").status_code == 403
    response = admin_client.post(f"{KEYS}{shared_key.pk}/change/", {"status": "active"})
    assert response.status_code == 403


def test_revoke_asks_for_a_reason_then_revokes_through_the_service(admin_client, admin, shared_key):
    data = {"action": "revoke_with_reason", ACTION_CHECKBOX_NAME: [shared_key.pk]}
    page = admin_client.post(KEYS, data)
    assert page.status_code == 200
    assert b"Revoke these keys" in page.content
    shared_key.refresh_from_db()
    assert shared_key.status == KeyStatus.ACTIVE  # nothing happens before the reason

    admin_client.post(KEYS, data | {"apply": "yes", "reason": "Reported lost phone"})
    shared_key.refresh_from_db()
    assert shared_key.status == KeyStatus.REVOKED
    assert shared_key.revoked_by == admin
    event = shared_key.events.last()
    assert event.actor == admin
    assert event.reason == "Reported lost phone"
    assert AuditEntry.objects.filter(key=shared_key, action="revoke", actor=admin).exists()


def test_lock_action_queues_an_admin_lock_and_audits_it(admin_client, admin, shared_key):
    admin_client.post(KEYS, {"action": "lock_cars", ACTION_CHECKBOX_NAME: [shared_key.pk]})
    command = VehicleCommand.objects.filter(actor=admin).get()
    assert command.action == "lock"
    assert command.reason == "admin"
    audit = AuditEntry.objects.get(actor=admin)
    assert audit.via == "admin"
    assert audit.allowed
