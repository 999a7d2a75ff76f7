# runtimes: cpython micropython
"""firmware/ota.py: manifest checks, chunked staging, resume, verify + switch, trial confirm and rollback."""

import hashlib
import json
import os
import struct

from mini import raises

from firmware import ota
from firmware.schema import Invalid
from firmware.signing import hmac_sha256

KEY = "00112233445566778899aabbccddeeff"  # hex text, as in config
KEY_BYTES = bytes(range(0, 256, 17))  # what that text spells
CFG = {"update_key": KEY, "confirm_s": 30, "trial_max_s": 600, "max_bytes": 1048576}

FILES = [
    ("firmware/__init__.py", b""),
    ("firmware/version.py", b'VERSION = "0.2.0"\n'),
    ("firmware/big.py", b"".join(b"x = %d\n" % i for i in range(1500))),  # ~13 KB: several chunks
    ("lib/umqtt/simple.py", b"# stub\n" * 40),
]


def _tmpdir():
    d = "/tmp/ota_t_" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(d)
    return d


def _hex(b):
    return "".join("%02x" % x for x in b)


def _manifest(files=FILES, version="0.2.0", sizes=None, hashes=None):
    out = []
    for i, (path, data) in enumerate(files):
        out.append({"path": path, "size": len(data) if sizes is None else sizes[i],
                    "sha256": _hex(hashlib.sha256(data).digest()) if hashes is None else hashes[i]})
    return {"format": 1, "version": version, "files": out}


def _sign(m, key=KEY_BYTES):
    return ota.sign_manifest(m, key, hmac_sha256)


def _agent(root, cfg=CFG, key=KEY):
    lines = []
    a = ota.OtaAgent(root, cfg, key, hmac_sha256, lines.append)
    a.lines = lines
    return a


def _chunk(session, idx, offset, data):
    return struct.pack(ota.CHUNK_HEADER, 1, idx, session, offset) + data


def _send_all(agent, m, sig, files=FILES, start=(0, 0), size=4096):
    """Send every chunk from `start` on, like tools/ota.py; returns the last reply."""
    session = ota.session_of(sig)
    reply = None
    for idx in range(start[0], len(files)):
        data = files[idx][1]
        off = start[1] if idx == start[0] else 0
        while off < len(data):
            piece = data[off:off + size]
            reply = agent.chunk(_chunk(session, idx, off, piece))
            assert reply["ok"], reply
            off += len(piece)
    return reply


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def test_full_update_stages_verifies_and_switches():
    root = _tmpdir()
    try:
        a = _agent(root)
        assert a.active() == "factory" and a.version() == "0.1.0"
        m = _manifest()
        sig = _sign(m)
        r = a.begin(m, sig)
        assert r["ok"] and r["slot"] == "slot_a" and r["file"] == 1 and r["offset"] == 0  # empty file 0 skipped
        assert _read(root + "/slot_a/firmware/__init__.py") == b""
        last = _send_all(a, m, sig, start=(1, 0))
        assert last["complete"] is True
        st = a.status()
        assert st["staging"]["bytes"] == st["staging"]["total"] == sum(len(d) for _, d in FILES)
        assert not _exists(root + "/slot_a/manifest.json")
        r = a.commit()
        assert r["ok"] and r["restart"] and a.reset_wanted, r
        for path, data in FILES:
            assert _read(root + "/slot_a/" + path) == data
        doc = json.loads(_read(root + "/ota.json"))
        assert doc["active"] == "slot_a" and doc["previous"] == "factory" and doc["trial"] is True
        assert doc["boots"] == 0 and doc["version"] == "0.2.0" and doc["from"] == "0.1.0"
        assert json.loads(_read(root + "/slot_a/manifest.json"))["version"] == "0.2.0"
        assert not _exists(root + "/slot_a/stage.json")
        assert not _exists(root + "/slot_a/" + ota.INDEX_FILE)  # the transfer's file list goes with it
    finally:
        ota._rmtree(root)


