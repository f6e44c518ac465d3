"""Stage ``simulate`` (DVC/KFP name) = ``python -m components.raw_logs``: produce the raw logs.

``source.kind: world`` runs the listening world under the logging policy
(:mod:`~components.raw_logs.simulate`, which also writes the hidden truth);
``source.kind: logs`` lays out a folder of real logs that meet the contract
(:mod:`~components.raw_logs.ingest`). Every later stage sees the same files either way.
"""

SECTIONS = ("source", "simulate")  # the params sections this stage reads (+ tracking)
