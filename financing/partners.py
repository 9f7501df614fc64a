"""The registry of partner implementations, and the one place that builds their clients.

Adding Open Dental or a second lender is a new entry here plus its bridge package.
"""

from django.conf import settings
from django.utils.module_loading import import_string

from .ports import AgreementRequest, LedgerNoteType, Lender, PracticeManagementSystem

PMS_IMPLEMENTATIONS = {
    "dentrix": {
        "client": "dentrix_bridge.client.DentrixConnectorClient",
        "agreement_rules": "dentrix_bridge.rules.validate_agreement",
        "note_rules": "dentrix_bridge.rules.validate_ledger_note",
    },
}
LENDER_IMPLEMENTATIONS = {
    "carecredit": {"client": "carecredit_bridge.client.CareCreditClient", "webhook_path": "/api/v1/webhooks/carecredit/"},
}


def _timeouts() -> dict:
    return {"connect_timeout": settings.PARTNER_CONNECT_TIMEOUT, "read_timeout": settings.PARTNER_READ_TIMEOUT}


def pms_for(location) -> PracticeManagementSystem:
    client = import_string(PMS_IMPLEMENTATIONS[location.pms_kind]["client"])
    return client(location.pms_base_url, location.pms_api_key, **_timeouts())


def lender_for(location) -> Lender:
    client = import_string(LENDER_IMPLEMENTATIONS[location.lender_kind]["client"])
    return client(location.lender_base_url, location.lender_client_id, location.lender_client_secret, **_timeouts())


def lender_callback_url(location) -> str:
    return settings.CHAIRSIDE_PUBLIC_URL + LENDER_IMPLEMENTATIONS[location.lender_kind]["webhook_path"]


def agreement_problems(location, request: AgreementRequest) -> dict[str, str]:
    """What the location's PMS would reject in this agreement (field → message)."""
    return import_string(PMS_IMPLEMENTATIONS[location.pms_kind]["agreement_rules"])(request)


def note_problems(location, note_type: LedgerNoteType, text: str) -> dict[str, str]:
    return import_string(PMS_IMPLEMENTATIONS[location.pms_kind]["note_rules"])(note_type, text)
