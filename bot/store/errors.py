"""What the store raises when it cannot be opened as asked."""

from __future__ import annotations


class StoreError(Exception):
    """The database cannot be used as configured: an unsupported URL, a newer schema. The message
    is a sentence for the operator, shown as is, never a traceback."""


class StoreBusy(StoreError):
    """Another certops process uses this database; two would each think they own the runs."""
