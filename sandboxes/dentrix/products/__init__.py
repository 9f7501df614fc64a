"""The connector products the sandbox can be, one per process (CONTRACT.md v2).

A real connector serves one product's database; so does a sandbox: ``--product`` (or
``DENTRIX_SANDBOX_PRODUCT``) picks which, default ``dentrix_g``. Each product is a class
holding what the connector says about itself (`GET /v1/connector`), what it calls its
record ("payment agreement", "payment plan", "payment plan contract") and its own rules
for writing and changing one. The G-series is the base; the others change what differs.
"""

from __future__ import annotations

from .base import Product
from .g import DentrixG

DEFAULT_PRODUCT = "dentrix_g"


def _all() -> dict[str, type[Product]]:
    from .ascend import DentrixAscend
    from .eaglesoft import Eaglesoft
    from .enterprise import DentrixEnterprise

    return {cls.key: cls for cls in (DentrixG, DentrixEnterprise, DentrixAscend, Eaglesoft)}


PRODUCTS = _all()


def product(key: str) -> Product:
    """The product called `key`; a ValueError naming the choices for anything else."""
    try:
        return PRODUCTS[key]()
    except KeyError:
        raise ValueError(f"unknown product {key!r}: choose one of {', '.join(PRODUCTS)}") from None


__all__ = ["DEFAULT_PRODUCT", "PRODUCTS", "Product", "product"]
