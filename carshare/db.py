"""What the apps ask of PostgreSQL errors and of access lookups, written once.

Constraint violations are recognised by the constraint's name (psycopg 3 reports it in
`diag.constraint_name`; for a unique index, the index's name), never by the error's text, which
changes with the server's language and version. Deadlocks by their SQLSTATE.
"""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError
from django.db.models import Model, QuerySet
from django.http import Http404

DEADLOCK = "40P01"  # SQLSTATE deadlock_detected

M = TypeVar("M", bound=Model)


def violates(error: IntegrityError, constraint: str) -> bool:
    """The database refused the write because of the constraint named `constraint`."""
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == constraint


def is_deadlock(error: OperationalError) -> bool:
    """PostgreSQL aborted this transaction to break a deadlock with another one."""
    return getattr(error.__cause__, "sqlstate", None) == DEADLOCK


def one_or_404(rows: QuerySet[M], *, public_id: object, message: str = "Not found.") -> M:
    """The row of `rows` (already narrowed to what the user may see) with this public id, or
    Http404: one unknown, one the user may not see and one that is not even a UUID are the
    same answer, so nobody learns that an id exists."""
    try:
        row = rows.filter(public_id=public_id).first()
    except (ValidationError, ValueError):  # not a UUID: as unknown as a UUID nobody has
        row = None
    if row is None:
        raise Http404(message)
    return row
