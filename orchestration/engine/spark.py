"""Spark as the warehouse: a Spark Thrift Server (HiveServer2 protocol), which dbt's spark target
(`method: thrift`) and the Python side's `SparkConnection` both talk to, as they would to a
cluster's. One server owns the catalog; a local one keeps its Parquet tables under
C360_SPARK_WAREHOUSE with an embedded Derby metastore beside them.

`server_command` starts that local server from the pyspark of .venv-spark (`make spark`); the
session settings (`SESSION_SETTINGS`) are the ones dbt's profile passes too, so every client
reads timestamps and literals alike.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from orchestration.engine import spark_catalog
from orchestration.engine.dbapi import DbApiConnection
from orchestration.engine.spark_statements import (
    KEY_PROPERTY,
    READ,
    SESSION_SCHEMA_PREFIX,
    STALE_SESSION_HOURS,
    Rewrite,
    TempScope,
    bind,
    delete_rewrite,
    is_transaction_control,
    primary_key,
    session_schema,
    stale_session_schemas,
    update_rewrite,
    upsert_rewrite,
)
from orchestration.engine.transpile import UntranslatableSQL
from orchestration.paths import REPO_ROOT, c360_home

DIALECT = "spark"
WAREHOUSE_ENV = "C360_SPARK_WAREHOUSE"
# Runtime settings of every session (dbt_project/profiles.yml passes the same): the project's
# `timestamp` is a wall-clock time in UTC without a zone, as in DuckDB and Postgres.
SESSION_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
}


def spark_warehouse() -> Path:
    """Folder of the local Spark warehouse: C360_SPARK_WAREHOUSE, default <C360_HOME>/spark."""
    return Path(os.environ.get(WAREHOUSE_ENV) or c360_home() / "spark").resolve()


def server_settings(home: Path | None = None) -> dict[str, str]:
    """The local Thrift Server's settings: where tables and the metastore live (`home`, default
    spark_warehouse()), its memory and parallelism, then the session settings."""
    home = home or spark_warehouse()
    return {
        "spark.sql.warehouse.dir": f"{home}/tables",
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={home}/metastore_db;create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
        "spark.driver.memory": os.environ.get("C360_SPARK_DRIVER_MEMORY", "2g"),
        "spark.sql.shuffle.partitions": os.environ.get("C360_SPARK_SHUFFLE_PARTITIONS", "4"),
        "spark.ui.enabled": "false",
        **SESSION_SETTINGS,
    }


def server_command(port: int, host: str = "127.0.0.1", home: Path | None = None) -> list[str]:
    """The command that runs a local Spark Thrift Server in the foreground on host:port, its
    warehouse in `home` (default spark_warehouse())."""
    spark_home = next(
        (REPO_ROOT / ".venv-spark" / "lib").glob("python3*/site-packages/pyspark"), None
    )
    if spark_home is None:
        raise FileNotFoundError("no pyspark in .venv-spark: run `make spark`")
    command = [
        str(spark_home / "bin" / "spark-submit"),
        "--class", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
        "--master", os.environ.get("C360_SPARK_MASTER", "local[2]"),
    ]  # fmt: skip
    for name, value in server_settings(home).items():
        command += ["--conf", f"{name}={value}"]
    return [
        *command,
        "--hiveconf", f"hive.server2.thrift.port={port}",
        "--hiveconf", f"hive.server2.thrift.bind.host={host}",
        "spark-internal",
    ]  # fmt: skip


def table_files(schema: str, table: str) -> Path:
    """Folder of a managed table's Parquet files in the local warehouse."""
    return spark_warehouse() / "tables" / f"{schema}.db" / table


# Thrift result types → Arrow (the driver hands dates over as text and nested values as JSON)
_ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING_TYPE": pa.string(), "VARCHAR_TYPE": pa.string(), "CHAR_TYPE": pa.string(),
    "BOOLEAN_TYPE": pa.bool_(), "TINYINT_TYPE": pa.int8(), "SMALLINT_TYPE": pa.int16(),
    "INT_TYPE": pa.int32(), "BIGINT_TYPE": pa.int64(), "FLOAT_TYPE": pa.float32(),
    "DOUBLE_TYPE": pa.float64(), "DATE_TYPE": pa.date32(), "TIMESTAMP_TYPE": pa.timestamp("us"),
}  # fmt: skip
_JSON_TYPES = frozenset({"ARRAY_TYPE", "MAP_TYPE", "STRUCT_TYPE"})


class SparkSQLError(RuntimeError):
    """A statement the Spark Thrift Server refused: Spark's message (without its stack and
    plan) and the start of the statement."""


def _decoded(type_code: str, value: Any) -> Any:
    if value is None:
        return None
    if type_code == "DATE_TYPE" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if type_code in _JSON_TYPES and isinstance(value, str):
        return json.loads(value)
    return value


