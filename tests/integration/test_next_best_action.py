"""The seeds' next-best-action example end to end, through two real nightlies: a lapsing
high-value customer with push consent gets "win-back via push, today at their best hour" in
marts.next_best_action, and a file-drop sync naming `action: win_back_push` sends it; a twin
without push consent is not sent (the email win-back is their next best); a customer sent the
push two nights earlier is in cooldown and not sent again.

Data: 120 generated persons (CLV and send-time profiles, so the CLV fit and the personal best
hour are real) plus three planted shop accounts in Berlin with four 300.00 orders each. Night 1
(as_of D1 = D - 2): only the cooldown customer has lapsed long enough (60+ days) and gets the
push. Night 2 (as_of D): the target and the twin have lapsed (61 days); the target's push consent
arrives in that night's landing files.
"""

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pandas as pd
import pytest

from tests.integration.conftest import make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="next_best_action")]

D = dt.date(2026, 11, 21)  # a Saturday: "today" for the night's sends is Sunday 22 November
D1 = D - dt.timedelta(days=2)  # within the web source's 3-day staleness bound
BERLIN = ZoneInfo("Europe/Berlin")
BEST_HOUR = 6 * 24 + 19  # Sunday 19:00 local
TARGET = ("S9100001", "nba.target@planted.example.org", 61)  # shop id, email, days since order
TWIN = ("S9100002", "nba.twin@planted.example.org", 61)
COOLING = ("S9100003", "nba.cooling@planted.example.org", 100)
SYNC = """\
name: file_drop__win_back_push
description: Next-best action win-back pushes for the push platform, each night.
action: win_back_push
destination: file_drop
channel: push
purpose: marketing
format: csv
fields:
  customer_id: customer_id
  first_name: first_name
"""


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _consent(email: str, channel: str, captured: dt.date, n: int) -> dict:
    return {
        "consent_event_id": f"CE99{n:07d}",
        "contact_point": email,
        "contact_point_type": "email",
        "channel": channel,
        "purpose": "marketing",
        "status": "granted",
        "captured_at": f"{captured.isoformat()}T10:00:00Z",
        "expires_at": None,
        "source": "preference_centre",
    }


def _write_parquet(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, dtype="string").to_parquet(path, index=False)


def _plant_history(landing: Path) -> None:
    """Accounts, orders, opens and consent known by night 1 (all before D1)."""
    folder = f"dt={D1.isoformat()}"
    customers, orders, opens, consent = [], [], [], []
    for n, (shop_id, email, days) in enumerate((TARGET, TWIN, COOLING)):
        created = "2024-01-05T09:00:00Z"
        customers.append(
            {
                "shop_customer_id": shop_id,
                "email": email,
                "phone": None,
                "first_name": "Planted",
                "last_name": f"Nba{n}",
                "country_code": "DE",
                "address_line1": None,
                "address_line2": None,
                "city": None,
                "postal_code": None,
                "created_at": created,
                "updated_at": created,
            }
        )
        for k in range(4):
            day = D - dt.timedelta(days=days + 90 * k)
            at = f"{day.isoformat()}T12:00:00Z"
            orders.append(
                {
                    "order_id": f"O99{n}{k:05d}",
                    "shop_customer_id": shop_id,
                    "ordered_at": at,
                    "status": "delivered",
                    "currency": "EUR",
                    "total_amount": "300.00",
                    "discount_amount": None,
                    "shipping_country_code": "DE",
                    "shipping_address_line1": None,
                    "shipping_address_line2": None,
                    "shipping_city": None,
                    "shipping_postal_code": None,
                    "updated_at": at,
                }
            )
        # eight Sunday-evening opens (19:10 Berlin): their best hour of the week
        for week in range(8):
            sunday = D1 - dt.timedelta(days=(D1.weekday() - 6) % 7 + 7 * week)
            local = dt.datetime.combine(sunday, dt.time(19, 10), tzinfo=BERLIN)
            opens.append(f"EE99{n}{week:07d},{email},CMP-NBA{week},opened,,{_utc(local)}")
        consent.append(_consent(email, "email", D1 - dt.timedelta(days=200), 10 * n))
    consent.append(_consent(COOLING[1], "push", D1 - dt.timedelta(days=30), 99))
    shop = landing / "shop"
    (shop / "customers" / folder / "part-09999.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in customers)
    )
    (shop / "orders" / folder / "part-09999.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in orders)
    )
    engagement = landing / "email" / "engagement" / folder / "part-09999.csv"
    engagement.write_text(
        "engagement_event_id,email,campaign_id,event_type,bounce_type,occurred_at\n"
        + "".join(line + "\n" for line in opens)
    )
    _write_parquet(consent, landing / "consent" / "events" / folder / "part-09999.parquet")


def _customer_ids(con) -> dict[str, str]:
    keys = {f"r|shop:customers:{shop_id}": shop_id for shop_id, _, _ in (TARGET, TWIN, COOLING)}
    rows = con.execute(
        "select record_key, customer_id from marts.customer_id_map "
        "where record_key in (select unnest(?))",
        [list(keys)],
    ).fetchall()
    return {keys[k]: c for k, c in rows}


def _sends(con, as_of: dt.date) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in con.execute(
            "select customer_id, outcome, channel, segment_name, contact_point "
            "from activation.contact_history where sync_id = 'file_drop__win_back_push' "
            "and as_of = ?",
            [as_of],
        ).fetchall()
    }


def _nba(con, customer_id: str) -> dict[str, dict]:
    cursor = con.execute(
        "select * from marts.next_best_action where customer_id = ?", [customer_id]
    )
    names = [c[0] for c in cursor.description]
    return {r[1]: dict(zip(names, r, strict=True)) for r in cursor.fetchall()}