def test_the_transfer_file_list_lives_on_flash_and_a_resume_rebuilds_it_from_the_signed_stage():
    # The transfer reads its file list from the slot's stage.idx, not from the manifest it began with. That index is
    # not signed: after a reboot it is written again from stage.json, whose signature is checked, so an index cut
    # by a power failure (or altered on flash) cannot steer what is accepted.
    root = _tmpdir()
    try:
        a = _agent(root)
        m = _manifest()
        sig = _sign(m)
        s = ota.session_of(sig)
        a.begin(m, sig)
        with open(root + "/slot_a/" + ota.INDEX_FILE) as f:
            lines = f.read().splitlines()
        assert len(lines) == len(FILES)
        assert lines[2] == "%d %s firmware/big.py" % (len(FILES[2][1]), _hex(hashlib.sha256(FILES[2][1]).digest()))
        _send_all(a, m, sig, files=FILES[:2], start=(1, 0))
        with open(root + "/slot_a/" + ota.INDEX_FILE, "w") as f:
            f.write("5 " + "0" * 64 + " firmware/evil.py\n")  # torn and wrong
        b = _agent(root)  # rebooted
        st = b.status()["staging"]
        assert (st["file"], st["offset"], st["files"]) == (2, 0, len(FILES))
        assert st["total"] == sum(len(d) for _, d in FILES)
        with open(root + "/slot_a/" + ota.INDEX_FILE) as f:
            assert f.read().splitlines() == lines  # rebuilt from the signed manifest
        r = _send_all(b, m, sig, start=(2, 0))
        assert r["complete"] is True and b.commit()["ok"]
        assert not _exists(root + "/slot_a/firmware/evil.py")
        assert b.chunk(_chunk(s, 0, 0, b"x"))["ok"] is False  # nothing is staged any more
    finally:
        ota._rmtree(root)


def test_bad_signature_and_tampered_manifest_are_refused():
    root = _tmpdir()
    try:
        a = _agent(root)
        m = _manifest()
        sig = _sign(m)
        assert "signature" in a.begin(m, _sign(m, b"another key of 32 bytes ........"))["error"]
        assert "signature" in a.begin(m, "0" * 64)["error"]
        assert "signature" in a.begin(m, sig[:63])["error"]
        m2 = _manifest()
        m2["files"][2]["size"] += 1  # signed, then changed: the signature no longer matches
        assert "signature" in a.begin(m2, sig)["error"]
        m3 = _manifest(version="0.2.1")
        assert "signature" in a.begin(m3, sig)["error"]
        assert not _exists(root + "/slot_a")  # nothing touched the flash
        assert a.begin(m, sig)["ok"]
    finally:
        ota._rmtree(root)


def test_no_update_key_refuses_every_update():
    root = _tmpdir()
    try:
        a = _agent(root, key=None)
        m = _manifest()
        r = a.begin(m, _sign(m))
        assert not r["ok"] and "no update key" in r["error"]
    finally:
        ota._rmtree(root)


def test_bad_hash_is_caught_at_the_last_byte_and_the_file_restarts():
    root = _tmpdir()
    try:
        a = _agent(root)
        hashes = [_hex(hashlib.sha256(d).digest()) for _, d in FILES]
        hashes[1] = _hex(hashlib.sha256(b"something else").digest())
        m = _manifest(hashes=hashes)
        sig = _sign(m)
        assert a.begin(m, sig)["ok"]
        s = ota.session_of(sig)
        r = a.chunk(_chunk(s, 1, 0, FILES[1][1]))
        assert not r["ok"] and "sha256 mismatch in firmware/version.py" in r["error"]
        assert r["file"] == 1 and r["offset"] == 0
        assert not _exists(root + "/slot_a/firmware/version.py")
        assert not a.commit()["ok"]
    finally:
        ota._rmtree(root)


def test_wrong_size_chunks_are_refused():
    root = _tmpdir()
    try:
        a = _agent(root)
        sizes = [len(d) for _, d in FILES]
        sizes[1] -= 3  # the manifest says shorter than what is sent
        m = _manifest(sizes=sizes)
        sig = _sign(m)
        s = ota.session_of(sig)
        assert a.begin(m, sig)["ok"]
        r = a.chunk(_chunk(s, 1, 0, FILES[1][1]))
        assert not r["ok"] and "bad chunk length" in r["error"] and r["offset"] == 0
        r = a.chunk(_chunk(s, 1, 0, b""))
        assert not r["ok"] and "bad chunk length" in r["error"]
        r = a.chunk(_chunk(s, 1, 0, b"x" * (ota.MAX_CHUNK + 1)))
        assert not r["ok"]
        assert not a.chunk(b"\x01\x01")["ok"]  # shorter than a header
        r = a.chunk(struct.pack(ota.CHUNK_HEADER, 9, 1, s, 0) + b"x")
        assert not r["ok"] and "format" in r["error"]
    finally:
        ota._rmtree(root)


