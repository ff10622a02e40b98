"""e2e fixtures: one real Postgres server per test session."""

import pytest

from tests.e2e.pgserver import PostgresServer


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    server = PostgresServer(tmp_path_factory.mktemp("pg")).start()
    yield server
    server.stop()
