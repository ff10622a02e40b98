"""Ingestion of the web source: one staged batch, contract gate and raw table per entity."""

from orchestration.defs.ingestion.factory import build_source_defs

defs = build_source_defs("web")
