"""Reads about accounts for pages."""

from __future__ import annotations

from allauth.account.models import EmailAddress

from accounts.models import User


def primary_email_for_user(*, user: User) -> EmailAddress | None:
    """The address allauth signs the user in with, with its verified flag."""
    return EmailAddress.objects.filter(user=user, primary=True).first()
