"""Identifier normalisation and hashing against the platforms' own published examples, byte for
byte (orchestration/activation/destinations/hashing.py)."""

import pytest

from orchestration.activation.destinations import hashing as h

# --- Google ------------------------------------------------------------------------------
# "Format user data", Data Manager API (Google Ads Customer Match's upload format):
# https://developers.google.com/data-manager/api/devguides/concepts/formatting
#   "cloudy.sanfrancisco+shopping@gmail.com → cloudysanfrancisco@gmail.com"
#   "user.name+NYC@Example.com → user.name+nyc@example.com"
#   "the US phone number (800)555-0100 should be formatted and normalized to +18005550100"
# Google's own formatter tests (googleads/data-manager-python, tests/formatter_test.py):
# https://github.com/googleads/data-manager-python/blob/main/tests/formatter_test.py
#   "Jefferson.Loves.hiking@gmail.com" → "jeffersonloveshiking@gmail.com"
#   "Jefferson.LOVES.Hiking@googlemail.com" → "jeffersonloveshiking@googlemail.com"
#   "QuinnY@EXAMPLE.com" → "quinny@example.com"
#   ("1 800 555 0100", "+18005550100"), ("18005550100", "+18005550100"),
#   ("+1 800-555-0100", "+18005550100"), ("441134960987", "+441134960987"),
#   ("+441134960987", "+441134960987"), ("+44-113-496-0987", "+441134960987")
#   hash of "alexz@example.com": 509e933019bb285a134a9334b8bb679dff79d0ce023d529af4bd744d47b4fd8a
#   for "  ALEXZ@example.com   " and "  alexz@EXAMPLE.com   " too
#   hash of "+18005550100": fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30
#   for "   +1-800-555-0100" and "1-800-555-0100   " too
#   "Hex-encoded hash of "givenname"": 128a07bfe2df877c52076e60d7774cf5baaa046c5a6c48daf30ff43ecca2f814
#   for "Givenname" and "  GivenName  "
#   "Hex-encoded hash of "familyname"": 77762c287e61ce065bee5c15464012c6fbe088398b8057627d5577249430d574
#   for "Familyname" and "  FamilyName "
#   region code " uS " → "US"; postal code " 1229-076  " → "1229-076"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("cloudy.sanfrancisco+shopping@gmail.com", "cloudysanfrancisco@gmail.com"),
        ("user.name+NYC@Example.com", "user.name+nyc@example.com"),
        ("Jefferson.Loves.hiking@gmail.com", "jeffersonloveshiking@gmail.com"),
        ("Jefferson.LOVES.Hiking@googlemail.com", "jeffersonloveshiking@googlemail.com"),
        ("QuinnY@EXAMPLE.com", "quinny@example.com"),
    ],
)
def test_google_email_normal_form_matches_the_published_examples(raw, normal):
    assert h.google_email(raw) == normal


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("(800)555-0100", "+18005550100"),
        ("1 800 555 0100", "+18005550100"),
        ("18005550100", "+18005550100"),
        ("+1 800-555-0100", "+18005550100"),
        ("441134960987", "+441134960987"),
        ("+441134960987", "+441134960987"),
        ("+44-113-496-0987", "+441134960987"),
    ],
)
def test_google_phone_is_e164_with_plus_as_published(raw, normal):
    assert h.google_phone(raw, "US") == normal


@pytest.mark.parametrize(
    "raw", ["alexz@example.com", "  alexz@example.com", "  ALEXZ@example.com   ", "  alexz@EXAMPLE.com   "]
)  # fmt: skip
def test_google_email_hash_is_the_published_digest(raw):
    digest = "509e933019bb285a134a9334b8bb679dff79d0ce023d529af4bd744d47b4fd8a"
    assert h.sha256_hex(h.google_email(raw)) == digest
    assert h.google_user_identifiers({"email": raw}) == [{"hashedEmail": digest}]


@pytest.mark.parametrize("raw", ["+18005550100", "   +1-800-555-0100", "1-800-555-0100   "])
def test_google_phone_hash_is_the_published_digest(raw):
    digest = "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30"
    assert h.sha256_hex(h.google_phone(raw)) == digest
    assert h.google_user_identifiers({"phone": raw}) == [{"hashedPhoneNumber": digest}]


