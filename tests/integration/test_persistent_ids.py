"""Persistent customer_ids across runs: reruns and full refreshes keep every id; a bridging record
merges two customers, the OLDEST id survives and the merge is logged."""

import datetime as dt
import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from orchestration import dbt_warm
from orchestration.paths import dbt_project_dir
from tests.integration.conftest import make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="persistent_ids")]
D0 = dt.date(2026, 11, 18)


def _ids(home) -> dict[str, str]:
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        return dict(
            con.execute("select record_key, customer_id from marts.customer_id_map").fetchall()
        )


def _ts(day: dt.date) -> str:
    return f"{day.isoformat()}T12:00:00Z"


def test_ids_survive_reruns_full_refresh_and_merges_keep_the_oldest(tmp_path, monkeypatch):
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    generate(300, 21, D0, home.landing, home.truth, progress=None)
    assert run_nightly(D0, instance=home.instance, log_level="WARNING").success
    first = _ids(home)

    # A full refresh rebuilds every model, but the registry is not a model: ids stay.
    dbt = Path(dbt_warm.executable())
    done = subprocess.run(
        [str(dbt), "build", "--full-refresh", "--profiles-dir", ".", "--vars", f"{{as_of: '{D0}'}}",
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        cwd=dbt_project_dir(), env=os.environ.copy(), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]
    assert _ids(home) == first

    # Day 1: a new CRM contact appears (a new customer B). A is a shop customer with neither a
    # CRM contact nor a loyalty card, so the bridge below passes no max_per_customer limit.
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        shop_id, email, first_name = con.execute(
            "select s.shop_customer_id, s.email_normalized, s.first_name "
            "from staging.stg_shop__customers as s inner join marts.customer_id_map as m "
            "on m.source = 'shop' and m.source_record_id = s.shop_customer_id "
            "where s.email_normalized is not null and s.first_name is not null and not exists ("
            "select 1 from marts.customer_id_map as o "
            "where o.customer_id = m.customer_id and o.source in ('crm', 'loyalty')) "
            "order by s.shop_customer_id limit 1"
        ).fetchone()
    d1, d2 = D0 + dt.timedelta(days=1), D0 + dt.timedelta(days=2)
    crm_folder = home.landing / "crm" / "contacts" / f"dt={d1.isoformat()}"
    crm_folder.mkdir(parents=True)
    (crm_folder / "part-00000.csv").write_text(
        "contact_id,account_id,first_name,last_name,email,phone,mobile_phone,date_of_birth,"
        "address_line1,address_line2,city,postal_code,region,country_code,time_zone,created_at,"
        "updated_at,is_deleted\n"
        f"C9999999,,{first_name},Bridge,bridge.new@example.org,,+1 (415) 555-0199,,,,,,,US,,"
        f"{_ts(d1)},{_ts(d1)},false\n"
    )
    assert run_nightly(d1, instance=home.instance, log_level="WARNING").success
    day1 = _ids(home)
    a_id = first[f"r|shop:customers:{shop_id}"]
    b_id = day1["r|crm:contacts:C9999999"]
    assert a_id != b_id
    assert {k: v for k, v in day1.items() if k in first} == first, "new records never move old ids"

    # Day 2: a loyalty member carries A's email and B's phone: the bridge merges A and B (same
    # first name everywhere: the household guard links a shared value only across agreeing names).
    folder = home.landing / "loyalty" / "members" / f"dt={d2.isoformat()}"
    folder.mkdir(parents=True)
    header = (
        "member_id,crm_contact_id,email,phone,first_name,last_name,birthday,"
        "address_line1,city,postal_code,tier,points_balance,joined_at,updated_at"
    )
    row = f"L9999999,,{email},+14155550199,{first_name},Bridge,1990-01-01,,,,gold,10,{_ts(d2)},{_ts(d2)}"
    (folder / "part-00000.csv").write_text(header + "\n" + row + "\n")
    assert run_nightly(d2, instance=home.instance, log_level="WARNING").success
    day2 = _ids(home)
    assert day2[f"r|shop:customers:{shop_id}"] == a_id, "the oldest id survives the merge"
    assert day2["r|crm:contacts:C9999999"] == a_id
    assert day2["r|loyalty:members:L9999999"] == a_id
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        log = con.execute(
            "select as_of, event, customer_id, other_customer_id from audit.identity_merge_log"
        ).fetchall()
    assert (d2, "merge", a_id, b_id) in log
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        why = con.execute(
            "select rule, identifier_type, identifier_value, via_record_key, run_id "
            "from audit.identity_merge_log where event = 'merge' and other_customer_id = ?",
            [b_id],
        ).fetchone()
    # logged with the bridging link: B's phone, shared by B's contact and the new loyalty record
    # (either end names it), and the Dagster run
    assert why[:3] == ("shared_phone", "phone", "+14155550199")
    assert why[3] in ("r|loyalty:members:L9999999", "r|crm:contacts:C9999999")
    assert len(why[4]) == 36  # a Dagster run id (uuid)
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        history = con.execute(
            "select retired_customer_id, current_customer_id, retired_by_rule "
            "from marts.customer_id_history"
        ).fetchall()
    assert history == [(b_id, a_id, "shared_phone")], "activation can retire B's id at platforms"

    # Day 3: the member corrects the data (no phone, another email): the bridge is gone, the
    # customer splits; the id stays with the part holding most records, the split is logged.
    d3 = D0 + dt.timedelta(days=3)
    folder = home.landing / "loyalty" / "members" / f"dt={d3.isoformat()}"
    folder.mkdir(parents=True)
    row = f"L9999999,,nova.b@example.org,,{first_name},Bridge,1990-01-01,,,,gold,10,{_ts(d2)},{_ts(d3)}"
    (folder / "part-00000.csv").write_text(header + "\n" + row + "\n")
    _fresh_web_event(home.landing, d3)  # web events go stale after 3 days (its contract)
    assert run_nightly(d3, instance=home.instance, log_level="WARNING").success
    day3 = _ids(home)
    assert day3[f"r|shop:customers:{shop_id}"] == a_id
    split_off = day3["r|crm:contacts:C9999999"]
    assert split_off != a_id
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        log = con.execute(
            "select as_of, event, customer_id, other_customer_id from audit.identity_merge_log"
        ).fetchall()
    assert (d3, "split", split_off, a_id) in log


def _fresh_web_event(landing, as_of: dt.date) -> None:
    """One new web event on as_of (a copy of the first generated one, new id and times): the
    source keeps delivering, so its stale-source gate (maxStaleDays 3) does not block the night."""
    import json

    first = next((landing / "web" / "events").glob("dt=*/*.jsonl")).read_text().splitlines()[0]
    event = json.loads(first) | {
        "event_id": f"E-fresh-{as_of.isoformat()}",
        "occurred_at": f"{as_of.isoformat()}T06:00:00Z",
        "received_at": f"{as_of.isoformat()}T06:00:05Z",
    }
    folder = landing / "web" / "events" / f"dt={as_of.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-00000.jsonl").write_text(json.dumps(event) + "\n")
