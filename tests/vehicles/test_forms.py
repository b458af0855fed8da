"""One test per rule of CarForm (and the model rules it runs) and of CarSearchForm."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.datastructures import MultiValueDict

from tests.factories import CarFactory, make_image_upload
from tests.vehicles.helpers import car_form_data
from vehicles import services
from vehicles.forms import CarForm, CarSearchForm
from vehicles.models import Car

pytestmark = pytest.mark.django_db


def bound_form(
    photos: list[Any] | None = None, instance: Car | None = None, **overrides: Any
) -> CarForm:
    files = MultiValueDict({"photos": [make_image_upload()] if photos is None else photos})
    return CarForm(
        car_form_data(**overrides), files, instance=instance, require_photos=instance is None
    )


def test_valid_input_passes():
    form = bound_form()
    assert form.is_valid(), form.errors


def test_year_before_2015_is_refused_with_the_reason():
    form = bound_form(year="2014")
    assert not form.is_valid()
    assert form.errors["year"] == ["carshare can only connect cars from 2015 or newer."]


def test_plate_is_normalised():
    form = bound_form(licence_plate="ab-12 cd")
    assert form.is_valid(), form.errors
    assert form.cleaned_data["licence_plate"] == "AB12CD"


def test_plate_of_a_listed_car_is_refused():
    CarFactory(licence_plate="AB12CD")
    form = bound_form(licence_plate="ab 12 cd")
    assert not form.is_valid()
    assert form.errors["licence_plate"] == ["A listed car already has this licence plate."]


def test_plate_of_an_unlisted_car_can_be_reused():
    services.car_unlist(car=CarFactory(licence_plate="AB12CD"))
    assert bound_form(licence_plate="AB-12-CD").is_valid()


def test_unlisted_car_sharing_a_plate_can_still_be_edited(owner):
    mine = services.car_unlist(car=CarFactory(owner=owner, licence_plate="AB12CD"))
    CarFactory(licence_plate="AB12CD")  # listed by its new owner
    form = bound_form(photos=[], instance=mine, licence_plate="AB12CD", model="Polo")
    assert form.is_valid(), form.errors


def test_editing_keeps_its_own_plate(car):
    form = bound_form(photos=[], instance=car, licence_plate=car.licence_plate)
    assert form.is_valid(), form.errors


@pytest.mark.parametrize(
    "vin", ["1HGCM82633A00435", "1HGCM82633A0043521", "1HGCM82633A00435I", "OHGCM82633A004352"]
)
def test_vin_needs_17_characters_without_i_o_q(vin):
    form = bound_form(vin=vin)
    assert not form.is_valid()
    assert "vin" in form.errors


def test_vin_is_optional_and_upper_cased():
    assert bound_form(vin="").is_valid()
    form = bound_form(vin="1hgcm82633a004352")
    assert form.is_valid(), form.errors
    assert form.cleaned_data["vin"] == "1HGCM82633A004352"


@pytest.mark.parametrize("seats", ["0", "10"])
def test_seats_between_1_and_9(seats):
    form = bound_form(seats=seats)
    assert not form.is_valid()
    assert "seats" in form.errors


@pytest.mark.parametrize("field", ["hourly_price", "daily_price"])
def test_prices_must_be_positive(field):
    form = bound_form(**{field: "0"})
    assert not form.is_valid()
    assert field in form.errors


def test_daily_price_not_below_hourly_price():
    form = bound_form(hourly_price="20.00", daily_price="19.99")
    assert not form.is_valid()
    assert form.errors["daily_price"] == ["The price per day cannot be below the price per hour."]


def test_max_duration_not_below_min_duration():
    form = bound_form(min_duration_hours="48", max_duration_days="1")
    assert not form.is_valid()
    assert form.errors["max_duration_days"] == [
        "The maximum trip must be at least as long as the minimum trip."
    ]


def test_a_new_car_needs_a_photo():
    form = bound_form(photos=[])
    assert not form.is_valid()
    assert form.errors["photos"] == ["Add at least one photo."]


def test_editing_needs_no_new_photo(car):
    assert bound_form(photos=[], instance=car).is_valid()


def test_at_most_ten_photos():
    form = bound_form(photos=[make_image_upload(f"{n}.jpg") for n in range(10 + 1)])
    assert not form.is_valid()
    assert form.errors["photos"] == ["A car can have at most 10 photos."]


def test_at_most_ten_photos_counts_the_existing_ones(car):
    services.car_photos_add(car=car, uploads=[make_image_upload() for _ in range(10 - 1)])
    form = bound_form(photos=[make_image_upload(), make_image_upload()], instance=car)
    assert not form.is_valid()
    assert "photos" in form.errors


def test_non_image_upload_is_refused():
    fake = SimpleUploadedFile("car.jpg", b"%PDF-1.4 not a photo", content_type="image/jpeg")
    form = bound_form(photos=[fake])
    assert not form.is_valid()
    assert "valid image" in form.errors["photos"][0]


def test_time_zone_must_be_real():
    form = bound_form(time_zone="Europe/Atlantis")
    assert not form.is_valid()
    assert "time_zone" in form.errors
    assert bound_form(time_zone="Europe/Lisbon").is_valid()


def test_make_must_be_supported():
    form = bound_form(make="TRABANT")
    assert not form.is_valid()
    assert "make" in form.errors


# --- CarSearchForm ---------------------------------------------------------------------------


def test_search_without_filters_is_valid():
    assert CarSearchForm({}).is_valid()


def test_search_latitude_needs_longitude():
    form = CarSearchForm({"lat": "52.37"})
    assert not form.is_valid()
    assert form.non_field_errors() == ["Give both latitude and longitude, or neither."]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": "abc", "lng": "4.9"}, "lat"),
        ({"lat": "91", "lng": "4.9"}, "lat"),
        ({"radius_km": "5"}, "radius_km"),
        ({"sort": "distance"}, "sort"),
        ({"min_price": "20", "max_price": "10"}, "max_price"),
        ({"seats": "12"}, "seats"),
        ({"make": "TRABANT"}, "make"),
    ],
)
def test_search_rejects_bad_filters(params, field):
    form = CarSearchForm(params)
    assert not form.is_valid()
    assert field in form.errors


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"make": "TESLA", "fuel_type": "electric", "transmission": "manual", "sort": "-price"},
        {"make": '<b>"x"</b>', "sort": "distance"},  # invalid, echoed back escaped
    ],
)
def test_search_form_selects_render_as_djangos_select(data: dict[str, str]) -> None:
    """The search form's selects are rendered in Python for speed (QuickSelect): the HTML must
    be what Django's own Select templates make, errors and aria attributes included."""
    from django import forms

    from vehicles.forms import QuickSelect

    form = CarSearchForm(data)
    form.is_valid()
    for name in ("make", "fuel_type", "transmission", "sort"):
        widget = form.fields[name].widget
        assert isinstance(widget, QuickSelect)
        quick = str(form[name].as_field_group())
        widget.__class__ = forms.Select
        try:
            django_html = str(form[name].as_field_group())
        finally:
            widget.__class__ = QuickSelect
        assert quick == django_html


