"""Keyed search tokens ("blind indexes"): find a row by a PHI value without storing the
value in the clear and without decrypting every row to compare.

A token is HMAC-SHA256 over a purpose label and the normalised value, keyed with a server
secret (settings.SEARCH_TOKEN_KEYS). Without the key a token cannot be tested against a
guessed name, and a token made for one purpose ("surname") never matches one made for another.

Normalised: Unicode compatibility form, accents dropped, case folded, letters and digits
only. "García", "garcia" and "GARCIA" meet, as do "O'Brien" and "OBrien", "Smith-Jones" and
"smith jones"; a part of a name does not ("Smith" does not find "Smith-Jones").
"""

import hashlib
import hmac
import unicodedata

from django.conf import settings


def normalise(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value or "")
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().translate(_KEEP)


class _Keep(dict):
    """str.translate table that drops everything but letters and digits."""

    def __missing__(self, code):
        return code if chr(code).isalnum() else None


_KEEP = _Keep()


def _token(key: str, purpose: str, normalised: str) -> str:
    return hmac.new(key.encode(), f"{purpose}:{normalised}".encode(), hashlib.sha256).hexdigest()


def token(purpose: str, value: str) -> str:
    """The token to store for `value` (the first key), or "" when nothing is left to index."""
    normalised = normalise(value)
    if not normalised:
        return ""
    return _token(settings.SEARCH_TOKEN_KEYS[0], purpose, normalised)


def tokens(purpose: str, value: str) -> list[str]:
    """Every token `value` may be stored under (one per key, so a rotated key still finds the
    rows made before the rotation); empty when nothing is left to search for."""
    normalised = normalise(value)
    if not normalised:
        return []
    return [_token(key, purpose, normalised) for key in settings.SEARCH_TOKEN_KEYS]
