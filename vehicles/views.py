"""Car pages: browse and detail for everyone; add, edit, unlist, relist and photos for owners;
connecting the car to the vehicle cloud, its live status and "Lock now" for owners.

The pages never call the vehicle cloud: status comes from VehicleStatus (refreshed by Celery
when a page asks), and a lock is a VehicleCommand row the `vehicle` worker carries out. Only
the Connect callback talks to the cloud in the request, outside any transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from carshare.http import (
    AuthedHtmxRequest,
    HtmxRequest,
    ask_to_confirm,
    is_confirmed,
    render_page_or_partial,
)
from vehicles import commands, connect, selectors, services
from vehicles.cloud import configured, connections
from vehicles.forms import CarForm, CarPhotoDeleteForm, CarSearchForm
from vehicles.models import Car, FuelType, Transmission

CAR_PAGE = "vehicles/car_detail.html"


def car_browse(request: HtmxRequest) -> HttpResponse:
    form = CarSearchForm(request.GET)
    page = None
    # Invalid filters list nothing rather than guess: the results region shows the errors.
    if form.is_valid():
        cars = selectors.cars_search(filters=form.cleaned_data)
        paginator = Paginator(cars, settings.CARSHARE_SEARCH_PAGE_SIZE)
        page = paginator.get_page(request.GET.get("page"))  # garbage → 1, too high → last
        _label_choices(page.object_list)
    context = {"form": form, "page": page}
    return render_page_or_partial(request, "vehicles/car_browse.html", "car-results", context)


def _label_choices(cars: Iterable[Car]) -> None:
    """Give each card its fuel and transmission labels, translated once per request: the
    cards used get_FOO_display(), which translates every choice's label to find one, for each
    card (about 100 translations a page; bench/README.md). Same text, same fallback."""
    fuel_labels = {value: str(label) for value, label in FuelType.choices}
    transmission_labels = {value: str(label) for value, label in Transmission.choices}
    for car in cars:
        car.fuel_type_label = fuel_labels.get(car.fuel_type, car.fuel_type)  # type: ignore[attr-defined]
        car.transmission_label = transmission_labels.get(car.transmission, car.transmission)  # type: ignore[attr-defined]


def car_detail(request: HtmxRequest, public_id: UUID) -> HttpResponse:
    car = selectors.car_for_viewer(user=request.user, public_id=public_id)  # or 404
    is_owner = request.user.is_authenticated and car.owner_id == request.user.pk
    return _car_page(request, car, is_owner=is_owner)


def _car_page(
    request: HtmxRequest, car: Car, *, is_owner: bool, partial: str | None = None
) -> HttpResponse:
    """The car page (or one of its partials for htmx): owners also get the connection,
    the live status and the commands."""
    context: dict[str, Any] = {
        "car": car,
        "is_owner": is_owner,
        "is_connected": selectors.car_is_connected(car),
    }
    if is_owner:
        connection = connections.connection_live_for_car(car_id=car.pk)
        if connection is not None:
            # Someone is looking: have the worker read the car (at most once per interval).
            commands.vehicle_status_request_refresh(car_id=car.pk)
        # The latest commands: the one in progress, and whether a lock was refused for an open
        # door. Their history is the keys panel's audit log.
        recent = list(selectors.commands_for_car(car_id=car.pk))
        context |= {
            "connection": connection,
            "connection_vehicle": connect.connection_vehicle_label(connection)
            if connection
            else "",
            "connection_scopes": connect.permission_labels(connection.scopes) if connection else [],
            "vehicle_status": selectors.vehicle_status_for_car(car_id=car.pk),
            "doors_open_reported": selectors.lock_refused_door_open(
                car_id=car.pk, newest_first=recent
            ),
            "command": next((c for c in recent if c.is_pending), None),
        }
    if partial:
        response = render_page_or_partial(request, CAR_PAGE, partial, context)
    else:
        response = render(request, CAR_PAGE, context)
    if is_owner:
        # "Connect this car" posts here and is redirected to Connect: the CSP's form-action
        # applies to that redirect too, so the page allows Connect's origin.
        response._csp_update = {"form-action": [settings.SMARTCAR_CONNECT_ORIGIN]}  # type: ignore[attr-defined]
    return response


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
    if form.is_valid() and not is_confirmed(request):  # a deleted photo is gone: ask first
        return ask_to_confirm(
            request,
            question=_("Delete this photo?"),
            detail=_("Renters no longer see it. This can't be undone."),
            yes=_("Yes, delete it"),
            back_url=reverse("vehicles:car_edit", args=[car.public_id]),
            target="#car-photos",
            hidden={"photo": str(form.cleaned_data["photo"])},
        )
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
    cars = list(selectors.cars_of_owner(user=request.user))
    for car in cars:
        car.not_public = selectors.car_not_public_reason(car)  # type: ignore[attr-defined]
    return render(request, "vehicles/my_cars.html", {"cars": cars})


# --- Connecting the car to the vehicle cloud ----------------------------------------------


@login_required
@require_POST
def car_connect(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """Send the owner to Connect with a fresh state bound to this car (reconnect is the same)."""
    car = selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    state = connect.connect_state_issue(request.session, car=car)
    url = configured.get_provider().authorize_url(state=state, make=car.make, vin=car.vin or None)
    return redirect(url)


@login_required
@require_GET
def connect_callback(request: AuthedHtmxRequest) -> HttpResponse:
    """Where Connect sends the owner back: a code to exchange, or the reason there is none."""
    car_public_id = connect.connect_state_consume(
        request.session, state=request.GET.get("state", "")
    )
    if car_public_id is None:
        # Not started from this session, expired, or played a second time: store nothing.
        message = _(
            "This answer from Connect does not belong to a connection you started here, or it "
            "was already used. Start again with “Connect this car” on your car's page."
        )
        return render(request, "vehicles/connect_error.html", {"message": message}, status=400)
    car = selectors.car_for_owner(user=request.user, public_id=car_public_id)  # or 404
    if request.GET.get("error") or not request.GET.get("code"):
        messages.error(request, connect.connect_error_message(request.GET))
        return redirect(car)
    try:
        connect.connection_complete(car=car, code=request.GET["code"])
    except connections.ConnectError as refusal:
        messages.error(request, str(refusal))
        return redirect(car)
    messages.success(
        request, _("Your car is connected: carshare can now lock it and read its status.")
    )
    # Tesla: commands need the owner's virtual key; Connect hands us the page to add it.
    if request.GET.get("virtual_key_url", "").startswith("https://"):
        messages.warning(
            request,
            _("Add carshare's virtual key in your Tesla app, or locking will not work: %(url)s")
            % {"url": request.GET["virtual_key_url"]},
        )
    return redirect(car)


@login_required
@require_POST
def car_disconnect(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    car = selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    connection = connections.connection_live_for_car(car_id=car.pk)
    if connection is not None and not is_confirmed(request):  # reconnecting takes a while
        return ask_to_confirm(
            request,
            question=_("Disconnect this car?"),
            detail=_(
                "carshare can no longer lock, unlock or read it, keys stop working and renters "
                "can't book it until you connect it again through your carmaker's account."
            ),
            yes=_("Yes, disconnect"),
            back_url=car.get_absolute_url(),
        )
    if connection is None:
        messages.info(request, _("This car is not connected."))
    else:
        connect.connection_disconnect(connection=connection)
        messages.success(
            request,
            _(
                "Disconnected: carshare can no longer lock or read this car, and it cannot be "
                "booked until you connect it again."
            ),
        )
    return redirect(car)


# --- Live status and commands -------------------------------------------------------------


@login_required
@require_GET
def car_status(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The status panel (polled by htmx), or the whole page; asks for a fresh read."""
    car = selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    return _car_page(request, car, is_owner=True, partial="car-status")
