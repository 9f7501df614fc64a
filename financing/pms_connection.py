"""What a location's PMS connection reaches, in the words a billing clerk reads.

The location page's *Test connection* button and the check made when a location's PMS
settings are saved both ask the connection itself (`describe()` on the port: a connector's
`GET /v1/connector`, Open Dental's own answer) and hold what it reports against the
location's PMS product (`partners.pms_product`).

Nothing here shows the API key: a partner error's message never holds it (financing.ports
promises its messages are safe to show), and the connection's address is shown by its host
and port only (a base URL may carry a user and password).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import partners
from .models import PMS_KIND_CHOICES
from .ports import ConnectorInfo, PartnerError

log = logging.getLogger(__name__)

# What a connection says it can do (connector contract v2, Open Dental's answer), in words.
# A capability not listed here is shown with its underscores as spaces.
CAPABILITY_WORDS = {
    "several_plans_per_account": "several plans per account",
    "plan_versions": "plan versions",
    "plan_names": "plan names",
    "procedure_plans": "plans over procedures",
    "contracts": "payment plan contracts",
    "payment_agreements": "payment agreements",
    "ledger_notes": "ledger notes",
}
# What every connector can do: listed after what sets this product apart.
COMMON_CAPABILITIES = ("payment_agreements", "ledger_notes")
# Not what the product can do, but what it asks for before it takes a plan.
NEEDS_WORDS = {
    "needs_posted_production": "the treatment completed and posted to the ledger before a plan is written",
}


def kind_label(kind: str) -> str:
    """A PMS kind by its name in the registry, else by the model's choice label."""
    entry = partners.PMS_IMPLEMENTATIONS.get(kind)
    return entry["name"] if entry else dict(PMS_KIND_CHOICES).get(kind, kind)


def product_name(product: str) -> str:
    """The name of the product a connection reports (ConnectorInfo.product); "" if unknown."""
    for entry in partners.PMS_IMPLEMENTATIONS.values():
        if entry["product"] == product:
            return entry["name"]
    return ""


def host_of(base_url: str) -> str:
    """The connection's host and port as typed, never its user, password or path."""
    try:
        parts = urlsplit(base_url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        return "the base URL"
    if not host:
        return "the base URL"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


@dataclass(frozen=True)
class ConnectionReport:
    """What the connection said (`found`), or why it could not say (`problem`); `mismatch`
    when the product it reports is not the location's."""

    found: str = ""
    problem: str = ""
    mismatch: str = ""

    @property
    def matches(self) -> bool:
        return bool(self.found) and not self.problem and not self.mismatch


def check(location) -> ConnectionReport:
    """Ask the location's PMS connection what it is, and compare with the location's product.

    Never raises for anything the connection does or answers: a clerk gets a sentence.
    """
    kind = location.pms_kind
    if kind not in partners.PMS_IMPLEMENTATIONS:
        return ConnectionReport(problem=f"Chairside cannot connect to {kind_label(kind)} yet: choose another PMS product.")
    host = host_of(location.pms_base_url)
    try:
        info = partners.pms_for(location).describe()
    except PartnerError as exc:
        if exc.status == 401:
            return ConnectionReport(problem=f"The connection at {host} refused the API key (HTTP 401): check the key.")
        # The client's words say what failed (unreachable, timed out, a connector that
        # cannot say what it is, an Open Dental key without a permission): no PHI, no key.
        return ConnectionReport(problem=f"Checking the connection at {host} failed: {_sentence(exc)}")
    except Exception:
        # A client that cannot read the answer should say so with a PartnerError; if one
        # slips through, the page still answers (the log has the traceback, no key).
        log.exception("describe() failed for location %s", location.pk)
        return ConnectionReport(problem=f"Checking the connection at {host} failed inside Chairside; the server log has the details.")
    return _compare(location, info, host)


def _compare(location, info: ConnectorInfo, host: str) -> ConnectionReport:
    if not info.product:
        return ConnectionReport(problem=f"The connection at {host} answered but does not say which product it is.")
    name = product_name(info.product)
    found = describe_info(info)
    expected = partners.pms_product(location)
    if info.product == expected:
        return ConnectionReport(found=found)
    shown = name or f"{info.product!r} (a product Chairside does not know)"
    return ConnectionReport(
        found=found,
        mismatch=f"This connection is {shown}, not {partners.pms_name(location)}. "
        f"Choose the PMS product the connection serves, or the connection of a {partners.pms_name(location)} database.",
    )


def describe_info(info: ConnectorInfo) -> str:
    """ "Dentrix Enterprise 11.0.2 Update 4, practice database sandbox-dentrix_enterprise;
    can: several plans per account, plan versions, …" """
    name = product_name(info.product) or repr(info.product)
    words = f"{name} {info.version}".strip() if info.version else name
    database = info.database_id or "(not named by the connection)"
    text = f"{words}, practice database {database}"
    special = [c for c in info.capabilities if c not in NEEDS_WORDS and c not in COMMON_CAPABILITIES]
    common = [c for c in COMMON_CAPABILITIES if c in info.capabilities]
    can = [CAPABILITY_WORDS.get(c, c.replace("_", " ")) for c in special + common]
    needs = [NEEDS_WORDS[c] for c in info.capabilities if c in NEEDS_WORDS]
    if can:
        text += "; can: " + ", ".join(can)
    if needs:
        text += "; needs " + ", ".join(needs)
    return text + "."


def _sentence(exc: PartnerError) -> str:
    text = str(exc).strip()
    return text if text.endswith((".", "?", "!")) else text + "."
