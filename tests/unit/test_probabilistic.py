"""Probabilistic matching on planted records (the fixed Splink model, an in-memory warehouse):
typo pairs link with their probability, namesakes and pairs sharing a value do not, junk values
are no evidence, the switch empties the table; config errors name the field."""

import datetime as dt
import hashlib

import duckdb
import pytest

from orchestration.identity import config as identity_config
from orchestration.identity import probabilistic
from tests.identity_inputs import create_matching_inputs

AS_OF = "2026-11-21"
THRESHOLD = 0.9995
FIRST = ["olivia", "liam", "emma", "noah", "ava", "mateo", "sofia", "lucas", "mia", "elias"]
LAST = [
    "garcia",
    "muller",
    "dubois",
    "jansen",
    "rossi",
    "novak",
    "silva",
    "berg",
    "kowalski",
    "ito",
]


def _record(key, source, first, last, email=None, phone=None, dob=None, postal=None, street=None):
    return (key, source, first, last, email, phone, dob, postal, street)


@pytest.fixture
def warehouse():
    con = duckdb.connect()
    create_matching_inputs(con)
    rows = []
    # background: 100 different people, one CRM contact each
    for i in range(100):
        first, last = FIRST[i % 10], LAST[i // 10]
        rows.append(
            _record(
                f"r|crm:contacts:B{i:03d}", "crm", first.title(), last.title(),
                f"{first}.{last}{i}@mail.example.org", f"+1415555{i:04d}",
                dt.date(1960, 1, 1) + dt.timedelta(days=97 * i), f"9{i:04d}", f"{i} main st",
            )
        )  # fmt: skip
    yield con, rows
    con.close()


def _load(con, rows, dropped=()):
    con.executemany("insert into intermediate.int_identity__records values (?, ?, ?, ?, ?, ?, ?, ?, ?, null)", rows)  # fmt: skip
    if dropped:
        con.executemany("insert into intermediate.int_identity__dropped_links values (?, ?, ?)", dropped)  # fmt: skip


TYPO_PAIRS = [
    # same person: one character off in the email's local part, no other key in common
    (
        _record("r|crm:contacts:T1", "crm", "Harriet", "Quill", "harriet.quill81@post.example.net",
                "+14155550901", dt.date(1981, 3, 4), "94110", "12 valencia st"),
        _record("r|shop:customers:T1", "shop", "Harriet", "Quill", "hxrriet.quill81@post.example.net"),
    ),
    (
        _record("r|loyalty:members:T2", "loyalty", "Bastian", "Vogt", "bastian.vogt7@mx.example.com",
                None, dt.date(1990, 7, 1)),
        _record("r|shop:customers:T2", "shop", "Bastian", "Vogt", "bqstian.vogt7@mx.example.com",
                "+4915112345678"),
    ),
    # one digit off in the phone, no email on one side
    (
        _record("r|crm:contacts:T3", "crm", "Ingrid", "Lund", None, "+31612345678",
                dt.date(1975, 5, 5), "1011AB", "5 dam"),
        _record("r|shop:customers:T3", "shop", "Ingrid", "Lund", None, "+31612345671"),
    ),
]  # fmt: skip

NAMESAKES = [
    # different people with the same first and last name: nothing else agrees
    (
        _record("r|crm:contacts:N1", "crm", "Maria", "Fernandez", "mfernandez123@mail.example.org",
                "+14155550111", dt.date(1970, 1, 2), "10001", "1 broadway"),
        _record("r|loyalty:members:N1", "loyalty", "Maria", "Fernandez", "maria.f88@inbox.example.com",
                "+12125550199", dt.date(1985, 9, 9)),
    ),
    (
        _record("r|crm:contacts:N2", "crm", "John", "Smith", "john.smith4411@mail.example.org",
                "+14155550222", dt.date(1966, 6, 6), "60601", "9 state st"),
        _record("r|shop:customers:N2", "shop", "John", "Smith", "jsmith99@work.example.com",
                "+13125550123"),
    ),
]  # fmt: skip


def test_typo_pairs_link_with_their_probability_and_namesakes_do_not(warehouse):
    con, rows = warehouse
    _load(con, rows + [r for pair in TYPO_PAIRS + NAMESAKES for r in pair])
    counts = probabilistic.refresh(con, AS_OF, enabled=True, threshold=THRESHOLD)
    links = {
        (a, b): (t, v, rule, p, as_of)
        for a, b, t, v, rule, p, as_of in con.execute(
            "select record_key, node_key, identifier_type, identifier_value, rule, match_probability, "
            "as_of from identity.probabilistic_links"
        ).fetchall()
    }
    for left, right in TYPO_PAIRS:
        key = tuple(sorted((left[0], right[0])))
        assert key in links, f"typo pair {key} not linked"
        kind, value, rule, p, as_of = links[key]
        assert (kind, rule, as_of) == ("probabilistic", "probabilistic", dt.date(2026, 11, 21))
        assert p >= THRESHOLD and value == f"p={p:.6f}"
    for left, right in NAMESAKES:
        assert tuple(sorted((left[0], right[0]))) not in links, "namesakes must not link"
    assert counts.links == len(links) == len(TYPO_PAIRS), links  # the background stays apart
    assert counts.records == len(rows) + 2 * (len(TYPO_PAIRS) + len(NAMESAKES))


def test_pairs_sharing_a_value_and_junk_values_are_not_probabilistic_evidence(warehouse):
    con, rows = warehouse
    same_email = [
        _record("r|crm:contacts:S1", "crm", "Ola", "Nordmann", "ola.nordmann5@mail.example.org"),
        _record("r|shop:customers:S1", "shop", "Ola", "Nordmann", "ola.nordmann5@mail.example.org"),
    ]
    # a shop's junk address typed by two strangers of the same name, one character apart
    junk = [
        _record("r|crm:contacts:J1", "crm", "Kim", "Lee", "kim.lee@shop.example.com"),
        _record("r|shop:customers:J1", "shop", "Kim", "Lee", "kxm.lee@shop.example.com"),
    ]
    dropped = [
        ("r|crm:contacts:J1", "v|email:kim.lee@shop.example.com", "blocklist_exact"),
        ("r|shop:customers:J1", "v|email:kxm.lee@shop.example.com", "too_many_records_per_value"),
    ]
    _load(con, rows + same_email + junk, dropped)
    probabilistic.refresh(con, AS_OF, enabled=True, threshold=THRESHOLD)
    pairs = con.execute("select record_key, node_key from identity.probabilistic_links").fetchall()
    assert pairs == [], "a shared value is the deterministic rules' call; junk is no evidence"


def test_name_and_address_pairs_link_unless_they_share_the_deterministic_key(warehouse):
    """A loyalty card without email or phone, at its owner's address with a typo in a short first
    name (no deterministic key), links to the CRM contact; a pair sharing the name_address key is
    the deterministic rules' call (linked, or refused by the birth-date guard), never a
    probability."""
    con, rows = warehouse
    typo = [
        _record("r|crm:contacts:A1", "crm", "Eva", "Quintero", "eva.quintero4@mail.example.org",
                "+14155550333", dt.date(1979, 2, 3), "94601", "77juniperct"),
        _record("r|loyalty:members:A1", "loyalty", "Exa", "Quintero", None, None, None, "94601",
                "77juniperct"),
    ]  # fmt: skip
    shared = [
        _record("r|crm:contacts:A2", "crm", "Ash", "Yarrowby", "ash.y55@mail.example.org",
                None, dt.date(1955, 1, 1), "94602", "5elmrow"),
        _record("r|loyalty:members:A2", "loyalty", "Ash", "Yarrowby", "ash.y90@inbox.example.com",
                None, dt.date(1955, 1, 1), "94602", "5elmrow"),
    ]  # fmt: skip
    _load(con, rows + typo + shared)
    key = "v|name_address:ash|yarrowby|5elmrow|94602"
    con.executemany(
        "insert into intermediate.int_identity__candidate_links values (?, ?, 'name_address', ?, "
        "'shared_name_address')",
        [(r[0], key, key[len("v|name_address:") :]) for r in shared],
    )
    probabilistic.refresh(con, AS_OF, enabled=True, threshold=THRESHOLD)
    pairs = {
        tuple(r)
        for r in con.execute(
            "select record_key, node_key from identity.probabilistic_links"
        ).fetchall()
    }
    assert ("r|crm:contacts:A1", "r|loyalty:members:A1") in pairs
    assert ("r|crm:contacts:A2", "r|loyalty:members:A2") not in pairs
    # without the shared key (another spelling of the street) the same pair scores high
    con.execute("delete from intermediate.int_identity__candidate_links")
    probabilistic.refresh(con, AS_OF, enabled=True, threshold=THRESHOLD)
    pairs = set(
        con.execute("select record_key, node_key from identity.probabilistic_links").fetchall()
    )
    assert ("r|crm:contacts:A2", "r|loyalty:members:A2") in pairs


def test_disabled_empties_the_table(warehouse):
    con, rows = warehouse
    _load(con, rows + [r for pair in TYPO_PAIRS for r in pair])
    probabilistic.refresh(con, AS_OF, enabled=True, threshold=THRESHOLD)
    assert con.execute("select count(*) from identity.probabilistic_links").fetchone()[0] > 0
    counts = probabilistic.refresh(con, AS_OF, enabled=False, threshold=THRESHOLD)
    assert counts.links == 0
    assert con.execute("select count(*) from identity.probabilistic_links").fetchone()[0] == 0


def test_the_model_is_fixed_and_predictions_are_deterministic(warehouse):
    con, rows = warehouse
    _load(con, rows + [r for pair in TYPO_PAIRS + NAMESAKES for r in pair])
    records = probabilistic.candidates(con)
    first = probabilistic.predict(records, THRESHOLD)
    second = probabilistic.predict(records.take(list(reversed(range(records.num_rows)))), THRESHOLD)
    assert first.equals(second)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"enabled": "yes"}, "probabilistic.enabled: true or false"),
        ({"enabled": True, "threshold": 1}, "probabilistic.threshold: auto or a match probability"),
        ({"enabled": True, "threshold": 0}, "probabilistic.threshold: auto or a match probability"),
        ({"enabled": True, "threshold": "high"}, "probabilistic.threshold: auto or a match"),
        ({"enabled": True, "cutoff": 0.9}, "probabilistic.cutoff: unknown setting"),
        ("on", "probabilistic: must be a mapping"),
    ],
)
def test_config_errors_name_the_field(block, message):
    with pytest.raises(identity_config.IdentityConfigError, match=message):
        identity_config.parse({"probabilistic": block})


