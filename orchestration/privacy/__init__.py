"""Privacy: erasure that deletes (requests → tombstones, deletes, rewrites, receipts)."""