def test_win_back_via_push_today_at_the_best_hour(tmp_path, monkeypatch):
    from demo.generator import CLVTruth, SendTimeTruth, generate
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path / "home", monkeypatch)
    # an in-memory Dagster instance: no SQLite event log or per-step log capture to write;
    # these tests read the warehouse and the run report, never the instance's history
    instance = dg.DagsterInstance.ephemeral()
    syncs = tmp_path / "syncs"
    syncs.mkdir()
    (syncs / "file_drop__win_back_push.yml").write_text(SYNC)
    monkeypatch.setenv("C360_SYNCS_DIR", str(syncs))
    generate(120, 17, D1, home.landing, home.truth, progress=None, clv_truth=CLVTruth(),
             send_time_truth=SendTimeTruth())  # fmt: skip
    _plant_history(home.landing)

    # night 1: the cooling customer (lapsed 98 days) gets the push; the others lapsed 59 days
    report = run_nightly(D1, instance=instance, log_level="WARNING")
    assert report.success, report.checks_failed
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        ids = _customer_ids(con)
        assert len(set(ids.values())) == 3, ids
        cooling, target, twin = ids[COOLING[0]], ids[TARGET[0]], ids[TWIN[0]]
        first = _nba(con, cooling)["win_back_push"]
        assert first["is_next_best"] and not first["is_holdout"], first
        for early in (target, twin):  # not lapsed long enough yet (a repeat-purchase nudge is)
            assert not {"win_back_push", "win_back_email"} & set(_nba(con, early))
        sent = _sends(con, D1)
        assert sent[cooling][0] == "ok"
        assert sent[cooling][1:3] == ("push", "action:win_back_push")
        assert target not in sent and twin not in sent

    # night 2: the target's push consent lands with the night's files
    _write_parquet(
        [_consent(TARGET[1], "push", D - dt.timedelta(days=3), 100)],
        home.landing / "consent" / "events" / f"dt={D.isoformat()}" / "part-00000.parquet",
    )
    report = run_nightly(D, instance=instance, log_level="WARNING")
    assert report.success, report.checks_failed
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        hour = con.execute(
            "select best_hour_of_week from marts.customer_send_time where customer_id = ?",
            [target],
        ).fetchone()[0]
        assert hour == BEST_HOUR  # the planted Sunday-evening opens
        p_alive, aov = con.execute(
            "select clv.p_alive, c.average_order_value from marts.customer_clv as clv "
            "inner join marts.customer_360 as c using (customer_id) where customer_id = ?",
            [target],
        ).fetchone()
        assert float(aov) == 300.0
        assert p_alive is not None  # BG/NBD fitted: the win-back value is the model's

        # the target: win-back via push, today (the day after as_of) at 19:00 Berlin = 18:00 UTC
        push = _nba(con, target)["win_back_push"]
        assert not push["is_holdout"], "planted target landed in the holdout: change its shop id"
        assert push["is_next_best"] and push["action_rank"] == 1
        assert push["reason_codes"][0] == "next_best"
        assert push["channel"] == "push" and push["is_consented"]
        assert push["send_time_source"] == "personal" and push["best_hour_of_week"] == BEST_HOUR
        assert push["time_zone"] == "Europe/Berlin"
        assert push["send_at_local"] == dt.datetime(2026, 11, 22, 19)
        assert push["send_at_local"].date() == D + dt.timedelta(days=1)
        assert push["send_at_utc"] == dt.datetime(2026, 11, 22, 18)
        assert push["expected_value"] == pytest.approx(0.08 * (1 - p_alive) * 300.0, abs=1e-4)
        assert _nba(con, target)["win_back_email"]["reason_codes"][0] == "outranked"

        # the twin: no push consent; the email win-back is their next best
        twin_rows = _nba(con, twin)
        assert twin_rows["win_back_push"]["reason_codes"][:2] == ["blocked", "no_consent"]
        assert not twin_rows["win_back_push"]["is_consented"]
        assert twin_rows["win_back_email"]["is_next_best"]

        # the cooling customer: pushed on D1, cooldown 14 days
        cool = _nba(con, cooling)["win_back_push"]
        assert cool["is_in_cooldown"] and "cooldown" in cool["reason_codes"]
        assert cool["last_sent_as_of"] == D1 and not cool["is_next_best"]

        # what the push sync sent on night 2: the target only (of the three)
        sent = _sends(con, D)
        assert sent[target] == ("ok", "push", "action:win_back_push", TARGET[1])
        assert twin not in sent and cooling not in sent
        audience = {
            r[0]
            for r in con.execute(
                "select customer_id from marts.action_membership "
                "where segment_name = 'action:win_back_push' and not is_holdout"
            ).fetchall()
        }
        ok = {c for c, r in sent.items() if r[0] == "ok"}
        assert ok <= audience  # nobody outside the next-best audience is pushed
        # and nobody without push consent: every push sent has a granted push consent
        consented = {
            r[0]
            for r in con.execute(
                "select c.customer_id from marts.customer_360 as c "
                "inner join marts.consent_state as s on c.email = s.contact_point "
                "where s.channel = 'push' and s.purpose = 'marketing' and s.is_consented"
            ).fetchall()
        }
        assert ok <= consented
    drop = home.outbox / "file_drop__win_back_push" / f"file_drop__win_back_push__{D}.csv"
    dropped = pd.read_csv(drop, dtype=str)
    assert target in set(dropped["customer_id"])
    assert not {twin, cooling} & set(dropped["customer_id"])
