"""One demo case's plan and what the lender offers for it, drawn from a seeded RNG."""

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from ..models import CROCKFORD
from ..ports import Offer, PromotionKind
from ..services.decision import offer_json
from . import catalogue

D = Decimal
CENT = D("0.01")
# CareCredit's promotions as the sandbox offers them: deferred interest from $200, reduced
# APR (17.90%) from $1,000 (sandboxes/carecredit/personas.py says the same for its side).
DEFERRED_MONTHS, DEFERRED_MIN = (6, 12, 18, 24), D("200.00")
REDUCED_MONTHS, REDUCED_MIN, REDUCED_APR = (24, 36, 48, 60), D("1000.00"), D("17.90")
PARTIAL_SHARE = D("0.60")


@dataclass
class Plan:
    reference: str
    patient_id: str
    guarantor_id: str
    plan_id: str
    short_name: str
    procedures: list
    total: Decimal
    down_payment: Decimal
    promotion: str
    consents: bool
    application_id: str
    extra: dict = field(default_factory=dict)

    @property
    def requested(self) -> Decimal:
        return self.total - self.down_payment


def reference(rng) -> str:
    # Drawn from the seeded RNG, so a rerun finds the same references (and adds nothing).
    return "CS-" + "".join(rng.choice(CROCKFORD) for _ in range(8))


def draw_plan(rng, n: int, *, minor_share=0.08) -> Plan:
    """The n-th demo patient's accepted plan: one major procedure, sometimes a few minor ones."""
    code, _, fee, toothed = rng.choice(catalogue.MAJOR)
    items = [(code, fee, toothed)]
    for code, _, fee, toothed in rng.sample(catalogue.MINOR, rng.choice([0, 0, 1, 1, 2])):
        items.append((code, fee, toothed))
    procedures = [
        {"code": code, "tooth": rng.choice(catalogue.TEETH) if toothed else "", "surface": "O" if code == "D2391" else "", "fee": f"{fee:.2f}"}
        for code, fee, toothed in items
    ]
    total = sum((fee for _, fee, _ in items), D("0.00"))
    down = D("0.00")
    if rng.random() < 0.3:
        down = min(D(rng.choice([100, 150, 200, 250, 300, 500])), (total * D("0.25")).quantize(D("1")))
    if total >= D("3000.00"):
        promotion = rng.choice(["reduced_apr_36", "reduced_apr_48", "reduced_apr_60", "deferred_24"])
    elif total >= D("1200.00"):
        promotion = rng.choice(["deferred_12", "deferred_12", "deferred_18", "reduced_apr_24"])
    else:
        promotion = rng.choice(["deferred_6", "deferred_12", "deferred_12"])
    patient_id = str(catalogue.FIRST_PATIENT_ID + n)
    guarantor = str(catalogue.FIRST_GUARANTOR_ID + n) if rng.random() < minor_share else patient_id
    return Plan(
        reference=reference(rng),
        patient_id=patient_id,
        guarantor_id=guarantor,
        plan_id=str(catalogue.FIRST_PLAN_ID + n),
        short_name=f"{rng.choice(catalogue.FIRST_NAMES)} {rng.choice(catalogue.INITIALS)}.",
        procedures=procedures,
        total=total,
        down_payment=down,
        promotion=promotion,
        consents=rng.random() < 0.7,
        application_id="app_" + "".join(rng.choice("0123456789abcdef") for _ in range(16)),
    )


def approved_amount(plan: Plan, *, partial: bool) -> Decimal:
    if partial:
        return (plan.requested * PARTIAL_SHARE).quantize(CENT, rounding=ROUND_HALF_UP)
    return plan.requested


def credit_limit(approved: Decimal) -> Decimal:
    steps = (approved / D("500")).to_integral_value(rounding=ROUND_CEILING)
    return (steps * D("500")).quantize(CENT)


def offers_for(amount: Decimal) -> list[dict]:
    """The promotions an approval of `amount` qualifies for, as the decision stores them."""
    offers = []
    if amount >= DEFERRED_MIN:
        offers += [Offer(f"deferred_{m}", PromotionKind.DEFERRED, m, D("0.00"), DEFERRED_MIN) for m in DEFERRED_MONTHS]
    if amount >= REDUCED_MIN:
        offers += [Offer(f"reduced_apr_{m}", PromotionKind.REDUCED_APR, m, REDUCED_APR, REDUCED_MIN) for m in REDUCED_MONTHS]
    return [offer_json(o) for o in offers]


def fit_promotion(plan: Plan, approved: Decimal):
    """A coordinator picks a promotion the approval can carry (the demo's completed cases
    are the ones where it could)."""
    codes = {o["code"] for o in offers_for(approved)}
    if plan.promotion not in codes:
        plan.promotion = "deferred_12" if "deferred_12" in codes else sorted(codes)[0]
