"""Blanking secrets out of text that goes to logs (tracebacks, spotipy's request logs)."""

from __future__ import annotations

import re

_SECRET = re.compile(
    r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"
    r"|((?:access_token|refresh_token|client_secret|code_verifier|token|secret|password)"
    r"['\"]?\s*[:=]\s*['\"]?)[^'\",\s}&]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with Authorization values and secret-looking ``key=value`` values blanked."""
    return _SECRET.sub(
        lambda m: f"{m.group(1)} [redacted]" if m.group(1) else f"{m.group(2)}[redacted]", text
    )
