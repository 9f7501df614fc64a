"""Webhook signatures: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>."""

import hashlib
import hmac

import pytest

from carecredit_bridge.signing import SIGNATURE_HEADER, InvalidSignature, sign, verify

SECRET = "whsec_current"
OLD_SECRET = "whsec_previous"
BODY = b'{"event_id": "evt_1", "type": "application.status_changed", "status": "APPROVED"}'
T = 1_767_225_600


def test_header_is_timestamp_and_hex_hmac_of_timestamp_dot_raw_body():
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()

    assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"
    assert SIGNATURE_HEADER == "CareCredit-Signature"


def test_valid_signature_passes():
    assert verify(sign(SECRET, BODY, T), BODY, [SECRET], now=T) is None


def test_signature_made_with_another_secret_is_rejected():
    with pytest.raises(InvalidSignature) as excinfo:
        verify(sign("whsec_attacker", BODY, T), BODY, [SECRET], now=T)

    assert excinfo.value.reason == "no matching signature"


def test_tampered_digest_is_rejected():
    header = sign(SECRET, BODY, T)
    tampered = header[:-1] + ("0" if header[-1] != "0" else "1")

    with pytest.raises(InvalidSignature, match="no matching signature"):
        verify(tampered, BODY, [SECRET], now=T)


def test_body_with_changed_whitespace_is_rejected():
    header = sign(SECRET, BODY, T)
    reformatted = BODY.replace(b", ", b",")

    with pytest.raises(InvalidSignature, match="no matching signature"):
        verify(header, reformatted, [SECRET], now=T)


def test_timestamp_is_signed_too():
    # Moving a valid digest to a fresh timestamp (a replay) must not verify.
    digest = sign(SECRET, BODY, T).split("v1=")[1]

    with pytest.raises(InvalidSignature, match="no matching signature"):
        verify(f"t={T + 100},v1={digest}", BODY, [SECRET], now=T + 100)


@pytest.mark.parametrize("offset", [301, -301, 10_000])
def test_timestamp_more_than_300_s_away_is_rejected(offset):
    # offset > 0: the signature is from the past; < 0: from the future.
    with pytest.raises(InvalidSignature) as excinfo:
        verify(sign(SECRET, BODY, T), BODY, [SECRET], now=T + offset)

    assert excinfo.value.reason == "timestamp outside tolerance"


@pytest.mark.parametrize("offset", [300, -300, 0, 299.9])
def test_timestamp_within_300_s_either_way_passes(offset):
    assert verify(sign(SECRET, BODY, T), BODY, [SECRET], now=T + offset) is None


def test_tolerance_can_be_narrowed():
    with pytest.raises(InvalidSignature, match="timestamp outside tolerance"):
        verify(sign(SECRET, BODY, T), BODY, [SECRET], now=T + 31, tolerance=30)
    assert verify(sign(SECRET, BODY, T), BODY, [SECRET], now=T + 30, tolerance=30) is None


def test_rotation_accepts_either_of_two_secrets():
    for signer in (SECRET, OLD_SECRET):
        assert verify(sign(signer, BODY, T), BODY, [SECRET, OLD_SECRET], now=T) is None

    with pytest.raises(InvalidSignature, match="no matching signature"):
        verify(sign(OLD_SECRET, BODY, T), BODY, [SECRET], now=T)


def test_header_may_carry_several_v1_entries_and_any_match_passes():
    good = sign(SECRET, BODY, T).split("v1=")[1]
    other = sign(OLD_SECRET, BODY, T).split("v1=")[1]

    assert verify(f"t={T},v1={'0' * 64},v1={good}", BODY, [SECRET], now=T) is None
    assert verify(f"t={T},v1={other},v1={good}", BODY, [OLD_SECRET], now=T) is None
    with pytest.raises(InvalidSignature, match="no matching signature"):
        verify(f"t={T},v1={'0' * 64},v1={'f' * 64}", BODY, [SECRET, OLD_SECRET], now=T)


def test_unknown_schemes_and_spaces_are_tolerated():
    good = sign(SECRET, BODY, T).split("v1=")[1]

    assert verify(f"t={T}, v0=deadbeef, v1={good}", BODY, [SECRET], now=T) is None


def test_empty_secret_is_never_a_valid_key():
    header = sign("", BODY, T)

    with pytest.raises(InvalidSignature, match="no webhook secret configured"):
        verify(header, BODY, ["", ""], now=T)
    with pytest.raises(InvalidSignature, match="no webhook secret configured"):
        verify(header, BODY, [], now=T)
    with pytest.raises(InvalidSignature, match="no matching signature"):
        verify(header, BODY, ["", SECRET], now=T)


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header_is_rejected(header):
    with pytest.raises(InvalidSignature) as excinfo:
        verify(header, BODY, [SECRET], now=T)

    assert excinfo.value.reason == "missing signature header"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "sha256=abcdef",
        f"t={T}",  # no v1
        "v1=" + "a" * 64,  # no t
        f"t={T},t={T},v1={'a' * 64}",  # two timestamps
        f"t=,v1={'a' * 64}",
        f"t=abc,v1={'a' * 64}",
        f"t=-{T},v1={'a' * 64}",
        f"t={T}.5,v1={'a' * 64}",
        f"t=１２３,v1={'a' * 64}",  # full-width digits
        f"t={'9' * 5000},v1={'a' * 64}",  # would blow int()'s digit limit
        f"t={T},,v1={'a' * 64}",
        ",",
        f"t={T},=x,v1={'a' * 64}",
    ],
)
def test_malformed_header_is_rejected(header):
    with pytest.raises(InvalidSignature) as excinfo:
        verify(header, BODY, [SECRET], now=T)

    assert excinfo.value.reason == "malformed signature header"


def test_non_ascii_signature_value_fails_cleanly():
    with pytest.raises(InvalidSignature, match="no matching signature"):
        verify(f"t={T},v1=é{'a' * 63}", BODY, [SECRET], now=T)


def test_invalid_signature_is_a_value_error_whose_message_never_quotes_the_body():
    body = b'{"applicant": "Zelda Canary"}'
    with pytest.raises(ValueError) as excinfo:
        verify(sign("whsec_other", body, T), body, [SECRET], now=T)

    assert isinstance(excinfo.value, InvalidSignature)
    assert str(excinfo.value) == "no matching signature"
    assert "Zelda" not in repr(excinfo.value)
