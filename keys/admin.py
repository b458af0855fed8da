"""Admin: keys with their history, the audit log and the end locks — all read-only.

Nothing here assigns a status or writes an audit row directly: "Revoke with a reason" calls
keys.grants.key_revoke and "Lock the car now" keys.use.car_command_request with the admin as
the actor, so the rules, the event rows and the audit log hold for admins too. The same
service answers "Force lock" on the vehicles admin's cars and connections, which this module
adds to those admins (vehicles sits below keys and cannot call it). The audit log
cannot be edited or deleted from here (nor anywhere: a database trigger refuses it).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext

from carshare import times
from carshare.adminlib import (
    ReadOnlyAdmin,
    ReadOnlyInline,
    ask_for_reason,
    car_period,
    car_time,
    short_id,
    short_text,
    staff_user,
)
from keys import grants, use
from keys.errors import KeyRefused
from keys.models import (
    AuditEntry,
    DigitalKey,
    EndLock,
    KeyEvent,
    StartUnlock,
    SupportCase,
    SupportCaseStatus,
)
from keys.selectors import OPENED_SINCE_MARGIN
from vehicles import admin as vehicle_admin
from vehicles.models import Car, CommandAction, VehicleCommand, VehicleConnection


class KeyEventInline(ReadOnlyInline):
    model = KeyEvent
    fields = ("when", "actor", "old_status", "new_status", "reason")
    readonly_fields = fields
    when = car_time("at", "at", car="key__car")


class AuditEntryInline(ReadOnlyInline):
    model = AuditEntry
    fk_name = "key"
    fields = ("when", "actor", "action", "allowed", "code", "detail", "via", "command_public_id")
    readonly_fields = fields
    ordering = ["-at"]
    when = car_time("at", "at")


class RevokeWithReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=200,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the key's history and shown to its holder.",
    )


def _lock_cars(modeladmin: admin.ModelAdmin, request: HttpRequest, cars: list[Car]) -> None:
    queued = 0
    for car in cars:
        try:
            use.car_command_request(
                car=car, user=staff_user(request), action=CommandAction.LOCK, via="admin"
            )
        except KeyRefused as refusal:
            modeladmin.message_user(request, f"{car}: {refusal}", messages.ERROR)
        else:
            queued += 1
    if queued:
        modeladmin.message_user(
            request,
            ngettext(
                "Lock queued for %d car; follow it under Vehicle commands.",
                "Lock queued for %d cars; follow them under Vehicle commands.",
                queued,
            )
            % queued,
            messages.SUCCESS,
        )


@admin.register(DigitalKey)
class DigitalKeyAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "kind", "status", "car", "holder", "window", "locks_until"]
    list_filter = ["kind", "status", ("car", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["public_id", "holder__email", "holder__name", "car__licence_plate",
                     "car__owner__email"]  # fmt: skip
    list_select_related = ["car", "holder"]
    date_hierarchy = "valid_from"
    readonly_fields = (
        "public_id", "kind", "status", "car", "holder", "issued_by", "booking_id",
        "booking_public_id", "parent",
        "window", "locks_until", "note", "created", "activated", "ended", "revoked_by",
        "revoke_reason",
    )  # fmt: skip
    fields = readonly_fields
    inlines = [KeyEventInline, AuditEntryInline]
    actions = ["revoke_with_reason", "lock_cars"]
    short_id = short_id
    window = car_period("valid_from", "valid_until", "window")
    locks_until = car_time("lock_until", "locks until")
    created = car_time("created_at", "created")
    activated = car_time("activated_at", "activated")
    ended = car_time("ended_at", "ended")

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("keys.change_digitalkey")

    @admin.action(description="Revoke with a reason", permissions=["revoke"])
    def revoke_with_reason(
        self, request: HttpRequest, queryset: QuerySet[DigitalKey]
    ) -> TemplateResponse | None:
        form = RevokeWithReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            revoked = 0
            for key in queryset.select_related("car", "parent"):
                try:
                    grants.key_revoke(
                        key=key,
                        user=staff_user(request),
                        reason=form.cleaned_data["reason"],
                        via="admin",
                    )
                except KeyRefused as refusal:
                    self.message_user(request, f"{key}: {refusal}", messages.ERROR)
                else:
                    revoked += 1
            if revoked:
                self.message_user(
                    request,
                    ngettext("Revoked %d key.", "Revoked %d keys.", revoked) % revoked,
                    messages.SUCCESS,
                )
            return None
        return ask_for_reason(
            self,
            request,
            action="revoke_with_reason",
            title="Revoke keys",
            explanation=(
                "These keys stop working now. Shared keys cut from a revoked trip key go with "
                "it; a service window is freed for trips, and a car opened under an active "
                "service or trip key is locked. The reason goes into each key's history and the "
                "audit log, with you as the one who revoked it. Keys that have already ended are "
                "left as they are and reported."
            ),
            submit_label="Revoke these keys",
            chosen=(
                (
                    k,
                    f"{k.get_kind_display()} — {k.car} — {k.holder}: {k.get_status_display()}, "
                    f"{times.local_period(k.car, k.valid_from, k.valid_until)}",
                )
                for k in queryset.select_related("car", "holder")
            ),
            form=form,
        )

    @admin.action(description="Lock these keys' cars now", permissions=["revoke"])
    def lock_cars(self, request: HttpRequest, queryset: QuerySet[DigitalKey]) -> None:
        cars = {key.car_id: key.car for key in queryset.select_related("car")}
        _lock_cars(self, request, list(cars.values()))


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Every attempt to use, share or revoke a key, allowed or denied. Read-only for everyone."""

    list_display = ["when", "car", "actor", "action", "allowed", "code", "via", "key"]
    list_filter = ["action", "allowed", "via", "code", ("car", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["actor__email", "car__licence_plate", "detail", "key__public_id"]
    list_select_related = ["car", "actor", "key"]
    date_hierarchy = "at"
    readonly_fields = ("when", "staged", "car", "key", "actor", "action", "allowed", "code",
                       "detail", "via", "command_public_id")  # fmt: skip
    fields = readonly_fields
    when = car_time("at", "at")
    staged = car_time("staged_for", "staged for")


@admin.register(EndLock)
class EndLockAdmin(ReadOnlyAdmin):
    """Cars that must be locked at the end of a window; pending ones are still being retried."""

    list_display = ["car", "status", "attempts", "alerts_sent", "problem", "ended", "done"]
    list_filter = ["status"]
    search_fields = ["car__licence_plate", "car__owner__email"]
    list_select_related = ["car"]
    readonly_fields = ("key", "car", "status", "command", "attempts", "next_attempt",
                       "alerts_sent", "last_alert", "last_problem", "ended", "done")  # fmt: skip
    fields = readonly_fields
    actions = ["lock_now"]
    problem = short_text("last_problem", "last problem")
    ended = car_time("created_at", "window ended")
    done = car_time("done_at", "done")
    next_attempt = car_time("next_attempt_at", "next attempt")
    last_alert = car_time("last_alert_at", "last alert")

    def has_lock_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("keys.change_digitalkey")

    @admin.action(description="Lock these cars now", permissions=["lock"])
    def lock_now(self, request: HttpRequest, queryset: QuerySet[EndLock]) -> None:
        # A confirmed lock closes the end lock at the next sweep, like any other lock.
        cars = {end_lock.car_id: end_lock.car for end_lock in queryset.select_related("car")}
        _lock_cars(self, request, list(cars.values()))


@admin.register(StartUnlock)
class StartUnlockAdmin(ReadOnlyAdmin):
    """Trips whose car had to open at the start: pending ones are still being tried, failed ones
    need a person (the renter may be at the car). Staff see every trip at risk here."""

    list_display = ["car", "status", "started", "attempts", "alerts_sent", "at_car", "problem"]
    list_filter = ["status"]
    search_fields = ["car__licence_plate", "car__owner__email", "key__holder__email"]
    list_select_related = ["car", "command"]
    readonly_fields = ("key", "car", "status", "command", "started", "alerts_sent", "last_alert",
                       "last_problem", "at_car", "owner_asked", "opened", "done")  # fmt: skip
    fields = readonly_fields
    problem = short_text("last_problem", "last problem")
    started = car_time("starts_at", "trip start")
    at_car = car_time("at_car_at", "renter at the car")
    owner_asked = car_time("owner_asked_at", "owner asked")
    opened = car_time("opened_at", "opened")
    done = car_time("done_at", "done")
    last_alert = car_time("last_alert_at", "last alert")

    @admin.display(description="attempts")
    def attempts(self, start: StartUnlock) -> int:
        return start.command.attempts if start.command else 0


class CloseCaseForm(forms.Form):
    note = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(SupportCase)
class SupportCaseAdmin(ReadOnlyAdmin):
    """Renters at a car that would not open (open cases first), with the car's command log from
    shortly before the trip's start: every lock and unlock, each attempt and what the car said."""

    list_display = ["car", "status", "opened", "renter", "reason"]
    list_filter = ["status"]
    search_fields = ["car__licence_plate", "start_unlock__key__holder__email"]
    list_select_related = ["car", "start_unlock__key__holder"]
    readonly_fields = ("car", "status", "opened", "reason", "renter", "start_unlock",
                       "command_log", "closed", "closed_by", "note")  # fmt: skip
    fields = readonly_fields
    actions = ["close_with_note"]
    opened = car_time("opened_at", "opened")
    closed = car_time("closed_at", "closed")

    @admin.display(description="renter")
    def renter(self, case: SupportCase) -> str:
        holder = case.start_unlock.key.holder
        return f"{holder.get_full_name() or holder.email} <{holder.email}> {holder.phone}"

    @admin.display(description="command log")
    def command_log(self, case: SupportCase) -> str:
        since = case.start_unlock.starts_at - OPENED_SINCE_MARGIN
        commands = (
            VehicleCommand.objects.filter(car_id=case.car_id, requested_at__gte=since)
            .prefetch_related("events")
            .order_by("requested_at", "pk")[:50]
        )
        zone = times.car_zone(case.car)
        rows = []
        for command in commands:
            for event in command.events.all():
                rows.append(
                    format_html(
                        "<tr><td>{}</td><td>{} ({})</td><td>{} → {}</td><td>{}</td></tr>",
                        event.at.astimezone(zone).strftime("%H:%M:%S"),
                        command.get_action_display(),
                        command.reason,
                        event.old_status or "-",
                        event.new_status,
                        event.note,
                    )
                )
        if not rows:
            return "No commands."
        return format_html(
            "<table><thead><tr><th>at</th><th>command</th><th>move</th><th>note</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            format_html_join("", "{}", ((row,) for row in rows)),
        )

    def has_close_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("keys.change_digitalkey")

    @admin.action(description="Close with a note", permissions=["close"])
    def close_with_note(
        self, request: HttpRequest, queryset: QuerySet[SupportCase]
    ) -> TemplateResponse | None:
        form = CloseCaseForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            closed = queryset.filter(status=SupportCaseStatus.OPEN).update(
                status=SupportCaseStatus.CLOSED,
                closed_at=timezone.now(),
                closed_by=staff_user(request),
                note=form.cleaned_data["note"],
            )
            self.message_user(request, f"Closed {closed} case(s).", messages.SUCCESS)
            return None
        return ask_for_reason(
            self,
            request,
            action="close_with_note",
            title="Close support cases",
            explanation="Say what was done (the renter got in, the trip was cancelled, ...).",
            submit_label="Close these cases",
            chosen=((case, str(case)) for case in queryset),
            form=form,
        )


# --- Force lock on the vehicles admin ---------------------------------------------------------

admin.site.unregister(Car)
admin.site.unregister(VehicleConnection)


@admin.register(Car)
class CarAdmin(vehicle_admin.CarAdmin):
    actions = ["force_lock"]

    @admin.action(description="Force lock the selected cars")
    def force_lock(self, request: HttpRequest, queryset: QuerySet[Car]) -> None:
        _lock_cars(self, request, list(queryset))


@admin.register(VehicleConnection)
class VehicleConnectionAdmin(vehicle_admin.VehicleConnectionAdmin):
    actions = ["force_lock"]

    @admin.action(description="Force lock the cars of the selected connections")
    def force_lock(self, request: HttpRequest, queryset: QuerySet[VehicleConnection]) -> None:
        _lock_cars(self, request, [connection.car for connection in queryset.select_related("car")])
