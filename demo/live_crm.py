"""Stand up the CRM as a real Postgres database from generated landing files (live mode).

Tables `<schema>.contacts` and `<schema>.accounts`, typed as a CRM keeps them: one row per id
(the latest generated version), timestamps `timestamptz`, `is_deleted boolean` (soft deletes),
`updated_at` indexed (the incremental cursor). `updated_at` stays nullable: legacy rows without
one exist in real CRMs too (the generator plants a few; the contract quarantines them).

The DSN is given by the caller (C360_CRM_DSN in the pipeline); it is never printed.
"""

from __future__ import annotations

from pathlib import Path

import psycopg2
import psycopg2.extras
from psycopg2 import sql

from orchestration.contracts.model import Contract, source_contract
from orchestration.contracts.rules_sql import quote_ident, quote_literal
from orchestration.ingest.landing import glob_escaped
from orchestration.warehouse import scratch

# contract logicalType → Postgres column type
PG_TYPES = {
    "string": "text",
    "integer": "bigint",
    "number": "numeric(18,2)",
    "date": "date",
    "timestamp": "timestamptz",
    "boolean": "boolean",
}
TABLES = {"contacts": "crm__contacts", "accounts": "crm__accounts"}


def create_table_sql(contract: Contract, schema: str) -> sql.Composed:
    cols = []
    for f in contract.fields:
        ddl = f"{quote_ident(f.name)} {PG_TYPES[f.logical_type]}"
        if f.primary_key:
            ddl += " primary key"
        elif f.name == "is_deleted":
            ddl += " not null default false"
        elif f.name == "created_at":
            ddl += " not null"
        cols.append(ddl)
    table = sql.Identifier(schema, contract.entity)
    return sql.SQL(
        "create schema if not exists {schema};\n"
        "drop table if exists {table};\n"
        "create table {table} (" + ", ".join(cols) + ");\n"
        "create index on {table} (updated_at);"
    ).format(schema=sql.Identifier(schema), table=table)


def _latest_rows(landing_dir: Path, contract: Contract) -> tuple[list[str], list[tuple]]:
    """Latest version per primary key of the generated CSV files, values as text."""
    root = Path(landing_dir) / contract.source / contract.entity
    files = sorted(root.rglob("*.csv")) if root.exists() else []
    if not files:
        return list(contract.column_names), []
    # each file by its glob-escaped name: DuckDB reads `part[1].csv` as a glob (`part1.csv`)
    names = ", ".join(quote_literal(glob_escaped(p)) for p in files)
    pk = ", ".join(quote_ident(c) for c in contract.primary_key)
    cols = ", ".join(quote_ident(c) for c in contract.column_names)
    with scratch() as con:
        rows = con.execute(
            f"select {cols} from read_csv([{names}], all_varchar=true, header=true, "
            f"filename=true) qualify row_number() over (partition by {pk} order by "
            "updated_at desc nulls last, filename desc) = 1 order by all"
        ).fetchall()
    return list(contract.column_names), rows


def load_crm(dsn: str, landing_dir: Path, schema: str = "public") -> dict[str, int]:
    """(Re)create the CRM tables in the database at `dsn` from generated files; rows per table."""
    counts: dict[str, int] = {}
    con = psycopg2.connect(dsn, connect_timeout=10)
    try:
        with con, con.cursor() as cur:
            for entity, contract_id in TABLES.items():
                contract = source_contract(contract_id)
                cur.execute(create_table_sql(contract, schema))
                cols, rows = _latest_rows(landing_dir, contract)
                psycopg2.extras.execute_values(
                    cur,
                    sql.SQL("insert into {} ({}) values %s")
                    .format(
                        sql.Identifier(schema, entity),
                        sql.SQL(", ").join(sql.Identifier(c) for c in cols),
                    )
                    .as_string(cur),
                    rows,
                    page_size=2000,
                )
                counts[contract_id] = len(rows)
    finally:
        con.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    """`python -m demo.live_crm [--landing DIR] [--schema S]`: load the CRM into
    the Postgres database named by C360_CRM_DSN (libpq DSN or postgresql:// URL)."""
    import argparse
    import os

    from orchestration.paths import landing_dir

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--landing", type=Path, default=None)
    parser.add_argument("--schema", default=os.environ.get("C360_CRM_SCHEMA", "public"))
    args = parser.parse_args(argv)
    dsn = os.environ.get("C360_CRM_DSN")
    if not dsn:
        parser.error("C360_CRM_DSN is not set")
    counts = load_crm(dsn, args.landing or landing_dir(), args.schema)
    print("crm loaded: " + ", ".join(f"{k} {v:,} rows" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
