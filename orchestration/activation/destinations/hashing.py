"""Identifier normalisation and SHA-256 hashing for Google Ads Customer Match and Meta Custom
Audiences, each exactly as the platform documents it (grain: one value of one identifier).

Google (Customer Match / Data Manager API, "Format user data",
https://developers.google.com/data-manager/api/devguides/concepts/formatting, and the Google Ads
API Customer Match guide):
* email: lowercase; leading, trailing and intermediate whitespace removed; for gmail.com and
  googlemail.com only, every period before the @ removed and a `+` with what follows it removed
  (`cloudy.sanfrancisco+shopping@gmail.com` → `cloudysanfrancisco@gmail.com`); hashed.
* phone: E.164 with the leading `+` and the country code (`(800)555-0100` → `+18005550100`); hashed.
* first / last name: leading and trailing whitespace removed, lowercase; hashed.
* country code: ISO-3166-1 alpha-2, upper case, NOT hashed; postal code: trimmed, NOT hashed.

Meta (Customer information parameters,
https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters,
the normalisation the Custom Audiences guide refers to):
* EMAIL: whitespace removed, lowercase; hashed (no gmail rule).
* PHONE: symbols, letters and leading zeros removed, with the country code, no `+`
  (US `(650)555-1212` → `16505551212`); hashed.
* FN / LN: lowercase, no punctuation (and no whitespace: "a-z only"), other characters kept as
  UTF-8 (`Valéry` → `valéry`, `정` as is); hashed.
* ZIP: lowercase, no spaces or dashes, the first 5 digits of a US code; hashed.
* COUNTRY: ISO-3166-1 alpha-2, lowercase; hashed.

Every hash is the SHA-256 of the normalised value's UTF-8 bytes as 64 lowercase hex digits.
A value that normalises to nothing (or a phone number that is not one) gives None: the
identifier is left out, never sent as the hash of an empty string.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping

import phonenumbers

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_WHITESPACE = re.compile(r"\s+")
_ALPHA2 = re.compile(r"^[A-Za-z]{2}$")


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 bytes of `text`, 64 lowercase hex digits."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hashed(value: str | None) -> str | None:
    return sha256_hex(value) if value else None


# --- email -------------------------------------------------------------------------------


def google_email(raw: str | None) -> str | None:
    """Google's normal form of an email address (module docstring), or None."""
    if raw is None:
        return None
    email = _WHITESPACE.sub("", str(raw)).lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return None
    if domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
    return f"{local}@{domain}"


def meta_email(raw: str | None) -> str | None:
    """Meta's normal form of an email address: whitespace removed, lowercase; or None."""
    if raw is None:
        return None
    email = _WHITESPACE.sub("", str(raw)).lower()
    local, at, domain = email.rpartition("@")
    return email if at and local and domain else None


# --- phone -------------------------------------------------------------------------------


def e164(raw: str | None, default_region: str = "US") -> str | None:
    """A phone number in E.164 (`+18005550100`), or None if it is not a possible number.

    A number written with `+` (or `00`) is read as international. Otherwise it is read in
    `default_region` (`(650)555-1212`, `1 800 555 0100` in the US); a number that is not valid
    there but is valid with its digits read as country code + number (`441134960987`) is taken
    that way, as both platforms expect numbers to carry their country code."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text or not any(ch.isdigit() for ch in text):
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    candidates: list[phonenumbers.PhoneNumber] = []
    for source, region in ((text, None if text.startswith("+") else default_region),
                           ("+" + re.sub(r"\D", "", text), None)):  # fmt: skip
        try:
            candidates.append(phonenumbers.parse(source, region))
        except phonenumbers.NumberParseException:
            continue
    for number in candidates:
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    for number in candidates:
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def google_phone(raw: str | None, default_region: str = "US") -> str | None:
    """Google's normal form of a phone number: E.164 with the `+`."""
    return e164(raw, default_region)


def meta_phone(raw: str | None, default_region: str = "US") -> str | None:
    """Meta's normal form of a phone number: country code and number, digits only, no `+`."""
    number = e164(raw, default_region)
    return number[1:] if number else None


