"""The registry of partner implementations, and the one place that builds their clients.

Adding Open Dental or a second lender is a new entry here plus its bridge package.

Every client built here paces itself through the shared per-connection rate limit
(`ratelimit.acquire` before each request), and is kept for reuse by the thread that built it:
a client holds a `requests.Session`, and reusing its kept-alive connections saves a TCP
connect (and, in production, a TLS handshake) on every partner call.
"""

import os
import threading

from django.conf import settings
from django.utils.module_loading import import_string

from . import ratelimit
from .ports import AgreementRequest, LedgerNoteType, Lender, PracticeManagementSystem
from .terms import fit_level_payment

# Keyed by Location.pms_kind (models.PMS_KIND_CHOICES): one entry per PMS product.
#   name         what a clerk reads in a reason: "Dentrix refused the ledger note"
#   product      what the product's connection reports itself as (ConnectorInfo.product)
#   record       what the product calls the arrangement record ("payment agreement")
#   plans_per_account   1: a second record on the account needs the billing team;
#                None: the product keeps several (Dentrix Enterprise): write beside them
#   plans_counted   which records count against that one: "active" ones (a closed one is
#                history), or "any", whatever its status (Dentrix Ascend: one per guarantor)
#   needs_posted_production   the product writes a plan only over completed, posted
#                procedures: a case approved before treatment waits (AWAITING_PRODUCTION),
#                and its agreement_rules also get the plan's procedures as the PMS holds
#                them now (`procedures=`), to check they are posted
#   ids          how the case page names the product's ids: patient, arrangement, note
#   client, client_options   the client's dotted path, and what it is built with beyond
#                the connection (the connector product it writes for)
#   agreement_rules, note_rules   (request) -> {field: message}: what the product refuses
#   stored_differences   (request, stored) -> [(label, sent, stored)]: the product's own
#                fields the read-back compares, beyond the terms every product stores
#   level_payment_never_exceeded   (optional) the product charges the level payment until the
#                plan is paid and never more (Open Dental): see fit_terms
#   schedule_in_office_time   (optional) the product's appointment times carry no zone: its
#                client is built with the location's time zone (Open Dental)
_CONNECTOR = {
    "client": "dentrix_bridge.client.DentrixConnectorClient",
    # (base_url, api_key) -> the practice database's name: see pms_identity.
    "identity": "dentrix_bridge.identity.practice_database",
    "note_rules": "dentrix_bridge.rules.validate_ledger_note",
}


def _connector_product(module: str, product: str, **entry) -> dict:
    """A connector product's entry: one client for all four, told which product it writes for."""
    return {
        **_CONNECTOR,
        "product": product,
        "client_options": {"product": product},
        "agreement_rules": f"dentrix_bridge.products.{module}.validate_agreement",
        "stored_differences": f"dentrix_bridge.products.{module}.stored_differences",
        **entry,
    }


PMS_IMPLEMENTATIONS = {
    "dentrix": _connector_product(
        "g", "dentrix_g",
        name="Dentrix",
        record="payment agreement",
        plans_per_account=1,
        plans_counted="active",
        needs_posted_production=False,
        ids={"patient": "Patient ID", "arrangement": "Payment agreement ID", "note": "Ledger note ID"},
    ),
    "dentrix_enterprise": _connector_product(
        "enterprise", "dentrix_enterprise",
        name="Dentrix Enterprise",
        record="payment plan",
        plans_per_account=None,
        plans_counted="active",
        needs_posted_production=False,
        ids={"patient": "Patient ID", "arrangement": "Payment plan ID", "note": "Ledger note ID"},
    ),
    "dentrix_ascend": _connector_product(
        "ascend", "dentrix_ascend",
        name="Dentrix Ascend",
        record="payment plan",
        plans_per_account=1,
        plans_counted="any",
        needs_posted_production=True,
        ids={"patient": "Patient ID", "arrangement": "Payment plan ID", "note": "Ledger note ID"},
    ),
    "eaglesoft": _connector_product(
        "eaglesoft", "eaglesoft",
        name="Eaglesoft",
        record="payment plan contract",
        plans_per_account=1,
        plans_counted="active",
        needs_posted_production=True,
        ids={"patient": "Patient ID", "arrangement": "Contract ID", "note": "Ledger note ID"},
    ),
    # Open Dental's own API (opendental_bridge/README.md): a Dynamic payment plan over the
    # plan's procedures, a commlog for the ledger note. It keeps several plans per account
    # (the conflict is a procedure already on a plan) and links treatment-planned procedures.
    "opendental": {
        "name": "Open Dental",
        "product": "opendental",
        "record": "payment plan",
        "plans_per_account": None,
        "needs_posted_production": False,
        "ids": {"patient": "PatNum", "arrangement": "PayPlanNum", "note": "CommlogNum"},
        "client": "opendental_bridge.client.OpenDentalClient",
        # The customer key's id (a keyed hash), never the key: see opendental_bridge/identity.py.
        "identity": "opendental_bridge.identity.practice_database",
        "agreement_rules": "opendental_bridge.rules.validate_agreement",
        # Charges PayAmt until the plan is paid, never more: see partners.fit_terms.
        "level_payment_never_exceeded": True,
        # Appointment times come without a zone: the client reads them in the location's.
        "schedule_in_office_time": True,
        "stored_differences": "opendental_bridge.rules.stored_differences",
        "note_rules": "opendental_bridge.rules.validate_ledger_note",
    },
}
LENDER_IMPLEMENTATIONS = {
    "carecredit": {
        "name": "CareCredit",
        "client": "carecredit_bridge.client.CareCreditClient",
        "webhook_path": "/api/v1/webhooks/carecredit/",
        # Has list_changed_decisions: the poller asks once per merchant, not once per case.
        "batch_decisions": True,
    },
}


