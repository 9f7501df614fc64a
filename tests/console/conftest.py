import pytest

from tests.console.console_factories import billing_user, plain_location


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Sign-in tests log in many times; the production hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def main(template):
    """A location wired to nothing (its partners' address is the discard port)."""
    return plain_location(template, "main")


@pytest.fixture
def ann(main):
    """Ann, billing at `main`, with the console permissions of the demo's billing group."""
    return billing_user("ann", main)
