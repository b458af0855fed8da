"""Sign-up, verification, sign-in and password reset through allauth's pages."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse

from accounts.models import User
from tests.accounts.helpers import link_in
from tests.factories import UserFactory

PASSWORD = "a-long-and-unusual-passphrase"


def sign_up(client, email: str = "newcomer@example.test"):
    return client.post(
        reverse("account_signup"),
        {"email": email, "password1": PASSWORD, "password2": PASSWORD},
    )


def sign_in(client, email: str, password: str = PASSWORD):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def is_signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.django_db
def test_sign_up_sends_a_verification_email_and_waits_for_it(client, mailoutbox):
    response = sign_up(client)

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert not is_signed_in(client)
    user = User.objects.get(email="newcomer@example.test")
    assert not EmailAddress.objects.get(user=user).verified
    [message] = mailoutbox
    assert message.to == ["newcomer@example.test"]
    assert message.subject.startswith("[carshare] ")
    assert "/accounts/confirm-email/" in message.body
    assert "Hello from carshare!" in message.body


@pytest.mark.django_db
def test_sign_in_before_verifying_is_sent_back_to_verification(client, mailoutbox):
    sign_up(client)
    client.cookies.clear()  # a fresh browser, not the one that signed up

    response = sign_in(client, "newcomer@example.test")

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert not is_signed_in(client)


@pytest.mark.django_db
def test_confirmation_link_asks_before_it_verifies(client, mailoutbox):
    sign_up(client)
    confirm_url = link_in(mailoutbox[0], "/confirm-email/")

    response = client.get(confirm_url)

    assert response.status_code == 200
    assert response.context["can_confirm"]
    assert "<form" in response.content.decode()
    assert not EmailAddress.objects.get(email="newcomer@example.test").verified


@pytest.mark.django_db
def test_posting_the_confirmation_link_verifies_and_signs_in(client, mailoutbox):
    sign_up(client)

    response = client.post(link_in(mailoutbox[0], "/confirm-email/"))

    assert response.status_code == 302
    assert EmailAddress.objects.get(email="newcomer@example.test").verified
    assert is_signed_in(client)


@pytest.mark.django_db
def test_sign_in_works_once_verified(client, mailoutbox):
    sign_up(client)
    client.post(link_in(mailoutbox[0], "/confirm-email/"))
    client.post(reverse("account_logout"))
    assert not is_signed_in(client)

    response = sign_in(client, "newcomer@example.test")

    assert response.status_code == 302
    assert response["Location"] == reverse("vehicles:car_browse")
    assert is_signed_in(client)


@pytest.mark.django_db
def test_wrong_password_is_refused_with_an_announced_error(client):
    UserFactory(email="member@example.test")

    response = sign_in(client, "member@example.test", "not-the-password")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'role="alert"' in page
    assert "not correct" in page
    assert not is_signed_in(client)


@pytest.mark.django_db
def test_sign_out_ends_the_session(client):
    client.force_login(UserFactory())

    response = client.post(reverse("account_logout"))

    assert response.status_code == 302
    assert not is_signed_in(client)


@pytest.mark.django_db
def test_password_reset_emails_a_link_that_sets_a_new_password(client, mailoutbox):
    UserFactory(email="forgetful@example.test")

    response = client.post(reverse("account_reset_password"), {"email": "forgetful@example.test"})

    assert response.status_code == 302
    assert response["Location"] == reverse("account_reset_password_done")
    [message] = mailoutbox
    assert message.to == ["forgetful@example.test"]
    # The link stores its key in the session and redirects to a key-free URL.
    form_url = client.get(link_in(message, "/password/reset/key/"))["Location"]
    response = client.post(form_url, {"password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    assert sign_in(client, "forgetful@example.test")["Location"] == reverse("vehicles:car_browse")


@pytest.mark.django_db
def test_password_reset_for_an_unknown_address_looks_the_same(client, mailoutbox):
    response = client.post(reverse("account_reset_password"), {"email": "nobody@example.test"})

    # Same answer as for a member, so the form cannot be used to find out who has an account.
    assert response.status_code == 302
    assert response["Location"] == reverse("account_reset_password_done")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url_name",
    ["account_login", "account_signup", "account_reset_password"],
)
def test_entrance_pages_label_every_field(client, url_name):
    response = client.get(reverse(url_name))

    assert response.status_code == 200
    page = response.content.decode()
    form = response.context["form"]
    for field in form.visible_fields():
        assert f'<label for="{field.auto_id}"' in page
    assert "<script>" not in page  # the CSP allows no inline script


@pytest.mark.django_db
def test_sign_up_errors_are_announced_and_tied_to_their_fields(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "newcomer@example.test", "password1": PASSWORD, "password2": "something else"},
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert 'role="alert"' in page
    assert 'aria-describedby="id_password2_error"' in page
    assert 'aria-invalid="true"' in page


@pytest.mark.django_db
def test_sign_up_with_a_taken_address_does_not_tell_who_is_a_member(client, mailoutbox):
    UserFactory(email="taken@example.test")

    response = sign_up(client, email="taken@example.test")

    # The same answer as a fresh sign-up; the owner of the address gets an email about it.
    assert response["Location"] == reverse("account_email_verification_sent")
    [message] = mailoutbox
    assert message.to == ["taken@example.test"]
    assert User.objects.filter(email="taken@example.test").count() == 1


@pytest.mark.django_db
def test_email_management_page_renders_inside_the_site(client):
    client.force_login(UserFactory(email="member@example.test"))

    response = client.get(reverse("account_email"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "member@example.test" in page
    assert 'aria-label="Account settings"' in page
    assert 'aria-current="page"' in page
