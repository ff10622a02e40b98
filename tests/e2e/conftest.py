"""e2e fixtures: one real, throwaway Postgres server per test session (per xdist worker)."""

from collections.abc import Iterator

import pytest

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
