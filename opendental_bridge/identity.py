"""Which practice database an Open Dental connection reaches, as Chairside names it.

Open Dental's API has no call that names the database: a customer key "is linked to a
specific office" (https://opendental.com/site/apisetup.html), whichever address reaches it
(the remote API at api.opendental.com, the office's Local API, its API Service). So the
customer key stands for the database. It is a credential and an identity is stored in
the clear, so the name is a keyed hash of it (HMAC-SHA256 under a fixed label, 20 hex
digits): stable across addresses and restarts, equal for every location entering the same
key, and no way back to the key (a customer key is a random string, far too long to guess).

An office that creates a second customer key for Chairside gets a second name: give every
location of one database the same key.
"""

import hashlib
import hmac

LABEL = b"chairside:opendental:customer-key"


def key_id(customer_key: str) -> str:
    """The customer key's non-secret id: "key-" and 20 hex digits; "" for no key."""
    key = (customer_key or "").strip()
    if not key:
        return ""
    return "key-" + hmac.new(LABEL, key.encode(), hashlib.sha256).hexdigest()[:20]


def practice_database(base_url: str, api_key: str) -> str:
    return key_id(api_key)
