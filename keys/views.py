"""Key pages: my keys, a key's page (Unlock and Lock with live progress, the car's live status
for an open key, sharing a trip key, the history), and the owner's "Keys and access" panel of a
car (service keys, every key, an unlock with override, the audit log).

The key panel is shared by the key's page and the renter's trip page (bookings renders it with
key_panel_context), so its regions live in keys/_key_panel.html rather than inside one page: an
htmx request gets that region, a normal one is redirected to the key's page (POST/redirect/GET)
or gets the page with the form errors. Refusals (KeyRefused) are shown, never a 500.
"""

from __future__ import annotations

import datetime
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from accounts.models import User
from carshare.http import AuthedHtmxRequest, ask_to_confirm, is_confirmed, render_page_or_partial
from keys import commands as key_commands
from keys import grants, ladder, selectors, use
from keys.errors import KeyRefused
from keys.forms import KeyShareForm, OwnerUnlockForm, ServiceKeyForm
from keys.models import (
    AuditVia,
    DigitalKey,
    KeyKind,
    KeyStatus,
    StartUnlockStatus,
    SupportCase,
)
from vehicles import commands as vehicle_commands
from vehicles import selectors as car_selectors
from vehicles import selectors as vehicle_selectors
from vehicles.models import Car, CommandAction, CommandStatus, VehicleCommand

KEY_PAGE = "keys/key_detail.html"
KEY_PANEL = "keys/_key_panel.html"
COMMAND_FRAGMENT = "keys/_command.html"
CAR_KEYS_PAGE = "keys/car_keys.html"
# The one event for every command a person asks of a car: asked for, or finished. The key page's
# live status, the owner's car page (its status and command history) and the audit log listen.
COMMAND_EVENT = "car-command-changed"
# Before its window opens, the panel looks again every 30 s (so the buttons wake up on time), but
# only this close to the opening: a page left open days ahead need not poll.
PANEL_REFRESH_AHEAD = datetime.timedelta(hours=1)
CAR_KEYS_SHOWN = 20
AUDIT_SHOWN = 50


def _fragment(request: AuthedHtmxRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])  # a cached fragment must never pose as a page
    return response


# --- My keys ----------------------------------------------------------------------------------


@login_required
@require_GET
def key_list(request: AuthedHtmxRequest) -> HttpResponse:
    groups = selectors.keys_of_holder(user=request.user)
    context = {**groups, "owned": list(selectors.keys_of_owner(user=request.user))}
    return render(request, "keys/key_list.html", context)


# --- A key's page and its panel -----------------------------------------------------------------


def key_panel_context(*, user: User, key: DigitalKey) -> dict[str, Any]:
    """What the key panel shows to `user` (its holder gets the buttons): the trip page renders it
    too. The reasons come from the same rule the services apply when a button is pressed."""
    now = timezone.now()
    is_holder = key.holder_id == user.pk
    unlock_refusal = key_commands.key_refusal(key=key, action=CommandAction.UNLOCK, now=now)
    lock_refusal = key_commands.key_refusal(key=key, action=CommandAction.LOCK, now=now)
    is_open = lock_refusal is None
    shares_trip = is_holder and key.kind == KeyKind.TRIP
    context: dict[str, Any] = {
        "key": key,
        "car": key.car,
        "is_holder": is_holder,
        "unlock_refusal": str(unlock_refusal or ""),
        "lock_refusal": str(lock_refusal or ""),
        "overrides": list(selectors.overrides_during(key=key)),
        "refresh_panel": is_holder
        and key.is_live
        and lock_refusal is not None
        and key.valid_from - now <= PANEL_REFRESH_AHEAD,
        "can_share": shares_trip and key.is_live and key.valid_until > now,
        "shared_keys": list(selectors.shared_keys_of(key=key)) if shares_trip else [],
        "share_form": KeyShareForm(car=key.car),
        "command": None,
        "live": is_holder and is_open,
    }
    if is_holder:
        # A press answered by a redirect (no JavaScript): its progress, until it is done; a
        # press that joined a command already on its way (someone else's) follows that one.
        pending = [c for c in vehicle_selectors.commands_for_car(car_id=key.car_id) if c.is_pending]
        context["command"] = next(
            (c for c in pending if c.key_id == key.pk and c.actor_id == user.pk), None
        ) or next((c for c in pending if c.joined_by.filter(pk=user.pk).exists()), None)
    if context["live"]:
        context |= _live_status_context(user, key)
    if is_holder:
        context |= start_context(key=key, now=now)
    return context


