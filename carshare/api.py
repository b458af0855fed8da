"""The JSON API under /api/v1: one NinjaAPI, routers from each app, one error envelope.

Every error is {"error": {"code": ..., "message": ..., "fields": {...}}} with a 4xx status, so
app developers parse one shape whatever went wrong; the OpenAPI document says so on every
operation. Operations require an allauth headless session token (X-Session-Token) unless they
opt out with auth=None, so a new endpoint is private until someone decides otherwise. The
browser session cookie is not accepted: header auth cannot be forged cross-site, so the API
needs no CSRF tokens.

Interactive docs (/api/v1/docs) use the Swagger UI that django-ninja ships: its page loads the
scripts from /static/ninja/ and has no inline script, so it runs under our CSP. That needs
"ninja" in INSTALLED_APPS; without it ninja falls back to a CDN page the CSP blocks.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from allauth.headless.contrib.ninja.security import XSessionTokenAuth
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.signals import got_request_exception
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from django.urls import URLPattern, URLResolver
from django.utils.log import log_response
from django.views import defaults
from ninja import NinjaAPI, Router, Swagger
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.openapi.schema import OpenAPISchema

from bookings import api as bookings_api
from carshare.errors import DomainError
from keys import api as keys_api
from vehicles import api as vehicles_api
from vehicles import api_commands as vehicles_api_commands

ERROR_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "internal_error",
}

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable, for programs: invalid, not_authenticated, "
                    "not_found, conflict, bad_request, too_large, ...",
                },
                "message": {"type": "string", "description": "For people, in English."},
                "fields": {
                    "type": "object",
                    "description": "With code `invalid`: messages per input field; "
                    "`__all__` holds those about the input as a whole.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}


class SessionToken(XSessionTokenAuth):
    """allauth's X-Session-Token, described in the OpenAPI document as an API-key header."""

    openapi_in = "header"
    openapi_name = "X-Session-Token"
    openapi_description = (
        "The `meta.session_token` of `POST /_allauth/app/v1/auth/login` (allauth headless)."
    )


session_token_auth = SessionToken()


