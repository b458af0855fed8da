"""What every router of the JSON API shares: the signed-in request, the query base, paging.

The routers (vehicles, bookings, keys) import from here rather than from each other, and this
module imports no app, so carshare/api.py (the root, which imports every router) stays the only
place that knows them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from ninja import Field, Schema
from pydantic import ValidationInfo, model_validator

from accounts.models import User

PAGE_LIMIT = 20
PAGE_LIMIT_MAX = 100
OFFSET_MAX = 2**31 - 1  # past a PostgreSQL bigint OFFSET the database itself would fail

M = TypeVar("M", bound=Model)


class ApiRequest(HttpRequest):
    """A request that passed the session-token auth: ninja puts the user on request.auth."""

    auth: User


class QueryParams(Schema):
    """Base of every operation's query parameters: one the operation does not take is refused
    (400 `invalid`, naming it) rather than ignored, so a misspelt filter (price_min for
    min_price) never answers with an unfiltered list that looks like an answer."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown(cls, data: Any, info: ValidationInfo) -> Any:
        request = (info.context or {}).get("request")  # ninja validates with the request
        if isinstance(request, HttpRequest):
            known = {field.alias or name for name, field in cls.model_fields.items()}
            unknown = sorted(set(request.GET) - known)
            if unknown:
                # Django's ValidationError passes through pydantic untouched, to the API's
                # handler, which names each parameter in the envelope's fields.
                raise ValidationError({name: ["Unknown parameter."] for name in unknown})
        return data


# --- Paging ---------------------------------------------------------------------------------


def limit_field() -> Any:
    """A list operation's `limit` query parameter."""
    return Field(PAGE_LIMIT, ge=1, le=PAGE_LIMIT_MAX, description="Page size.")


def offset_field(description: str) -> Any:
    """A list operation's `offset` query parameter ("Cars to skip.", ...)."""
    return Field(0, ge=0, le=OFFSET_MAX, description=description)


def page(
    request: HttpRequest,
    rows: QuerySet[M] | Sequence[M],
    *,
    limit: int,
    offset: int,
    out: Callable[[list[M]], list[dict[str, Any]]],
) -> dict[str, Any]:
    """One page of `rows` as every list answers: {count, next, previous, results}, where next
    and previous are this URL with the offset moved (other parameters kept) or null. A query
    set is counted in the database and only the page is fetched; `out` turns the page's rows
    into their output dicts, all at once, so it can batch what they share."""
    count = rows.count() if isinstance(rows, QuerySet) else len(rows)
    items = list(rows[offset : offset + limit]) if offset < count else []

    def url(new_offset: int) -> str:
        query = request.GET.copy()
        query["offset"] = str(new_offset)
        query["limit"] = str(limit)
        return request.build_absolute_uri("?" + query.urlencode())

    return {
        "count": count,
        "next": url(offset + limit) if offset + limit < count else None,
        "previous": url(max(offset - limit, 0)) if offset > 0 else None,
        "results": out(items),
    }
