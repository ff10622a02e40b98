"""Personal data stays in the warehouse: canary emails and phones planted in a CRM file (one
clean record, one quarantined for a bad email, and — issue 14, masking by allow-list — canary
e-mails, phones, a name and a birth date in the wrong columns, in the wrong kind of PII column and
in an oversized (~90 KB) field, all quarantined) must not appear in Dagster's storage (run and event
logs, captured compute logs), dbt's run logs, the quality gate's metadata, the data-quality
reports (HTML under $C360_HOME/reports) or CLI output without --show-pii — and must appear with it
(so the search itself can fail). A ragged CSV line blocks its whole file today (DuckDB then reads
every line as one value), so it is planted in tests/unit/test_masking.py, which runs the staged
asset and its check through Dagster and greps the run's event log, check metadata and report."""

import re

import duckdb
import pytest

from orchestration.contracts.masking import mask_value
from tests.integration.conftest import AS_OF, make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pii_canary")]

GOOD_EMAIL, BAD_EMAIL = "canary.good.x7q@example.org", "canary.bad.x7q.example.org"
GOOD_PHONE, BAD_PHONE = "+1 415 555 0142", "+1 415 555 0143"
WRONG_EMAIL, WRONG_PHONE = "canary.wrong.x7q@example.org", "+1 415 555 0147"
NAME, BIRTH = "Quillon Zabrowski", "1903-02-01"
# any rendering of the canaries: the emails' local parts, the phones' national digits, the
# family name, the birth date
CANARY = re.compile(
    rb"canary\.(good|bad|wrong)\.x7q|415\D{0,3}555\D{0,3}014[2-7]|Zabrowski|1903-02-01|01/02/1903",
    re.IGNORECASE,
)
# where personal data may live: the warehouse (erasure reaches it), the sources and the outbox
ALLOWED = ("warehouse.duckdb", "landing", "truth", "outbox", "tmp")


def _leaks(root) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0].startswith(ALLOWED):
            continue
        if CANARY.search(path.read_bytes()):
            found.append(str(rel))
    return found


def test_canary_pii_never_leaves_the_warehouse(tmp_path, monkeypatch, capsys):
    from demo.generator import generate
    from orchestration.cli import main
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    generate(300, 31, AS_OF, home.landing, home.truth, progress=None)
    crm = next((home.landing / "crm" / "contacts").rglob("*.csv"))
    ts = f"{AS_OF.isoformat()}T09:00:00Z"
    # Right below the header: the quarantined canary is then among the first rows of its rule,
    # which the data-quality report shows (masked) as samples — so the report is really searched.
    header, _, body = crm.read_text().partition("\n")
    big = (f"{NAME} {WRONG_EMAIL} {WRONG_PHONE} {BIRTH} " * 1500).strip()  # ~90 KB
    crm.write_text(
        f"{header}\n"
        f"C8888888,,Cana,Ry,{GOOD_EMAIL},{GOOD_PHONE},,,,,,,,US,,{ts},{ts},false\n"
        f"C8888889,,Cana,Ry,{BAD_EMAIL},{BAD_PHONE},,,,,,,,US,,{ts},{ts},false\n"
        # wrong columns: e-mail in region, phone in time_zone, birth date in account_id, the
        # name in country_code (breaks its pattern: quarantined)
        f"C8888890,{BIRTH},Q,Z,,,,,,,Paris,,{WRONG_EMAIL},{NAME},{WRONG_PHONE},{ts},{ts},false\n"
        # an oversized non-PII field (quarantined by its country code)
        f"C8888891,,Q,Z,,,,,,,{big},,,{NAME},,{ts},{ts},false\n"
        # PII columns holding another kind of PII (quarantined by the e-mail rule)
        f"C8888892,,{WRONG_EMAIL},{WRONG_PHONE},{NAME},{BIRTH},{WRONG_EMAIL},{WRONG_PHONE},"
        f",,,,,US,,{ts},{ts},false\n{body}"
    )

    report = run_nightly(AS_OF, instance=home.instance, log_level="DEBUG")
    assert report.success, report.checks_failed
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        # the canaries are in the warehouse: one published, one quarantined
        assert con.execute(
            "select count(*) from raw.crm__contacts where email = ?", [GOOD_EMAIL]
        ).fetchone() == (1,)
        assert con.execute(
            "select count(*) from quarantine.crm__contacts where email = ?", [BAD_EMAIL]
        ).fetchone() == (1,)
        customer_id = con.execute(
            "select customer_id from marts.customer_360 where email = ?", [GOOD_EMAIL]
        ).fetchone()[0]

    # the search space is real: Dagster's storage and dbt's logs exist, and the regex finds the
    # canaries where they are allowed to be
    searched = [p for p in home.home.rglob("*") if p.is_file()]
    assert any("dagster" in p.parts for p in searched)
    assert CANARY.search(crm.read_bytes())
    # the data-quality reports are searched too (not under an allowed folder), and the CRM
    # contacts page holds the quarantined canary's row: its id, masked phone and masked e-mail
    reports = sorted((home.home / "reports").rglob("*.html"))
    assert reports and not any(
        p.relative_to(home.home).parts[0].startswith(ALLOWED) for p in reports
    )
    leaks = _leaks(home.home)
    assert not leaks, f"canary PII found in: {leaks}"
    contacts_page = next(p for p in reports if p.name == "crm__contacts.html").read_text()
    canary_row = next(r for r in contacts_page.split("<tr>") if "C8888889" in r)
    assert mask_value(BAD_PHONE) in canary_row and mask_value(BAD_EMAIL) in canary_row
    # the rows planted in wrong columns and the oversized field are shown too (fully masked)
    for contact in ("C8888890", "C8888891", "C8888892"):
        assert contact in contacts_page, contact
    assert f"***[{len(big)} chars]" in contacts_page
    run_output = capsys.readouterr()
    assert not CANARY.search((run_output.out + run_output.err).encode()), "PII in run logs"

    outputs = []
    for argv in (
        ["summary", "--as-of", AS_OF.isoformat()],
        ["sync", "--dry-run", "--as-of", AS_OF.isoformat()],
        ["identity", "explain", customer_id],
        ["identity", "explain", GOOD_EMAIL],
    ):
        assert main(argv) == 0, argv
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
    for argv, text in zip(
        ("summary", "dry-run", "explain id", "explain email"), outputs, strict=True
    ):
        assert not CANARY.search(text.encode()), f"canary PII in `c360 {argv}` output"
    # the search can fail: --show-pii reveals the canary
    assert main(["identity", "explain", customer_id, "--show-pii"]) == 0
    assert CANARY.search(capsys.readouterr().out.encode())
