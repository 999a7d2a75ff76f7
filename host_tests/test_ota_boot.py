"""boot.py slot choice, trial and rollback, and power cuts (SIGKILL) while staging and switching, on the unix port.

CPython drives real `micropython` processes in a temporary node directory, the way tools/vnode.py runs a node
(cwd = the node's flash, MICROPYPATH = repo + repo/lib, `import boot` first). A "probe" boot proves the node is
bootable: boot.py runs, then firmware.node, drivers.sim and firmware.version import, and the probe prints where
firmware.node came from and which version it is.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from harness import MICROPYTHON

sys.path.insert(0, os.path.join(ROOT, "tools"))
import ota as otatool  # noqa: E402  (tools/ota.py)

KEY = "00112233445566778899aabbccddeeff"
FACTORY_VERSION = "0.1.0"

PROBE = """
import boot
import firmware.node
import drivers.sim
from firmware.version import VERSION
print("PROBE", VERSION, firmware.node.__file__)
"""

# The node's side of a transfer without MQTT: the same agent calls the node makes, fed from a bundle directory.
STAGE = """
import boot
import json, os, struct, sys
from firmware import ota
from firmware.signing import hmac_sha256
bdir = os.getenv("BUNDLE")
with open(bdir + "/bundle.json") as f:
    b = json.loads(f.read())
m = b["manifest"]
a = ota.OtaAgent(".", {"confirm_s": 10, "trial_max_s": 600, "max_bytes": 4194304}, os.getenv("OTA_KEY"),
                 hmac_sha256, print)
r = a.begin(m, b["manifest_sig"], os.getenv("FORCE") == "1")
if not r["ok"]:
    print("BEGIN FAILED", r["error"])
    sys.exit(2)
print("START", r["file"], r["offset"], r["resumed"])
fi, off = r["file"], r["offset"]
files = m["files"]
trace = os.getenv("TRACE") == "1"
while fi < len(files):
    with open(bdir + "/files/" + files[fi]["path"], "rb") as f:
        f.seek(off)
        data = f.read(int(os.getenv("CHUNK") or "4096"))
    r = a.chunk(struct.pack(ota.CHUNK_HEADER, 1, fi, r["session"], off) + data)
    if not r["ok"]:
        print("CHUNK FAILED", r)
        sys.exit(3)
    fi, off = r["file"], r["offset"]
    if trace:  # hand-shake with the test, so its cut lands where it chose, not wherever a pipe buffer let it
        print("POS", sum(f["size"] for f in files[:fi]) + off)
        sys.stdin.readline()
if os.getenv("COMMIT") == "1":
    import time
    print("COMMITTING")
    t0 = time.ticks_ms()
    r = a.commit()
    print("COMMIT_MS", time.ticks_diff(time.ticks_ms(), t0))
    print("COMMIT", r["ok"], r.get("error"))
print("STAGED")
"""

AGENT = """
import boot
import json
from firmware import ota
from firmware.signing import hmac_sha256
a = ota.OtaAgent(".", {"confirm_s": 10, "trial_max_s": 600, "max_bytes": 4194304}, "%s", hmac_sha256, print)
""" % KEY


def _env(extra=None):
    env = dict(os.environ)
    env["MICROPYPATH"] = ROOT + os.pathsep + os.path.join(ROOT, "lib")
    env["SIM_RESET_CAUSE"] = "power_on"
    env["OTA_KEY"] = KEY
    env.update(extra or {})
    return env


def run_mp(node, code, env=None, timeout=60):
    r = subprocess.run([MICROPYTHON, "-c", code], cwd=node, env=_env(env), capture_output=True, text=True,
                       timeout=timeout)
    return r


def probe(node, cause="power_on"):
    """Boot the node once; return (version, module file) — and fail the test when it does not boot."""
    r = run_mp(node, PROBE, {"SIM_RESET_CAUSE": cause})
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("PROBE ")]
    assert r.returncode == 0 and lines, "node not bootable:\n" + r.stdout + r.stderr
    _, version, path = lines[-1].split(" ", 2)
    return version, path


def ota_doc(node):
    try:
        with open(os.path.join(node, "ota.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def check_consistent(node, version, path):
    """What ran is what ota.json says: the active slot's files at its version, or the factory image."""
    doc = ota_doc(node) or {}
    active = doc.get("active")
    if active in ("slot_a", "slot_b") and os.path.exists(os.path.join(node, active, "manifest.json")):
        with open(os.path.join(node, active, "manifest.json")) as f:
            want = json.load(f)["version"]
        assert path.startswith(active + "/firmware/"), (path, doc)
        assert version == want
    else:
        assert path == os.path.join(ROOT, "firmware", "node.py"), (path, doc)
        assert version == FACTORY_VERSION


