"""Dentrix Ascend (cloud): payment plans over posted procedures."""

from .base import Product


class DentrixAscend(Product):
    key = "dentrix_ascend"
    name = "Dentrix Ascend"
    version = "cloud"
    capabilities = ("payment_agreements", "ledger_notes", "procedure_plans", "needs_posted_production")
    record = "payment plan"
