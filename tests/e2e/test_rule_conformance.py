"""Every contract rule gives the same verdict in DuckDB SQL, Postgres SQL and Python.

For EVERY rule of EVERY contract under data_contracts/sources: the generator's planted defect
rows, clean generated rows, and hand-picked edge cases per rule kind (whitespace, empty string,
case, leading zeros, exponents, time zones, impossible dates, unicode, very long strings, regex
metacharacters, ...) are evaluated by the DuckDB dialect (the warehouse), the Postgres dialect
(a real server) and the Python reference (rules_python.py); the three verdict lists (error and
warning rule ids, in contract order) must be identical row by row. Values a rule accepts must
also load: the typed casts of the raw layer succeed on both warehouses.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from psycopg2.extras import execute_values

from demo.generator import generate
from orchestration.contracts.model import Contract, Field, Rule, all_source_contracts
from orchestration.contracts.rules_python import (
    TYPE_FORMATS,
    failed_rules,
    number_value,
    shared_regex_problems,
    trim,
)
from orchestration.contracts.rules_sql import (
    failed_rules_sql,
    quote_ident,
    quote_literal,
    trimmed_columns_sql,
    typed_select_sql,
)
from orchestration.ingest.landing import discover, read_into
from tests.e2e.pg import PgDatabase, PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="postgres")]

AS_OF = dt.date(2026, 11, 21)
CUSTOMERS = 1000  # every defect class is planted at least once from 200 rows per table up
CLEAN_SAMPLE = 25  # clean generated rows per contract

Row = dict[str, str | None]

# --- edge values per rule kind ----------------------------------------------------------------

LONG = "x" * 20_000
# Values every rule meets: blanks, whitespace that trim keeps, unicode, SQL/regex metacharacters.
COMMON = [
    None, "", " ", "   ", "\t", "\n", " \t ", "\u00a0", "\u3000", "\u2009x\u202f", "\u0085", "\u2028", "x", "X", "0", "-", "'",
    "o'brien", '"', "%", "_", ".*", "^$", "[A-Z]", "\\d", "(?i)a", "a|b", "$1", "\\", "é",
    "ß", "İ", "\u200b", "🙂", "null", "NULL", "None", LONG,
]  # fmt: skip
INTEGER = [
    "0", "5", "-5", "+5", "007", "\u00a05\u3000", "-0", "+0", "-007", " 5 ", "5 ", " 5", "\t5", "5\n", "1_000",
    "1e3", "1E3", "5.0", "5.", ".5", "0x1F", "1 000", "1,000", "++5", "+-5", "--5", "5-",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "0000000000000000000000009223372036854775807",
    "00000000000000000000000009223372036854775808", "99999999999999999999999", "1" * 5000,
    "0" * 5000 + "1", "٣", "１２", "²", "Infinity", "NaN", "-1", "-2", "1", "2",
]  # fmt: skip
NUMBER = [
    "0", "0.00", "12.50", "-12.50", "+12.5", ".5", "-.5", "5.", "-5.", "007.10", "1.005",
    "1.004", "1.0049999", "-0.005", "-0.004", "-0.001", "-0", "-0.00", "+0", "1e3", "1E-2",
    "-1e3", "NaN", "nan", "Infinity", "inf", "-inf", "1_000.5", "1,5", "$5", "5 USD", ".", "+.",
    "1.2.3", "- 5", " 5.5 ", "\t5.5", "5.5\n", "9999999999999999.99", "9999999999999999.994",
    "9999999999999999.995", "-9999999999999999.995", "10000000000000000", "0" * 200 + "1.5",
    "1." + "9" * 5000, "0." + "0" * 5000 + "1", "-0." + "0" * 5000 + "1", "١.٥", "1.5٣",
    "0.99", "0.994", "0.995", "1.00", "-1", "-0.01",
]  # fmt: skip
DATE = [
    "2026-11-01", "2024-02-29", "2023-02-29", "1900-02-29", "2000-02-29", "2026-02-30",
    "2026-04-31", "2026-13-01", "2026-00-10", "2026-11-00", "2026-11-32", "0000-01-01",
    "0001-01-01", "9999-12-31", "2026-1-1", "20261101", "2026/11/01", " 2026-11-01 ",
    "2026-11-01\n", "2026-11-01T00:00:00Z", "2026-11-01 10:00:00", "epoch", "today",
    "infinity", "-infinity", "２０２６-11-01", "2026-11-01 BC", "+2026-11-01", "12026-11-01",
    "Nov 1 2026", "01/11/2026",
]  # fmt: skip
TIMESTAMP = [
    "2026-11-01T10:00:00Z", "2026-11-01T10:00:00.123456Z", "2026-11-01T10:00:00.1Z",
    "2026-11-01T10:00:00.123456789Z", "2026-11-01T10:00:00.1234567890Z",
    "2026-11-01T10:00:00.Z", "2026-11-01 10:00:00", "2026-11-01T10:00:00", "2026-11-01T10:00",
    "2026-11-01T10:00Z", "2026-11-01T10Z", "2026-11-01", "2026-11-01T10:00:00+01:00",
    "2026-11-01T10:00:00+0100", "2026-11-01T10:00:00+01", "2026-11-01T10:00:00-05:30",
    "2026-11-01T10:00:00+15:59", "2026-11-01T10:00:00+16:00", "2026-11-01T10:00:00+01:60",
    "2026-11-01T10:00:00 +01:00", "2026-11-01T10:00:00 UTC", "2026-11-01T10:00:00 Z",
    "2026-11-01T10:00:00z", "2026-11-01t10:00:00Z", "2026-11-01 10:00:00+00",
    "2026-11-01T10:00:00Europe/Berlin", "2026-02-30T10:00:00Z", "2024-02-29T23:59:59Z",
    "2023-02-29T00:00:00Z", "2026-11-01T24:00:00Z", "2026-11-01T23:59:60Z",
    "2026-11-01T25:00:00Z", "2026-11-01T10:60:00Z", "2026-11-01T1:00:00Z", "2026-11-1T10:00Z",
    "2026-13-01T10:00:00Z", "2026-11-45T10:00:00Z", "01/11/2026 10:00", "1700000000000",
    "1700000000", "yesterday", "now", "epoch", "infinity", "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+15:59", "9999-12-31T23:59:59.999999999-15:59",
    " 2026-11-01T10:00:00Z ", "\t2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z\n",
    "2026-11-01T10:00:00Z ", "2026-11-01T10:00:00ZZ", "2026-11-01T10:00:00+01:00:00",
    "２０２６-11-01T10:00:00Z", "2026-11-01T10:00:00.١Z",
]  # fmt: skip
BOOLEAN = [
    "true", "false", "TRUE", "False", "tRuE", "t", "f", "T", "F", "1", "0", "yes", "no",
    "YES", "No", "y", "n", "Y", "N", "on", "off", "tr", "fa", "fal", "ye", "2", "-1", "01",
    " true", "true ", "\ttrue", "true\n", "ｔｒｕｅ", "truе", "ja", "nein",
]  # fmt: skip
TYPE_VALUES = {
    "string": [],
    "integer": INTEGER,
    "number": NUMBER,
    "date": DATE,
    "timestamp": TIMESTAMP,
    "boolean": BOOLEAN,
}
PATTERN_VALUES = [
    "a@b.co", "first.last+tag@sub.example.com", "A@B.COM", "a%b_c-d@x-y.org", "a@b.c0m",
    "a@b", "a@b.c", "a@", "@b.co", "a(at)b.co", "a@@b.co", "a @ b.co", " a@b.co", "a@b.co ",
    "a@b.co\n", "\na@b.co", "a@b..co", "é@b.co", "a@ｂ.co", "a@b.cö", ".*@.*", "a*@b.co",
    "a@b.co|x", "(a)@b.co", "a\\@b.co", "a@[b].co", "a" * 10_000 + "@b.co",
    "US", "us", "Us", "USA", "U", "U1", " US", "US ", "US\n", "ÜS", "ＵＳ", "\u0130S",
    "USD", "usd", "EUR", "EURO", "€", "US$", "U.S", "[A]", "A{2}",
]  # fmt: skip


def _around(values: tuple[str, ...]) -> list[str]:
    """Each valid value, its case and whitespace variants, and lookalikes."""
    out: list[str] = []
    for v in values:
        out += [v, v.upper(), v.capitalize(), f" {v}", f"{v} ", f"{v}\n", f"\t{v}", v + v]
        out += [v.replace("a", "а"), v[:-1], v + "%", "%" + v]  # Cyrillic а
    return [*out, "teleported", "unknown", "*", "'; drop table t; --", "all", "ALL"]


def edge_values(rule: Rule, field: Field) -> list[str | None]:
    values: list[str | None] = list(COMMON) + TYPE_VALUES[field.logical_type]
    if rule.kind == "pattern":
        values += PATTERN_VALUES
    elif rule.kind == "validValues":
        values += _around(rule.valid_values)
    elif rule.kind == "minimum":
        assert rule.minimum is not None
        m = Decimal(repr(rule.minimum))
        for delta in ("0", "1", "-1", "0.01", "-0.01", "0.004", "-0.004", "0.005", "-0.005"):
            v = m + Decimal(delta)
            values += [str(v), format(v.normalize(), "f"), str(v) + "000"]
    return list(dict.fromkeys(values))  # dedupe, keep order


# --- rows -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, dict[str, list[Row]]]:
    """Per contract: the planted defect rows (with their planted rule) and a clean sample."""
    return generated_rows(tmp_path_factory.mktemp("conformance"))


def generated_rows(root: Path) -> dict[str, dict[str, list[Row]]]:
    """Per contract: the planted defect rows (with their planted rule) and a clean sample, from
    a generation in `root`."""
    generate(CUSTOMERS, 11, AS_OF, root / "landing", root / "truth", progress=None)
    with (root / "truth" / "defects.csv").open() as fh:
        planted: dict[str, dict[str, str]] = defaultdict(dict)
        for d in csv.DictReader(fh):
            if d["kind"] == "quarantine":
                planted[d["source"] + "__" + d["entity"]][d["record_id"]] = d["rule_id"]
    out: dict[str, dict[str, list[Row]]] = {}
    con = duckdb.connect()
    for c in all_source_contracts():
        text_cols = ", ".join(f"{quote_ident(n)} varchar" for n in c.column_names)
        con.execute(
            f"create table {c.id} ({text_cols}, _source_file varchar, _source_row bigint, "
            "_read_error varchar)"
        )
        read_into(con, c.id, discover(root / "landing", c, AS_OF), c)
        cols = ", ".join(quote_ident(n) for n in c.column_names)
        cur = con.execute(f"select {cols} from {c.id} order by _source_file, _source_row")
        rows = [dict(zip(c.column_names, r, strict=True)) for r in cur.fetchall()]
        pk = c.primary_key[0]
        bad = [dict(r, _planted=planted[c.id][r[pk]]) for r in rows if r[pk] in planted[c.id]]
        assert len(bad) == len(planted[c.id]), c.id
        clean = [r for r in rows if r[pk] not in planted[c.id]][:CLEAN_SAMPLE]
        out[c.id] = {"planted": bad, "clean": clean}
    con.close()
    return out


def _cases(contract: Contract, gen: dict[str, list[Row]]) -> list[tuple[str, Row]]:
    """(label, row): planted defects, clean rows, and every edge value of every rule."""
    cases: list[tuple[str, Row]] = []
    for r in gen["planted"]:
        row = {k: v for k, v in r.items() if k != "_planted"}
        cases.append((f"planted {r['_planted']}", row))
    cases += [(f"clean #{i}", r) for i, r in enumerate(gen["clean"])]
    base = gen["clean"][0]
    for rule in contract.rules:
        for v in edge_values(rule, contract.field(rule.column)):
            shown = v if v is None or len(v) < 40 else f"{v[:20]}...({len(v)} chars)"
            cases.append((f"{rule.rule_id} <- {shown!r}", {**base, rule.column: v}))
    return cases


# --- the three evaluators ---------------------------------------------------------------------

Verdict = tuple[list[str], list[str]]


def _arrow(contract: Contract, rows: list[Row]) -> pa.Table:
    data: dict[str, list] = {"_n": list(range(len(rows)))}
    for name in contract.column_names:
        data[name] = [r.get(name) for r in rows]
    return pa.table(
        data,
        schema=pa.schema([("_n", pa.int64()), *[(n, pa.string()) for n in contract.column_names]]),
    )


def duckdb_verdicts(contract: Contract, rows: list[Row]) -> list[Verdict]:
    con = duckdb.connect()
    try:
        con.register("batch", _arrow(contract, rows))
        # As the warehouse's verdicts pass: the rules read each value trimmed once, in a subquery.
        got = con.execute(
            f"select {failed_rules_sql(contract, 'error')}, "
            f"{failed_rules_sql(contract, 'warning')} "
            f"from (select *, {trimmed_columns_sql(contract)} from batch) order by _n"
        ).fetchall()
    finally:
        con.close()
    return [(list(e), list(w)) for e, w in got]


def _pg_load(db: PgDatabase, contract: Contract, rows: list[Row]) -> str:
    table = f"batch__{contract.id}"
    cols = ", ".join(f"{quote_ident(n)} text" for n in contract.column_names)
    with db.cursor() as cur:
        cur.execute(f"drop table if exists {table}; create table {table} (_n int, {cols})")
        execute_values(
            cur,
            f"insert into {table} values %s",
            [(i, *(r.get(n) for n in contract.column_names)) for i, r in enumerate(rows)],
            page_size=500,
        )
    return table


def postgres_verdicts(db: PgDatabase, contract: Contract, table: str) -> list[Verdict]:
    with db.cursor() as cur:
        cur.execute(
            f"select {failed_rules_sql(contract, 'error', dialect='postgres')}, "
            f"{failed_rules_sql(contract, 'warning', dialect='postgres')} from (select *, "
            f"{trimmed_columns_sql(contract, 'postgres')} from {table}) t order by _n"
        )
        return [(list(e), list(w)) for e, w in cur.fetchall()]


def python_verdicts(contract: Contract, rows: list[Row]) -> list[Verdict]:
    return [
        (failed_rules(contract, r, "error"), failed_rules(contract, r, "warning")) for r in rows
    ]


# --- tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules_db(pg_server: PostgresServer) -> PgDatabase:
    return pg_server.create_database("rule_conformance")


@pytest.mark.parametrize("contract", all_source_contracts(), ids=lambda c: c.id)
def test_duckdb_postgres_and_python_give_the_same_verdicts(contract, generated, rules_db):
    cases = _cases(contract, generated[contract.id])
    rows = [r for _, r in cases]
    py = python_verdicts(contract, rows)
    duck = duckdb_verdicts(contract, rows)
    table = _pg_load(rules_db, contract, rows)
    pg = postgres_verdicts(rules_db, contract, table)
    assert len(py) == len(duck) == len(pg) == len(rows)
    differ = [
        f"{label}: duckdb={d} postgres={p} python={y}"
        for (label, _), d, p, y in zip(cases, duck, pg, py, strict=True)
        if not d == p == y
    ]
    assert not differ, f"{len(differ)} of {len(rows)} rows differ:\n" + "\n".join(differ[:40])

    # The planted defects break exactly their planted rule; the clean sample breaks none.
    for (label, _), (errors, _w) in zip(cases, py, strict=True):
        if label.startswith("planted "):
            assert errors == [label.removeprefix("planted ")], (label, errors)
        if label.startswith("clean "):
            assert errors == [], (label, errors)
    # Every rule is exercised both ways: some row breaks it, some row meets it.
    for rule in contract.rules:
        hit = [rule.rule_id in (e if rule.severity == "error" else w) for e, w in py]
        assert any(hit) and not all(hit), rule.rule_id

    # Rows whose values pass every type rule load into the typed raw layer on both warehouses.
    loadable = [i for i, (e, _) in enumerate(py) if not any(r.endswith(".type") for r in e)]
    ids = ", ".join(str(i) for i in loadable)
    con = duckdb.connect()
    try:
        con.register("batch", _arrow(contract, rows))
        typed = con.execute(
            f"select _n, {typed_select_sql(contract)} from batch where _n in ({ids}) order by _n"
        ).fetchall()
    finally:
        con.close()
    assert len(typed) == len(loadable)
    with rules_db.cursor() as cur:
        cur.execute(f"select count(*) from (select {typed_select_sql(contract, 'postgres')} from {table} "
                    f"where _n in ({ids})) t")  # fmt: skip
        assert cur.fetchone()[0] == len(loadable)
    # ... and the number DuckDB stores is the value the minimum rule compared.
    names = ["_n", *contract.column_names]
    for values in typed:
        stored = dict(zip(names, values, strict=True))
        source = rows[stored["_n"]]
        for f in contract.fields:
            raw = source.get(f.name)
            if f.logical_type == "number" and raw is not None and trim(raw):
                assert stored[f.name] == number_value(trim(raw)), (f.name, raw)


def test_every_contract_pattern_and_type_format_is_in_the_shared_regex_subset():
    patterns = {r.rule_id: r.pattern for c in all_source_contracts() for r in c.rules if r.pattern}
    assert patterns, "the contracts declare patterns"
    bad = {rid: shared_regex_problems(p) for rid, p in patterns.items()}
    assert not {k: v for k, v in bad.items() if v}
    for logical_type, guard in TYPE_FORMATS.items():
        assert shared_regex_problems(guard) == [], logical_type


OUTSIDE_SUBSET = [
    r"^\d+$", r"^\w+$", r"^\s*$", r"^a\b", r"^(a)\1$", r"^(?=a)a$", r"^(?!a)b$",
    r"^(?<=a)b$", r"^(?<!a)b$", r"^(?i)abc$", r"^(?P<x>a)$", r"^a*?$", r"^a+?$", r"^a*+$",
    r"^a{2}?$", r"^a{,3}$", r"^a{300}$", r"^a{3,2}$", r"^[[:alpha:]]+$", r"^[\d]$",
    r"^[a-z&&[^b]]$", r"^[a--b]$", r"^a.b$", r"^a$|^b$", r"a^b", r"^é$", "^a\tb$", r"^a{$",
    r"^a}$", r"^a]$", r"^[]$", r"^[z-a]$", r"^[a-Z]$", r"^[!-~]$", r"^()$", r"^(a|)$",
    r"^|a$", r"^**$", r"^(a$", r"^a)$", r"^[a-c-e]$", "",
]  # fmt: skip
INSIDE_SUBSET = [
    r"^[A-Z]{2}$", r"^(ab|c)+[^x-z]?$", r"^a\.b\*$", r"^[-a]{2,3}$", r"^(?:x|yz){1,255}$",
    r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+[.][A-Za-z]{2,}$", r"abc", r"^[^0-9]*$",
]  # fmt: skip


@pytest.mark.parametrize("pattern", OUTSIDE_SUBSET)
def test_patterns_outside_the_shared_subset_are_refused(pattern):
    assert shared_regex_problems(pattern), pattern


def test_the_shared_subset_matches_the_same_values_on_all_three_engines(rules_db):
    """The subset's building blocks, on values that probe newlines, case and unicode."""
    patterns = INSIDE_SUBSET + list(TYPE_FORMATS.values())
    for p in patterns:
        assert shared_regex_problems(p) == [], p
    values = [
        "", "a", "ab", "abc", "abab", "abcab", "ababq", "ababx", "a.b*", "a.bx", "-a", "-a-",
        "--", "x", "yz", "xyzx", "US", "us", "U\nS", "US\n", "\nUS", "ÜS", "a@b.co", "a\n@b.co",
        "123", "12\n3", "١٢", "\u0000x"[1:], "A" * 300, "x" * 255, "x" * 256,
    ]  # fmt: skip
    con = duckdb.connect()
    with rules_db.cursor() as cur:
        for p in patterns:
            for v in values:
                duck = con.execute("select regexp_full_match(?, ?)", [v, p]).fetchone()[0]
                cur.execute("select %s ~ %s", [v, "^(?:" + p + ")$"])
                pg = cur.fetchone()[0]
                py = re.fullmatch(p, v) is not None
                assert duck == pg == py, (p, v, duck, pg, py)
    con.close()


def test_sql_literals_in_rules_are_quoted():
    """A rule value with a quote stays a literal in both dialects."""
    assert quote_literal("o'brien") == "'o''brien'"
    for c in all_source_contracts():
        for d in ("duckdb", "postgres"):
            assert failed_rules_sql(c, "error", dialect=d).count("case when") >= len(
                [r for r in c.rules if r.severity == "error"]
            )
