"""The one shape of a domain refusal, shared by every app.

A rule that refuses an action raises a DomainError (each app has its subclass: BookingError,
KeyRefused, CommandRefused, CarError, ...). It carries what every caller needs and nothing that
depends on who asked: a stable `code` for programs, a `message` a person can be shown as is
(str(error) is the same text), the HTTP `status` the API answers with, `retry_after` seconds for
a rate limit, and `fields` when the refusal is about particular inputs. Pages show the message
as a form error; the API turns any DomainError into its error envelope in one handler
(carshare/api.py), so no router catches them itself.
"""

from __future__ import annotations

from typing import ClassVar

from django.utils.functional import Promise


class DomainError(Exception):
    """The rules refuse; str(error) can be shown to the person as is."""

    # The API's status when the subclass does not say otherwise: a rule the input broke.
    default_status: ClassVar[int] = 400

    def __init__(
        self,
        code: str,
        message: str | Promise,
        *,
        status: int | None = None,
        retry_after: int | None = None,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(str(message))
        self.code = code
        self.status = status if status is not None else self.status_for(code)
        self.retry_after = retry_after
        self.fields = fields

    @property
    def message(self) -> str:
        return str(self)

    @classmethod
    def status_for(cls, code: str) -> int:
        """The API status of a refusal with this code; subclasses map their own codes."""
        return cls.default_status
