"""Live mode of the extractor: CRM (Postgres) and shop (HTTP API) via dlt resources, written to the
same landing layout file mode reads, so write-audit-publish stays one code path (see live.py)."""
