"""Unicode-aware match keys: names and addresses fold the same in SQL (macros/fold.sql, run on
DuckDB) and Python (orchestration/identity/fold.py) — accents, ligatures, full-width forms,
letters Unicode does not decompose, case — and spelling variants of one person now share a key."""

import duckdb
import pytest

from orchestration.dbt_macros import project_macros
from orchestration.identity.fold import DOMAIN, TABLE, ascii_spelling, fold, macro_lines
from orchestration.paths import dbt_project_dir

TRICKY = [
    ("Müller", "Muller", "MÜLLER", "Ｍüller", "Mu\u0308ller", "müller", "M ü l l e r"),
    ("Straße", "strasse", "STRASSE", "Strasse"),
    ("Œuvre", "oeuvre", "OEUVRE"),
    ("ﬁne", "fine", "FINE"),
    ("Łódź", "Lodz", "LODZ", "Ło\u0301dz\u0301"),
    ("Ørsted", "Orsted", "ØRSTED"),
    ("Søren", "Soren", "SØREN"),
    ("Ægir", "Aegir", "ÆGIR"),
    ("François", "Francois", "FRANÇOIS"),
    ("Élodie", "Elodie", "ÉLODIE", "élodie"),
    ("Muñoz", "Munoz"),
    ("Þór", "Thor"),
    ("12 OAK AVE.", "12 Oak  Ave", "１２ Ｏａｋ Ａｖｅ"),
    ("O'Brien", "O Brien\t", "OBRIEN\x7f", "o\x01brien"),  # ASCII with control characters
]


def _macros():
    return project_macros(("fold", "normalize"))


def _sql_fold(con, values: list[str]) -> list[str]:
    expr = _macros().fold_key("v")
    con.execute("create or replace temp table t (i integer, v varchar)")
    con.executemany("insert into t values (?, ?)", list(enumerate(values)))
    return [r[0] for r in con.execute(f"select {expr} from t order by i").fetchall()]


def test_every_table_character_folds_the_same_in_duckdb_and_python():
    con = duckdb.connect()
    values = [chr(cp) for cp in DOMAIN]
    # around the table too: ASCII, combining marks, Greek/Cyrillic (dropped on both sides),
    # symbols whose lower() differs between engines (Kelvin sign), and whole strings
    values += [chr(cp) for cp in range(0x20, 0x7F)] + [chr(cp) for cp in range(0x300, 0x500)]
    values += ["\u212a", "\u2160", "\u00b2", "\u00aa", "\u00b5", "\u0130"]
    values += [v for group in TRICKY for v in group]
    assert _sql_fold(con, values) == [fold(v) for v in values]
    assert len(TABLE) > 500


@pytest.mark.parametrize("group", TRICKY, ids=lambda g: g[0])
def test_spellings_of_one_name_fold_to_one_key(group):
    assert len({fold(v) for v in group}) == 1, {v: fold(v) for v in group}


def test_the_old_ascii_only_key_kept_them_apart():
    """Before: lower(regexp_replace(x, '[^A-Za-z0-9]', '')) — Müller → mller, Muller → muller."""
    con = duckdb.connect()
    old = "lower(regexp_replace(?, '[^A-Za-z0-9]', '', 'g'))"
    [(mueller, muller)] = con.execute(f"select {old}, {old}", ["Müller", "Muller"]).fetchall()
    assert (mueller, muller) == ("mller", "muller")
    assert _sql_fold(con, ["Müller", "Muller"]) == ["muller", "muller"]


def test_name_address_key_links_spelling_variants_and_refuses_empty_parts():
    con = duckdb.connect()
    macros = _macros()
    parts = ", ".join(f"{macros.fold_key(c)} as {c}" for c in ("f", "l", "a", "p"))
    key = macros.name_address_key("f", "l", "a", "p")
    rows = [
        ("Jürgen", "Müller", "Hauptstraße 12", "10115"),
        ("Jurgen", "MULLER", "Hauptstrasse 12", "10 115"),
        ("Ｊürgen", "Müller", "HAUPTSTRASSE 12", "10115"),
        ("Иван", "Müller", "Hauptstraße 12", "10115"),  # a script the fold drops: no key
    ]
    con.execute("create table r (f varchar, l varchar, a varchar, p varchar)")
    con.executemany("insert into r values (?, ?, ?, ?)", rows)
    keys = [k for (k,) in con.execute(f"select {key} from (select {parts} from r)").fetchall()]
    assert keys[0] == keys[1] == keys[2] == "jurgen|muller|hauptstrasse12|10115"
    assert keys[3] is None


def test_ascii_spelling_is_what_a_system_without_unicode_stores():
    assert ascii_spelling("Müller") == "Muller"
    assert ascii_spelling("Élodie") == "Elodie"
    assert ascii_spelling("Søren") == "Soren"
    assert ascii_spelling("Weiß") == "Weiss"
    assert ascii_spelling("de Vries") == "de Vries"


