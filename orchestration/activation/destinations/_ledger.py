"""What an audience platform holds per person, for platforms that match hashed identifiers and
cannot be asked (Google Customer Match, Meta Custom Audiences): a removal must send the same
hashed identifiers the person was added with, and the diff planner sends a removal without
fields. Grain: one row per (sync, identifier, member key); a member key is the canonical JSON of
what was sent for the person (a Google UserData, a Meta row). Holds hashes only, never clear
text.

Written before a send (`intend`): a crash after the platform applied an add still leaves the
keys a later removal needs; a removal of keys never applied is a no-op at both platforms.
`settle` keeps exactly the keys the platform now holds for the person after a send ended ok;
`forget` drops a person (after a removal ended ok, or an erasure).

One SQLite file per sync under `<C360_HOME>/activation/ledgers/` (`C360_LEDGER_DIR` overrides):
the warehouse has one writer, which is the sync's runner itself while it sends.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from orchestration.paths import c360_home


def ledger_dir() -> Path:
    """`C360_LEDGER_DIR`, default `<C360_HOME>/activation/ledgers`."""
    return Path(os.environ.get("C360_LEDGER_DIR", c360_home() / "activation" / "ledgers")).resolve()


def member_key(member: object) -> str:
    """The canonical JSON text of what was sent for one person (sorted keys, compact)."""
    return json.dumps(member, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Ledger:
    """The hashed members a platform holds per identifier, for one sync (module docstring)."""

    def __init__(self, sync: str, folder: Path | None = None) -> None:
        folder = folder or ledger_dir()
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", sync)
        self.path = folder / f"{safe}.sqlite"
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._con.execute("pragma journal_mode=wal")
        self._con.execute(
            "create table if not exists members (identifier text not null, member text not null,"
            " job text, primary key (identifier, member))"
        )

    def members(self, identifier: str) -> dict[str, str | None]:
        """The member keys recorded for `identifier` (applied or possibly applied), each with
        the platform's reference of the request that carried it (a job), if known."""
        with self._lock:
            rows = self._con.execute(
                "select member, job from members where identifier = ? order by member",
                [identifier],
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def mark(self, pairs: Iterable[tuple[str, str]], job: str) -> None:
        """Record that `job` carries the adds of these (identifier, member key) pairs."""
        with self._lock:
            self._con.executemany(
                "update members set job = ? where identifier = ? and member = ?",
                [(job, identifier, key) for identifier, key in pairs],
            )

    def intend(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record (identifier, member key) pairs about to be sent as adds."""
        with self._lock:
            self._con.executemany(
                "insert or ignore into members (identifier, member) values (?, ?)", list(pairs)
            )

    def settle(self, identifier: str, keep: dict[str, str | None]) -> None:
        """After a send ended ok: the person is held with exactly `keep` (member key → job;
        empty: forgotten)."""
        with self._lock:
            self._con.execute("begin")
            self._con.execute("delete from members where identifier = ?", [identifier])
            self._con.executemany(
                "insert into members (identifier, member, job) values (?, ?, ?)",
                [(identifier, key, job) for key, job in keep.items()],
            )
            self._con.execute("commit")

    def forget(self, identifier: str) -> None:
        """Drop everything recorded for `identifier`."""
        self.settle(identifier, {})

    def close(self) -> None:
        with self._lock:
            self._con.close()
