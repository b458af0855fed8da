import copy

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import forms, selectors, services
from accounts.countries import country_name
from accounts.models import User
from carshare.http import AuthedHtmxRequest


def _licence_state(user: User) -> str:
    """valid, expired or missing (which includes half-filled details from before validation)."""
    if user.has_valid_licence():
        return "valid"
    if user.licence_expires_on and user.licence_expires_on < timezone.localdate():
        return "expired"
    return "missing"


@login_required
def profile(request: AuthedHtmxRequest) -> HttpResponse:
    user = request.user
    # A ModelForm writes what it cleaned onto its instance, even when invalid; a copy keeps
    # request.user as saved, so the page beside the errors still shows the stored licence.
    form = forms.ProfileForm(request.POST or None, instance=copy.copy(user))
    if request.method == "POST" and form.is_valid():
        services.user_profile_update(user=user, **form.cleaned_data)
        messages.success(request, _("Your profile is saved."))
        return redirect("accounts:profile")
    context = {
        "form": form,
        "primary_email": selectors.primary_email_for_user(user=user),
        "licence_state": _licence_state(user),
        "licence_country_name": country_name(user.licence_country),
    }
    return render(request, "accounts/profile.html", context)
