"""The small exception hierarchy every stage raises for *user* mistakes.

CLIs turn an :class:`EncoreError` into one readable paragraph and exit code 2; anything
else is a bug and keeps its full traceback.
"""

from __future__ import annotations


class EncoreError(Exception):
    """Base class: a problem the user can fix (bad params, bad data, failed gate)."""


class ParamsError(EncoreError):
    """``params.yaml`` is missing, malformed, has an unknown key or a mistyped value."""


class ContractError(EncoreError):
    """Input data does not meet the raw-log contract (missing table/column, wrong type)."""


class DataValidationError(EncoreError):
    """The Great Expectations suite found rows that breach an expectation."""
