from django.http import HttpResponse
from django.shortcuts import render

from carshare.http import HtmxRequest


def car_browse(request: HtmxRequest) -> HttpResponse:
    return render(request, "vehicles/car_browse.html", {})
