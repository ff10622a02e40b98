"""Shared test fixtures. Tiers (budgets documented in README): unit (seconds), integration
(one ~2k-customer pipeline per session), e2e (real Postgres, browser)."""

import os

# Tests never read a developer's .c360 home: every fixture sets its own.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
