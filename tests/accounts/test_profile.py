"""The profile page: who you are and the driving licence that lets you rent."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from tests.factories import UserFactory

PROFILE_URL = reverse("accounts:profile")


def today() -> datetime.date:
    return timezone.localdate()


def profile_data(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Mia Member",
        "phone": "+31 6 1234 5678",
        "licence_number": "nl 1234 5678",
        "licence_country": "NL",
        "licence_expires_on": (today() + datetime.timedelta(days=400)).isoformat(),
    }
    data.update(overrides)
    return data


@pytest.fixture
def member(db) -> User:
    return UserFactory(email="member@example.test", name="", phone="")


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


def post_errors(client, **overrides: str) -> dict[str, list[str]]:
    response = client.post(PROFILE_URL, profile_data(**overrides))
    assert response.status_code == 200  # errors re-render the page, as htmx expects too
    return response.context["form"].errors


def test_anonymous_visitor_is_sent_to_sign_in(client, db):
    response = client.get(PROFILE_URL)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next={PROFILE_URL}"


def test_profile_shows_the_verified_email_with_a_link_to_manage_it(member_client):
    response = member_client.get(PROFILE_URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert "member@example.test" in page
    assert "Verified" in page
    assert f'href="{reverse("account_email")}"' in page


def test_profile_says_in_words_that_there_is_no_valid_licence(member_client):
    page = member_client.get(PROFILE_URL).content.decode()

    assert "Not valid: no complete licence on file yet" in page


def test_profile_says_in_words_that_the_licence_is_valid(client, renter):
    client.force_login(renter)

    page = client.get(PROFILE_URL).content.decode()

    assert "Valid: issued in Netherlands" in page


def test_profile_says_when_the_licence_on_file_has_expired(client, member):
    User.objects.filter(pk=member.pk).update(
        licence_number="NL1234",
        licence_country="NL",
        licence_expires_on=today() - datetime.timedelta(days=1),
    )
    client.force_login(member)

    page = client.get(PROFILE_URL).content.decode()

    assert "Not valid: the licence on file expired" in page


def test_saving_stores_the_profile_and_redirects_with_a_message(member_client, member):
    response = member_client.post(PROFILE_URL, profile_data())

    assert response.status_code == 302
    assert response["Location"] == PROFILE_URL
    member.refresh_from_db()
    assert member.name == "Mia Member"
    assert member.phone == "+31 6 1234 5678"
    assert member.licence_number == "NL12345678"  # upper case, spaces gone
    assert member.licence_country == "NL"
    assert member.has_valid_licence()
    page = member_client.get(PROFILE_URL).content.decode()
    assert "Your profile is saved." in page


def test_saving_without_any_licence_details_is_allowed(member_client, member):
    response = member_client.post(
        PROFILE_URL, profile_data(licence_number="", licence_country="", licence_expires_on="")
    )

    assert response.status_code == 302
    member.refresh_from_db()
    assert member.licence_number == ""
    assert member.licence_expires_on is None


def test_a_licence_expiring_today_is_accepted(member_client, member):
    response = member_client.post(PROFILE_URL, profile_data(licence_expires_on=today().isoformat()))

    assert response.status_code == 302
    member.refresh_from_db()
    assert member.has_valid_licence()


@pytest.mark.parametrize("phone", ["call me", "+31 6 12ab 5678", "12345", "6" * 21, "31+612345678"])
def test_implausible_phone_number_is_refused(member_client, member, phone):
    errors = post_errors(member_client, phone=phone)

    assert list(errors) == ["phone"]
    member.refresh_from_db()
    assert member.phone == ""


@pytest.mark.parametrize("number", ["AB1", "NL-1234-5678", "ÄÖ123456", "X" * 21])
def test_licence_number_must_be_4_to_20_letters_and_digits(member_client, number):
    errors = post_errors(member_client, licence_number=number)

    assert list(errors) == ["licence_number"]


@pytest.mark.parametrize("country", ["XX", "nl", "NLD"])
def test_licence_country_must_be_a_listed_two_letter_code(member_client, country):
    errors = post_errors(member_client, licence_country=country)

    assert list(errors) == ["licence_country"]


def test_licence_expired_in_the_past_is_refused(member_client):
    yesterday = today() - datetime.timedelta(days=1)

    errors = post_errors(member_client, licence_expires_on=yesterday.isoformat())

    assert list(errors) == ["licence_expires_on"]
    assert "expired" in errors["licence_expires_on"][0]


def test_licence_details_must_come_together(member_client, member):
    errors = post_errors(member_client, licence_country="", licence_expires_on="")

    assert sorted(errors) == ["licence_country", "licence_expires_on"]
    assert "together" in errors["licence_country"][0]
    member.refresh_from_db()
    assert member.licence_number == ""


def test_refused_form_announces_its_errors_and_keeps_the_stored_licence_on_show(client, renter):
    client.force_login(renter)

    response = client.post(PROFILE_URL, profile_data(licence_number="??"))

    page = response.content.decode()
    assert 'role="alert"' in page
    assert 'aria-invalid="true"' in page
    assert 'aria-describedby="id_licence_number_helptext id_licence_number_error"' in page
    assert "Valid: issued in Netherlands" in page
    renter.refresh_from_db()
    assert renter.name == "Rick Renter"
