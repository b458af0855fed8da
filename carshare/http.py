"""Request typing, the page-or-partial helper and the confirmation of irreversible actions, shared
by every app's views."""

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
    user: User


def render_page_or_partial(
    request: HtmxRequest, template: str, partial: str, context: dict[str, Any]
) -> HttpResponse:
    """The whole page for a normal request, the named partial for htmx."""
    response = render(request, f"{template}#{partial}" if request.htmx else template, context)
    patch_vary_headers(response, ["HX-Request"])  # a cached fragment must never pose as a page
    return response


CONFIRM_PAGE = "components/confirm.html"


def is_confirmed(request: HttpRequest) -> bool:
    """Whether an irreversible action was posted from its confirmation (confirm=1)."""
    return request.POST.get("confirm") == "1"


def ask_to_confirm(
    request: HtmxRequest,
    *,
    question: str,
    yes: str,
    back_url: str,
    detail: str = "",
    target: str = "",
    hidden: dict[str, str] | None = None,
) -> HttpResponse:
    """The question before an irreversible action, posted back to the same URL with confirm=1:
    a page of its own without JavaScript, the #confirm partial (in place of the button) with
    htmx. `target` is what the htmx answer to the confirmed POST replaces; `hidden` carries the
    fields the action needs (a photo's id). 200 either way: nothing has happened yet."""
    context = {
        "confirm": {
            "action": request.get_full_path(),
            "question": question,
            "detail": detail,
            "yes": yes,
            "back_url": back_url,
            "target": target,
            "hidden": hidden or {},
        }
    }
    return render_page_or_partial(request, CONFIRM_PAGE, "confirm", context)