def _timeouts() -> dict:
    return {"connect_timeout": settings.PARTNER_CONNECT_TIMEOUT, "read_timeout": settings.PARTNER_READ_TIMEOUT}


_clients = threading.local()
MAX_CACHED_CLIENTS = 256  # per thread; a client is cheap to rebuild


def _cached(key: tuple, build):
    """The client for `key` built by this thread (in this process), else a new one.

    The key holds everything the client is built from, so a location whose URL, key or
    rate changes in the admin gets a new client on its next call.
    """
    if getattr(_clients, "pid", None) != os.getpid():
        # A forked process must not share its parent's sockets.
        _clients.pid, _clients.cache = os.getpid(), {}
    client = _clients.cache.get(key)
    if client is None:
        if len(_clients.cache) >= MAX_CACHED_CLIENTS:
            _clients.cache.clear()
        client = _clients.cache[key] = build()
    return client


def _pacer(limit_key: str, rate):
    """What a client calls before each request: wait for a slot on the connection."""
    if not settings.PARTNER_RATE_LIMITS:
        return None
    rate = float(rate)
    return lambda: ratelimit.acquire(limit_key, rate)


def pms_for(location) -> PracticeManagementSystem:
    timeouts = _timeouts()
    key = (
        "pms", location.pms_kind, location.pms_base_url, location.pms_api_key, location.pms_requests_per_second,
        location.timezone, settings.PARTNER_RATE_LIMITS, tuple(timeouts.values()),
    )

    def build():
        # The kind is in the key, and the entry's client options follow from the kind (the
        # product a connector client writes for): a location switched to another product
        # gets a new client.
        entry = PMS_IMPLEMENTATIONS[location.pms_kind]
        client = import_string(entry["client"])
        # One connection = one base URL and credential, whichever locations share it.
        limit_key = ratelimit.connection_key("pms", location.pms_base_url, location.pms_api_key)
        # A product whose schedule comes without a zone (Open Dental) reads it in the office's.
        zone = {"time_zone": location.timezone} if entry.get("schedule_in_office_time") else {}
        return client(
            location.pms_base_url, location.pms_api_key, **entry.get("client_options", {}), **zone,
            before_request=_pacer(limit_key, location.pms_requests_per_second), **timeouts,
        )

    return _cached(key, build)


def lender_for(location) -> Lender:
    timeouts = _timeouts()
    key = (
        "lender", location.lender_kind, location.lender_base_url, location.lender_client_id,
        location.lender_client_secret, location.merchant_number, location.lender_requests_per_second,
        settings.PARTNER_RATE_LIMITS, tuple(timeouts.values()),
    )

    def build():
        client = import_string(LENDER_IMPLEMENTATIONS[location.lender_kind]["client"])
        # A lender throttles per merchant.
        limit_key = ratelimit.connection_key("lender", location.lender_base_url, location.merchant_number)
        return client(
            location.lender_base_url, location.lender_client_id, location.lender_client_secret,
            before_request=_pacer(limit_key, location.lender_requests_per_second), **timeouts,
        )

    return _cached(key, build)