def stage(node, bundle, commit=True, env=None):
    e = {"BUNDLE": bundle, "COMMIT": "1" if commit else "0", "TRACE": "0"}
    e.update(env or {})
    r = run_mp(node, STAGE, e)
    assert r.returncode == 0 and "STAGED" in r.stdout, r.stdout + r.stderr
    return r.stdout


def agent_run(node, code):
    r = run_mp(node, AGENT + code)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    base = tmp_path_factory.mktemp("bundles")
    out = {}
    for v in ("0.2.0", "0.3.0"):
        out[v] = str(base / v)
        otatool.build_bundle(out[v], KEY, v, fmt="py")
    out["mpy"] = str(base / "mpy")
    otatool.build_bundle(out["mpy"], KEY, "0.2.5", fmt="mpy", march=None)  # portable bytecode
    out["broken"] = str(base / "broken")
    otatool.build_bundle(out["broken"], KEY, "0.4.0", fmt="py",
                         overrides={"firmware/node.py": "def broken(:\n    pass\n"})
    return out


@pytest.fixture
def node(tmp_path):
    d = tmp_path / "node"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"node": {"id": "t1"}}))
    (d / "sim.json").write_text("{}")
    return str(d)


def test_without_ota_json_the_factory_image_boots(node):
    assert probe(node) == (FACTORY_VERSION, os.path.join(ROOT, "firmware", "node.py"))
    (open(os.path.join(node, "ota.json"), "w")).write("{not json")
    assert probe(node)[0] == FACTORY_VERSION  # a damaged ota.json never stops the boot
    (open(os.path.join(node, "ota.json"), "w")).write('{"active": "slot_b"}')  # a slot that is not there
    assert probe(node)[0] == FACTORY_VERSION


def test_new_slot_boots_on_trial_and_stays_after_confirm(node, bundles):
    out = stage(node, bundles["0.2.0"])
    assert "COMMIT True" in out
    assert ota_doc(node)["trial"] is True and ota_doc(node)["boots"] == 0
    # the trial boot: the node runs the new version, connects, confirms
    out = agent_run(node, "from firmware.version import VERSION\nprint('V', VERSION)\n"
                          "print('C', a.confirm_if_due(True, 10))\nprint('E', json.dumps(a.pending_report()))\n")
    assert "V 0.2.0" in out and "C True" in out and '"kind": "ota_confirmed"' in out
    doc = ota_doc(node)
    assert doc["active"] == "slot_a" and doc["trial"] is False
    for _ in range(3):  # confirmed: every later boot, whatever the cause, stays on it
        assert probe(node, "wdt") == ("0.2.0", "slot_a/firmware/node.py")


def test_reset_during_trial_rolls_back_and_is_reported(node, bundles):
    stage(node, bundles["0.2.0"])
    assert probe(node) == ("0.2.0", "slot_a/firmware/node.py")  # trial boot 1 ...
    assert ota_doc(node)["boots"] == 1
    v, path = probe(node, "wdt")  # ... which reset before confirming: boot.py goes back
    assert (v, path) == (FACTORY_VERSION, os.path.join(ROOT, "firmware", "node.py"))
    doc = ota_doc(node)
    assert doc["active"] == "factory" and doc["trial"] is False
    assert doc["result"]["kind"] == "ota_rollback" and doc["result"]["version"] == "0.2.0"
    out = agent_run(node, "print('E', json.dumps(a.pending_report()))\nprint('E2', a.pending_report())\n")
    ev = json.loads(out.split("E ", 1)[1].splitlines()[0])
    assert ev["kind"] == "ota_rollback" and ev["reason"] == "reset before the new version confirmed"
    assert ev["running"] == FACTORY_VERSION and "E2 None" in out


def test_image_that_does_not_import_rolls_back_at_its_first_boot(node, bundles):
    out = stage(node, bundles["broken"])  # signed and hashed correctly, but node.py is not Python
    assert "COMMIT True" in out
    r = run_mp(node, PROBE)
    assert r.returncode == 0 and "rolled back" in r.stdout, r.stdout + r.stderr
    assert "PROBE %s %s" % (FACTORY_VERSION, os.path.join(ROOT, "firmware", "node.py")) in r.stdout
    doc = ota_doc(node)
    assert doc["active"] == "factory" and "import failed" in doc["result"]["reason"]
    assert "SyntaxError" in doc["result"]["reason"]


