"""Which practice database a Dentrix connector serves, as Chairside names it.

A Dentrix connector is an on-premises agent in front of one practice's Dentrix database
(a Dentrix Enterprise database may serve many clinics, and so many Chairside locations).
The contract gives no database id, so the connector's address stands for the database:
locations that share a database reach it through the same connector, at the same address.

So every location of one database must reach its connector by the same address (spelling
aside: see below); "localhost" and "127.0.0.1" are two names. A case keeps the name it was
captured under: if the connector moves to a new address, move every location of the
database to it at once, and know that a case still open under the old name no longer
blocks a new case for its plan at the new one.
"""

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def practice_database(base_url: str, api_key: str) -> str:
    """The connector's address, normalised so that every way of writing one address gives
    one name: host in lower case, the port always spelled out (so the scheme's default port
    and the explicit one agree), the path without trailing slashes; no scheme, user, password,
    query or fragment. The API key is not part of it: two keys to one connector still reach
    one database, and a credential must never be stored as a name. "" when the address
    names no host (it reaches no database).
    """
    parts = urlsplit(base_url.strip())
    if not parts.hostname:
        return ""
    scheme = parts.scheme.lower()
    port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    path = parts.path.rstrip("/")
    return f"{parts.hostname}:{port}{path}"
