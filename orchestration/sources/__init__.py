"""Sources: the deterministic sample-data generator (with ground truth) and extractor helpers."""