def test_older_version_refused_unless_forced():
    root = _tmpdir()
    try:
        a = _agent(root)
        m = _manifest(version="0.0.9")
        sig = _sign(m)
        r = a.begin(m, sig)
        assert not r["ok"] and "older" in r["error"]
        assert a.begin(m, sig, force=True)["ok"]
        same = _manifest(version="0.1.0")  # reinstalling the running version is allowed
        assert a.begin(same, _sign(same))["ok"]
        # 0.10.0 is newer than 0.9.0: numbers, not strings
        assert ota.parse_version("0.10.0") > ota.parse_version("0.9.0")
        for bad in ("1.2", "1.2.3.4", "1..2", "a.b.c", "1.2.x"):
            raises(ValueError, ota.parse_version, bad)
    finally:
        ota._rmtree(root)


def test_path_traversal_and_odd_names_are_refused():
    for bad in ("../x.py", "firmware/../../x.py", "/etc/x.py", "firmware/.hidden.py", "firmware/a.txt", "a.py",
                "firmware//a.py", "firmware/a.b.py", "Firmware/a.py", "a/b/c/d/e.py", "firmware/./a.py",
                "firmware\\a.py", "firmware/.py"):
        raises(ValueError, ota.check_path, bad)
    for good in ("firmware/node.py", "drivers/sim.mpy", "lib/umqtt/simple.py", "firmware/__init__.py"):
        ota.check_path(good)
    root = _tmpdir()
    try:
        a = _agent(root)
        files = [("firmware/../../evil.py", b"x")]
        m = _manifest(files)
        r = a.begin(m, _sign(m))
        assert not r["ok"] and "files[0].path" in r["error"]
        m = _manifest([("firmware/a.py", b"1"), ("firmware/a.py", b"2")])
        assert "listed twice" in a.begin(m, _sign(m))["error"]
        e = raises(Invalid, ota.check_manifest, {"format": 1, "version": "1.0.0", "files": []})
        assert "files" in str(e)
        raises(Invalid, ota.check_manifest, {"format": 1, "version": "1.0.0", "files": [], "extra": 1})
    finally:
        ota._rmtree(root)


def test_out_of_order_and_stale_chunks():
    root = _tmpdir()
    try:
        a = _agent(root)
        m = _manifest()
        sig = _sign(m)
        s = ota.session_of(sig)
        r = a.chunk(_chunk(s, 1, 0, b"x"))
        assert not r["ok"] and "ota_begin" in r["error"]  # nothing begun yet
        a.begin(m, sig)
        data = FILES[2][1]
        r = a.chunk(_chunk(s, 2, 0, data[:100]))
        assert not r["ok"] and r["error"] == "out of order" and (r["file"], r["offset"]) == (1, 0)
        _send_all(a, m, sig, files=FILES[:2], start=(1, 0))
        assert a.chunk(_chunk(s, 2, 0, data[:100]))["offset"] == 100
        r = a.chunk(_chunk(s, 2, 0, data[:100]))  # a duplicate (sender retried): refused, position unchanged
        assert not r["ok"] and r["offset"] == 100
        r = a.chunk(_chunk(s, 2, 300, data[300:400]))  # a gap
        assert not r["ok"] and r["offset"] == 100
        assert a.chunk(_chunk(s ^ 1, 2, 100, data[100:200])) is None  # another transfer's chunk: ignored
        assert a.status()["staging"]["offset"] == 100
        assert _read(root + "/slot_a/firmware/big.py") == data[:100]
    finally:
        ota._rmtree(root)


def test_resume_after_a_reboot_mid_file():
    root = _tmpdir()
    try:
        a = _agent(root)
        m = _manifest()
        sig = _sign(m)
        s = ota.session_of(sig)
        a.begin(m, sig)
        _send_all(a, m, sig, files=FILES[:2], start=(1, 0))
        data = FILES[2][1]
        assert a.chunk(_chunk(s, 2, 0, data[:4000]))["ok"]
        assert a.chunk(_chunk(s, 2, 4000, data[4000:5000]))["ok"]
        b = _agent(root)  # the node rebooted: a new agent finds the transfer on flash
        st = b.status()["staging"]
        assert st["version"] == "0.2.0" and (st["file"], st["offset"]) == (2, 5000) and st["session"] == s
        r = b.begin(m, sig)  # the sender begins again with the same manifest: resumed, not wiped
        assert r["ok"] and r["resumed"] is True and (r["file"], r["offset"]) == (2, 5000)
        _send_all(b, m, sig, start=(2, 5000))
        assert b.commit()["ok"]
        assert _read(root + "/slot_a/firmware/big.py") == data
    finally:
        ota._rmtree(root)


