"""Checks a Quarry webhook delivery's signature.

Quarry signs each delivery with ``x-quarry-signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``,
the HMAC over ``"<t>.<body>"`` keyed by the webhook's secret. A receiver recomputes it over the raw
body bytes, compares in constant time, and refuses timestamps outside a tolerance window (a
replayed old delivery).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Mapping, Optional, Union

SIGNATURE_HEADER = "x-quarry-signature"
#: How far a delivery's timestamp may be from now, either way, in seconds.
DEFAULT_TOLERANCE_S = 300


def _header(headers: Mapping[str, str], name: str) -> Optional[str]:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def sign(secret: str, body: Union[bytes, str], timestamp: int) -> str:
    """The ``x-quarry-signature`` value Quarry sends for ``body`` at ``timestamp``."""
    raw = body.encode() if isinstance(body, str) else body
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: Union[bytes, str],
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: Optional[float] = None,
) -> bool:
    """True when ``body`` was signed with ``secret`` within ``tolerance_s`` of ``now``.

    ``headers`` is matched case-insensitively; ``body`` must be the raw bytes received (a
    re-serialised JSON body would not match). Several ``v1=`` entries (a secret being rotated)
    pass when any matches.
    """
    value = _header(headers, SIGNATURE_HEADER)
    if not value:
        return False
    timestamp: Optional[int] = None
    candidates = []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t" and item.isdigit():
            timestamp = int(item)
        elif key == "v1":
            candidates.append(item)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split(",v1=", 1)[1]
    return any(hmac.compare_digest(expected, c) for c in candidates)
