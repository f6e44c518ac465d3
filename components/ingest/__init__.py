"""Stage ``ingest``: lay out real logs that meet the contract exactly as ``simulate`` does."""
