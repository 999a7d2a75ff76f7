"""Hostile input (CPython + hypothesis): tens of thousands of generated payloads through `commands.Inbox.check` and
documents through `config.validate`; plus the signer against CPython's hmac and a float32 node.

Properties:
- Inbox.check raises nothing but commands.Rejected; every rejection carries a non-empty "error" text and a reply
  that serialises; an accepted command re-validates to itself and its id is safe as a reply id; the ids the inbox
  remembers are never touched by check().
- config.validate raises nothing but schema.Invalid; a valid result validates to itself and survives JSON.

Counts per category are printed (run with -s to see them) and asserted against a floor.
"""

import hashlib
import hmac
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import config
from firmware.commands import COMMAND, COMMANDS, ID_CHARS, Inbox, Rejected
from firmware.schema import Invalid
from firmware.signing import Verifier, hmac_sha256
from tools.signing import sign

NOW = 830000000  # t2k
NOW_UNIX = NOW + 946684800
MAX_BYTES = 8192
NODE_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978"
GROUP_KEY = "a group key for the fuzzer"

COUNTS = {}


def _count(category, outcome):
    key = (category, outcome)
    COUNTS[key] = COUNTS.get(key, 0) + 1


def _total(category):
    return sum(n for (c, _), n in COUNTS.items() if c == category)


def _report(category):
    parts = ["%s=%d" % (o, n) for (c, o), n in sorted(COUNTS.items()) if c == category]
    print("fuzz %-22s %6d cases: %s" % (category, _total(category), ", ".join(parts)))


FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)

# --- strategies ----------------------------------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2 ** 200, max_value=2 ** 200)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
           | st.sampled_from(["a/+/#", "+", "#", "/", "n1/cmd", "\x00", "\ud800", "x" * 5000, "é" * 100, "",
                              "set", "get", "state", "sunset", "23:00", "NaN", 1e308, -0.0, 2 ** 63, -2 ** 31]))
JSON_VALUES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=12), c,
                                                                                       max_size=6), max_leaves=25)
FIELD_NAMES = st.sampled_from(["id", "cmd", "ts", "sig", "level", "duration_s", "what", "programs", "calendar",
                               "set", "utc", "seconds", "safe", "extra", "__proto__", ""]) | st.text(max_size=10)

VALID = {
    "set": {"level": 40, "duration_s": 600},
    "clear": {},
    "get": {"what": "config"},
    "program": {"programs": {"default": [{"at": "sunset", "offset_min": 0, "level": 100},
                                         {"at": "23:00", "offset_min": 0, "level": 50}]}, "calendar": []},
    "config": {"set": {"report": {"telemetry_s": 60}}},
    "time": {"utc": NOW_UNIX},
    "identify": {"seconds": 10},
    "reboot": {"safe": False},
    "calibrate": {},
}


def _valid_command(name, i="c1"):
    d = {"id": i, "cmd": name, "ts": NOW_UNIX}
    d.update(json.loads(json.dumps(VALID[name])))
    return d


def _inbox(verifier=None):
    ib = Inbox(MAX_BYTES, verifier=verifier)
    for i in range(5):
        ib.remember("seen%d" % i, b'{"id":"seen%d","ok":true}' % i)
    return ib


def _dumps(doc):
    return json.dumps(doc, allow_nan=True).encode()


def _run(category, inbox, payload, retained=False, tv=True, group=False):
    """One payload through Inbox.check with every property checked; returns the command or None."""
    before = inbox.repeats.snapshot() if inbox.repeats is not None else None
    try:
        cmd = inbox.check(payload, retained, NOW, tv, 300, group, 3600)  # up an hour: the boot is long past
    except Rejected as r:
        reply = r.reply
        assert isinstance(reply.get("error"), str) and reply["error"], reply
        assert reply["ok"] is False
        assert reply["id"] is None or (isinstance(reply["id"], str) and len(reply["id"]) <= 40)
        json.dumps(reply)  # must serialise: the node publishes it
        _count(category, "rejected")
        assert (inbox.repeats.snapshot() if inbox.repeats is not None else None) == before
        return None
    # Anything else raised propagates and fails the test: that is the property.
    assert (inbox.repeats.snapshot() if inbox.repeats is not None else None) == before
    assert isinstance(cmd, dict) and cmd["cmd"] in COMMANDS
    assert all(c in ID_CHARS for c in cmd["id"]) and 1 <= len(cmd["id"]) <= 40
    assert COMMAND.check(cmd) == cmd
    assert not retained
    _count(category, "accepted")
    return cmd


# --- Inbox.check ---------------------------------------------------------------------------------------------------


@settings(FUZZ, max_examples=2500)
@given(st.binary(max_size=MAX_BYTES + 200), st.booleans(), st.booleans(), st.booleans())
def test_inbox_random_bytes(payload, retained, tv, group):
    _run("random_bytes", _inbox(), payload, retained, tv, group)


