"""The sample-data generator: deterministic, contract-shaped, anchored to as_of, every planted
defect breaks exactly its rule and nothing else does, ground truth complete, noise present.

The row checker below is deliberately independent of the generator (plain `re` / `datetime`);
only the contracts themselves are read through the contract model."""

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from demo.generator import NoiseProfile, generate
from orchestration.contracts.model import Contract, all_source_contracts
from orchestration.paths import REPO_ROOT

AS_OF = dt.date(2026, 11, 21)
END = f"{AS_OF.isoformat()}T23:59:59Z"
CUSTOMERS = 2000
SEED = 3
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
INTEGER = re.compile(r"^-?\d+$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
UUID_LIKE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
IDENTITY = {
    ("crm", "contacts"): "contact_id",
    ("shop", "customers"): "shop_customer_id",
    ("loyalty", "members"): "member_id",
}


# --- reading the files back (no generator code) ------------------------------------------------


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _read(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:  # empty CSV field = null
            return [{k: (v if v != "" else None) for k, v in r.items()} for r in csv.DictReader(fh)]
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _file(root: Path, c: Contract) -> Path:
    files = sorted((root / "landing" / c.source / c.entity / f"dt={AS_OF}").glob("part-*"))
    assert len(files) == 1, c.id
    return files[0]


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# --- an independent rule checker ---------------------------------------------------------------


def _present(v) -> bool:
    return v is not None and str(v).strip() != ""


def _parses(logical_type: str, v: str) -> bool:
    v = v.strip()
    if logical_type == "integer":
        return bool(INTEGER.match(v))
    if logical_type == "number":
        return bool(NUMBER.match(v))
    if logical_type == "boolean":
        return v in ("true", "false")
    shape, fmt = (DATE, "%Y-%m-%d") if logical_type == "date" else (TS, "%Y-%m-%dT%H:%M:%SZ")
    if not shape.match(v):
        return False
    try:
        dt.datetime.strptime(v, fmt)
    except ValueError:
        return False
    return True


def _broken_rules(c: Contract, row: dict) -> set[str]:
    """Error rules of the contract this row breaks (required, type, pattern, min, values)."""
    broken = set()
    for rule in c.rules:
        if rule.severity != "error":
            continue
        v = row.get(rule.column)
        if rule.kind == "required":
            bad = not _present(v)
        elif rule.kind == "type":
            bad = _present(v) and not _parses(c.field(rule.column).logical_type, v)
        elif rule.kind == "pattern":
            bad = _present(v) and re.fullmatch(rule.pattern, v) is None
        elif rule.kind == "minimum":
            bad = _present(v) and bool(NUMBER.match(v.strip())) and float(v) < rule.minimum
        else:
            bad = _present(v) and v not in rule.valid_values
        if bad:
            broken.add(rule.rule_id)
    return broken


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """(root, result, rows per contract id, progress lines) of one run."""
    root = tmp_path_factory.mktemp("gen")
    lines: list[str] = []
    result = generate(
        CUSTOMERS, SEED, AS_OF, root / "landing", root / "truth", progress=lines.append
    )
    rows = {c.id: _read(_file(root, c)) for c in all_source_contracts()}
    return root, result, rows, lines


@pytest.fixture(scope="module")
def person_of(generated) -> dict[tuple[str, str], str]:
    root, *_ = generated
    truth = _csv(root / "truth" / "ground_truth.csv")
    return {(t["source"], t["source_record_id"]): t["person_id"] for t in truth}


@pytest.fixture(scope="module")
def defects(generated) -> list[dict]:
    root, *_ = generated
    return _csv(root / "truth" / "defects.csv")


# --- tests -------------------------------------------------------------------------------------


def test_same_arguments_give_identical_bytes_and_stale_files_are_removed(generated, tmp_path):
    root, *_ = generated
    stale = tmp_path / "landing" / "crm" / "contacts" / f"dt={AS_OF}" / "part-00001.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("contact_id\nC999999\n")
    generate(CUSTOMERS, SEED, AS_OF, tmp_path / "landing", tmp_path / "truth", progress=None)
    assert not stale.exists()
    assert _digest(root / "landing") == _digest(tmp_path / "landing")
    assert _digest(root / "truth") == _digest(tmp_path / "truth")


def test_another_seed_gives_other_data(generated, tmp_path):
    root, *_ = generated
    generate(CUSTOMERS, SEED + 1, AS_OF, tmp_path / "landing", tmp_path / "truth", progress=None)
    ours, theirs = _digest(root / "landing"), _digest(tmp_path / "landing")
    assert ours.keys() == theirs.keys()
    assert all(ours[k] != theirs[k] for k in ours)


def test_every_contract_gets_one_file_with_exactly_its_columns_all_text(generated):
    root, result, rows, _ = generated
    suffix = {"crm": ".csv", "loyalty": ".csv", "email": ".csv", "shop": ".jsonl"}
    suffix |= {"web": ".jsonl", "consent": ".parquet"}
    assert set(result.rows) == {c.id for c in all_source_contracts()}
    for c in all_source_contracts():
        path = _file(root, c)
        assert path.name == f"part-00000{suffix[c.source]}", c.id
        assert rows[c.id], c.id
        assert result.rows[c.id] == len(rows[c.id]), c.id
        if path.suffix == ".csv":
            header = path.read_text(encoding="utf-8").splitlines()[0]
            assert header == ",".join(c.column_names), c.id
        elif path.suffix == ".parquet":
            schema = pq.read_schema(path)
            assert schema.names == list(c.column_names), c.id
            assert all(t == pa.string() for t in schema.types), c.id
        for r in rows[c.id]:
            assert list(r) == list(c.column_names), c.id
            assert all(v is None or isinstance(v, str) for v in r.values()), (c.id, r)
    manifest = json.loads((root / "truth" / "generate_manifest.json").read_text())
    assert manifest["seed"] == SEED and manifest["customers"] == CUSTOMERS
    assert manifest["as_of"] == AS_OF.isoformat()
    assert manifest["noise"] == dataclasses.asdict(NoiseProfile())
    assert manifest["rows"] == result.rows
    assert sum(manifest["files"].values()) == sum(result.rows.values())
    assert result.persons == CUSTOMERS
    assert result.landing_dir == root / "landing" and result.truth_dir == root / "truth"


def test_progress_is_one_line_per_stage(generated):
    _, result, _, lines = generated
    assert lines[0] == f"generate: persons {CUSTOMERS:,}"
    assert all(line.startswith("generate: ") for line in lines)
    for c in all_source_contracts():
        assert f"generate: wrote {c.source}/{c.entity} {result.rows[c.id]:,} rows" in lines


def test_rows_pass_every_error_rule_except_exactly_the_planted_ones(generated, defects):
    _, _, rows, _ = generated
    planted = {
        (d["source"] + "__" + d["entity"], d["record_id"]): d["rule_id"]
        for d in defects
        if d["kind"] == "quarantine"
    }
    seen = set()
    for c in all_source_contracts():
        pk = c.primary_key[0]
        for r in rows[c.id]:
            broken = _broken_rules(c, r)
            key = (c.id, r[pk])
            if key in planted:
                assert broken == {planted[key]}, (c.id, r, broken)
                seen.add(key)
            else:
                assert not broken, (c.id, r, broken)
    assert seen == set(planted), "every planted defect names a real row"


def test_planted_defects_cover_every_class_and_never_touch_keys(generated, defects):
    _, _, rows, _ = generated
    classes = Counter((d["source"], d["entity"], d["rule_id"], d["kind"]) for d in defects)
    assert set(classes) == {
        ("crm", "contacts", "email.format", "quarantine"),
        ("crm", "contacts", "updated_at.required", "quarantine"),
        ("shop", "customers", "email.format", "quarantine"),
        ("loyalty", "members", "email.format", "quarantine"),
        ("shop", "orders", "total_amount.non_negative", "quarantine"),
        ("shop", "orders", "status.valid_values", "quarantine"),
        ("web", "events", "occurred_at.type", "quarantine"),
        ("email", "engagement", "event_type.valid_values", "quarantine"),
        ("crm", "contacts", "duplicate", "duplicate"),
        ("shop", "orders", "duplicate", "duplicate"),
    }
    for c in all_source_contracts():
        pk = c.primary_key[0]
        assert all(_present(r[pk]) for r in rows[c.id]), c.id
        ours = [d for d in defects if d["source"] + "__" + d["entity"] == c.id]
        n = len({r[pk] for r in rows[c.id]})
        for rule, k in Counter(d["rule_id"] for d in ours).items():
            rate = 0.005 if rule == "duplicate" else 0.002
            assert 1 <= k <= round(n * rate) + 1, (c.id, rule, k, n)
        assert len({d["record_id"] for d in ours}) == len(ours), "one defect per row"
        assert all(d["column"] in c.column_names for d in ours), c.id
    events = {r["event_id"]: r for r in rows["web__events"]}
    for d in defects:
        if d["rule_id"] == "occurred_at.type":
            assert events[d["record_id"]]["event_name"] != "identify"


def test_duplicates_are_older_clean_versions_of_an_existing_key(generated, defects):
    _, _, rows, _ = generated
    duplicates = [d for d in defects if d["kind"] == "duplicate"]
    assert duplicates
    for c in all_source_contracts():
        pk = c.primary_key[0]
        versions = defaultdict(list)
        for r in rows[c.id]:
            versions[r[pk]].append(r)
        ours = {d["record_id"] for d in duplicates if d["source"] + "__" + d["entity"] == c.id}
        assert {k for k, v in versions.items() if len(v) > 1} == ours, c.id
        for key in ours:
            assert len(versions[key]) == 2
            old, new = sorted(versions[key], key=lambda r: r["updated_at"])
            assert old["updated_at"] < new["updated_at"], key
            assert not _broken_rules(c, old) and not _broken_rules(c, new), key
            assert any(old[k] != new[k] for k in c.column_names if k != "updated_at"), key


def test_ground_truth_covers_every_identity_record(generated):
    root, _, rows, _ = generated
    truth = _csv(root / "truth" / "ground_truth.csv")
    assert list(truth[0]) == ["source", "entity", "source_record_id", "person_id"]
    keys = defaultdict(list)
    for t in truth:
        assert re.fullmatch(r"p\d{7}", t["person_id"]), t
        keys[(t["source"], t["entity"])].append(t["source_record_id"])
    assert set(keys) == {*IDENTITY, ("web", "anonymous_ids")}
    for (source, entity), pk in IDENTITY.items():
        ids = {r[pk] for r in rows[f"{source}__{entity}"]}
        assert sorted(keys[(source, entity)]) == sorted(ids), (source, entity)
    anon = {r["anonymous_id"] for r in rows["web__events"]}
    assert sorted(keys[("web", "anonymous_ids")]) == sorted(anon)
    assert len({t["person_id"] for t in truth}) <= CUSTOMERS


def test_everything_happens_before_the_end_of_as_of(generated):
    _, _, rows, _ = generated
    for c in all_source_contracts():
        ts_cols = [f.name for f in c.fields if f.logical_type == "timestamp"]
        for r in rows[c.id]:
            for col in ts_cols:
                v = r[col]
                if not v or not _parses("timestamp", v) or col == "expires_at":
                    continue  # planted bad timestamps; expires_at is a validity end
                assert v <= END, (c.id, col, v)
            for col in ("date_of_birth", "birthday"):
                if r.get(col):
                    assert "1940-01-01" <= r[col] <= "2008-12-31", r
            updated = r.get("updated_at")
            if r.get("created_at") and updated and _parses("timestamp", updated):
                assert r["created_at"] <= updated, (c.id, r)
    assert min(r["ordered_at"] for r in rows["shop__orders"]) >= f"{AS_OF.year - 3}-11-20"
    for r in rows["web__events"]:
        if _parses("timestamp", r["occurred_at"]):
            assert r["occurred_at"] <= r["received_at"]


def test_orders_add_up_and_identify_calls_link_the_right_person(generated, person_of, defects):
    _, _, rows, _ = generated
    bad = {d["record_id"] for d in defects if d["kind"] == "quarantine"}
    lines = defaultdict(int)
    for r in rows["shop__order_lines"]:
        lines[r["order_id"]] += round(float(r["unit_price"]) * 100) * int(r["quantity"])
    for r in rows["shop__orders"]:
        if r["order_id"] not in bad:
            discount = round(float(r["discount_amount"] or 0) * 100)
            assert round(float(r["total_amount"]) * 100) == lines[r["order_id"]] - discount, r
    currency = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR"}
    for r in rows["shop__orders"]:
        if r["shipping_country_code"]:
            assert currency[r["shipping_country_code"]] == r["currency"], r
    products = {
        (r["product_id"], r["product_name"], r["category"]) for r in rows["shop__order_lines"]
    }
    assert len(products) >= 50 and len({p[2] for p in products}) >= 8
    identify = [r for r in rows["web__events"] if r["event_name"] == "identify"]
    assert identify
    for r in rows["web__events"]:
        assert (r["user_id"] is not None) == (r["event_name"] == "identify")
        assert isinstance(json.loads(r["properties"]), dict)
        assert "@" not in r["properties"], "properties never carry PII"
        assert UUID_LIKE.match(r["anonymous_id"]), r
    for r in identify:
        assert person_of[("web", r["anonymous_id"])] == person_of[("shop", r["user_id"])]


def test_orders_ship_to_the_buyers_address_except_gifts(generated, person_of):
    """Every order has a shipping address: the buyer's current address (the CRM one), some
    written differently (case, a dot, a doubled space), except about order_gift_rate of them."""
    _, _, rows, _ = generated

    def key(line1: str, postal: str) -> tuple[str, str]:
        return re.sub(r"[^a-z0-9]", "", line1.lower()), postal

    home = defaultdict(set)
    for r in rows["crm__contacts"]:
        home[person_of[("crm", r["contact_id"])]].add(key(r["address_line1"], r["postal_code"]))
    crm_lines = {r["address_line1"] for r in rows["crm__contacts"]}
    at_home = away = restyled = 0
    for r in rows["shop__orders"]:
        assert r["shipping_address_line1"] and r["shipping_postal_code"], r
        buyer = person_of[("shop", r["shop_customer_id"])]
        if buyer not in home:
            continue
        if key(r["shipping_address_line1"], r["shipping_postal_code"]) in home[buyer]:
            at_home += 1
            restyled += r["shipping_address_line1"] not in crm_lines
        else:
            away += 1
    assert at_home > 1000
    assert abs(away / (at_home + away) - NoiseProfile().order_gift_rate) < 0.015
    assert 0.05 < restyled / at_home < 0.15, "address_format_rate"


def test_noise_profile_effects_are_present(generated, person_of):
    _, _, rows, _ = generated
    # household sharing: one email used by two different true persons
    by_email = defaultdict(set)
    for (source, entity), pk in IDENTITY.items():
        for r in rows[f"{source}__{entity}"]:
            if r["email"] and "@" in r["email"]:
                by_email[r["email"].lower()].add(person_of[(source, r[pk])])
    assert sum(len(p) > 1 for p in by_email.values()) >= 5, "household-shared emails"
    # namesakes: same first name, last name and birth date, different persons
    by_name = defaultdict(set)
    for r in rows["crm__contacts"]:
        if r["date_of_birth"]:
            key = (r["first_name"], r["last_name"], r["date_of_birth"])
            by_name[key].add(person_of[("crm", r["contact_id"])])
    for r in rows["loyalty__members"]:
        if r["birthday"]:
            key = (r["first_name"], r["last_name"], r["birthday"])
            by_name[key].add(person_of[("loyalty", r["member_id"])])
    assert any(len(p) > 1 for p in by_name.values()), "namesakes"
    # anonymous ids: some identified, some never
    anon = {r["anonymous_id"] for r in rows["web__events"]}
    identified = {r["anonymous_id"] for r in rows["web__events"] if r["event_name"] == "identify"}
    assert 0 < len(identified) < len(anon)
    # no shared key: a person whose shop email matches none of their CRM emails
    emails_of = defaultdict(set)
    for (source, entity), pk in IDENTITY.items():
        for r in rows[f"{source}__{entity}"]:
            if r["email"]:
                emails_of[(person_of[(source, r[pk])], source)].add(r["email"].lower())
    strangers = [
        p
        for (p, source), emails in emails_of.items()
        if source == "shop" and emails_of.get((p, "crm")) and not emails & emails_of[(p, "crm")]
    ]
    assert len(strangers) >= 5, "no-shared-key persons"
    # typos: the same person's first name differs between systems
    first_of = defaultdict(set)
    for (source, entity), pk in IDENTITY.items():
        for r in rows[f"{source}__{entity}"]:
            first_of[person_of[(source, r[pk])]].add(r["first_name"])
    assert any(len(v) > 1 for v in first_of.values()), "name typos"
    # phones written in many formats; consent phone contact points are E.164
    mobiles = [r["mobile_phone"] for r in rows["crm__contacts"] if r["mobile_phone"]]
    assert len({re.sub(r"\d", "9", m) for m in mobiles}) >= 8
    for r in rows["consent__events"]:
        if r["contact_point_type"] == "phone":
            assert re.fullmatch(r"\+[1-9]\d{7,14}", r["contact_point"]), r


def test_presence_rates_are_roughly_the_profile(generated, person_of):
    _, _, rows, _ = generated
    noise = NoiseProfile()
    for (source, entity), pk in IDENTITY.items():
        rate = getattr(noise, f"{source}_presence")
        people = {person_of[(source, r[pk])] for r in rows[f"{source}__{entity}"]}
        assert abs(len(people) / CUSTOMERS - rate) < 0.05, source
    web_people = {person_of[("web", r["anonymous_id"])] for r in rows["web__events"]}
    assert abs(len(web_people) / CUSTOMERS - noise.web_presence) < 0.05
    deleted = sum(r["is_deleted"] == "true" for r in rows["crm__contacts"])
    assert 0 < deleted < 0.05 * len(rows["crm__contacts"])


def test_noise_profile_defaults_are_documented():
    doc = (REPO_ROOT / "docs" / "generator.md").read_text()
    for f in dataclasses.fields(NoiseProfile):
        row = next((ln for ln in doc.splitlines() if ln.startswith(f"| `{f.name}` |")), None)
        assert row is not None, f"docs/generator.md has no table row for {f.name}"
        assert f"| {f.default} |" in row, (
            f"docs/generator.md: default of {f.name} is not {f.default}"
        )


def test_tiny_sizes_still_write_every_file(tmp_path):
    result = generate(7, 1, AS_OF, tmp_path / "landing", tmp_path / "truth", progress=None)
    assert set(result.rows) == {c.id for c in all_source_contracts()}
    with pytest.raises(ValueError):
        generate(0, 1, AS_OF, tmp_path / "landing", tmp_path / "truth", progress=None)


# --- the clv profile: planted BG/NBD purchases and Gamma-Gamma spend ----------------------------


@pytest.fixture(scope="module")
def clv_generated(tmp_path_factory):
    """(root, rows per contract id) of one run with the clv profile, same size and seed."""
    from demo.generator import CLVTruth

    root = tmp_path_factory.mktemp("gen_clv")
    generate(
        CUSTOMERS, SEED, AS_OF, root / "landing", root / "truth", progress=None,
        clv_truth=CLVTruth(),
    )  # fmt: skip
    return root, {c.id: _read(_file(root, c)) for c in all_source_contracts()}


def test_default_run_writes_no_clv_truth_and_removes_a_stale_one(generated, tmp_path):
    root, *_ = generated
    assert not (root / "truth" / "clv_parameters.json").exists()
    assert "clv" not in json.loads((root / "truth" / "generate_manifest.json").read_text())
    stale = tmp_path / "truth" / "clv_customers.csv"
    stale.parent.mkdir()
    stale.write_text("stale\n")
    generate(50, 1, AS_OF, tmp_path / "landing", tmp_path / "truth", progress=None)
    assert not stale.exists()


def test_clv_profile_changes_only_the_orders_and_what_follows(generated, clv_generated):
    root, *_ = generated
    clv_root, _ = clv_generated
    same = ("crm/contacts", "crm/accounts", "shop/customers")
    for path in same:
        a = next((root / "landing" / path).rglob("part-*")).read_bytes()
        b = next((clv_root / "landing" / path).rglob("part-*")).read_bytes()
        assert a == b, path
    a = next((root / "landing" / "shop/orders").rglob("part-*")).read_bytes()
    assert a != next((clv_root / "landing" / "shop/orders").rglob("part-*")).read_bytes()


def test_clv_profile_orders_follow_the_planted_truth(clv_generated):
    root, rows = clv_generated
    params = json.loads((root / "truth" / "clv_parameters.json").read_text())
    assert params["parameters"] == {
        "r": 0.8, "alpha": 80.0, "a": 0.8, "b": 2.4, "p": 6.0, "q": 4.0, "gamma": 40.0
    }  # fmt: skip
    assert params["time_unit"] == "day"
    truth = {r["shop_customer_id"]: r for r in _read(root / "truth" / "clv_customers.csv")}
    customers = {r["shop_customer_id"]: r for r in rows["shop__customers"]}
    assert set(truth) == set(customers)
    orders: dict[str, dict] = {}
    for r in rows["shop__orders"]:  # one order per id (older versions are duplicates)
        orders[r["order_id"]] = r
    by_customer = defaultdict(list)
    for r in orders.values():
        by_customer[r["shop_customer_id"]].append(r)
    lines = {r["order_id"]: r for r in rows["shop__order_lines"]}
    assert len(lines) == len(rows["shop__order_lines"]), "one line per order"
    for cid, t in truth.items():
        mine = sorted(by_customer[cid], key=lambda r: r["ordered_at"])
        assert len(mine) == 1 + int(t["repeat_orders"]), cid
        assert mine[0]["ordered_at"] == t["first_ordered_at"]
        assert mine[0]["ordered_at"] >= customers[cid]["created_at"]
        assert t["alive_at_as_of"] in {"true", "false"}
        assert 0 < float(t["dropout_probability"]) < 1 and float(t["purchase_rate_per_day"]) > 0
    for r in orders.values():
        assert r["status"] in {"paid", "shipped", "delivered"} | {
            "pending_review", "on_hold", "backordered", "lost"  # planted unknown statuses
        }  # fmt: skip
        assert r["discount_amount"] is None
        line = lines[r["order_id"]]
        if not r["total_amount"].startswith("-"):  # planted negative amounts aside
            assert line["unit_price"] == r["total_amount"] and line["quantity"] == "1"
    # The planted means show in the data: mean order value p * gamma / (q - 1) = 80, a share
    # of repeat buyers, some customers no longer alive.
    amounts = [float(r["total_amount"]) for r in orders.values() if float(r["total_amount"]) > 0]
    assert 60 < sum(amounts) / len(amounts) < 100
    repeaters = sum(int(t["repeat_orders"]) > 0 for t in truth.values())
    assert 0.4 < repeaters / len(truth) < 0.9
    alive = sum(t["alive_at_as_of"] == "true" for t in truth.values())
    assert 0.3 < alive / len(truth) < 0.95


# --- the send_time profile: a planted preferred hour of the week per person ---------------------


def test_send_time_profile_plants_preferred_hours_and_leaves_identity_data_alone(
    generated, tmp_path
):
    from demo.generator import PROFILES, SendTimeTruth

    assert PROFILES["send_time"] == {"send_time_truth": SendTimeTruth()}
    root, *_ = generated
    assert not (root / "truth" / "send_time_customers.csv").exists()
    out = tmp_path / "st"
    generate(CUSTOMERS, SEED, AS_OF, out / "landing", out / "truth", progress=None,
             send_time_truth=SendTimeTruth())  # fmt: skip
    # the main stream is untouched: identity-bearing records are the same bytes
    for path in ("crm/contacts", "shop/customers", "shop/orders", "loyalty/members"):
        a = next((root / "landing" / path).rglob("part-*")).read_bytes()
        assert a == next((out / "landing" / path).rglob("part-*")).read_bytes(), path
    for path in ("web/events", "email/engagement"):
        a = next((root / "landing" / path).rglob("part-*")).read_bytes()
        assert a != next((out / "landing" / path).rglob("part-*")).read_bytes(), path
    truth = _csv(out / "truth" / "send_time_customers.csv")
    assert len(truth) == CUSTOMERS
    assert all(0 <= int(t["preferred_hour_of_week"]) < 168 for t in truth)
    manifest = json.loads((out / "truth" / "generate_manifest.json").read_text())
    assert manifest["send_time"] == {"affinity": 0.4}
    # every timestamp still at or before the end of as_of
    for path in ("web/events", "email/engagement"):
        for r in _read(next((out / "landing" / path).rglob("part-*"))):
            if r["occurred_at"] and _parses("timestamp", r["occurred_at"]):  # planted aside
                assert r["occurred_at"] <= END
    # a default run into the same truth folder removes the stale send-time truth
    generate(50, 1, AS_OF, out / "landing", out / "truth", progress=None)
    assert not (out / "truth" / "send_time_customers.csv").exists()