@pytest.mark.parametrize(
    "data",
    [
        {},
        {
            "city": "Amsterdam",
            "available_from": "2030-05-01T10:00",
            "available_to": "2030-05-02T10:00",
        },
        {"city": 'Den "Haag" <b>', "instant_book": "on", "seats": "7", "min_price": "3.5"},
        {"lat": "abc", "lng": "4.89", "radius_km": "0", "seats": "12", "max_price": "-1"},
        {"lat": "52.37"},  # a form-wide error
        {"available_from": "2030-05-01T10:00", "available_to": "2030-05-01T09:00", "sort": "x"},
    ],
)
@pytest.mark.parametrize("bound", [True, False])
def test_search_form_renders_as_djangos_templates(data: dict[str, str], bound: bool) -> None:
    """The search form renders its fields through QuickFormRenderer (Python, for speed): every
    field group, label, input, help text and error list must be what Django's own templates
    make."""
    from django.forms.renderers import DjangoTemplates

    quick = CarSearchForm(data) if bound else CarSearchForm()
    django = (
        CarSearchForm(data, renderer=DjangoTemplates())
        if bound
        else CarSearchForm(renderer=DjangoTemplates())
    )
    quick.is_valid()
    django.is_valid()
    for name in quick.fields:
        assert str(quick[name].as_field_group()) == str(django[name].as_field_group()), name
        assert str(quick[name].label_tag()) == str(django[name].label_tag()), name
        assert str(quick[name].errors) == str(django[name].errors), name
    assert str(quick.non_field_errors()) == str(django.non_field_errors())
    assert str(quick) == str(django)  # the whole form, through Django's div.html
