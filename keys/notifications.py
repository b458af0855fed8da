"""Key emails: a key given or taken back, an invitation to someone who cannot receive a shared
key yet, and a car that would not lock at the end of a window.

Sending only; the tasks decide that a message is due and make sure it goes once. Times are in
the car's time zone, like on the pages.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.models import User
from keys.errors import local_time
from keys.models import (
    DigitalKey,
    EndLock,
    EndLockStatus,
    KeyKind,
    StartUnlock,
    StartUnlockStatus,
    SupportCase,
)


def _url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def send_key_email(*, key_id: int, kind: str) -> None:
    key = DigitalKey.objects.select_related("car", "holder", "issued_by").filter(pk=key_id).first()
    if key is None or key.kind == KeyKind.TRIP:
        return
    context = {
        "key": key,
        "car": key.car,
        "from": local_time(key.car, key.valid_from),
        "until": local_time(key.car, key.valid_until),
        "url": _url(key.get_absolute_url()),
        "by": key.issued_by.get_short_name() if key.issued_by else "carshare",
    }
    if kind == "issued":
        subject = _("You have a key to the %(car)s") % {"car": key.car.title}
    elif kind == "revoked":
        subject = _("Your key to the %(car)s was revoked") % {"car": key.car.title}
    else:
        raise ValueError(f"Unknown key email {kind!r}")
    body = render_to_string(f"emails/keys/key_{kind}.txt", context)
    send_mail(subject, body, None, [key.holder.email])


def send_share_invitation(*, key_id: int, email: str, remedy: str) -> None:
    """To an address a trip key was shared with that cannot receive it yet: what is missing.
    Says nothing about the trip beyond the car and who asked, as the address may be a typo."""
    key = DigitalKey.objects.select_related("car", "holder").filter(pk=key_id).first()
    if key is None:
        return
    context = {
        "car": key.car,
        "by": key.holder.get_short_name(),
        "remedy": remedy,
        "url": _url(reverse("account_signup" if remedy == "sign_up" else "accounts:profile")),
    }
    subject = _("%(name)s wants to share a car key with you on carshare") % {"name": context["by"]}
    body = render_to_string("emails/keys/share_invitation.txt", context)
    send_mail(subject, body, None, [email])


def end_lock_recipients(*, end_lock_id: int) -> list[str]:
    """The owner, the key holder and every active admin, each once."""
    end_lock = (
        EndLock.objects.select_related("car__owner", "key__holder").filter(pk=end_lock_id).first()
    )
    if end_lock is None:
        return []
    return _with_staff(end_lock.car.owner.email, end_lock.key.holder.email)


def send_end_lock_alert(*, end_lock_id: int, number: int, recipient: str) -> None:
    end_lock = EndLock.objects.select_related("car", "key__holder", "command").get(pk=end_lock_id)
    locked = number == 0 or end_lock.status == EndLockStatus.LOCKED
    context = {
        "end_lock": end_lock,
        "car": end_lock.car,
        "locked": locked,
        "problem": end_lock.last_problem,
        "attempts": end_lock.attempts,
        "url": _url(end_lock.key.get_absolute_url()),
    }
    if locked:
        subject = _("The %(car)s is locked now") % {"car": end_lock.car.title}
    else:
        subject = _("Action needed: the %(car)s did not lock") % {"car": end_lock.car.title}
    body = render_to_string("emails/keys/end_lock_alert.txt", context)
    send_mail(subject, body, None, [recipient])


def start_unlock_recipients(*, start_unlock_id: int) -> list[str]:
    """The renter (the trip key's holder), the owner and every active admin, each once."""
    start = (
        StartUnlock.objects.select_related("car__owner", "key__holder")
        .filter(pk=start_unlock_id)
        .first()
    )
    if start is None:
        return []
    return _with_staff(start.key.holder.email, start.car.owner.email)


def send_start_unlock_alert(*, start_unlock_id: int, number: int, recipient: str) -> None:
    start = StartUnlock.objects.select_related("car__owner", "key__holder", "command").get(
        pk=start_unlock_id
    )
    opened = number == 0 or start.status == StartUnlockStatus.OPENED
    renter, owner = start.key.holder, start.car.owner
    context = {
        "start": start,
        "car": start.car,
        "opened": opened,
        "failed": start.status == StartUnlockStatus.FAILED,
        "problem": start.last_problem,
        "attempts": start.command.attempts if start.command else 0,
        "starts_at": local_time(start.car, start.starts_at),
        "is_renter": recipient == renter.email,
        "is_owner": recipient == owner.email,
        "renter_name": renter.get_full_name() or renter.email,
        "key_url": _url(start.key.get_absolute_url()),
        "car_keys_url": _url(reverse("keys:car_keys", args=[start.car.public_id])),
    }
    if opened:
        subject = _("The %(car)s is open now") % {"car": start.car.title}
    else:
        subject = _("Action needed: the %(car)s did not open for the trip") % {
            "car": start.car.title
        }
    body = render_to_string("emails/keys/start_unlock_alert.txt", context)
    send_mail(subject, body, None, [recipient])


def send_owner_at_car_request(*, start_unlock_id: int) -> None:
    start = StartUnlock.objects.select_related("car__owner", "key__holder").get(pk=start_unlock_id)
    renter = start.key.holder
    context = {
        "car": start.car,
        "renter_name": renter.get_full_name() or renter.email,
        "renter_phone": renter.phone,
        "rescue_url": _url(reverse("keys:start_rescue", args=[start.key.public_id])),
    }
    subject = _("%(name)s is at your %(car)s and it will not open") % {
        "name": context["renter_name"],
        "car": start.car.title,
    }
    body = render_to_string("emails/keys/owner_at_car.txt", context)
    send_mail(subject, body, None, [start.car.owner.email])


def _with_staff(*emails: str) -> list[str]:
    """These addresses and every active admin's, each once, in that order."""
    return list(dict.fromkeys(e for e in (*emails, *staff_recipients()) if e))


def staff_recipients() -> list[str]:
    return list(
        User.objects.filter(is_staff=True, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )


def send_support_case_email(*, case_id: int, recipient: str) -> None:
    case = SupportCase.objects.select_related(
        "car__owner", "start_unlock__key__holder", "start_unlock__command"
    ).get(pk=case_id)
    renter = case.start_unlock.key.holder
    owner = case.car.owner
    lines = [
        f"A renter is at a car that will not open: {case.car.title} ({case.car.address}, "
        f"{case.car.city}).",
        "",
        case.reason,
        f"Last problem: {case.start_unlock.last_problem or '-'}",
        f"Renter: {renter.get_full_name() or renter.email} <{renter.email}> {renter.phone}",
        f"Owner: {owner.get_full_name() or owner.email} <{owner.email}> {owner.phone}",
        "",
        "The case and the car's command log:",
        _url(reverse("admin:keys_supportcase_change", args=[case.pk])),
        "",
        "— carshare",
    ]
    subject = f"[carshare] Support case {case.pk}: renter at a locked {case.car.title}"
    send_mail(subject, "\n".join(lines), None, [recipient])
