"""Planted treatment effect of syncs on conversion for the generator's `treatment` profile.

A closed-loop simulation (docs/generator.md "Profile treatment"): `c360 generate --as-of D
--profile treatment` reads `activation.contact_history` from the warehouse of the home it generates
into — which members each sync sent to (`ok`) and which it held out (`held_out`) on the nights
before D — and plants a conversion for each such send decision with a known probability:

    P(convert | held out) = base_rate,  P(convert | sent) = base_rate + lift

For a sync with A/B/n arms (contact_history.arm, orchestration/activation/arms.py) each arm may
have its own planted lift (`arm_lifts`: arm name → lift; an arm not named there gets `lift`).

on the day after the send night (a uniform instant of that UTC day), an order of status `paid`
whose total is Gamma(spend_shape, mean mean_spend). The orders are written next to the generated
shop orders of D (`shop/orders/dt=D/part-00001.jsonl`) for every decision whose conversion day
is D or earlier, so generating night after night writes each planted order on its day and again,
byte-identical, on the nights after it (the same order id: staging keeps one version).

Draws are deterministic: md5 of (seed, sync, send night, customer) gives the uniforms, so a
planted conversion does not depend on the order of the rows or on the night it is generated.
Only customers with a shop account can order (the customer's shop account in
`marts.customer_id_map`); the truth counts them per arm.

Truth (`<truth>/treatment_lift.csv`, one row per sync, send night and treatment arm (`arm`
empty for a sync without arms) with treated and held-out members, and
`treatment_parameters.json`): the planted lift, the expected conversion rate of each arm for the
planted orders alone, and the expected rates within an attribution window of `window_days` (the
dbt var campaign_attribution_days by default) — which, for a customer sent on consecutive nights,
also holds the planted orders of the other nights' sends (the windows overlap) — and the planted
revenue per member. Organic orders (the generator's own) come on top in both arms alike.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

TRUTH_FILES = ("treatment_lift.csv", "treatment_parameters.json")
ORDERS_FILE = "part-00001.jsonl"


@dataclass(frozen=True)
class TreatmentTruth:
    """The planted effect (probabilities per send decision; spend in the order's currency)."""

    lift: float = 0.03  # extra conversion probability of a member sent to
    base_rate: float = 0.02  # conversion probability of every member, sent or held out
    mean_spend: float = 60.0  # mean planted order total
    spend_shape: float = 4.0  # Gamma shape of the total (an integer: a sum of exponentials)
    window_days: int | None = None  # truth's attribution window; None: campaign_attribution_days
    warehouse: str | None = None  # where contact_history is read; None: the home's warehouse
    currency: str = "USD"
    # A/B/n: planted lift per arm name (contact_history.arm); arms not named get `lift`
    arm_lifts: dict[str, float] | None = None

    def arm_lift(self, arm: str | None) -> float:
        """The planted lift of a sent member of `arm` (None: a sync without arms)."""
        return float((self.arm_lifts or {}).get(arm, self.lift)) if arm else float(self.lift)


def _warehouse(truth: TreatmentTruth) -> Path:
    from orchestration.paths import warehouse_path

    return Path(truth.warehouse) if truth.warehouse else warehouse_path()


def _window_days(truth: TreatmentTruth) -> int:
    if truth.window_days is not None:
        return int(truth.window_days)
    from orchestration.dbt_vars import project_vars

    return int(project_vars().get("campaign_attribution_days", 7))


def _uniform(hex_expr: str, start: int) -> str:
    """A uniform in (0, 1) from 8 hex characters of an md5 text."""
    return f"((cast(('0x' || substr({hex_expr}, {start}, 8)) as ubigint) + 0.5) / 4294967296.0)"


def _lift_sql(truth: TreatmentTruth) -> str:
    """The planted lift of a sent row, by its arm."""
    cases = " ".join(
        f"when arm = '{str(name).replace(chr(39), chr(39) * 2)}' then {float(value)}"
        for name, value in sorted((truth.arm_lifts or {}).items())
    )
    return f"(case {cases} else {float(truth.lift)} end)" if cases else str(float(truth.lift))


def _decisions_sql(truth: TreatmentTruth, seed: int, has_arm: bool = False) -> str:
    """One row per send decision before ? (the generated as_of) with its planted draws
    (`has_arm`: contact_history has the arm column)."""
    shape = int(truth.spend_shape)
    if shape < 1 or shape != truth.spend_shape:
        raise ValueError("spend_shape must be a whole number >= 1")
    spend = " + ".join(f"ln({_uniform('h_spend', 1 + 8 * (i % 4))})" for i in range(shape))
    key = f"'{int(seed)}|' || sync_id || '|' || cast(as_of as varchar) || '|' || customer_id"
    return f"""
        with history as (
            select sync_id, segment_name, as_of, customer_id, is_holdout,
                {"case when is_holdout then null else arm end" if has_arm else "cast(null as varchar)"}
                    as arm
            from activation.contact_history
            where outcome in ('ok', 'held_out') and as_of < ?
            qualify row_number() over (
                partition by sync_id, as_of, customer_id order by recorded_at desc, contact_id desc
            ) = 1
        ),
        shop as (
            select customer_id, min(source_record_id) as shop_customer_id
            from marts.customer_id_map
            where source = 'shop' and entity = 'customers'
            group by customer_id
        ),
        keyed as (
            select history.*, shop.shop_customer_id,
                {float(truth.base_rate)} + case when history.is_holdout then 0
                    else {_lift_sql(truth)} end as p_convert,
                md5({key}) as h_draw,
                md5({key} || '|spend') as h_spend,
                md5({key} || '|order') as h_order
            from history left join shop using (customer_id)
        )
        select sync_id, segment_name, as_of, customer_id, is_holdout, arm, shop_customer_id,
            p_convert,
            shop_customer_id is not null and {_uniform("h_draw", 1)} < p_convert as converted,
            cast(as_of as timestamp) + interval 1 day
                + to_seconds(cast(floor({_uniform("h_draw", 9)} * 86400) as bigint))
                as ordered_at,
            round(-({float(truth.mean_spend)} / {shape}) * ({spend}), 2) as total_amount,
            'OT' || upper(substr(h_order, 1, 14)) as order_id
        from keyed
    """


def _side_sql(side: str) -> str:
    """The aggregates of one side of a send ("treated" or "held_out"), named after it: members,
    shop customers, planted conversions, the expected rate alone and within the window, and the
    expected orders within the window."""
    return f"""
        count(*) as {side},
        count(*) filter (where shop_customer_id is not null) as {side}_shop_customers,
        count(*) filter (where converted) as {side}_planted_conversions,
        avg(case when shop_customer_id is null then 0 else p_convert end) as expected_{side}_rate,
        avg(1 - p_none_in_window) as expected_{side}_rate_in_window,
        avg(expected_orders_in_window) as expected_orders
    """


def _truth_sql(window_days: int, mean_spend: float) -> str:
    """Per sync, send night and treatment arm (each against the night's held-out members):
    members, planted conversions and the expected rates (alone and within the attribution
    window, other sends of the same customer included)."""
    return f"""
        with mine as (
            select d.*, coalesce(exp(sum(ln(1 - o.p_convert))), 1) as p_none_in_window,
                coalesce(sum(o.p_convert), 0) as expected_orders_in_window
            from decisions as d
            left join decisions as o
                on o.customer_id = d.customer_id and o.shop_customer_id is not null
                and o.as_of between d.as_of and d.as_of + {int(window_days) - 1}
            group by all
        ),
        held as (
            select sync_id, as_of, {_side_sql("held_out")}
            from mine where is_holdout
            group by sync_id, as_of
        ),
        treated as (
            select sync_id, any_value(segment_name) as segment_name, as_of, arm,
                {_side_sql("treated")}
            from mine where not is_holdout
            group by sync_id, as_of, arm
        )
        select t.sync_id, t.segment_name, t.as_of as send_as_of, t.arm, t.treated, h.held_out,
            t.treated_shop_customers, h.held_out_shop_customers,
            t.treated_planted_conversions, h.held_out_planted_conversions,
            t.expected_treated_rate, h.expected_held_out_rate,
            t.expected_treated_rate_in_window, h.expected_held_out_rate_in_window,
            t.expected_treated_rate_in_window - h.expected_held_out_rate_in_window
                as expected_conversion_lift_in_window,
            (t.expected_orders - h.expected_orders) * {float(mean_spend)}
                as expected_revenue_lift_per_member_in_window
        from treated as t
        inner join held as h on t.sync_id = h.sync_id and t.as_of = h.as_of
        order by t.sync_id, t.as_of, t.arm nulls first
    """


def plant(
    truth: TreatmentTruth,
    seed: int,
    as_of: dt.date,
    landing_dir: Path,
    truth_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write the planted orders of the send decisions before `as_of` (conversion day ≤ as_of)
    and the truth files; a summary for the generate manifest."""
    from orchestration.contracts.model import all_source_contracts

    say = progress or (lambda _m: None)
    window = _window_days(truth)
    path = _warehouse(truth)
    from orchestration.warehouse import scratch

    con = scratch()
    con.execute("set timezone = 'UTC'")
    has_history = has_arm = False
    if path.exists():
        con.execute(f"attach '{path}' as wh (read_only)")
        con.execute("use wh")
        has_history = bool(
            con.execute(
                "select count(*) from information_schema.tables where table_catalog = 'wh' and "
                "table_schema in ('activation', 'marts') "
                "and table_name in ('contact_history', 'customer_id_map')"
            ).fetchone()[0]
            == 2
        )
    if has_history:
        has_arm = bool(
            con.execute(
                "select count(*) from information_schema.columns where table_catalog = 'wh' "
                "and table_schema = 'activation' and table_name = 'contact_history' "
                "and column_name = 'arm'"
            ).fetchone()[0]
        )
        con.execute(
            f"create temp table decisions as {_decisions_sql(truth, seed, has_arm)}", [as_of]
        )
    else:
        con.execute(
            "create temp table decisions (sync_id varchar, segment_name varchar, as_of date, "
            "customer_id varchar, is_holdout boolean, arm varchar, shop_customer_id varchar, "
            "p_convert double, converted boolean, ordered_at timestamp, total_amount double, "
            "order_id varchar)"
        )
    end = dt.datetime.combine(as_of, dt.time(23, 59, 59))
    orders = con.execute(
        "select order_id, shop_customer_id, ordered_at, total_amount from temp.decisions "
        "where converted and ordered_at <= ? order by ordered_at, order_id",
        [end],
    ).fetchall()
    truth_rows = con.execute(
        _truth_sql(window, truth.mean_spend).replace("decisions", "temp.decisions")
    )
    names = [d[0] for d in truth_rows.description]
    table = truth_rows.fetchall()
    con.close()

    contract = next(c for c in all_source_contracts() if c.id == "shop__orders")
    folder = landing_dir / "shop" / "orders" / f"dt={as_of.isoformat()}"
    lines = []
    for order_id, customer, at, amount in orders:
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        values = {
            "order_id": order_id,
            "shop_customer_id": customer,
            "ordered_at": stamp,
            "status": "paid",
            "currency": truth.currency,
            "total_amount": f"{amount:.2f}",
            "discount_amount": "0.00",
            "updated_at": stamp,
        }
        lines.append(json.dumps({c: values.get(c) for c in contract.column_names}) + "\n")
    (folder / ORDERS_FILE).unlink(missing_ok=True)
    if lines:  # no file without orders: ingestion refuses an empty JSON-lines file
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ORDERS_FILE).write_text("".join(lines), encoding="utf-8")

    truth_dir.mkdir(parents=True, exist_ok=True)
    with (truth_dir / "treatment_lift.csv").open("w", encoding="utf-8") as fh:
        fh.write(",".join([*names[:3], "planted_lift", *names[3:], "window_days"]) + "\n")
        for row in table:
            cells = [*row[:3], truth.arm_lift(row[3]), *row[3:], window]
            fh.write(",".join("" if v is None else str(v) for v in cells) + "\n")
    summary = {
        **asdict(truth),
        "window_days": window,
        "warehouse": str(path),
        "send_decisions_measured": int(
            sum(r[4] for r in table) + sum({(r[0], r[2]): r[5] for r in table}.values())
        ),
        "planted_orders_written": len(orders),
        "syncs": sorted({r[0] for r in table}),
    }
    (truth_dir / "treatment_parameters.json").write_text(json.dumps(summary, indent=2) + "\n")
    say(
        f"generate: treatment truth {len(table)} sync night(s), "
        f"{len(orders):,} planted orders up to {as_of} (lift {truth.lift}, base {truth.base_rate})"
    )
    return summary


def remove_truth(truth_dir: Path) -> None:
    """No stale treatment truth from an earlier run with the profile."""
    for name in TRUTH_FILES:
        (truth_dir / name).unlink(missing_ok=True)
