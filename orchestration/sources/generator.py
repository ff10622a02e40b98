"""Deterministic, vectorised sample data for all six source systems, with ground truth.

`generate()` writes landing files for every source contract, a ground-truth file (the true
person behind every identity-bearing record) and a defect manifest (every bad row it planted and
the contract rule it breaks). Everything is derived from (customers, seed, as_of, noise): the same
arguments give byte-identical files; nothing reads the wall clock. See docs/generator.md.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from orchestration.contracts.model import all_source_contracts

Progress = Callable[[str], None] | None

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
    """Rates of the realistic mess the pipeline must cope with. Tests hold these fixed."""

    crm_presence: float = 0.55
    shop_presence: float = 0.70
    loyalty_presence: float = 0.25
    web_presence: float = 0.60
    no_shared_key_rate: float = (
        0.05  # shop account with a different email and phone than CRM/loyalty
    )
    household_share_rate: float = 0.04  # shares an email with another person of the same household
    namesake_rate: float = 0.01  # strangers with the same first name, last name and birth date
    name_typo_rate: float = 0.03  # per record copy
    email_typo_rate: float = 0.02  # per record copy; the typo keeps the email valid
    phone_typo_rate: float = 0.02  # per record copy; one digit changed
    anonymous_never_identified_rate: float = 0.30
    loyalty_crm_link_rate: float = 0.40  # members that also carry their CRM contact id
    defect_rate: float = 0.002  # per planted defect class and applicable table
    duplicate_rate: float = 0.005  # extra older versions of CRM contacts and shop orders


@dataclass(frozen=True)
class GenerateResult:
    landing_dir: Path
    truth_dir: Path
    rows: dict[str, int]
    persons: int
    seconds: float
    defects: dict[str, int] = field(default_factory=dict)


_SYL_A = ["al", "be", "ca", "da", "el", "fa", "ge", "ha", "i", "jo", "ka", "le", "ma", "no", "o",
          "pe", "ri", "sa", "ta", "vi"]  # fmt: skip
_SYL_B = [
    "na",
    "ra",
    "la",
    "ne",
    "ri",
    "sa",
    "ta",
    "ny",
    "lie",
    "ric",
    "von",
    "mon",
    "den",
    "lia",
    "ko",
]
_SYL_C = ["ber", "son", "man", "ley", "ton", "field", "wood", "stein", "ard", "ini", "ez", "ova",
          "sen", "berg", "mann", "ford", "well", "by", "lin", "gard"]  # fmt: skip
COUNTRIES = np.array(["US", "GB", "DE", "FR", "NL"])
COUNTRY_P = [0.40, 0.20, 0.15, 0.15, 0.10]
CITIES = {
    "US": ["New York", "Boston", "Chicago", "Seattle", "Austin"],
    "GB": ["London", "Leeds", "Bristol", "York"],
    "DE": ["Berlin", "Hamburg", "Munich", "Cologne"],
    "FR": ["Paris", "Lyon", "Lille", "Nantes"],
    "NL": ["Amsterdam", "Utrecht", "Leiden"],
}
CURRENCY = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR"}
CALLING = {"US": "1", "GB": "44", "DE": "49", "FR": "33", "NL": "31"}
DOMAINS = np.array(["example.com", "example.net", "example.org", "mail.example"])
CATEGORIES = ["shoes", "outerwear", "knitwear", "denim", "accessories", "bags", "beauty", "home",
              "sport", "kids"]  # fmt: skip
FEATURES = np.array(["wishlist", "size_guide", "store_locator", "gift_cards", "reviews"])


def _fmt_ts(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds → ISO 8601 UTC strings (Arrow's strftime: C++ speed)."""
    arr = pa.array(np.asarray(seconds, dtype=np.int64), type=pa.timestamp("s"))
    return np.asarray(
        pc.strftime(arr, format="%Y-%m-%dT%H:%M:%SZ").to_numpy(zero_copy_only=False), dtype=str
    )


def _zfill(values: np.ndarray, width: int) -> np.ndarray:
    """np.char.zfill that also accepts an empty array (numpy's raises on it)."""
    values = np.asarray(values)
    return np.char.zfill(values, width) if values.size else values.astype(str)


def _ids(prefix: str, count: int, width: int) -> np.ndarray:
    """Sequential ids like C0000001 (vectorised; empty when count is 0)."""
    if count == 0:
        return np.array([], dtype=str)
    return np.char.add(prefix, _zfill(np.arange(1, count + 1).astype(str), width))


