"""Segments as code: YAML definitions → validated model → SQL dbt models."""
