"""Parsing and validating booking input from the pages.

Times are typed into `<input type="datetime-local">`, which sends a wall-clock time with no
zone. They mean the time where the car is (the renter picks it up there), so each form is built
for one car and reads them in the car's zone; what leaves the form is UTC.
"""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from bookings.models import BlockReason
from vehicles.models import Car

UTC = datetime.UTC
# What browsers send for datetime-local (seconds appear when a step below a minute is used),
# and the plain form a person types when the browser shows a text box.
INPUT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
WIDGET_FORMAT = "%Y-%m-%dT%H:%M"
# Far enough for any real trip, and keeps arithmetic (a buffer added to the end, a zone
# conversion) away from datetime's limits, where year 9999 would overflow into a 500.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100


def car_zone(car: Car) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(car.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # a zone removed from tzdata since
        return zoneinfo.ZoneInfo("UTC")


class CarLocalDateTimeField(forms.DateTimeField):
    """A wall-clock time in the car's zone in, an aware UTC datetime out."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=WIDGET_FORMAT)

    def __init__(self, *, zone: zoneinfo.ZoneInfo | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("input_formats", INPUT_FORMATS)
        super().__init__(**kwargs)
        self.zone = zone or zoneinfo.ZoneInfo("UTC")

    def to_python(self, value: Any) -> datetime.datetime | None:  # type: ignore[override]
        if value in self.empty_values:
            return None
        if isinstance(value, datetime.datetime):
            if value.tzinfo is not None:
                return value.astimezone(UTC)
            naive = value
        else:
            naive = self._parse(str(value).strip())
        if not EARLIEST_YEAR <= naive.year <= LATEST_YEAR:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        local = naive.replace(tzinfo=self.zone)  # fold=0: the first of a repeated autumn hour
        # A spring-forward gap: 02:30 does not exist that night. Say so instead of silently
        # moving the trip by an hour.
        if local.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) != naive:
            raise ValidationError(
                _("%(time)s does not exist in %(zone)s: the clocks change then. Pick another time.")
                % {"time": naive.strftime("%H:%M"), "zone": self.zone.key},
                code="nonexistent",
            )
        return local.astimezone(UTC)

    def _parse(self, text: str) -> datetime.datetime:
        for fmt in self.input_formats:
            try:
                return datetime.datetime.strptime(text, fmt)  # noqa: DTZ007 (made aware above)
            except ValueError:
                continue
        raise ValidationError(self.error_messages["invalid"], code="invalid")

    def prepare_value(self, value: Any) -> Any:
        # Shown back in the car's zone, as the renter typed it.
        if isinstance(value, datetime.datetime) and value.tzinfo is not None:
            return value.astimezone(self.zone).replace(tzinfo=None)
        return value


class _PeriodForm(forms.Form):
    """Start and end in `car`'s time zone."""

    starts_at = CarLocalDateTimeField(label=_("Start"))
    ends_at = CarLocalDateTimeField(label=_("End"))

    def __init__(self, *args: Any, car: Car, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.car = car
        self.zone = car_zone(car)
        for name in ("starts_at", "ends_at"):
            field = cast(CarLocalDateTimeField, self.fields[name])
            field.zone = self.zone
            field.help_text = _("Local time in %(zone)s") % {"zone": self.zone.key}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        starts_at, ends_at = data.get("starts_at"), data.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", _("The end must be after the start."))
        return data


class BookingPeriodForm(_PeriodForm):
    """The renter's trip on the car page (quote and request)."""


class BookingReasonForm(forms.Form):
    """An optional reason, for declining and cancelling; it is shown to the other side."""

    reason = forms.CharField(
        label=_("Reason (optional)"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class BlockForm(_PeriodForm):
    """The owner keeps the car for a while (maintenance, personal use)."""

    reason = forms.ChoiceField(label=_("Why"), choices=BlockReason.choices)
    note = forms.CharField(label=_("Note (only you see it)"), required=False, max_length=200)
