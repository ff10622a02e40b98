"""What probabilistic scoring keeps between nights, so a night scores only the pairs of new and
changed records.

A pair's score is a function of its two candidate records and the scoring inputs (the model with
its term frequencies, the config, the code: `probabilistic._scoring_inputs`), and whether a
blocking rule pairs them is a function of the two records and of whether each record's block
passed the size cap. So each candidate record gets a **signature**: a hash of every column the
scoring reads (values, nickname groups) and, per capped rule, whether its block key is null. A
pair of two records whose signatures are the ones of the night that scored it is blocked and
scored again exactly as it was; only pairs with a new or changed record need Splink. A record
whose block crossed the cap changes its signature, so its pairs are scored again too.

The file (a DuckDB database of its own beside the warehouse; `path_for`) holds, from the last
night that scored:
- `meta`: one row, the key of the scoring inputs (another key: the night scores everything);
- `signatures`: one row per candidate record (unique_id, sig);
- `pairs`: one row per pair Splink scored at or above `probabilistic.CHECK_FROM` (unique_id_l <
  unique_id_r, match_probability, match_weight and each comparison's weight columns).
It holds record keys and scores, no names, e-mails or phones. It is replaced whole after every
night that scores (written beside, then renamed), and a night never trusts a pair whose records'
signatures moved, so a stale or foreign file costs a full scoring at worst, never a wrong link.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import duckdb

CHANGED = "c360_changed"
DIRTY = "c360_dirty"
SIGNATURES = "c360_signatures"
_KEY = re.compile(r"_block(_swapped)?__[a-z0-9_]+")


def inputs_key(inputs: dict[str, Any]) -> str:
    """The key of the scoring inputs (probabilistic._scoring_inputs)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def path_for(con: Any) -> Path | None:
    """The state file of the warehouse `con` holds: beside a DuckDB warehouse file, in C360_HOME
    for another engine; None for an in-memory DuckDB (nothing kept)."""
    from orchestration.engine import dialect_of
    from orchestration.paths import c360_home

    if dialect_of(con) != "duckdb":
        return c360_home() / "identity_scores.duckdb"
    row = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone()
    if not row or not row[0]:
        return None
    file = Path(row[0])
    return file.with_name(file.name + ".scores")


def usable(file: Path | None, key: str) -> bool:
    """Whether `file` holds the pairs of a night scored with the same inputs."""
    from orchestration.warehouse import scratch

    if file is None or not file.is_file():
        return False
    con = scratch()
    try:
        con.execute(f"attach {_literal(file)} as kept (read_only)")
        row = con.execute("select key from kept.meta").fetchone()
    except duckdb.Error:
        return False
    finally:
        con.close()
    return row is not None and row[0] == key


def _literal(file: Path) -> str:
    return "'" + str(file).replace("'", "''") + "'"


def sign(con: duckdb.DuckDBPyConnection, table: str, previous: Path | None) -> None:
    """Add `c360_changed` to `table` (the scoring's candidates, block keys added): true for a
    record new since `previous` or whose signature moved (all records without `previous`), and
    leave each record's signature in table `c360_signatures`. The table keeps its row order."""
    columns = [c[0] for c in con.execute(f"describe {table}").fetchall()]
    parts = [
        f'"{c}" is null' if c.startswith("_block") else f'"{c}"' for c in columns if c != CHANGED
    ]
    con.execute(
        f"create or replace table {SIGNATURES} as "
        f"select unique_id, hash({', '.join(parts)}) as sig from {table}"
    )
    if previous is not None:
        con.execute(f"attach {_literal(previous)} as prev (read_only)")
        changed = "coalesce(p.sig <> s.sig, true)"
        joined = "left join prev.signatures as p on p.unique_id = c.unique_id"
    else:
        changed, joined = "true", ""
    con.execute(
        f"create or replace table {table} as "
        f"select c.*, {changed} as {CHANGED} from {table} as c "
        f"inner join {SIGNATURES} as s on s.unique_id = c.unique_id {joined} "
        f"order by c.rowid"
    )
    if previous is None:
        return
    # per capped rule, whether the record's block holds a changed record: a condition on one
    # side goes below the rule's join, so only those blocks are joined (the changed-record
    # test alone is applied to every pair the key joins)
    keys = [c for c in columns if _KEY.fullmatch(c)]
    for i, k in enumerate(keys):
        con.execute(
            f'create or replace temp table c360_dirty_{i} as select distinct "{k}" as k '
            f'from {table} where {CHANGED} and "{k}" is not null'
        )
    if keys:
        flags = ", ".join(
            f'coalesce(c."{k}" in (select k from c360_dirty_{i}), false) as "{DIRTY}{k}"'
            for i, k in enumerate(keys)
        )
        con.execute(
            f"create or replace table {table} as select c.*, {flags} from {table} as c "
            f"order by c.rowid"
        )


def changed_only(rule_sql: str) -> str:
    """A prediction blocking rule restricted to pairs with a new or changed record (and, for a
    capped rule, to the blocks holding one: the same pairs, found without joining the others)."""
    blocks = "".join(
        f' and l."{DIRTY}{k}" and r."{DIRTY}{k}"'
        for k in dict.fromkeys(m.group(0) for m in _KEY.finditer(rule_sql))
    )
    return f"({rule_sql}){blocks} and (l.{CHANGED} or r.{CHANGED})"


def kept_pairs_sql(columns: str) -> str:
    """SQL: the previous night's pairs whose two records are unchanged (`columns`: the kept
    columns, as `pairs` holds them)."""
    unchanged = "(select unique_id from candidates where not c360_changed)"
    return (
        f"select {columns} from prev.pairs "
        f"where unique_id_l in {unchanged} and unique_id_r in {unchanged}"
    )


def save(con: duckdb.DuckDBPyConnection, pairs: str, file: Path, key: str) -> None:
    """Replace `file` with tonight's signatures and the pairs of relation `pairs`."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + ".tmp")
    tmp.unlink(missing_ok=True)
    con.execute(f"attach {_literal(tmp)} as nxt")
    try:
        con.execute(f"create table nxt.signatures as select unique_id, sig from {SIGNATURES}")
        con.execute(f"create table nxt.pairs as select * from {pairs}")
        con.execute("create table nxt.meta (key varchar)")
        con.execute("insert into nxt.meta values (?)", [key])
    finally:
        con.execute("detach nxt")
    if "prev" in {
        r[0] for r in con.execute("select database_name from duckdb_databases()").fetchall()
    }:
        con.execute("detach prev")
    os.replace(tmp, file)
