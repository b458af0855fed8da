"""Server-rendered Connect pages: plain HTML forms, no JavaScript."""

from __future__ import annotations

from html import escape
from string import Template
from typing import Any

from simulator import catalog

_LAYOUT = Template(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title · Smartcar Connect (simulator)</title>
<style>
body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1{font-size:1.4rem} .sim{color:#667;font-size:.8rem} .error{color:#a00}
fieldset{border:1px solid #ccd;border-radius:6px;margin:1rem 0} label{display:block;margin:.3rem 0}
button{padding:.5rem 1rem;margin:.2rem .4rem .2rem 0} .brands button{min-width:9rem}
</style>
</head>
<body>
<p class="sim">Smartcar Connect · local simulator · $app</p>
<main>
<h1>$title</h1>
$body
</main>
</body>
</html>
"""
)


def _page(title: str, body: str, app: str) -> str:
    return _LAYOUT.substitute(title=escape(title), body=body, app=escape(app))


def brand_page(sid: str, app: str) -> str:
    buttons = "\n".join(
        f'<button type="submit" name="make" value="{escape(m)}">{escape(m.title())}</button>'
        for m in catalog.MAKES
    )
    body = f"""<p><strong>{escape(app)}</strong> wants to connect to your vehicle.
Choose your vehicle's brand.</p>
<form method="post" action="/oauth/connect/{sid}/brand" class="brands">
{buttons}
</form>"""
    return _page("Select your brand", body, app)


def login_page(sid: str, app: str, make: str, error: str = "", email: str = "") -> str:
    err = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = f"""<p>Sign in with your <strong>{escape(make.title())}</strong> connected services account.
Any password works in the simulator.</p>
{err}
<form method="post" action="/oauth/connect/{sid}/login">
<label>Email <input type="email" name="email" required autocomplete="username" value="{escape(email)}"></label>
<label>Password <input type="password" name="password" required autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>"""
    return _page("Sign in", body, app)


def grant_page(
    sid: str,
    app: str,
    vehicle_list: list[dict[str, Any]],
    permissions: list[tuple[str, bool]],
    *,
    single_select: bool,
    error: str = "",
) -> str:
    err = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    kind = "radio" if single_select else "checkbox"
    cars = "\n".join(
        f'<label><input type="{kind}" name="vehicle" value="{escape(v["id"])}"'
        f"{' checked' if i == 0 or not single_select else ''}> "
        f"{v['year']} {escape(v['make'].title())} {escape(v['model'])} "
        f'<span class="sim">VIN {escape(v["vin"])}</span></label>'
        for i, v in enumerate(vehicle_list)
    )
    perms = []
    for name, required in permissions:
        label = escape(catalog.PERMISSION_LABELS.get(name, name.replace("_", " ").capitalize()))
        if required:
            # A disabled box is not submitted: the hidden field carries the required permission.
            perms.append(
                f'<label><input type="checkbox" checked disabled> {label} (required)'
                f'<input type="hidden" name="permission" value="{escape(name)}"></label>'
            )
        else:
            perms.append(
                f'<label><input type="checkbox" name="permission" value="{escape(name)}" checked>'
                f" {label}</label>"
            )
    body = f"""<p><strong>{escape(app)}</strong> is requesting access to your vehicle.</p>
{err}
<form method="post" action="/oauth/connect/{sid}/grant">
<fieldset><legend>Vehicles</legend>
{cars}
</fieldset>
<fieldset><legend>Permissions</legend>
{"".join(perms)}
</fieldset>
<button type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny">Deny access</button>
</form>"""
    return _page("Grant access", body, app)


def error_page(message: str, app: str, return_url: str | None) -> str:
    back = f'<p><a href="{escape(return_url)}">Return to application</a></p>' if return_url else ""
    return _page("Something went wrong", f'<p class="error">{escape(message)}</p>{back}', app)
