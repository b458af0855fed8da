"""Parsing and validating car input, shared by the pages and the JSON API."""

from __future__ import annotations

import datetime
import zoneinfo
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.forms.renderers import DjangoTemplates
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from vehicles.makes import SUPPORTED_MAKES
from vehicles.models import Car, FuelType, Transmission, normalise_plate
from vehicles.photos import PhotoRefused, photo_check
from vehicles.selectors import car_fallback

MAX_PHOTO_BYTES = 8 * 1024 * 1024
TIME_ZONES = sorted(zoneinfo.available_timezones())
# Dates on the browse page are entered without a zone: they mean Amsterdam time, where the
# cars are (the help text says so). The API sends an offset and is taken at its word.
SEARCH_TIME_ZONE = zoneinfo.ZoneInfo("Europe/Amsterdam")
MAX_SEARCH_DAYS = 92


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultiplePhotoField(forms.ImageField):
    """Several photos in one input (Django's documented pattern for multiple uploads), each a
    JPEG, PNG or WebP within the pixel budget, judged from its header before Pillow opens it
    any further (vehicles/photos.py)."""

    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        items = [item for item in (data if isinstance(data, list | tuple) else [data]) if item]
        # The widget hands over an empty list when nothing was chosen, which ImageField's own
        # required check never sees: check it here.
        if self.required and not items:
            raise ValidationError(self.error_messages["required"], code="required")
        return [self._clean_one(item, initial) for item in items]

    def _clean_one(self, item: Any, initial: Any) -> Any:
        if hasattr(item, "seek"):  # an upload; anything else is refused by ImageField below
            try:
                photo_check(item)
            except PhotoRefused as refusal:
                raise ValidationError(str(refusal), code="invalid_image") from refusal
        return super().clean(item, initial)


class CarForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        choices=[(tz, tz) for tz in TIME_ZONES], initial="Europe/Amsterdam"
    )
    photos = MultiplePhotoField(label=_("Photos"), required=False)
    fallback = forms.CharField(
        label=_("If the car won't open remotely"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off"}),
        help_text=_(
            "Optional: a lockbox code, or where a spare key is left. Only a renter at the car "
            "sees it, during their trip and only if the remote unlock failed; every look is "
            "recorded."
        ),
    )

    class Meta:
        model = Car
        fields = [
            "make", "model", "year", "licence_plate", "vin", "seats", "fuel_type",
            "transmission", "description", "rules", "address", "city", "latitude", "longitude",
            "time_zone", "hourly_price", "daily_price", "min_notice_hours",
            "min_duration_hours", "max_duration_days", "instant_book", "unlock_at_start",
            "early_access_minutes",
        ]  # fmt: skip
        widgets = {
            "description": forms.Textarea(attrs={"rows": 4}),
            "rules": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args: Any, require_photos: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Left empty on the page (or out of an API call) means the default: no early access.
        self.fields["early_access_minutes"].required = False
        self.require_photos = require_photos
        if self.instance.pk and not self.is_bound:
            self.fields["fallback"].initial = car_fallback(self.instance)
        self.fields["photos"].help_text = _(
            "JPEG, PNG or WebP, up to 8 MB and %(mp)s megapixels each, %(total)s together; "
            "at most %(n)s per car."
        ) % {
            "mp": round(settings.CARSHARE_PHOTO_MAX_PIXELS / 1_000_000),
            "total": filesizeformat(settings.CARSHARE_MAX_REQUEST_BYTES),
            "n": settings.CARSHARE_MAX_PHOTOS_PER_CAR,
        }
        if require_photos:
            self.fields["photos"].required = True
            self.fields["photos"].error_messages["required"] = _("Add at least one photo.")
        self.fields["vin"].help_text = _("Optional: 17 characters, no I, O or Q.")

    def clean_licence_plate(self) -> str:
        plate = normalise_plate(self.cleaned_data["licence_plate"])
        if not 2 <= len(plate) <= 12:
            raise ValidationError(_("Enter the licence plate as it is on the car."))
        taken = Car.objects.filter(licence_plate=plate, is_listed=True)
        if self.instance.pk:
            if not self.instance.is_listed:
                # An unlisted car may share its plate (sold on and listed by the new owner);
                # its owner can still edit it, and relisting checks the plate again.
                return plate
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError(_("A listed car already has this licence plate."))
        return plate

    def clean_early_access_minutes(self) -> int:
        return self.cleaned_data.get("early_access_minutes") or 0

    def clean_vin(self) -> str:
        return self.cleaned_data["vin"].strip().upper()

    def clean_photos(self) -> list[Any]:
        photos = self.cleaned_data.get("photos") or []
        existing = self.instance.photos.count() if self.instance.pk else 0
        # Told here, next to the field; car_photos_add counts again under the car's lock.
        cap = settings.CARSHARE_MAX_PHOTOS_PER_CAR
        if existing + len(photos) > cap:
            raise ValidationError(_("A car can have at most %(n)s photos.") % {"n": cap})
        for photo in photos:
            if photo.size > MAX_PHOTO_BYTES:
                raise ValidationError(_("Each photo must be 8 MB or smaller."))
        return photos

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        min_hours = data.get("min_duration_hours")
        max_days = data.get("max_duration_days")
        if min_hours and max_days and min_hours > max_days * 24:
            self.add_error(
                "max_duration_days",
                _("The maximum trip must be at least as long as the minimum trip."),
            )
        hourly, daily = data.get("hourly_price"), data.get("daily_price")
        if hourly and daily and daily < hourly:
            self.add_error(
                "daily_price", _("The price per day cannot be below the price per hour.")
            )
        return data


class SearchDateTimeField(forms.DateTimeField):
    """A datetime-local input, or ISO 8601: with an offset as given, without one in Amsterdam
    time (a time that does not exist or happens twice there is refused with a reason)."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def to_python(self, value: Any) -> datetime.datetime | None:
        with timezone.override(SEARCH_TIME_ZONE):
            return super().to_python(value)


def _attrs_html(attrs: dict[str, Any]) -> str:
    """django/forms/widgets/attrs.html in Python."""
    return "".join(
        f" {conditional_escape(name)}"
        + ("" if value is True else f'="{conditional_escape(str(value))}"')
        for name, value in attrs.items()
        if value is not False
    )


class QuickSelect(forms.Select):
    """A <select> rendered in Python, to the byte what Django's select.html and
    select_option.html render: the browse page shows its filters on every request, and the
    template engine spent more time on the make list's options than on anything else in the
    form (bench/README.md, "Browse with availability")."""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        widget = self.get_context(name, value, attrs)["widget"]
        parts = [
            f'<select name="{conditional_escape(widget["name"])}"{_attrs_html(widget["attrs"])}>'
        ]
        for group_name, group_choices, _index in widget["optgroups"]:
            if group_name:
                parts.append(f'\n  <optgroup label="{conditional_escape(group_name)}">')
            for option in group_choices:
                parts.append(
                    f'\n  <option value="{conditional_escape(str(option["value"]))}"'
                    f"{_attrs_html(option['attrs'])}>{conditional_escape(option['label'])}</option>\n"
                )
            if group_name:
                parts.append("\n  </optgroup>")
        parts.append("\n</select>")
        return mark_safe("".join(parts))  # noqa: S308 (every value above is escaped)


# The rest of the search form's markup, rendered in Python the same way: each function is one
# of Django's form templates, to the byte (after the renderer's strip()), pinned by a test.


def _input_html(context: dict[str, Any]) -> str:
    """django/forms/widgets/input.html (text, search, number, datetime-local, checkbox)."""
    widget = context["widget"]
    value = widget["value"]
    value_html = "" if value is None else f' value="{conditional_escape(str(value))}"'
    return (
        f'<input type="{conditional_escape(widget["type"])}" '
        f'name="{conditional_escape(widget["name"])}"{value_html}{_attrs_html(widget["attrs"])}>'
    )


def _label_html(context: dict[str, Any]) -> str:
    """django/forms/label.html."""
    label = conditional_escape(context["label"])
    if not context["use_tag"]:
        return label
    tag = conditional_escape(context["tag"])
    return f"<{tag}{_attrs_html(context['attrs'] or {})}>{label}</{tag}>"


def _errors_html(context: dict[str, Any]) -> str:
    """django/forms/errors/list/default.html (ul.html)."""
    errors = context["errors"]
    if not errors:
        return ""
    field_id = getattr(errors, "field_id", None)
    id_html = f' id="{conditional_escape(field_id)}_error"' if field_id else ""
    items = "".join(f"<li>{conditional_escape(error)}</li>" for error in errors)
    return f'<ul class="{conditional_escape(context["error_class"])}"{id_html}>{items}</ul>'


def _field_html(context: dict[str, Any]) -> str | None:
    """django/forms/field.html, for a field without a fieldset (None: use the template)."""
    field = context["field"]
    if field.use_fieldset:
        return None
    label = field.label_tag() if field.label else ""
    help_html = ""
    if field.help_text:
        id_html = f' id="{conditional_escape(field.auto_id)}_helptext"' if field.auto_id else ""
        help_html = f'<div class="helptext"{id_html}>{field.help_text}</div>'
    return f"\n  {label}\n\n{help_html}\n{field.errors}\n{field}\n"


_QUICK_TEMPLATES = {
    "django/forms/widgets/text.html": _input_html,
    "django/forms/widgets/search.html": _input_html,
    "django/forms/widgets/number.html": _input_html,
    "django/forms/widgets/datetime.html": _input_html,
    "django/forms/widgets/checkbox.html": _input_html,
    "django/forms/label.html": _label_html,
    "django/forms/errors/list/default.html": _errors_html,
    "django/forms/field.html": _field_html,
}


class QuickFormRenderer(DjangoTemplates):
    """Django's form renderer, with the templates the search form uses done in Python (above):
    it renders fifteen fields on every browse request, and those templates were most of the
    form's cost. Any other template goes to Django as usual."""

    def render(self, template_name: str, context: dict[str, Any], request: Any = None) -> str:
        quick = _QUICK_TEMPLATES.get(template_name)
        html = quick(context) if quick is not None else None
        if html is None:
            return super().render(template_name, context, request=request)
        return html.strip()


class CarSearchForm(forms.Form):
    """The browse filters; the page and GET /api/v1/cars read the same query parameters."""

    default_renderer = QuickFormRenderer()
    SORTS = [
        ("price", _("Price: low to high")),
        ("-price", _("Price: high to low")),
        ("distance", _("Distance")),
        ("newest", _("Newest")),
    ]

    city = forms.CharField(
        label=_("City"), required=False, max_length=100, widget=forms.SearchInput
    )
    lat = forms.DecimalField(label=_("Latitude"), required=False, min_value=-90, max_value=90)
    lng = forms.DecimalField(label=_("Longitude"), required=False, min_value=-180, max_value=180)
    radius_km = forms.DecimalField(
        label=_("Within (km)"), required=False, min_value=Decimal("0.1"), max_value=1000
    )
    min_price = forms.DecimalField(
        label=_("Min price per hour"), required=False, min_value=0, max_digits=8, decimal_places=2
    )
    max_price = forms.DecimalField(
        label=_("Max price per hour"), required=False, min_value=0, max_digits=8, decimal_places=2
    )
    seats = forms.IntegerField(label=_("Seats at least"), required=False, min_value=1, max_value=9)
    fuel_type = forms.ChoiceField(
        label=_("Fuel"),
        required=False,
        choices=[("", _("Any")), *list(FuelType.choices)],
        widget=QuickSelect,
    )
    transmission = forms.ChoiceField(
        label=_("Transmission"),
        required=False,
        choices=[("", _("Any")), *list(Transmission.choices)],
        widget=QuickSelect,
    )
    instant_book = forms.BooleanField(label=_("Instant book only"), required=False)
    sort = forms.ChoiceField(label=_("Sort by"), required=False, choices=SORTS, widget=QuickSelect)
    make = forms.ChoiceField(
        label=_("Make"),
        required=False,
        choices=[("", _("Any")), *SUPPORTED_MAKES],
        widget=QuickSelect,
    )
    available_from = SearchDateTimeField(
        label=_("Free from"),
        required=False,
        help_text=_("Amsterdam time (Europe/Amsterdam)."),
    )
    available_to = SearchDateTimeField(
        label=_("Free until"),
        required=False,
        help_text=_("Amsterdam time (Europe/Amsterdam); at most 92 days after the start."),
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        self._clean_dates(data)
        lat, lng, radius = data.get("lat"), data.get("lng"), data.get("radius_km")
        if (lat is None) != (lng is None):
            raise ValidationError(_("Give both latitude and longitude, or neither."))
        if radius is not None and lat is None:
            self.add_error("radius_km", _("A radius needs a latitude and longitude."))
        if data.get("sort") == "distance" and lat is None:
            self.add_error("sort", _("Sorting by distance needs a latitude and longitude."))
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            self.add_error("max_price", _("The maximum price is below the minimum price."))
        return data

    def _clean_dates(self, data: dict[str, Any]) -> None:
        if self.has_error("available_from") or self.has_error("available_to"):
            return  # unreadable already, and said so next to the field
        start, end = data.get("available_from"), data.get("available_to")
        if start is None and end is not None:
            self.add_error("available_from", _("Give the start as well, or neither date."))
        elif start is not None and end is None:
            self.add_error("available_to", _("Give the end as well, or neither date."))
        elif start is not None and end is not None:
            if end <= start:
                self.add_error("available_to", _("The end must be after the start."))
            elif end - start > datetime.timedelta(days=MAX_SEARCH_DAYS):
                self.add_error(
                    "available_to",
                    _("Search at most %(days)s days at a time.") % {"days": MAX_SEARCH_DAYS},
                )


class CarPhotoDeleteForm(forms.Form):
    photo = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
