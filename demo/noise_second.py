"""A second, independent noise profile: person-only records (no email, no phone) with the noise of
typed and scanned forms — the generator profiles `person_link` and `person_dedup`.

Nothing here is shared with the default generator's noise (demo/generator.py):
its own name and address vocabularies (surnames built from syllables with a Zipf frequency, so a
few are common and most are rare; given names with nicknames; suburbs with a postcode and a
state), its own random stream and its own typo model. No identity rule or default is tuned on it;
it exists to measure them on data they were not written against (docs/identity.md, *Measured:
the second noise profile*).

Grain: one person has an original record and duplicates. A duplicate is a copy of the original
with 1-`max_edits` edits, each picked at random among:

* OCR errors (`0`↔`o`, `1`↔`l`, `5`↔`s`, `8`↔`b`, `rn`↔`m`, `cl`↔`d`, `vv`↔`w`),
* keyboard errors (a neighbouring QWERTY key, a letter inserted, dropped or doubled, two
  adjacent letters swapped),
* given and family name swapped, a nickname for the given name (William → Bill),
* a missing field (given name, surname, street number, street, suburb, postcode, date of birth),
* a birth date with one digit changed or day and month swapped,
* moved house (another street number, street, suburb, postcode and state).

Originals miss a field now and then too (`original_missing_rate` per optional field), and
`household_rate` of persons live with another (same surname and address, another given name and
birth date): strangers who agree on everything but two fields.

Profiles:

* `person_link`: every person has a CRM contact (the original); `link_share` of them also a
  loyalty member (a duplicate) — two-source linking.
* `person_dedup`: CRM contacts only; a person has 1 + k records, k drawn so that 3 of 5 records
  are duplicates — within-source duplicates (declare `sources_with_duplicates: [crm__contacts]`).

Output: landing files (`crm/contacts`, `loyalty/members`) in contract column order and
`ground_truth.csv` (source, entity, source_record_id, person_id) for `c360 identity evaluate
--truth`, and `second_noise_edits.csv` (the edits of each duplicate).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from demo.text_files import GenerateResult, write_text

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

FIELDS = ("given", "surname", "number", "street", "suburb", "postcode", "state", "dob")
# Per duplicate record: the edits it carries (`keyboard;swap_names`), for diagnosis and tests.
EDITS_FILE = "second_noise_edits.csv"
OPTIONAL = ("given", "surname", "number", "street", "suburb", "postcode", "dob")

_SYLLABLES = [
    "ab",
    "ad",
    "al",
    "an",
    "ar",
    "ash",
    "bar",
    "bel",
    "ber",
    "bo",
    "bran",
    "brook",
    "by",
    "cal",
    "car",
    "chen",
    "cor",
    "dal",
    "dan",
    "den",
    "dor",
    "ell",
    "en",
    "er",
    "fal",
    "far",
    "fer",
    "ford",
    "gar",
    "gil",
    "gor",
    "ham",
    "har",
    "hel",
    "hil",
    "holt",
    "ing",
    "is",
    "jen",
    "kar",
    "ken",
    "kin",
    "la",
    "lan",
    "ley",
    "lin",
    "lo",
    "mac",
    "mar",
    "mer",
    "mil",
    "mor",
    "nel",
    "ner",
    "nor",
    "ol",
    "or",
    "par",
    "per",
    "ra",
    "ran",
    "rey",
    "ric",
    "ro",
    "ros",
    "sa",
    "san",
    "sel",
    "son",
    "stan",
    "ter",
    "thor",
    "ton",
    "val",
    "van",
    "ver",
    "wal",
    "war",
    "well",
    "wick",
    "win",
    "wood",
    "yar",
    "zel",
]
_GIVEN = [
    "William",
    "Robert",
    "Elizabeth",
    "Katherine",
    "Margaret",
    "James",
    "Richard",
    "Thomas",
    "Charles",
    "Joseph",
    "Michael",
    "Christopher",
    "Daniel",
    "Matthew",
    "Anthony",
    "Jennifer",
    "Patricia",
    "Jessica",
    "Rebecca",
    "Alexander",
    "Benjamin",
    "Samuel",
    "Nicholas",
    "Jonathan",
    "Andrew",
    "Edward",
    "Timothy",
    "Stephen",
    "Victoria",
    "Samantha",
    "Jacqueline",
    "Deborah",
    "Susan",
    "Christine",
    "Abigail",
    "Frederick",
    "Gregory",
    "Lawrence",
    "Raymond",
    "Kenneth",
    "Dorothy",
    "Joshua",
    "Zachary",
    "Madeline",
    "Olivia",
    "Emily",
    "Chloe",
    "Jack",
    "Lachlan",
    "Mia",
    "Isla",
    "Harper",
    "Noah",
    "Oscar",
    "Leo",
    "Ruby",
    "Zoe",
    "Grace",
    "Lily",
    "Ava",
    "Ella",
    "Hannah",
    "Sophie",
    "Amelia",
    "Charlotte",
    "Hamish",
    "Angus",
    "Fiona",
    "Bronwyn",
    "Kylie",
    "Shane",
    "Brett",
    "Craig",
    "Darren",
    "Troy",
    "Kerry",
    "Tegan",
    "Jarrah",
    "Kirra",
    "Liam",
    "Ethan",
    "Lucas",
    "Mason",
    "Logan",
    "Aiden",
    "Henry",
]
NICKNAMES: dict[str, tuple[str, ...]] = {
    "William": ("Bill", "Will", "Billy"), "Robert": ("Bob", "Rob", "Bobby"),
    "Elizabeth": ("Liz", "Beth", "Eliza"), "Katherine": ("Kate", "Kathy", "Katie"),
    "Margaret": ("Maggie", "Peggy", "Meg"), "James": ("Jim", "Jimmy"),
    "Richard": ("Rick", "Dick", "Rich"), "Thomas": ("Tom", "Tommy"), "Charles": ("Charlie",),
    "Joseph": ("Joe", "Joey"), "Michael": ("Mike", "Mick"), "Christopher": ("Chris",),
    "Daniel": ("Dan", "Danny"), "Matthew": ("Matt",), "Anthony": ("Tony",),
    "Jennifer": ("Jen", "Jenny"), "Patricia": ("Pat", "Trish"), "Jessica": ("Jess",),
    "Rebecca": ("Becky", "Bec"), "Alexander": ("Alex", "Xander"), "Benjamin": ("Ben",),
    "Samuel": ("Sam",), "Nicholas": ("Nick",), "Jonathan": ("Jon",), "Andrew": ("Andy", "Drew"),
    "Edward": ("Ed", "Ted", "Eddie"), "Timothy": ("Tim",), "Stephen": ("Steve",),
    "Victoria": ("Vicky", "Tori"), "Samantha": ("Sam", "Sammy"), "Jacqueline": ("Jackie",),
    "Deborah": ("Deb", "Debbie"), "Susan": ("Sue", "Suzy"), "Christine": ("Chris", "Chrissy"),
    "Abigail": ("Abby",), "Frederick": ("Fred", "Freddie"), "Gregory": ("Greg",),
    "Lawrence": ("Larry",), "Raymond": ("Ray",), "Kenneth": ("Ken", "Kenny"),
    "Dorothy": ("Dot", "Dottie"), "Joshua": ("Josh",), "Zachary": ("Zach",),
    "Madeline": ("Maddy",),
}  # fmt: skip
_STREET_KINDS = ("street", "road", "avenue", "place", "crescent", "close", "drive", "parade")
_STATES = ("nsw", "vic", "qld", "wa", "sa", "tas", "act", "nt")
_OCR = (("0", "o"), ("1", "l"), ("5", "s"), ("8", "b"), ("rn", "m"), ("cl", "d"), ("vv", "w"),
        ("6", "g"), ("2", "z"))  # fmt: skip
_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890")


EDIT_WEIGHTS = {"ocr": 2.0, "keyboard": 4.0, "swap_names": 1.0, "nickname": 1.0, "missing": 2.0,
                "dob_edit": 1.5, "moved": 0.7}  # fmt: skip


@dataclass(frozen=True)
class SecondNoise:
    """Rates of the second noise profile (docs/generator.md, docs/identity.md)."""

    mode: str = "link"  # link: CRM + loyalty; dedup: CRM only, several records per person
    link_share: float = 0.9  # link: persons who also hold a loyalty card (the duplicate)
    duplicate_share: float = 0.6  # dedup: share of records that are duplicates
    max_duplicates: int = 5  # dedup: at most this many duplicates of one original
    max_edits: int = 4  # edits per duplicate: 1..max_edits
    original_missing_rate: float = 0.03  # per optional field of an original
    household_rate: float = 0.08  # persons living with another (same surname and address)
    surnames: int = 4000  # surname vocabulary (Zipf-weighted)
    # relative weights of the edit kinds a duplicate draws from (`_duplicate`)
    edit_weights: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: dict(EDIT_WEIGHTS)
    )

    def __post_init__(self) -> None:
        unknown = set(self.edit_weights) - set(EDIT_WEIGHTS)
        if unknown:
            raise ValueError(f"edit_weights: unknown edit kinds {sorted(unknown)}")


class _Vocab:
    def __init__(self, rng: np.random.Generator, noise: SecondNoise):
        names: set[str] = set()
        while len(names) < noise.surnames:
            k = int(rng.integers(2, 4))
            names.add("".join(rng.choice(_SYLLABLES, k)))
        self.surnames = sorted(names)
        rng.shuffle(self.surnames)
        ranks = np.arange(1, len(self.surnames) + 1)
        self.surname_p = (1 / ranks**1.05) / (1 / ranks**1.05).sum()
        self.given = list(_GIVEN)
        ranks = np.arange(1, len(self.given) + 1)
        self.given_p = (1 / ranks**0.8) / (1 / ranks**0.8).sum()
        self.streets = sorted(
            {
                "".join(rng.choice(_SYLLABLES, int(rng.integers(2, 4))))
                + " "
                + str(rng.choice(_STREET_KINDS))
                for _ in range(1500)
            }
        )
        suburbs = sorted({"".join(rng.choice(_SYLLABLES, 3)) for _ in range(600)})
        self.suburbs = [
            (s, f"{int(rng.integers(800, 7999)):04d}", str(rng.choice(_STATES))) for s in suburbs
        ]
        ranks = np.arange(1, len(self.suburbs) + 1)
        self.suburb_p = (1 / ranks**0.6) / (1 / ranks**0.6).sum()

    def address(self, rng: np.random.Generator) -> dict[str, str]:
        suburb, postcode, state = self.suburbs[int(rng.choice(len(self.suburbs), p=self.suburb_p))]
        number = int(rng.zipf(1.6)) if rng.random() < 0.7 else int(rng.integers(1, 400))
        return {
            "number": str(min(number, 999)),
            "street": str(rng.choice(self.streets)),
            "suburb": suburb,
            "postcode": postcode,
            "state": state,
        }


def _persons(rng: np.random.Generator, n: int, noise: SecondNoise, vocab: _Vocab) -> list[dict]:
    start, span = dt.date(1930, 1, 1).toordinal(), 75 * 365
    people: list[dict] = []
    for i in range(n):
        if people and rng.random() < noise.household_rate:
            mate = people[int(rng.integers(len(people)))]
            address = {k: mate[k] for k in ("number", "street", "suburb", "postcode", "state")}
            surname = mate["surname"]
        else:
            address, surname = vocab.address(rng), None
        people.append(
            {
                "pid": f"S{i:07d}",
                "given": str(rng.choice(vocab.given, p=vocab.given_p)),
                "surname": surname
                or vocab.surnames[int(rng.choice(len(vocab.surnames), p=vocab.surname_p))],
                "dob": dt.date.fromordinal(start + int(rng.integers(span))).isoformat(),
                **address,
            }
        )
    return people


def _neighbour(c: str, rng: np.random.Generator) -> str:
    for row in _KEYBOARD:
        i = row.find(c.lower())
        if i >= 0:
            options = [row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)]
            return str(rng.choice(options))
    return c


def _keyboard(text: str, rng: np.random.Generator) -> str:
    if len(text) < 2:
        return text
    i = int(rng.integers(len(text)))
    kind = int(rng.integers(5))
    if kind == 0:  # a neighbouring key
        return text[:i] + _neighbour(text[i], rng) + text[i + 1 :]
    if kind == 1:  # a letter inserted (a neighbour of the one before)
        return text[: i + 1] + _neighbour(text[i], rng) + text[i + 1 :]
    if kind == 2:  # a letter dropped
        return text[:i] + text[i + 1 :]
    if kind == 3:  # a letter doubled
        return text[: i + 1] + text[i] + text[i + 1 :]
    j = min(i, len(text) - 2)  # two adjacent letters swapped
    return text[:j] + text[j + 1] + text[j] + text[j + 2 :]


def _ocr(text: str, rng: np.random.Generator) -> str:
    options = [(a, b) for a, b in _OCR if a in text] + [(b, a) for a, b in _OCR if b in text]
    if not options:
        return _keyboard(text, rng)
    a, b = options[int(rng.integers(len(options)))]
    spots = [i for i in range(len(text)) if text.startswith(a, i)]
    i = spots[int(rng.integers(len(spots)))]
    return text[:i] + b + text[i + len(a) :]


def _dob_edit(dob: str, rng: np.random.Generator) -> str:
    day, month = dob[8:10], dob[5:7]
    if rng.random() < 0.3 and int(day) <= 12 and day != month:
        return f"{dob[:4]}-{day}-{month}"
    for _ in range(30):
        i = int(rng.choice([2, 3, 5, 6, 8, 9]))
        text = dob[:i] + str(rng.integers(10)) + dob[i + 1 :]
        try:
            if text != dob and dt.date.fromisoformat(text):
                return text
        except ValueError:
            continue
    return dob


def _duplicate(
    original: dict, rng: np.random.Generator, noise: SecondNoise, vocab: _Vocab
) -> tuple[dict, list[str]]:
    """A noisy copy of `original` and the names of the edits applied."""
    rec = dict(original)
    kinds = tuple(noise.edit_weights)
    weights = np.array([noise.edit_weights[k] for k in kinds])
    edits: list[str] = []
    edited: dict[str, int] = {}
    for _ in range(int(rng.integers(1, noise.max_edits + 1))):
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        if kind in ("ocr", "keyboard"):
            field = str(rng.choice(["given", "surname", "street", "suburb", "number", "postcode"]))
            if not rec.get(field) or edited.get(field, 0) >= 2:
                continue
            rec[field] = (_ocr if kind == "ocr" else _keyboard)(rec[field], rng)
        elif kind == "swap_names":
            rec["given"], rec["surname"] = rec["surname"], rec["given"]
        elif kind == "nickname":
            nick = NICKNAMES.get(original["given"])
            if not nick or rec["given"] != original["given"]:
                continue
            field = "given"
            rec["given"] = str(rng.choice(nick))
        elif kind == "missing":
            field = str(rng.choice(OPTIONAL))
            rec[field] = None
        elif kind == "dob_edit":
            if not rec.get("dob"):
                continue
            rec["dob"] = _dob_edit(rec["dob"], rng)
        else:  # moved house
            rec.update(vocab.address(rng))
        edits.append(kind)
        if kind in ("ocr", "keyboard"):
            edited[field] = edited.get(field, 0) + 1
    return rec, edits


def _display(rec: dict, rng: np.random.Generator) -> dict:
    """How a form writes it: capitalised names, a street line, an upper-case state."""

    def cap(text: str | None) -> str | None:
        return None if not text else text[:1].upper() + text[1:]

    line = " ".join(p for p in (rec.get("number"), rec.get("street")) if p)
    return {
        "first_name": cap(rec.get("given")),
        "last_name": cap(rec.get("surname")),
        "address_line1": line.title() or None,
        "city": (rec.get("suburb") or "").title() or None,
        "postal_code": rec.get("postcode"),
        "region": (rec.get("state") or "").upper() or None,
        "dob": rec.get("dob"),
    }


def _columns(contract_id: str) -> tuple[str, str, list[str]]:
    """(source, entity, column names in order) of a source contract, read from its YAML (the
    columns only: this profile writes no quality defects)."""
    import yaml

    from orchestration.contracts.model import contracts_dir

    doc = yaml.safe_load((contracts_dir() / "sources" / f"{contract_id}.odcs.yaml").read_text())
    source, entity = contract_id.split("__", 1)
    return source, entity, [p["name"] for p in doc["schema"][0]["properties"]]


def _write(landing: Path, as_of: dt.date, contract_id: str, rows: list[dict]) -> None:
    source, entity, names = _columns(contract_id)
    table = pa.table({n: pa.array([r.get(n) for r in rows], pa.string()) for n in names})
    folder = landing / source / entity / f"dt={as_of.isoformat()}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write_text(folder / "part-00000.csv", table, "csv")


def generate(
    noise: SecondNoise,
    customers: int,
    seed: int,
    as_of: dt.date,
    landing_dir: Path,
    truth_dir: Path,
    progress: Callable[[str], None] | None = print,
) -> GenerateResult:
    """Write the landing files and ground truth of `customers` persons with `noise`'s rates
    (the arguments after it are generator.generate's)."""
    started = time.perf_counter()
    landing_dir, truth_dir = Path(landing_dir), Path(truth_dir)
    rng = np.random.default_rng([seed, 0x5EC0])
    vocab = _Vocab(rng, noise)
    people = _persons(rng, customers, noise, vocab)
    stamp = f"{(as_of - dt.timedelta(days=1)).isoformat()}T12:00:00Z"
    crm: list[dict] = []
    loyalty: list[dict] = []
    truth: list[tuple[str, str, str, str]] = []
    edits: dict[str, int] = {}
    edited: list[tuple[str, str, str, str]] = []  # source, entity, record id, edits

    def original(person: dict) -> dict:
        rec = dict(person)
        for f in OPTIONAL:
            if rng.random() < noise.original_missing_rate:
                rec[f] = None
        return rec

    def add_crm(rec: dict, pid: str) -> None:
        shown = _display(rec, rng)
        cid = f"P{len(crm) + 1:07d}"
        crm.append(
            {"contact_id": cid, **shown, "date_of_birth": shown["dob"], "country_code": "AU",
             "created_at": stamp, "updated_at": stamp, "is_deleted": "false"}
        )  # fmt: skip
        truth.append(("crm", "contacts", cid, pid))

    def count(kinds: list[str]) -> None:
        for k in kinds:
            edits[k] = edits.get(k, 0) + 1

    if noise.mode == "link":
        for person in people:
            add_crm(original(person), person["pid"])
            if rng.random() < noise.link_share:
                rec, kinds = _duplicate(original(person), rng, noise, vocab)
                count(kinds)
                shown = _display(rec, rng)
                mid = f"M{len(loyalty) + 1:07d}"
                loyalty.append(
                    {"member_id": mid, **shown, "birthday": shown["dob"], "tier": "bronze",
                     "points_balance": "0", "joined_at": stamp, "updated_at": stamp}
                )  # fmt: skip
                truth.append(("loyalty", "members", mid, person["pid"]))
                edited.append(("loyalty", "members", mid, ";".join(kinds)))
    elif noise.mode == "dedup":
        # duplicates per original: geometric, mean duplicate_share / (1 - duplicate_share)
        mean = noise.duplicate_share / (1 - noise.duplicate_share)
        for person in people:
            base = original(person)
            add_crm(base, person["pid"])
            k = min(int(rng.geometric(1 / (1 + mean))) - 1, noise.max_duplicates)
            for _ in range(k):
                rec, kinds = _duplicate(base, rng, noise, vocab)
                count(kinds)
                add_crm(rec, person["pid"])
                edited.append(("crm", "contacts", crm[-1]["contact_id"], ";".join(kinds)))
    else:
        raise ValueError(f"unknown mode {noise.mode!r} (link | dedup)")
    # records in a random order: ids say nothing about who is whom
    order = rng.permutation(len(crm))
    crm = [crm[i] for i in order]
    _write(landing_dir, as_of, "crm__contacts", crm)
    if loyalty:
        _write(landing_dir, as_of, "loyalty__members", loyalty)
    truth_dir.mkdir(parents=True, exist_ok=True)
    with (truth_dir / "ground_truth.csv").open("w") as fh:
        fh.write("source,entity,source_record_id,person_id\n")
        fh.writelines(f"{s},{e},{r},{p}\n" for s, e, r, p in truth)
    with (truth_dir / EDITS_FILE).open("w") as fh:
        fh.write("source,entity,source_record_id,edits\n")
        fh.writelines(f"{s},{e},{r},{k}\n" for s, e, r, k in edited)
    rows = {"crm__contacts": len(crm)} | ({"loyalty__members": len(loyalty)} if loyalty else {})
    manifest: dict[str, Any] = {
        "customers": customers, "seed": seed, "as_of": as_of.isoformat(),
        "second_noise": asdict(noise), "rows": rows, "edits": dict(sorted(edits.items())),
        "ground_truth_records": len(truth),
    }  # fmt: skip
    (truth_dir / "generate_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if progress:
        progress(
            f"generate ({noise.mode}, second noise profile): {len(crm):,} CRM contacts, "
            f"{len(loyalty):,} loyalty members, {len(truth):,} ground-truth records"
        )
    return GenerateResult(landing_dir, truth_dir, rows, customers, time.perf_counter() - started)
