from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from django.views.static import serve

from carshare.api import api
from vehicles import webhooks

# The admin signs in through allauth's login, so its rate limits protect the admin too.
admin.site.login = login_required(admin.site.login)  # type: ignore[method-assign]
admin.site.site_header = "carshare administration"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="vehicles:car_browse", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("_allauth/", include("allauth.headless.urls")),
    path("api/v1/", api.urls),
    path("webhooks/smartcar/", webhooks.smartcar_webhook, name="smartcar_webhook"),
    path("", include("accounts.urls")),
    path("", include("vehicles.urls")),
    path("", include("bookings.urls")),
]

if settings.SERVE_MEDIA:
    urlpatterns += [
        re_path(
            r"^{}(?P<path>.*)$".format(settings.MEDIA_URL.lstrip("/")),
            serve,
            {"document_root": settings.MEDIA_ROOT},
        )
    ]
