"""Writes to a user's own profile. Sign-up, sign-in and email addresses belong to allauth."""

from __future__ import annotations

import datetime

from django.db import transaction

from accounts.models import User

PROFILE_FIELDS = ["name", "phone", "licence_number", "licence_country", "licence_expires_on"]


@transaction.atomic(durable=True)
def user_profile_update(
    *,
    user: User,
    name: str,
    phone: str,
    licence_number: str,
    licence_country: str,
    licence_expires_on: datetime.date | None,
) -> User:
    """Save the name, phone and driving licence a user gives about themselves."""
    user.name = name
    user.phone = phone
    user.licence_number = licence_number
    user.licence_country = licence_country
    user.licence_expires_on = licence_expires_on
    # update_fields: a concurrent password change or sign-in must not be overwritten.
    user.save(update_fields=PROFILE_FIELDS)
    return user
