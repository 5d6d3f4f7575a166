"""Times as Owncast's clients read them: POSIX seconds in, RFC 3339 out."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(t: float | None) -> str | None:
    """POSIX seconds as RFC 3339, as Owncast's clients parse it."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat()
