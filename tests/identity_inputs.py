"""The warehouse tables probabilistic matching and its training read, created empty with the
columns dbt's intermediate identity models give them: for the tests and benches that fill them
by hand instead of running dbt (orchestration/identity/probabilistic.py, training.py).

Grain: `int_identity__records` one row per source record; `int_identity__dropped_links` and
`int_identity__candidate_links` one row per link of a record to an identifier node.
"""

from __future__ import annotations

import duckdb


def create_matching_inputs(con: duckdb.DuckDBPyConnection) -> None:
    """The `intermediate` schema and the three input tables, empty, in `con`."""
    con.execute("create schema if not exists intermediate")
    con.execute(
        """
        create table intermediate.int_identity__records (
            record_key varchar, source varchar, first_name varchar, last_name varchar,
            email_normalized varchar, phone_e164 varchar, date_of_birth date,
            postal_code varchar, address_line1 varchar, city varchar
        )
        """
    )
    con.execute(
        "create table intermediate.int_identity__dropped_links "
        "(record_key varchar, node_key varchar, drop_reason varchar)"
    )
    con.execute(
        "create table intermediate.int_identity__candidate_links (record_key varchar, "
        "node_key varchar, identifier_type varchar, identifier_value varchar, rule varchar)"
    )
