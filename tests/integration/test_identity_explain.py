"""`c360 identity explain` on real pipeline runs: the records and links that make one customer,
masked unless --show-pii; and an unmerge (a blocklist entry plus a rerun) explained end to end:
the split in the merge log, the refused link in `explain`, the retired id after a re-merge."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
import yaml

from orchestration import dbt_warm
from orchestration.cli import main
from orchestration.contracts.masking import mask_value
from orchestration.paths import dbt_project_dir
from tests.integration.conftest import AS_OF, make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="identity_explain")]

# Two different people (same first name: the household guard would keep different first names
# apart on its own) who typed the same family address at the shop.
EMAIL = "robin.shared@family.org"
# a shop account and a loyalty card of two people sharing a family email (two shop accounts
# would never merge: at most one shop_customer_id per customer)
# S9000003: the id its split mints sorts before the original id, so the re-merge below proves
# the tie-break (same first_assigned day: the id not minted by a split wins), not string order
SHOP = ("S9000003", "Robin.Shared@Family.org", "+1 (415) 555-0191", "Alder")
LOYALTY = ("L9000002", "robin.shared@family.org", "+1 (415) 555-0192", "Birch")
KEYS = [f"r|shop:customers:{SHOP[0]}", f"r|loyalty:members:{LOYALTY[0]}"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    """300 generated persons plus the two planted shop accounts, one nightly run at AS_OF."""
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    with pytest.MonkeyPatch.context() as mp:
        home = make_home(tmp_path_factory.mktemp("explain_home"), mp)
        generate(300, 5, AS_OF, home.landing, home.truth, progress=None)
        ts = f"{AS_OF.isoformat()}T08:00:00Z"
        sid, email, phone, last = SHOP
        row = {"shop_customer_id": sid, "email": email, "phone": phone, "first_name": "Robin",
               "last_name": last, "country_code": "US", "address_line1": None, "address_line2": None,
               "city": None, "postal_code": None, "created_at": ts, "updated_at": ts}  # fmt: skip
        folder = home.landing / "shop" / "customers" / f"dt={AS_OF.isoformat()}"
        (folder / "part-09999.jsonl").write_text(json.dumps(row) + "\n")
        member, email, phone, last = LOYALTY
        loyalty = next((home.landing / "loyalty" / "members").rglob("*.csv"))
        loyalty.write_text(
            loyalty.read_text() + f"{member},,{email},{phone},Robin,{last},,,,,bronze,1,{ts},{ts}\n"
        )
        report = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
        assert report.success, report.checks_failed
        yield home


def _ids(home, keys: list[str]) -> dict[str, str]:
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        return dict(
            con.execute(
                "select record_key, customer_id from marts.customer_id_map "
                "where record_key in (select unnest(?))",
                [keys],
            ).fetchall()
        )


def _pii_of_customers(con, customer_ids: list[str]) -> tuple[list[str], list[str]]:
    """(emails and phones, names) of every record of these customers."""
    rows = con.execute(
        "select r.email_normalized, r.phone_e164, r.first_name, r.last_name "
        "from intermediate.int_identity__records as r "
        "inner join marts.customer_id_map as m on r.record_key = m.record_key "
        "where m.customer_id in (select unnest(?))",
        [customer_ids],
    ).fetchall()
    contact = sorted({v for r in rows for v in r[:2] if v})
    names = sorted({v for r in rows for v in r[2:] if v})
    return contact, names


def _explain(capsys, *args: str) -> str:
    assert main(["identity", "explain", *args]) == 0
    return capsys.readouterr().out


def test_explain_lists_records_and_links_and_masks_personal_data(planted, capsys):
    home = planted
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        # a generated customer spanning several sources, one of them carrying an email
        customer_id, email = con.execute(
            """
            select m.customer_id, min(r.email_normalized)
            from marts.customer_id_map as m
            inner join intermediate.int_identity__records as r on m.record_key = r.record_key
            where m.record_key not in (select unnest(?))
            group by m.customer_id
            having count(distinct m.source) >= 2 and min(r.email_normalized) is not null
            order by count(*) desc, m.customer_id
            limit 1
            """,
            [KEYS],
        ).fetchone()
        record_keys = [
            r[0]
            for r in con.execute(
                "select record_key from marts.customer_id_map where customer_id = ?", [customer_id]
            ).fetchall()
        ]
        assert len(record_keys) >= 2
        rules = {
            r[0]
            for r in con.execute(
                "select distinct rule from intermediate.int_identity__edges "
                "where record_key in (select unnest(?))",
                [record_keys],
            ).fetchall()
        }
        by_email = [
            r[0]
            for r in con.execute(
                "select distinct m.customer_id from marts.customer_id_map as m "
                "inner join intermediate.int_identity__records as r on m.record_key = r.record_key "
                "where r.email_normalized = ?",
                [email],
            ).fetchall()
        ]
        contact, names = _pii_of_customers(con, by_email)
        own, _ = _pii_of_customers(con, [customer_id])
    assert customer_id in by_email and rules

    by_id = _explain(capsys, customer_id)
    by_mail = _explain(capsys, f"  {email.upper()} ")  # normalised like the pipeline
    for out in (by_id, by_mail):
        assert f"customer {customer_id} " in out
        assert all(k in out for k in record_keys), "every record of the customer is listed"
        assert all(rule in out for rule in rules), "every link's rule is shown"
        assert mask_value(email) in out
        assert [v for v in contact + names if v in out] == [], "no personal data without --show-pii"
    assert f"email {mask_value(email)}" in by_mail

    shown = _explain(capsys, customer_id, "--show-pii")
    assert own and all(v in shown for v in own), "--show-pii prints emails and phones"

    for unknown in ("c_0000000000000000", "nobody@nowhere.example.org"):
        assert main(["identity", "explain", unknown]) == 1
        captured = capsys.readouterr()
        assert captured.err.startswith("error: ") and "Traceback" not in captured.err
    assert main(["identity", "explain", customer_id, "--as-of", "2026-01-01"]) == 1
    assert "holds the identity graph of as_of" in capsys.readouterr().err


def test_explain_prints_link_probability_when_edges_have_it(planted, tmp_path):
    """Probabilistic links may add edges.probability: explain shows it only when the column exists."""
    from orchestration.identity.explain import explain, format_explanation

    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(planted.warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        assert "probability" not in format_explanation(explain(con, EMAIL))
        con.execute("alter table intermediate.int_identity__edges add column probability double")
        con.execute("update intermediate.int_identity__edges set probability = 0.875")
        out = format_explanation(explain(con, EMAIL))
    assert "probability" in out and "0.875" in out


def _dbt_build(home, tmp_path: Path, run_id: str, identity: dict) -> None:
    """Rerun dbt at AS_OF with `vars.identity` overridden (the nightly job passes only as_of and
    run_id to dbt, so a config change for one run goes through dbt's --vars)."""
    dbt = Path(dbt_warm.executable())
    variables = {"as_of": AS_OF.isoformat(), "run_id": run_id, "identity": identity}
    done = subprocess.run(
        [str(dbt), "build", "--profiles-dir", ".", "--vars", json.dumps(variables),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        cwd=dbt_project_dir(), env=os.environ.copy(), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]


def test_unmerge_by_blocklist_and_rerun_is_explained(planted, capsys, tmp_path):
    home = planted
    before = _ids(home, KEYS)
    assert len(before) == 2 and len(set(before.values())) == 1, "one shared email: one customer"
    original = before[KEYS[0]]
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        assert con.execute(
            "select count(*) from marts.customer_id_map where customer_id = ?", [original]
        ).fetchone() == (2,)
    out = _explain(capsys, original)
    assert all(k in out for k in KEYS) and "shared_email" in out

    # Unmerge: the shared address goes on the blocklist, and the same as_of runs again.
    identity = yaml.safe_load((dbt_project_dir() / "dbt_project.yml").read_text())["vars"][
        "identity"
    ]
    blocked = {**identity, "blocklist": [*identity["blocklist"], {"type": "email", "exact": EMAIL}]}
    _dbt_build(home, tmp_path / "unmerge", "test-unmerge", blocked)
    after = _ids(home, KEYS)
    assert len(set(after.values())) == 2, "the two people are different customers now"
    assert original in after.values(), "the original id stays with one of them"
    split_off = next(v for v in after.values() if v != original)
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        split = con.execute(
            "select rule, identifier_type, identifier_value, via_record_key, run_id "
            "from audit.identity_merge_log "
            "where event = 'split' and customer_id = ? and other_customer_id = ?",
            [split_off, original],
        ).fetchall()
        dropped = con.execute(
            "select record_key, drop_reason from intermediate.int_identity__dropped_links "
            "where node_key = ?",
            [f"v|email:{EMAIL}"],
        ).fetchall()
    split_key = next(k for k, v in after.items() if v == split_off)
    assert split == [("blocklist_exact", "email", EMAIL, split_key, "test-unmerge")]
    assert sorted(dropped) == sorted((k, "blocklist_exact") for k in KEYS)

    for customer_id, other in ((original, split_off), (split_off, original)):
        out = _explain(capsys, customer_id)
        refused = [line for line in out.splitlines() if "blocklist_exact" in line]
        # the refused link (with the customer it would have joined) and the split in the log
        assert any(mask_value(EMAIL) in line and other in line for line in refused), out
        assert any(" split " in f" {line} " for line in refused), out
        assert EMAIL not in out and "Robin" not in out
    both = _explain(capsys, EMAIL.upper(), "--show-pii")
    assert f"customer {original} " in both and f"customer {split_off} " in both
    assert EMAIL in both and "Robin" in both

    # Undo: the blocklist entry goes away, the rerun merges them back and retires one id, which
    # `explain` resolves to the live one.
    _dbt_build(home, tmp_path / "remerge", "test-remerge", identity)
    remerged = _ids(home, KEYS)
    assert len(set(remerged.values())) == 1
    live = remerged[KEYS[0]]
    assert live == original, "the re-merge keeps the original id, not the one the split minted"
    retired = split_off
    out = _explain(capsys, retired)
    assert f"customer_id {retired} was retired by a merge" in out
    assert f"resolves to the live customer_id {live}" in out
    assert f"customer {live} " in out and f"retired ids now resolving to it: {retired}" in out
    merge_lines = [line for line in out.splitlines() if " merge " in f" {line} "]
    assert any(retired in line and "shared_email" in line for line in merge_lines), out
