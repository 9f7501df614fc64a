"""`manage.py simulate` against the running system (a real worker, the web app, the
sandboxes): every persona settles as it implies, and some cases end needing attention
through what the PMS holds or says, not by a state written for them; by default the cases
spread over every live location, each checked in its own product's shape."""

import io

import pytest
from django.core.management import call_command

from financing import partners, reasons
from financing.models import CaseState, FinancedCase, Location, TemplateOverride
from sandboxes.dentrix import serve_in_thread
from sandboxes.management.commands import simulate as simulate_command
from tests.conftest import make_location, make_user
from tests.test_integration import worker  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def simulate(location, cases):
    out = io.StringIO()
    call_command("simulate", cases=cases, location=location.code, timeout=90, seed=7, stdout=out)
    return out.getvalue()


def simulate_everywhere(cases, timeout=90):
    out = io.StringIO()
    call_command("simulate", cases=cases, timeout=timeout, seed=7, stdout=out)
    return out.getvalue()


def test_simulate_ends_some_cases_needing_attention_through_the_sandboxes(worker, template, sandboxes):  # noqa: F811
    main = make_location(template, sandboxes, code="main")
    make_user("cora", main)
    output = simulate(main, 12)

    assert "All 12 cases settled as their personas imply." in output
    stopped = FinancedCase.objects.filter(location=main, state=CaseState.NEEDS_ATTENTION)
    kinds = sorted(reasons.kind_of(case.state_reason) for case in stopped)
    assert kinds == ["agreement_exists", "agreement_refused"]
    assert "Needs attention, as their personas imply" in output
    # Dentrix holds only the hand-typed agreement for the first, nothing of Chairside's for either.
    for case in stopped:
        ours = [a for a in sandboxes.agreements(case.guarantor_id) if case.marker in a["note"]]
        assert ours == []
    assert FinancedCase.objects.filter(location=main, state=CaseState.COMPLETED).count() == 7


def test_in_shadow_mode_the_same_personas_complete(worker, template, sandboxes):  # noqa: F811
    south = make_location(template, sandboxes, code="south", mode=Location.Mode.SHADOW)
    make_user("sol", south)
    output = simulate(south, 12)
    assert "All 12 cases settled as their personas imply." in output
    assert not FinancedCase.objects.filter(location=south, state=CaseState.NEEDS_ATTENTION).exists()


def test_by_default_cases_spread_over_every_live_location(worker, template, sandboxes, monkeypatch):  # noqa: F811
    main = make_location(template, sandboxes, code="main")
    north = make_location(template, sandboxes, code="north", merchant_number="5348120000000002")
    south = make_location(template, sandboxes, code="south", mode=Location.Mode.SHADOW)
    # A PMS whose sandbox has no simulation plug-in: skipped, never the others' failure.
    od = make_location(template, sandboxes, code="od", pms_kind="opendental")
    monkeypatch.setitem(simulate_command.PRACTICES, "opendental", "sandboxes.nowhere.simulation.Practice")
    for user, site in (("cora", main), ("nora", north), ("sol", south), ("odo", od)):
        make_user(user, site)

    output = simulate_everywhere(24)

    assert "Skipping od: No module named 'sandboxes.nowhere'." in output
    assert "All 24 cases settled as their personas imply." in output
    for site in (main, north):  # each gets the whole persona mix
        assert FinancedCase.objects.filter(location=site).count() == 12
        assert FinancedCase.objects.filter(location=site, state=CaseState.COMPLETED).count() == 7
        assert FinancedCase.objects.filter(location=site, state=CaseState.NEEDS_ATTENTION).count() == 2
        assert f"  {site.code}, the Dentrix sandbox: 12 cases" in output
    assert not FinancedCase.objects.filter(location__in=[south, od]).exists()
    assert output.count("verified in the Dentrix sandbox: 7 completed cases with exactly one record") == 2


def test_location_limits_the_run_to_one(worker, template, sandboxes):  # noqa: F811
    main = make_location(template, sandboxes, code="main")
    north = make_location(template, sandboxes, code="north", merchant_number="5348120000000002")
    make_user("cora", main)
    make_user("nora", north)
    output = simulate(north, 3)
    assert "All 3 cases settled as their personas imply." in output
    assert FinancedCase.objects.filter(location=north).count() == 3
    assert not FinancedCase.objects.filter(location=main).exists()


CONNECTOR_KINDS = ("dentrix_enterprise", "dentrix_ascend", "eaglesoft")


@pytest.fixture
def connector_sandboxes():
    running = {kind: serve_in_thread(port=0, product=kind) for kind in CONNECTOR_KINDS}
    yield running
    for server in running.values():
        server.stop()


@pytest.fixture
def quick_production_checks(monkeypatch):
    """The worker (started after this fixture) asks for posted production every 2 s."""
    monkeypatch.setenv("PRODUCTION_CHECK_SECONDS", "2")


@pytest.mark.skipif(
    not set(CONNECTOR_KINDS) <= set(partners.PMS_IMPLEMENTATIONS),
    reason="the connector products' registry entries are not in financing.partners yet",
)
def test_every_connector_product_settles_in_its_own_shape(
    quick_production_checks, connector_sandboxes, worker, template, sandboxes,  # noqa: F811
):
    g = make_location(template, sandboxes, code="g")
    make_user("gina", g)
    sites = {"g": g}
    for number, kind in enumerate(CONNECTOR_KINDS, start=4):
        site = make_location(
            template, sandboxes, code=kind, pms_kind=kind, pms_base_url=connector_sandboxes[kind].base_url,
            merchant_number=f"534812000000000{number}",
        )
        make_user(f"coordinator-{kind}", site)
        sites[kind] = site
    # Ascend starts a plan one month before its first payment: a first payment on the 1st always has one.
    TemplateOverride.objects.create(location=sites["dentrix_ascend"], first_payment_day_of_month=1)

    output = simulate_everywhere(48, timeout=240)

    assert "All 48 cases settled as their personas imply." in output
    # Enterprise keeps several plans: the hand-typed one does not stop the case.
    expected = {"g": (7, 2), "dentrix_enterprise": (8, 1), "dentrix_ascend": (7, 2), "eaglesoft": (7, 2)}
    for code, (completed, attention) in expected.items():
        cases = FinancedCase.objects.filter(location=sites[code])
        assert (cases.filter(state=CaseState.COMPLETED).count(), cases.filter(state=CaseState.NEEDS_ATTENTION).count()) == (
            completed, attention,
        ), code
    # Where the product needs posted production, every completed case waited for it.
    for code in ("dentrix_ascend", "eaglesoft"):
        completed = FinancedCase.objects.filter(location=sites[code], state=CaseState.COMPLETED)
        assert all(case.production_awaited_at and case.production_posted_at for case in completed), code
    assert "verified in the Eaglesoft sandbox: 7 completed cases" in output
    assert "verified in the Dentrix Enterprise sandbox: 8 completed cases" in output