# --- names ------------------------------------------------------------------------------


def google_name(raw: str | None) -> str | None:
    """Google's normal form of a first or last name: trimmed, lowercase; or None."""
    if raw is None:
        return None
    name = str(raw).strip().lower()
    return name or None


def meta_name(raw: str | None) -> str | None:
    """Meta's normal form of a first or last name: lowercase, punctuation, symbols and
    whitespace removed, every other character kept (UTF-8, NFC); or None."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFC", str(raw)).lower()
    name = "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PSZC")
    return name or None


# --- postcode and country ---------------------------------------------------------------


def country_alpha2(raw: str | None) -> str | None:
    """An ISO-3166-1 alpha-2 code (upper case) from its trimmed text, or None."""
    if raw is None:
        return None
    code = str(raw).strip()
    return code.upper() if _ALPHA2.match(code) else None


def google_country(raw: str | None) -> str | None:
    """Google's country code: alpha-2, upper case, not hashed."""
    return country_alpha2(raw)


def meta_country(raw: str | None) -> str | None:
    """Meta's country: alpha-2, lowercase (hashed by the caller)."""
    code = country_alpha2(raw)
    return code.lower() if code else None


def google_postal_code(raw: str | None) -> str | None:
    """Google's postal code: trimmed, not hashed (US: 5 digits or 5+4, as given)."""
    if raw is None:
        return None
    code = str(raw).strip()
    return code or None


def meta_zip(raw: str | None, country: str | None = None) -> str | None:
    """Meta's ZIP: lowercase, no spaces or dashes; a US code cut to its first 5 digits."""
    if raw is None:
        return None
    code = re.sub(r"[\s\-]", "", str(raw)).lower()
    if (country_alpha2(country) or "") == "US":
        code = code[:5]
    return code or None


# --- what each platform is sent per person -----------------------------------------------

# The c360 fields a platform destination reads (sync YAML `fields`, mapped to customer_360).
IDENTITY_FIELDS = ("email", "phone", "first_name", "last_name", "postal_code", "country_code")


def google_user_identifiers(
    fields: Mapping[str, object], default_region: str = "US"
) -> list[dict[str, object]]:
    """Google Ads `UserIdentifier`s (REST JSON) for one person: a hashed email, a hashed phone
    and an address (hashed first and last name, country code and postal code, all four needed,
    as Customer Match matches an address only with all four). Empty if nothing is usable."""
    out: list[dict[str, object]] = []
    email = _hashed(google_email(_text(fields.get("email"))))
    if email:
        out.append({"hashedEmail": email})
    phone = _hashed(google_phone(_text(fields.get("phone")), default_region))
    if phone:
        out.append({"hashedPhoneNumber": phone})
    first = _hashed(google_name(_text(fields.get("first_name"))))
    last = _hashed(google_name(_text(fields.get("last_name"))))
    country = google_country(_text(fields.get("country_code")))
    postal = google_postal_code(_text(fields.get("postal_code")))
    if first and last and country and postal:
        out.append({"addressInfo": {"hashedFirstName": first, "hashedLastName": last,
                                    "countryCode": country, "postalCode": postal}})  # fmt: skip
    return out


META_SCHEMA = ("EMAIL", "PHONE", "FN", "LN", "ZIP", "COUNTRY")


def meta_user_row(fields: Mapping[str, object], default_region: str = "US") -> list[str]:
    """One row of a Meta multi-key payload in META_SCHEMA order, each value hashed, "" where
    the person has no usable value (Meta's documented placeholder for a missing key)."""
    country = _text(fields.get("country_code"))
    values = (
        meta_email(_text(fields.get("email"))),
        meta_phone(_text(fields.get("phone")), default_region),
        meta_name(_text(fields.get("first_name"))),
        meta_name(_text(fields.get("last_name"))),
        meta_zip(_text(fields.get("postal_code")), country),
        meta_country(country),
    )
    return [_hashed(value) or "" for value in values]


def _text(value: object) -> str | None:
    return None if value is None else str(value)
