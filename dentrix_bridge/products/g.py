"""Dentrix G-series: the contract's v1 rules as they are (one active agreement per account,
checked by the connector; intervals weekly, biweekly, semimonthly, monthly)."""

from financing.ports import Agreement, AgreementRequest

from .. import rules

KEY = "dentrix_g"
NAME = "Dentrix"
RECORD = "payment agreement"

validate_agreement = rules.validate_agreement


def request_fields(request: AgreementRequest) -> dict:
    return {}


def stored_differences(request: AgreementRequest, stored: Agreement) -> list[tuple[str, str, str]]:
    return []
