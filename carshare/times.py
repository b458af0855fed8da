"""Times as people and programs give them: shared by every app's pages and API.

Pages: `<input type="datetime-local">` sends a wall-clock time with no zone. It means the time
where the car is (that is where the trip starts, or the technician turns up), so forms are built
for one car and read times in its zone; what leaves a form is UTC. A time the clocks skip there
is refused with a reason rather than silently moved by an hour.

API: times must carry an offset (or Z). A naive time is refused: the API cannot know which zone
the client meant, and guessing moves a trip or a key by hours.

Both keep to the years 2000 to 2100, far from datetime's limits, so adding a buffer or a grace to
a parsed time can never overflow into a 500.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Collection
from typing import Annotated, Any, Protocol, cast

from django import forms
from django.core.exceptions import ValidationError
from django.utils import dateformat
from django.utils.translation import gettext_lazy as _
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

UTC = datetime.UTC
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100
EARLIEST = datetime.datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC)
LATEST = datetime.datetime(LATEST_YEAR + 1, 1, 1, tzinfo=UTC)
ISO_EXAMPLE = "2026-07-01T10:00:00+02:00"
# What browsers send for datetime-local (seconds appear when a step below a minute is used),
# and the plain form a person types when the browser shows a text box.
INPUT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
WIDGET_FORMAT = "%Y-%m-%dT%H:%M"


class HasTimeZone(Protocol):
    time_zone: str


def car_zone(car: HasTimeZone) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(car.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # a zone removed from tzdata since
        return zoneinfo.ZoneInfo("UTC")


def _offset(local: datetime.datetime) -> str:
    return local.isoformat()[-6:] if local.utcoffset() else "+00:00"


def local_moment(car: HasTimeZone, moment: datetime.datetime | None) -> str:
    """`moment` as the car's clock shows it, for staff screens: "Fri 4 Dec 2026, 10:00 +01:00"
    (the same wording as the pages' "D j M Y, H:i", plus the offset, as staff look after cars
    in more than one zone)."""
    if moment is None:
        return "-"
    local = moment.astimezone(car_zone(car))
    return f"{dateformat.format(local, 'D j M Y, H:i')} {_offset(local)}"


def local_period(
    car: HasTimeZone, start: datetime.datetime | None, end: datetime.datetime | None
) -> str:
    """A trip, block, hold or key window in the car's zone, the end's date only when it
    differs: "Fri 4 Dec 2026, 10:00 - 14:00 +01:00" (with an en dash, as on the pages)."""
    if start is None or end is None:
        return "-"
    zone = car_zone(car)
    first, last = start.astimezone(zone), end.astimezone(zone)
    end_format = "H:i" if first.date() == last.date() else "D j M Y, H:i"
    offsets = (
        _offset(first) if _offset(first) == _offset(last) else f"{_offset(first)}/{_offset(last)}"
    )
    return (
        f"{dateformat.format(first, 'D j M Y, H:i')} \u2013 {dateformat.format(last, end_format)} "
        f"{offsets}"
    )


# --- Pages ----------------------------------------------------------------------------------


class CarLocalDateTimeField(forms.DateTimeField):
    """A wall-clock time in the car's zone in, an aware UTC datetime out."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=WIDGET_FORMAT)
    # Always a list of formats here: __init__ defaults it to INPUT_FORMATS.
    input_formats: Collection[str]

    def __init__(self, *, zone: zoneinfo.ZoneInfo | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("input_formats", INPUT_FORMATS)
        super().__init__(**kwargs)
        self.zone = zone or zoneinfo.ZoneInfo("UTC")

    def to_python(self, value: Any) -> datetime.datetime | None:
        if value in self.empty_values:
            return None
        if isinstance(value, datetime.datetime):
            if value.tzinfo is not None:
                return value.astimezone(UTC)
            naive = value
        else:
            naive = self._parse(str(value).strip())
        if not EARLIEST_YEAR <= naive.year <= LATEST_YEAR:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        local = naive.replace(tzinfo=self.zone)  # fold=0: the first of a repeated autumn hour
        # A spring-forward gap: 02:30 does not exist that night. Say so instead of silently
        # moving the time by an hour.
        if local.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) != naive:
            raise ValidationError(
                _("%(time)s does not exist in %(zone)s: the clocks change then. Pick another time.")
                % {"time": naive.strftime("%H:%M"), "zone": self.zone.key},
                code="nonexistent",
            )
        return local.astimezone(UTC)

    def _parse(self, text: str) -> datetime.datetime:
        for fmt in self.input_formats:
            try:
                return datetime.datetime.strptime(text, fmt)  # noqa: DTZ007 (made aware above)
            except ValueError:
                continue
        raise ValidationError(self.error_messages["invalid"], code="invalid")

    def prepare_value(self, value: Any) -> Any:
        # Shown back in the car's zone, as it was typed.
        if isinstance(value, datetime.datetime) and value.tzinfo is not None:
            return value.astimezone(self.zone).replace(tzinfo=None)
        return value


class CarPeriodForm(forms.Form):
    """A form whose `starts_at` / `ends_at` (CarLocalDateTimeFields declared by the subclass)
    are local times of `car`; the end must come after the start."""

    def __init__(self, *args: Any, car: HasTimeZone, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.car = car
        self.zone = car_zone(car)
        for name in ("starts_at", "ends_at"):
            field = cast(CarLocalDateTimeField, self.fields[name])
            field.zone = self.zone
            field.help_text = _("Local time in %(zone)s") % {"zone": self.zone.key}

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        starts_at, ends_at = data.get("starts_at"), data.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", _("The end must be after the start."))
        return data


# --- API ------------------------------------------------------------------------------------


def aware_utc(value: object) -> datetime.datetime:
    """An ISO-8601 string with an offset (or Z), as a UTC datetime; naive times are refused."""
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            raise PydanticCustomError(
                "datetime_format", f"Give an ISO-8601 date and time, e.g. {ISO_EXAMPLE}."
            ) from None
    else:
        raise PydanticCustomError(
            "datetime_type", f"Give an ISO-8601 date and time as a string, e.g. {ISO_EXAMPLE}."
        )
    if parsed.utcoffset() is None:
        raise PydanticCustomError(
            "timezone_required",
            f"An offset is required: end the time with Z or +hh:mm, e.g. {ISO_EXAMPLE}.",
        )
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise PydanticCustomError("datetime_range", "Give a time between 2000 and 2100.")
    return utc


AwareDatetime = Annotated[datetime.datetime, BeforeValidator(aware_utc)]


def query_aware_utc(value: object) -> datetime.datetime | None:
    """aware_utc for a query parameter, where empty means "not given". An unescaped `+` in a
    query string arrives as a space: `…T10:00:00 02:00` meant `+02:00`, so put it back rather
    than refuse a time the client wrote correctly."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 6 and text[-6] == " " and text[-5:-3].isdigit() and text[-3] == ":":
            value = f"{text[:-6]}+{text[-5:]}"
    return aware_utc(value)


QueryDatetime = Annotated[datetime.datetime | None, BeforeValidator(query_aware_utc)]