def pms_name(location) -> str:
    """The location's practice management system as its staff call it ("Dentrix")."""
    return PMS_IMPLEMENTATIONS[location.pms_kind]["name"]


def _pms(location) -> dict:
    return PMS_IMPLEMENTATIONS[location.pms_kind]


def pms_product(location) -> str:
    """The product the location's PMS connection must report (ConnectorInfo.product)."""
    return _pms(location)["product"]


def pms_record_name(location) -> str:
    """What the location's PMS calls the arrangement record ("payment agreement")."""
    return _pms(location)["record"]


def pms_allows_several_plans(location) -> bool:
    """Whether the product keeps several active records on one account."""
    return _pms(location)["plans_per_account"] is None


def pms_records_in_the_way(location, records) -> list:
    """The records already on the account that leave no room for another (the first one is
    the one to name): none where the product keeps several; else those that count against
    its one (`plans_counted`: the active ones, or any whatever its status)."""
    entry = _pms(location)
    if entry["plans_per_account"] is None:
        return []
    counted = entry.get("plans_counted", "active")
    return [r for r in records if counted == "any" or r.status == counted]


def pms_counts_any_status(location) -> bool:
    """Whether a closed record still counts against the product's one per account."""
    return _pms(location).get("plans_counted", "active") == "any"


def pms_needs_posted_production(location) -> bool:
    """Whether the product writes a plan only over completed, posted procedures."""
    return bool(_pms(location)["needs_posted_production"])


def pms_id_labels(location) -> dict[str, str]:
    """How the case page names the PMS's ids (patient, arrangement, note)."""
    return _pms(location)["ids"]


def pms_identity(location) -> str:
    """The practice database the location's PMS connection reaches, as a stable string:
    locations sharing one database (the clinics of a Dentrix Enterprise or Open Dental
    database, sites sharing a connector) share it, whatever each location calls it.

    Each PMS implementation names its databases (its "identity" entry, given the location's
    base URL and API key): a Dentrix connector by its normalised address; Open Dental would
    use its customer key's id, never the key itself (an identity is stored in the clear).
    The kind prefixes it, so two kinds of PMS never share a name. No network call: intake
    needs it even when the PMS is down.
    """
    name = import_string(PMS_IMPLEMENTATIONS[location.pms_kind]["identity"])(location.pms_base_url, location.pms_api_key)
    if not name:
        raise ValueError(f"{pms_name(location)} gave no practice database identity for location {location.code}")
    return f"{location.pms_kind}:{name}"


def lender_name(location) -> str:
    """The location's lender as its staff call it ("CareCredit")."""
    return LENDER_IMPLEMENTATIONS[location.lender_kind]["name"]


def lender_lists_changes(location) -> bool:
    """Whether the location's lender can list changed decisions per merchant (batch poll)."""
    return bool(LENDER_IMPLEMENTATIONS[location.lender_kind].get("batch_decisions"))


def lender_callback_url(location) -> str:
    return settings.CHAIRSIDE_PUBLIC_URL + LENDER_IMPLEMENTATIONS[location.lender_kind]["webhook_path"]


def agreement_problems(location, request: AgreementRequest, *, procedures=None) -> dict[str, str]:
    """What the location's PMS would reject in this agreement (field → message).

    `procedures`: the plan's procedures as the PMS holds them now, for a product that writes
    only over posted production (its rules check them); None when not read."""
    rules = import_string(PMS_IMPLEMENTATIONS[location.pms_kind]["agreement_rules"])
    if procedures is None:
        return rules(request)
    return rules(request, procedures=procedures)


def fit_terms(location, terms):
    """The computed terms as the location's PMS can hold them. A product that charges the
    level payment and never more (its entry's "level_payment_never_exceeded": Open Dental)
    cannot hold a last payment larger than the rest: the payment goes up to the next cent
    that fits (`terms.fit_level_payment`). The arrangement then records, writes and reads
    back exactly what the PMS holds."""
    if _pms(location).get("level_payment_never_exceeded"):
        return fit_level_payment(terms)
    return terms


def stored_differences(location, request: AgreementRequest, stored) -> list[tuple[str, str, str]]:
    """The product's own fields of a stored record that differ from what was sent, as
    (label, sent, stored); the terms every product stores are compared by the caller."""
    path = _pms(location).get("stored_differences")
    return import_string(path)(request, stored) if path else []


def note_problems(location, note_type: LedgerNoteType, text: str) -> dict[str, str]:
    return import_string(PMS_IMPLEMENTATIONS[location.pms_kind]["note_rules"])(note_type, text)