def test_resume_from_a_torn_chunk():
    # Power failed in the middle of a write: the file holds an odd number of bytes. The node reports exactly
    # that size and the sender continues from there, whatever its chunk size was.
    root = _tmpdir()
    try:
        a = _agent(root)
        m = _manifest()
        sig = _sign(m)
        a.begin(m, sig)
        _send_all(a, m, sig, files=FILES[:2], start=(1, 0))
        with open(root + "/slot_a/firmware/big.py", "wb") as f:
            f.write(FILES[2][1][:1234])
        b = _agent(root)
        r = b.begin(m, sig)
        assert r["resumed"] and (r["file"], r["offset"]) == (2, 1234)
        _send_all(b, m, sig, start=(2, 1234), size=1000)
        assert b.commit()["ok"]
    finally:
        ota._rmtree(root)


def test_a_new_manifest_wipes_a_stale_transfer():
    root = _tmpdir()
    try:
        a = _agent(root)
        m = _manifest()
        sig = _sign(m)
        a.begin(m, sig)
        _send_all(a, m, sig, files=FILES[:3], start=(1, 0))
        files2 = [("firmware/__init__.py", b""), ("firmware/only.py", b"y = 2\n")]
        m2 = _manifest(files=files2, version="0.3.0")
        sig2 = _sign(m2)
        r = a.begin(m2, sig2)
        assert r["ok"] and not r["resumed"] and r["version"] == "0.3.0"
        assert not _exists(root + "/slot_a/firmware/big.py")  # nothing of the old transfer is left to run
        assert a.chunk(_chunk(ota.session_of(sig), 3, 0, b"z")) is None
        _send_all(a, m2, sig2, files=files2, start=(1, 0))
        assert a.commit()["ok"]
    finally:
        ota._rmtree(root)


def test_commit_refuses_incomplete_and_reverifies_flash():
    root = _tmpdir()
    try:
        a = _agent(root)
        assert "nothing staged" in a.commit()["error"]
        m = _manifest()
        sig = _sign(m)
        a.begin(m, sig)
        _send_all(a, m, sig, files=FILES[:2], start=(1, 0))
        r = a.commit()
        assert not r["ok"] and "incomplete" in r["error"] and r["file"] == 2
        _send_all(a, m, sig, start=(2, 0))
        # The flash lost a bit after the file was received: commit must notice, not switch.
        p = root + "/slot_a/firmware/big.py"
        data = bytearray(_read(p))
        data[77] ^= 1
        with open(p, "wb") as f:
            f.write(data)
        r = a.commit()
        assert not r["ok"] and "verify failed: firmware/big.py" in r["error"] and r["file"] == 2
        assert not _exists(root + "/ota.json") and not a.reset_wanted
        _send_all(a, m, sig, start=(2, 0))
        assert a.commit()["ok"]
    finally:
        ota._rmtree(root)


def test_size_limit_and_abort():
    root = _tmpdir()
    try:
        small = dict(CFG, max_bytes=16384)
        a = _agent(root, cfg=small)
        m = _manifest(files=[("firmware/huge.py", b"x" * 20000)])
        r = a.begin(m, _sign(m))
        assert not r["ok"] and "max_bytes" in r["error"]
        m = _manifest()
        sig = _sign(m)
        _agent(root).begin(m, sig)
        b = _agent(root)
        r = b.abort()
        assert r["ok"] and r["aborted"] is True
        assert not _exists(root + "/slot_a") and b.status()["staging"] is None
    finally:
        ota._rmtree(root)


def _committed(root):
    a = _agent(root)
    m = _manifest()
    sig = _sign(m)
    a.begin(m, sig)
    _send_all(a, m, sig, start=(1, 0))
    assert a.commit()["ok"]
    return m


def test_trial_confirms_once_connected_long_enough_and_reports_once():
    root = _tmpdir()
    try:
        _committed(root)
        a = _agent(root)
        assert a.on_trial()
        m = _manifest(version="0.3.0")
        assert "trial" in a.begin(m, _sign(m))["error"]  # no second update on top of an unconfirmed one
        assert not a.confirm_if_due(False, 100)  # running, but not connected
        assert not a.confirm_if_due(True, 29)  # connected, but not long enough
        assert a.pending_report() is None
        assert a.confirm_if_due(True, 30)
        assert not a.on_trial() and not a.reset_wanted
        ev = a.pending_report()
        assert ev["kind"] == "ota_confirmed" and ev["version"] == "0.2.0"
        assert a.pending_report() is None
        assert _agent(root).pending_report() is None  # reported is remembered across boots
        assert json.loads(_read(root + "/ota.json"))["active"] == "slot_a"
    finally:
        ota._rmtree(root)