def test_project_config_enables_it_with_the_threshold_from_the_model():
    settings = identity_config.load().probabilistic
    assert settings.enabled and settings.threshold is None  # auto: chosen from the fitted model
    assert identity_config.parse({}).probabilistic.enabled is False
    assert (
        identity_config.parse({"probabilistic": {"threshold": 0.99}}).probabilistic.threshold
        == 0.99
    )


def _links(con):
    return con.execute(
        "select * exclude (as_of) from identity.probabilistic_links order by all"
    ).fetchall()


def test_a_night_with_the_same_inputs_reuses_the_pairs_and_any_change_scores_again(warehouse):
    """Scoring is skipped only when the records, threshold and links table are as last scored."""
    con, rows = warehouse
    _load(con, rows + [r for pair in TYPO_PAIRS + NAMESAKES for r in pair])
    first = probabilistic.refresh(con, AS_OF, enabled=True, threshold=THRESHOLD)
    scored = _links(con)
    assert not first.reused and first.links == len(scored) > 0

    again = probabilistic.refresh(con, "2026-11-22", enabled=True, threshold=THRESHOLD)
    assert again.reused
    assert (again.links, again.records) == (first.links, first.records)
    assert _links(con) == scored
    assert con.execute("select distinct as_of from identity.probabilistic_links").fetchall() == [
        (dt.date(2026, 11, 22),)
    ]

    # a changed record: the typo pair's shop side now carries a different surname
    con.execute(
        "update intermediate.int_identity__records set last_name = 'Quell' "
        "where record_key = 'r|shop:customers:T1'"
    )
    changed = probabilistic.refresh(con, "2026-11-23", enabled=True, threshold=THRESHOLD)
    assert not changed.reused
    assert not probabilistic.refresh(con, "2026-11-23", enabled=True, threshold=0.5).reused
    assert probabilistic.refresh(con, "2026-11-23", enabled=True, threshold=0.5).reused

    # the table changed behind the step's back (a restore, a hand edit): scored again
    con.execute("delete from identity.probabilistic_links")
    restored = probabilistic.refresh(con, "2026-11-23", enabled=True, threshold=0.5)
    assert not restored.reused and restored.links > 0


