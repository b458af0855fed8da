"""Every refused attempt leaves one audit row, written after the attempt's own work rolled back,
and the refusal still reaches the caller as it was raised."""

from __future__ import annotations

import pytest
from django.db import transaction

from keys.audit import audited_refusal
from keys.errors import KeyRefused
from keys.models import AuditEntry, KeyEvent


def test_a_refusal_is_audited_and_raised_again(trip_key, renter):
    refusal = KeyRefused("not_eligible", "Not for this person.")

    with (
        pytest.raises(KeyRefused) as raised,
        audited_refusal(
            car_id=trip_key.car_id, key=trip_key, actor=renter, action="share", via="api"
        ),
    ):
        raise refusal

    assert raised.value is refusal
    entry = AuditEntry.objects.get()
    assert (entry.car_id, entry.key, entry.actor, entry.action, entry.via) == (
        trip_key.car_id,
        trip_key,
        renter,
        "share",
        "api",
    )
    assert (entry.allowed, entry.code, entry.detail) == (
        False,
        "not_eligible",
        "Not for this person.",
    )


def test_the_refusal_outlives_the_attempts_rollback(trip_key, renter):
    @transaction.atomic(durable=True)
    def attempt() -> None:
        KeyEvent.objects.create(key=trip_key, old_status="issued", new_status="active")
        raise KeyRefused("key_not_active", "This key has expired.")

    events = KeyEvent.objects.count()
    with (
        pytest.raises(KeyRefused),
        audited_refusal(
            car_id=trip_key.car_id, key=trip_key, actor=renter, action="unlock", via="web"
        ),
    ):
        attempt()

    assert KeyEvent.objects.count() == events  # the attempt wrote nothing
    assert AuditEntry.objects.get().code == "key_not_active"


def test_an_attempt_that_goes_through_or_breaks_is_not_audited_as_refused(trip_key, renter):
    with audited_refusal(car_id=trip_key.car_id, key=None, actor=renter, action="lock", via="web"):
        pass
    with (
        pytest.raises(ValueError, match="a bug"),
        audited_refusal(car_id=trip_key.car_id, key=None, actor=renter, action="lock", via="web"),
    ):
        raise ValueError("a bug, not a refusal")

    assert not AuditEntry.objects.exists()
