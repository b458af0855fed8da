"""Car pages: browse and detail for everyone; add, edit, unlist, relist and photos for owners."""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from carshare.http import AuthedHtmxRequest, HtmxRequest, render_page_or_partial
from vehicles import selectors, services
from vehicles.forms import CarForm, CarPhotoDeleteForm, CarSearchForm


def car_browse(request: HtmxRequest) -> HttpResponse:
    form = CarSearchForm(request.GET)
    page = None
    # Invalid filters list nothing rather than guess: the results region shows the errors.
    if form.is_valid():
        cars = selectors.cars_search(filters=form.cleaned_data)
        paginator = Paginator(cars, settings.CARSHARE_SEARCH_PAGE_SIZE)
        page = paginator.get_page(request.GET.get("page"))  # garbage → 1, too high → last
    context = {"form": form, "page": page}
    return render_page_or_partial(request, "vehicles/car_browse.html", "car-results", context)


def car_detail(request: HtmxRequest, public_id: UUID) -> HttpResponse:
    car = selectors.car_for_viewer(user=request.user, public_id=public_id)  # or 404
    is_owner = request.user.is_authenticated and car.owner_id == request.user.pk
    return render(request, "vehicles/car_detail.html", {"car": car, "is_owner": is_owner})


@login_required
def car_create(request: AuthedHtmxRequest) -> HttpResponse:
    if request.method != "POST":
        form = CarForm(require_photos=True)
        return render(request, "vehicles/car_create.html", {"form": form})
    form = CarForm(request.POST, request.FILES, require_photos=True)
    if form.is_valid():
        try:
            car = services.car_create(
                owner=request.user, data=form.cleaned_data, photos=form.cleaned_data["photos"]
            )
        except services.CarError as refusal:  # another owner listed the plate meanwhile
            form.add_error(None, str(refusal))
        else:
            messages.success(request, _("Your car is listed."))
            return redirect(car)
    return render(request, "vehicles/car_create.html", {"form": form})


@login_required
def car_edit(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    car = selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    title = car.title  # the form writes its input onto `car` even when it is then refused
    if request.method != "POST":
        form = CarForm(instance=car)
        return render(request, "vehicles/car_edit.html", {"car": car, "title": title, "form": form})
    form = CarForm(request.POST, request.FILES, instance=car)
    if form.is_valid():
        try:
            car = services.car_update(
                car=car, data=form.cleaned_data, photos=form.cleaned_data["photos"]
            )
        except services.CarError as refusal:
            form.add_error(None, str(refusal))
        else:
            messages.success(request, _("Your changes are saved."))
            return redirect(car)
    return render(request, "vehicles/car_edit.html", {"car": car, "title": title, "form": form})


@login_required
@require_POST
def car_photo_delete(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    car = selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    form = CarPhotoDeleteForm(request.POST)
    photo_error = ""
    if form.is_valid():
        try:
            services.car_photo_delete(car=car, photo_id=form.cleaned_data["photo"])
        except services.CarError as refusal:  # the last photo stays
            photo_error = str(refusal)
    if not request.htmx:
        if photo_error:
            messages.error(request, photo_error)
        return redirect("vehicles:car_edit", public_id=car.public_id)
    context = {"car": car, "photo_error": photo_error}
    return render_page_or_partial(request, "vehicles/car_edit.html", "car-photos", context)


@login_required
@require_POST
def car_unlist(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    car = selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    services.car_unlist(car=car)
    messages.success(request, _("Your car is unlisted: renters no longer find it."))
    return _back(request, car.public_id)


@login_required
@require_POST
def car_relist(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    car = selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    try:
        services.car_relist(car=car)
    except services.CarError as refusal:  # its plate went to a car listed since
        messages.error(request, str(refusal))
    else:
        messages.success(request, _("Your car is listed again."))
    return _back(request, car.public_id)


def _back(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    # A fixed choice instead of a "next" URL, so the form cannot redirect anywhere else.
    if request.POST.get("back") == "my_cars":
        return redirect("vehicles:my_cars")
    return redirect("vehicles:car_detail", public_id=public_id)


@login_required
def my_cars(request: AuthedHtmxRequest) -> HttpResponse:
    cars = selectors.cars_of_owner(user=request.user)
    return render(request, "vehicles/my_cars.html", {"cars": cars})