def test_unchanged_candidate_columns_reuse_the_pairs_without_computing_the_candidates(
    warehouse, monkeypatch
):
    """The cheap check: the columns the candidates are computed from, digested, match the last
    scoring's, so the candidates (every name and address folded) are not computed at all; a
    change in one of those columns computes them again."""
    con, rows = warehouse
    _load(con, rows + [r for pair in TYPO_PAIRS for r in pair])
    first = probabilistic.refresh(con, AS_OF, enabled=True, threshold=THRESHOLD)
    scored = _links(con)
    assert not first.reused and first.links > 0

    def computed(_con):
        raise AssertionError("the candidates were computed")

    monkeypatch.setattr(probabilistic, "candidates", computed)
    # a web record (never a candidate) and a dropped first-name conflict (never read) arrive
    con.execute(
        "insert into intermediate.int_identity__records values "
        "('r|web:anonymous_ids:A1', 'web', 'Harriet', 'Quill', null, null, null, null, null, null)"
    )
    con.execute(
        "insert into intermediate.int_identity__dropped_links values "
        "('r|crm:contacts:T1', 'v|email:x@example.org', 'first_name_conflict')"
    )
    again = probabilistic.refresh(con, "2026-11-22", enabled=True, threshold=THRESHOLD)
    assert again.reused and (again.links, again.records) == (first.links, first.records)
    assert _links(con) == scored

    con.execute(
        "update intermediate.int_identity__records set city = 'elsewhere' "
        "where record_key = 'r|crm:contacts:T1'"
    )
    with pytest.raises(AssertionError, match="candidates were computed"):
        probabilistic.refresh(con, "2026-11-23", enabled=True, threshold=THRESHOLD)


