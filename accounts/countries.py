"""Countries whose driving licences we accept on a profile.

A short static list (Europe and the larger countries our renters come from) rather than a
dependency: a licence from elsewhere is rare enough for support to handle by hand.
"""

from __future__ import annotations

LICENCE_COUNTRIES: dict[str, str] = {
    "AL": "Albania",
    "AD": "Andorra",
    "AR": "Argentina",
    "AU": "Australia",
    "AT": "Austria",
    "BE": "Belgium",
    "BA": "Bosnia and Herzegovina",
    "BR": "Brazil",
    "BG": "Bulgaria",
    "CA": "Canada",
    "CN": "China",
    "HR": "Croatia",
    "CY": "Cyprus",
    "CZ": "Czechia",
    "DK": "Denmark",
    "EE": "Estonia",
    "FI": "Finland",
    "FR": "France",
    "DE": "Germany",
    "GR": "Greece",
    "HU": "Hungary",
    "IS": "Iceland",
    "IN": "India",
    "IE": "Ireland",
    "IL": "Israel",
    "IT": "Italy",
    "JP": "Japan",
    "XK": "Kosovo",
    "LV": "Latvia",
    "LI": "Liechtenstein",
    "LT": "Lithuania",
    "LU": "Luxembourg",
    "MT": "Malta",
    "MX": "Mexico",
    "MD": "Moldova",
    "MC": "Monaco",
    "ME": "Montenegro",
    "MA": "Morocco",
    "NL": "Netherlands",
    "NZ": "New Zealand",
    "MK": "North Macedonia",
    "NO": "Norway",
    "PL": "Poland",
    "PT": "Portugal",
    "RO": "Romania",
    "SM": "San Marino",
    "RS": "Serbia",
    "SK": "Slovakia",
    "SI": "Slovenia",
    "ZA": "South Africa",
    "KR": "South Korea",
    "ES": "Spain",
    "SE": "Sweden",
    "CH": "Switzerland",
    "TR": "Türkiye",
    "UA": "Ukraine",
    "AE": "United Arab Emirates",
    "GB": "United Kingdom",
    "US": "United States",
}


def country_name(code: str) -> str:
    """The English name for a code on file, or the code itself if it is not in our list."""
    return LICENCE_COUNTRIES.get(code, code)
