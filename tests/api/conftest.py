"""The API tests share the personas' session tokens of tests/conftest.py (owner_auth,
renter_auth, stranger_auth, token_for); test modules import the sign-in helper from here."""

from __future__ import annotations

from tests.conftest import PASSWORD, session_token

__all__ = ["PASSWORD", "session_token"]
