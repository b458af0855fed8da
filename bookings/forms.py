"""Parsing and validating booking input from the pages.

Times are typed into `<input type="datetime-local">`, which sends a wall-clock time with no
zone. They mean the time where the car is (the renter picks it up there), so each form is built
for one car and reads them in the car's zone; what leaves the form is UTC.
"""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from bookings.models import BlockReason
from carshare import times

# The car's zone and its local-time field are shared with the keys app (carshare.times).
car_zone = times.car_zone
EARLIEST_YEAR, LATEST_YEAR = times.EARLIEST_YEAR, times.LATEST_YEAR


class _PeriodForm(times.CarPeriodForm):
    """Start and end in `car`'s time zone."""

    starts_at = times.CarLocalDateTimeField(label=_("Start"))
    ends_at = times.CarLocalDateTimeField(label=_("End"))


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
