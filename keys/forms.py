"""Parsing and validating key input from the pages: sharing a trip key, issuing a service key,
the owner's unlock with override.

Times are typed into `<input type="datetime-local">`, a wall-clock time with no zone. They mean
the time where the car is, so each form is built for one car and reads them in the car's zone
(a time the clocks skip or repeat there is refused with a reason); what leaves is aware.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from carshare import times


class KeyShareForm(times.CarPeriodForm):
    """The renter gives a co-driver a key; empty times mean the whole trip."""

    email = forms.EmailField(label=_("Co-driver's email"), max_length=254)
    starts_at = times.CarLocalDateTimeField(label=_("From (optional)"), required=False)
    ends_at = times.CarLocalDateTimeField(label=_("Until (optional)"), required=False)


class ServiceKeyForm(times.CarPeriodForm):
    """The owner gives a technician a key for a window."""

    email = forms.EmailField(label=_("Technician's email"), max_length=254)
    starts_at = times.CarLocalDateTimeField(label=_("From"))
    ends_at = times.CarLocalDateTimeField(label=_("Until"))
    note = forms.CharField(
        label=_("Note (optional)"),
        required=False,
        max_length=200,
        help_text=_("What it is for, e.g. cleaning or new tyres; the technician sees it."),
    )


class OwnerUnlockForm(forms.Form):
    """The owner's unlock; during someone else's trip only with the override and a reason."""

    override = forms.BooleanField(label=_("Unlock anyway"), required=False)
    note = forms.CharField(
        label=_("Reason (the key holder will see it)"),
        required=False,
        max_length=200,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("override") and not (data.get("note") or "").strip():
            self.add_error("note", _("Say why you unlock during their trip."))
        return data
