"""Dentrix G-series: the contract's v1 rules, unchanged (one active agreement per account)."""

from .base import Product


class DentrixG(Product):
    """Everything as `Product` states it."""
