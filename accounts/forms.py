"""Parsing and validating the profile a user edits about themselves."""

from __future__ import annotations

import datetime
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.countries import LICENCE_COUNTRIES
from accounts.models import User

PHONE_CHARACTERS = re.compile(r"\+?[0-9][0-9 -]*")
LICENCE_NUMBER = re.compile(r"[A-Z0-9]{4,20}")
LICENCE_FIELDS = ("licence_number", "licence_country", "licence_expires_on")


def normalise_licence_number(value: str) -> str:
    """Licences print numbers with spaces and mixed case; we compare them without either."""
    return re.sub(r"\s+", "", value).upper()


class ProfileForm(forms.ModelForm):
    licence_country = forms.ChoiceField(
        label=_("Licence issued in"),
        required=False,
        choices=[("", _("Choose a country")), *LICENCE_COUNTRIES.items()],
        error_messages={"invalid_choice": _("Choose the country that issued your licence.")},
    )

    class Meta:
        model = User
        fields = ["name", "phone", *LICENCE_FIELDS]
        widgets = {
            "name": forms.TextInput(attrs={"autocomplete": "name"}),
            "phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
            "licence_number": forms.TextInput(
                attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}
            ),
            "licence_expires_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        }
        help_texts = {
            "phone": _("With the country code, for example +31 6 1234 5678."),
            "licence_number": _("As printed on your licence; spaces do not matter."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Lets the date picker grey out past days; clean_licence_expires_on() still decides.
        self.fields["licence_expires_on"].widget.attrs["min"] = timezone.localdate().isoformat()

    def clean_phone(self) -> str:
        phone = " ".join(self.cleaned_data["phone"].split())
        if not phone:
            return ""
        digits = sum(character.isdigit() for character in phone)
        if not PHONE_CHARACTERS.fullmatch(phone) or not 6 <= digits <= 20:
            raise ValidationError(
                _("Enter 6 to 20 digits; spaces, dashes and a leading + are fine."),
                code="invalid_phone",
            )
        return phone

    def clean_licence_number(self) -> str:
        number = normalise_licence_number(self.cleaned_data["licence_number"])
        if number and not LICENCE_NUMBER.fullmatch(number):
            raise ValidationError(
                _("Enter the licence number as printed: 4 to 20 letters and digits."),
                code="invalid_licence_number",
            )
        return number

    def clean_licence_expires_on(self) -> datetime.date | None:
        expires_on: datetime.date | None = self.cleaned_data["licence_expires_on"]
        if expires_on and expires_on < timezone.localdate():
            raise ValidationError(
                _("This licence has expired; enter the date of a licence that is still valid."),
                code="licence_expired",
            )
        return expires_on

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        # A field that failed its own check is already explained; don't call it missing too.
        if any(name in self.errors for name in LICENCE_FIELDS):
            return cleaned
        given = [name for name in LICENCE_FIELDS if cleaned.get(name)]
        if given and len(given) < len(LICENCE_FIELDS):
            for name in LICENCE_FIELDS:
                if name not in given:
                    self.add_error(
                        name,
                        ValidationError(
                            _("Give the licence number, country and expiry date together."),
                            code="licence_incomplete",
                        ),
                    )
        return cleaned