def test_trial_deadline_rolls_back_and_reports_why():
    root = _tmpdir()
    try:
        _committed(root)
        a = _agent(root)
        assert not a.confirm_if_due(False, 599)
        assert a.confirm_if_due(False, 600)
        assert a.reset_wanted and not a.on_trial() and a.active() == "factory"
        # The version being rolled back does not report it: its event would name it as running, and could be lost
        # in the queue with the reset. The next run reports it.
        assert a.pending_report() is None
        doc = json.loads(_read(root + "/ota.json"))
        assert doc["active"] == "factory" and doc["trial"] is False
        b = _agent(root)  # after the reset
        ev = b.pending_report()
        assert ev["kind"] == "ota_rollback" and ev["version"] == "0.2.0"
        assert "not confirmed within 600 s (broker not reached)" == ev["reason"]
        assert b.pending_report() is None
        # the failed slot is the spare one now; the next update wipes it
        m = _manifest(version="0.2.1")
        r = b.begin(m, _sign(m))
        assert r["ok"] and r["slot"] == "slot_a" and not _exists(root + "/slot_a/manifest.json")
    finally:
        ota._rmtree(root)


def test_a_version_whose_update_commands_do_not_load_is_not_confirmed():
    root = _tmpdir()
    real = ota.UPDATE_COMMANDS
    try:
        _committed(root)
        a = _agent(root)
        ota.UPDATE_COMMANDS = "firmware.no_such_update_module"  # stands in for a release's broken cmd_ota.py
        assert a.confirm_if_due(True, 30)
        assert a.reset_wanted and not a.on_trial() and a.active() == "factory"
        ota.UPDATE_COMMANDS = real
        ev = _agent(root).pending_report()
        assert ev["kind"] == "ota_rollback" and ev["reason"].startswith("update commands do not load: ")
        assert "no_such_update_module" in ev["reason"]
        # the real module loads: the same trial would have been confirmed
        assert ota._update_path_broken() is None
    finally:
        ota.UPDATE_COMMANDS = real
        ota._rmtree(root)


def test_second_update_goes_to_the_other_slot_and_rolls_back_to_the_first():
    root = _tmpdir()
    try:
        _committed(root)
        a = _agent(root)
        a.confirm_if_due(True, 30)
        m = _manifest(version="0.3.0")
        sig = _sign(m)
        r = a.begin(m, sig)
        assert r["slot"] == "slot_b"
        _send_all(a, m, sig, start=(1, 0))
        assert a.commit()["ok"]
        doc = json.loads(_read(root + "/ota.json"))
        assert doc["active"] == "slot_b" and doc["previous"] == "slot_a"
        b = _agent(root)
        b.roll_back("test")
        assert b.active() == "slot_a" and _exists(root + "/slot_a/manifest.json")
    finally:
        ota._rmtree(root)


def test_string_and_bytes_keys_sign_alike():
    m = _manifest()
    assert ota.sign_manifest(m, KEY_BYTES, hmac_sha256) == _sign(m)
    body = ota.manifest_bytes(m)
    assert body.startswith(b"streetlight-ota-manifest-1\n")
    assert b"firmware/big.py %d " % len(FILES[2][1]) in body


def test_resume_when_the_cut_came_before_an_empty_file_was_created():
    # Found by the SIGKILL test: the empty file after a finished one did not exist yet when power failed.
    root = _tmpdir()
    try:
        files = [("firmware/a.py", b"abc"), ("firmware/__init__.py", b""), ("firmware/b.py", b"xyz")]
        m = _manifest(files)
        sig = _sign(m)
        a = _agent(root)
        a.begin(m, sig)
        r = a.chunk(_chunk(ota.session_of(sig), 0, 0, b"abc"))
        assert (r["file"], r["offset"]) == (2, 0)
        os.remove(root + "/slot_a/firmware/__init__.py")
        b = _agent(root)
        st = b.status()["staging"]
        assert (st["file"], st["offset"]) == (2, 0)
        assert _read(root + "/slot_a/firmware/__init__.py") == b""
        _send_all(b, m, sig, files=files, start=(2, 0))
        assert b.commit()["ok"]
    finally:
        ota._rmtree(root)
