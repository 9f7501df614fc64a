"""Eaglesoft (Patterson): payment plan contracts over the past-service balance."""

from .base import Product


class Eaglesoft(Product):
    key = "eaglesoft"
    name = "Eaglesoft"
    version = "24.00"
    capabilities = ("payment_agreements", "ledger_notes", "needs_posted_production", "contracts")
    record = "payment plan contract"
