"""e2e fixtures: one real, throwaway Postgres server per test session (per xdist worker)."""

from collections.abc import Iterator

import pytest

from orchestration.engine.postgres import PostgresConnection
from tests.e2e.pg import PgDatabase, PostgresServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The running server; `pg_server.create_database(name)` gives a test its own database."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres(pg_server: PostgresServer) -> PgDatabase:
    """Connection info (host, port, user, dbname, dsn, connect()) of a fresh session database."""
    return pg_server.create_database("c360_test")


@pytest.fixture
def pg(pg_server: PostgresServer, request) -> Iterator[PostgresConnection]:
    """A warehouse Connection on a database of the test's own (named after its module and test)."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    db = pg_server.create_database(f"{module[:20]}_{request.node.name[:40]}".lower())
    con = PostgresConnection.connect(db.dsn)
    yield con
    con.close()
