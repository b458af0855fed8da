"""Admin: cars, their vehicle-cloud connections (never the tokens), commands and live status.

Connections, commands and statuses are read-only here: they change through the services only.
"Force lock" goes through vehicle_command_request like every other lock, with reason admin.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from carshare.adminlib import ReadOnlyAdmin, ReadOnlyInline
from vehicles import commands
from vehicles.models import (
    Car,
    CarPhoto,
    CommandAction,
    CommandReason,
    VehicleCommand,
    VehicleCommandEvent,
    VehicleConnection,
    VehicleStatus,
)


def _force_lock(modeladmin: admin.ModelAdmin, request: HttpRequest, cars: list[Car]) -> None:
    queued = 0
    for car in cars:
        try:
            commands.vehicle_command_request(
                car=car, action=CommandAction.LOCK, reason=CommandReason.ADMIN, actor=request.user
            )
        except commands.CommandRefused as refusal:
            modeladmin.message_user(request, f"{car}: {refusal}", messages.ERROR)
        else:
            queued += 1
    if queued:
        modeladmin.message_user(
            request,
            f"Lock queued for {queued} car(s); follow it under Vehicle commands.",
            messages.SUCCESS,
        )


class CarPhotoInline(admin.TabularInline):
    model = CarPhoto
    extra = 0
    fields = ["image", "thumbnail", "position"]
    readonly_fields = ["thumbnail"]


@admin.register(Car)
class CarAdmin(admin.ModelAdmin):
    list_display = [
        "licence_plate",
        "make",
        "model",
        "year",
        "city",
        "owner",
        "hourly_price",
        "daily_price",
        "instant_book",
        "is_listed",
    ]
    list_filter = ["is_listed", "instant_book", "make", "fuel_type", "transmission", "city"]
    search_fields = ["licence_plate", "vin", "model", "city", "address", "owner__email"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    inlines = [CarPhotoInline]
    actions = ["force_lock"]

    @admin.action(description="Force lock the selected cars")
    def force_lock(self, request: HttpRequest, queryset: QuerySet[Car]) -> None:
        _force_lock(self, request, list(queryset))


@admin.register(VehicleConnection)
class VehicleConnectionAdmin(ReadOnlyAdmin):
    # The encrypted token columns are excluded outright: not shown, not in any form, not
    # searchable. Even ciphertext has no business on an admin's screen.
    exclude = ["access_token_encrypted", "refresh_token_encrypted"]
    list_display = [
        "car",
        "provider",
        "mode",
        "vehicle_id",
        "status",
        "status_reason",
        "connected_at",
        "refreshed_at",
        "refresh_expires_at",
    ]
    list_filter = ["status", "provider", "mode"]
    search_fields = ["vehicle_id", "reported_vin", "car__licence_plate", "car__owner__email"]
    list_select_related = ["car"]
    readonly_fields = [
        "car",
        "provider",
        "mode",
        "vehicle_id",
        "scopes",
        "access_expires_at",
        "refresh_expires_at",
        "status",
        "status_reason",
        "reported_make",
        "reported_model",
        "reported_year",
        "reported_vin",
        "connected_at",
        "refreshed_at",
        "unhealthy_notified_at",
        "disconnected_at",
    ]
    actions = ["force_lock"]

    @admin.action(description="Force lock the cars of the selected connections")
    def force_lock(self, request: HttpRequest, queryset: QuerySet[VehicleConnection]) -> None:
        _force_lock(
            self, request, [connection.car for connection in queryset.select_related("car")]
        )


class VehicleCommandEventInline(ReadOnlyInline):
    model = VehicleCommandEvent
    fields = ["at", "old_status", "new_status", "note"]
    readonly_fields = fields


@admin.register(VehicleCommand)
class VehicleCommandAdmin(ReadOnlyAdmin):
    list_display = [
        "public_id",
        "car",
        "action",
        "reason",
        "status",
        "attempts",
        "error_code",
        "requested_at",
        "sent_at",
        "answered_at",
        "confirmed_at",
    ]
    list_filter = [
        "status",
        "reason",
        "action",
        ("car", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["public_id", "car__licence_plate", "provider_request_id", "actor__email"]
    list_select_related = ["car"]
    date_hierarchy = "requested_at"
    readonly_fields = [
        "public_id",
        "car",
        "key_id",
        "actor",
        "action",
        "reason",
        "status",
        "attempts",
        "provider_request_id",
        "error_type",
        "error_code",
        "error_message",
        "requested_at",
        "send_by",
        "next_attempt_at",
        "sent_at",
        "answered_at",
        "confirmed_at",
    ]
    fields = readonly_fields
    inlines = [VehicleCommandEventInline]


@admin.register(VehicleStatus)
class VehicleStatusAdmin(ReadOnlyAdmin):
    list_display = ["car", "is_locked", "doors_open", "odometer_km", "data_age", "fetched_at"]
    list_select_related = ["car"]
    readonly_fields = [
        "car",
        "is_locked",
        "doors_open",
        "latitude",
        "longitude",
        "odometer_km",
        "fuel_percent",
        "battery_percent",
        "range_km",
        "data_age",
        "fetched_at",
        "refresh_requested_at",
        "last_error",
    ]
    fields = readonly_fields
