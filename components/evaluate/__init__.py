"""Stage ``evaluate`` (and the only stage code allowed to read the simulator's truth)."""
