"""ODCS data contracts: load them, and derive quarantine SQL and GX suites from them."""

from orchestration.contracts.model import Contract, Field, Rule, all_source_contracts, load_contract

__all__ = ["Contract", "Field", "Rule", "all_source_contracts", "load_contract"]
