"""What every app's admin shares: inspection-only admins, for rows only services may write, and
columns that show times as the car's clock does and keep long values from stretching the list."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Model
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html

from carshare import times

if TYPE_CHECKING:
    from accounts.models import User


def staff_user(request: HttpRequest) -> User:
    """The signed-in staff member behind an admin request: the admin site lets no one else in."""
    return cast("User", request.user)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Inspection only: the services own every write to these rows."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """An append-only history shown under its row: no adding, changing or deleting."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def ask_for_reason(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    action: str,
    title: str,
    explanation: str,
    submit_label: str,
    chosen: Iterable[tuple[Model, str]],
    form: forms.Form,
) -> TemplateResponse:
    """The page between an admin action and its effect that asks for a reason: what will
    happen, the chosen rows (each with its line of text) and the form, posted back to the same
    action with apply=yes."""
    chosen = list(chosen)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": modeladmin.model._meta,
        "explanation": explanation,
        "lines": [line for _, line in chosen],
        "pks": [row.pk for row, _ in chosen],
        "form": form,
        "submit_label": submit_label,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "action": action,
    }
    return TemplateResponse(request, "admin/action_with_reason.html", context)


# --- Columns -------------------------------------------------------------------------------
# Staff look after cars in more than one zone, and a trip at "10:00" means the car's 10:00:
# times are shown in the car's zone with the offset, as the pages show them (carshare.times).


def _car_of(row: Any, car: str) -> Any:
    for name in car.split("__"):
        row = getattr(row, name)
    return row


def car_time(field: str, description: str, *, car: str = "car") -> Callable[[Any, Any], str]:
    """A column (or read-only field) showing `field` in the zone of the row's `car`."""

    @admin.display(description=description, ordering=field)
    def column(modeladmin: Any, row: Any) -> str:
        return times.local_moment(_car_of(row, car), getattr(row, field))

    return column


def car_period(
    start: str, end: str, description: str, *, car: str = "car", ordering: str | None = None
) -> Callable[[Any, Any], str]:
    """A column showing the stretch from `start` to `end` (attributes of the row) in the zone of
    the row's `car`, instead of a range's raw UTC bounds."""

    @admin.display(description=description, ordering=ordering or start)
    def column(modeladmin: Any, row: Any) -> str:
        return times.local_period(_car_of(row, car), getattr(row, start), getattr(row, end))

    return column


def car_range(field: str, description: str, *, car: str = "car") -> Callable[[Any, Any], str]:
    """A column showing a range field (a trip, block or hold) in the zone of the row's `car`."""

    @admin.display(description=description, ordering=field)
    def column(modeladmin: Any, row: Any) -> str:
        period = getattr(row, field)
        return times.local_period(_car_of(row, car), period.lower, period.upper)

    return column


def short_text(field: str, description: str, *, length: int = 60) -> Callable[[Any, Any], str]:
    """The start of a long text, whole on hover, so one row's message cannot widen the list."""

    @admin.display(description=description, ordering=field)
    def column(modeladmin: Any, row: Any) -> str:
        text = str(getattr(row, field) or "")
        if len(text) <= length:
            return text
        return format_html('<span title="{}">{}…</span>', text, text[: length - 1].rstrip())

    return column


@admin.display(description="id", ordering="public_id")
def short_id(modeladmin: Any, row: Any) -> str:
    """The first block of a public id: enough to tell rows apart and to search for."""
    return str(row.public_id).split("-", 1)[0]
