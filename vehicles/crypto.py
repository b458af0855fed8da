"""OAuth tokens at rest: MultiFernet over settings.CARSHARE_TOKEN_KEYS.

The first key encrypts; every key decrypts. To rotate, put a new key first, deploy, run
`manage.py rotate_token_keys`, then drop the old key from the list.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

__all__ = ["InvalidToken", "decrypt_token", "encrypt_token", "rotate_token"]


@functools.lru_cache(maxsize=4)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    # Cached per key list: building Fernets parses keys, and settings may differ in tests.
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    return _multi_fernet(tuple(settings.CARSHARE_TOKEN_KEYS))


def encrypt_token(value: str) -> str:
    return _current().encrypt(value.encode()).decode("ascii")


def decrypt_token(value: str) -> str:
    """Raises InvalidToken when no configured key opens it (a key dropped too early)."""
    return _current().decrypt(value.encode("ascii")).decode()


def rotate_token(value: str) -> str:
    """The same token encrypted under the first key (keeps its original timestamp)."""
    return _current().rotate(value.encode("ascii")).decode("ascii")
