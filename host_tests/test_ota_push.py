"""tools/ota.py push, as an operator runs it: gives up on a node that keeps refusing a file, skips nodes already on
the version, takes fleet.py's broker settings (URLs, FLEET_BROKER, TLS with a client certificate), and reports bad
bundles, bad arguments and an unreachable broker as one line with a non-zero exit — never a traceback.

Through a real broker (mosquitto when installed) and a real virtual node (tools/vnode.py: main.py under the
MicroPython unix port); the CLI runs as a subprocess, the way an operator starts it.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import certs as certtool  # noqa: E402
import ota as otatool  # noqa: E402
from broker import Broker, free_port, mosquitto_path  # noqa: E402
from vnode import VirtualNode  # noqa: E402

KEY = "00112233445566778899aabbccddeeff"
FACTORY = "0.1.0"
OTA = os.path.join(ROOT, "tools", "ota.py")


@pytest.fixture(scope="module")
def broker(module_broker):
    return module_broker


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("push") / "b-0.2.0")
    otatool.build_bundle(out, KEY, "0.2.0", fmt="py")
    return out


@pytest.fixture
def op(broker):
    o = otatool.connect("mqtt://%s:%d" % (broker.host, broker.port))
    yield o
    o.close()


def start_node(tmp_path, name, broker, port=None):
    cfg = {"node": {"id": name, "groups": ["push-test"]},
           "mqtt": {"brokers": [{"host": broker.host, "port": port or broker.port}], "keepalive_s": 30},
           "system": {"control_ms": 200},
           "ota": {"update_key": KEY, "confirm_s": 10, "trial_max_s": 120}}
    return VirtualNode(str(tmp_path / name), cfg, {"seed": 5}).start()


def wait_online(op, name, fw=FACTORY, timeout=30):
    op.wait_for(lambda: op.status.get(name, {}).get("online") and op.status[name].get("fw") == fw, timeout)


def cli(*args, env=None, timeout=180):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    e.update(env or {})
    e["HOME"] = os.environ.get("HOME", "/tmp")
    return subprocess.run([sys.executable, OTA] + list(args), capture_output=True, text=True, env=e, timeout=timeout)


def one_line_error(r, code, text):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and lines and text in lines[-1], r.stderr
    return lines[-1]


def test_a_node_that_keeps_refusing_a_file_is_given_up_on(tmp_path, broker, bundle, op):
    vn = start_node(tmp_path, "refuses", broker)
    try:
        wait_online(op, "refuses")
        bd = otatool.BundleData(bundle)
        # What the sender holds for one file is not what the manifest says (a disk that changed under the tool):
        # the node hashes it at the file's last byte, refuses it and restarts the file, every time.
        i = next(k for k, f in enumerate(bd.files) if f["path"] == "firmware/node.py")
        bad = bytearray(bd.data[i])
        bad[len(bad) // 2] ^= 0x01
        bd.data[i] = bytes(bad)
        r = otatool.rollout(op, ["refuses"], bd, outcome_timeout=60, max_refusals=3)[0]
        assert r["result"] == "failed", r
        assert r["detail"].startswith("gave up: firmware/node.py refused 3 times at offset 0"), r
        assert "sha256 mismatch" in r["detail"], r
        # Bounded: everything before the file once, then three rounds of the file plus the window in flight behind
        # it (the old sender never stopped: 23 MB in 45 s).
        window = 4 * otatool.otamod.MAX_CHUNK
        assert r["bytes"] <= bd.start[i] + 3 * (bd.files[i]["size"] + window), r
        st = op.command("refuses", "ota_status")
        assert st["staging"] is None and st["version"] == FACTORY and st["active"] == "factory", st  # aborted
        assert op.command("refuses", "set", level=30)["ok"] and vn.history == []  # never restarted
    finally:
        vn.stop()


def test_cli_skips_nodes_already_on_the_version_unless_forced(tmp_path, broker, bundle, op):
    vn = start_node(tmp_path, "canary", broker)
    env = {"FLEET_BROKER": "mqtt://%s:%d" % (broker.host, broker.port)}  # the URL form OPERATIONS.md documents
    try:
        wait_online(op, "canary")
        r = cli("push", "--bundle", bundle, "--group", "push-test", "--json", "--outcome-timeout", "90", env=env)
        assert r.returncode == 0, r.stdout + r.stderr + vn.read_log()[-2000:]
        assert [(x["node"], x["result"]) for x in json.loads(r.stdout)] == [("canary", "confirmed")]
        wait_online(op, "canary", "0.2.0")
        boots = list(vn.history)
        r = cli("push", "--bundle", bundle, "--group", "push-test", env=env)  # the table, as an operator reads it
        assert r.returncode == 0, r.stdout + r.stderr
        row = [ln for ln in r.stdout.splitlines() if ln.startswith("canary")]
        assert row and " skipped " in row[0] and "already running 0.2.0" in row[0], r.stdout
        assert vn.history == boots  # the canary did not restart
        r = cli("push", "--bundle", bundle, "--node", "canary", "--force", "--json", "--outcome-timeout", "90",
                env=env)
        assert r.returncode == 0 and json.loads(r.stdout)[0]["result"] == "confirmed", r.stdout + r.stderr
        assert op.command("canary", "ota_status")["active"] == "slot_b"
    finally:
        vn.stop()


def test_cli_errors_are_one_line_and_nothing_is_sent(tmp_path, broker, bundle):
    url = "mqtt://%s:%d" % (broker.host, broker.port)
    tampered = str(tmp_path / "tampered")
    shutil.copytree(bundle, tampered)
    with open(os.path.join(tampered, "files", "firmware", "control.py"), "a") as f:
        f.write("\nLAMP_ALWAYS_OFF = True\n")
    one_line_error(cli("push", "--bundle", tampered, "--all", "--broker", url), 2,
                   "bundle %s: bundle file firmware/control.py does not match its manifest" % tampered)
    one_line_error(cli("push", "--bundle", str(tmp_path / "nothing"), "--all", "--broker", url), 2,
                   "bundle.json not found")
    with open(os.path.join(tampered, "bundle.json"), "w") as f:
        f.write("{not json")
    one_line_error(cli("push", "--bundle", tampered, "--all", "--broker", url), 2, "bundle %s:" % tampered)
    one_line_error(cli("push", "--bundle", bundle, "--broker", url), 2, "push needs --node, --group or --all")
    one_line_error(cli("push", "--bundle", bundle, "--all", "--percent", "0", "--broker", url), 2, "--percent")
    one_line_error(cli("push", "--bundle", bundle, "--all", "--broker", "ftp://x"), 2, "broker URL must be")
    one_line_error(cli("push", "--bundle", bundle, "--all", "--broker", url, "--ca", str(tmp_path / "no.pem")), 2,
                   "--ca %s: no such file" % (tmp_path / "no.pem"))
    one_line_error(cli("push", "--bundle", bundle, "--all", "--bogus"), 2, "unrecognized arguments: --bogus")
    one_line_error(cli("build", "--out", str(tmp_path / "o"), "--format", "py"), 2, "--key, --key-file or OTA_KEY")
    one_line_error(cli("build", "--out", str(tmp_path / "o"), "--format", "py", "--key", KEY, "--version", "1.2"),
                   2, "version must be MAJOR.MINOR.PATCH")
    dead = "mqtt://127.0.0.1:%d" % free_port()  # nothing listens there
    one_line_error(cli("versions", "--broker", dead), 3, "unreachable")
    one_line_error(cli("push", "--bundle", bundle, "--all", env={"FLEET_BROKER": dead}), 3, "unreachable")


needs_tls = pytest.mark.skipif(not (mosquitto_path() and certtool.openssl_path()),
                               reason="needs mosquitto and openssl (CI installs mosquitto; openssl is on Debian)")


@needs_tls
def test_cli_reaches_a_tls_broker_that_requires_a_client_certificate(tmp_path):
    pki = certtool.make_certs(str(tmp_path / "pki"))
    plain, tls = free_port(), free_port()
    conf = ("listener %d 127.0.0.1\nallow_anonymous true\n" % plain
            + certtool.mosquitto_listener(pki, tls, require_client_cert=True))
    b = Broker("mosquitto", port=plain, listener=False, extra_conf=conf).start()
    vn = None
    try:
        vn = start_node(tmp_path, "tls-node", b)
        op = otatool.connect("%s:%d" % (b.host, b.port))
        try:
            wait_online(op, "tls-node")
        finally:
            op.close()
        url = "mqtts://localhost:%d" % tls
        tls_args = ["--ca", pki["ca"]["pem"], "--cert", pki["client"]["pem"], "--cert-key", pki["client"]["key"]]
        r = cli("versions", "--broker", url, "--json", *tls_args)
        assert r.returncode == 0, r.stderr
        assert {"node": "tls-node", "online": True, "fw": FACTORY} == {k: v for k, v in json.loads(r.stdout)[0].items()
                                                                      if k != "groups"}
        # The same settings from the environment, as fleet.py reads them.
        env = {"FLEET_BROKER": url, "FLEET_CA": pki["ca"]["pem"], "FLEET_CERT": pki["client"]["pem"],
               "FLEET_CERT_KEY": pki["client"]["key"]}
        r = cli("versions", "--json", env=env)
        assert r.returncode == 0 and json.loads(r.stdout)[0]["node"] == "tls-node", r.stderr
        # Without the client certificate the broker refuses the handshake: one line, exit 3.
        one_line_error(cli("versions", "--broker", url, "--ca", pki["ca"]["pem"]), 3, "unreachable")
        one_line_error(cli("versions", "--broker", url, "--cert-key", pki["client"]["key"],
                           "--ca", pki["ca"]["pem"]), 2, "--cert-key needs --cert")
    finally:
        if vn is not None:
            vn.stop()
        b.close()
