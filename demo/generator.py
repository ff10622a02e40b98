"""Deterministic, vectorised sample data for all six source systems, with ground truth.

`generate()` writes one landing file per source contract, the true person behind every
identity-bearing record (`ground_truth.csv`) and a manifest of every defective row it planted
(`defects.csv`). Everything derives from (customers, seed, as_of, noise): the same arguments give
byte-identical files and nothing reads the wall clock; every timestamp is at or before
`as_of 23:59:59Z` (consent `expires_at` may lie in the future: it is a validity end).

Implementation: NumPy for every random draw and all arithmetic (one `default_rng(seed)` stream,
consumed in a fixed order), Arrow compute kernels for string building, fixed-width byte matrices
for ids and timestamps. There are no Python loops over rows; the few loops run over countries,
digit positions, defect classes or columns. See docs/generator.md.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from demo import _names as ref
from demo import planted_propensity, planted_treatment
from demo.planted_propensity import PropensityTruth
from demo.planted_treatment import TreatmentTruth
from demo.text_files import GenerateResult, write_text
from demo.text_files import concat as _cat
from orchestration.contracts.model import all_source_contracts
from orchestration.identity.fold import ascii_spelling

__all__ = ["FORMATS", "PROFILES", "CLVTruth", "GenerateResult", "NoiseProfile", "generate"]

DAY = 86_400
HOUR = 3_600
YEAR = 365 * DAY
# File format per source system (landing file extension).
FORMATS = {
    "crm": "csv",
    "loyalty": "csv",
    "email": "csv",
    "shop": "jsonl",
    "web": "jsonl",
    "consent": "parquet",
}


@dataclass(frozen=True)
class NoiseProfile:
    """Rates of the realistic mess the pipeline must cope with (docs/generator.md explains each).

    Tests hold these defaults fixed; change them only together with the documented figures.
    """

    # Presence: share of persons known to each system.
    crm_presence: float = 0.55
    shop_presence: float = 0.70
    loyalty_presence: float = 0.25
    web_presence: float = 0.60
    # Households: share of persons living with another person (same last name and address).
    household_member_rate: float = 0.25
    # Identity noise.
    no_shared_key_rate: float = 0.05  # shop account with another email and phone than CRM/loyalty
    household_share_rate: float = 0.04  # uses the email or phone of another household member
    namesake_rate: float = 0.01  # strangers with identical first name, last name and birth date
    name_typo_rate: float = 0.03  # per record copy: one letter of the first or last name changed
    email_typo_rate: float = 0.02  # per record copy: one character of the local part changed
    phone_typo_rate: float = 0.02  # per record copy: one digit changed
    anonymous_never_identified_rate: float = 0.30  # anon ids of shop customers never identified
    loyalty_crm_link_rate: float = 0.40  # members also in CRM that carry their CRM contact id
    crm_deleted_rate: float = 0.01  # CRM contacts soft-deleted (is_deleted = true)
    # Postal addresses outside CRM (a shop account's default address, a loyalty card's mailing
    # address). Drawn from a stream of their own, so every other column is the same as without.
    shop_address_rate: float = 0.80  # shop accounts with a saved default address
    loyalty_address_rate: float = 0.60  # loyalty members with a mailing address
    address_moved_rate: float = 0.05  # per record copy: an earlier address (another street)
    address_format_rate: float = 0.10  # per record copy: upper case, a trailing dot, two spaces
    order_gift_rate: float = 0.03  # shop orders shipped to another person's address (a gift)
    # Consent and engagement.
    marketing_consent_rate: float = 0.70  # own emails with a marketing/email grant
    sms_consent_rate: float = 0.35  # own mobiles with an sms/marketing grant
    suppression_rate: float = 0.005  # contact points suppressed on top of hard bounces
    erasure_rate: float = 0.002  # persons who asked for erasure
    # Planted defects (quarantine), per class and applicable table; >= 1 from 200 rows up.
    bad_email_rate: float = 0.002  # email.format: CRM contacts, shop customers, loyalty members
    negative_amount_rate: float = 0.002  # total_amount.non_negative: shop orders
    bad_timestamp_rate: float = 0.002  # occurred_at.type: web events (never identify events)
    missing_required_rate: float = 0.002  # updated_at.required: CRM contacts
    unknown_enum_rate: float = 0.002  # event_type / status .valid_values: engagement, orders
    # Older versions of an existing primary key (ingestion deduplicates them).
    duplicate_rate: float = 0.005  # CRM contacts and shop orders


@dataclass(frozen=True)
class CLVTruth:
    """Planted customer-lifetime truth for shop orders (the `clv` profile; docs/generator.md).

    Purchases follow a BG/NBD process (Fader, Hardie & Lee 2005) and spend a Gamma-Gamma process
    (Fader & Hardie 2013) with these parameters, so a CLV fit on the generated orders can be
    checked against them. Time unit: days; spend: currency units (total_amount).

    Each shop customer makes a first order at a uniform time within the last `history_days` (and
    after the account was created); while alive, repeat orders arrive as a Poisson process with
    rate lambda ~ Gamma(r, rate alpha); after each repeat order the customer drops out with
    probability p ~ Beta(a, b). Every order's total is drawn from Gamma(shape p_spend, rate nu)
    with nu ~ Gamma(q, rate gamma), so the mean order value is p_spend / nu.
    """

    r: float = 0.8
    alpha: float = 80.0  # days: mean purchase rate r / alpha = 0.01 a day (3.65 a year)
    a: float = 0.8
    b: float = 2.4  # mean dropout probability per repeat order a / (a + b) = 0.25
    p_spend: float = 6.0  # Gamma-Gamma p (named so it is not confused with the dropout p)
    q: float = 4.0
    gamma: float = 40.0  # mean order value p_spend * gamma / (q - 1) = 80
    history_days: int = 3 * 365

    def parameters(self) -> dict[str, float]:
        """The planted parameters under the names the fit records (audit.clv_fits)."""
        planted = {k: v for k, v in asdict(self).items() if k != "history_days"}
        return {("p" if k == "p_spend" else k): v for k, v in planted.items()}


CLV_TRUTH_FILES = ("clv_parameters.json", "clv_customers.csv")

# Population engagement profile over the local hour of the week (0 = Monday 00:00): day weight x
# hour weight, one clear peak (Tuesday 20:00), quiet nights. Used by the send_time profile.
_DAY_WEIGHTS = (1.0, 1.12, 1.05, 1.0, 0.9, 0.7, 0.8)
_HOUR_WEIGHTS = (0.05, 0.03, 0.02, 0.02, 0.02, 0.05, 0.15, 0.45, 0.8, 0.7, 0.6, 0.6,
                 0.8, 0.75, 0.6, 0.55, 0.6, 0.7, 0.9, 1.1, 1.3, 1.15, 0.8, 0.35)  # fmt: skip


@dataclass(frozen=True)
class SendTimeTruth:
    """Planted best time to send (the `send_time` profile; docs/generator.md).

    Every person has a preferred local hour of the week (0..167, Monday 00:00 local = 0), drawn
    from the population profile (`population_hour_of_week()`). Each email open and each web/app
    session start of the person falls in that hour with probability `affinity`, otherwise in an
    hour drawn from the population profile; times are local to the person's time zone.
    """

    affinity: float = 0.4

    @staticmethod
    def population_hour_of_week() -> np.ndarray:
        """The population's engagement distribution over the 168 local hours of the week."""
        w = np.outer(_DAY_WEIGHTS, _HOUR_WEIGHTS).ravel()
        return w / w.sum()


SEND_TIME_TRUTH_FILES = ("send_time_customers.csv",)
# Named profiles for `c360 generate --profile`: keyword arguments of generate(); the default
# (no planted truth) keeps the demo data as it was.
PROFILES: dict[str, dict] = {
    "default": {},
    "clv": {"clv_truth": CLVTruth()},
    "send_time": {"send_time_truth": SendTimeTruth()},
    "lead_score": {"propensity_truth": PropensityTruth()},
    # closed loop: reads the home's contact_history (planted_treatment.py)
    "treatment": {"treatment_truth": TreatmentTruth()},
    # the second, independent noise profile: person-only records (noise_second.py)
    "person_link": {"second_noise": "link"},
    "person_dedup": {"second_noise": "dedup"},
}


# ---------------------------------------------------------------------------------------------
# Vectorised string helpers (Arrow arrays of type string; NumPy for numbers).
# ---------------------------------------------------------------------------------------------

_STR = pa.string()
_LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")
_UPPER = tuple("ABDEFGHJLNPQRSTUWXYZ")  # letters used in GB and NL postcodes


def _const(text: str, count: int) -> pa.Array:
    return pa.repeat(pa.scalar(text, _STR), count)


def _lookup(labels: Sequence[str], idx: np.ndarray) -> pa.Array:
    """labels[idx] as an Arrow string array (a dictionary lookup, no per-row Python)."""
    return pa.array(list(labels), _STR).take(pa.array(np.asarray(idx, dtype=np.int64)))


def _num(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64)).cast(_STR)


