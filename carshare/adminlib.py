"""What every app's admin shares: inspection-only admins, for rows only services may write."""

from __future__ import annotations

from collections.abc import Iterable

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Model
from django.http import HttpRequest
from django.template.response import TemplateResponse


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
