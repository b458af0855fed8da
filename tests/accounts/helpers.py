"""Reading links out of the emails allauth sends."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from django.core.mail import EmailMessage


def link_in(message: EmailMessage, fragment: str) -> str:
    """The path of the first link in `message` that contains `fragment`."""
    match = re.search(rf"https?://\S*{re.escape(fragment)}\S*", message.body)
    assert match, f"no link with {fragment!r} in: {message.body}"
    return urlsplit(match.group(0)).path


def confirmation_key_in(message: EmailMessage) -> str:
    """The key an app client posts back; the link carries it URL-quoted."""
    return unquote(link_in(message, "/confirm-email/").rstrip("/").rsplit("/", 1)[1])
