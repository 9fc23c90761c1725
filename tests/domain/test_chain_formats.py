"""The versioned hash chain: format 1 (Python's sorted json.dumps) for old events, RFC 8785 for new ones."""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import UTC, datetime

import pytest
import rfc8785
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from runjournal.domain import chain

from .builders import T0, new_run

# -- RFC 8785 known answers ---------------------------------------------------------------------

# RFC 8785, Appendix B: IEEE 754 doubles (as hex) and their canonical text.
NUMBER_VECTORS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), NUMBER_VECTORS)
def test_numbers_are_canonicalised_as_rfc_8785_appendix_b(bits: str, text: str) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(bits))
    assert chain.jcs(value) == text.encode()


def test_the_rfc_8785_sample_object() -> None:  # section 3.2.2
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    assert chain.jcs(value) == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()


def test_keys_sort_by_utf16_code_units() -> None:  # section 3.2.3
    value = {
        "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = [v for v in json.loads(chain.jcs(value)).values()]
    assert order == ["Carriage Return", "One", "Control", "Latin Small Letter O With Diaeresis",
                     "Euro Sign", "Emoji: Grinning Face", "Hebrew Letter Dalet With Dagesh"]


def test_values_format_1_converted_are_converted_alike() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert chain.jcs({"b": (1, 2), "a": when, "c": {"y", "x"}}) == b'{"a":"2026-01-02T03:04:05+00:00","b":[1,2],"c":["x","y"]}'


# -- the versioned link -----------------------------------------------------------------------

EVENT = {"event_type": "Queued", "run_id": "7d6f3c1e-0b7d-4c55-9f0e-2d1b7a9e5c11", "version": 2,
         "timestamp": T0, "class_version": 1}


def _legacy_link(previous: str, data: dict) -> str:
    """The chain as every store before format 2 computed it (a copy of the old code)."""
    body = json.dumps(
        {"type": EVENT["event_type"], "run_id": EVENT["run_id"], "version": EVENT["version"],
         "timestamp": EVENT["timestamp"].isoformat(), "class_version": EVENT["class_version"],
         "data": {k: v for k, v in data.items() if k not in ("chain", "timestamp", "class_version")}},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256((previous + body).encode("utf-8")).hexdigest()


def test_an_event_without_a_format_verifies_with_format_1() -> None:
    data = {"actor": "alice", "priority": 1.0, "note": "caf\u00e9 \u20ac"}
    assert chain.link(chain.GENESIS, **EVENT, data=data) == _legacy_link(chain.GENESIS, data)


def test_an_event_of_format_2_hashes_its_rfc_8785_body() -> None:
    data = {"actor": "alice", "priority": 1.0, chain.FORMAT_FIELD: 2}
    body = chain.jcs({"type": "Queued", "run_id": EVENT["run_id"], "version": 2, "timestamp": T0.isoformat(),
                      "class_version": 1, "data": data})
    assert b'"priority":1}' in body  # RFC 8785 numbers: 1.0 is 1 (format 1 wrote 1.0)
    expected = hashlib.sha256(chain.GENESIS.encode() + body).hexdigest()
    assert chain.link(chain.GENESIS, **EVENT, data=data) == expected
    assert expected != chain.link(chain.GENESIS, **EVENT, data={k: v for k, v in data.items() if k != "chain_format"})


def test_an_unknown_format_is_refused_not_guessed() -> None:
    for bad in (3, "2", True, None):
        with pytest.raises(chain.UnknownChainFormat):
            chain.link(chain.GENESIS, **EVENT, data={"actor": "a", chain.FORMAT_FIELD: bad})


def test_new_events_record_format_2_and_verify_with_link_from_their_stored_fields() -> None:
    """What decoding.expected_link does (link over the stored fields) holds for new events unchanged."""
    run = new_run()
    run.enqueue(actor="alice", now=T0)
    previous = chain.GENESIS
    for event in run.collect_events():
        fields = {k: v for k, v in vars(event).items() if k not in ("originator_id", "originator_version")}
        fields["class_version"] = type(event).class_version  # the mapper stores it beside the fields
        assert fields[chain.FORMAT_FIELD] == chain.CURRENT_FORMAT == 2
        assert event.chain == chain.link(
            previous, event_type=type(event).__name__, run_id=str(event.originator_id),
            version=event.originator_version, timestamp=fields["timestamp"],
            class_version=fields.get("class_version", 1), data=fields,
        )
        previous = event.chain


def test_a_run_mixing_formats_chains_across_them() -> None:
    old = chain.link(chain.GENESIS, **EVENT, data={"actor": "a"})
    new = chain.link(old, **{**EVENT, "version": 3}, data={"actor": "a", chain.FORMAT_FIELD: 2})
    assert old == _legacy_link(chain.GENESIS, {"actor": "a"}) and len(new) == 64 and new != old


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_jcs_is_rfc_8785_for_any_json_value(value: object) -> None:
    """The fast path (sorted json.dumps when it gives the same bytes) never differs from rfc8785."""
    assert chain.jcs(value) == rfc8785.dumps(value)


_converted = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text() | st.uuids()
    | st.datetimes(timezones=st.just(UTC)) | st.datetimes() | st.frozensets(st.text(max_size=3), max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_converted)
def test_the_fast_path_writes_what_sorted_json_dumps_writes(value: object) -> None:
    """Where the fast path applies, its bytes are format 1's text: datetimes, ids and sets converted alike."""
    assume(chain._same_as_sorted_json(value))  # keys at or above U+D800 sort apart in RFC 8785
    assert chain.jcs(value) == chain.canonical_json(value).encode("utf-8")


def test_control_characters_and_non_ascii_keys_escape_as_rfc_8785_says() -> None:
    value = {"\u00e9t\u00e9": "\x00\x1f\n\t\"\\/\u2028\U0001f600", "a": ["\x7f", "\b\f\r"]}
    assert chain.jcs(value) == rfc8785.dumps(value) == chain.canonical_json(value).encode("utf-8")


def test_a_lone_surrogate_fails_in_the_fast_path_as_in_format_1() -> None:
    with pytest.raises(UnicodeEncodeError):
        chain.jcs({"text": "\ud800"})