@settings(FUZZ, max_examples=2500)
@given(JSON_VALUES, st.booleans())
def test_inbox_random_json(value, tv):
    _run("random_json", _inbox(), _dumps(value), False, tv)


@settings(FUZZ, max_examples=3400)
@given(st.sampled_from(sorted(VALID)), st.sampled_from(["replace", "delete", "add", "id", "retain", "none"]),
       FIELD_NAMES, JSON_VALUES, st.booleans())
def test_inbox_mutated_commands(name, how, field, value, tv):
    doc = _valid_command(name)
    if how == "replace":
        doc[field if field in doc or not doc else sorted(doc)[len(field) % len(doc)]] = value
    elif how == "delete":
        doc.pop(field if field in doc else "id", None)
    elif how == "add":
        doc[field] = value
    elif how == "id":
        doc["id"] = value if isinstance(value, str) and value else "a/+/#"
    cmd = _run("mutated_" + how, _inbox(), _dumps(doc), how == "retain", tv)
    if how == "none":
        assert cmd is not None  # the unmutated command must pass: the generator is not vacuous
    if how == "id" and cmd is not None:
        assert "/" not in cmd["id"] and "+" not in cmd["id"] and "#" not in cmd["id"]


@settings(FUZZ, max_examples=1000)
@given(st.sampled_from(sorted(VALID)), st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=4),
       st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=3 * MAX_BYTES))
def test_inbox_non_utf8_and_oversize(name, pos, junk, kind, size):
    raw = _dumps(_valid_command(name))
    if kind == 0:  # bytes that are never UTF-8 (a lone continuation byte or 0xff) spliced in
        payload = raw[:pos] + bytes([0x80 | (junk[0] & 0x3F)]) + b"\xff" + raw[pos:]
        assert _run("non_utf8", _inbox(), payload) is None
    elif kind == 1:  # truncated
        _run("truncated", _inbox(), raw[:pos % len(raw)])
    elif kind == 2:  # an oversized string value
        doc = _valid_command(name)
        doc["id"] = "x" * size
        cmd = _run("oversized_string", _inbox(), _dumps(doc))
        assert cmd is None or size <= 40
    else:  # padding past the size limit
        payload = raw + b" " * size
        cmd = _run("oversized_payload", _inbox(), payload)
        assert cmd is None or len(payload) <= MAX_BYTES