def _fmt_ts_arrow(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds → ISO 8601 UTC strings, kept as an Arrow array (no numpy unicode copy)."""
    arr = pa.array(np.asarray(seconds, dtype=np.int64), type=pa.timestamp("s")).cast(pa.string())
    return pc.binary_join_element_wise(pc.replace_substring(arr, " ", "T"), "Z", "")


def _ids_arrow(prefix: str, count: int, width: int) -> pa.Array:
    """Sequential ids like E0000000001 as an Arrow array."""
    digits = pa.array(np.arange(1, count + 1, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(digits, width, "0"), "")


def _fmt_date(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(days.astype("datetime64[D]"), unit="D").astype(str)


def _cat(*parts) -> np.ndarray:
    out = np.asarray(parts[0]).astype(str)
    for p in parts[1:]:
        out = np.char.add(out, np.asarray(p).astype(str))
    return out


def _typo(rng: np.random.Generator, values: np.ndarray, rate: float, letters=True) -> np.ndarray:
    """Change one character (a letter, or a digit) in a share `rate` of non-empty values."""
    out = values.astype(object).copy()
    hit = np.flatnonzero((rng.random(len(values)) < rate) & (values != ""))
    alphabet = "abcdefghijklmnopqrstuvwxyz" if letters else "0123456789"
    for i in hit:  # a small share of rows: a loop is fine and keeps the rule obvious
        v = str(out[i])
        if letters and "@" in v:
            local, _, domain = v.partition("@")
            pos = int(rng.integers(0, len(local)))
            c = alphabet[int(rng.integers(0, 26))]
            out[i] = local[:pos] + c + local[pos + 1 :] + "@" + domain
        elif letters:
            pos = int(rng.integers(1, max(2, len(v))))
            out[i] = v[:pos] + alphabet[int(rng.integers(0, 26))] + v[pos + 1 :]
        else:
            digit_pos = [k for k, ch in enumerate(v) if ch.isdigit()]
            pos = digit_pos[-1 - int(rng.integers(0, min(4, len(digit_pos))))]
            out[i] = v[:pos] + str((int(v[pos]) + 1 + int(rng.integers(0, 8))) % 10) + v[pos + 1 :]
    return out.astype(str)


def _phone_text(
    rng: np.random.Generator, country: np.ndarray, national: np.ndarray, international_only: bool
) -> np.ndarray:
    """Write each national number in one of several real-world formats (same digits)."""
    cc = np.array([CALLING[c] for c in country]) if len(country) else np.array([], dtype=str)
    style = rng.integers(0, 3, len(country))
    n = national.astype(str)
    a, b, c = (
        np.array([x[:3] for x in n]),
        np.array([x[3:6] for x in n]),
        np.array([x[6:] for x in n]),
    )
    us = country == "US"
    out = np.where(style == 0, _cat("+", cc, " ", n), _cat("+", cc, n))
    out = np.where(us & (style == 0), _cat("+1 (", a, ") ", b, "-", c), out)
    if not international_only:
        out = np.where(us & (style == 2), _cat(a, ".", b, ".", c), out)
        out = np.where(~us & (style == 2), _cat("0", n), out)
    out = np.where(~us & (style == 1) & ~international_only, _cat("00", cc, " ", n), out)
    return out


class _Writer:
    def __init__(self, landing: Path, as_of: dt.date, progress: Progress):
        self.landing, self.as_of, self.progress = landing, as_of, progress
        self.rows: dict[str, int] = {}
        self.columns = {c.id: list(c.column_names) for c in all_source_contracts()}

    def write(self, contract_id: str, frame: pd.DataFrame | pa.Table) -> None:
        source, entity = contract_id.split("__", 1)
        if isinstance(frame, pa.Table):
            frame = frame.select(self.columns[contract_id])
        else:
            frame = frame[self.columns[contract_id]]
        folder = self.landing / source / entity / f"dt={self.as_of.isoformat()}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        fmt = FORMATS[source]
        path = folder / f"part-00000.{fmt}"
        table = (
            frame
            if isinstance(frame, pa.Table)
            else pa.Table.from_pandas(frame.astype("str"), preserve_index=False)
        )
        # empty text is written as null (empty field in CSV, null in JSON and Parquet)
        table = pa.table(
            {
                name: pc.if_else(
                    pc.equal(col, ""), pa.scalar(None, pa.string()), col.cast(pa.string())
                )
                for name, col in zip(table.column_names, table.columns, strict=True)
            }
        )
        if fmt == "csv":
            pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))
        elif fmt == "parquet":
            pq.write_table(table, path, compression="zstd")
        else:
            # DuckDB writes newline-delimited JSON in order and ~20x faster than json.dumps per row.
            con = duckdb.connect()
            con.register("batch", table)
            con.execute(f"copy (select * from batch) to '{path}' (format json)")
            con.close()
        self.rows[contract_id] = table.num_rows
        if self.progress:
            self.progress(f"generate: wrote {source}/{entity} {len(frame):,} rows")


def generate(
    customers: int,
    seed: int,
    as_of: dt.date,
    landing_dir: Path,
    truth_dir: Path,
    noise: NoiseProfile | None = None,
    progress: Progress = print,
) -> GenerateResult:
    """Write landing files, ground truth and the defect manifest for `customers` persons."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    noise = noise or NoiseProfile()
    started = time.time()
    rng = np.random.default_rng(seed)
    landing_dir, truth_dir = Path(landing_dir), Path(truth_dir)
    truth_dir.mkdir(parents=True, exist_ok=True)
    writer = _Writer(landing_dir, as_of, progress)
    end = int(dt.datetime.combine(as_of, dt.time(23, 59, 59), dt.UTC).timestamp())
    day = 86_400
    n = customers

    # ---- persons -------------------------------------------------------------------------
    pid = np.char.add("p", _zfill(np.arange(n).astype(str), 7))
    first = np.char.capitalize(
        _cat(np.array(_SYL_A)[rng.integers(0, 20, n)], np.array(_SYL_B)[rng.integers(0, 15, n)])
    )
    last = np.char.capitalize(
        _cat(
            np.array(_SYL_A)[rng.integers(0, 20, n)],
            np.array(_SYL_B)[rng.integers(0, 15, n)],
            np.array(_SYL_C)[rng.integers(0, 20, n)],
        )
    )
    as_of_day = (as_of - dt.date(1970, 1, 1)).days
    dob_days = as_of_day - rng.integers(18 * 365, 85 * 365, n)
    country = COUNTRIES[rng.choice(5, n, p=COUNTRY_P)]
    tz = np.where(
        country == "US",
        np.where(rng.random(n) < 0.6, "America/New_York", "America/Los_Angeles"),
        "",
    )
    tz = np.where(country == "GB", "Europe/London", tz)
    tz = np.where(country == "DE", "Europe/Berlin", tz)
    tz = np.where(country == "FR", "Europe/Paris", tz)
    tz = np.where(country == "NL", "Europe/Amsterdam", tz)
    city = np.array(
        [
            CITIES[c][i % len(CITIES[c])]
            for c, i in zip(country, rng.integers(0, 100, n), strict=True)
        ]
    )
    street = _cat(
        rng.integers(1, 300, n),
        " ",
        np.char.capitalize(np.array(_SYL_A)[rng.integers(0, 20, n)]),
        np.array(_SYL_C)[rng.integers(0, 20, n)],
        " Street",
    )
    postal = _zfill(rng.integers(1000, 99999, n).astype(str), 5)
    idx = np.arange(n)
    email = _cat(
        np.char.lower(first), ".", np.char.lower(last), idx, "@", DOMAINS[rng.integers(0, 4, n)]
    )
    national = np.where(
        country == "US",
        _cat(rng.integers(201, 989, n), _zfill((idx % 10_000_000).astype(str), 7)),
        _cat(
            np.where(country == "DE", "15", np.where(country == "GB", "7", "6")),
            _zfill((idx % 100_000_000).astype(str), 8),
        ),
    )
    # Namesakes: strangers who share first name, last name and birth date.
    k = int(n * noise.namesake_rate)
    if k and n > 2:
        a, b = rng.choice(n, k, replace=False), rng.choice(n, k, replace=False)
        keep = a != b
        first[b[keep]], last[b[keep]], dob_days[b[keep]] = (
            first[a[keep]],
            last[a[keep]],
            dob_days[a[keep]],
        )
    # Households: a person uses the email of another person, who shares their name and address.
    k = int(n * noise.household_share_rate)
    household_partner = np.full(n, -1)
    if k and n > 2:
        a, b = rng.choice(n, k, replace=False), rng.choice(n, k, replace=False)
        keep = (a != b) & ~np.isin(b, a)
        a, b = a[keep], b[keep]
        last[a], street[a], city[a], postal[a], country[a], tz[a] = (
            last[b],
            street[b],
            city[b],
            postal[b],
            country[b],
            tz[b],
        )
        national[a] = national[a]  # phones stay personal; the shared key is the email
        email[a] = email[b]
        household_partner[a] = b
    if progress:
        progress(f"generate: persons {n:,}")

    in_crm = rng.random(n) < noise.crm_presence
    in_shop = rng.random(n) < noise.shop_presence
    in_loyalty = rng.random(n) < noise.loyalty_presence
    in_web = rng.random(n) < noise.web_presence
    no_key = rng.random(n) < noise.no_shared_key_rate
    defects: list[dict] = []

    def plant(
        contract_id: str, ids: np.ndarray, rule_id: str, column: str, kind: str = "quarantine"
    ):
        source, entity = contract_id.split("__", 1)
        defects.extend(
            {
                "source": source,
                "entity": entity,
                "record_id": str(r),
                "rule_id": rule_id,
                "column": column,
                "kind": kind,
            }
            for r in ids
        )

    def pick(n_rows: int, taken: set[int]) -> np.ndarray:
        if n_rows < 200:
            return np.array([], dtype=int)
        want = max(1, round(n_rows * noise.defect_rate))
        free = np.setdiff1d(np.arange(n_rows), np.fromiter(taken, int, len(taken)))
        chosen = np.sort(rng.choice(free, min(want, len(free)), replace=False))
        taken.update(chosen.tolist())
        return chosen

    def created(count: int) -> np.ndarray:
        return end - rng.integers(30 * day, 5 * 365 * day, count)

    # ---- CRM -----------------------------------------------------------------------------
    crm_p = np.flatnonzero(in_crm)
    m = len(crm_p)
    crm_id = _ids("C", m, 7)
    c_created = created(m)
    c_updated = np.minimum(
        c_created + rng.integers(0, 400 * day, m), end - rng.integers(0, 10 * day, m)
    )
    c_updated = np.maximum(c_updated, c_created)
    household_key = _cat(last[crm_p], "|", street[crm_p])
    uniq, acc_idx = np.unique(household_key, return_inverse=True)
    account_id = _cat("A", _zfill((acc_idx + 1).astype(str), 7))
    has_email = rng.random(m) < 0.85
    has_phone = rng.random(m) < 0.5
    has_mobile = rng.random(m) < 0.7
    crm = pd.DataFrame(
        {
            "contact_id": crm_id,
            "account_id": account_id,
            "first_name": _typo(rng, first[crm_p], noise.name_typo_rate),
            "last_name": last[crm_p],
            "email": np.where(has_email, _typo(rng, email[crm_p], noise.email_typo_rate), ""),
            "phone": "",  # filled below
            "mobile_phone": np.where(
                has_mobile,
                _typo(
                    rng,
                    _phone_text(rng, country[crm_p], national[crm_p], False),
                    noise.phone_typo_rate,
                    letters=False,
                ),
                "",
            ),
            "date_of_birth": np.where(rng.random(m) < 0.8, _fmt_date(dob_days[crm_p]), ""),
            "address_line1": street[crm_p],
            "address_line2": np.where(
                rng.random(m) < 0.2, _cat("Apt ", rng.integers(1, 60, m)), ""
            ),
            "city": city[crm_p],
            "postal_code": postal[crm_p],
            "region": "",
            "country_code": country[crm_p],
            "time_zone": tz[crm_p],
            "created_at": _fmt_ts(c_created),
            "updated_at": _fmt_ts(c_updated),
            "is_deleted": np.where(rng.random(m) < 0.01, "true", "false"),
        }
    )
    # The landline is a household number, unrelated to the person's mobile.
    landline = np.char.add("9", national[crm_p].astype(str))
    crm["phone"] = np.where(has_phone, _phone_text(rng, country[crm_p], landline, False), "")
    taken: set[int] = set()
    bad = pick(m, taken)
    crm.loc[bad, "email"] = _cat(np.char.lower(first[crm_p[bad]]), ".at.example.com")
    plant("crm__contacts", crm_id[bad], "email.format", "email")
    bad = pick(m, taken)
    crm.loc[bad, "updated_at"] = ""
    plant("crm__contacts", crm_id[bad], "updated_at.required", "updated_at")
    dup = np.setdiff1d(
        np.flatnonzero(rng.random(m) < noise.duplicate_rate), np.fromiter(taken, int, len(taken))
    )
    older = crm.iloc[dup].copy()
    older["updated_at"] = _fmt_ts(
        np.maximum(c_updated[dup] - rng.integers(day, 30 * day, len(dup)), c_created[dup])
    )
    older["updated_at"] = np.where(
        older["updated_at"] == crm.iloc[dup]["updated_at"].to_numpy(),
        _fmt_ts(c_updated[dup] - day),
        older["updated_at"],
    )
    older["city"] = older["city"] + " (old)"
    plant("crm__contacts", crm_id[dup], "duplicate", "contact_id", "duplicate")
    writer.write("crm__contacts", pd.concat([crm, older], ignore_index=True))

    n_acc = len(uniq)
    first_member = np.zeros(n_acc, dtype=int)
    first_member[acc_idx[::-1]] = np.arange(m)[::-1]
    acc_type = np.where(rng.random(n_acc) < 0.05, "business", "household")
    accounts = pd.DataFrame(
        {
            "account_id": _ids("A", n_acc, 7),
            "account_name": np.where(
                acc_type == "household",
                _cat(last[crm_p[first_member]], " household"),
                _cat(last[crm_p[first_member]], " & Co"),
            ),
            "account_type": acc_type,
            "country_code": country[crm_p[first_member]],
            "created_at": _fmt_ts(c_created[first_member]),
            "updated_at": _fmt_ts(c_updated[first_member]),
            "is_deleted": "false",
        }
    )
    writer.write("crm__accounts", accounts)
    crm_of_person = np.full(n, "", dtype=object)
    crm_of_person[crm_p] = crm_id

    # ---- shop ----------------------------------------------------------------------------
    shop_p = np.flatnonzero(in_shop)
    s = len(shop_p)
    shop_id = _ids("S", s, 7)
    s_created = created(s)
    s_email = np.where(
        no_key[shop_p],
        _cat(np.char.lower(first[shop_p]), "_", shop_p, "@work.example"),
        email[shop_p],
    )
    s_national = np.where(
        no_key[shop_p], np.char.add("8", national[shop_p].astype(str)), national[shop_p]
    )
    shop = pd.DataFrame(
        {
            "shop_customer_id": shop_id,
            "email": np.where(rng.random(s) < 0.98, _typo(rng, s_email, noise.email_typo_rate), ""),
            "phone": np.where(
                rng.random(s) < 0.4,
                _typo(
                    rng,
                    _phone_text(rng, country[shop_p], s_national, False),
                    noise.phone_typo_rate,
                    letters=False,
                ),
                "",
            ),
            "first_name": _typo(rng, first[shop_p], noise.name_typo_rate),
            "last_name": last[shop_p],
            "country_code": country[shop_p],
            "created_at": _fmt_ts(s_created),
            "updated_at": _fmt_ts(np.minimum(s_created + rng.integers(0, 300 * day, s), end)),
        }
    )
    taken = set()
    bad = pick(s, taken)
    shop.loc[bad, "email"] = _cat(np.char.lower(first[shop_p[bad]]), "@localhost")
    plant("shop__customers", shop_id[bad], "email.format", "email")
    writer.write("shop__customers", shop)
    shop_of_person = np.full(n, "", dtype=object)
    shop_of_person[shop_p] = shop_id

    # orders and lines
    n_orders = np.minimum(rng.geometric(0.35, s) - 1, 20)
    o_owner = np.repeat(np.arange(s), n_orders)
    o = len(o_owner)
    order_id = _ids("O", o, 8)
    earliest = np.maximum(s_created[o_owner], end - 3 * 365 * day)
    ordered = earliest + (rng.random(o) * (end - earliest)).astype(np.int64)
    status = np.array(["placed", "paid", "shipped", "delivered", "cancelled", "refunded"])[
        rng.choice(6, o, p=[0.03, 0.12, 0.15, 0.6, 0.06, 0.04])
    ]
    n_lines = rng.integers(1, 6, o)
    l_order = np.repeat(np.arange(o), n_lines)
    nl = len(l_order)
    product = rng.integers(0, 60, nl)
    price = np.round(9.99 + (product * 7.3) % 240, 2)
    qty = rng.integers(1, 4, nl)
    subtotal = np.bincount(l_order, weights=price * qty, minlength=o)
    discount = np.where(rng.random(o) < 0.2, np.round(subtotal * 0.1, 2), 0.0)
    o_country = country[shop_p[o_owner]]
    orders = pd.DataFrame(
        {
            "order_id": order_id,
            "shop_customer_id": shop_id[o_owner],
            "ordered_at": _fmt_ts(ordered),
            "status": status,
            "currency": np.array([CURRENCY[c] for c in o_country])
            if o
            else np.array([], dtype=str),
            "total_amount": np.char.mod("%.2f", np.round(subtotal - discount, 2)),
            "discount_amount": np.where(discount > 0, np.char.mod("%.2f", discount), ""),
            "shipping_country_code": o_country,
            "updated_at": _fmt_ts(np.minimum(ordered + rng.integers(0, 10 * day, o), end)),
        }
    )
    taken = set()
    bad = pick(o, taken)
    orders.loc[bad, "total_amount"] = np.char.mod("-%.2f", subtotal[bad] + 1)
    plant("shop__orders", order_id[bad], "total_amount.non_negative", "total_amount")
    bad = pick(o, taken)
    orders.loc[bad, "status"] = "teleported"
    plant("shop__orders", order_id[bad], "status.valid_values", "status")
    dup = np.setdiff1d(
        np.flatnonzero(rng.random(o) < noise.duplicate_rate), np.fromiter(taken, int, len(taken))
    )
    older = orders.iloc[dup].copy()
    older["updated_at"] = _fmt_ts(ordered[dup] - 60)
    older["status"] = "placed"
    plant("shop__orders", order_id[dup], "duplicate", "order_id", "duplicate")
    writer.write("shop__orders", pd.concat([orders, older], ignore_index=True))
    lines = pd.DataFrame(
        {
            "order_line_id": _ids("OL", nl, 9),
            "order_id": order_id[l_order],
            "product_id": _cat("P", _zfill(product.astype(str), 3)),
            "product_name": _cat(np.array(CATEGORIES)[product % 10], " item ", product),
            "category": np.array(CATEGORIES)[product % 10],
            "unit_price": np.char.mod("%.2f", price),
            "quantity": qty.astype(str),
            "updated_at": _fmt_ts(ordered[l_order]),
        }
    )
    writer.write("shop__order_lines", lines)

    # ---- loyalty -------------------------------------------------------------------------
    loy_p = np.flatnonzero(in_loyalty)
    lm = len(loy_p)
    member_id = _ids("L", lm, 7)
    joined = created(lm)
    link = (rng.random(lm) < noise.loyalty_crm_link_rate) & (crm_of_person[loy_p] != "")
    loyalty = pd.DataFrame(
        {
            "member_id": member_id,
            "crm_contact_id": np.where(link, crm_of_person[loy_p], ""),
            "email": np.where(
                rng.random(lm) < 0.8, _typo(rng, email[loy_p], noise.email_typo_rate), ""
            ),
            "phone": np.where(
                rng.random(lm) < 0.6,
                _typo(
                    rng,
                    _phone_text(rng, country[loy_p], national[loy_p], True),
                    noise.phone_typo_rate,
                    letters=False,
                ),
                "",
            ),
            "first_name": _typo(rng, first[loy_p], noise.name_typo_rate),
            "last_name": last[loy_p],
            "birthday": _fmt_date(dob_days[loy_p]),
            "tier": np.array(["bronze", "silver", "gold", "platinum"])[
                rng.choice(4, lm, p=[0.55, 0.28, 0.13, 0.04])
            ],
            "points_balance": rng.integers(0, 20_000, lm).astype(str),
            "joined_at": _fmt_ts(joined),
            "updated_at": _fmt_ts(np.minimum(joined + rng.integers(0, 200 * day, lm), end)),
        }
    )
    taken = set()
    bad = pick(lm, taken)
    loyalty.loc[bad, "email"] = _cat(np.char.lower(last[loy_p[bad]]), "@@example.com")
    plant("loyalty__members", member_id[bad], "email.format", "email")
    writer.write("loyalty__members", loyalty)

    # ---- web -----------------------------------------------------------------------------
    web_p = np.flatnonzero(in_web)
    n_anon = rng.integers(1, 4, len(web_p))
    a_person = np.repeat(web_p, n_anon)
    na = len(a_person)
    hexes = rng.integers(0, 2**63 - 1, (na, 2), dtype=np.int64)
    # uuid-shaped, but from the seeded RNG (uuid4 would break determinism)
    raw_hex = [f"{x:016x}{y:016x}" for x, y in hexes]
    anon = np.array(
        [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in raw_hex], dtype=str
    )
    identified = (shop_of_person[a_person] != "") & (
        rng.random(na) >= noise.anonymous_never_identified_rate
    )
    n_ev = rng.integers(2, 16, na)
    e_anon = np.repeat(np.arange(na), n_ev)
    ne = len(e_anon)
    names = np.array(
        [
            "page",
            "session_start",
            "product_viewed",
            "cart_add",
            "checkout",
            "order_completed",
            "feature_used",
            "app_open",
        ]
    )
    # ~10 events per anonymous id: built as Arrow columns (compact strings, C++ speed).
    name_idx = rng.choice(8, ne, p=[0.38, 0.15, 0.2, 0.1, 0.04, 0.03, 0.06, 0.04])
    first_of = np.r_[0, np.cumsum(n_ev)[:-1]] if na else np.array([], dtype=int)
    name_idx[first_of] = 1  # every anonymous id starts with a session
    occurred = end - rng.integers(0, 90 * day, ne)
    ident_anon = np.flatnonzero(identified)
    i_occ = end - rng.integers(0, 90 * day, len(ident_anon))
    product = rng.integers(0, 60, ne)
    # properties depend only on (event name, product): a lookup instead of per-row formatting
    lookup = []
    for name in names:
        for prod in range(60):
            if name == "page":
                lookup.append(f'{{"path":"/p/{prod}"}}')
            elif name in ("product_viewed", "cart_add"):
                lookup.append(f'{{"product_id":"P{prod:03d}"}}')
            elif name == "feature_used":
                lookup.append(f'{{"feature":"{FEATURES[prod % 5]}"}}')
            else:
                lookup.append("{}")
    platform_idx = rng.choice(3, ne, p=[0.6, 0.25, 0.15])
    all_anon = np.r_[e_anon, ident_anon]
    all_occ = np.r_[occurred, i_occ]
    n_all = len(all_anon)
    identify_tail = np.full(len(ident_anon), 8)
    events = pa.table(
        {
            "event_id": _ids_arrow("E", n_all, 10),
            "anonymous_id": pa.array(anon, pa.string()).take(pa.array(all_anon, pa.int64())),
            "user_id": pa.concat_arrays(
                [
                    pa.nulls(ne, pa.string()),
                    pa.array(shop_of_person[a_person[ident_anon]].astype(str), pa.string()),
                ]
            ),
            "event_name": pa.array([*names, "identify"], pa.string()).take(
                pa.array(np.r_[name_idx, identify_tail], pa.int64())
            ),
            "platform": pa.array(["web", "ios", "android"], pa.string()).take(
                pa.array(np.r_[platform_idx, np.zeros(len(ident_anon), dtype=np.int64)], pa.int64())
            ),
            "properties": pa.array([*lookup, "{}"], pa.string()).take(
                pa.array(
                    np.r_[name_idx * 60 + product, np.full(len(ident_anon), len(lookup))],
                    pa.int64(),
                )
            ),
            "occurred_at": _fmt_ts_arrow(all_occ),
            "received_at": _fmt_ts_arrow(np.minimum(all_occ + rng.integers(1, 30, n_all), end)),
        }
    )
    taken = set()
    bad = pick(ne, taken)  # only among non-identify events (the first ne rows)
    bad_value = np.where(rng.random(len(bad)) < 0.5, "yesterday", "2026-13-45T99:00:00Z")
    occurred_col = events.column("occurred_at").combine_chunks().to_numpy(zero_copy_only=False)
    if len(bad):
        occurred_col = occurred_col.astype(object)
        occurred_col[bad] = bad_value
        events = events.set_column(
            events.column_names.index("occurred_at"),
            "occurred_at",
            pa.array(occurred_col, pa.string()),
        )
    event_ids = events.column("event_id").combine_chunks()
    plant(
        "web__events",
        np.asarray(event_ids.take(pa.array(bad, pa.int64())).to_pylist(), dtype=str),
        "occurred_at.type",
        "occurred_at",
    )
    writer.write("web__events", events)

    # ---- consent -------------------------------------------------------------------------
    has_email_p = np.ones(n, dtype=bool)
    marketing = (rng.random(n) < 0.7) & has_email_p
    revoked = marketing & (rng.random(n) < 0.1)
    expires = marketing & (rng.random(n) < 0.15)
    product_updates = rng.random(n) < 0.5
    sms = rng.random(n) < 0.35
    cp_email = email  # the consent centre holds the person's primary email
    cp_phone = _cat("+", np.array([CALLING[c] for c in country]), national)
    captured = end - rng.integers(10 * day, 700 * day, n)
    rows = []

    def consent(mask, cp, cp_type, channel, purpose, status, when, expires_at):
        k = int(mask.sum())
        rows.append(
            pd.DataFrame(
                {
                    "contact_point": cp[mask],
                    "contact_point_type": cp_type,
                    "channel": channel,
                    "purpose": purpose,
                    "status": status,
                    "captured_at": _fmt_ts(when[mask]),
                    "expires_at": expires_at[mask]
                    if isinstance(expires_at, np.ndarray)
                    else np.full(k, ""),
                    "source": np.array(
                        ["web_form", "shop_checkout", "crm", "preference_centre", "import"]
                    )[rng.integers(0, 5, k)],
                }
            )
        )

    exp_at = np.where(expires, _fmt_ts(captured + np.where(rng.random(n) < 0.5, 30, 900) * day), "")
    consent(marketing, cp_email, "email", "email", "marketing", "granted", captured, exp_at)
    consent(
        revoked,
        cp_email,
        "email",
        "email",
        "marketing",
        "revoked",
        np.minimum(captured + rng.integers(day, 200 * day, n), end - day),
        "",
    )
    consent(product_updates, cp_email, "email", "email", "product_updates", "granted", captured, "")
    consent(sms, cp_phone, "phone", "sms", "marketing", "granted", captured, "")
    consent_events = pd.concat(rows, ignore_index=True)
    consent_events.insert(
        0,
        "consent_event_id",
        _ids("CE", len(consent_events), 9),
    )
    writer.write("consent__events", consent_events)
    sup = np.flatnonzero(rng.random(n) < 0.01)
    writer.write(
        "consent__suppressions",
        pd.DataFrame(
            {
                "suppression_id": _ids("SP", len(sup), 8),
                "contact_point": cp_email[sup],
                "contact_point_type": "email",
                "channel": np.where(rng.random(len(sup)) < 0.5, "email", "all"),
                "reason": np.array(
                    ["hard_bounce", "complaint", "legal", "manual", "do_not_contact"]
                )[rng.integers(0, 5, len(sup))],
                "suppressed_at": _fmt_ts(end - rng.integers(day, 300 * day, len(sup))),
                "updated_at": _fmt_ts(end - rng.integers(0, day, len(sup))),
            }
        ),
    )
    era = np.flatnonzero(rng.random(n) < 0.002)
    writer.write(
        "consent__erasure_requests",
        pd.DataFrame(
            {
                "erasure_request_id": _ids("ER", len(era), 8),
                "contact_point": cp_email[era],
                "contact_point_type": "email",
                "requested_at": _fmt_ts(end - rng.integers(day, 100 * day, len(era))),
            }
        ),
    )

    # ---- email engagement: consented persons, 6 campaigns over 180 days ----------------------
    active = np.flatnonzero(marketing & ~revoked)
    campaigns = 6
    sent_mask = rng.random((len(active), campaigns)) < 0.5
    p_idx, c_idx = np.nonzero(sent_mask)
    who = active[p_idx]
    sent_at = end - (c_idx * 30 + 1) * day + rng.integers(0, 3600, len(who))
    bounced = rng.random(len(who)) < 0.01
    opened = ~bounced & (rng.random(len(who)) < 0.3)
    clicked = opened & (rng.random(len(who)) < 0.3)
    unsub = opened & (rng.random(len(who)) < 0.02)
    parts = [
        ("sent", np.ones(len(who), bool), 0),
        ("delivered", ~bounced, 60),
        ("bounced", bounced, 60),
        ("opened", opened, 3600),
        ("clicked", clicked, 4000),
        ("unsubscribed", unsub, 5000),
    ]
    frames = []
    for kind, mask, lag in parts:
        frames.append(
            pd.DataFrame(
                {
                    "email": email[who[mask]],
                    "campaign_id": _cat("CMP", _zfill(c_idx[mask].astype(str), 3)),
                    "event_type": kind,
                    "bounce_type": np.where(rng.random(int(mask.sum())) < 0.5, "hard", "soft")
                    if kind == "bounced"
                    else "",
                    "occurred_at": _fmt_ts(np.minimum(sent_at[mask] + lag, end)),
                }
            )
        )
    engagement = pd.concat(frames, ignore_index=True)
    engagement.insert(
        0,
        "engagement_event_id",
        _ids("EE", len(engagement), 10),
    )
    taken = set()
    bad = pick(len(engagement), taken)
    engagement.loc[bad, "event_type"] = "forwarded"
    engagement.loc[bad, "bounce_type"] = ""
    plant(
        "email__engagement",
        engagement["engagement_event_id"].to_numpy()[bad],
        "event_type.valid_values",
        "event_type",
    )
    writer.write("email__engagement", engagement)

    # ---- truth -----------------------------------------------------------------------------
    truth = pd.concat(
        [
            pd.DataFrame(
                {
                    "source": "crm",
                    "entity": "contacts",
                    "source_record_id": crm_id,
                    "person_id": pid[crm_p],
                }
            ),
            pd.DataFrame(
                {
                    "source": "shop",
                    "entity": "customers",
                    "source_record_id": shop_id,
                    "person_id": pid[shop_p],
                }
            ),
            pd.DataFrame(
                {
                    "source": "loyalty",
                    "entity": "members",
                    "source_record_id": member_id,
                    "person_id": pid[loy_p],
                }
            ),
            pd.DataFrame(
                {
                    "source": "web",
                    "entity": "anonymous_ids",
                    "source_record_id": anon,
                    "person_id": pid[a_person],
                }
            ),
        ],
        ignore_index=True,
    )
    truth.to_csv(truth_dir / "ground_truth.csv", index=False)
    defect_frame = pd.DataFrame(
        defects, columns=["source", "entity", "record_id", "rule_id", "column", "kind"]
    )
    defect_frame.to_csv(truth_dir / "defects.csv", index=False)
    (truth_dir / "generate_manifest.json").write_text(
        json.dumps(
            {
                "customers": n,
                "seed": seed,
                "as_of": as_of.isoformat(),
                "noise": asdict(noise),
                "rows": writer.rows,
            },
            indent=2,
            sort_keys=True,
        )
    )
    counts = defect_frame.groupby("kind").size().to_dict() if len(defect_frame) else {}
    if progress:
        progress(f"generate: ground truth {len(truth):,} records; defects planted {counts}")
    return GenerateResult(
        landing_dir, truth_dir, dict(writer.rows), n, time.time() - started, counts
    )
