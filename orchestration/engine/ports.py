"""A free loopback TCP port, for the local servers c360 starts (Spark Thrift Server in the bench
and tests; Postgres, Mailman and the Dagster UI in tests)."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port on `host` nobody listens on now (the OS picks it; a server started on it a moment
    later may still lose it to another process, so its caller retries on another)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
