"""Dentrix Enterprise (11.0.2 Update 4 and later): payment plans."""

from .base import Product


class DentrixEnterprise(Product):
    key = "dentrix_enterprise"
    name = "Dentrix Enterprise"
    version = "11.0.2 Update 4"
    capabilities = ("payment_agreements", "ledger_notes", "several_plans_per_account", "plan_versions", "plan_names")
    record = "payment plan"
