"""information_schema on Spark (orchestration/engine/spark_catalog.py): which relations and
filters a statement asks for, Spark's type names in DuckDB's spelling, and the relations built
from the catalog commands' rows (the shapes a Spark Thrift Server returns; the e2e reads a real
one)."""

from __future__ import annotations

import pytest
import sqlglot

from orchestration.engine.spark_catalog import (
    SparkCatalog,
    duckdb_type,
    literal_filter,
    referenced,
)


def _tree(sql: str):
    return sqlglot.parse_one(sql, read="duckdb")


@pytest.mark.parametrize(
    ("spark", "duckdb"),
    [
        ("string", "VARCHAR"),
        ("bigint", "BIGINT"),
        ("int", "INTEGER"),
        ("timestamp_ntz", "TIMESTAMP"),
        ("timestamp", "TIMESTAMP WITH TIME ZONE"),
        ("decimal(12,2)", "DECIMAL(12,2)"),
        ("array<string>", "VARCHAR[]"),
        ("varchar(20)", "VARCHAR"),
        ("map<string,int>", "MAP<STRING,INT>"),
    ],
)
def test_spark_types_in_duckdbs_names(spark, duckdb):
    assert duckdb_type(spark) == duckdb


def test_a_statement_names_the_relations_and_the_literal_filters():
    tree = _tree(
        "select c.column_name from information_schema.columns c join information_schema.tables t "
        "using (table_name) where c.table_schema = 'marts' and t.table_name in ('a', 'b')"
    )
    assert sorted(t.name for t in referenced(tree)) == ["columns", "tables"]
    assert literal_filter(tree, "table_schema") == {"marts"}
    assert literal_filter(tree, "table_name") == {"a", "b"}
    # a filter that is not a literal: every value may be asked for
    assert literal_filter(_tree("select 1 from t where table_name = other"), "table_name") is None
    assert literal_filter(_tree("select 1 from t"), "table_schema") is None
    assert not referenced(_tree("select 1 from marts.tables"))


def test_the_relations_from_the_catalog_commands():
    answers = {
        # the session's own scratch schema and another live session's
        "show schemas": [("default",), ("marts",), ("c360_session_x",), ("C360_SESSION_y",)],
        "show views in `marts`": [("marts", "v", False), ("", "registered", True)],
        "show tables in `marts`": [
            ("marts", "customer_360", False),
            ("marts", "v", False),
            ("", "registered", True),  # a session's temporary view: not the warehouse's
        ],
        "describe table `marts`.`customer_360`": [
            ("customer_id", "string", None),
            ("orders", "bigint", None),
            ("", "", ""),
            ("# Detailed Table Information", "", ""),
        ],
    }
    asked: list[str] = []

    def query(sql: str) -> list[tuple]:
        asked.append(sql)
        return answers[sql]

    catalog = SparkCatalog(query, hidden_prefixes=["c360_session_"])
    tables = catalog.tables({"marts"}, None).to_pylist()
    assert [(t["table_name"], t["table_type"]) for t in tables] == [
        ("customer_360", "BASE TABLE"),
        ("v", "VIEW"),
    ]
    columns = catalog.columns({"marts"}, {"customer_360"}).to_pylist()
    assert [(c["column_name"], c["ordinal_position"], c["data_type"]) for c in columns] == [
        ("customer_id", 1, "VARCHAR"),
        ("orders", 2, "BIGINT"),
    ]
    assert "describe table `marts`.`v`" not in asked  # only the tables asked for are described
    # no session's scratch schema is the warehouse's: neither listed nor asked about
    assert catalog.table_names("C360_SESSION_y") == []
    assert not catalog.exists("c360_session_x", "scratch")
    assert all("c360_session_" not in sql.lower() for sql in asked)


def test_existence_and_table_names_from_the_catalog_commands():
    """A table's existence in two or three catalog commands, never information_schema's
    relations (each a Parquet file and a view built per statement)."""
    answers = {
        "show schemas": [("default",), ("marts",)],
        "show tables in `marts` like 'customer_360'": [("marts", "customer_360", False)],
        "show views in `marts` like 'customer_360'": [],
        "show tables in `marts` like 'v'": [("marts", "v", False)],
        "show views in `marts` like 'v'": [("marts", "v", False)],
        "show tables in `marts` like 'registered'": [("", "registered", True)],
        "show tables in `marts` like 'gone'": [],
        # Spark's `like` is a pattern: `.` matches any letter, so another table answers too
        "show tables in `marts` like 'a.b'": [("marts", "axb", False)],
        "show views in `marts`": [("marts", "v", False)],
        "show tables in `marts`": [("marts", "customer_360", False), ("marts", "v", False)],
    }
    asked: list[str] = []

    def query(sql: str) -> list[tuple]:
        asked.append(sql)
        return answers[sql]

    catalog = SparkCatalog(query)
    assert catalog.exists("marts", "customer_360", views=False)
    assert catalog.exists("marts", "v") and not catalog.exists("marts", "v", views=False)
    assert not catalog.exists("marts", "registered")  # a session's temporary view
    assert not catalog.exists("marts", "gone")
    assert not catalog.exists("marts", "a.b")  # a name the pattern matches is not the name
    assert not catalog.exists("raw", "anything")  # no such schema: `show tables` is not asked
    assert "show tables in `raw` like 'anything'" not in asked
    assert catalog.table_names("marts") == ["customer_360"]
    assert catalog.table_names("raw") == []
    assert not any("information_schema" in sql for sql in asked)
