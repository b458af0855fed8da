from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.generic import RedirectView
from django.views.static import serve

from carshare.api import api
from keys import views as key_views
from vehicles import urls as vehicles_urls
from vehicles import webhooks

# The owner's Lock now keeps its name and address on the car page, but keys answers it, as it
# answers every command a person asks of a car (vehicles sits below keys and cannot call it).
vehicle_urls = [
    *vehicles_urls.urlpatterns,
    path("cars/<uuid:public_id>/lock/", key_views.car_lock, name="car_lock"),
]

# The admin signs in through allauth's login, so its rate limits protect the admin too.
admin.site.login = login_required(admin.site.login)  # type: ignore[method-assign]
admin.site.site_header = "carshare administration"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for a load balancer or orchestrator: the process serves Django requests. No
    database or Redis on purpose, so a probe never piles onto a struggling database (and the
    benchmarks use it as the cheapest Django request there is)."""
    return HttpResponse("ok", content_type="text/plain")


# Under /api/ these answer with the API's JSON error envelope, elsewhere with the usual pages.
handler404 = "carshare.api.not_found_page"
handler500 = "carshare.api.server_error_page"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("", RedirectView.as_view(pattern_name="vehicles:car_browse", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("_allauth/", include("allauth.headless.urls")),
    path("api/v1/", api.urls),
    path("webhooks/smartcar/", webhooks.smartcar_webhook, name="smartcar_webhook"),
    path("", include("accounts.urls")),
    path("", include((vehicle_urls, "vehicles"))),
    path("", include("bookings.urls")),
    path("keys/", include("keys.urls")),
]

if settings.SERVE_MEDIA:
    urlpatterns += [
        re_path(
            r"^{}(?P<path>.*)$".format(settings.MEDIA_URL.lstrip("/")),
            serve,
            {"document_root": settings.MEDIA_ROOT},
        )
    ]
