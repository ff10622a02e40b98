"""C360_STATEMENT_LOG: each statement a server engine runs is one JSON line of its seconds and its
start, string literals masked (no identifier or personal value is written)."""

from __future__ import annotations

import json

from orchestration.engine.dbapi import STATEMENT_LOG, DbApiConnection


class _Cursor:
    def execute(self, statement: str, args: object = None) -> None:
        self.statement = statement


class _Con:
    def cursor(self) -> _Cursor:
        return _Cursor()


class _Postgres(DbApiConnection):
    dialect = "postgres"


def test_each_statement_is_logged_with_literals_masked(tmp_path, monkeypatch):
    log = tmp_path / "statements.jsonl"
    con = _Postgres(_Con())
    con.execute("select 1")  # not logged: no log named
    monkeypatch.setenv(STATEMENT_LOG, str(log))
    con.execute("delete from raw.crm__contacts where email = 'ann.o''neil@example.com'")
    con.execute("select count(*) from raw.crm__contacts")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["engine"] for line in lines] == ["postgres", "postgres"]
    assert lines[0]["statement"] == "DELETE FROM raw.crm__contacts WHERE email = '?'"
    assert "example.com" not in log.read_text() and "neil" not in log.read_text()
    assert lines[1]["statement"].startswith("SELECT COUNT(*) FROM raw.crm__contacts")
    assert all(line["seconds"] >= 0 for line in lines)
