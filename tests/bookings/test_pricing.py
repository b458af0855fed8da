"""Prices and cancellation terms: a table of cases and properties over any trip."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bookings import pricing

START = datetime.datetime(2030, 3, 30, 10, 0, tzinfo=datetime.UTC)
H = datetime.timedelta(hours=1)
D = Decimal


def quote(duration: datetime.timedelta, hourly: str = "8.00", daily: str = "50.00"):
    return pricing.price(D(hourly), D(daily), START, START + duration)


@pytest.mark.parametrize(
    ("duration", "days", "hours", "expected"),
    [
        (1 * H, 0, 1, "8.00"),
        (datetime.timedelta(minutes=1), 0, 1, "8.00"),  # a started hour counts whole
        (2 * H + datetime.timedelta(minutes=1), 0, 3, "24.00"),
        (6 * H, 0, 6, "48.00"),
        (7 * H, 0, 7, "50.00"),  # 56.00 of hours, capped at one day
        (23 * H, 0, 23, "50.00"),
        (24 * H, 1, 0, "50.00"),
        (25 * H, 1, 1, "58.00"),
        (24 * H + datetime.timedelta(seconds=1), 1, 1, "58.00"),
        (30 * H, 1, 6, "98.00"),
        (31 * H, 1, 7, "100.00"),
        (72 * H, 3, 0, "150.00"),
        (14 * 24 * H, 14, 0, "700.00"),
    ],
)
def test_price_table(duration, days, hours, expected):
    result = quote(duration)
    assert (result.days, result.hours, result.price) == (days, hours, D(expected))
    assert (result.hourly_rate, result.daily_rate, result.currency) == (
        D("8.00"),
        D("50.00"),
        "EUR",
    )


def test_odd_rates_round_to_cents():
    result = quote(3 * H, hourly="3.333", daily="100")
    assert result.price == D("10.00")
    assert result.price.as_tuple().exponent == -2


def test_the_remainder_cap_is_reported():
    assert quote(7 * H).remainder_capped
    assert not quote(6 * H).remainder_capped


def test_a_period_that_does_not_move_forward_has_no_price():
    with pytest.raises(ValueError, match="end after it starts"):
        quote(datetime.timedelta(0))


def test_price_is_the_same_across_a_daylight_saving_change():
    # START is the eve of the EU spring change in UTC terms: durations are real hours.
    assert quote(48 * H).price == D("100.00")


rates = st.decimals(min_value=D("0.01"), max_value=D("999.99"), places=2)
minutes = st.integers(min_value=1, max_value=60 * 24 * 40)


@given(hourly=rates, daily=rates, length=minutes, more=st.integers(0, 60 * 24 * 5))
def test_price_properties(hourly, daily, length, more):
    short = pricing.price(hourly, daily, START, START + datetime.timedelta(minutes=length))
    longer = pricing.price(hourly, daily, START, START + datetime.timedelta(minutes=length + more))
    assert short.price >= 0
    assert short.price <= short.days * daily + daily  # never more than one extra day
    assert short.price <= longer.price  # a longer trip never costs less
    assert 0 <= short.hours <= 24  # 23 h 01 min of remainder is 24 started hours


# --- Cancellation ----------------------------------------------------------------------------


def terms(hours_before: float, **kwargs):
    return pricing.cancellation_terms(
        trip_price=D("100.00"),
        starts_at=START,
        now=START - datetime.timedelta(hours=hours_before),
        **{"by_renter": True, **kwargs},
    )


@pytest.mark.parametrize(
    ("hours_before", "kwargs", "fee", "refund"),
    [
        (48, {}, "0.00", "100.00"),
        (24, {}, "0.00", "100.00"),  # exactly a day before is still free
        (23.99, {}, "50.00", "50.00"),
        (1, {}, "50.00", "50.00"),
        (1, {"confirmed": False}, "0.00", "100.00"),  # a request never accepted is free
        (-1, {"active": True}, "100.00", "0.00"),  # nothing back once under way
        (1, {"by_renter": False}, "0.00", "100.00"),  # owner or admin: always free
        (100, {"by_renter": False}, "0.00", "100.00"),
    ],
)
def test_cancellation_terms(hours_before, kwargs, fee, refund):
    result = terms(hours_before, **kwargs)
    assert (result.fee, result.refund) == (D(fee), D(refund))


def test_half_of_an_odd_price_rounds_and_adds_up():
    result = pricing.cancellation_terms(
        trip_price=D("99.99"), starts_at=START, now=START - H, by_renter=True
    )
    assert (result.fee, result.refund) == (D("50.00"), D("49.99"))


def test_a_remainder_just_under_a_day_is_24_started_hours():
    result = quote(47 * H + datetime.timedelta(minutes=1), hourly="1.00", daily="50.00")
    assert (result.days, result.hours, result.price) == (1, 24, D("74.00"))
