"""The first stage slot: ``simulate`` the world or ``ingest`` real logs, chosen by ``source.kind``."""
