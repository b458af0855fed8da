"""Trip prices and cancellation terms: pure functions of amounts and times, no queries.

Price: the daily rate for each full 24 h of the trip, plus the hourly rate for each started
hour of the rest (rounded up to whole hours), that rest never costing more than one daily rate.
Cancellation: a renter who cancels a confirmed trip at least 24 h before its start pays nothing;
later, half the price; a trip under way is not refunded. An owner or an admin cancelling always
refunds the renter in full. Money is Decimal, two places, EUR.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CURRENCY = "EUR"
CENT = Decimal("0.01")
DAY = datetime.timedelta(hours=24)
HOUR = datetime.timedelta(hours=1)
FREE_CANCELLATION_BEFORE = datetime.timedelta(hours=24)
LATE_CANCELLATION_SHARE = Decimal("0.5")


def _money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Quote:
    """What a trip costs, and how the price is made up (for the page and the API)."""

    price: Decimal
    hourly_rate: Decimal
    daily_rate: Decimal
    days: int  # full 24 h periods, each at the daily rate
    hours: int  # started hours of the rest (0 to 24), at the hourly rate, capped at one daily rate
    currency: str = CURRENCY

    @property
    def remainder_capped(self) -> bool:
        """True when the rest of the trip costs one daily rate rather than its hours."""
        return self.hours * self.hourly_rate > self.daily_rate


def price(
    car_hourly: Decimal,
    car_daily: Decimal,
    starts_at: datetime.datetime,
    ends_at: datetime.datetime,
) -> Quote:
    """The price of [starts_at, ends_at) at these rates; ValueError for an empty period."""
    if ends_at <= starts_at:
        raise ValueError("A trip must end after it starts.")
    duration = ends_at - starts_at
    days = duration // DAY
    rest = duration - days * DAY
    # Whole hours, rounded up (2 h 01 min is three started hours). timedelta // timedelta is
    # exact integer arithmetic, where dividing to a float could land a hair above 2.0.
    hours = -(-rest // HOUR)
    hourly, daily = Decimal(car_hourly), Decimal(car_daily)
    total = days * daily + min(hours * hourly, daily)
    return Quote(
        price=_money(total),
        hourly_rate=_money(hourly),
        daily_rate=_money(daily),
        days=days,
        hours=hours,
    )


@dataclass(frozen=True)
class CancellationTerms:
    fee: Decimal  # what the renter pays for the cancelled trip
    refund: Decimal  # what the renter gets back of the price


def cancellation_terms(
    *,
    trip_price: Decimal,
    starts_at: datetime.datetime,
    now: datetime.datetime,
    by_renter: bool,
    confirmed: bool = True,
    active: bool = False,
) -> CancellationTerms:
    """Fee and refund when a trip is called off at `now`.

    `confirmed=False` is a request the owner never accepted: cancelling it is free, since the
    renter was never promised the car (a product decision; the issue only speaks of trips).
    """
    trip_price = _money(Decimal(trip_price))
    zero = _money(Decimal(0))
    if not by_renter:
        return CancellationTerms(fee=zero, refund=trip_price)  # owner or admin: always free
    if active:
        return CancellationTerms(fee=trip_price, refund=zero)
    if not confirmed or starts_at - now >= FREE_CANCELLATION_BEFORE:
        return CancellationTerms(fee=zero, refund=trip_price)
    fee = _money(trip_price * LATE_CANCELLATION_SHARE)
    return CancellationTerms(fee=fee, refund=trip_price - fee)