class CarshareAPI(NinjaAPI):
    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        """Document the error envelope once and point every operation's 4XX at it."""
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        error_response = {
            "description": "Error: see `error.code`.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                operation.setdefault("responses", {}).setdefault("4XX", error_response)
        return schema

    @property
    def urls(self) -> tuple[list[URLResolver | URLPattern], str, str]:
        """ninja's URL patterns, with its plain-text 405 answered in the envelope too."""
        patterns, app_name, namespace = super().urls
        for pattern in patterns:
            if isinstance(pattern, URLPattern):
                pattern.callback = _json_method_not_allowed(pattern.callback)
        return patterns, app_name, namespace


def _json_method_not_allowed(
    view: Callable[..., HttpResponseBase],
) -> Callable[..., HttpResponseBase]:
    @functools.wraps(view)  # keeps ninja's csrf_exempt flag on the view
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        allowed = response["Allow"]
        refusal = error_response(
            request, status=405, code="method_not_allowed", message=f"Allowed: {allowed}."
        )
        refusal["Allow"] = allowed
        return refusal

    return wrapper


api = CarshareAPI(
    title="carshare API",
    version="1.0.0",
    description=(
        "Peer-to-peer car sharing with digital keys. Authenticate with an allauth headless "
        "session token (`X-Session-Token`), obtained from `POST /_allauth/app/v1/auth/login`. "
        "Prices are in EUR. Every error answers with the `Error` envelope."
    ),
    urls_namespace="api",
    auth=session_token_auth,
    # The badge would load from validator.swagger.io, which the CSP forbids.
    docs=Swagger(settings={"validatorUrl": None}),
)


def error_response(
    request: HttpRequest,
    *,
    status: int,
    code: str,
    message: str,
    fields: dict[str, list[str]] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return api.create_response(request, {"error": body}, status=status)


def _ninja_fields(errors: list[dict[str, Any]]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        # Drop the source (query, file, ...) and, for a JSON body, the name of the parameter
        # holding it, which mean nothing to a client: ["body", "payload", "year"] is "year".
        loc = loc[2:] if loc[:1] == ["body"] else loc[1:]
        fields.setdefault(".".join(loc) or "__all__", []).append(str(error.get("msg", "Invalid.")))
    return fields


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    if any(error.get("loc", ("",))[0] == "path" for error in exc.errors):
        # A path id that is not even a UUID names nothing: the same 404 as an unknown one.
        return error_response(request, status=404, code="not_found", message="Not found.")
    return error_response(
        request,
        status=400,
        code="invalid",
        message="The request is not valid.",
        fields=_ninja_fields(exc.errors),
    )


@api.exception_handler(DjangoValidationError)
def on_django_validation_error(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    """Form errors, raised by the routers as ValidationError(form.errors.as_data())."""
    fields = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    return error_response(
        request, status=400, code="invalid", message="The request is not valid.", fields=fields
    )


@api.exception_handler(AuthenticationError)
def on_authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(
        request,
        status=401,
        code="not_authenticated",
        message="Sign in: send a valid X-Session-Token.",
    )


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, status=404, code="not_found", message="Not found.")


@api.exception_handler(DomainError)
def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    """Every app's refusal (BookingError, KeyRefused, CommandRefused, CarError, ...): its own
    code, message and status, so the routers let them through instead of catching each."""
    response = error_response(
        request, status=exc.status, code=exc.code, message=exc.message, fields=exc.fields
    )
    if exc.status == 429:
        response["Retry-After"] = str(exc.retry_after or 1)
    return response


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(
        request,
        status=exc.status_code,
        code=ERROR_CODES.get(exc.status_code, "error"),
        message=str(exc) or "Request refused.",
    )


@api.exception_handler(SuspiciousOperation)
def on_suspicious_operation(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    # Django answers these with a 400 and a line in django.security; keep both, in JSON.
    logging.getLogger(f"django.security.{exc.__class__.__name__}").warning(str(exc))
    if isinstance(exc, RequestDataTooBig):
        return error_response(
            request, status=413, code="too_large", message="The request body is too large."
        )
    return error_response(
        request, status=400, code="bad_request", message="The request could not be read."
    )


@api.exception_handler(BadRequest)
@api.exception_handler(MultiPartParserError)
def on_bad_request(request: HttpRequest, exc: Exception) -> HttpResponse:
    return error_response(
        request, status=400, code="bad_request", message="The request could not be read."
    )


@api.exception_handler(Exception)
def on_server_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    """Anything no handler above expected: the envelope, not Django's HTML 500 page, and
    nothing of the exception in it (its text may hold data, its traceback our code)."""
    response = error_response(
        request,
        status=500,
        code="internal_error",
        message="Something went wrong on our side. Try again later.",
    )
    # What Django does for an uncaught exception, so nothing is lost by catching it here: the
    # signal (error reporters, and the test client, which re-raises it) and the django.request
    # log line with the traceback (mailed to the admins in production).
    got_request_exception.send(sender=None, request=request)
    log_response(
        "Internal Server Error: %s", request.path, response=response, request=request, exception=exc
    )
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found_page(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: under /api/ (an unknown version, say) the envelope, elsewhere the page."""
    if _is_api(request):
        return error_response(request, status=404, code="not_found", message="Not found.")
    return defaults.page_not_found(request, exception)


def server_error_page(request: HttpRequest) -> HttpResponse:
    """handler500, for a failure outside the API's own handlers (a middleware, say): under
    /api/ the envelope, elsewhere the page."""
    if _is_api(request):
        return error_response(
            request,
            status=500,
            code="internal_error",
            message="Something went wrong on our side. Try again later.",
        )
    return defaults.server_error(request)


api.add_router("", vehicles_api.router)
api.add_router("", vehicles_api_commands.router)
api.add_router("", bookings_api.router)
api.add_router("", keys_api.router)

# Last, so it only sees what no router matched: unknown paths under /api/v1/ answer with the
# envelope too, not with the HTML 404 page.
fallback = Router()


@fallback.api_operation(
    ["GET", "POST", "PUT", "PATCH", "DELETE"], "/{path:rest}", auth=None, include_in_schema=False
)
def not_found(request: HttpRequest, rest: str) -> HttpResponse:
    return error_response(request, status=404, code="not_found", message="Not found.")


api.add_router("", fallback)
