"""One-line error text for manifests and logs."""

from __future__ import annotations


def last_line(error: BaseException | str) -> str:
    """The last line of an error's text (a Ray or subprocess error carries the remote traceback above it);
    an exception with no message: its repr."""
    text = str(error).strip()
    if not text:
        return repr(error) if isinstance(error, BaseException) else ""
    return text.splitlines()[-1]