class SparkConnection(DbApiConnection):
    """DuckDB's connection methods the Python steps use, on a Spark Thrift Server session.

    Statements are translated from DuckDB's dialect (engine.transpile); what Spark cannot run as
    written — deletes, updates, temp tables, transaction control — is rewritten first
    (engine.spark_statements). Arrow rows handed to SQL (`register`) are written as a Parquet
    file to the warehouse's staging folder and read as a temporary view: the server must see
    that folder (a local server does; a cluster reads it from the object storage the folder
    names)."""

    dialect = DIALECT

    def __init__(self, con: Any, staging: Path) -> None:
        super().__init__(con)
        self._staging = staging
        self._registered: dict[str, Path] = {}
        # the session's temp tables live in a schema of its own, dropped when it closes
        self._temp = TempScope(session_schema(_utc_now(), uuid.uuid4().hex[:8]), set())
        self._temp_schema_made = False
        self.rowcount = -1

    @classmethod
    def connect(
        cls, host: str, port: int, user: str = "c360", staging: Path | None = None
    ) -> SparkConnection:
        """Open a session on the Thrift Server at host:port."""
        from pyhive import hive

        con = hive.connect(host=host, port=port, username=user, configuration=SESSION_SETTINGS)
        return cls(con, staging or spark_warehouse() / "staging")

    def execute(
        self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> Self:
        """Run `sql` (DuckDB dialect; several statements allowed without parameters)."""
        try:
            trees = [t for t in sqlglot.parse(sql, read=READ) if t is not None]
        except SqlglotError as exc:
            raise UntranslatableSQL(f"cannot parse for spark: {exc}; SQL: {sql[:160]}") from exc
        if parameters is not None and len(trees) > 1:
            raise UntranslatableSQL(f"{len(trees)} statements with parameters: run them one by one")
        for tree in trees:
            self._run(tree, parameters)
        return self

    def executemany(self, sql: str, parameters: Sequence[Sequence[Any]]) -> Self:
        """Run one statement once per parameter row; `insert … values (?, …)` as one insert of
        all the rows (each statement is a Spark job)."""
        tree = sqlglot.parse_one(sql, read=READ)
        values = tree.expression if isinstance(tree, exp.Insert) else None
        if not (isinstance(values, exp.Values) and len(values.expressions) == 1):
            for row in parameters:
                self.execute(sql, row)
            return self
        if not parameters:
            return self
        rows = [bind(values.expressions[0].copy(), list(row)) for row in parameters]
        values.set("expressions", rows)
        self._run(tree, None)
        return self

    def _run(self, tree: exp.Expression, parameters: Any) -> None:
        self.rowcount = -1
        if is_transaction_control(tree):
            return
        tree = self._catalog_views(self._temp.apply(bind(tree, parameters)))
        created = tree.find(exp.Table) if isinstance(tree, exp.Create) else None
        in_temp = created is not None and created.text("db") == self._temp.schema
        if in_temp and not self._temp_schema_made:
            super().execute(f"create schema if not exists {self._temp.schema}")
            self._temp_schema_made = True
        if isinstance(tree, exp.Delete):
            self._rewrite(delete_rewrite(tree))
        elif isinstance(tree, exp.Update):
            names = [name for name, _ in self._columns(_bare(tree.this))]
            self._rewrite(update_rewrite(tree, names))
        elif isinstance(tree, exp.Alter) and any(
            isinstance(a, exp.ColumnDef) and a.args.get("exists") for a in tree.args["actions"]
        ):
            self._add_missing_columns(tree)
        elif isinstance(tree, exp.Insert) and tree.args.get("conflict") is not None:
            target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
            table = _bare(target)
            names = [name for name, _ in self._columns(table)]
            upsert = upsert_rewrite(tree, names, self._key(table))
            if upsert.rewrite is not None:
                self._rewrite(upsert.rewrite)
            else:
                added = int(super().execute(upsert.count_sql).fetchone()[0])
                super().execute(upsert.insert_sql)
                self.rowcount = added
        else:
            key = primary_key(tree) if isinstance(tree, exp.Create) else []
            super().execute(tree.sql(dialect=READ))
            if key:
                # Parquet tables hold no constraint: the key is kept as a table property, for
                # `insert … on conflict` without a conflict target
                self._spark(
                    f"alter table {_spark_name(_bare(created))} set tblproperties "
                    f"('{KEY_PROPERTY}' = '{','.join(key)}')"
                )

    def _catalog_views(self, tree: exp.Expression) -> exp.Expression:
        """`tree` reading temporary views of the catalog where it reads information_schema's
        tables or columns (engine.spark_catalog), those views made for it now."""
        references = spark_catalog.referenced(tree)
        if not references:
            return tree
        catalog = self._catalog()
        schemas = spark_catalog.literal_filter(tree, "table_schema")
        tables = spark_catalog.literal_filter(tree, "table_name")
        for relation in {t.name.lower() for t in references}:
            rows = getattr(catalog, relation)(schemas, tables)
            self.register(spark_catalog.view_name(relation), rows)
        # the catalog the views name their tables' (Spark's current_database() is a schema)
        for node in list(tree.find_all(exp.CurrentDatabase)):
            node.replace(exp.Literal.string(spark_catalog.CATALOG))
        for table in references:
            view = exp.to_table(spark_catalog.view_name(table.name))
            if table.alias:
                view.set("alias", table.args["alias"])
            table.replace(view)
        return tree

    def _query(self, statement: str) -> list[tuple]:
        """Rows of a Spark SQL statement run as written (the last result stays the caller's)."""
        return self._spark(statement).fetchall()

    def _failure(self, exc: Exception, statement: str) -> Exception:
        status = getattr(exc.args[0], "status", None) if exc.args else None
        message = getattr(status, "errorMessage", None)
        if not message:
            return exc
        message = message.removeprefix("Error running query: ")
        # the analysed plan follows the message and its SQLSTATE
        code = message.find("SQLSTATE: ")
        message = message[: code + len("SQLSTATE: 42P01")] if code >= 0 else message
        head = " ".join(statement.split())
        return SparkSQLError(f"{message[:1200]}; SQL: {head[:300]}")

    def _rewrite(self, plan: Rewrite) -> None:
        """Run a delete or update as a table rewrite (module engine.spark_statements)."""
        changed = int(super().execute(plan.count_sql).fetchone()[0])
        if changed:
            target = _spark_name(plan.table)
            if plan.select_sql is None:
                self._spark(f"truncate table {target}")
            else:
                side_table = _suffixed(plan.table, "__c360_rewrite")
                side = _spark_name(side_table)
                self._spark(f"drop table if exists {side}")
                super().execute(f"create table {side_table} as {plan.select_sql}")
                # the side table's columns may be typed by an expression: cast to the table's
                casts = ", ".join(
                    f"cast({_quoted(name)} as {kind}) as {_quoted(name)}"
                    for name, kind in self._columns(plan.table)
                )
                self._spark(f"insert overwrite table {target} select {casts} from {side}")
                self._spark(f"drop table {side}")
        self.rowcount = changed

    def _spark(self, statement: str) -> Any:
        """Run Spark SQL as written (the rewrites' own statements); returns its cursor."""
        return self._checked(self._con.cursor(), statement)

    def _add_missing_columns(self, tree: exp.Alter) -> None:
        """`alter table … add column if not exists`, which Spark lacks: the columns the table
        does not have yet are added."""
        table = _bare(tree.this)
        have = {name.lower() for name, _ in self._columns(table)}
        for action in tree.args["actions"]:
            if isinstance(action, exp.ColumnDef) and action.name.lower() in have:
                continue
            action = action.copy()
            action.set("exists", False)
            super().execute(f"alter table {table} add column {action.sql(dialect=READ)}")

    def _key(self, table: str) -> list[str]:
        """The primary key a table was created with (its KEY_PROPERTY), none if it had none."""
        rows = self._query(f"show tblproperties {_spark_name(table)} ('{KEY_PROPERTY}')")
        value = rows[0][1] if rows and len(rows[0]) > 1 else ""
        return [] if not value or "does not have property" in value else value.split(",")

    def _columns(self, table: str) -> list[tuple[str, str]]:
        """(name, Spark type) of each column of `table` (DuckDB's spelling of its name)."""
        return self._catalog().describe(_spark_name(table))

    def _catalog(self) -> spark_catalog.SparkCatalog:
        """The session's catalog, every session's temp-table schema hidden: another session's
        temp tables are not the warehouse's (as on DuckDB and Postgres, where they are not
        listed), and under parallel steps they come and go while a step reads the catalog."""
        return spark_catalog.SparkCatalog(self._query, hidden_prefixes=[SESSION_SCHEMA_PREFIX])

    def replace_table(
        self, table: str, select_sql: str, parameters: Sequence[Any] | None = None
    ) -> None:
        """`table` holds the rows of `select_sql` afterwards: written beside it, then renamed
        over it (a reader between the two finds it missing: Parquet tables have no swap)."""
        side = _suffixed(table, "__c360_new")
        self.execute(f"drop table if exists {side}")
        self.execute(f"create table {side} as {select_sql}", parameters)
        self.execute(f"drop table if exists {table}")
        self._spark(f"alter table {_spark_name(side)} rename to {_spark_name(table)}")

    def replace_view(self, view: str, select_sql: str) -> None:
        """(Re)create `view` as `select_sql`, whatever its columns were."""
        self.execute(f"create or replace view {view} as {select_sql}")

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._last().fetchone()
        return None if row is None else self._decode(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [self._decode(row) for row in self._last().fetchall()]

    def _decode(self, row: Sequence[Any]) -> tuple[Any, ...]:
        kinds = [c[1] for c in self._last().description or ()]
        return tuple(_decoded(k, v) for k, v in zip(kinds, row, strict=True))

    def to_arrow_table(self) -> pa.Table:
        """The last result as an Arrow table, typed by the result's column types (a column of
        nulls keeps its type); decimals and nested values are inferred from the values."""
        description = list(self._last().description or ())
        rows = self.fetchall()
        arrays = {}
        for i, (name, kind, *_) in enumerate(description):
            values = [r[i] for r in rows]
            arrow = _ARROW_TYPES.get(kind)
            arrays[name] = pa.array(values, type=arrow) if arrow else pa.array(values)
        return pa.table(arrays)

    def df(self) -> pd.DataFrame:
        return self.to_arrow_table().to_pandas(date_as_object=False)

    def register(self, view_name: str, python_object: pa.Table | pd.DataFrame) -> SparkConnection:
        """A temporary view `view_name` of an Arrow table's or a pandas frame's rows."""
        table = (
            pa.Table.from_pandas(python_object, preserve_index=False)
            if isinstance(python_object, pd.DataFrame)
            else python_object
        )
        self._staging.mkdir(parents=True, exist_ok=True)
        # a name starting with `_` or `.` is a hidden file to Spark
        path = self._staging / f"c360-{view_name}-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, path)
        self.unregister(view_name)
        self._con.cursor().execute(
            f"create temporary view {view_name} using parquet options (path '{path}')"
        )
        self._registered[view_name] = path
        return self

    def unregister(self, view_name: str) -> SparkConnection:
        self._con.cursor().execute(f"drop view if exists {view_name}")
        path = self._registered.pop(view_name, None)
        if path is not None:
            path.unlink(missing_ok=True)
        return self

    def table_exists(self, schema: str, table: str, views: bool = True) -> bool:
        """Whether `schema.table` exists (a view counts unless `views` is False)."""
        return self._catalog().exists(schema, table, views)

    def ensure_schemas(self, schemas: Sequence[str]) -> None:
        """Create those of `schemas` that do not exist yet (one catalog read, not one statement
        per schema: each is a round trip)."""
        have = {name.lower() for name in self._catalog().schema_names()}
        for schema in schemas:
            if schema.lower() not in have:
                self._spark(f"create schema if not exists `{schema}`")
        self._sweep_killed_sessions(have)

    def _sweep_killed_sessions(self, schemas: set[str]) -> None:
        """Drop what sessions killed over STALE_SESSION_HOURS ago left: their scratch schemas
        (among `schemas`, the catalog read ensure_schemas makes anyway) and registered rows."""
        for stale in stale_session_schemas(schemas, _utc_now()):
            self._spark(f"drop schema if exists `{stale}` cascade")
        cutoff = time.time() - STALE_SESSION_HOURS * 3600
        for path in self._staging.glob("c360-*.parquet"):
            with contextlib.suppress(FileNotFoundError):  # its session closed meanwhile
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    def table_names(self, schema: str) -> list[str]:
        """The tables (not views) of `schema`, none when it does not exist."""
        return self._catalog().table_names(schema)

    def close(self) -> None:
        for name in list(self._registered):
            self.unregister(name)
        if self._temp_schema_made:
            self._spark(f"drop schema if exists {self._temp.schema} cascade")
        super().close()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _spark_name(duckdb_name: str) -> str:
    """A table name as DuckDB writes it (`s.t`, `"s"."t"`), as Spark reads it."""
    return exp.to_table(duckdb_name, dialect=READ).sql(dialect=DIALECT)


def _suffixed(table: str, suffix: str) -> str:
    """Table name `table` (DuckDB's spelling, maybe quoted) with `suffix` added to its name."""
    parsed = exp.to_table(table, dialect=READ)
    name = parsed.args["this"]
    parsed.set("this", exp.to_identifier(name.name + suffix, quoted=name.quoted))
    return parsed.sql(dialect=READ)


def _bare(table: exp.Table) -> str:
    """A table reference without its alias, in DuckDB's spelling."""
    bare = table.copy()
    bare.set("alias", None)
    return bare.sql(dialect=READ)


def _quoted(column: str) -> str:
    return exp.to_identifier(column, quoted=True).sql(dialect=DIALECT)


if __name__ == "__main__":
    # `python -m orchestration.engine.spark [port]`: a local Thrift Server in the foreground
    import sys

    argv = server_command(int(sys.argv[1]) if len(sys.argv) > 1 else 10000)
    os.execv(argv[0], argv)
