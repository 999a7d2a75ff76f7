# runtimes: cpython micropython
"""Signed commands: RFC 4231 HMAC vectors, the canonical form, and every verification rule (also through the Inbox)."""

import binascii
import json
import struct

from mini import raises

from firmware.commands import Inbox, Rejected
from firmware.signing import (REPLAY_IDS, Verifier, canonical, hmac_sha256, key_bytes, sign_hex, signed_bytes,
                              target_for_topic)

T2K_UNIX = 946684800
NOW = 830000000  # node time (t2k): 2026-04-20
NOW_UNIX = NOW + T2K_UNIX
UP = 3600  # the node has been up an hour: its boot lies before every command made in these tests
NODE_KEY = "00112233445566778899aabbccddeeff0123456789abcdef"  # 48 hex digits: used as 24 key bytes
GROUP_KEY = "group secret for zone lights"  # text key
PREFIX = "city/lights"


def _hex(b):
    return binascii.hexlify(b).decode()


# --- HMAC ----------------------------------------------------------------------------------------------------------


def test_hmac_rfc4231_case_1():
    assert _hex(hmac_sha256(b"\x0b" * 20, b"Hi There")) == \
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"


def test_hmac_rfc4231_case_2():
    assert _hex(hmac_sha256(b"Jefe", b"what do ya want for nothing?")) == \
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_hmac_rfc4231_case_6_key_longer_than_block():
    assert _hex(hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")) == \
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_key_bytes():
    assert key_bytes(NODE_KEY) == binascii.unhexlify(NODE_KEY)
    assert key_bytes(NODE_KEY.upper()) == binascii.unhexlify(NODE_KEY)
    assert key_bytes(GROUP_KEY) == GROUP_KEY.encode()
    assert key_bytes("abcdef0123456789abcdef012345678") == b"abcdef0123456789abcdef012345678"  # 31: odd → text
    assert key_bytes("short key") is None
    assert key_bytes(None) is None
    assert key_bytes(12345678901234567890) is None


# --- canonical form ------------------------------------------------------------------------------------------------


def test_canonical_sorted_compact_ascii():
    doc = {"level": 40, "id": "a1", "cmd": "set", "sig": "x" * 64, "ts": 1776500000, "duration_s": None}
    assert canonical(doc) == b'{"cmd":"set","duration_s":null,"id":"a1","level":40,"ts":1776500000}'


def test_canonical_does_not_depend_on_insertion_order():
    a = {"z": 1, "a": {"y": [1, 2], "b": True}, "m": "x"}
    b = {}
    b["m"] = "x"
    b["a"] = {"b": True, "y": [1, 2]}
    b["z"] = 1
    assert canonical(a) == canonical(b)


def test_canonical_nested_keeps_inner_sig_and_types():
    doc = {"set": {"sig": "inner", "l": [True, False, None, -3, 2.5, {"b": 1, "a": []}]}}
    assert canonical(doc) == b'{"set":{"l":[true,false,null,-3,2.5,{"a":[],"b":1}],"sig":"inner"}}'


def test_canonical_unicode_escapes():
    doc = {"s": "caf\u00e9 \"q\" \\ \n\t\x7f\u2028", "k\u00e9": "\U0001f600"}
    assert canonical(doc) == \
        b'{"k\\u00e9":"\\ud83d\\ude00","s":"caf\\u00e9 \\"q\\" \\\\ \\u000a\\u0009\\u007f\\u2028"}'


def test_canonical_same_for_escaped_and_raw_astral_characters():
    # MicroPython's json.loads keeps an escaped surrogate pair as two characters, CPython joins them into one:
    # the canonical form must come out the same either way.
    escaped = json.loads('{"s": "a\\ud83d\\ude00b"}')
    raw = json.loads(b'{"s": "a\xf0\x9f\x98\x80b"}'.decode("utf-8"))
    assert canonical(escaped) == canonical(raw) == b'{"s":"a\\ud83d\\ude00b"}'


def test_canonical_floats_six_digits_and_float32_stable():
    assert canonical({"a": -0.95, "b": 100.35, "c": 50.0, "d": 0.1 + 0.2, "e": 1.5e-7}) == \
        b'{"a":-0.95,"b":100.35,"c":50,"d":0.3,"e":1.5e-07}'
    # An ESP32 reads JSON numbers as 32-bit floats: a 6-digit value must print the same after that rounding.
    for x in (-0.95, 100.35, 3.14159, 123457.0, 0.000123457, 98765.4, -7.5e-05, 1.23457e+08):
        f32 = struct.unpack("f", struct.pack("f", x))[0]
        assert "%.6g" % f32 == "%.6g" % x, x


def test_canonical_refuses_unsignable():
    raises(ValueError, canonical, {"x": float("inf")})
    raises(ValueError, canonical, {"x": float("nan")})
    raises(ValueError, canonical, [1])
    raises(ValueError, canonical, {"x": {1: 2}})
    raises(ValueError, canonical, {"x": b"bytes"})


def test_signed_bytes_bind_the_target():
    doc = {"id": "a", "cmd": "clear", "ts": NOW_UNIX}
    assert signed_bytes(doc, "node:n1") == b'node:n1\n{"cmd":"clear","id":"a","ts":%d}' % NOW_UNIX
    assert sign_hex(doc, NODE_KEY, "node:n1") != sign_hex(doc, NODE_KEY, "node:n2")
    assert len(sign_hex(doc, NODE_KEY, "all")) == 64


def test_target_for_topic():
    assert target_for_topic(b"city/lights/n1/cmd", PREFIX) == "node:n1"
    assert target_for_topic("city/lights/group/east/cmd", PREFIX) == "group:east"
    assert target_for_topic("city/lights/all/cmd", PREFIX) == "all"
    assert target_for_topic("city/lights/n1/state", PREFIX) is None
    assert target_for_topic("other/n1/cmd", PREFIX) is None
    assert target_for_topic("city/lights/a/b/c/cmd", PREFIX) is None
    assert target_for_topic("city/lights/group/cmd", PREFIX) is None


# --- verification --------------------------------------------------------------------------------------------------


def _signed(doc, key, target):
    d = dict(doc)
    d["sig"] = sign_hex(d, key, target)
    return d


def _verifier(groups=("east",), node_key=NODE_KEY, group_key=GROUP_KEY):
    return Verifier(node_key, group_key, 300, "n1", groups)


def _cmd(i="c1", ts=NOW_UNIX, **kw):
    d = {"id": i, "cmd": "set", "level": 40, "ts": ts}
    d.update(kw)
    return d


def test_verify_accepts_good_node_command():
    v = _verifier()
    assert v.verify(_signed(_cmd(), NODE_KEY, "node:n1"), NOW, True, False, UP) is None
    assert v.remembered() == 1


def test_verify_refusals():
    v = _verifier()
    assert v.verify(_cmd(), NOW, True, False, UP) == "unsigned command refused"
    d = _signed(_cmd(), NODE_KEY, "node:n1")
    del d["ts"]
    assert v.verify(d, NOW, True, False, UP) == "signed commands need ts"
    d = _signed(_cmd(), NODE_KEY, "node:n1")
    d["level"] = 100  # tampered after signing
    assert v.verify(d, NOW, True, False, UP) == "bad signature"
    d = _signed(_cmd(), NODE_KEY, "node:n1")
    d["sig"] = d["sig"][:-1] + ("0" if d["sig"][-1] != "0" else "1")
    assert v.verify(d, NOW, True, False, UP) == "bad signature"
    d["sig"] = "zz" * 32
    assert v.verify(d, NOW, True, False, UP) == "bad signature"
    d["sig"] = "00"
    assert v.verify(d, NOW, True, False, UP) == "bad signature"
    assert v.verify(_signed(_cmd(), "another key of enough length", "node:n1"), NOW, True, False, UP) == "bad signature"
    assert v.remembered() == 0


def test_verify_wrong_target_refused():
    v = _verifier()
    assert v.verify(_signed(_cmd(), NODE_KEY, "node:n2"), NOW, True, False, UP) == "bad signature"
    # A node command re-published on a group topic is checked with the group key and group targets.
    assert v.verify(_signed(_cmd(), NODE_KEY, "node:n1"), NOW, True, True, UP) == "bad signature"
    # A group command re-published on the node topic is checked with the node key.
    assert v.verify(_signed(_cmd(), GROUP_KEY, "group:east"), NOW, True, False, UP) == "bad signature"
    # Exact target given by the caller (the node derives it from the topic with target_for_topic).
    assert v.verify(_signed(_cmd(), GROUP_KEY, "group:east"), NOW, True, "all", UP) == "bad signature"
    assert v.verify(_signed(_cmd(), GROUP_KEY, "group:east"), NOW, True, "group:west", UP) == \
        "not addressed to this node"
    assert v.verify(_signed(_cmd(), NODE_KEY, "node:n2"), NOW, True, "node:n2", UP) == "not addressed to this node"
    assert v.verify(_signed(_cmd(), GROUP_KEY, "group:east"), NOW, True, "group:east", UP) is None
    assert v.verify(_signed(_cmd("c2"), NODE_KEY, "node:n1"), NOW, True, "node:n1", UP) is None


def test_verify_group_and_broadcast():
    v = _verifier(groups=("east", "park"))
    assert v.verify(_signed(_cmd("g1"), GROUP_KEY, "group:park"), NOW, True, True, UP) is None
    assert v.verify(_signed(_cmd("g2"), GROUP_KEY, "all"), NOW, True, True, UP) is None
    assert v.verify(_signed(_cmd("g3"), GROUP_KEY, "group:west"), NOW, True, True, UP) == "bad signature"
    assert v.verify(_signed(_cmd("g4"), NODE_KEY, "all"), NOW, True, True, UP) == "bad signature"


def test_verify_missing_key_refuses_that_path_only():
    v = Verifier(NODE_KEY, None, 300, "n1", ("east",))
    assert v.verify(_signed(_cmd("a"), GROUP_KEY, "all"), NOW, True, True, UP) == "no key for group commands"
    assert v.verify(_signed(_cmd("b"), NODE_KEY, "node:n1"), NOW, True, False, UP) is None
    v = Verifier(None, GROUP_KEY, 300, "n1", ("east",))
    assert v.verify(_signed(_cmd("c"), NODE_KEY, "node:n1"), NOW, True, False, UP) == "no key for node commands"
    v = Verifier("too short", GROUP_KEY, 300, "n1")  # an unusable key counts as no key
    assert v.verify(_signed(_cmd("d"), "too short key...", "node:n1"), NOW, True, False, UP) == \
        "no key for node commands"
    v = Verifier(NODE_KEY, GROUP_KEY, 300)  # no node id: own-topic commands cannot be bound to a target
    assert v.verify(_signed(_cmd("e"), NODE_KEY, "node:n1"), NOW, True, False, UP) == "no node id for signed commands"


def test_verify_expiry_with_valid_time():
    v = _verifier()
    assert v.verify(_signed(_cmd("old", ts=NOW_UNIX - 301), NODE_KEY, "node:n1"), NOW, True, False, UP) == "expired"
    assert v.verify(_signed(_cmd("fut", ts=NOW_UNIX + 121), NODE_KEY, "node:n1"), NOW, True, False, UP) == "expired"
    assert v.verify(_signed(_cmd("edge", ts=NOW_UNIX - 300), NODE_KEY, "node:n1"), NOW, True, False, UP) is None
    assert v.pending_floor is None  # made before the node's clock: covered by the boot floor of any later boot
    assert v.verify(_signed(_cmd("ahead", ts=NOW_UNIX + 120), NODE_KEY, "node:n1"), NOW, True, False, UP) is None
    assert v.pending_floor == NOW + 121  # dated ahead: must reach flash before it acts


def test_without_valid_time_only_a_signed_time_command_is_accepted():
    v = _verifier()
    old = _signed(_cmd("old", ts=NOW_UNIX - 86400 * 30), NODE_KEY, "node:n1")
    assert v.verify(old, NOW, False, False, UP) == "no valid time: only a signed time command is accepted"
    t = _signed({"id": "t1", "cmd": "time", "utc": NOW_UNIX, "ts": NOW_UNIX}, NODE_KEY, "node:n1")
    assert v.verify(t, NOW, False, False, 5) is None
    assert v.pending_floor == NOW + 1  # no clock to judge a later boot by: its ts goes to flash
    v.floor_saved(v.pending_floor)
    assert v.verify(t, NOW, False, False, 6) == "replayed"
    # The next boot, still without time, reads the saved floor: the recorded time command cannot set the clock back.
    v2 = Verifier(NODE_KEY, GROUP_KEY, 300, "n1", ("east",), saved_floor=v.saved_floor)
    assert v2.verify(t, NOW, False, False, 1) == "signed before the replay window"
    # Unauthenticated senders still learn nothing but "bad signature".
    assert v.verify(_signed(_cmd("x"), NODE_KEY, "node:n2"), NOW, False, False, UP) == "bad signature"


def test_verify_replay_within_window():
    v = _verifier()
    d = _signed(_cmd("r1"), NODE_KEY, "node:n1")
    assert v.verify(d, NOW, True, False, UP) is None
    assert v.verify(d, NOW + 10, True, False, UP + 10) == "replayed"
    assert v.verify(d, NOW + 300, True, False, UP + 300) == "replayed"
    # Once the command itself has expired the table may forget it: the expiry check refuses it instead.
    assert v.verify(d, NOW + 301, True, False, UP + 301) == "expired"


def test_no_replay_after_a_restart():
    v = _verifier()
    d = _signed({"id": "rb", "cmd": "reboot", "safe": False, "ts": NOW_UNIX}, NODE_KEY, "node:n1")
    assert v.verify(d, NOW, True, False, UP) is None
    # A recorded signed reboot, replayed after the reboot it caused: the node saved its state (with the floor)
    # before restarting, so however soon it is back, the replay is refused.
    saved = v.floor_to_save()
    for boot_after in (0, 1, 5, 290):
        fresh = Verifier(NODE_KEY, GROUP_KEY, 300, "n1", ("east",), saved_floor=saved)
        assert fresh.verify(d, NOW + boot_after + 3, True, False, 3) == "signed before the replay window"
    # A reset the node did not choose (a power cut), nothing saved since the command: the boot instant covers it
    # once the node boots 2 s or more after accepting it (a whole-second clock: see firmware/signing.py).
    s2 = _signed(_cmd("s2"), NODE_KEY, "node:n1")
    assert v.verify(s2, NOW, True, False, UP) is None
    for gap in (2, 3, 60, 290):
        fresh = Verifier(NODE_KEY, GROUP_KEY, 300, "n1", ("east",), saved_floor=saved)
        assert fresh.verify(s2, NOW + gap + 3, True, False, 3) == "signed before the replay window", gap
    # Commands made after the boot are accepted at once, even one made in the boot's own second.
    fresh = Verifier(NODE_KEY, GROUP_KEY, 300, "n1", ("east",), saved_floor=saved)
    assert fresh.verify(_signed(_cmd("new", ts=NOW_UNIX + 2), NODE_KEY, "node:n1"), NOW + 3, True, False, 1) is None


def test_no_replay_after_a_restart_of_a_command_dated_ahead():
    # The sender's clock ran 100 s ahead: the command's ts lies after the next boot. Its saved floor covers it.
    v = _verifier()
    d = _signed(_cmd("fw", ts=NOW_UNIX + 100), NODE_KEY, "node:n1")
    assert v.verify(d, NOW, True, False, UP) is None
    assert v.pending_floor == NOW + 101
    v.floor_saved(v.pending_floor)
    fresh = Verifier(NODE_KEY, GROUP_KEY, 300, "n1", ("east",), saved_floor=v.saved_floor)
    assert fresh.verify(d, NOW + 10, True, False, 5) == "signed before the replay window"
    # Within the boot the saved floor holds nothing back: the next command, made in the same second, runs.
    assert v.verify(_signed(_cmd("fw2", ts=NOW_UNIX + 100), NODE_KEY, "node:n1"), NOW, True, False, UP) is None
    # Without the saved floor this is exactly the hole the write closes.
    naive = Verifier(NODE_KEY, GROUP_KEY, 300, "n1", ("east",))
    assert naive.verify(d, NOW + 10, True, False, 5) is None


def test_no_replay_whatever_the_traffic():
    # A command every 2 s (150 inside max_age_s, more than the table holds): hundreds of commands, every one of
    # them replayed at once and again later, in and out of order: nothing is ever accepted twice inside max_age_s.
    # A replay is the same signed document made again (signing is deterministic), so nothing has to be kept.
    v = _verifier()

    def command(k):
        return _signed(_cmd("p%d" % k, ts=NOW_UNIX + k * 2), NODE_KEY, "node:n1")

    for i in range(400):
        now = NOW + i * 2
        d = command(i)
        assert v.verify(d, now, True, False, UP + i * 2) is None
        for k in (0, i // 2, max(0, i - 70), max(0, i - 3), i):
            old = command(k)
            assert old == command(k) and (k != i or old == d)
            assert v.verify(old, now, True, False, UP + i * 2) in (
                "replayed", "signed before the replay window", "expired"), (i, old["id"])
    assert v.remembered() <= REPLAY_IDS


def test_full_table_raises_the_floor_instead_of_forgetting():
    v = _verifier()
    for i in range(REPLAY_IDS + 10):  # all inside max_age_s: the table is full, the oldest give way
        assert v.verify(_signed(_cmd("b%d" % i, ts=NOW_UNIX - 100 + i), NODE_KEY, "node:n1"), NOW, True, False,
                        UP) is None
    assert v.remembered() == REPLAY_IDS
    assert v.verify(_signed(_cmd("b0", ts=NOW_UNIX - 100), NODE_KEY, "node:n1"), NOW, True, False, UP) == \
        "signed before the replay window"  # dropped from the table, but below the floor: still refused
    assert v.verify(_signed(_cmd("b70", ts=NOW_UNIX - 30), NODE_KEY, "node:n1"), NOW, True, False, UP) == "replayed"
    # A late command older than the dropped ones must be signed again; a new one is accepted.
    assert v.verify(_signed(_cmd("late", ts=NOW_UNIX - 95), NODE_KEY, "node:n1"), NOW, True, False, UP) == \
        "signed before the replay window"
    assert v.verify(_signed(_cmd("new"), NODE_KEY, "node:n1"), NOW, True, False, UP) is None


def test_expired_commands_leave_the_table():
    v = _verifier()
    for i in range(10):
        assert v.verify(_signed(_cmd("e%d" % i, ts=NOW_UNIX - 200), NODE_KEY, "node:n1"), NOW, True, False,
                        UP) is None
    assert v.remembered() == 10
    assert v.verify(_signed(_cmd("late", ts=NOW_UNIX + 150), NODE_KEY, "node:n1"), NOW + 150, True, False,
                    UP) is None
    assert v.remembered() == 1  # the ten commands made 350 s ago would be refused as expired: dropped
    # A clock set back 60 s must not revive them: they lie below the floor now.
    assert v.verify(_signed(_cmd("e0", ts=NOW_UNIX - 200), NODE_KEY, "node:n1"), NOW + 90, True, False, UP) == \
        "signed before the replay window"


# --- through the Inbox (how the node uses it) ---------------------------------------------------------------------


def _inbox():
    return Inbox(8192, verifier=_verifier())


def _check(inbox, doc, group=False, tv=True, now=NOW):
    return inbox.check(json.dumps(doc).encode(), False, now, tv, 300, group, UP)


def test_inbox_accepts_signed_and_refuses_unsigned():
    ib = _inbox()
    cmd = _check(ib, _signed(_cmd("i1"), NODE_KEY, "node:n1"))
    assert cmd["level"] == 40 and cmd["id"] == "i1"
    e = raises(Rejected, _check, ib, _cmd("i2"))
    assert e.reply == {"id": "i2", "ok": False, "error": "unsigned command refused", "cmd": "set"}
    # A duplicate, even the very next message (a QoS 1 re-delivery), is refused as SECURITY.md says: "replayed".
    e = raises(Rejected, _check, ib, _signed(_cmd("i1"), NODE_KEY, "node:n1"))
    assert e.reply == {"id": "i1", "ok": False, "cmd": "set", "error": "replayed"}
    ib.remember("i1", b"{}")
    assert ib.previous_reply("i1") is None  # signed nodes keep no replies: the verifier's table decides
    cmd = _check(ib, _signed(_cmd("i3"), GROUP_KEY, "group:east"), group=True)
    assert cmd["id"] == "i3"


def test_keys_never_appear_in_replies_or_errors():
    ib = _inbox()
    texts = []
    bad = [_cmd("k1"), _signed(_cmd("k2"), NODE_KEY, "node:n9"), _signed(_cmd("k3", ts=1), NODE_KEY, "node:n1"),
           _signed(_cmd("k4", level=500), NODE_KEY, "node:n1"), _signed(_cmd("k5"), GROUP_KEY, "node:n1")]
    d = _signed(_cmd("k6"), NODE_KEY, "node:n1")
    bad += [d, d]
    for doc in bad:
        for group in (False, True):
            try:
                _check(ib, doc, group)
            except Rejected as r:
                texts.append(json.dumps(r.reply))
                texts.append(str(r))
    for fn, args in ((sign_hex, ({"id": "x"}, "short", "all")), (canonical, ({"x": float("inf")},))):
        try:
            fn(*args)
        except ValueError as e:
            texts.append(str(e))
    assert len(texts) >= 12
    blob = "\n".join(texts)
    for secret in (NODE_KEY, NODE_KEY.upper(), GROUP_KEY, "short", "group secret"):
        assert secret not in blob, secret
    assert "00112233" not in blob


def test_large_command_streams_through_the_hash():
    # A full program set (12 programs x 10 steps, ~6 KB): once made a 32 KB list of pieces and a MemoryError on a
    # 256 KB heap; the canonical text is now hashed in small chunks.
    progs = {}
    for i in range(12):
        progs["p%d" % i] = [{"at": "%02d:%02d" % (18 + j // 6, (j * 7) % 60), "offset_min": j, "level": 5 * j}
                            for j in range(10)]
    doc = {"id": "big", "cmd": "program", "ts": NOW_UNIX, "programs": progs, "calendar": None}
    v = _verifier()
    d = _signed(doc, GROUP_KEY, "group:east")
    assert len(json.dumps(d)) > 5000
    assert v.verify(d, NOW, True, True, UP) is None
    import gc

    gc.collect()  # the two 6 KB buffers below need contiguous heap; don't let earlier garbage decide the outcome
    assert len(canonical(d)) == len(signed_bytes(d, "x")) - 2


def _escape_oracle(s):
    """The canonical string form written the plain way, character by character (as the firmware once did)."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif o < 0x20 or o > 0x7E:
            if o > 0xFFFF:
                o -= 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (o >> 10), 0xDC00 + (o & 0x3FF)))
            else:
                out.append("\\u%04x" % o)
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def test_strings_in_canonical_form_match_the_character_by_character_rule():
    # The firmware walks UTF-8 bytes (to intern nothing: SECURITY.md); the text must be what the plain
    # per-character rule gives, for ASCII, controls, DEL, quotes, backslashes, 2-, 3- and 4-byte characters.
    pool = [bytes([c]).decode() for c in range(0, 0x80)] + [
        b.decode() for b in (b"\xc3\xa9", b"\xce\xa9", b"\xe1\x80\x80", b"\xef\xbf\xbd", b"\xf0\x9f\x98\x80",
                              b"\xf4\x8f\xbf\xbf", b"\xc2\x80")]
    seed = 12345
    for _ in range(3000):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        n = seed % 13
        s = ""
        for _ in range(n):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            s += pool[seed % len(pool)]
        assert canonical({"s": s}) == ('{"s":' + _escape_oracle(s) + "}").encode(), repr(s)