def test_the_sources_are_every_row_and_column_the_candidates_read(warehouse):
    """probabilistic_inputs.SOURCES lists what CANDIDATES_SQL reads: the SQL runs on tables
    holding only those columns (and the columns of their filters), and the rows the filters
    leave out, or another value of a filter column that passes it, change no candidate."""
    from orchestration.identity.probabilistic_inputs import SOURCES

    con, rows = warehouse
    pairs = [r for pair in TYPO_PAIRS + NAMESAKES for r in pair]
    _load(
        con,
        rows + pairs,
        dropped=[
            ("r|crm:contacts:T1", "v|email:harriet.quill81@post.example.net", "blocklist_exact"),
            ("r|crm:contacts:T3", "v|phone:+31612345678", "first_name_conflict"),
        ],
    )
    con.execute(
        "insert into intermediate.int_identity__records values "
        "('r|web:anonymous_ids:A1', 'web', 'Harriet', 'Quill', null, null, null, null, null, null)"
    )
    con.execute(
        "insert into intermediate.int_identity__candidate_links values "
        "('r|crm:contacts:T1', 'v|name_address:k1', 'name_address', 'k1', 'shared_name_address'), "
        "('r|crm:contacts:T1', 'v|email:harriet.quill81@post.example.net', 'email', "
        "'harriet.quill81@post.example.net', 'shared_email')"
    )
    expected = con.execute(probabilistic.CANDIDATES_SQL).fetchall()
    filters = {
        "intermediate.int_identity__records": ("source",),
        "intermediate.int_identity__dropped_links": ("drop_reason",),
        "intermediate.int_identity__candidate_links": ("identifier_type",),
    }
    assert set(filters) == set(SOURCES)
    narrow = duckdb.connect()
    try:
        narrow.execute("create schema intermediate")
        for relation, (where, columns) in SOURCES.items():
            rows_read = con.sql(
                f"select {', '.join(columns + filters[relation])} from {relation} where {where}"
            ).to_arrow_table()
            narrow.register("_rows", rows_read)
            narrow.execute(f"create table {relation} as select * from _rows")
            narrow.unregister("_rows")
        assert narrow.execute(probabilistic.CANDIDATES_SQL).fetchall() == expected
        # another passing value of a filter column (a CRM record typed shop, another reason)
        narrow.execute("update intermediate.int_identity__records set source = 'shop'")
        narrow.execute("update intermediate.int_identity__dropped_links set drop_reason = 'other'")
        assert narrow.execute(probabilistic.CANDIDATES_SQL).fetchall() == expected
    finally:
        narrow.close()