# How often the start region asks again while the car is being reached, in seconds.
START_POLL_S = 3


def start_context(*, key: DigitalKey, now: datetime.datetime) -> dict[str, Any]:
    """The trip's start unlock as its holder sees it: the attempts while carshare is reaching the
    car, what the car said, and "I'm at the car" once the trip has started."""
    start = ladder.start_unlock_of(key=key)
    if start is None or start.status == StartUnlockStatus.CANCELLED:
        return {"start": None}
    command = start.command
    next_in = None
    if command is not None and command.status == CommandStatus.QUEUED and command.attempts:
        due = command.next_attempt_at
        next_in = None if due is None else max(0, round((due - now).total_seconds()))
    started = start.starts_at <= now
    return {
        "start": start,
        "start_command": command,
        "start_next_in": next_in,
        "start_trying": start.status == StartUnlockStatus.PENDING and started,
        "start_poll": start.status == StartUnlockStatus.PENDING and started,
        "start_at_car": ladder.at_car_offered(key=key, start=start, now=now),
        "start_poll_s": START_POLL_S,
        "start_fallback": ladder.fallback_offered(key=key, start=start, now=now),
        "start_case": start.status != StartUnlockStatus.OPENED
        and SupportCase.objects.filter(start_unlock=start).exists(),
    }


def _live_status_context(user: User, key: DigitalKey) -> dict[str, Any]:
    """The car's last known status for a holder whose key is open now (else nothing)."""
    try:
        car = selectors.car_for_status_viewer(user=user, public_id=key.car.public_id)
    except Http404:  # the window closed (or has not been opened by the key clock yet)
        return {"live": False}
    # Someone is looking: have the worker read the car (at most once per interval).
    vehicle_commands.vehicle_status_request_refresh(car_id=car.pk)
    return {
        "live": True,
        "vehicle_status": vehicle_selectors.vehicle_status_for_car(car_id=car.pk),
        "doors_open_reported": car_selectors.lock_refused_door_open(car_id=car.pk),
    }


@login_required
@require_GET
def key_detail(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The key's page; for htmx its panel (fetched again when the trip changes, and shortly
    before the window opens)."""
    key = selectors.key_for_viewer(user=request.user, public_id=public_id)  # or 404
    if request.htmx:
        context = key_panel_context(user=request.user, key=key)
        return _fragment(request, f"{KEY_PANEL}#key-panel", context)
    return _key_page(request, key)


def _key_page(
    request: AuthedHtmxRequest, key: DigitalKey, extra: dict[str, Any] | None = None
) -> HttpResponse:
    events = [
        {
            "event": event,
            "from_label": _status_label(event.old_status),
            "to_label": _status_label(event.new_status),
        }
        for event in key.events.select_related("actor")
    ]
    context = key_panel_context(user=request.user, key=key) | {
        "events": events,
        "can_revoke": _may_revoke(key, request.user),
    }
    response = render(request, KEY_PAGE, context | (extra or {}))
    patch_vary_headers(response, ["HX-Request"])
    return response


def _status_label(status: str) -> str:
    return str(KeyStatus(status).label) if status in KeyStatus.values else status


def _may_revoke(key: DigitalKey, user: User) -> bool:
    """Whether to offer Revoke (keys.grants.key_revoke decides when it is pressed)."""
    if not key.is_live:
        return False
    if key.kind == KeyKind.SHARED:
        return user.pk in (key.holder_id, key.parent.holder_id if key.parent else None)
    return key.kind == KeyKind.SERVICE and key.car.owner_id == user.pk


@login_required
@require_GET
def key_car_status(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The car's live status for the key's holder, polled every 10 s while the key is open."""
    key = selectors.key_for_holder(user=request.user, public_id=public_id)  # or 404
    if not request.htmx:
        return redirect(key)
    now = timezone.now()
    context: dict[str, Any] = {"key": key, "car": key.car, "live": False}
    if key_commands.key_refusal(key=key, action=CommandAction.LOCK, now=now) is None:
        context |= _live_status_context(request.user, key)
    # Once the window has closed the region comes back without its trigger: polling stops.
    return _fragment(request, f"{KEY_PANEL}#key-live", context)


# --- Unlock and Lock ----------------------------------------------------------------------------


