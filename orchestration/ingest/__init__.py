"""Ingestion: landing files (or live systems) → staged batch → checks → raw (write-audit-publish)."""
