"""Ingestion of every source entity declared in data_contracts/sources/: per contract one staged
batch (its blocking gate is in defs/quality) and one raw table. A new source is a contract file;
nothing here names a source."""

from orchestration.defs.ingestion.factory import build_source_defs

defs = build_source_defs()