def test_google_names_country_and_postal_code_as_published():
    given = "128a07bfe2df877c52076e60d7774cf5baaa046c5a6c48daf30ff43ecca2f814"
    family = "77762c287e61ce065bee5c15464012c6fbe088398b8057627d5577249430d574"
    for raw in ("Givenname", "  GivenName  "):
        assert h.sha256_hex(h.google_name(raw)) == given
    for raw in ("Familyname", "  FamilyName "):
        assert h.sha256_hex(h.google_name(raw)) == family
    assert h.google_country(" uS ") == "US" and h.google_country(" us") == "US"
    assert h.google_postal_code(" 1229-076  ") == "1229-076"
    # an address is sent only whole (names hashed, country and postal code in clear)
    fields = {"first_name": "  GivenName  ", "last_name": "Familyname", "country_code": " uS ",
              "postal_code": " 1229-076  "}  # fmt: skip
    assert h.google_user_identifiers(fields) == [
        {
            "addressInfo": {
                "hashedFirstName": given,
                "hashedLastName": family,
                "countryCode": "US",
                "postalCode": "1229-076",
            }
        }
    ]
    assert h.google_user_identifiers({**fields, "postal_code": None}) == []


def test_gmail_rule_applies_to_gmail_domains_only_and_empty_values_are_left_out():
    assert h.google_email("a.b+c@gmail.com.evil.org") == "a.b+c@gmail.com.evil.org"
    assert h.google_email("A.B+c@GMAIL.COM") == "ab@gmail.com"
    assert h.meta_email("A.B+c@GMAIL.COM") == "a.b+c@gmail.com", "Meta has no gmail rule"
    for bad in (None, "", "   ", "quinn", " @googlemail.com", " ...@gmail.com"):
        assert h.google_email(bad) is None
    assert h.google_phone(" +A BCD EFG ") is None and h.google_phone("") is None
    assert h.google_user_identifiers({"email": "  ", "phone": None}) == []


# --- Meta --------------------------------------------------------------------------------
# "Customer Information Parameters" (the normalisation the Custom Audiences guide refers to):
# https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
#   em: Input John_Smith@gmail.com, Normalized john_smith@gmail.com,
#       SHA256 62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f
#   ph: Input US phone number (650)555-1212, Normalized 16505551212,
#       SHA256 e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176
#   fn: Input Mary, Normalized mary,
#       SHA256 6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec
#       Input 정, Normalized UTF-8 character "정",
#       SHA256 8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14
#       Input Valéry, Normalized valéry,
#       SHA256 08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c
#   zp: US 94035, UK m11ae ("lowercase with no spaces and no dash", US first 5 digits)
#   country: Input United States, Normalized us,
#       SHA256 79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621

META_EMAIL = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
META_PHONE = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
META_MARY = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"
META_JEONG = "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"
META_VALERY = "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"
META_US = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"


def test_meta_email_and_phone_match_the_published_examples():
    assert h.meta_email("John_Smith@gmail.com") == "john_smith@gmail.com"
    assert h.sha256_hex(h.meta_email("  John_Smith@gmail.com ")) == META_EMAIL
    assert h.meta_phone("(650)555-1212", "US") == "16505551212"
    assert h.sha256_hex(h.meta_phone("(650)555-1212", "US")) == META_PHONE
    assert h.meta_phone("+1 (650) 555-1212") == "16505551212", "no + and no symbols"
    assert h.meta_phone("020 7031 3000", "GB") == "442070313000", "country code, no leading 0"


def test_meta_names_are_lowercase_without_punctuation_in_utf8():
    assert h.meta_name("Mary") == "mary" and h.sha256_hex(h.meta_name("Mary")) == META_MARY
    assert h.sha256_hex(h.meta_name("정")) == META_JEONG
    assert h.meta_name("Valéry") == "valéry" and h.sha256_hex(h.meta_name("Valéry")) == META_VALERY
    # decomposed é (e + combining acute) is the same UTF-8 bytes after NFC
    assert h.sha256_hex(h.meta_name("Vale\u0301ry")) == META_VALERY
    assert h.meta_name("O'Brien-Smith.") == "obriensmith"
    assert h.meta_name(" ... ") is None


def test_meta_zip_and_country_as_published():
    assert h.meta_zip("94035-1234", "US") == "94035"
    assert h.meta_zip("M1 1AE", "GB") == "m11ae"
    assert h.meta_country("US") == "us" and h.sha256_hex(h.meta_country(" us ")) == META_US
    assert h.meta_country("United States") is None, "an alpha-2 code is needed, not a name"


def test_meta_row_follows_the_schema_with_empty_strings_for_missing_keys():
    row = h.meta_user_row(
        {
            "email": " John_Smith@gmail.com",
            "phone": "(650)555-1212",
            "first_name": "Mary",
            "last_name": None,
            "postal_code": "94035",
            "country_code": "US",
        }
    )
    assert h.META_SCHEMA == ("EMAIL", "PHONE", "FN", "LN", "ZIP", "COUNTRY")
    assert row == [META_EMAIL, META_PHONE, META_MARY, "", h.sha256_hex("94035"), META_US]
    assert all(len(v) in (0, 64) and v == v.lower() for v in row)
