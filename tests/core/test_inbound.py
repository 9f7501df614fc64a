"""core.inbound's JSON reader: the same value as json.loads for any JSON it accepts, and a
MalformedBody naming the problem for anything else (the API and webhook tests prove the
400s end to end)."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from core.inbound import MAX_DEPTH, MalformedBody, id_param, nesting_depth, parse_json

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=False, allow_infinity=False),
    # Strings full of the characters a bracket counter could trip on.
    st.text(alphabet=st.sampled_from('[]{}"\\,:ab é😀\n\t\x00'), max_size=12), st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=40)


def depth_of(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


@given(value=values, ascii_only=st.booleans())
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
def test_any_json_reads_as_json_loads_reads_it_and_its_depth_is_exact(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert nesting_depth(text) == depth_of(value)
    if depth_of(value) > MAX_DEPTH:
        with pytest.raises(MalformedBody):
            parse_json(text.encode())
    else:
        assert parse_json(text.encode()) == json.loads(text)


@pytest.mark.parametrize("raw", [
    b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
    b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH,
    b'["' + b"[" * 1000 + b'"]',  # brackets in a string are text
    b'["\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\\"]',  # escaped quotes do not end it
    b"\xef\xbb\xbf" + b'{"ok": true}',  # a byte order mark is dropped
    b'["\\ud83d\\ude00"]',  # a surrogate pair is one character
    b"[1e308, -1e308, 1" + b"0" * 99 + b"]",
])
def test_accepted(raw):
    assert parse_json(raw) is not None


@pytest.mark.parametrize("raw, message", [
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"The body nests arrays or objects deeper than {MAX_DEPTH} levels."),
    (b"[" * 100_000 + b"]" * 100_000, f"The body nests arrays or objects deeper than {MAX_DEPTH} levels."),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, f"The body nests arrays or objects deeper than {MAX_DEPTH} levels."),
    (b'{"a": "\xff"}', "The body is not UTF-8 text."),
    ('{"a": "é"}'.encode("utf-16"), "The body is not UTF-8 text."),
    (b'["\\ud800"]', "The body holds a \\u escape that is no Unicode character (a lone surrogate)."),
    (b'{"\\udfff": 1}', "The body holds a \\u escape that is no Unicode character (a lone surrogate)."),
    (b"[1e999999]", "A number is out of range."),
    (b"[-1e400]", "A number is out of range."),
    (b"[" + b"9" * 101 + b"]", "A number is longer than 100 characters."),
    (b"[" + b"9" * 10_000 + b"]", "A number is longer than 100 characters."),
    (b"[NaN]", "NaN is not a JSON number."),
    (b"[-Infinity]", "-Infinity is not a JSON number."),
    (b"{", "The body is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    (b"", "The body is not JSON: Expecting value: line 1 column 1 (char 0)"),
])
def test_refused(raw, message):
    with pytest.raises(MalformedBody) as caught:
        parse_json(raw)
    assert str(caught.value) == message


def test_a_size_limit_is_checked_before_anything_else():
    with pytest.raises(MalformedBody, match="^The body is larger than 10 bytes.$"):
        parse_json(b"[" * 11, max_bytes=10)
    assert parse_json(b"[1,2,3,45]", max_bytes=10) == [1, 2, 3, 45]


@pytest.mark.parametrize("value, expected", [
    ("7", 7), ("0007", 7), ("9" * 18, int("9" * 18)), ("9" * 19, None), ("²", None), ("٣", None), ("-1", None), (" 7", None), ("", None),
])
def test_id_param(value, expected):
    assert id_param(value) == expected
