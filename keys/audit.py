"""The audit writer: every attempt on a car under keys' rules leaves an AuditEntry.

An allowed attempt is recorded by its service, in the transaction that does the work, so neither
exists without the other. A refused one is recorded by audited_refusal(), in a transaction of its
own, since the attempt's own rolled back; the refusal then goes on to the caller.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.db.models import Subquery

from accounts.models import User
from keys.errors import KeyRefused
from keys.models import AuditEntry, DigitalKey


def audit_record(
    *,
    car_id: int,
    key: DigitalKey | None,
    actor: User | None,
    action: str,
    code: str = "ok",
    detail: str = "",
    via: str,
    command_public_id: uuid.UUID | str | None = None,
    staged_for: datetime.datetime | None = None,
    key_id: Subquery | None = None,
) -> AuditEntry:
    """`key_id`: instead of `key`, an expression the INSERT evaluates (a subquery)."""
    key_field: dict[str, Any] = {"key_id": key_id} if key_id is not None else {"key": key}
    return AuditEntry.objects.create(
        car_id=car_id,
        **key_field,
        actor=actor,
        action=action,
        allowed=code == "ok",
        code=code,
        detail=detail[:300],
        via=via,
        command_public_id=command_public_id,
        staged_for=staged_for,
    )


@transaction.atomic(durable=True)
def audit_denied(
    *,
    car_id: int,
    key: DigitalKey | None,
    actor: User | None,
    action: str,
    error: KeyRefused,
    via: str,
) -> None:
    """Record a refused attempt in its own transaction (the attempt itself wrote nothing)."""
    audit_record(
        car_id=car_id,
        key=key,
        actor=actor,
        action=action,
        code=error.code,
        detail=str(error),
        via=via,
    )


@contextmanager
def audited_refusal(
    *, car_id: int, key: DigitalKey | None, actor: User, action: str, via: str
) -> Iterator[None]:
    """Refuse, audit, re-raise: a KeyRefused raised inside is recorded as a denied `action`
    (audit_denied) and goes on to the caller unchanged. Used outside any transaction, around
    the durable one that does the work, so the refusal's row outlives the rollback."""
    try:
        yield
    except KeyRefused as error:
        audit_denied(car_id=car_id, key=key, actor=actor, action=action, error=error, via=via)
        raise
