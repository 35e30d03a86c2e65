"""How a thumbprint is shown, the same in chat, the terminal and the host actions' messages.

Its own module with no imports, so that `certops check` can use it without loading the host side.
"""

from __future__ import annotations


def short_thumbprint(thumbprint: str) -> str:
    """A thumbprint where no one compares it (a card's summary line): the first and last four
    characters. Where a person may compare it with IIS Manager or the certificates console (a
    finding, an action's result), it is shown in full, 40 hex characters."""
    return f"{thumbprint[:4]}…{thumbprint[-4:]}" if len(thumbprint) > 8 else thumbprint