def _scoring_model() -> dict:
    """The project's configured comparisons and blocking rules with fixed m and u per level
    (stronger levels likelier among matches): every level kind the project configures,
    neutral (null) levels between others included, without a training run."""
    settings = probabilistic._model_dict(
        probabilistic.configured_settings(identity_config.load().probabilistic)
    )
    settings["probability_two_random_records_match"] = 0.1
    for comparison in settings["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        for i, level in enumerate(levels):
            strength = (len(levels) - i) / len(levels)
            level["m_probability"] = 0.05 + 0.9 * strength / len(levels)
            level["u_probability"] = 0.05 + 0.9 * (1 - strength) / len(levels)
    return settings


SWAPPED = [
    # given and family name swapped, one of them mistyped, the same birth date, the postcode's
    # digits transposed (a shared name-and-address key would make it the deterministic rules')
    (
        _record("r|crm:contacts:W1", "crm", "Ottilie", "Brandt", None, None, dt.date(1959, 2, 3),
                "80331", "4 marienplatz"),
        _record("r|loyalty:members:W1", "loyalty", "Brandt", "Otilie", None, None,
                dt.date(1959, 2, 3), "80313", "4 marienplatz"),
    ),
    # a birth date with day and month swapped, the street written with one letter off
    (
        _record("r|crm:contacts:W2", "crm", "Kasimir", "Wojcik", None, None, dt.date(1988, 4, 9),
                "00-950", "17 nowy swiat"),
        _record("r|shop:customers:W2", "shop", "Kasimir", "Wojcik", None, None,
                dt.date(1988, 9, 4), "00-950", "17 nowy swiet"),
    ),
]  # fmt: skip


def test_each_links_levels_are_the_levels_splink_scored(warehouse):
    """predict() takes each link's comparison levels from the model's conditions instead of
    Splink's output (which then copies no record values): they must be the levels Splink's own
    comparison vectors give the same pair, for every comparison."""
    import json

    con, rows = warehouse
    _load(con, rows + [r for pair in TYPO_PAIRS + NAMESAKES + SWAPPED for r in pair])
    records = probabilistic.candidates(con)
    model = _scoring_model()
    links = probabilistic.predict(records, 0.5, model)
    assert links.num_rows >= len(TYPO_PAIRS + SWAPPED), links.to_pylist()

    settings = probabilistic._model_dict(model)
    settings["retain_matching_columns"] = True
    labels = probabilistic._gamma_labels(settings)
    linker, scratch = probabilistic._linker(records, settings)
    try:
        scored = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    finally:
        scratch.close()
    expected = {
        (row["unique_id_l"], row["unique_id_r"]): {
            c: labels[c][int(row[f"gamma_{c}"])] for c in labels if f"gamma_{c}" in row
        }
        for row in scored.to_dict("records")
    }
    seen = set()
    for key, node, levels in zip(
        links["record_key"].to_pylist(),
        links["node_key"].to_pylist(),
        links["comparison_levels"].to_pylist(),
        strict=True,
    ):
        got = {
            e["comparison"]: e["level"] for e in json.loads(levels) if e["comparison"] != "prior"
        }
        assert got == expected[(key, node)], (key, node)
        seen |= set(got.values())
    # the pairs reach past the exact levels: swapped names, a day-month swap, one-edit levels
    assert any("swapped" in level for level in seen), seen
    assert any("day and month" in level for level in seen), seen
    assert len(seen) >= 6, seen


def _as_rows(links) -> list[tuple]:
    return list(
        zip(
            links["record_key"].to_pylist(),
            links["node_key"].to_pylist(),
            links["match_probability"].to_pylist(),
            links["match_weight"].to_pylist(),
            links["comparison_levels"].to_pylist(),
            strict=True,
        )
    )


def test_the_models_term_frequencies_score_as_splinks_own_on_the_records_counted(warehouse):
    """Frequencies kept in the model (term_frequencies.py), counted on the records being scored,
    give the links Splink's own frequencies give: the night a model is trained, nothing moves."""
    from orchestration.identity import term_frequencies

    con, rows = warehouse
    _load(con, rows + [r for pair in TYPO_PAIRS + NAMESAKES + SWAPPED for r in pair])
    records = probabilistic.candidates(con)
    model = _scoring_model()
    assert term_frequencies.columns(model) == ["first_name", "last_name"]
    kept = {**model, term_frequencies.KEY: term_frequencies.of_records(records, model)}
    counts = kept[term_frequencies.KEY]["last_name"]["counts"]
    md5 = lambda v: hashlib.md5(v.encode()).hexdigest()  # noqa: E731
    assert counts[md5("quill")] == 2  # a value seen twice, by its md5: no name in the model
    assert md5("brandt") not in counts and "quill" not in str(counts)  # seen once
    own = _as_rows(probabilistic.predict(records, 0.5, model))
    assert own and _as_rows(probabilistic.predict(records, 0.5, kept)) == own


def test_a_pairs_score_does_not_move_with_records_that_arrive_later(warehouse):
    """With the model's frequencies, a pair scores the same whatever other records arrive (the
    ground for scoring only new records' pairs); with Splink's own, counted on tonight's
    records, three more Quills move the Quill pair's weight."""
    import json

    from orchestration.identity import term_frequencies

    con, rows = warehouse
    _load(con, rows + [r for pair in TYPO_PAIRS for r in pair])
    records = probabilistic.candidates(con)
    model = _scoring_model()
    kept = {**model, term_frequencies.KEY: term_frequencies.of_records(records, model)}
    pair = ("r|crm:contacts:T1", "r|shop:customers:T1")

    def scored(links) -> tuple[float, float]:
        by_pair = {(r[0], r[1]): r for r in _as_rows(links)}
        _, _, _p, weight, levels = by_pair[pair]
        tf = [e for e in json.loads(levels) if e["comparison"] == "last_name"]
        return weight, tf[0]["weight"]

    before_kept, before_own = scored(probabilistic.predict(records, 0.5, kept)), None
    before_own = scored(probabilistic.predict(records, 0.5, model))
    later = [
        _record(f"r|crm:contacts:Q{i}", "crm", f"Other{i}", "Quill", f"q{i}@mail.example.org",
                f"+1415777{i:04d}", dt.date(1950 + i, 1, 1), f"8{i:04d}", f"{i} oak st")
        for i in range(3)
    ]  # fmt: skip
    _load(con, later)
    records = probabilistic.candidates(con)
    assert scored(probabilistic.predict(records, 0.5, kept)) == before_kept
    after_own = scored(probabilistic.predict(records, 0.5, model))
    assert after_own[1] < before_own[1], "a commoner surname is weaker evidence"
    # a value the model never saw counts once: as rare as a value can be
    unseen = {**kept, term_frequencies.KEY: {
        name: {"total": f["total"], "counts": {}} for name, f in kept[term_frequencies.KEY].items()
    }}  # fmt: skip
    assert scored(probabilistic.predict(records, 0.5, unseen))[1] > before_kept[1]
