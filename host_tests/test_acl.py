"""The city broker's access control and TLS, against a real mosquitto run with the config tools/mosquitto_acl.py makes.

Clients are paho (CPython) standing in for nodes, an operator console and a monitoring system; the TLS checks also
run firmware/tls.py under the MicroPython unix port. Skipped only when mosquitto (or, for TLS, openssl) is absent.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from conftest import ROOT
from harness import MICROPYTHON

from tools import certs as certtool
from tools import mosquitto_acl as acl
from tools.broker import Broker, free_port, mosquitto_path

P = "city/lights"
INVENTORY = {
    "prefix": P,
    "nodes": [{"id": "node-a", "groups": ["east"], "password": "node-a-secret-pw"},
              {"id": "node-b", "groups": ["west"], "password": "node-b-secret-pw"}],
    "operators": [{"user": "ops", "password": "operator-secret-pw"},
                  {"user": "ops2", "password": "operator2-secret-pw"}],
    "monitors": [{"user": "grafana", "password": "monitor-secret-pw"}],
}
PW = {e.get("id") or e["user"]: e["password"] for role in ("nodes", "operators", "monitors") for e in INVENTORY[role]}

needs_mosquitto = pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto is not installed (CI installs it)")


class Client:
    """A paho client that records what it receives, connection results and disconnects."""

    def __init__(self, port, user=None, password=None, client_id=None, tls=None, host="127.0.0.1"):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or user or "anon",
                             protocol=mqtt.MQTTv311)
        if user is not None:
            self.c.username_pw_set(user, password)
        if tls is not None:
            self.c.tls_set(**tls)
        self.lock = threading.Condition()
        self.got = []  # (topic, payload)
        self.result = None
        self.disconnects = 0
        self.subacks = []
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.connect(host, port, keepalive=30)
        self.c.loop_start()

    def _on_connect(self, client, userdata, flags, rc, props):
        with self.lock:
            self.result = rc
            self.lock.notify_all()

    def _on_disconnect(self, client, userdata, flags, rc, props):
        with self.lock:
            self.disconnects += 1
            self.lock.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.got.append((msg.topic, msg.payload))
            self.lock.notify_all()

    def _on_subscribe(self, client, userdata, mid, rcs, props):
        with self.lock:
            self.subacks.append(mid)
            self.lock.notify_all()

    def wait(self, pred, timeout=10.0):
        deadline = time.time() + timeout
        with self.lock:
            while not pred():
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.lock.wait(left)
            return True

    def connected_ok(self):
        assert self.wait(lambda: self.result is not None), "no CONNACK"
        return not self.result.is_failure

    def sub(self, *topics):
        for t in topics:
            _, mid = self.c.subscribe(t, 1)
            assert self.wait(lambda: mid in self.subacks), "no SUBACK for " + t

    def pub(self, topic, payload, qos=1):
        info = self.c.publish(topic, payload, qos=qos)
        info.wait_for_publish(10)  # the broker has processed it (mosquitto acknowledges denied publishes too)

    def has(self, topic, payload):
        return (topic, payload) in self.got

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture(scope="module")
def city_broker():
    if mosquitto_path() is None:
        pytest.skip("mosquitto is not installed (CI installs it)")
    d = tempfile.mkdtemp(prefix="acl-")
    port = free_port()
    out = acl.generate(INVENTORY, d, [acl.plain_listener(port)])
    with open(out["conf"]) as f:
        conf = f.read()
    b = Broker("mosquitto", port=port, listener=False, extra_conf=conf)
    b.start()
    yield b
    b.close()
    shutil.rmtree(d, ignore_errors=True)


class _City:
    def __init__(self, broker):
        self.broker = broker
        self.clients = []

    def connect(self, user, client_id=None, password=None):
        c = Client(self.broker.port, user, PW.get(user) if password is None else password, client_id)
        self.clients.append(c)
        return c


@pytest.fixture
def city(city_broker):
    # Clients live for one test: paho reconnects by itself, and two live clients of one user (one client id, with
    # use_username_as_clientid) would keep pushing each other off.
    c = _City(city_broker)
    yield c
    for cl in c.clients:
        cl.close()


def _marker(sender, receiver, topic):
    """Publish an allowed marker and wait for it: everything sent before it has been routed by then."""
    m = ("marker-%f" % time.time()).encode()
    sender.pub(topic, m)
    assert receiver.wait(lambda: receiver.has(topic, m)), "allowed marker on %s never arrived" % topic


# --- inventory and generated files (no broker) ---------------------------------------------------------------------


def test_inventory_is_checked():
    def bad(change):
        inv = json.loads(json.dumps(INVENTORY))
        change(inv)
        with pytest.raises(acl.InventoryError):
            acl.check_inventory(inv)

    bad(lambda i: i["nodes"][0].update(id="all"))
    bad(lambda i: i["nodes"][0].update(id="a/+/#"))
    bad(lambda i: i["nodes"][0].update(groups=["we#st"]))
    bad(lambda i: i["nodes"][0].update(password="short"))
    bad(lambda i: i["nodes"][0].update(password="two\nlines-password"))
    bad(lambda i: i["operators"][0].update(user="node-a"))
    bad(lambda i: i["monitors"][0].update(user="evil user"))
    bad(lambda i: i.update(prefix="city/#"))


def test_acl_text_grants_exactly_the_roles():
    text = acl.acl_text(INVENTORY)
    rules = [x for x in text.splitlines() if x and not x.startswith("#")]
    assert not [x for x in rules if x.startswith("pattern") or "readwrite" in x], rules
    sections = {}
    user = None
    for line in text.splitlines():
        if line.startswith("user "):
            user = line[5:]
            sections[user] = []
        elif line.startswith("topic ") and user:
            sections[user].append(line[6:])
    assert sections["node-a"] == ["write %s/node-a/%s" % (P, t) for t in acl.NODE_TOPICS_OUT] + [
        "read %s/node-a/status" % P, "read %s/node-a/ota" % P,
        "read %s/node-a/cmd" % P, "read %s/all/cmd" % P, "read %s/group/east/cmd" % P]
    assert sections["grafana"] == ["read %s/#" % P]
    assert all(not r.startswith("write") or r.endswith("/cmd") or r.endswith("/+/ota") for r in sections["ops"])
    for name, pw in PW.items():
        assert pw not in text


def test_generated_conf_sets_listener_options_per_listener(tmp_path):
    out = acl.generate(INVENTORY, str(tmp_path), [acl.plain_listener(18999), acl.plain_listener(18998)],
                       use_tool=False)
    with open(out["conf"]) as f:
        lines = [x.strip() for x in f if x.strip() and not x.startswith("#")]
    first = next(i for i, x in enumerate(lines) if x.startswith("listener "))
    # A listener option before the first listener would silently open mosquitto's default listener on 1883.
    assert not [x for x in lines[:first] if x.split()[0] in ("use_username_as_clientid", "port", "bind_address",
                                                             "certfile", "keyfile", "cafile", "mount_point")]
    assert lines.count("use_username_as_clientid true") == 2
    assert "allow_anonymous false" in lines and "max_packet_size 65536" in lines
    assert "password_file %s" % out["passwd"] in lines and "acl_file %s" % out["acl"] in lines


def test_python_password_hash_format():
    h = acl.hash_password("pw-for-format-test", salt=b"0123456789ab")
    kind, rounds, salt, dk = h.split("$")[1:]
    assert kind == "7" and rounds == "101" and salt == "MDEyMzQ1Njc4OWFi" and len(dk) == 88
    assert acl.hash_password("pw-for-format-test") != h  # random salt


# --- against mosquitto ---------------------------------------------------------------------------------------------


@needs_mosquitto
def test_anonymous_and_wrong_password_refused(city):
    anon = city.connect(None)
    assert not anon.connected_ok()
    wrong = city.connect("node-a", password="not-the-password")
    assert not wrong.connected_ok()
    nobody = city.connect("stranger", password="whatever-password")
    assert not nobody.connected_ok()
    ok = city.connect("node-a")
    assert ok.connected_ok()


@needs_mosquitto
def test_node_cannot_publish_on_other_topics(city):
    mon = city.connect("grafana")
    b = city.connect("node-b")
    a = city.connect("node-a")
    ops = city.connect("ops")
    assert mon.connected_ok() and a.connected_ok() and b.connected_ok() and ops.connected_ok()
    mon.sub(P + "/#")
    b.sub("%s/node-b/cmd" % P, P + "/all/cmd", P + "/group/west/cmd")
    forbidden = ["%s/node-b/%s" % (P, t) for t in acl.NODE_TOPICS_OUT] + [
        "%s/node-b/cmd" % P, "%s/node-a/cmd" % P, P + "/all/cmd", P + "/group/west/cmd", P + "/group/east/cmd",
        "other/topic", "%s/node-a/state/extra" % P]
    for t in forbidden:
        a.pub(t, b"spoof")
    _marker(a, mon, "%s/node-a/state" % P)  # its own topic: allowed
    _marker(ops, b, "%s/node-b/cmd" % P)
    assert not [m for m in mon.got if m[1] == b"spoof"], mon.got
    assert not [m for m in b.got if m[1] == b"spoof"], b.got


@needs_mosquitto
def test_node_cannot_read_other_nodes_commands(city):
    a = city.connect("node-a")
    b = city.connect("node-b")
    ops = city.connect("ops")
    assert a.connected_ok() and b.connected_ok() and ops.connected_ok()
    a.sub("%s/node-b/cmd" % P, P + "/group/west/cmd", P + "/#", "#")
    a.sub("%s/node-a/cmd" % P)
    b.sub("%s/node-b/cmd" % P, P + "/group/west/cmd")
    ops.pub("%s/node-b/cmd" % P, b"secret-b")
    ops.pub(P + "/group/west/cmd", b"secret-west")
    b.pub("%s/node-b/reply" % P, b"b-reply")
    assert b.wait(lambda: b.has("%s/node-b/cmd" % P, b"secret-b") and b.has(P + "/group/west/cmd", b"secret-west"))
    _marker(ops, a, "%s/node-a/cmd" % P)
    allowed = {"%s/node-a/cmd" % P, P + "/all/cmd", P + "/group/east/cmd"}
    assert all(t in allowed for t, _ in a.got), a.got


@needs_mosquitto
def test_monitor_cannot_command_operator_can(city):
    a = city.connect("node-a")
    b = city.connect("node-b")
    mon = city.connect("grafana")
    ops = city.connect("ops")
    assert a.connected_ok() and b.connected_ok() and mon.connected_ok() and ops.connected_ok()
    for n in (a, b):
        u = "node-a" if n is a else "node-b"
        n.sub("%s/%s/cmd" % (P, u), P + "/all/cmd", P + "/group/%s/cmd" % ("east" if n is a else "west"))
    mon.sub(P + "/#")
    for t in ("%s/node-a/cmd" % P, P + "/all/cmd", P + "/group/east/cmd", "%s/node-a/state" % P):
        mon.pub(t, b"from-monitor")
    ops.pub(P + "/group/east/cmd", b"east-only")
    ops.pub(P + "/all/cmd", b"everyone")
    assert a.wait(lambda: a.has(P + "/group/east/cmd", b"east-only") and a.has(P + "/all/cmd", b"everyone"))
    assert b.wait(lambda: b.has(P + "/all/cmd", b"everyone"))
    _marker(ops, a, "%s/node-a/cmd" % P)
    _marker(ops, b, "%s/node-b/cmd" % P)
    assert not [m for m in a.got + b.got + mon.got if m[1] == b"from-monitor"]
    assert not [m for m in b.got if m[1] == b"east-only"]
    # The operator reads what nodes publish; the monitor does too.
    ops.sub(P + "/+/state")
    a.pub("%s/node-a/state" % P, b'{"level":40}')
    assert ops.wait(lambda: ops.has("%s/node-a/state" % P, b'{"level":40}'))
    assert mon.wait(lambda: mon.has("%s/node-a/state" % P, b'{"level":40}'))


@needs_mosquitto
def test_no_client_can_take_over_a_nodes_client_id(city):
    a = city.connect("node-a")
    ops = city.connect("ops2")
    assert a.connected_ok() and ops.connected_ok()
    a.sub("%s/node-a/cmd" % P)
    thief = city.connect("grafana", client_id="node-a")  # would kick node-a off without use_username_as_clientid
    assert thief.connected_ok()
    _marker(ops, a, "%s/node-a/cmd" % P)
    time.sleep(0.3)
    assert a.disconnects == 0


@needs_mosquitto
def test_oversize_packet_dropped_by_broker(city):
    a = city.connect("node-a")
    ops = city.connect("ops")
    assert a.connected_ok() and ops.connected_ok()
    a.sub("%s/node-a/cmd" % P)
    big = b"x" * 70000
    ops.c.publish("%s/node-a/cmd" % P, big, qos=1)
    assert ops.wait(lambda: ops.disconnects > 0), "broker kept a client that sent a 70 000-byte packet"
    ops2 = city.connect("ops2")
    assert ops2.connected_ok()
    _marker(ops2, a, "%s/node-a/cmd" % P)
    assert not [m for m in a.got if len(m[1]) >= 65536]
    fits = b"y" * 60000  # under max_packet_size: delivered
    ops2.pub("%s/node-a/cmd" % P, fits)
    assert a.wait(lambda: a.has("%s/node-a/cmd" % P, fits))


@needs_mosquitto
@pytest.mark.parametrize("use_tool", [False, True])
def test_password_file_from_either_hasher(use_tool):
    if use_tool and acl.mosquitto_passwd_path() is None:
        pytest.skip("mosquitto_passwd is not installed")
    d = tempfile.mkdtemp(prefix="acl-pw-")
    port = free_port()
    try:
        out = acl.generate(INVENTORY, d, [acl.plain_listener(port)], use_tool=use_tool)
        assert out["hashed_by"] == ("mosquitto_passwd" if use_tool else "python")
        with open(out["passwd"]) as f:
            text = f.read()
        assert all(pw not in text for pw in PW.values())
        assert oct(os.stat(out["passwd"]).st_mode & 0o777) == "0o600"
        with open(out["conf"]) as f:
            b = Broker("mosquitto", port=port, listener=False, extra_conf=f.read())
        b.start()
        try:
            good = Client(port, "node-b", PW["node-b"])
            bad = Client(port, "node-b", PW["node-a"], client_id="x")
            assert good.connected_ok()
            assert not bad.connected_ok()
            good.close()
            bad.close()
        finally:
            b.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- TLS -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_city():
    if mosquitto_path() is None:
        pytest.skip("mosquitto is not installed (CI installs it)")
    if certtool.openssl_path() is None:
        pytest.skip("the openssl command is not installed: no test certificates")
    d = tempfile.mkdtemp(prefix="acl-tls-")
    c = certtool.make_certs(os.path.join(d, "pki"))
    ports = {name: free_port() for name in ("server", "wronghost", "other-server")}
    plain = free_port()
    listeners = [acl.tls_listener(ports[n], c["ca"]["pem"], c[n]["pem"], c[n]["key"], "127.0.0.1") for n in ports]
    listeners.append(acl.plain_listener(plain))
    out = acl.generate(INVENTORY, d, listeners)
    with open(out["conf"]) as f:
        b = Broker("mosquitto", port=plain, listener=False, extra_conf=f.read())
    b.start()
    b.certs = c
    b.ports = ports
    yield b
    b.close()
    shutil.rmtree(d, ignore_errors=True)


@needs_mosquitto
def test_tls_listener_with_acl(tls_city):
    tls = certtool.paho_tls(tls_city.certs)
    a = Client(tls_city.ports["server"], "node-a", PW["node-a"], tls=tls, host="localhost")
    ops = Client(tls_city.ports["server"], "ops", PW["ops"], tls=tls, host="localhost")
    try:
        assert a.connected_ok() and ops.connected_ok()
        a.sub("%s/node-a/cmd" % P)
        ops.pub("%s/node-a/cmd" % P, b"over-tls")
        assert a.wait(lambda: a.has("%s/node-a/cmd" % P, b"over-tls"))
        anon = Client(tls_city.ports["server"], tls=tls, host="localhost")
        assert not anon.connected_ok()  # TLS does not replace credentials
        anon.close()
    finally:
        a.close()
        ops.close()


_TLS_PROBE = r"""
import sys
sys.path.insert(0, "")
import json, socket
from firmware.tls import client_context
with open(sys.argv[1]) as f:
    args = json.loads(f.read())
