"""Token encryption at rest and key rotation."""

from __future__ import annotations

import datetime
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.factories import CarFactory
from vehicles import connect, crypto
from vehicles.cloud.provider import Tokens
from vehicles.models import VehicleConnection


def _tokens(n: int) -> Tokens:
    now = timezone.now()
    return Tokens(
        access_token=f"access-{n}-plaintext",
        refresh_token=f"refresh-{n}-plaintext",
        access_expires_at=now + datetime.timedelta(hours=2),
        refresh_expires_at=now + datetime.timedelta(days=60),
    )


def _connection(n: int) -> VehicleConnection:
    return connect.connection_create(
        car=CarFactory(),
        tokens=_tokens(n),
        vehicle_id=f"00000000-0000-4000-8000-{n:012d}",
        scopes=[],
        attributes=None,
        vin="",
        mode="simulator",
    )


def test_round_trip_hides_the_token():
    sealed = crypto.encrypt_token("a-secret-token")
    assert "a-secret-token" not in sealed
    assert sealed != crypto.encrypt_token("a-secret-token")  # a fresh IV each time
    assert crypto.decrypt_token(sealed) == "a-secret-token"


def test_a_token_sealed_under_an_unknown_key_is_refused(settings):
    settings.CARSHARE_TOKEN_KEYS = [Fernet.generate_key().decode()]
    sealed = crypto.encrypt_token("t")
    settings.CARSHARE_TOKEN_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.InvalidToken):
        crypto.decrypt_token(sealed)


def test_rotation_re_encrypts_every_connection_under_the_new_key(db, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CARSHARE_TOKEN_KEYS = [old]
    first, second, third = _connection(1), _connection(2), _connection(3)

    # The new key goes first; the old one still opens everything stored so far.
    settings.CARSHARE_TOKEN_KEYS = [new, old]
    stored = VehicleConnection.objects.get(pk=first.pk)
    assert crypto.decrypt_token(stored.access_token_encrypted) == "access-1-plaintext"
    assert Fernet(old).decrypt(stored.access_token_encrypted.encode())

    out = StringIO()
    call_command("rotate_token_keys", "--batch-size", "2", stdout=out)
    assert "Re-encrypted the tokens of 3 connection(s)" in out.getvalue()

    # Without the old key, every token still opens: all were re-encrypted.
    settings.CARSHARE_TOKEN_KEYS = [new]
    for n, connection in enumerate((first, second, third), start=1):
        connection.refresh_from_db()
        assert crypto.decrypt_token(connection.access_token_encrypted) == f"access-{n}-plaintext"
        assert crypto.decrypt_token(connection.refresh_token_encrypted) == f"refresh-{n}-plaintext"


def test_rotation_reports_tokens_no_key_opens(db, settings):
    settings.CARSHARE_TOKEN_KEYS = [Fernet.generate_key().decode()]
    _connection(1)
    settings.CARSHARE_TOKEN_KEYS = [Fernet.generate_key().decode()]  # the old key dropped early
    with pytest.raises(CommandError, match="1 connection"):
        call_command("rotate_token_keys", stdout=StringIO(), stderr=StringIO())
