"""Unicode-aware match keys: names and addresses fold the same in SQL (macros/fold.sql, run on
DuckDB) and Python (orchestration/identity/fold.py) — accents, ligatures, full-width forms,
letters Unicode does not decompose, case — and spelling variants of one person now share a key."""

import duckdb
import jinja2
import pytest

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
]


def _macros() -> jinja2.Template:
    macros = dbt_project_dir() / "macros"
    source = (macros / "fold.sql").read_text() + (macros / "normalize.sql").read_text()
    return jinja2.Environment().from_string(source)


def _sql_fold(con, values: list[str]) -> list[str]:
    expr = _macros().module.fold_key("v")
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
    macros = _macros().module
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