out = {}
for name, port in args["ports"].items():
    ctx = client_context(args["tls"])
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    try:
        ctx.wrap_socket(s, server_hostname=args["host"]).close()
        out[name] = "ok"
    except (OSError, ValueError) as e:
        out[name] = "refused"
        s.close()
bad = {}
for field, value in args["bad"]:
    cfg = dict(args["tls"])
    cfg[field] = value
    try:
        client_context(cfg)
        bad[field + ":" + str(value)[:12]] = "accepted"
    except ValueError as e:
        bad[field + ":" + str(value)[:12]] = str(e)
out["bad"] = bad
out["verify_mode"] = ctx.verify_mode
print("RESULT " + json.dumps(out))
"""


def _probe(runtime, tls_city, tls_cfg, bad=()):
    args = {"ports": tls_city.ports, "host": "localhost", "tls": tls_cfg, "bad": list(bad)}
    # Arguments go through a file: the unix port dies ("FATAL: uncaught NLR") on a command-line argument of a few
    # hundred bytes.
    path = os.path.join(tls_city.dir, "probe-args.json")
    with open(path, "w") as f:
        json.dump(args, f)
    r = subprocess.run([runtime, "-c", _TLS_PROBE, path], cwd=ROOT, capture_output=True, text=True, timeout=60)
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, r.stdout + r.stderr
    return json.loads(line[-1][7:])


# bad base64, too short, PEM text instead of DER, a truncated DER certificate, a key without its certificate
BAD_TLS = [("ca", "not base64!"), ("ca", "AAAA"), ("ca", "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"),
           ("ca", "MIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBCwUAMBQxEjAQBgNV"), ("client_key", "bm90IGEga2V5"),
           ("ca", None)]


@needs_mosquitto
@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_firmware_tls_context_refuses_wrong_ca_and_host(tls_city, runtime):
    import sys

    exe = MICROPYTHON if runtime == "micropython" else sys.executable
    cfg = certtool.node_tls(tls_city.certs, "localhost")
    res = _probe(exe, tls_city, cfg, BAD_TLS)
    assert res["server"] == "ok"
    assert res["wronghost"] == "refused"
    assert res["other-server"] == "refused"
    assert res["verify_mode"] == 2  # CERT_REQUIRED, set by us (the unix port starts at CERT_NONE)
    for key, err in res["bad"].items():
        field = key.split(":")[0]
        assert err != "accepted" and "mqtt.tls." in err, (key, err)
        assert field in err, (key, err)


@needs_mosquitto
def test_firmware_tls_client_certificate_on_micropython(tls_city):
    cfg = certtool.node_tls(tls_city.certs, "localhost", client="client")
    res = _probe(MICROPYTHON, tls_city, cfg)
    assert res["server"] == "ok" and res["wronghost"] == "refused" and res["other-server"] == "refused"


# --- the command line: bad inventories, --help, --bind ---------------------------------------------------------------


def _cli(*args):
    return subprocess.run([os.path.join(ROOT, ".venv", "bin", "python") if os.path.exists(
        os.path.join(ROOT, ".venv", "bin", "python")) else "python3", os.path.join(ROOT, "tools", "mosquitto_acl.py")]
        + list(args), capture_output=True, text=True, timeout=60)


def test_cli_refuses_a_bad_inventory_with_one_line_and_writes_nothing(tmp_path):
    def refused(inv, text, raw=None):
        path = tmp_path / "inventory.json"
        path.write_text(raw if raw is not None else json.dumps(inv))
        out = tmp_path / "out"
        r = _cli(str(path), str(out), "--plain-port", "1883")
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(lines) == 1, r.stderr
        assert lines[0].startswith("mosquitto_acl: ") and text in lines[0], lines
        assert not out.exists()
        for pw in PW.values():
            assert pw not in r.stderr

    def changed(change):
        inv = json.loads(json.dumps(INVENTORY))
        change(inv)
        return inv

    refused(changed(lambda i: i["nodes"][1].update(password="short")), "nodes[1].password: 12..256 characters")
    refused(changed(lambda i: i["nodes"][0].update(password=12345678901234)), "nodes[0].password")
    refused(changed(lambda i: i["operators"][0].pop("password")), "operators[0].password")
    refused(changed(lambda i: i["nodes"].append("node-c")), "nodes[2]: must be an object")
    refused(changed(lambda i: i["nodes"][0].update(groups="east")), "nodes[0].groups: must be a list")
    refused(changed(lambda i: i["nodes"][0].update(pasword="typo-in-the-key")), "nodes[0]: unknown key 'pasword'")
    refused(changed(lambda i: i.update(monitors={"user": "x"})), "monitors: must be a list")
    refused(changed(lambda i: i.update(operator=[])), "unknown key 'operator'")
    refused(None, "inventory must be an object", raw="[]")
    refused(None, "Expecting", raw='{"nodes": [')
    r = _cli(str(tmp_path / "missing.json"), str(tmp_path / "out"), "--plain-port", "1883")
    assert r.returncode == 2 and "No such file" in r.stderr and "Traceback" not in r.stderr
    r = _cli(str(tmp_path / "inventory.json"), str(tmp_path / "out"), "--bind", "every-interface")
    assert r.returncode == 2 and "--bind: must be an IP address" in r.stderr and "Traceback" not in r.stderr


def test_cli_help_states_the_password_rule_and_the_bind_default():
    r = _cli("--help")
    assert r.returncode == 0
    assert "12..256 characters" in r.stdout and "Passwords: %d to" % acl.PASSWORD_MIN in r.stdout
    assert "--bind" in r.stdout and "default 127.0.0.1" in r.stdout


@needs_mosquitto
@pytest.mark.skipif(certtool.openssl_path() is None, reason="the openssl command is not installed")
def test_cli_tls_listener_binds_loopback_unless_told(tmp_path):
    c = certtool.make_certs(str(tmp_path / "pki"))
    certs = tmp_path / "certs"
    certs.mkdir()
    for src, name in ((c["ca"]["pem"], "ca.pem"), (c["server"]["pem"], "server.pem"),
                      (c["server"]["key"], "server.key")):
        shutil.copy(src, str(certs / name))
        os.chmod(str(certs / name), 0o644)
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(INVENTORY))
    tls, plain = free_port(), free_port()
    r = _cli(str(inv), str(tmp_path / "out"), "--certs", str(certs), "--port", str(tls), "--plain-port", str(plain))
    assert r.returncode == 0 and "TLS listener: port %d on 127.0.0.1" % tls in r.stdout, r.stdout + r.stderr
    conf = (tmp_path / "out" / "mosquitto.conf").read_text()
    assert "listener %d 127.0.0.1\n" % tls in conf
    b = Broker("mosquitto", port=plain, listener=False, extra_conf=conf).start()
    try:
        ops = Client(tls, "ops", PW["ops"], tls=certtool.paho_tls(c), host="localhost")
        assert ops.connected_ok()  # the generated TLS listener works, with the inventory's credentials
        ops.close()
    finally:
        b.close()
    r = _cli(str(inv), str(tmp_path / "out2"), "--certs", str(certs), "--bind", "0.0.0.0")
    assert r.returncode == 0 and "port 8883 on every interface" in r.stdout
    assert "listener 8883 0.0.0.0\n" in (tmp_path / "out2" / "mosquitto.conf").read_text()


# --- SECURITY.md says what the code does ---------------------------------------------------------------------------


def _security_section(title):
    with open(os.path.join(ROOT, "SECURITY.md")) as f:
        text = f.read()
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start:end if end >= 0 else len(text)]


def _expand(pattern):
    """`a/{b,c}` → ["a/b", "a/c"]."""
    if "{" not in pattern:
        return [pattern]
    head, rest = pattern.split("{", 1)
    alts, tail = rest.split("}", 1)
    return [x for a in alts.split(",") for x in _expand(head + a + tail)]


def test_security_md_acl_table_is_what_the_tool_generates():
    import re

    doc = {}
    for line in _security_section("### Broker access control").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0] or cells[0] in ("role",) or cells[0].startswith("---"):
            continue
        role = cells[0].split()[0]
        sub = {"<prefix>": P, "<id>": "node-a", "<g>": "east"}
        sets = []
        for cell in cells[1:]:
            topics = set()
            for t in re.findall(r"`([^`]+)`", cell):
                if t.startswith("<prefix>"):
                    for x in _expand(t):
                        for k, v in sub.items():
                            x = x.replace(k, v)
                        topics.add(x)
            sets.append(topics)
        doc[role] = sets
    sections = {}
    user = None
    for line in acl.acl_text(INVENTORY).splitlines():
        if line.startswith("user "):
            user = line[5:]
            sections[user] = (set(), set())
        elif line.startswith("topic ") and user:
            mode, topic = line[6:].split(" ", 1)
            sections[user][0 if mode == "write" else 1].add(topic)
    for role, user in (("node", "node-a"), ("operator", "ops"), ("monitor", "grafana")):
        assert doc[role][0] == sections[user][0], (role, "publish", doc[role][0] ^ sections[user][0])
        assert doc[role][1] == sections[user][1], (role, "receive", doc[role][1] ^ sections[user][1])
    assert set(doc) == {"node", "operator", "monitor", "anonymous"}


def _schema_paths(node, path, out):
    """Every field path of a JSON schema (from schema.to_json_schema), nested objects included."""
    if not isinstance(node, dict):
        return out
    for k, v in (node.get("properties") or {}).items():
        out.append(path + (k,))
        _schema_paths(v, path + (k,), out)
    for key in ("items", "additionalProperties"):
        _schema_paths(node.get(key), path + (("[]",) if key == "items" else ()), out)
    for key in ("anyOf", "oneOf"):
        for v in node.get(key) or ():
            _schema_paths(v, path, out)
    return out


def test_security_md_secret_list_is_what_redact_masks():
    import re

    from firmware import config

    text = _security_section("### No secrets in what the node says")
    doc = {t for t in re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", text)}
    code = {".".join(p) for p in config.SECRET_PATHS}
    assert doc == code, doc ^ code
    # Every password or key in the config schema is one of them (a new secret field must join SECRET_PATHS).
    fields = {".".join(p) for p in _schema_paths(config.SCHEMA.to_json_schema(), (), [])}
    secretish = {f for f in fields if "password" in f.split(".")[-1] or f.split(".")[-1].endswith("_key")}
    assert secretish and secretish <= code, secretish - code
    # And redact really masks each of them in a full config.
    cfg = config.validate({"mqtt": {"password": "p" * 16, "tls": {"ca": "QUJD", "client_key": "a2V5"}},
                           "security": {"node_key": "n" * 32, "group_key": "g" * 32},
                           "ota": {"update_key": "u" * 32}, "hw": {"wifi": {"ssid": "x", "password": "w" * 12}}})
    red = config.redact(cfg)
    for keys in config.SECRET_PATHS:
        d = red
        for k in keys:
            d = d[k]
        assert d == "***", keys
