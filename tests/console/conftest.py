import pytest


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Sign-in tests log in many times; the production hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
