"""Planted conversion propensity for the generator's `lead_score` profile (docs/generator.md).

After the generator has written every landing file, `plant()` replaces the shop orders after a
first cut-off T1 with conversions drawn from a KNOWN logistic model on behaviour the warehouse
can observe before each cut-off, in two windows of `window_days`:

- T1 = as_of end − 2 × window, T2 = as_of end − window;
- training window: features at T1 (from data up to T1) → a revenue order in (T1, T2] with the
  planted probability;
- evaluation window: features at T2 (the training-window orders included) → an order in
  (T2, as_of end − 2 h].

Population: the shop accounts (only they can order) created by the cut-off whose record passes
its contract. Features per shop account, from the landing files as the warehouse reads them
(quarantined rows out, latest version per key):

| feature | value |
| --- | --- |
| web_sessions_30d | log1p(session starts / app opens in the last 30 days) |
| product_views_30d | log1p(product_viewed events, last 30 days) |
| cart_adds_30d | log1p(cart_add events, last 30 days) |
| email_clicks_90d | log1p(email clicks in the last 90 days) |
| orders_365d | log1p(revenue orders in the last 365 days) |
| years_since_last_order | min(days since the last revenue order, 365) / 365; 1 without one |
| loyalty_tier_rank | 0 none, 1 bronze, 2 silver, 3 gold, 4 platinum |

Web events count on the anonymous ids that identify as the shop account (an identify event with
its `user_id`): a device that never logs in is invisible to any model, so the planted truth does
not use it. Email clicks count on the addresses of the person's CRM, shop and loyalty records
(the true person, from ground_truth.csv), as customer_360 joins engagement to customers.

Truth written: `lead_score_parameters.json` (coefficients, cut-offs, conversion rates and the
planted model's own ROC AUC per window) and `lead_score_customers.csv` (one row per shop account
and window: features, true probability, converted).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson

from demo import _names as ref
from orchestration.insight.lead_score import (
    FEATURES,
)  # the planted model uses the scorer's features

DAY = 86_400
HOUR = 3_600
TIERS = {"bronze": 1, "silver": 2, "gold": 3, "platinum": 4}
TRUTH_FILES = ("lead_score_parameters.json", "lead_score_customers.csv")
_TS = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class PropensityTruth:
    """The planted logistic model: P(order in the window | features at its cut-off) =
    sigmoid(intercept + Σ coefficient × feature), features as in the module docstring."""

    intercept: float = -2.6
    coefficients: dict[str, float] = field(
        default_factory=lambda: {
            "web_sessions_30d": 0.45,
            "product_views_30d": 0.35,
            "cart_adds_30d": 0.9,
            "email_clicks_90d": 0.7,
            "orders_365d": 0.6,
            "years_since_last_order": -1.4,
            "loyalty_tier_rank": 0.3,
        }
    )
    window_days: int = 28

    def probability(self, features: pd.DataFrame) -> np.ndarray:
        """The planted conversion probability of each row of `features` (columns FEATURES)."""
        logit = self.intercept + sum(
            self.coefficients[name] * features[name].to_numpy(dtype=float) for name in FEATURES
        )
        return 1.0 / (1.0 + np.exp(-logit))


def roc_auc(score, label) -> float:
    """ROC AUC (Mann-Whitney, ties count half); nan without both classes."""
    score, label = np.asarray(score, dtype=float), np.asarray(label, dtype=bool)
    pos, neg = int(label.sum()), int((~label).sum())
    if pos == 0 or neg == 0:
        return math.nan
    from scipy.stats import rankdata  # only when planting

    ranks = rankdata(score)
    return float((ranks[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


# ---------------------------------------------------------------------------------------------
# Reading the landing files back (every column text, as the generator wrote them)
# ---------------------------------------------------------------------------------------------


def _file(landing: Path, source: str, entity: str) -> Path:
    return next((landing / source / entity).glob("dt=*/part-00000.*"))


def _read(landing: Path, source: str, entity: str, columns: list[str]) -> pd.DataFrame:
    path = _file(landing, source, entity)
    if path.suffix == ".csv":
        opts = pcsv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()), include_columns=columns
        )
        table = pcsv.read_csv(path, convert_options=opts)
    else:
        schema = pa.schema([(c, pa.string()) for c in columns])
        table = pjson.read_json(
            path, parse_options=pjson.ParseOptions(explicit_schema=schema,
                                                   unexpected_field_behavior="ignore"),
        )  # fmt: skip
    return table.to_pandas()


def _seconds(values: pd.Series) -> np.ndarray:
    """Epoch seconds of ISO UTC text; NaN where it does not parse (a quarantined timestamp)."""
    at = pd.to_datetime(values, format=_TS, errors="coerce", utc=True)
    out = (at - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)
    return out


def _quarantined(defects: list[pa.Table], contract: str) -> set[str]:
    source, entity = contract.split("__", 1)
    ids: set[str] = set()
    for table in defects:
        mask = pc.and_(
            pc.and_(pc.equal(table["source"], source), pc.equal(table["entity"], entity)),
            pc.equal(table["kind"], "quarantine"),
        )
        ids.update(table.filter(mask)["record_id"].to_pylist())
    return ids


@dataclass
class _Behaviour:
    """Per shop account: the events and orders the features are counted from."""

    accounts: pd.DataFrame  # shop_customer_id, created (s), country_code, address columns
    web: pd.DataFrame  # shop_customer_id, event_name, at
    clicks: pd.DataFrame  # shop_customer_id, at
    tier: pd.Series  # shop_customer_id → rank


def _behaviour(landing: Path, truth_dir: Path, defects: list[pa.Table]) -> _Behaviour:
    shop_cols = ["shop_customer_id", "email", "country_code", "address_line1", "address_line2",
                 "city", "postal_code", "created_at", "updated_at"]  # fmt: skip
    accounts = _read(landing, "shop", "customers", shop_cols)
    accounts = accounts[
        ~accounts["shop_customer_id"].isin(_quarantined(defects, "shop__customers"))
    ]
    accounts = accounts.sort_values("updated_at").drop_duplicates("shop_customer_id", keep="last")
    accounts["created"] = _seconds(accounts["created_at"])
    ground = pd.read_csv(truth_dir / "ground_truth.csv", dtype=str)
    person_of = ground.set_index(ground["source"] + ":" + ground["source_record_id"])["person_id"]
    accounts["person_id"] = ("shop:" + accounts["shop_customer_id"]).map(person_of)

    # web: events of the anonymous ids that identify as a shop account
    web = _read(landing, "web", "events", ["anonymous_id", "user_id", "event_name", "occurred_at"])
    ident = web.loc[web["user_id"].notna() & (web["user_id"] != ""), ["anonymous_id", "user_id"]]
    ident = ident.drop_duplicates("anonymous_id")
    web = web.merge(ident.rename(columns={"user_id": "shop_customer_id"}), on="anonymous_id")
    web["at"] = _seconds(web["occurred_at"])
    web = web.dropna(subset=["at"])[["shop_customer_id", "event_name", "at"]]

    # email: clicks on the addresses of the person's records (crm, shop, loyalty)
    crm = _read(landing, "crm", "contacts", ["contact_id", "email", "is_deleted"])
    crm = crm[(crm["is_deleted"] != "true")
              & ~crm["contact_id"].isin(_quarantined(defects, "crm__contacts"))]  # fmt: skip
    loyalty = _read(landing, "loyalty", "members", ["member_id", "email", "tier"])
    loyalty = loyalty[~loyalty["member_id"].isin(_quarantined(defects, "loyalty__members"))]
    emails = pd.concat(
        [
            pd.DataFrame({"person_id": ("crm:" + crm["contact_id"]).map(person_of),
                          "email": crm["email"]}),
            pd.DataFrame({"person_id": accounts["person_id"], "email": accounts["email"]}),
            pd.DataFrame({"person_id": ("loyalty:" + loyalty["member_id"]).map(person_of),
                          "email": loyalty["email"]}),
        ]
    )  # fmt: skip
    emails["email"] = emails["email"].str.strip().str.lower()
    emails = emails.dropna().drop_duplicates()
    engagement = _read(landing, "email", "engagement", ["email", "event_type", "occurred_at"])
    engagement = engagement[engagement["event_type"] == "clicked"].copy()
    engagement["email"] = engagement["email"].str.strip().str.lower()
    engagement["at"] = _seconds(engagement["occurred_at"])
    clicks = engagement.dropna(subset=["at"]).merge(emails, on="email")
    shop_of_person = accounts[["person_id", "shop_customer_id"]].dropna()
    clicks = clicks.merge(shop_of_person, on="person_id")[["shop_customer_id", "at"]]

    loyalty["rank"] = loyalty["tier"].map(TIERS).fillna(0)
    loyalty["person_id"] = ("loyalty:" + loyalty["member_id"]).map(person_of)
    tier = loyalty.merge(shop_of_person, on="person_id").groupby("shop_customer_id")["rank"].max()
    return _Behaviour(accounts.reset_index(drop=True), web, clicks, tier)


def features(b: _Behaviour, orders: pd.DataFrame, cutoff: int) -> pd.DataFrame:
    """Features at `cutoff` (epoch s) for the shop accounts created by then; `orders`: the
    revenue orders (shop_customer_id, at)."""
    ids = b.accounts.loc[b.accounts["created"] <= cutoff, "shop_customer_id"]
    out = pd.DataFrame(index=pd.Index(ids, name="shop_customer_id"))

    def counted(frame: pd.DataFrame, days: int, mask=None) -> pd.Series:
        sel = (frame["at"] <= cutoff) & (frame["at"] > cutoff - days * DAY)
        if mask is not None:
            sel &= mask
        n = frame.loc[sel].groupby("shop_customer_id").size()
        return np.log1p(n.reindex(out.index).fillna(0).astype(float))

    names = b.web["event_name"]
    out["web_sessions_30d"] = counted(b.web, 30, names.isin(["session_start", "app_open"]))
    out["product_views_30d"] = counted(b.web, 30, names == "product_viewed")
    out["cart_adds_30d"] = counted(b.web, 30, names == "cart_add")
    out["email_clicks_90d"] = counted(b.clicks, 90)
    out["orders_365d"] = counted(orders, 365)
    last = orders.loc[orders["at"] <= cutoff].groupby("shop_customer_id")["at"].max()
    days = (cutoff - last.reindex(out.index)) / DAY
    out["years_since_last_order"] = (np.minimum(days.fillna(365.0), 365.0) / 365.0).astype(float)
    out["loyalty_tier_rank"] = b.tier.reindex(out.index).fillna(0).astype(float)
    return out


# ---------------------------------------------------------------------------------------------
# Planting
# ---------------------------------------------------------------------------------------------


def _money(cents: np.ndarray) -> list[str]:
    return [f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]


def _ts(seconds: np.ndarray) -> list[str]:
    return [dt.datetime.fromtimestamp(int(s), dt.UTC).strftime(_TS) for s in seconds.tolist()]


def plant(truth: PropensityTruth, out, truth_dir: Path, as_of: dt.date, seed: int) -> dict:
    """Replace the shop orders after T1 by planted conversions (rewriting shop/orders and
    shop/order_lines through the generator's output `out`, and dropping the defect rows of
    removed orders), write the truth files; returns the manifest entry."""
    rng = np.random.default_rng([seed, 0x1EAD])
    end = int(dt.datetime.combine(as_of, dt.time(23, 59, 59), dt.UTC).timestamp())
    t2 = end - truth.window_days * DAY
    t1 = t2 - truth.window_days * DAY
    landing = Path(out.landing)
    b = _behaviour(landing, truth_dir, out.defects)

    contract = out.contracts["shop__orders"]
    orders = _read(landing, "shop", "orders", list(contract.column_names))
    at = _seconds(orders["ordered_at"])
    late = set(orders.loc[~(at <= t1), "order_id"])  # every version of an order after T1
    kept = orders[~orders["order_id"].isin(late)].reset_index(drop=True)
    bad = _quarantined(out.defects, "shop__orders")
    current = kept.sort_values("updated_at").drop_duplicates("order_id", keep="last")
    revenue = current[current["status"].isin(["paid", "shipped", "delivered"])
                      & ~current["order_id"].isin(bad)]  # fmt: skip
    revenue = pd.DataFrame(
        {"shop_customer_id": revenue["shop_customer_id"], "at": _seconds(revenue["ordered_at"])}
    )

    rows, planted = [], []
    for window, cutoff, stop in (("train", t1, t2), ("eval", t2, end - 2 * HOUR)):
        x = features(b, revenue, cutoff)
        p = truth.probability(x)
        y = rng.random(len(x)) < p
        when = rng.integers(cutoff + 1, stop, len(x))
        new = pd.DataFrame({"shop_customer_id": x.index[y], "at": when[y]})
        revenue = pd.concat([revenue, new], ignore_index=True)
        planted.append(new)
        rows.append(x.assign(window=window, true_probability=p, converted=y).reset_index())
    truth_rows = pd.concat(rows, ignore_index=True)

    # new orders: one catalogue product each, shipped to the account's default address
    new = pd.concat(planted, ignore_index=True).sort_values("at", kind="stable")
    k = len(new)
    acct = b.accounts.set_index("shop_customer_id").loc[new["shop_customer_id"]]
    start = int(orders["order_id"].str[1:].astype(int).max()) + 1 if len(orders) else 1
    order_ids = [f"O{i:08d}" for i in range(start, start + k)]
    ordered = new["at"].to_numpy(dtype=np.int64)
    age = end - ordered
    status = np.select([age < DAY, age < 5 * DAY], ["paid", "shipped"], "delivered")
    updated = np.minimum(ordered + rng.integers(600, 2 * DAY, k), end)
    product = rng.integers(0, len(ref.PRODUCTS), k)
    price = np.array([p[2] for p in ref.PRODUCTS], dtype=np.int64)[product]
    country = acct["country_code"].to_numpy()
    currency = pd.Series(country).map(dict(zip(ref.COUNTRIES, ref.CURRENCIES, strict=True)))
    new_orders = pd.DataFrame(
        {
            "order_id": order_ids,
            "shop_customer_id": new["shop_customer_id"].to_numpy(),
            "ordered_at": _ts(ordered),
            "status": status,
            "currency": currency.to_numpy(),
            "total_amount": _money(price),
            "discount_amount": None,
            "shipping_country_code": country,
            "shipping_address_line1": acct["address_line1"].to_numpy(),
            "shipping_address_line2": acct["address_line2"].to_numpy(),
            "shipping_city": acct["city"].to_numpy(),
            "shipping_postal_code": acct["postal_code"].to_numpy(),
            "updated_at": _ts(updated),
        }
    )
    all_orders = pd.concat([kept, new_orders[list(contract.column_names)]], ignore_index=True)
    out.write("shop__orders", _arrays(all_orders))

    lines_contract = out.contracts["shop__order_lines"]
    lines = _read(landing, "shop", "order_lines", list(lines_contract.column_names))
    lines = lines[~lines["order_id"].isin(late)]
    new_lines = pd.DataFrame(
        {
            "order_line_id": [f"{o}-1" for o in order_ids],
            "order_id": order_ids,
            "product_id": [f"P{i + 1:04d}" for i in product.tolist()],
            "product_name": [ref.PRODUCTS[i][0] for i in product.tolist()],
            "category": [ref.CATEGORIES[ref.PRODUCTS[i][1]] for i in product.tolist()],
            "unit_price": _money(price),
            "quantity": "1",
            "updated_at": _ts(ordered),
        }
    )
    out.write("shop__order_lines", _arrays(pd.concat([lines, new_lines], ignore_index=True)))
    out.defects[:] = [_drop_records(t, "shop", "orders", late) for t in out.defects]

    # --- truth -----------------------------------------------------------------------------
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth_rows.insert(1, "person_id", truth_rows["shop_customer_id"].map(
        b.accounts.set_index("shop_customer_id")["person_id"]))  # fmt: skip
    summary = {}
    for window, part in truth_rows.groupby("window", sort=False):
        summary[window] = {
            "customers": len(part),
            "conversions": int(part["converted"].sum()),
            "conversion_rate": round(float(part["converted"].mean()), 6),
            "planted_roc_auc": _rounded(roc_auc(part["true_probability"], part["converted"])),
            "planted_brier": round(
                float(np.mean((part["true_probability"] - part["converted"]) ** 2)), 6
            ),
        }
    iso = lambda s: dt.datetime.fromtimestamp(s, dt.UTC).strftime(_TS)  # noqa: E731
    parameters = {
        **asdict(truth),
        "features": list(FEATURES),
        "cutoff_train": iso(t1),
        "cutoff_eval": iso(t2),
        "as_of_end": iso(end),
        "population": "shop accounts created by the cut-off whose record passes its contract",
        "windows": summary,
    }
    (truth_dir / TRUTH_FILES[0]).write_text(json.dumps(parameters, indent=2) + "\n")
    truth_rows.to_csv(truth_dir / TRUTH_FILES[1], index=False, float_format="%.6f")
    out.say(
        f"generate: lead_score planted {summary['train']['conversions']:,} + "
        f"{summary['eval']['conversions']:,} conversions; planted ROC AUC (eval) "
        f"{summary['eval']['planted_roc_auc']}"
    )
    return {**asdict(truth), "windows": summary}


def _rounded(value: float) -> float | None:
    """JSON has no NaN: an undefined AUC (one class) is null."""
    return None if math.isnan(value) else round(value, 6)


def remove_truth(truth_dir: Path) -> None:
    """A run without the profile leaves no stale lead-score truth behind."""
    for name in TRUTH_FILES:
        (Path(truth_dir) / name).unlink(missing_ok=True)


def _arrays(frame: pd.DataFrame) -> dict[str, pa.Array]:
    return {c: pa.Array.from_pandas(frame[c].astype(object), type=pa.string()) for c in frame}


def _drop_records(table: pa.Table, source: str, entity: str, ids: set[str]) -> pa.Table:
    if not ids:
        return table
    hit = pc.and_(
        pc.and_(pc.equal(table["source"], source), pc.equal(table["entity"], entity)),
        pc.is_in(table["record_id"], value_set=pa.array(sorted(ids), pa.string())),
    )
    return table.filter(pc.invert(hit))