@login_required
@require_POST
def key_unlock(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    return _key_command(request, public_id, CommandAction.UNLOCK)


@login_required
@require_POST
def key_lock(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    return _key_command(request, public_id, CommandAction.LOCK)


def _key_command(request: AuthedHtmxRequest, public_id: UUID, action: str) -> HttpResponse:
    """Records the command and answers at once with its progress; the worker does the rest."""
    key = selectors.key_for_holder(user=request.user, public_id=public_id)  # or 404
    try:
        command = use.car_command_request(key=key, user=request.user, action=action, via="web")
    except KeyRefused as refusal:  # outside the window, rate limited, car not connected, ...
        if not request.htmx:
            messages.error(request, str(refusal))
            return redirect(key)
        # 200: htmx swaps only 2xx, and the error belongs where the progress would be.
        return _fragment(
            request, COMMAND_FRAGMENT, {"command": None, "command_error": str(refusal)}
        )
    if not request.htmx:
        if action == CommandAction.UNLOCK:
            messages.info(request, _("Unlocking the car: follow it below."))
        else:
            messages.info(request, _("Locking the car: follow it below."))
        return redirect(key)
    response = _fragment(request, COMMAND_FRAGMENT, {"command": command})
    return _command_changed(response)


@login_required
@require_GET
def key_start_status(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The trip's start unlock (attempts, what the car said, the ladder), polled while carshare
    is reaching the car; the key's page without htmx."""
    key = selectors.key_for_holder(user=request.user, public_id=public_id)  # or 404
    if not request.htmx:
        return redirect(key)
    return _start_fragment(request, key)


def _start_fragment(
    request: AuthedHtmxRequest, key: DigitalKey, extra: dict[str, Any] | None = None
) -> HttpResponse:
    context = {"key": key, "car": key.car, "is_holder": True}
    context |= start_context(key=key, now=timezone.now()) | (extra or {})
    return _fragment(request, f"{KEY_PANEL}#key-start", context)


@login_required
@require_POST
def key_at_car(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """ "I'm at the car and it won't open": carshare tries again at once and asks the owner."""
    key = selectors.key_for_holder(user=request.user, public_id=public_id)  # or 404
    try:
        done = ladder.at_car(key=key, user=request.user, via="web")
    except KeyRefused as refusal:
        if not request.htmx:
            messages.error(request, str(refusal))
            return redirect(key)
        return _start_fragment(request, key, {"start_error": str(refusal)})
    words = ladder.at_car_words(done, owner=key.car.owner)
    if not request.htmx:
        messages.info(request, words)
        return redirect(key)
    return _command_changed(_start_fragment(request, key, {"start_message": words}))


@login_required
@require_POST
def key_fallback(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The car's fallback (a lockbox code, where a key is left) for the holder at a car that
    would not open: shown in place, never in the polled region, and every look audited."""
    key = selectors.key_for_holder(user=request.user, public_id=public_id)  # or 404
    try:
        text = ladder.fallback_reveal(key=key, user=request.user, via="web")
    except KeyRefused as refusal:
        if not request.htmx:
            messages.error(request, str(refusal))
            return redirect(key)
        return _fragment(
            request, f"{KEY_PANEL}#key-fallback", {"key": key, "fallback_error": str(refusal)}
        )
    if not request.htmx:
        # No JavaScript: the key page shows it once, from the session's message.
        messages.info(request, _("The owner's fallback: %(text)s") % {"text": text})
        return redirect(key)
    return _fragment(request, f"{KEY_PANEL}#key-fallback", {"key": key, "fallback_text": text})


@login_required
def start_rescue(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The owner's one-tap unlock for a renter at the car (linked from the email): a page with
    one button; the unlock is an override, recorded and shown to the renter."""
    key = get_object_or_404(
        DigitalKey.objects.select_related("car", "holder"),
        public_id=public_id,
        car__owner=request.user,
        kind=KeyKind.TRIP,
    )
    renter = key.holder.get_full_name() or key.holder.email
    if request.method == "POST" and is_confirmed(request):
        try:
            use.car_command_request(
                car=key.car,
                user=request.user,
                action=CommandAction.UNLOCK,
                override=True,
                note=_("%(name)s was at the car and it would not open.") % {"name": renter},
                via="web",
            )
        except KeyRefused as refusal:
            messages.error(request, str(refusal))
        else:
            messages.info(
                request, _("Unlocking your car for %(name)s: follow it below.") % {"name": renter}
            )
        return redirect("keys:car_keys", public_id=key.car.public_id)
    return ask_to_confirm(
        request,
        question=_("Unlock your %(car)s for %(name)s now?")
        % {"car": key.car.title, "name": renter},
        yes=_("Unlock now"),
        back_url=key.car.get_absolute_url(),
        detail=_(
            "%(name)s is at the car and it will not open. The unlock is recorded and shown to them."
        )
        % {"name": renter},
    )


def _command_changed(response: HttpResponse) -> HttpResponse:
    return trigger_client_event(response, COMMAND_EVENT)


@login_required
@require_GET
def key_command_status(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """A command's progress, polled every 2 s while it is pending, then no more. Only the person
    who asked for it and the car's owner may follow it."""
    command = vehicle_selectors.command_for_owner(user=request.user, public_id=public_id)
    if not request.htmx:
        return redirect(_command_home(command, request.user))
    response = _fragment(request, COMMAND_FRAGMENT, {"command": command})
    if not command.is_pending:
        _command_changed(response)
    return response


def _command_home(command: VehicleCommand, user: User) -> str:
    if command.key_id is not None:
        key = DigitalKey.objects.filter(pk=command.key_id, holder=user).first()
        if key is not None:
            return key.get_absolute_url()
    return command.car.get_absolute_url()


# --- Sharing and revoking -------------------------------------------------------------------


@login_required
@require_POST
def key_share(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The renter gives a co-driver a key for all or part of the trip."""
    key = selectors.key_for_holder(user=request.user, public_id=public_id)  # or 404
    form = KeyShareForm(request.POST, car=key.car)
    share_message = ""
    if form.is_valid():
        data = form.cleaned_data
        try:
            grants.key_share_offer(
                key=key,
                user=request.user,
                email=data["email"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
            )
        except KeyRefused as refusal:  # the window, a full trip, their own email
            field = "email" if refusal.code == "not_eligible" else None
            form.add_error(field, str(refusal))
        else:
            # The same words whether a key was given or not: see grants.share_answer().
            share_message = grants.share_answer(email=data["email"])
            if not request.htmx:
                messages.success(request, share_message)
                return redirect(key)
            form = KeyShareForm(car=key.car)
    if not request.htmx:
        return _key_page(request, key, {"share_form": form})  # 200 with the errors
    return _sharing_fragment(request, key, form=form, message=share_message)


def _sharing_fragment(
    request: AuthedHtmxRequest,
    key: DigitalKey,
    *,
    form: KeyShareForm | None = None,
    message: str = "",
    error: str = "",
) -> HttpResponse:
    context = key_panel_context(user=request.user, key=key) | {
        "share_message": message,
        "share_error": error,
    }
    if form is not None:
        context["share_form"] = form
    return _fragment(request, f"{KEY_PANEL}#key-sharing", context)


@login_required
@require_POST
def key_revoke(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """Take a key back: the renter a co-driver's, the co-driver their own, the owner a
    technician's. Answers with the list it was pressed in."""
    key = selectors.key_for_viewer(user=request.user, public_id=public_id)  # or 404
    sharer = key.kind == KeyKind.SHARED and key.parent and key.parent.holder_id == request.user.pk
    service_owner = key.kind == KeyKind.SERVICE and key.car.owner_id == request.user.pk
    if not is_confirmed(request):  # one tap must not take a key away: ask first
        return _confirm_revoke(request, key, sharer=bool(sharer), service_owner=service_owner)
    error, done = "", ""
    try:
        grants.key_revoke(key=key, user=request.user)
    except KeyRefused as refusal:  # not theirs to revoke, or already over
        error = str(refusal)
    else:
        done = _("Key revoked: it no longer opens the car.")
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, done)
        if sharer and key.parent:
            return redirect(key.parent)
        if service_owner:
            return redirect("keys:car_keys", public_id=key.car.public_id)
        return redirect(key)
    if sharer and key.parent:
        return _sharing_fragment(request, key.parent, message=done, error=error)
    if service_owner:
        return _car_keys_response(request, key.car, {"keys_message": done, "keys_error": error})
    return HttpResponseClientRedirect(key.get_absolute_url())


def _confirm_revoke(
    request: AuthedHtmxRequest, key: DigitalKey, *, sharer: bool, service_owner: bool
) -> HttpResponse:
    """The question before Revoke (or Give the key back), answered where it was pressed."""
    name = key.holder.get_full_name() or key.holder.email
    if key.holder_id == request.user.pk:
        question, yes = _("Give the key back?"), _("Yes, give it back")
        detail = _("It stops opening the car at once. Only the renter can share it with you again.")
    else:
        question, yes = _("Revoke %(name)s's key?") % {"name": name}, _("Yes, revoke it")
        detail = _(
            "It stops opening the car at once; they are told by email. This can't be undone."
        )
    if sharer and key.parent:
        back, target = key.parent.get_absolute_url(), "#key-sharing"
    elif service_owner:
        back, target = key.car.get_absolute_url(), "#car-keys"
    else:
        back, target = key.get_absolute_url(), ""
    return ask_to_confirm(
        request, question=question, detail=detail, yes=yes, back_url=back, target=target
    )


# --- The owner's "Keys and access" panel of a car -----------------------------------------------


@login_required
@require_GET
def car_keys(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """Loaded into the owner's car page by htmx; a page of its own without JavaScript."""
    car = car_selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    return _car_keys_response(request, car)


@login_required
@require_POST
def service_key_issue(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    car = car_selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    form = ServiceKeyForm(request.POST, car=car)
    if form.is_valid():
        data = form.cleaned_data
        try:
            key = grants.service_key_issue(
                car=car,
                user=request.user,
                email=data["email"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                note=data["note"],
            )
        except KeyRefused as refusal:  # the window is taken, no such person, ...
            field = "email" if refusal.code in ("no_such_user", "not_eligible") else None
            form.add_error(field, str(refusal))
        else:
            done = _("Service key sent to %(email)s.") % {"email": key.holder.email}
            if not request.htmx:
                messages.success(request, done)
                return redirect("keys:car_keys", public_id=car.public_id)
            return _car_keys_response(request, car, {"keys_message": done})
    return _car_keys_response(request, car, {"service_form": form})  # 200 with the errors


@login_required
@require_POST
def car_lock(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The owner's Lock now on the car page: records the command and answers at once; the
    worker does the rest. Audited like every command a person asks of a car."""
    car = car_selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    try:
        command = use.car_command_request(
            car=car, user=request.user, action=CommandAction.LOCK, via=AuditVia.OWNER
        )
    except KeyRefused as refusal:  # not connected, needs reconnecting
        if not request.htmx:
            messages.error(request, str(refusal))
            return redirect(car)
        return _fragment(request, COMMAND_FRAGMENT, {"command_error": str(refusal)})
    if not request.htmx:
        messages.info(request, _("Locking your car: follow it below."))
        return redirect(car)
    return _command_changed(_fragment(request, COMMAND_FRAGMENT, {"command": command}))


@login_required
@require_POST
def car_unlock(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The owner unlocks; during someone else's trip only with the override and a reason."""
    car = car_selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    form = OwnerUnlockForm(request.POST)
    context: dict[str, Any] = {"unlock_form": form}
    if form.is_valid():
        try:
            command = use.car_command_request(
                car=car,
                user=request.user,
                action=CommandAction.UNLOCK,
                override=form.cleaned_data["override"],
                note=form.cleaned_data["note"],
                via="web",
            )
        except KeyRefused as refusal:  # override needed, rate limited, not connected
            form.add_error(None, str(refusal))
        else:
            if not request.htmx:
                messages.info(request, _("Unlocking your car: follow it below."))
                return redirect("keys:car_keys", public_id=car.public_id)
            context = {"unlock_form": OwnerUnlockForm(), "command": command}
    response = _car_keys_response(request, car, context, partial="owner-unlock")
    if context.get("command"):
        _command_changed(response)
    return response


@login_required
@require_GET
def car_audit(request: AuthedHtmxRequest, public_id: UUID) -> HttpResponse:
    """The audit log, refreshed when a command is asked for or finishes."""
    car = car_selectors.car_for_owner(user=request.user, public_id=public_id)  # or 404
    return _car_keys_response(request, car, partial="car-audit")


def _car_keys_response(
    request: AuthedHtmxRequest,
    car: Car,
    extra: dict[str, Any] | None = None,
    *,
    partial: str = "car-keys",
) -> HttpResponse:
    now = timezone.now()
    in_use = use.car_key_in_use(car_id=car.pk, now=now)
    context: dict[str, Any] = {
        "car": car,
        "in_use": in_use,
        "service_keys": list(selectors.service_keys_of_car(car_id=car.pk)),
        "car_keys": list(selectors.keys_of_car(car_id=car.pk)[:CAR_KEYS_SHOWN]),
        "audit": list(selectors.audit_of_car(car_id=car.pk, limit=AUDIT_SHOWN)),
        "service_form": ServiceKeyForm(car=car),
        "unlock_form": OwnerUnlockForm(),
        # The owner's own press answered by a redirect (no JavaScript): its progress.
        "command": next(
            (
                c
                for c in vehicle_selectors.commands_for_car(car_id=car.pk)
                if c.actor_id == request.user.pk and c.key_id is None and c.is_pending
            ),
            None,
        ),
    }
    return render_page_or_partial(request, CAR_KEYS_PAGE, partial, context | (extra or {}))