def _pad(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(_num(values), width, "0")


def _where(mask: np.ndarray, a: pa.Array | str | None, b: pa.Array | str | None) -> pa.Array:
    a = pa.scalar(a, _STR) if a is None or isinstance(a, str) else a
    b = pa.scalar(b, _STR) if b is None or isinstance(b, str) else b
    return pc.if_else(pa.array(np.asarray(mask, dtype=bool)), a, b)


def _keep(mask: np.ndarray, values: pa.Array) -> pa.Array:
    """values where mask, else null."""
    return _where(mask, values, None)


def _take(values: pa.Array, idx: np.ndarray) -> pa.Array:
    return values.take(pa.array(np.asarray(idx, dtype=np.int64)))


def _take_where(mask: np.ndarray, values: pa.Array, idx: np.ndarray) -> pa.Array:
    """values[idx] where mask, else null (idx is only read where mask holds)."""
    hit = np.flatnonzero(mask)
    return _scatter(pa.nulls(len(mask), _STR), hit, _take(values, np.asarray(idx)[hit]))


def _slice(values: pa.Array, start: int, stop: int | None = None) -> pa.Array:
    if stop is None:
        return pc.utf8_slice_codeunits(values, start)
    return pc.utf8_slice_codeunits(values, start, stop)


def _is_null(values: pa.Array) -> np.ndarray:
    return pc.is_null(values).to_numpy(zero_copy_only=False)


def _scatter(values: pa.Array, idx: np.ndarray, replacement: pa.Array) -> pa.Array:
    """values with positions idx replaced by `replacement` (same length as idx)."""
    if len(idx) == 0:
        return values
    pos = np.arange(len(values), dtype=np.int64)
    pos[idx] = len(values) + np.arange(len(idx), dtype=np.int64)
    return pa.concat_arrays([values, replacement.cast(_STR)]).take(pa.array(pos))


def _fixed(buf: np.ndarray) -> pa.Array:
    """An (n, width) uint8 matrix of ASCII bytes → n strings of `width` characters (zero-copy)."""
    n, width = buf.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(buf)
    return pa.Array.from_buffers(_STR, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _digits(buf: np.ndarray, pos: int, values: np.ndarray, width: int) -> None:
    """Write zero-padded decimal `values` into columns pos..pos+width of a byte matrix."""
    v = np.asarray(values, dtype=np.int64)
    for j in range(width):  # loop over digit positions, not rows
        buf[:, pos + width - 1 - j] = 48 + (v // 10**j) % 10


def _ids(prefix: str, count: int, width: int) -> pa.Array:
    """Sequential ids prefix + zero-padded 1..count, e.g. C000123."""
    width = max(width, len(str(count)))
    buf = np.empty((count, len(prefix) + width), dtype=np.uint8)
    buf[:, : len(prefix)] = np.frombuffer(prefix.encode(), dtype=np.uint8)
    _digits(buf, len(prefix), np.arange(1, count + 1), width)
    return _fixed(buf)


def _civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month = month_start.astype(np.int64) % 12 + 1
    day = (d - month_start).astype(np.int64) + 1
    return year, month, day


def _date(days: np.ndarray) -> pa.Array:
    """Days since 1970-01-01 → 'YYYY-MM-DD'."""
    y, m, d = _civil(days)
    buf = np.empty((len(y), 10), dtype=np.uint8)
    _digits(buf, 0, y, 4)
    _digits(buf, 5, m, 2)
    _digits(buf, 8, d, 2)
    buf[:, [4, 7]] = ord("-")
    return _fixed(buf)


def _ts(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds → ISO 8601 UTC 'YYYY-MM-DDTHH:MM:SSZ'."""
    s = np.asarray(seconds, dtype=np.int64)
    days, rem = np.divmod(s, DAY)
    y, m, d = _civil(days)
    buf = np.empty((len(s), 20), dtype=np.uint8)
    _digits(buf, 0, y, 4)
    _digits(buf, 5, m, 2)
    _digits(buf, 8, d, 2)
    _digits(buf, 11, rem // HOUR, 2)
    _digits(buf, 14, rem % HOUR // 60, 2)
    _digits(buf, 17, rem % 60, 2)
    buf[:, [4, 7]] = ord("-")
    buf[:, 10] = ord("T")
    buf[:, [13, 16]] = ord(":")
    buf[:, 19] = ord("Z")
    return _fixed(buf)


def _money(cents: np.ndarray) -> pa.Array:
    """Integer cents → '12.50' (a leading '-' for negative amounts)."""
    c = np.asarray(cents, dtype=np.int64)
    a = np.abs(c)
    text = _cat(_num(a // 100), ".", _pad(a % 100, 2))
    return _where(c < 0, _cat("-", text), text) if (c < 0).any() else text


def _uuid_like(rng: np.random.Generator, count: int) -> pa.Array:
    """uuid4-shaped strings from the seeded RNG (uuid.uuid4() would break determinism)."""
    raw = rng.integers(0, 256, (count, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexchars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    pairs = np.stack([hexchars[raw >> 4], hexchars[raw & 0x0F]], axis=2).reshape(count, 32)
    buf = np.full((count, 36), ord("-"), dtype=np.uint8)
    hex_pos = [*range(0, 8), *range(9, 13), *range(14, 18), *range(19, 23), *range(24, 36)]
    buf[:, hex_pos] = pairs
    return _fixed(buf)


def _by_group(
    group: np.ndarray, groups: int, build: Callable[[int, np.ndarray], pa.Array]
) -> pa.Array:
    """Build a string column group by group (e.g. per country) and put rows back in order."""
    parts, order = [], []
    for g in range(groups):  # loop over groups, not rows
        idx = np.flatnonzero(group == g)
        if len(idx):
            parts.append(build(g, idx))
            order.append(idx)
    if not parts:
        return pa.array([], _STR)
    where_from = np.concatenate(order)
    inverse = np.empty_like(where_from)
    inverse[where_from] = np.arange(len(where_from))
    return pa.concat_arrays(parts).take(pa.array(inverse))


def _skewed(rng: np.random.Generator, size: int, length: int, power: float = 1.6) -> np.ndarray:
    """Indices 0..length-1, more often near 0 (lists are ordered from common to rare)."""
    return np.minimum((rng.random(size) ** power * length).astype(np.int64), length - 1)


def _flat(table: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A dict of lists → (flat list, offsets, lengths) for per-group skewed picks."""
    lists = list(table.values())
    flat = [x for lst in lists for x in lst]
    lengths = np.array([len(lst) for lst in lists], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(lengths)[:-1]]
    return flat, offsets, lengths


def _pick_in_group(
    rng: np.random.Generator, group: np.ndarray, offsets, lengths, power: float = 1.6
) -> np.ndarray:
    u = rng.random(len(group)) ** power
    return offsets[group] + np.minimum((u * lengths[group]).astype(np.int64), lengths[group] - 1)


def _between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Uniform integer seconds in [low, high] (element-wise; high >= low)."""
    low = np.asarray(low, dtype=np.int64)
    span = np.maximum(np.asarray(high, dtype=np.int64) - low, 0)
    return low + np.floor(rng.random(len(low)) * (span + 1)).astype(np.int64)


def _starts(counts: np.ndarray) -> np.ndarray:
    """Start offsets of consecutive groups of the given sizes (empty for no groups)."""
    return (np.cumsum(counts) - counts).astype(np.int64)


def _count(rows: int, rate: float) -> int:
    """How many rows get a planted defect: ~rate, at least 1 from 200 rows up."""
    k = round(rows * rate)
    if rows >= 200 and rate > 0:
        k = max(k, 1)
    return min(k, rows)


# ---------------------------------------------------------------------------------------------
# Typos and phone formats (per record copy).
# ---------------------------------------------------------------------------------------------


def _typo_letters(rng: np.random.Generator, values: pa.Array, rate: float) -> pa.Array:
    """Change one character at position 1 or 2 to another lowercase letter in a share `rate`.

    Used on names (at least 3 characters) and on emails: the local part starts at 0 and is at
    least 4 characters long, so the change stays in the local part and keeps the address valid.
    """
    hit = np.flatnonzero(rng.random(len(values)) < rate)
    pos = rng.integers(1, 3, len(hit))
    letter = rng.integers(0, 26, len(hit))
    if len(hit) == 0:
        return values
    sub = _take(values, hit)
    at1 = pos == 1
    orig = _where(at1, _slice(sub, 1, 2), _slice(sub, 2, 3))
    new = _lookup(_LETTERS, letter)
    same = pc.fill_null(pc.equal(pc.utf8_lower(orig), new), False)
    new = _where(np.asarray(same), _lookup(_LETTERS, (letter + 1) % 26), new)
    left = _where(at1, _slice(sub, 0, 1), _slice(sub, 0, 2))
    right = _where(at1, _slice(sub, 2), _slice(sub, 3))
    return _scatter(values, hit, _cat(left, new, right))


def _typo_digit(rng: np.random.Generator, values: pa.Array, rate: float) -> pa.Array:
    """Change one of the last two digits of a phone in a share `rate` (every format ends in
    at least two digits). Real numbers carry a check digit, so a typo never turns into another
    person's real number."""
    hit = np.flatnonzero(rng.random(len(values)) < rate)
    last = rng.random(len(hit)) < 0.5
    bump = rng.integers(1, 10, len(hit))
    if len(hit) == 0:
        return values
    sub = _take(values, hit)
    orig = _where(last, _slice(sub, -1), _slice(sub, -2, -1))
    digit = (np.asarray(pc.fill_null(orig.cast(pa.int64(), safe=False), 0)) + bump) % 10
    left = _where(last, _slice(sub, 0, -1), _slice(sub, 0, -2))
    right = _where(last, "", _slice(sub, -1))
    return _scatter(values, hit, _cat(left, _num(digit), right))


def _with_check(v: np.ndarray) -> pa.Array:
    """National number digits v plus a check digit: changing either of the last two digits
    breaks the check (3·δ is never 0 mod 10), so one-digit typos never collide."""
    v = np.asarray(v, dtype=np.int64)
    check = (3 * (v % 10) + v // 10) % 10
    return _num(v * 10 + check)


# Phone styles: 0 +CCN | 1 +CC grouped | 2 00CC grouped | 3 national grouped (US (AAA) BBB-CCCC)
# | 4 national compact (US AAA.BBB.CCCC) | 5 US +1 (AAA) BBB-CCCC, others +CC N
# | 6 US AAA-BBB-CCCC, others 00CCN. Styles 3 and 4 outside the US need the record's country.
_PHONE_GROUPS = {0: (3, 6), 1: (4,), 2: (3,), 3: (1, 3, 5, 7), 4: (1,)}


def _grouped(national: pa.Array, cuts: tuple[int, ...]) -> pa.Array:
    parts: list[pa.Array | str] = []
    start = 0
    for cut in (*cuts, None):  # loop over digit groups, not rows
        if parts:
            parts.append(" ")
        parts.append(_slice(national, start, cut))
        start = cut or 0
    return _cat(*parts)


def _phone_text(
    rng: np.random.Generator,
    country: np.ndarray,
    national: pa.Array,
    p_us: Sequence[float],
    p_other: Sequence[float],
) -> pa.Array:
    """Write each national number in one of several real-world styles (same digits)."""
    style = np.where(
        country == 0,
        rng.choice(7, len(country), p=np.asarray(p_us) / np.sum(p_us)),
        rng.choice(7, len(country), p=np.asarray(p_other) / np.sum(p_other)),
    )

    def build(c: int, idx: np.ndarray) -> pa.Array:
        nat = _take(national, idx)
        cc = ref.CALLING_CODES[c]
        grouped = _grouped(nat, _PHONE_GROUPS[c])
        if c == 0:
            a, b, d = _slice(nat, 0, 3), _slice(nat, 3, 6), _slice(nat, 6)
            national_grouped = _cat("(", a, ") ", b, "-", d)
            compact = _cat(a, ".", b, ".", d)
            style5 = _cat("+1 (", a, ") ", b, "-", d)
            style6 = _cat(a, "-", b, "-", d)
        else:
            national_grouped = _cat("0", grouped)
            compact = _cat("0", nat)
            style5 = _cat("+", cc, " ", nat)
            style6 = _cat("00", cc, nat)
        variants = [
            _cat("+", cc, nat),
            _cat("+", cc, " ", grouped),
            _cat("00", cc, " ", grouped),
            national_grouped,
            compact,
            style5,
            style6,
        ]
        return pc.choose(pa.array(style[idx].astype(np.int8)), *variants)

    return _by_group(country, 5, build)


# ---------------------------------------------------------------------------------------------
# Persons.
# ---------------------------------------------------------------------------------------------


@dataclass
class _People:
    n: int
    pid: pa.Array
    country: np.ndarray  # 0..4 (ref.COUNTRIES)
    household: np.ndarray  # index of the household's first person (self when alone)
    dob: np.ndarray  # days since epoch
    first: pa.Array
    last: pa.Array
    line1: pa.Array
    line2: pa.Array
    postal: pa.Array
    region: pa.Array
    city_name: pa.Array
    tz: pa.Array
    email: pa.Array  # personal email as used by the person (a sharer uses the other's)
    owns_email: np.ndarray
    mobile: pa.Array  # national number (no trunk 0, no country code)
    owns_mobile: np.ndarray
    landline: pa.Array  # national number, one per person
    no_key: np.ndarray
    alt_email: pa.Array  # the shop-only address of no-shared-key persons
    alt_mobile: pa.Array

    def e164(self, national: pa.Array, idx: np.ndarray) -> pa.Array:
        cc = _lookup(ref.CALLING_CODES, self.country[idx])
        return _cat("+", cc, _take(national, idx))


def _rank_within(rng: np.random.Generator, group: np.ndarray, groups: int) -> np.ndarray:
    """A random rank 0..k-1 of each row within its group (a per-group permutation)."""
    perm = rng.permutation(len(group))
    order = perm[np.argsort(group[perm], kind="stable")]
    starts = np.r_[0, np.cumsum(np.bincount(group, minlength=groups))[:-1]]
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(group)) - starts[group[order]]
    return rank


def _spread(r: np.ndarray, capacity: np.ndarray | int) -> np.ndarray:
    """A bijection of 0..capacity-1 (the multiplier is coprime with 2, 3 and 5): unique ranks
    stay unique, but numbers do not look sequential."""
    return ((r % capacity) * 7_654_321 + 1_234_567) % capacity


def _letters_only(names: Sequence[str]) -> list[str]:
    """Lower-case a-z form of each name in a reference list (for email local parts)."""
    return ["".join(ch for ch in x.lower() if "a" <= ch <= "z") for x in names]


def _people(rng: np.random.Generator, n: int, noise: NoiseProfile) -> _People:
    cities = ref.CITIES
    city_country = np.array([c[0] for c in cities])
    # --- where people live ------------------------------------------------------------------
    country = rng.choice(5, n, p=ref.COUNTRY_WEIGHTS).astype(np.int64)
    weights = np.zeros((5, len(cities)))
    for i, c in enumerate(cities):  # loop over the city table
        weights[c[0], i] = c[6]
    cum = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    city = np.minimum((rng.random(n)[:, None] > cum[country]).sum(axis=1), len(cities) - 1)
    city = np.where(city_country[city] == country, city, np.argmax(weights[country] > 0, axis=1))

    stems, stem_off, stem_len = _flat(ref.STREET_STEMS)
    kinds, kind_off, kind_len = _flat(ref.STREET_KINDS)
    line2s, l2_off, l2_len = _flat(ref.ADDRESS_LINE2)
    stem = _lookup(stems, _pick_in_group(rng, country, stem_off, stem_len))
    kind = _lookup(kinds, _pick_in_group(rng, country, kind_off, kind_len, power=2.0))
    house = _num(rng.integers(1, np.array([2999, 250, 150, 120, 150])[country] + 1))
    line1 = pc.choose(
        pa.array(np.array([0, 0, 1, 2, 1], dtype=np.int8)[country]),
        _cat(house, " ", stem, " ", kind),  # 12 Oak Ave
        _cat(stem, kind, " ", house),  # Hauptstrasse 12
        _cat(house, " ", kind, " ", stem),  # 12 rue de la Paix
    )
    has_line2 = rng.random(n) < 0.2
    line2 = _keep(has_line2, _lookup(line2s, _pick_in_group(rng, country, l2_off, l2_len, 1.0)))
    seed = _lookup([c[4] for c in cities], city)
    p2 = rng.integers(0, 1000, n)
    l1, l2 = rng.integers(0, len(_UPPER), n), rng.integers(0, len(_UPPER), n)
    district = rng.integers(1, 21, n)
    inward = rng.integers(1, 10, n)

    def postal_for(c: int, idx: np.ndarray) -> pa.Array:
        s = _take(seed, idx)
        if c == 0:
            return _cat(s, _pad(p2[idx] % 100, 2))  # ZIP 10012
        letters = _cat(_lookup(_UPPER, l1[idx]), _lookup(_UPPER, l2[idx]))
        if c == 1:
            return _cat(s, _num(district[idx]), " ", _num(inward[idx]), letters)  # SW12 4QX
        if c == 4:
            return _cat(s, _pad(p2[idx] % 100, 2), " ", letters)  # 1012 AB
        return _cat(s, _pad(p2[idx], 3))  # 10115, 75011

    postal = _by_group(country, 5, postal_for)

    # --- households: a member takes the last name and address of the household's first person
    member = rng.random(n) < noise.household_member_rate
    heads = np.flatnonzero(~member)
    if len(heads) == 0:
        member[:] = False
        heads = np.arange(n)
    household = np.arange(n)
    household[member] = heads[rng.integers(0, len(heads), int(member.sum()))]
    country, city = country[household], city[household]
    line1, line2 = _take(line1, household), _take(line2, household)
    postal = _take(postal, household)

    # --- names and birth dates --------------------------------------------------------------
    origin = np.where(
        rng.random(n) < 0.8,
        np.asarray(ref.COUNTRY_NAME_ORIGIN)[country],
        rng.integers(0, len(ref.NAME_ORIGINS), n),
    )
    firsts, f_off, f_len = _flat(ref.FIRST_NAMES)
    lasts, s_off, s_len = _flat(ref.LAST_NAMES)
    first_i = _pick_in_group(rng, origin, f_off, f_len, 1.5)
    last_i = _pick_in_group(rng, origin, s_off, s_len, 1.5)[household]
    lo = (dt.date(1940, 1, 1) - dt.date(1970, 1, 1)).days
    hi = (dt.date(2008, 12, 31) - dt.date(1970, 1, 1)).days
    dob = rng.integers(lo, hi + 1, n)
    # Namesakes: a person living alone takes the first name, last name and birth date of a
    # stranger (another household, another address).
    heads_of_others = np.zeros(n, dtype=bool)
    heads_of_others[household[member]] = True
    alone = np.flatnonzero(~member & ~heads_of_others)
    k = min(round(n * noise.namesake_rate), len(alone) // 2)
    if k:
        b = rng.choice(alone, k, replace=False)
        others = np.setdiff1d(np.arange(n), b)
        a = others[rng.integers(0, len(others), k)]
        first_i[b], last_i[b], dob[b] = first_i[a], last_i[a], dob[a]
    first_key = _lookup(_letters_only(firsts), first_i)
    last_key = _lookup(_letters_only(lasts), last_i)

    # --- personal emails: unique digits make every address unique ---------------------------
    digits = _num(rng.permutation(n) + 1 + rng.integers(0, 90, n) * n)
    pattern = rng.choice(6, n, p=[0.30, 0.20, 0.10, 0.15, 0.10, 0.15])
    initial = _slice(first_key, 0, 1)
    local = pc.choose(
        pa.array(pattern.astype(np.int8)),
        _cat(first_key, ".", last_key, digits),
        _cat(first_key, last_key, digits),
        _cat(first_key, "_", last_key, digits),
        _cat(initial, last_key, digits),
        _cat(last_key, ".", first_key, digits),
        _cat(first_key, digits),
    )
    domain = _lookup(ref.EMAIL_DOMAINS, _skewed(rng, n, len(ref.EMAIL_DOMAINS), 1.3))
    own_email = _cat(local, "@", domain)
    work = _lookup(ref.WORK_DOMAINS, rng.integers(0, len(ref.WORK_DOMAINS), n))
    alt_email = _cat(initial, last_key, ".", digits, "@", work)

    # --- phones: national numbers, unique per person, with a check digit --------------------
    rank = _rank_within(rng, country, 5)
    rank_l = _rank_within(rng, country, 5)
    us_mobile = np.array(ref.US_MOBILE_AREA_CODES, dtype=np.int64)
    us_alt = np.array(ref.US_ALT_AREA_CODES, dtype=np.int64)
    de_mobile = np.array([151, 152, 157, 159])[rng.integers(0, 4, n)]
    de_alt = np.array([160, 162, 163])[rng.integers(0, 3, n)]
    area = np.array([int(c[5]) for c in cities], dtype=np.int64)[city]
    area_digits = np.array([len(c[5]) for c in cities], dtype=np.int64)[city]
    n_us, n_alt = len(us_mobile), len(us_alt)
    mobile_v = np.select(
        [country == 0, country == 1, country == 2],
        [
            us_mobile[rank % n_us] * 10**6 + 200_000 + _spread(rank // n_us, 800_000),
            7 * 10**8 + 40_000_000 + _spread(rank, 50_000_000),
            de_mobile * 10**7 + _spread(rank, 10**7),
        ],
        6 * 10**7 + _spread(rank, 5_000_000),  # FR 6..., NL 6...
    )
    alt_v = np.select(
        [country == 0, country == 1, country == 2, country == 3],
        [
            us_alt[rank % n_alt] * 10**6 + 200_000 + _spread(rank // n_alt, 800_000),
            7 * 10**8 + 10_000_000 + _spread(rank, 30_000_000),
            de_alt * 10**7 + _spread(rank, 10**7),
            7 * 10**7 + _spread(rank, 10**7),
        ],
        6 * 10**7 + 5_000_000 + _spread(rank, 5_000_000),  # NL
    )
    local_digits = np.select([country == 0, country == 1, country == 4], [6, 9 - area_digits, 6], 7)
    land_v = np.where(
        country == 0,
        area * 10**6 + 200_000 + _spread(rank_l, 800_000),
        area * 10**local_digits + _spread(rank_l, 10**local_digits),
    )
    own_mobile, alt_mobile = _with_check(mobile_v), _with_check(alt_v)

    # --- household sharing: a member uses the email (70%) or mobile (30%) of the first person
    sharers = np.flatnonzero(member)
    k = min(round(n * noise.household_share_rate), len(sharers))
    email_owner, phone_owner = np.arange(n), np.arange(n)
    if k:
        s = np.sort(rng.choice(sharers, k, replace=False))
        by_email = rng.random(k) < 0.7
        email_owner[s[by_email]] = household[s[by_email]]
        phone_owner[s[~by_email]] = household[s[~by_email]]
    no_key = rng.random(n) < noise.no_shared_key_rate

    return _People(
        n=n,
        pid=_ids("p", n, 7),
        country=country,
        household=household,
        dob=dob,
        first=_lookup(firsts, first_i),
        last=_lookup(lasts, last_i),
        line1=line1,
        line2=line2,
        postal=postal,
        region=_lookup([c[2] for c in cities], city),
        city_name=_lookup([c[1] for c in cities], city),
        tz=_lookup([c[3] for c in cities], city),
        email=_take(own_email, email_owner),
        owns_email=email_owner == np.arange(n),
        mobile=_take(own_mobile, phone_owner),
        owns_mobile=phone_owner == np.arange(n),
        landline=_with_check(land_v),
        no_key=no_key,
        alt_email=alt_email,
        alt_mobile=alt_mobile,
    )


# ---------------------------------------------------------------------------------------------
# Output: landing files, defect manifest.
# ---------------------------------------------------------------------------------------------


class _Output:
    """Writes landing files in contract column order and collects the defect manifest."""

    def __init__(self, landing: Path, as_of: dt.date, progress: Callable[[str], None] | None):
        self.landing, self.as_of, self.progress = landing, as_of, progress
        self.contracts = {c.id: c for c in all_source_contracts()}
        self.rows: dict[str, int] = {}
        self.files: dict[str, int] = {}
        self.defects: list[pa.Table] = []
        self.spelling: _Spelling | None = None

    def say(self, message: str) -> None:
        if self.progress:
            self.progress(message)

    def write(self, contract_id: str, columns: dict[str, pa.Array]) -> None:
        contract = self.contracts[contract_id]
        expected = list(contract.column_names)
        if sorted(columns) != sorted(expected):
            raise AssertionError(f"{contract_id}: columns {sorted(columns)} != {sorted(expected)}")
        if self.spelling is not None and contract_id in SPELLED_TABLES:
            columns = self.spelling.apply(columns)
        table = pa.table({name: columns[name].cast(_STR) for name in expected})
        folder = self.landing / contract.source / contract.entity / f"dt={self.as_of.isoformat()}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        fmt = FORMATS[contract.source]
        path = folder / f"part-00000.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, path, compression="zstd")
        else:
            write_text(path, table, fmt)
        self.rows[contract_id] = table.num_rows
        self.files[path.relative_to(self.landing).as_posix()] = table.num_rows
        self.say(f"generate: wrote {contract.source}/{contract.entity} {table.num_rows:,} rows")

    def plant(
        self, contract_id: str, record_ids: pa.Array, rule_id: str, column: str, kind: str
    ) -> None:
        source, entity = contract_id.split("__", 1)
        k = len(record_ids)
        if k == 0:
            return
        self.defects.append(
            pa.table(
                {
                    "source": _const(source, k),
                    "entity": _const(entity, k),
                    "record_id": record_ids.cast(_STR),
                    "rule_id": _const(rule_id, k),
                    "column": _const(column, k),
                    "kind": _const(kind, k),
                }
            )
        )


def _bad_email(rng: np.random.Generator, email: pa.Array) -> pa.Array:
    """Invalid variants of valid addresses (each breaks the email.format pattern)."""
    variant = rng.integers(0, 4, len(email)).astype(np.int8)
    return pc.choose(
        pa.array(variant),
        pc.replace_substring(email, "@", "(at)"),
        pc.replace_substring(email, "@", "@@"),
        pc.replace_substring(email, "@", " @ "),
        pc.replace_substring_regex(email, "@.*$", "@"),
    )


def _split_defects(
    rng: np.random.Generator, eligible: np.ndarray, counts: Sequence[int]
) -> list[np.ndarray]:
    """Disjoint random row sets (sorted) of the given sizes from `eligible` row indices."""
    total = min(sum(counts), len(eligible))
    chosen = rng.choice(eligible, total, replace=False) if total else np.array([], np.int64)
    out, start = [], 0
    for k in counts:  # loop over defect classes
        out.append(np.sort(chosen[start : start + k]).astype(np.int64))
        start += k
    return out


def _older_versions(
    rng: np.random.Generator,
    cols: dict[str, pa.Array],
    defective: list[np.ndarray],
    rate: float,
    since: np.ndarray,
    updated: np.ndarray,
) -> tuple[np.ndarray, dict[str, pa.Array]]:
    """Rows (sorted) that get an extra, older version, chosen among the rows not in `defective`,
    and those versions: copies of the rows' `cols`, updated_at drawn between the row's `since`
    and its own `updated` (one row per entry of `updated`)."""
    rows = len(updated)
    clean = np.setdiff1d(np.arange(rows), np.concatenate(defective))
    k = min(_count(rows, rate), len(clean))
    dup = np.sort(rng.choice(clean, k, replace=False)) if k else np.array([], np.int64)
    older = _table_take(cols, dup)
    older["updated_at"] = _ts(_between(rng, since[dup], updated[dup] - 1))
    return dup, older


def _interleave_versions(current: int, older_of: np.ndarray) -> np.ndarray:
    """Row order for `current` rows followed by older versions of rows `older_of`: each older
    version sits right before its current version."""
    key = np.r_[np.arange(current) * 2 + 1, older_of * 2]
    return np.argsort(key, kind="stable")


def _table_take(columns: dict[str, pa.Array], order: np.ndarray) -> dict[str, pa.Array]:
    return {k: _take(v, order) for k, v in columns.items()}


def _concat(a: dict[str, pa.Array], b: dict[str, pa.Array]) -> dict[str, pa.Array]:
    return {k: pa.concat_arrays([a[k].cast(_STR), b[k].cast(_STR)]) for k in a}


def _present(
    rng: np.random.Generator,
    people: _People,
    presence: float,
    end: int,
    max_years: int,
    prefix: str,
) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """The persons a source holds (each with probability `presence`), one record each, created
    between `max_years` and two days before `end`: persons and creation times in creation order
    (ids then grow with time, as in real systems) and the record ids (`prefix` + 6 digits)."""
    persons = np.flatnonzero(rng.random(people.n) < presence)
    created = end - rng.integers(2 * DAY, max_years * YEAR, len(persons))
    order = np.argsort(created, kind="stable")
    return persons[order], created[order], _ids(prefix, len(persons), 6)


# ---------------------------------------------------------------------------------------------
# The generator.
# ---------------------------------------------------------------------------------------------


def generate(
    customers: int,
    seed: int,
    as_of: dt.date,
    landing_dir: Path,
    truth_dir: Path,
    noise: NoiseProfile = NoiseProfile(),
    progress: Callable[[str], None] | None = print,
    clv_truth: CLVTruth | None = None,
    send_time_truth: SendTimeTruth | None = None,
    propensity_truth: PropensityTruth | None = None,
    second_noise: str | None = None,
    treatment_truth: TreatmentTruth | None = None,
) -> GenerateResult:
    """Write landing files, ground truth and the defect manifest for `customers` persons.

    With `clv_truth`, shop orders are drawn from its BG/NBD + Gamma-Gamma process instead and
    its truth is written as clv_parameters.json and clv_customers.csv (default: None, the demo
    data unchanged). With `send_time_truth`, email opens and web/app sessions happen at each
    person's planted preferred local hour of the week (or a population hour), written as
    send_time_customers.csv (default: None). With `second_noise` (`link` | `dedup`), person-only
    records of the second noise profile instead (demo/noise_second.py)."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if second_noise is not None:
        from demo import noise_second

        noise2 = noise_second.SecondNoise(mode=second_noise)
        return noise_second.generate(
            noise2, customers, seed, as_of, landing_dir, truth_dir, progress
        )
    started = time.perf_counter()
    landing_dir, truth_dir = Path(landing_dir), Path(truth_dir)
    out = _Output(landing_dir, as_of, progress)
    rng = np.random.default_rng(seed)
    # Addresses outside CRM come from their own stream: adding them left every other value as is.
    address_rng = np.random.default_rng([seed, 0xADD])
    shipping_rng = np.random.default_rng([seed, 0x5419])  # orders' shipping addresses, likewise
    out.spelling = _Spelling(np.random.default_rng([seed, 0x5BE11]))  # names' spellings, likewise
    end = int(dt.datetime.combine(as_of, dt.time(23, 59, 59), dt.UTC).timestamp())

    people = _people(rng, customers, noise)
    out.say(f"generate: persons {customers:,}")
    # send_time profile: its own stream, so the main stream is consumed exactly as without it
    st = None if send_time_truth is None else _SendTime(send_time_truth, people, seed)
    crm = _crm(rng, people, noise, end, out)
    shop = _shop(rng, people, noise, end, out, address_rng, shipping_rng, clv_truth, seed)
    loyalty = _loyalty(rng, people, noise, end, out, crm, address_rng)
    anon_ids, anon_person = _web(rng, people, noise, end, out, shop, st)
    _consent_and_email(rng, people, noise, end, as_of, out, st)

    # --- truth -------------------------------------------------------------------------------
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth = pa.concat_tables(
        pa.table(
            {
                "source": _const(source, len(ids)),
                "entity": _const(entity, len(ids)),
                "source_record_id": ids,
                "person_id": _take(people.pid, persons),
            }
        )
        for source, entity, ids, persons in (
            ("crm", "contacts", crm["ids"], crm["person"]),
            ("shop", "customers", shop["ids"], shop["person"]),
            ("loyalty", "members", loyalty["ids"], loyalty["person"]),
            ("web", "anonymous_ids", anon_ids, anon_person),
        )
    )
    write_text(truth_dir / "ground_truth.csv", truth, "csv")
    if propensity_truth is not None:  # lead_score profile: reads ground_truth.csv, drops defects
        lead = planted_propensity.plant(propensity_truth, out, truth_dir, as_of, seed)
    columns = ("source", "entity", "record_id", "rule_id", "column", "kind")
    defects = (
        pa.concat_tables(out.defects)
        if out.defects
        else pa.table({c: pa.array([], _STR) for c in columns})
    )
    write_text(truth_dir / "defects.csv", defects, "csv")
    kinds = defects.column("kind").to_pylist()
    planted = {"quarantine": kinds.count("quarantine"), "duplicate": kinds.count("duplicate")}
    manifest = {
        "customers": customers,
        "seed": seed,
        "as_of": as_of.isoformat(),
        "noise": asdict(noise),
        "rows": dict(sorted(out.rows.items())),
        "files": dict(sorted(out.files.items())),
        "ground_truth_records": truth.num_rows,
        "defects": planted,
    }
    if clv_truth is not None:
        manifest["clv"] = asdict(clv_truth)
        _write_clv_truth(truth_dir, clv_truth, shop, people, customers, seed, as_of, out)
    else:  # no stale CLV truth from an earlier run with the profile
        for name in CLV_TRUTH_FILES:
            (truth_dir / name).unlink(missing_ok=True)
    if st is not None:
        manifest["send_time"] = asdict(send_time_truth)
        st.write_truth(truth_dir, people, out)
    else:  # no stale send-time truth from an earlier run with the profile
        for name in SEND_TIME_TRUTH_FILES:
            (truth_dir / name).unlink(missing_ok=True)
    if propensity_truth is not None:
        manifest["lead_score"] = lead
    else:
        planted_propensity.remove_truth(truth_dir)
    if treatment_truth is not None:  # after the shop orders: its orders go next to them
        manifest["treatment"] = planted_treatment.plant(
            treatment_truth, seed, as_of, landing_dir, truth_dir, out.say
        )
    else:
        planted_treatment.remove_truth(truth_dir)
    (truth_dir / "generate_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    out.say(
        f"generate: ground truth {truth.num_rows:,} records; defects planted "
        f"{planted['quarantine']:,} quarantine, {planted['duplicate']:,} duplicate"
    )
    return GenerateResult(
        landing_dir, truth_dir, dict(out.rows), customers, time.perf_counter() - started
    )


def _crm(rng, people: _People, noise: NoiseProfile, end: int, out: _Output) -> dict:
    n = people.n
    persons, created, ids = _present(rng, people, noise.crm_presence, end, 8, "C")
    m = len(persons)
    updated = _between(rng, created + DAY, np.full(m, end))
    country = people.country[persons]

    # --- accounts: households (same last name and address), a few businesses and partners -----
    business = rng.random(m) < 0.03
    no_account = ~business & (rng.random(m) < 0.05)
    n_business = max(1, round(m * 0.03 / 8)) if m else 0
    hh_keys, hh_first, hh_of = np.unique(
        people.household[persons], return_index=True, return_inverse=True
    )
    acc_of = np.where(business, len(hh_keys) + rng.integers(0, max(n_business, 1), m), hh_of)
    acc_of = np.where(no_account, -1, acc_of)
    n_acc = len(hh_keys) + n_business
    used = np.zeros(n_acc, dtype=bool)
    used[acc_of[acc_of >= 0]] = True
    acc_created = np.full(n_acc, end, dtype=np.int64)
    np.minimum.at(acc_created, acc_of[acc_of >= 0], created[acc_of >= 0])
    acc_created -= rng.integers(0, 30 * DAY, n_acc)
    acc_list = np.flatnonzero(used)
    acc_order = acc_list[np.argsort(acc_created[acc_list], kind="stable")]
    na = len(acc_order)
    acc_number = np.full(n_acc, -1)
    acc_number[acc_order] = np.arange(na)
    account_ids = _ids("A", na, 6)
    is_household = acc_order < len(hh_keys)
    head = persons[hh_first[np.minimum(acc_order, max(len(hh_keys) - 1, 0))]] if m else acc_order
    biz_country = rng.choice(5, na, p=ref.COUNTRY_WEIGHTS)
    acc_country = np.where(is_household, people.country[head], biz_country)
    household_name = pc.choose(
        pa.array((rng.random(na) < 0.5).astype(np.int8)),
        _cat(_take(people.last, head), " household"),
        _cat("The ", _take(people.last, head), " Family"),
    )
    business_name = _cat(
        _lookup(ref.BUSINESS_NAMES, rng.integers(0, len(ref.BUSINESS_NAMES), na)),
        " ",
        _lookup(ref.BUSINESS_SUFFIX, acc_country),
    )
    business_type = _where(rng.random(na) < 0.2, "partner", "business")
    a_created = acc_created[acc_order]
    out.write(
        "crm__accounts",
        {
            "account_id": account_ids,
            "account_name": _keep(
                rng.random(na) < 0.97, _where(is_household, household_name, business_name)
            ),
            "account_type": _where(is_household, "household", business_type),
            "country_code": _lookup(ref.COUNTRIES, acc_country),
            "created_at": _ts(a_created),
            "updated_at": _ts(_between(rng, a_created, np.full(na, end))),
            "is_deleted": _where(rng.random(na) < 0.003, "true", "false"),
        },
    )

    # --- contacts -----------------------------------------------------------------------------
    typo_last = rng.random(m) < 0.3
    first = _take(people.first, persons)
    last = _take(people.last, persons)
    first = _where(typo_last, first, _typo_letters(rng, first, noise.name_typo_rate))
    last = _where(typo_last, _typo_letters(rng, last, noise.name_typo_rate), last)
    email = _typo_letters(rng, _take(people.email, persons), noise.email_typo_rate)
    email = _where(rng.random(m) < 0.08, pc.utf8_capitalize(email), email)
    mobile = _phone_text(
        rng, country, _take(people.mobile, persons), [2, 3, 1, 3, 3, 2, 2], [2, 4, 2, 3, 2, 1, 1]
    )
    landline = _phone_text(
        rng, country, _take(people.landline, persons), [1, 1, 0, 4, 2, 1, 2], [1, 2, 1, 5, 1, 0, 0]
    )
    cols = {
        "contact_id": ids,
        "account_id": _take_where(acc_of >= 0, account_ids, acc_number[acc_of]),
        "first_name": first,
        "last_name": last,
        "email": _keep(rng.random(m) < 0.90, email),
        "phone": _keep(rng.random(m) < 0.35, _typo_digit(rng, landline, noise.phone_typo_rate)),
        "mobile_phone": _keep(
            rng.random(m) < 0.75, _typo_digit(rng, mobile, noise.phone_typo_rate)
        ),
        "date_of_birth": _keep(rng.random(m) < 0.85, _date(people.dob[persons])),
        "address_line1": _take(people.line1, persons),
        "address_line2": _take(people.line2, persons),
        "city": _take(people.city_name, persons),
        "postal_code": _take(people.postal, persons),
        "region": _keep(rng.random(m) < 0.9, _take(people.region, persons)),
        "country_code": _lookup(ref.COUNTRIES, country),
        "time_zone": _keep(rng.random(m) < 0.95, _take(people.tz, persons)),
        "created_at": _ts(created),
        "updated_at": _ts(updated),
        "is_deleted": _where(rng.random(m) < noise.crm_deleted_rate, "true", "false"),
    }
    bad_email, no_updated = _split_defects(
        rng,
        np.arange(m),
        [_count(m, noise.bad_email_rate), _count(m, noise.missing_required_rate)],
    )
    broken = _bad_email(rng, _take(people.email, persons[bad_email]))
    cols["email"] = _scatter(cols["email"], bad_email, broken)
    cols["updated_at"] = _scatter(cols["updated_at"], no_updated, pa.nulls(len(no_updated), _STR))
    out.plant("crm__contacts", _take(ids, bad_email), "email.format", "email", "quarantine")
    out.plant(
        "crm__contacts", _take(ids, no_updated), "updated_at.required", "updated_at", "quarantine"
    )
    # Older versions: same contact_id, earlier updated_at, one other value different.
    dup, older = _older_versions(
        rng, cols, [bad_email, no_updated], noise.duplicate_rate, created, updated
    )
    what = rng.integers(0, 3, len(dup))
    line2 = older["address_line2"]
    older["address_line2"] = _where(what == 0, _where(_is_null(line2), "Apt 2", None), line2)
    mob = older["mobile_phone"]
    e164 = people.e164(people.mobile, persons[dup])
    older["mobile_phone"] = _where(what == 1, _where(_is_null(mob), e164, None), mob)
    fst = older["first_name"]
    older["first_name"] = _where(what == 2, pc.utf8_lower(fst), fst)
    out.plant("crm__contacts", _take(ids, dup), "duplicate", "contact_id", "duplicate")
    out.write("crm__contacts", _table_take(_concat(cols, older), _interleave_versions(m, dup)))
    contact_of_person = np.full(n, -1)
    contact_of_person[persons] = np.arange(m)
    return {"ids": ids, "person": persons, "row_of_person": contact_of_person}


def _styled(rng: np.random.Generator, line1: pa.Array, rate: float) -> pa.Array:
    """Street lines, a share `rate` written differently (upper case, a trailing dot, a doubled
    space): the same address to a matcher that normalises."""
    k = len(line1)
    style = np.where(rng.random(k) < rate, rng.integers(1, 4, k), 0)
    return pc.choose(
        pa.array(style.astype(np.int8)),
        line1,
        pc.utf8_upper(line1),
        _cat(line1, "."),
        pc.replace_substring(line1, " ", "  ", max_replacements=1),
    )


def _address_copy(
    rng: np.random.Generator, people: _People, persons: np.ndarray, rate: float, noise: NoiseProfile
) -> dict[str, pa.Array]:
    """A non-CRM source's copy of the person's address: present in a share `rate`; a share
    `address_moved_rate` holds an earlier address (another person's street and postal code, as
    when an account was never updated after a move), `address_format_rate` is written
    differently (see _styled)."""
    k = len(persons)
    moved = rng.random(k) < noise.address_moved_rate
    source = np.where(moved, rng.integers(0, people.n, k), persons)
    line1 = _styled(rng, _take(people.line1, source), noise.address_format_rate)
    has = rng.random(k) < rate
    return {
        "address_line1": _keep(has, line1),
        "address_line2": _keep(has, _take(people.line2, source)),
        "city": _keep(has, _take(people.city_name, source)),
        "postal_code": _keep(has, _take(people.postal, source)),
    }


def _shipping_address(
    rng: np.random.Generator, people: _People, persons: np.ndarray, noise: NoiseProfile
) -> dict[str, pa.Array]:
    """One shipping address per order of `persons` (the ordering person, one entry per order):
    the person's current address — also when the account's saved default is an earlier one —
    except a share `order_gift_rate` shipped to another person's address; street lines written
    differently in a share `address_format_rate`."""
    k = len(persons)
    gift = rng.random(k) < noise.order_gift_rate
    to = np.where(gift, rng.integers(0, people.n, k), persons)
    return {
        "shipping_address_line1": _styled(rng, _take(people.line1, to), noise.address_format_rate),
        "shipping_address_line2": _take(people.line2, to),
        "shipping_city": _take(people.city_name, to),
        "shipping_postal_code": _take(people.postal, to),
    }


def _shop(
    rng,
    people: _People,
    noise: NoiseProfile,
    end: int,
    out: _Output,
    address_rng: np.random.Generator,
    shipping_rng: np.random.Generator,
    clv: CLVTruth | None = None,
    seed: int = 0,
) -> dict:
    persons, created, ids = _present(rng, people, noise.shop_presence, end, 6, "S")
    s = len(persons)
    country = people.country[persons]
    no_key = people.no_key[persons]
    email = _where(no_key, _take(people.alt_email, persons), _take(people.email, persons))
    national = _where(no_key, _take(people.alt_mobile, persons), _take(people.mobile, persons))
    phone = _phone_text(rng, country, national, [5, 2, 0, 1, 1, 1, 0], [5, 3, 1, 1, 0, 0, 0])
    cols = {
        "shop_customer_id": ids,
        "email": _keep(rng.random(s) < 0.98, _typo_letters(rng, email, noise.email_typo_rate)),
        "phone": _keep(rng.random(s) < 0.45, _typo_digit(rng, phone, noise.phone_typo_rate)),
        "first_name": _typo_letters(rng, _take(people.first, persons), noise.name_typo_rate),
        "last_name": _take(people.last, persons),
        "country_code": _lookup(ref.COUNTRIES, country),
        **_address_copy(address_rng, people, persons, noise.shop_address_rate, noise),
        "created_at": _ts(created),
        "updated_at": _ts(_between(rng, created, np.full(s, end))),
    }
    (bad,) = _split_defects(rng, np.arange(s), [_count(s, noise.bad_email_rate)])
    cols["email"] = _scatter(cols["email"], bad, _bad_email(rng, _take(email, bad)))
    out.plant("shop__customers", _take(ids, bad), "email.format", "email", "quarantine")
    out.write("shop__customers", cols)

    # --- orders (0-20 per customer, skewed) over the last ~3 years ---------------------------
    clv_out: dict | None = None
    if clv is None:
        n_orders = np.minimum(rng.geometric(0.3, s) - 1, 20)
        owner = np.repeat(np.arange(s), n_orders)
        earliest = np.maximum(created[owner], end - 3 * YEAR)
        ordered = _between(rng, earliest, np.full(len(owner), end - 2 * HOUR))
    else:  # planted BG/NBD + Gamma-Gamma orders, from a stream of their own
        clv_out = _clv_orders(np.random.default_rng([seed, 0xC17]), clv, created, end)
        owner, ordered = clv_out["owner"], clv_out["ordered"]
    by_time = np.argsort(ordered, kind="stable")
    owner, ordered = owner[by_time], ordered[by_time]
    o = len(owner)
    order_ids = _ids("O", o, 8)
    age = end - ordered
    u = rng.random(o)
    # 0 placed 1 paid 2 shipped 3 delivered 4 cancelled 5 refunded, by the order's age
    status_i = np.select(
        [age < DAY, age < 5 * DAY],
        [np.where(u < 0.4, 0, 1), np.where(u < 0.05, 4, np.where(u < 0.35, 1, 2))],
        np.where(u < 0.06, 4, np.where(u < 0.12, 5, 3)),
    )
    if clv is not None:  # every planted order is a purchase: paid, shipped or delivered
        status_i = np.select([age < DAY, age < 5 * DAY], [1, np.where(u < 0.35, 1, 2)], 3)
    statuses = ("placed", "paid", "shipped", "delivered", "cancelled", "refunded")
    lag_lo = np.array([60, 600, DAY, 3 * DAY, HOUR, 10 * DAY])[status_i]
    lag_hi = np.array([600, 2 * HOUR, 3 * DAY, 7 * DAY, 2 * DAY, 30 * DAY])[status_i]
    updated = np.minimum(_between(rng, ordered + lag_lo, ordered + lag_hi), end)
    o_country = np.where(rng.random(o) < 0.97, country[owner], rng.integers(0, 5, o))

    # lines: 1-5 products from the catalogue; the order total is the sum minus the discount
    n_lines = rng.choice(5, o, p=[0.45, 0.25, 0.15, 0.10, 0.05]) + 1
    if clv_out is not None:  # one line per order, priced at the planted spend
        n_lines = np.ones(o, dtype=np.int64)
    line_order = np.repeat(np.arange(o), n_lines)
    nl = len(line_order)
    product = _skewed(rng, nl, len(ref.PRODUCTS), 1.4)
    price = np.array([p[2] for p in ref.PRODUCTS], dtype=np.int64)[product]
    qty = 1 + (rng.random(nl) < 0.2) + (rng.random(nl) < 0.05)
    if clv_out is not None:
        price, qty = clv_out["cents"][by_time], np.ones(nl, dtype=np.int64)
    subtotal = np.bincount(line_order, weights=price * qty, minlength=o).astype(np.int64)
    kind = rng.choice(4, o, p=[0.70, 0.05, 0.15, 0.10])  # none, zero, percent, voucher
    if clv_out is not None:
        kind = np.zeros(o, dtype=np.int64)  # no discounts: the total is the planted spend
    percent = np.array([10, 15, 20])[rng.integers(0, 3, o)]
    voucher = np.minimum(np.array([500, 1000])[rng.integers(0, 2, o)], subtotal)
    discount = np.select([kind == 2, kind == 3], [subtotal * percent // 100, voucher], 0)
    total = subtotal - discount
    cols = {
        "order_id": order_ids,
        "shop_customer_id": _take(ids, owner),
        "ordered_at": _ts(ordered),
        "status": _lookup(statuses, status_i),
        "currency": _lookup(ref.CURRENCIES, o_country),
        "total_amount": _money(total),
        "discount_amount": _keep(kind > 0, _money(discount)),
        "shipping_country_code": _lookup(ref.COUNTRIES, o_country),
        **_shipping_address(shipping_rng, people, persons[owner], noise),
        "updated_at": _ts(updated),
    }
    negative, unknown = _split_defects(
        rng,
        np.arange(o),
        [_count(o, noise.negative_amount_rate), _count(o, noise.unknown_enum_rate)],
    )
    minus = _money(-(total[negative] + rng.integers(1, 5000, len(negative))))
    cols["total_amount"] = _scatter(cols["total_amount"], negative, minus)
    odd = ("pending_review", "on_hold", "backordered", "lost")
    odd_status = _lookup(odd, rng.integers(0, len(odd), len(unknown)))
    cols["status"] = _scatter(cols["status"], unknown, odd_status)
    out.plant(
        "shop__orders",
        _take(order_ids, negative),
        "total_amount.non_negative",
        "total_amount",
        "quarantine",
    )
    out.plant(
        "shop__orders", _take(order_ids, unknown), "status.valid_values", "status", "quarantine"
    )
    dup, older = _older_versions(
        rng, cols, [negative, unknown], noise.duplicate_rate, ordered, updated
    )
    before = np.array([0, 0, 1, 2, 0, 3])[status_i[dup]]
    older["status"] = _lookup(statuses, before)
    # a placed order's older version had no shipping country yet (versions always differ)
    older["shipping_country_code"] = _keep(before != status_i[dup], older["shipping_country_code"])
    out.plant("shop__orders", _take(order_ids, dup), "duplicate", "order_id", "duplicate")
    out.write("shop__orders", _table_take(_concat(cols, older), _interleave_versions(o, dup)))

    line_no = np.arange(nl) - _starts(n_lines)[line_order]
    out.write(
        "shop__order_lines",
        {
            "order_line_id": _cat(_take(order_ids, line_order), "-", _num(line_no + 1)),
            "order_id": _take(order_ids, line_order),
            "product_id": _cat("P", _pad(product + 1, 4)),
            "product_name": _lookup([p[0] for p in ref.PRODUCTS], product),
            "category": _lookup(ref.CATEGORIES, np.array([p[1] for p in ref.PRODUCTS])[product]),
            "unit_price": _money(price),
            "quantity": _num(qty),
            "updated_at": _ts(ordered[line_order]),
        },
    )
    shop_of_person = np.full(people.n, -1)
    shop_of_person[persons] = np.arange(s)
    result = {"ids": ids, "person": persons, "row_of_person": shop_of_person, "created": created}
    if clv_out is not None:
        result["clv"] = clv_out
    return result


def _clv_orders(rng: np.random.Generator, clv: CLVTruth, created: np.ndarray, end: int) -> dict:
    """Orders of every shop customer (rows of `created`) from the planted BG/NBD process.

    Per customer: first order t0 uniform in [max(created, end - history), end - 2 h]; while
    alive, repeat orders of a Poisson process with rate lambda; the customer drops out after
    each repeat order with probability p. Vectorised: the potential repeat orders in (t0, end]
    are n ~ Poisson(lambda * T) uniform times; the dropout comes after J ~ Geometric(p) repeat
    orders, so the first min(n, J) of the sorted times are the ones that happen.
    """
    s = len(created)
    lam = rng.gamma(clv.r, 1.0 / clv.alpha, s) / DAY  # per second
    drop = rng.beta(clv.a, clv.b, s)
    nu = rng.gamma(clv.q, 1.0 / clv.gamma, s)
    first = _between(
        rng, np.maximum(created, end - clv.history_days * DAY), np.full(s, end - 2 * HOUR)
    )
    span = (end - first).astype(np.float64)
    potential = rng.poisson(lam * span)
    lives = rng.geometric(np.maximum(drop, 1e-12))  # repeat orders until the dropout
    repeat = np.minimum(potential, lives)
    who = np.repeat(np.arange(s), potential)
    when = rng.random(len(who))
    order = np.lexsort((when, who))  # sorted times within each customer
    rank = np.arange(len(who)) - _starts(potential)[who[order]]
    kept = order[rank < repeat[who[order]]]
    r_who = who[kept]
    r_time = first[r_who] + np.maximum(np.ceil(when[kept] * span[r_who]), 1).astype(np.int64)
    owner = np.r_[np.arange(s), r_who]
    ordered = np.r_[first, np.minimum(r_time, end)]
    spend = rng.gamma(clv.p_spend, 1.0 / nu[owner])
    cents = np.maximum(np.round(spend * 100), 1).astype(np.int64)
    return {
        "owner": owner,
        "ordered": ordered,
        "cents": cents,
        "lam": lam * DAY,
        "drop": drop,
        "nu": nu,
        "first": first,
        "repeat": repeat,
        "alive": lives > potential,
    }


def _write_clv_truth(truth_dir, clv, shop, people, customers, seed, as_of, out) -> None:
    """clv_parameters.json (the planted parameters) and clv_customers.csv (one row per shop
    customer: its latent purchase rate, dropout probability, spend rate and whether it is still
    alive at as_of)."""
    c = shop["clv"]
    params = {
        "model": "BG/NBD purchases + Gamma-Gamma spend",
        "time_unit": "day",
        "customers": customers,
        "seed": seed,
        "as_of": as_of.isoformat(),
        "parameters": clv.parameters(),
        "history_days": clv.history_days,
        "shop_customers": len(c["first"]),
        "alive_at_as_of": int(c["alive"].sum()),
    }
    (truth_dir / "clv_parameters.json").write_text(json.dumps(params, indent=2) + "\n")
    n = len(c["first"])
    table = pa.table(
        {
            "shop_customer_id": shop["ids"],
            "person_id": _take(people.pid, shop["person"]),
            "first_ordered_at": _ts(c["first"]),
            "repeat_orders": _num(c["repeat"]),
            "purchase_rate_per_day": pa.array([f"{v:.8f}" for v in c["lam"]], _STR),
            "dropout_probability": pa.array([f"{v:.8f}" for v in c["drop"]], _STR),
            "spend_rate": pa.array([f"{v:.8f}" for v in c["nu"]], _STR),
            "mean_order_value": pa.array([f"{clv.p_spend / v:.4f}" for v in c["nu"]], _STR),
            "alive_at_as_of": _where(c["alive"], "true", "false"),
        }
    )
    assert table.num_rows == n
    write_text(truth_dir / "clv_customers.csv", table, "csv")
    out.say(
        f"generate: clv truth {n:,} shop customers, {params['alive_at_as_of']:,} alive at as_of"
    )


def _loyalty(
    rng,
    people: _People,
    noise: NoiseProfile,
    end: int,
    out: _Output,
    crm: dict,
    address_rng: np.random.Generator,
):
    persons, joined, ids = _present(rng, people, noise.loyalty_presence, end, 5, "L")
    lm = len(persons)
    country = people.country[persons]
    contact_row = crm["row_of_person"][persons]
    link = (contact_row >= 0) & (rng.random(lm) < noise.loyalty_crm_link_rate)
    # No country column in loyalty: phones outside the US are written internationally.
    phone = _phone_text(
        rng, country, _take(people.mobile, persons), [2, 2, 1, 2, 2, 1, 1], [3, 4, 2, 0, 0, 1, 1]
    )
    typo_last = rng.random(lm) < 0.3
    first = _take(people.first, persons)
    last = _take(people.last, persons)
    first = _where(typo_last, first, _typo_letters(rng, first, noise.name_typo_rate))
    last = _where(typo_last, _typo_letters(rng, last, noise.name_typo_rate), last)
    points = np.floor(rng.lognormal(7.0, 1.3, lm)).astype(np.int64)
    points = np.where(rng.random(lm) < 0.05, 0, np.minimum(points, 250_000))
    tier = np.searchsorted(np.array([1_000, 5_000, 15_000]), points, side="right")
    email = _typo_letters(rng, _take(people.email, persons), noise.email_typo_rate)
    cols = {
        "member_id": ids,
        "crm_contact_id": _take_where(link, crm["ids"], contact_row),
        "email": _keep(rng.random(lm) < 0.85, email),
        "phone": _keep(rng.random(lm) < 0.60, _typo_digit(rng, phone, noise.phone_typo_rate)),
        "first_name": first,
        "last_name": last,
        "birthday": _keep(rng.random(lm) < 0.85, _date(people.dob[persons])),
        **{
            k: v
            for k, v in _address_copy(
                address_rng, people, persons, noise.loyalty_address_rate, noise
            ).items()
            if k != "address_line2"
        },
        "tier": _lookup(("bronze", "silver", "gold", "platinum"), tier),
        "points_balance": _num(points),
        "joined_at": _ts(joined),
        "updated_at": _ts(_between(rng, joined, np.full(lm, end))),
    }
    (bad,) = _split_defects(rng, np.arange(lm), [_count(lm, noise.bad_email_rate)])
    broken = _bad_email(rng, _take(people.email, persons[bad]))
    cols["email"] = _scatter(cols["email"], bad, broken)
    out.plant("loyalty__members", _take(ids, bad), "email.format", "email", "quarantine")
    out.write("loyalty__members", cols)
    return {"ids": ids, "person": persons}


_EVENT_NAMES = (
    "session_start", "app_open", "page", "product_viewed", "cart_add", "checkout",
    "order_completed", "feature_used", "identify",
)  # fmt: skip


def _event_properties() -> tuple[list[str], np.ndarray, np.ndarray]:
    """JSON property objects per event name (never PII), as one flat lookup list."""
    pids = [f"P{i + 1:04d}" for i in range(len(ref.PRODUCTS))]
    per_event = {
        "session_start": [{"referrer": r} for r in ref.REFERRERS],
        "app_open": [{"app_version": v} for v in ref.APP_VERSIONS],
        "page": [{"path": p} for p in ref.PAGES]
        + [{"path": f"/c/{c}"} for c in ref.CATEGORIES]
        + [{"path": f"/p/{p.lower()}"} for p in pids],
        "product_viewed": [{"product_id": p} for p in pids],
        "cart_add": [{"product_id": p, "quantity": 1} for p in pids],
        "checkout": [{"step": s} for s in ("shipping", "payment", "review")],
        "order_completed": [{"items": k} for k in range(1, 6)],
        "feature_used": [{"feature": f} for f in ref.FEATURES],
        "identify": [{"method": "login"}, {"method": "signup"}],
    }
    return _flat({k: tuple(json.dumps(d) for d in per_event[k]) for k in _EVENT_NAMES})


class _SendTime:
    """The send_time profile's planted preferred hours and the times it moves engagement to."""

    def __init__(self, truth: SendTimeTruth, people: _People, seed: int):
        self.truth = truth
        self.rng = np.random.default_rng([seed, 0x5E4D])
        self.population = truth.population_hour_of_week()
        self.preferred = self.rng.choice(168, people.n, p=self.population)
        encoded = people.tz.dictionary_encode()
        self.zones = encoded.dictionary.to_pylist()
        self.zone = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)

    def _offset(self, seconds: np.ndarray, persons: np.ndarray) -> np.ndarray:
        """UTC offset in seconds of each person's time zone at each instant (DST included)."""
        import pandas as pd  # only with the profile

        offset = np.zeros(len(seconds), dtype=np.int64)
        zone = self.zone[persons]
        for z, name in enumerate(self.zones):  # loop over time zones
            sel = np.flatnonzero(zone == z)
            if len(sel):
                utc = pd.to_datetime(seconds[sel], unit="s", utc=True)
                local = utc.tz_convert(name).tz_localize(None)
                offset[sel] = (local - utc.tz_localize(None)).total_seconds().astype(np.int64)
        return offset

    def hour_of_week(self, seconds: np.ndarray, persons: np.ndarray) -> np.ndarray:
        """Local hour of the week (Monday 00:00 = 0; 1970-01-01 was a Thursday)."""
        local = seconds + self._offset(seconds, persons)
        return (local // HOUR + 72) % 168

    def target(self, persons: np.ndarray) -> np.ndarray:
        """Per engagement: the person's preferred hour (probability affinity) or a population one."""
        k = len(persons)
        mine = self.rng.random(k) < self.truth.affinity
        other = self.rng.choice(168, k, p=self.population)
        return np.where(mine, self.preferred[persons], other)

    def after(self, seconds: np.ndarray, persons: np.ndarray) -> np.ndarray:
        """The first instant at or after each time whose local hour of the week is the target."""
        delta = (self.target(persons) - self.hour_of_week(seconds, persons)) % 168
        return seconds + delta * HOUR

    def before(self, seconds: np.ndarray, persons: np.ndarray) -> np.ndarray:
        """The last instant at or before each time whose local hour of the week is the target."""
        delta = (self.hour_of_week(seconds, persons) - self.target(persons)) % 168
        return seconds - delta * HOUR

    def write_truth(self, truth_dir: Path, people: _People, out: _Output) -> None:
        days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
        labels = [f"{days[h // 24]} {h % 24:02d}:00" for h in range(168)]
        table = pa.table(
            {
                "person_id": people.pid,
                "time_zone": people.tz,
                "preferred_hour_of_week": _num(self.preferred),
                "preferred_local_time": _lookup(labels, self.preferred),
                "email": _keep(people.owns_email, people.email),
            }
        )
        write_text(truth_dir / "send_time_customers.csv", table, "csv")
        out.say(f"generate: send_time truth {people.n:,} persons, affinity {self.truth.affinity}")


def _web(
    rng, people: _People, noise: NoiseProfile, end: int, out: _Output, shop: dict,
    st: _SendTime | None = None,
):  # fmt: skip
    n = people.n
    web_persons = np.flatnonzero(rng.random(n) < noise.web_presence)
    n_anon = rng.choice(3, len(web_persons), p=[0.6, 0.3, 0.1]) + 1
    anon_person = np.repeat(web_persons, n_anon)
    na = len(anon_person)
    anon_ids = _uuid_like(rng, na)
    platform = rng.choice(3, na, p=[0.6, 0.25, 0.15])  # web, ios, android (one device)
    shop_row = shop["row_of_person"][anon_person]
    identified = (shop_row >= 0) & (rng.random(na) >= noise.anonymous_never_identified_rate)

    # sessions in the last 90 days, then events within each session
    n_sess = np.minimum(rng.geometric(0.5, na), 10)
    sess_anon = np.repeat(np.arange(na), n_sess)
    ns = len(sess_anon)
    sess_start = end - rng.integers(2 * HOUR, 90 * DAY, ns)
    if st is not None:  # moved back to a target local hour of the week (up to 167 h earlier)
        sess_start = st.before(sess_start, anon_person[sess_anon])
    n_ev = np.minimum(rng.geometric(0.28, ns), 15)
    ev_sess = np.repeat(np.arange(ns), n_ev)
    ne = len(ev_sess)
    first_of_sess = _starts(n_ev)
    is_first = np.zeros(ne, dtype=bool)
    is_first[first_of_sess] = True
    gaps = np.where(is_first, 0, rng.integers(3, 240, ne))
    cum = np.cumsum(gaps)
    occurred = sess_start[ev_sess] + cum - cum[first_of_sess][ev_sess]
    ev_anon = sess_anon[ev_sess]
    name = np.where(
        is_first,
        np.where(platform[ev_anon] == 0, 0, 1),
        rng.choice([2, 3, 4, 5, 6, 7], ne, p=[0.40, 0.28, 0.12, 0.05, 0.04, 0.11]),
    )
    # identify calls: once per identified anonymous id, inside one of its sessions
    id_anon = np.flatnonzero(identified)
    first_sess = _starts(n_sess)
    pick = np.floor(rng.random(len(id_anon)) * n_sess[id_anon]).astype(np.int64)
    id_time = sess_start[first_sess[id_anon] + pick] + rng.integers(5, 600, len(id_anon))
    after_signup = shop["created"][shop_row[id_anon]] + 60
    id_time = np.minimum(np.maximum(id_time, after_signup), end - HOUR)
    all_anon = np.r_[ev_anon, id_anon]
    all_name = np.r_[name, np.full(len(id_anon), 8)]
    all_occ = np.r_[occurred, id_time]
    total = len(all_anon)
    delay = np.where(platform[all_anon] == 0, rng.integers(0, 5, total), rng.integers(1, 30, total))
    received = np.minimum(all_occ + delay, end)
    order = np.lexsort((np.arange(total), all_occ, received))
    all_anon, all_name = all_anon[order], all_name[order]
    all_occ, received = all_occ[order], received[order]
    is_identify = all_name == 8
    user = np.where(is_identify, shop_row[all_anon], 0)
    props, p_off, p_len = _event_properties()
    event_ids = _ids("E", total, 10)
    cols = {
        "event_id": event_ids,
        "anonymous_id": _take(anon_ids, all_anon),
        "user_id": _take_where(is_identify, shop["ids"], user),
        "event_name": _lookup(_EVENT_NAMES, all_name),
        "platform": _lookup(("web", "ios", "android"), platform[all_anon]),
        "properties": _lookup(props, _pick_in_group(rng, all_name, p_off, p_len, 1.3)),
        "occurred_at": _ts(all_occ),
        "received_at": _ts(received),
    }
    eligible = np.flatnonzero(~is_identify)
    (bad,) = _split_defects(rng, eligible, [_count(len(eligible), noise.bad_timestamp_rate)])
    good = _take(cols["occurred_at"], bad)
    day, month, year, hh_mm = (_slice(good, a, z) for a, z in ((8, 10), (5, 7), (0, 4), (11, 16)))
    broken = pc.choose(
        pa.array(rng.integers(0, 5, len(bad)).astype(np.int8)),
        _cat(_slice(good, 0, 5), "13", _slice(good, 7)),  # month 13
        _cat(_slice(good, 0, 8), "45", _slice(good, 10)),  # day 45
        _cat(day, "/", month, "/", year, " ", hh_mm),  # DD/MM/YYYY HH:MM
        _num(all_occ[bad] * 1000),  # epoch milliseconds
        _cat(_slice(good, 0, 11), "25", _slice(good, 13)),  # hour 25
    )
    cols["occurred_at"] = _scatter(cols["occurred_at"], bad, broken)
    out.plant("web__events", _take(event_ids, bad), "occurred_at.type", "occurred_at", "quarantine")
    out.write("web__events", cols)
    return anon_ids, anon_person


# Record copies whose names a system may spell natively (Müller), with accents stripped (Muller)
# or transliterated (Mueller, the reference lists' spelling).
SPELLED_TABLES = ("crm__contacts", "shop__customers", "loyalty__members")
NATIVE_SPELLING_RATE = 0.6
ASCII_SPELLING_RATE = 0.3  # the rest (0.1): the transliteration


class _Spelling:
    """Per record copy, a name with a native spelling (ref.NATIVE_SPELLINGS) is written natively,
    with its accents stripped, or transliterated; from its own random stream, so every other
    generated value stays as it was."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def apply(self, columns: dict[str, pa.Array]) -> dict[str, pa.Array]:
        out = dict(columns)
        for name in ("first_name", "last_name"):
            values = columns[name].to_pylist()
            draw = self.rng.random(len(values))
            spelled = []
            for value, u in zip(values, draw, strict=True):
                native = ref.NATIVE_SPELLINGS.get(value) if value else None
                if native is None or u >= NATIVE_SPELLING_RATE + ASCII_SPELLING_RATE:
                    spelled.append(value)
                elif u < NATIVE_SPELLING_RATE:
                    spelled.append(native)
                else:
                    spelled.append(ascii_spelling(native))
            out[name] = pa.array(spelled, _STR)
        return out


class _ConsentLog:
    """Consent events collected block by block (one block = one channel/purpose/status)."""

    SOURCES = ("web_form", "shop_checkout", "crm", "email_platform", "preference_centre", "import")

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.blocks: list[dict] = []

    def add(self, cp, cp_type, channel, purpose, status, captured, source_p, expires=None):
        k = len(captured)
        self.blocks.append(
            {
                "contact_point": cp,
                "contact_point_type": _const(cp_type, k),
                "channel": _const(channel, k),
                "purpose": _const(purpose, k),
                "status": _const(status, k),
                "captured_at": np.asarray(captured, dtype=np.int64),
                "expires_at": np.full(k, -1) if expires is None else expires,
                "source": _lookup(self.SOURCES, self.rng.choice(6, k, p=source_p)),
            }
        )

    def columns(self) -> dict[str, pa.Array]:
        captured = np.concatenate([b["captured_at"] for b in self.blocks])
        expires = np.concatenate([b["expires_at"] for b in self.blocks])
        order = np.argsort(captured, kind="stable")
        text = ("contact_point", "contact_point_type", "channel", "purpose", "status", "source")
        cols = {key: _take(pa.concat_arrays([b[key] for b in self.blocks]), order) for key in text}
        cols["captured_at"] = _ts(captured[order])
        cols["expires_at"] = _keep(expires[order] >= 0, _ts(np.maximum(expires[order], 0)))
        cols["consent_event_id"] = _ids("CE", len(order), 9)
        return cols


def _consent_and_email(
    rng, people: _People, noise, end: int, as_of: dt.date, out: _Output,
    st: _SendTime | None = None,
):  # fmt: skip
    """Consent events, engagement of consented emails, suppressions and erasure requests."""
    n = people.n
    log = _ConsentLog(rng)
    # --- consent per owned email (a household sharer's address is owned by the other person) --
    emails = np.flatnonzero(people.owns_email)
    ne = len(emails)
    email_cp = _take(people.email, emails)
    grant = rng.random(ne) < noise.marketing_consent_rate
    g_time = end - rng.integers(DAY, 4 * YEAR, ne)
    revoked = grant & (rng.random(ne) < 0.12)
    r_time = _between(rng, g_time + HOUR, np.full(ne, end - HOUR))
    expiring = grant & (rng.random(ne) < 0.15)
    e_time = g_time + rng.integers(30, 730, ne) * DAY  # may lie after as_of: still valid then
    optout = ~grant & (rng.random(ne) < 0.35)
    gi, ri, oi = np.flatnonzero(grant), np.flatnonzero(revoked), np.flatnonzero(optout)
    log.add(
        _take(email_cp, gi), "email", "email", "marketing", "granted", g_time[gi],
        [0.3, 0.3, 0.1, 0, 0.15, 0.15], np.where(expiring[gi], e_time[gi], -1),
    )  # fmt: skip
    log.add(_take(email_cp, ri), "email", "email", "marketing", "revoked", r_time[ri],
            [0.2, 0, 0.1, 0.3, 0.4, 0])  # fmt: skip
    log.add(_take(email_cp, oi), "email", "email", "marketing", "revoked", g_time[oi],
            [0.5, 0.4, 0.1, 0, 0, 0])  # fmt: skip
    for purpose, rate in (("product_updates", 0.45), ("profiling", 0.20)):
        yes = np.flatnonzero(rng.random(ne) < rate)
        when = end - rng.integers(DAY, 4 * YEAR, len(yes))
        log.add(_take(email_cp, yes), "email", "email", purpose, "granted", when,
                [0.35, 0.35, 0.05, 0, 0.25, 0])  # fmt: skip
        again = rng.random(len(yes)) < 0.10
        later = _between(rng, when[again] + HOUR, np.full(int(again.sum()), end - HOUR))
        log.add(_take(email_cp, yes[again]), "email", "email", purpose, "revoked", later,
                [0.2, 0, 0.1, 0.2, 0.5, 0])  # fmt: skip
    # --- sms consent per owned mobile (E.164) -----------------------------------------------
    phones = np.flatnonzero(people.owns_mobile)
    phone_cp = people.e164(people.mobile, phones)
    sms = np.flatnonzero(rng.random(len(phones)) < noise.sms_consent_rate)
    sms_time = end - rng.integers(DAY, 3 * YEAR, len(sms))
    log.add(_take(phone_cp, sms), "phone", "sms", "marketing", "granted", sms_time,
            [0.3, 0.5, 0.05, 0, 0.15, 0])  # fmt: skip
    back = rng.random(len(sms)) < 0.10
    later = _between(rng, sms_time[back] + HOUR, np.full(int(back.sum()), end - HOUR))
    log.add(_take(phone_cp, sms[back]), "phone", "sms", "marketing", "revoked", later,
            [0.2, 0, 0.1, 0, 0.7, 0])  # fmt: skip

    # --- email engagement: 12 campaigns over the last 180 days to consented addresses --------
    campaigns = 12
    as_of_day = (as_of - dt.date(1970, 1, 1)).days
    send_day = as_of_day - (3 + 15 * (campaigns - 1 - np.arange(campaigns)))
    send = send_day * DAY + 9 * HOUR
    shape = (len(gi), campaigns)
    cell = (
        (g_time[gi, None] < send[None, :])
        & (~revoked[gi, None] | (r_time[gi, None] > send[None, :]))
        & (~expiring[gi, None] | (e_time[gi, None] > send[None, :]))
        & (rng.random(shape) < 0.4)
    )
    u = rng.random(shape)
    bounced, hard = u < 0.015, u < 0.005
    propensity = rng.beta(1.5, 4.0, len(gi))[:, None]
    opened = ~bounced & (rng.random(shape) < propensity)
    w = rng.random(shape)
    clicked, unsub = opened & (w < 0.3), opened & (w >= 0.985)
    stop = cell & (hard | unsub)
    cell &= (np.cumsum(stop, axis=1) - stop) == 0  # nothing is sent after a hard bounce/unsub
    p_idx, c_idx = np.nonzero(cell)
    k = len(p_idx)
    sent_at = send[c_idx] + rng.integers(0, HOUR, k)
    b, o = bounced[p_idx, c_idx], opened[p_idx, c_idx]
    cl, un, hd = clicked[p_idx, c_idx], unsub[p_idx, c_idx], hard[p_idx, c_idx]
    open_at = np.minimum(sent_at + rng.integers(300, 2 * DAY, k), end)
    if st is not None:  # the first target local hour after the send (kept when past as_of)
        moved = st.after(sent_at + 300, emails[gi[p_idx]])
        open_at = np.where(moved <= end, moved, open_at)
    # (which cells, event type index, when)
    parts = [
        (np.ones(k, bool), 0, sent_at),
        (~b, 1, np.minimum(sent_at + rng.integers(1, 60, k), end)),
        (b, 4, np.minimum(sent_at + rng.integers(1, 300, k), end)),
        (o, 2, open_at),
        (cl, 3, np.minimum(open_at + rng.integers(5, 600, k), end)),
        (un, 5, np.minimum(open_at + rng.integers(10, 900, k), end)),
    ]
    rows_p = np.concatenate([p_idx[m] for m, _, _ in parts])
    rows_c = np.concatenate([c_idx[m] for m, _, _ in parts])
    rows_t = np.concatenate([t[m] for m, _, t in parts])
    rows_e = np.concatenate([np.full(int(m.sum()), e) for m, e, _ in parts])
    rows_h = np.concatenate([hd[m] for m, _, _ in parts])
    order = np.lexsort((rows_e, rows_t))
    rows_p, rows_c, rows_t = rows_p[order], rows_c[order], rows_t[order]
    rows_e, rows_h = rows_e[order], rows_h[order]
    engagement_ids = _ids("EE", len(rows_p), 10)
    event_types = ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed")
    is_bounce = rows_e == 4
    cols = {
        "engagement_event_id": engagement_ids,
        "email": _take(email_cp, gi[rows_p]),
        "campaign_id": _cat("CMP-", pc.replace_substring(_date(send_day[rows_c]), "-", "")),
        "event_type": _lookup(event_types, rows_e),
        "bounce_type": _keep(is_bounce, _where(rows_h, "hard", "soft")),
        "occurred_at": _ts(rows_t),
    }
    eligible = np.flatnonzero(~is_bounce)
    (bad,) = _split_defects(rng, eligible, [_count(len(eligible), noise.unknown_enum_rate)])
    odd = ("forwarded", "deferred", "spam", "replied")
    cols["event_type"] = _scatter(
        cols["event_type"], bad, _lookup(odd, rng.integers(0, len(odd), len(bad)))
    )
    out.plant(
        "email__engagement",
        _take(engagement_ids, bad),
        "event_type.valid_values",
        "event_type",
        "quarantine",
    )
    out.write("email__engagement", cols)
    # unsubscribes become consent revocations (source email_platform)
    un_rows = np.flatnonzero(rows_e == 5)
    unsub_at = np.minimum(rows_t[un_rows] + rng.integers(1, 10, len(un_rows)), end)
    log.add(_take(email_cp, gi[rows_p[un_rows]]), "email", "email", "marketing", "revoked",
            unsub_at, [0, 0, 0, 1, 0, 0])  # fmt: skip
    out.write("consent__events", log.columns())

    # --- suppressions: every hard bounce plus a share of all owned contact points ------------
    hb_rows = np.flatnonzero(is_bounce & rows_h)
    hb_cp = _take(email_cp, gi[rows_p[hb_rows]])
    hb_at = np.minimum(rows_t[hb_rows] + HOUR, end)
    n_cp = ne + len(phones)
    k = min(max(1, round(n_cp * noise.suppression_rate)), n_cp)
    extra = np.sort(rng.choice(n_cp, k, replace=False))
    on_phone = extra >= ne
    extra_cp = pa.concat_arrays(
        [_take(email_cp, extra[~on_phone]), _take(phone_cp, extra[on_phone] - ne)]
    )  # emails first, then phones (extra is sorted)
    extra_at = end - rng.integers(DAY, 2 * YEAR, k)
    phone_channel = rng.choice([1, 2, 3], k, p=[0.5, 0.2, 0.3])  # sms, phone, all
    email_channel = rng.choice([0, 3], k, p=[0.6, 0.4])  # email, all
    is_phone = np.r_[np.zeros(len(hb_rows), bool), on_phone]
    channel = np.r_[
        np.zeros(len(hb_rows), np.int64), np.where(on_phone, phone_channel, email_channel)
    ]
    reason = np.r_[np.zeros(len(hb_rows), np.int64), rng.integers(1, 5, k)]
    sup_at = np.r_[hb_at, extra_at]
    sup_updated = np.r_[hb_at, _between(rng, extra_at, np.full(k, end))]
    order = np.argsort(sup_at, kind="stable")
    reasons = ("hard_bounce", "complaint", "legal", "manual", "do_not_contact")
    out.write(
        "consent__suppressions",
        {
            "suppression_id": _ids("SUP", len(order), 8),
            "contact_point": _take(pa.concat_arrays([hb_cp, extra_cp]), order),
            "contact_point_type": _lookup(("email", "phone"), is_phone[order].astype(np.int64)),
            "channel": _lookup(("email", "sms", "phone", "all"), channel[order]),
            "reason": _lookup(reasons, reason[order]),
            "suppressed_at": _ts(sup_at[order]),
            "updated_at": _ts(sup_updated[order]),
        },
    )

    # --- erasure requests ----------------------------------------------------------------------
    k = min(max(1, round(n * noise.erasure_rate)), ne)
    who = rng.choice(ne, k, replace=False)
    at = end - rng.integers(HOUR, 90 * DAY, k)
    order = np.argsort(at, kind="stable")
    out.write(
        "consent__erasure_requests",
        {
            "erasure_request_id": _ids("ER", k, 8),
            "contact_point": _take(email_cp, who[order]),
            "contact_point_type": _const("email", k),
            "requested_at": _ts(at[order]),
        },
    )