# commands.Inbox.check hands the payload to json.loads before any depth check: 1 000 "[" make CPython raise
# RecursionError and the MicroPython unix port (64 KB heap) MemoryError — a node crash from a 2 KB message. The fix
# (a bracket-depth scan of the raw bytes before json.loads) belongs in firmware/commands.py and is with the lead;
# remove this marker with it (strict: the test fails as XPASS once the fix is in, so the marker cannot be forgotten).
@settings(FUZZ, max_examples=600)
@given(st.integers(min_value=1, max_value=MAX_BYTES // 2), st.sampled_from(["[", '{"a":', '{"set":{"x":']))
def test_inbox_deep_nesting(depth, opener):
    closer = {"[": "]", '{"a":': "}", '{"set":{"x":': "}}"}[opener]
    body = opener * depth + "1" + closer * depth
    if opener.startswith('{"set"'):
        body = '{"id":"d","cmd":"config",' + body[1:]
    payload = body.encode()
    if len(payload) > MAX_BYTES:
        payload = payload[:MAX_BYTES + 1]  # stays over the limit: must be refused by size, before parsing
    _run("deep_nesting", _inbox(), payload)


@settings(FUZZ, max_examples=1200)
@given(st.sampled_from(sorted(VALID)), st.sampled_from(["none", "sig", "ts", "id", "field", "target", "retarget"]),
       JSON_VALUES, st.booleans(), st.booleans())
def test_inbox_signed_mutations(name, how, value, tv, group):
    v = Verifier(NODE_KEY, GROUP_KEY, 300, "n1", ("east",))
    ib = _inbox(v)
    doc = sign(_valid_command(name, "s1"), GROUP_KEY if group else NODE_KEY, "all" if group else "node:n1",
               now=NOW_UNIX)
    if how == "sig":
        doc["sig"] = value
    elif how == "ts":
        doc["ts"] = value
    elif how == "id":
        doc["id"] = value
    elif how == "field":
        doc["level"] = value
    elif how == "target":
        doc = sign(_valid_command(name, "s1"), NODE_KEY, "node:n2", now=NOW_UNIX)
    elif how == "retarget":
        group = not group  # delivered on the other kind of topic than it was signed for
    cmd = _run("signed_" + how, ib, _dumps(doc), False, tv, group)
    if how in ("none",):  # without valid time a signed node accepts only `time` (firmware/signing.py)
        assert (cmd is not None) == (tv or name == "time")
    if how in ("target", "retarget"):
        assert cmd is None
    if how == "none":  # and the very same bytes again: replay
        assert _run("signed_replay", ib, _dumps(doc), False, tv, group) is None


def test_inbox_case_counts():
    """Runs last in this file (pytest keeps file order): the floor of generated cases and the per-category counts."""
    cats = sorted({c for c, _ in COUNTS if not c.startswith("config")})
    for c in cats:
        _report(c)
    total = sum(_total(c) for c in cats)
    print("fuzz Inbox.check total %d cases" % total)
    if not cats:
        pytest.skip("run together with the generating tests of this file")
    assert total >= 10000, total


# --- config.validate -----------------------------------------------------------------------------------------------

DEFAULT = config.defaults()


def _paths(v, prefix=()):
    out = [prefix]
    if isinstance(v, dict):
        for k in v:
            out += _paths(v[k], prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _paths(x, prefix + (i,))
    return out


PATHS = _paths(DEFAULT)[1:]


def _validate(category, doc):
    try:
        out = config.validate(doc)
    except Invalid as e:
        assert str(e), "an Invalid must say why"
        _count(category, "invalid")
        return None
    assert config.validate(out) == out
    assert config.parse(config.dumps(out)) == out
    _count(category, "valid")
    return out


@settings(FUZZ, max_examples=4000)
@given(st.dictionaries(st.sampled_from(sorted(DEFAULT)) | st.text(max_size=8), JSON_VALUES, max_size=6)
       | JSON_VALUES)
def test_config_random_documents(doc):
    _validate("config_random", doc)


@settings(FUZZ, max_examples=6500)
@given(st.sampled_from(PATHS), st.sampled_from(["replace", "delete", "add", "scale"]), JSON_VALUES,
       st.text(max_size=8))
def test_config_mutated_defaults(path, how, value, new_key):
    doc = json.loads(json.dumps(DEFAULT))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "add":
        target = parent[last]
        if isinstance(target, dict):
            target[new_key] = value
        elif isinstance(target, list):
            target.append(value)
        else:
            parent[last] = [target, value]
    else:  # numbers pushed past their range, in both directions
        old = parent[last]
        if isinstance(old, (int, float)) and not isinstance(old, bool):
            parent[last] = old * 1000 + 1 if not isinstance(value, bool) and value else -old * 1000 - 1
        else:
            parent[last] = value
    _validate("config_mutated_" + how, doc)


def test_config_case_counts():
    cats = sorted({c for c, _ in COUNTS if c.startswith("config")})
    for c in cats:
        _report(c)
    total = sum(_total(c) for c in cats)
    print("fuzz config.validate total %d cases" % total)
    if not cats:
        pytest.skip("run together with the generating tests of this file")
    assert total >= 10000, total
    assert sum(n for (c, o), n in COUNTS.items() if c.startswith("config") and o == "valid") >= 100


# --- signing against references ------------------------------------------------------------------------------------


@settings(FUZZ, max_examples=500)
@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_matches_cpython_hmac(key, msg):
    assert hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def _float32(s):
    return struct.unpack("f", struct.pack("f", float(s)))[0]


SIGNABLE = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2 ** 40, max_value=2 ** 40) | st.text(max_size=20)
    | st.floats(min_value=-1e30, max_value=1e30, allow_nan=False).filter(lambda x: x == 0 or abs(x) > 1e-29),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=15)


@settings(FUZZ, max_examples=500)
@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("sig", "ts", "id")), SIGNABLE, max_size=5),
       st.booleans())
def test_host_signature_verifies_on_a_float32_node(body, group):
    """What tools/signing sends verifies on a node that parses JSON numbers into 32-bit floats (an ESP32)."""
    doc = dict(body, id="f1")
    target = "all" if group else "node:n1"
    signed = sign(doc, GROUP_KEY if group else NODE_KEY, target, now=NOW_UNIX)
    wire = json.dumps(signed)
    v = Verifier(NODE_KEY, GROUP_KEY, 300, "n1")
    assert v.verify(json.loads(wire), NOW, True, group, 3600) is None
    v = Verifier(NODE_KEY, GROUP_KEY, 300, "n1")
    assert v.verify(json.loads(wire, parse_float=_float32), NOW, True, group, 3600) is None
    tampered = json.loads(wire)
    tampered["id"] = "f2"
    assert Verifier(NODE_KEY, GROUP_KEY, 300, "n1").verify(tampered, NOW, True, group, 3600) == "bad signature"


def test_host_signer_refuses_what_a_node_cannot_hold():
    for bad in (float("inf"), float("nan"), 1e39, 1e-35):
        with pytest.raises(ValueError):
            sign({"id": "x", "v": bad}, NODE_KEY, "node:n1")
