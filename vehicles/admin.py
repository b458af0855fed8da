"""Admin: cars, their vehicle-cloud connections (never the tokens), commands and live status.

Connections, commands and statuses are read-only here: they change through the services only.
"Force lock" on cars and connections is added by keys.admin: it is a command a person asks of a
car, which keys answers and audits (this app sits below keys and cannot call it).
"""

from __future__ import annotations

from django.contrib import admin

from carshare.adminlib import (
    ReadOnlyAdmin,
    ReadOnlyInline,
    car_time,
    short_id,
    short_text,
)
from vehicles.models import (
    Car,
    CarPhoto,
    VehicleCommand,
    VehicleCommandEvent,
    VehicleConnection,
    VehicleStatus,
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
        "per_hour",
        "per_day",
        "instant",
        "listed",
    ]
    list_filter = ["is_listed", "instant_book", "make", "fuel_type", "transmission", "city"]
    search_fields = ["licence_plate", "vin", "model", "city", "address", "owner__email"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    inlines = [CarPhotoInline]

    @admin.display(description="€/hour", ordering="hourly_price")
    def per_hour(self, car: Car) -> str:
        return f"{car.hourly_price}"

    @admin.display(description="€/day", ordering="daily_price")
    def per_day(self, car: Car) -> str:
        return f"{car.daily_price}"

    @admin.display(description="instant", boolean=True, ordering="instant_book")
    def instant(self, car: Car) -> bool:
        return car.instant_book

    @admin.display(description="listed", boolean=True, ordering="is_listed")
    def listed(self, car: Car) -> bool:
        return car.is_listed


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
        "reason",
        "connected",
        "refreshed",
        "renew_by",
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
    reason = short_text("status_reason", "reason", length=40)
    connected = car_time("connected_at", "connected")
    refreshed = car_time("refreshed_at", "refreshed")
    renew_by = car_time("refresh_expires_at", "renew by")


class VehicleCommandEventInline(ReadOnlyInline):
    model = VehicleCommandEvent
    fields = ("when", "old_status", "new_status", "note")
    readonly_fields = fields
    when = car_time("at", "at", car="command__car")


@admin.register(VehicleCommand)
class VehicleCommandAdmin(ReadOnlyAdmin):
    list_display = [
        "short_id",
        "car",
        "action",
        "reason",
        "status",
        "attempts",
        "error",
        "requested",
        "sent",
        "answered",
        "confirmed",
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
    readonly_fields = (
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
        "not_after",
        "late_message",
        "staged",
        "next_attempt_at",
        "sent_at",
        "answered_at",
        "confirmed_at",
    )
    fields = readonly_fields
    inlines = [VehicleCommandEventInline]
    short_id = short_id
    error = short_text("error_code", "error", length=24)
    requested = car_time("requested_at", "requested")
    sent = car_time("sent_at", "sent")
    answered = car_time("answered_at", "answered")
    confirmed = car_time("confirmed_at", "confirmed")


@admin.register(VehicleStatus)
class VehicleStatusAdmin(ReadOnlyAdmin):
    list_display = ["car", "is_locked", "doors_open", "odometer_km", "data_from", "read"]
    list_select_related = ["car"]
    readonly_fields = (
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
    )
    fields = readonly_fields
    data_from = car_time("data_age", "data from")
    read = car_time("fetched_at", "read at")
