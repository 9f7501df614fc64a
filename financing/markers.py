"""The marker Chairside puts in every record it writes to a partner: `[chairside:CS-…]`.

It is how a write is made exactly once (lookup-before-write finds the record an earlier,
interrupted attempt may have made) and how shadow mode tells a hand-entered agreement from
one of ours. Written here, and only here.
"""

PREFIX = "[chairside:"


def marker_for(reference: str) -> str:
    return f"{PREFIX}{reference}]"


def posting_marker(reference: str, kind: str, number: int | None = None) -> str:
    """The marker of one ledger posting of a case: `[chairside:CS-…/payment]`,
    `[chairside:CS-…/merchant_fee]`, `[chairside:CS-…/refund-2]`. A case's own marker is never
    a substring of it (the `]` differs), so a case's note and its postings are told apart."""
    suffix = kind if number is None else f"{kind}-{number}"
    return f"{PREFIX}{reference}/{suffix}]"


def is_ours(text: str | None) -> bool:
    """Whether a partner record's note or text carries any Chairside marker."""
    return PREFIX in (text or "")


def find_by_marker(records, marker: str):
    """The first record (agreement or ledger note) whose note or text carries `marker`."""
    return next((r for r in records if marker in (getattr(r, "note", None) or getattr(r, "text", ""))), None)