def test_second_update_uses_slot_b_and_rolls_back_to_slot_a(node, bundles):
    stage(node, bundles["0.2.0"])
    agent_run(node, "a.confirm_if_due(True, 10)\n")
    out = stage(node, bundles["0.3.0"])
    assert "COMMIT True" in out
    doc = ota_doc(node)
    assert doc["active"] == "slot_b" and doc["previous"] == "slot_a"
    assert probe(node) == ("0.3.0", "slot_b/firmware/node.py")
    assert probe(node, "soft") == ("0.2.0", "slot_a/firmware/node.py")
    # older than the running 0.2.0 now? no: 0.3.0 again is newer and goes to slot_b again
    out = stage(node, bundles["0.3.0"], commit=False)
    assert "START 1 0 False" in out  # the failed image was wiped, not resumed


def test_mpy_bundle_runs_from_the_slot(node, bundles):
    stage(node, bundles["mpy"])
    assert probe(node) == ("0.2.5", "slot_a/firmware/node.mpy")


def test_downgrade_needs_force(node, bundles):
    stage(node, bundles["0.3.0"])
    agent_run(node, "a.confirm_if_due(True, 10)\n")
    r = run_mp(node, STAGE, {"BUNDLE": bundles["0.2.0"], "COMMIT": "1"})
    assert r.returncode == 2 and "older than the running 0.3.0" in r.stdout
    out = stage(node, bundles["0.2.0"], env={"FORCE": "1"})
    assert "COMMIT True" in out
    assert probe(node)[0] == "0.2.0"