def test_macro_table_is_the_python_table():
    """dbt_project/macros/fold.sql holds what `python -m orchestration.identity.fold` prints."""
    macro = (dbt_project_dir() / "macros" / "fold.sql").read_text()
    for line in macro_lines():
        assert line in macro


def _generated_pairs(tmp_path) -> list[tuple[str, str, str, str, str, str, str, str]]:
    """Record pairs of one person (ground truth) in two systems at one address, with names
    spelled differently: (first, last, street, postal) of each side."""
    import datetime as dt

    from demo.generator import generate

    generate(3000, 11, dt.date(2026, 11, 21), tmp_path / "l", tmp_path / "t", progress=None)
    con = duckdb.connect()
    land = tmp_path / "l"
    cols = "first_name, last_name, address_line1, postal_code"
    con.execute(
        f"""
        create table records as
        select 'crm' as source, contact_id as id, {cols}
        from read_csv('{land}/crm/contacts/*/*.csv', all_varchar = true)
        union all
        select 'shop', shop_customer_id, {cols}
        from read_json('{land}/shop/customers/*/*.jsonl', format = 'newline_delimited',
                       columns = {{shop_customer_id: 'varchar', first_name: 'varchar',
                                  last_name: 'varchar', address_line1: 'varchar',
                                  postal_code: 'varchar'}})
        union all
        select 'loyalty', member_id, {cols}
        from read_csv('{land}/loyalty/members/*/*.csv', all_varchar = true)
        """
    )
    truth = f"read_csv('{tmp_path}/t/ground_truth.csv', all_varchar = true)"
    return con.execute(
        f"""
        with r as (
            select distinct r.*, t.person_id from records as r
            inner join {truth} as t on t.source = r.source and t.source_record_id = r.id
            where r.address_line1 is not null and r.postal_code is not null
        )
        select a.first_name, a.last_name, a.address_line1, a.postal_code,
               b.first_name, b.last_name, b.address_line1, b.postal_code
        from r as a inner join r as b
            on a.person_id = b.person_id and a.source < b.source
            and a.address_line1 = b.address_line1 and a.postal_code = b.postal_code
            and (a.first_name <> b.first_name or a.last_name <> b.last_name)
        """
    ).fetchall()


def test_generated_spelling_variants_of_one_person_now_share_a_key(tmp_path):
    """The generator writes native spellings (Müller), accent-stripped ones (Muller) and
    transliterations (Mueller). Measured over one person's record pairs at one address whose
    names differ: the old ASCII-only key joined none that involve a non-ASCII spelling; the
    folded key joins every accent-stripped variant. A transliteration (ü → ue) and typos stay for
    the probabilistic model."""
    con = duckdb.connect()
    old = "lower(regexp_replace(?, '[^A-Za-z0-9]', '', 'g'))"
    pairs = _generated_pairs(tmp_path)
    non_ascii = [p for p in pairs if not all(v.isascii() for v in p)]
    assert len(non_ascii) >= 20, len(non_ascii)

    def key(values, f):
        return "|".join(f(v) for v in values)

    def old_fold(v):
        return con.execute(f"select {old}", [v]).fetchone()[0]

    variants = [p for p in non_ascii if key(p[:4], fold) == key(p[4:], fold)]
    old_linked = [p for p in non_ascii if key(p[:4], old_fold) == key(p[4:], old_fold)]
    new_linked = _sql_fold(con, [v for p in variants for v in p])
    sides = [new_linked[i : i + 4] for i in range(0, len(new_linked), 4)]
    assert all(sides[i] == sides[i + 1] for i in range(0, len(sides), 2))
    share = len(variants) / len(non_ascii)
    print(
        f"non-ASCII spelling pairs {len(non_ascii)}: old key linked {len(old_linked)}, "
        f"folded key links {len(variants)} ({share:.0%}); the rest transliterations or typos"
    )
    assert old_linked == []
    assert share >= 0.6


def test_probabilistic_fold_sql_folds_like_python():
    """The probabilistic step's own SQL fold (ASCII fast path included) equals fold()."""
    from orchestration.identity.probabilistic import fold_sql

    con = duckdb.connect()
    values = [chr(cp) for cp in DOMAIN] + [chr(cp) for cp in range(0x20, 0x7F)]
    values += ["\t12 Oak", "O'Brien-Smith", "\u212a", "\u0130"]
    values += [v for group in TRICKY for v in group]
    con.execute("create temp table t (i integer, v varchar)")
    con.executemany("insert into t values (?, ?)", list(enumerate(values)))
    got = [r[0] for r in con.execute(f"select {fold_sql('v')} from t order by i").fetchall()]
    assert got == [fold(v) or None for v in values]
