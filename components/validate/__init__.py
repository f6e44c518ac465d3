"""Stage ``validate``: Great Expectations checks of the raw logs (schema, ranges, ids, daily volume)."""