def _kill_at(node, code, env, delay):
    p = subprocess.Popen([MICROPYTHON, "-c", code], cwd=node, env=_env(env), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    out, _ = p.communicate(timeout=30)
    return p.returncode == -signal.SIGKILL, out


def _kill_when(node, code, env, marker, at_least, delay):
    """Run `code`; once it prints `marker` (with a number >= at_least, when given), wait `delay` s and SIGKILL it."""
    p = subprocess.Popen([MICROPYTHON, "-c", code], cwd=node, env=_env(env), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    try:
        for line in p.stdout:
            hit = line.startswith(marker) and (at_least is None or int(line.split()[1]) >= at_least)
            if line.startswith("POS"):
                p.stdin.write("go\n")  # let it go on (with the next chunk write, when this is the hit)
                p.stdin.flush()
            if hit:
                time.sleep(delay)
                break
    finally:
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=30)


def _staged_bytes(node):
    total = 0
    for dirpath, _, names in os.walk(os.path.join(node, "slot_a")):
        total += sum(os.path.getsize(os.path.join(dirpath, n)) for n in names if n.endswith(".py"))
    return total


def _duration(node, code, env):
    """How long one uninterrupted run of `code` takes on a copy of the node (the range for random kills)."""
    copy = node + "-timing"
    shutil.copytree(node, copy)
    t0 = time.monotonic()
    r = run_mp(copy, code, env)
    dt = time.monotonic() - t0
    shutil.rmtree(copy)
    assert r.returncode == 0, r.stdout + r.stderr
    return dt


def test_power_cuts_while_staging_and_switching_always_leave_a_bootable_node(node, bundles):
    rnd = random.Random(9)
    total = sum(f["size"] for f in otatool.load_bundle(bundles["0.2.0"])["manifest"]["files"])
    env = {"BUNDLE": bundles["0.2.0"], "COMMIT": "0", "CHUNK": "1024", "TRACE": "1"}
    # 1. staging, cut at random points of the transfer (chosen by bytes, so machine load cannot skew them) and a
    #    random few ms more, so cuts also land inside writes; every restart boots the factory image and resumes
    seen = [0]
    for target in sorted(rnd.randrange(1, total) for _ in range(10)):
        _kill_when(node, STAGE, env, "POS", target, rnd.uniform(0.0, 0.004))
        v, path = probe(node)
        check_consistent(node, v, path)
        assert v == FACTORY_VERSION  # nothing was committed
        done = _staged_bytes(node)
        assert done >= seen[-1], seen  # a restart resumes: what reached the flash is never thrown away
        seen.append(done)
    assert len(set(seen)) >= 5, seen  # the cuts landed at several different points of the transfer
    print("staging cuts, bytes on flash after each:", seen)
    # 2. the switch (verify from flash, slot manifest, ota.json rename), cut at random moments inside commit()
    env = {"BUNDLE": bundles["0.2.0"], "COMMIT": "1"}
    copy = node + "-timing"
    shutil.copytree(node, copy)
    commit_ms = int(stage(copy, bundles["0.2.0"]).split("COMMIT_MS ", 1)[1].split()[0])
    shutil.rmtree(copy)
    outcomes = []
    for _ in range(30):
        if (ota_doc(node) or {}).get("active") == "slot_a":
            break
        _kill_when(node, STAGE, env, "COMMITTING", None, rnd.uniform(0.0, commit_ms * 1.2 / 1000.0))
        doc = ota_doc(node)
        switched = doc is not None and doc.get("active") == "slot_a"
        outcomes.append((switched, os.path.exists(os.path.join(node, "slot_a", "manifest.json"))))
        if not switched:
            v, path = probe(node)
            check_consistent(node, v, path)
            assert v == FACTORY_VERSION
    print("commit took %d ms; switch cuts, (switched, slot complete) after each:" % commit_ms, outcomes)
    if (ota_doc(node) or {}).get("active") != "slot_a":
        stage(node, bundles["0.2.0"])
    # 3. the trial boots themselves (boot.py rewrites ota.json), cut at random moments
    span = _duration(node, PROBE, {})
    versions = []
    for _ in range(8):
        _kill_at(node, PROBE, {}, rnd.uniform(0.0, span))
        v, path = probe(node)
        check_consistent(node, v, path)
        versions.append(v)
    print("trial-boot cuts, version booted after each:", versions)
    # whatever the cuts did, the node ends on the factory image (rolled back: never confirmed) or still on trial
    doc = ota_doc(node)
    assert doc["active"] in ("factory", "slot_a")
    assert versions[-1] == FACTORY_VERSION and doc["result"]["kind"] == "ota_rollback"


class _Cut(Exception):
    pass


def _with_cut_at(n, fn):
    """Run fn() with firmware.ota's flash writes failing from the n-th on (a power cut between two writes, made
    deterministic: every write, rename, remove, mkdir and rmdir is a step). Returns True when fn finished."""
    from firmware import ota

    count = [0]

    def step():
        count[0] += 1
        if count[0] >= n:
            raise _Cut()

    class CutOs:
        def __getattr__(self, name):
            real = getattr(os, name)
            if name in ("rename", "remove", "mkdir", "rmdir"):
                def cut(*a):
                    step()
                    return real(*a)
                return cut
            return real

    def cut_open(path, mode="r", *a):
        if "w" in mode or "a" in mode:
            step()
        return open(path, mode, *a)

    ota.os, ota.open = CutOs(), cut_open
    try:
        fn()
        return True
    except _Cut:
        return False
    finally:
        ota.os = os
        del ota.open


def _cpython_agent(node):
    from firmware import ota
    from firmware.signing import hmac_sha256

    return ota.OtaAgent(node, {"confirm_s": 10, "trial_max_s": 600, "max_bytes": 4194304}, KEY, hmac_sha256)


def test_a_cut_between_any_two_flash_writes_of_begin_or_commit_leaves_a_bootable_node(node, bundles, tmp_path):
    # Staged and committed 0.2.0 (slot_a), confirmed; a broken 0.4.0 left in slot_b; then 0.3.0 is staged into
    # slot_b and switched. Every write step of the 0.3.0 begin (which wipes slot_b) and commit is cut once, each
    # on a fresh copy of the node, and the copy must boot what ota.json says.
    stage(node, bundles["0.2.0"])
    agent_run(node, "a.confirm_if_due(True, 10)\n")
    stage(node, bundles["broken"])  # 0.4.0 in slot_b, complete with its manifest.json, rolled back at once:
    assert probe(node)[0] == "0.2.0" and os.path.exists(os.path.join(node, "slot_b", "manifest.json"))
    bd = otatool.BundleData(bundles["0.3.0"])  # so the begin below has a whole image to wipe
    steps = {"begin": 0, "commit": 0}
    for phase in ("begin", "commit"):
        n = 1
        while True:
            copy = str(tmp_path / ("cut-%s-%d" % (phase, n)))
            shutil.copytree(node, copy)
            if phase == "commit":
                r = run_mp(copy, STAGE, {"BUNDLE": bundles["0.3.0"], "COMMIT": "0"})
                assert r.returncode == 0, r.stdout
            a = _cpython_agent(copy)
            if phase == "begin":
                done = _with_cut_at(n, lambda: a.begin(bd.manifest, bd.sig))
            else:
                done = _with_cut_at(n, lambda: a.commit())
            v, path = probe(copy)
            check_consistent(copy, v, path)
            doc = ota_doc(copy)
            if doc["active"] == "slot_b":
                assert phase == "commit" and v == "0.3.0"
            else:
                assert v == "0.2.0" and path.startswith("slot_a/")  # the running version, never the factory
            shutil.rmtree(copy)
            if done:
                break
            n += 1
        steps[phase] = n
    print("write steps cut: begin %d, commit %d" % (steps["begin"], steps["commit"]))
    assert steps["begin"] >= 3 and steps["commit"] >= 5
