"""Response headers and request limits that apply to every page and every API call."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat


def permissions_policy_header(policy: dict[str, list[str]]) -> str:
    """{"camera": [], "geolocation": ["self"]} → "camera=(), geolocation=(self)"."""
    return ", ".join(f"{feature}=({' '.join(allow)})" for feature, allow in policy.items())


class PermissionsPolicyMiddleware:
    """Sends settings.PERMISSIONS_POLICY (Django has no setting of its own for it): browser
    features no page uses stay off, so an injected script or a framed page cannot ask for the
    camera, the microphone or a payment."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.header = permissions_policy_header(settings.PERMISSIONS_POLICY)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", self.header)
        return response


class RequestSizeLimitMiddleware:
    """Refuses a body over settings.CARSHARE_MAX_REQUEST_BYTES from its Content-Length, before
    Django spools it to disk or parses it: the limit Django has (DATA_UPLOAD_MAX_MEMORY_SIZE)
    leaves file uploads out. Django reads no more than Content-Length, so a body without one is
    read as empty."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads an unreadable length as no body, too
        if length > settings.CARSHARE_MAX_REQUEST_BYTES:
            return self.too_large(request)
        return self.get_response(request)

    @staticmethod
    def too_large(request: HttpRequest) -> HttpResponse:
        limit = filesizeformat(settings.CARSHARE_MAX_REQUEST_BYTES)
        if request.path.startswith("/api/"):
            from carshare.api import error_response  # the API's envelope; imports every router

            return error_response(
                request,
                status=413,
                code="too_large",
                message=f"The request body is too large: at most {limit}.",
            )
        return render(request, "413.html", {"limit": limit}, status=413)
