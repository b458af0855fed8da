from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from carshare.http import AuthedHtmxRequest


@login_required
def profile(request: AuthedHtmxRequest) -> HttpResponse:
    return render(request, "accounts/profile.html", {})
