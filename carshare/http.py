"""Request typing and the page-or-partial helper shared by every app's views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

    from accounts.models import User


class HtmxRequest(HttpRequest):
    htmx: HtmxDetails


class AuthedHtmxRequest(HtmxRequest):
    user: User  # type: ignore[assignment]


def render_page_or_partial(
    request: HtmxRequest, template: str, partial: str, context: dict[str, Any]
) -> HttpResponse:
    """The whole page for a normal request, the named partial for htmx."""
    response = render(request, f"{template}#{partial}" if request.htmx else template, context)
    patch_vary_headers(response, ["HX-Request"])  # a cached fragment must never pose as a page
    return response
