"""Webhook signatures for CareCredit callbacks (pure functions, no Django).

The header looks like Stripe's and Sunbit's::

    CareCredit-Signature: t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

where ``v1`` is the hex HMAC-SHA256, keyed by the shared webhook secret, of the bytes
``b"<t>." + raw_body``. Signing the timestamp together with the body is what makes the
±300 s replay window meaningful: an attacker cannot move an old signature to a new time.

Rules that `verify` enforces and why:

- The *raw* request body is signed. Re-serialising parsed JSON changes whitespace and
  key order, so a receiver must verify the bytes it received, before parsing them.
- Two secrets may be live at once, so a secret can be rotated without dropping events:
  the sender switches to the new secret while receivers still accept the old one.
- The header may carry several ``v1=`` entries (a sender mid-rotation signs with both);
  any one matching any secret is enough.
- Digests are compared with `hmac.compare_digest`, so timing does not leak how many
  leading characters of a forged signature were right.
- Failure reasons are short fixed phrases: they end up in logs and HTTP responses, so
  they never quote the body (which may one day carry PHI) or the expected digest.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "InvalidSignature",
    "compute_digest",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "CareCredit-Signature"

# Seconds a signature stays valid either side of the receiver's clock.
DEFAULT_TOLERANCE = 300


class InvalidSignature(ValueError):
    """A webhook failed verification. `reason` is short and safe to log: no body, no PHI."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def compute_digest(secret: str, body: bytes, timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body`` keyed by `secret`."""
    signed_payload = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), signed_payload, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``CareCredit-Signature`` header value for `body` sent at unix time `timestamp`."""
    return f"t={int(timestamp)},v1={compute_digest(secret, body, int(timestamp))}"


def verify(
    header: str | None,
    body: bytes,
    secrets: list[str],
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Check a ``CareCredit-Signature`` header against the raw `body`; raise if it fails.

    `secrets` are the currently accepted webhook secrets (one, or two during a rotation).
    Empty strings in it are ignored, so an unset "next secret" setting can never turn the
    empty string into a valid key. `now` is the receiver's unix time, passed in rather
    than read here so that tests can pin it.

    Returns None on success; raises `InvalidSignature` with one of these reasons:
    "missing signature header", "malformed signature header", "timestamp outside
    tolerance", "no webhook secret configured", "no matching signature".
    """
    if not header:
        raise InvalidSignature("missing signature header")
    timestamp, candidates = _parse_header(header)

    # |now - t| == tolerance still passes: the window is inclusive at both ends.
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside tolerance")

    usable_secrets = [secret for secret in secrets if secret]
    if not usable_secrets:
        # Fail closed: a receiver with no secret must not accept anything.
        raise InvalidSignature("no webhook secret configured")

    for secret in usable_secrets:
        expected = compute_digest(secret, body, timestamp).encode("ascii")
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate):
                return
    raise InvalidSignature("no matching signature")


def _parse_header(header: str) -> tuple[int, list[bytes]]:
    """Split ``t=<unix>,v1=<hex>[,v1=<hex>…]`` into the timestamp and the v1 candidates.

    Unknown keys (a future ``v2=``, say) are ignored so that a sender can add a scheme
    without breaking old receivers. Exactly one ``t`` and at least one ``v1`` are required.
    """
    timestamps: list[str] = []
    candidates: list[bytes] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise InvalidSignature("malformed signature header")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            # Bytes, because compare_digest refuses non-ASCII str and the header is
            # attacker-controlled.
            candidates.append(value.encode("utf-8"))
    if len(timestamps) != 1 or not candidates:
        raise InvalidSignature("malformed signature header")
    raw_timestamp = timestamps[0]
    # isdigit() alone would accept "²" and other Unicode digits; the length cap keeps
    # int() away from huge attacker-supplied numbers.
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit() and len(raw_timestamp) <= 12):
        raise InvalidSignature("malformed signature header")
    return int(raw_timestamp), candidates
