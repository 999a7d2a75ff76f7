"""End to end: the real node on TLS with certificate checks, per-node credentials, and signed commands.

Certificates come from tools/certs.py (a test CA made for each run with openssl); mosquitto provides the TLS
listener and the password/ACL checks. Without mosquitto or openssl these tests are skipped with the reason.
"""

import json
import time

import pytest
from nodekit import node_config
from operator_client import Operator

import certs as certtool
from broker import Broker, free_port, mosquitto_path

needs_tls = pytest.mark.skipif(not (mosquitto_path() and certtool.openssl_path()),
                               reason="needs mosquitto and openssl (CI installs mosquitto; openssl is on Debian)")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certtool.make_certs(str(tmp_path_factory.mktemp("pki")))


def tls_broker(pki, server="server", extra=""):
    plain = free_port()
    tls = free_port()
    conf = ("listener %d 127.0.0.1\nallow_anonymous true\n" % plain + certtool.mosquitto_listener(pki, tls, server)
            + extra)
    b = Broker("mosquitto", port=plain, listener=False, extra_conf=conf).start()
    b.tls_port = tls
    return b


def tls_node_config(b, pki, hostname="localhost"):
    cfg = node_config(b, "n1", brokers=[{"host": "127.0.0.1", "port": b.tls_port}])
    cfg["mqtt"]["tls"] = certtool.node_tls(pki, hostname)
    return cfg


def wait_log(vn, text, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in vn.read_log():
            return True
        time.sleep(0.2)
    raise AssertionError("%r not in the node log:\n%s" % (text, vn.read_log()[-2000:]))


@needs_tls
def test_node_over_tls_with_verified_broker(pki, node_factory):
    b = tls_broker(pki)
    op = Operator(b.host, b.port)  # the operator watches through the plain listener of the same broker
    try:
        node_factory(b, "n1", config=tls_node_config(b, pki))
        op.wait_for(lambda: op.status.get("n1", {}).get("online"), 30)
        assert op.command("n1", "set", level=35, timeout=15)["level"] == 35
    finally:
        op.close()
        b.close()


@needs_tls
@pytest.mark.parametrize("server,hostname,why", [
    ("other-server", "localhost", "signed by another CA"),
    ("wronghost", "localhost", "certificate for another host"),
])
def test_node_refuses_a_broker_it_cannot_verify(pki, node_factory, server, hostname, why):
    b = tls_broker(pki, server=server)
    op = Operator(b.host, b.port)
    try:
        vn = node_factory(b, "n1", config=tls_node_config(b, pki, hostname))
        wait_log(vn, "mqtt: 127.0.0.1:%d" % b.tls_port)  # the refusal is reported on the node's console
        time.sleep(2)
        assert "n1" not in op.status  # never connected: no birth message on the broker
        assert vn.alive()  # and the node runs on: its lamp follows the program without the network
        assert "boot:" in vn.read_log()
    finally:
        op.close()
        b.close()


@needs_tls
def test_node_with_credentials_and_acl(tmp_path, node_factory):
    import mosquitto_acl

    creds = {"n1": "node-secret-1", "ops": "operator-secret", "mon": "monitor-secret"}
    inv = {"prefix": "city/lights", "nodes": [{"id": "n1", "groups": ["east"], "password": creds["n1"]}],
           "operators": [{"user": "ops", "password": creds["ops"]}],
           "monitors": [{"user": "mon", "password": creds["mon"]}]}
    port = free_port()
    out = mosquitto_acl.generate(inv, str(tmp_path / "broker"), [mosquitto_acl.plain_listener(port)])
    with open(out["conf"]) as f:
        conf = f.read()
    b = Broker("mosquitto", port=port, listener=False, extra_conf=conf).start()
    try:
        cfg = node_config(b, "n1", groups=["east"])
        cfg["mqtt"]["user"] = "n1"
        cfg["mqtt"]["password"] = creds["n1"]
        node_factory(b, "n1", config=cfg)
        op = Operator(b.host, b.port, user="ops", password=creds["ops"])
        try:
            op.wait_for(lambda: op.status.get("n1", {}).get("online"), 30)
            assert op.command("n1", "set", level=20)["ok"]
            assert op.command("n1", "get", what="config")["config"]["mqtt"]["password"] == "***"
        finally:
            op.close()
        with pytest.raises(RuntimeError):
            Operator(b.host, b.port)  # anonymous: refused by the broker
    finally:
        b.close()


def test_signed_commands(broker, node_factory):
    from signing import Signer

    key, gkey = "a" * 64, "group-key-for-tests"
    cfg = node_config(broker, "n1", groups=["east"],
                      security={"require_signed": True, "node_key": key, "group_key": gkey, "max_age_s": 60})
    signed = Operator(broker.host, broker.port, signer=Signer(default_node_key=key, group_key=gkey))
    plain = Operator(broker.host, broker.port)
    try:
        node_factory(broker, "n1", config=cfg, sim={"start_t2k": int(time.time()) - 946684800})
        signed.wait_for(lambda: signed.status.get("n1", {}).get("online"), 30)
        # Time must be valid for expiry checks: the sim clock runs on host time here.
        assert signed.command("n1", "set", level=45)["ok"] is True
        r = plain.command("n1", "set", level=5)
        assert r["ok"] is False and r["error"] == "unsigned command refused"
        # Tampered: sign, then change the level.
        doc = Signer(default_node_key=key)({"id": "t1", "cmd": "set", "level": 60}, "n1")
        doc["level"] = 99
        plain.publish_raw("city/lights/n1/cmd", json.dumps(doc).encode())
        assert plain.wait_for(lambda: plain.replies.get("t1"), 10)[0]["error"] == "bad signature"
        # Expired: a correct signature on an old timestamp.
        doc = Signer(default_node_key=key)({"id": "t2", "cmd": "set", "level": 60, "ts": int(time.time()) - 600},
                                           "n1")
        plain.publish_raw("city/lights/n1/cmd", json.dumps(doc).encode())
        assert "stale" in plain.wait_for(lambda: plain.replies.get("t2"), 10)[0]["error"] or \
            plain.replies["t2"][0]["error"] == "expired"
        # Signed for another group: refused on this group's topic.
        doc = Signer(group_key=gkey)({"id": "t3", "cmd": "set", "level": 61}, "group:west")
        plain.publish_raw("city/lights/group/east/cmd", json.dumps(doc).encode())
        assert plain.wait_for(lambda: plain.replies.get("t3"), 10)[0]["ok"] is False
        # Signed for the group it is sent to: accepted.
        cid = signed.send("group:east", "set", topic="city/lights/group/east/cmd", level=62)
        assert signed.wait_for(lambda: signed.replies.get(cid), 10)[0]["level"] == 62
        state = signed.command("n1", "get", what="state")["state"]
        assert state["level"] == 62
        cfg_reply = json.dumps(signed.command("n1", "get", what="config"))
        assert key not in cfg_reply and gkey not in cfg_reply  # keys never leave the node
        log = json.dumps(signed.command("n1", "get", what="log"))
        assert key not in log and gkey not in log
    finally:
        signed.close()
        plain.close()


def test_signed_replays_never_run_twice(broker, node_factory):
    """Recorded signed commands replayed byte for byte: at once, after 70 newer commands, after the reboot a
    recorded `reboot` caused, and after a power cut. None runs twice (SECURITY.md, "Replays")."""
    from signing import Signer

    key = "b" * 64
    cfg = node_config(broker, "n1", security={"require_signed": True, "node_key": key, "max_age_s": 300})
    sign = Signer(default_node_key=key)
    op = Operator(broker.host, broker.port)
    births = []

    def signed(cid, cmd, **fields):
        doc = sign(dict({"id": cid, "cmd": cmd}, **fields), "n1")
        return json.dumps(doc).encode()

    def ts_of(payload):
        return json.loads(payload)["ts"]

    def send(payload, cid):
        op.publish_raw("city/lights/n1/cmd", payload)
        return op.wait_for(lambda: op.replies.get(cid, [None])[-1], 15)

    def online_births():
        return sum(1 for t, p, _ in list(op.raw) if t == "city/lights/n1/status" and b'"online": true' in p)

    try:
        vn = node_factory(broker, "n1", config=cfg, sim={"start_t2k": int(time.time()) - 946684800})
        op.wait_for(lambda: online_births() >= 1, 30)
        births.append(online_births())
        rec_set = signed("rec-set", "set", level=33)
        assert send(rec_set, "rec-set")["ok"] is True
        # 1. At once: refused, and the answer is "replayed" (not the first reply again).
        op.publish_raw("city/lights/n1/cmd", rec_set)
        r = op.wait_for(lambda: len(op.replies.get("rec-set", [])) == 2 and op.replies["rec-set"][1], 15)
        assert r == {"id": "rec-set", "ok": False, "cmd": "set", "error": "replayed"}
        # 2. After 70 newer accepted commands (more than the 64-slot table): still refused.
        assert send(signed("lvl", "set", level=44), "lvl")["level"] == 44
        for i in range(70):
            assert send(signed("poll-%d" % i, "get", what="state"), "poll-%d" % i)["ok"] is True
            if i % 16 == 15:
                time.sleep(1.1)  # a dashboard's pace, not a flood: at most 64 signed commands fit in one second
        op.publish_raw("city/lights/n1/cmd", rec_set)
        r = op.wait_for(lambda: len(op.replies.get("rec-set", [])) == 3 and op.replies["rec-set"][2], 15)
        assert r["ok"] is False and r["error"] in ("replayed", "signed before the replay window"), r
        assert send(signed("s1", "get", what="state"), "s1")["state"]["override"]["level"] == 44
        # 3. A recorded signed reboot: it restarts the node once; its replay after the restart does nothing.
        rec_reboot = signed("rec-reboot", "reboot", safe=False)
        assert send(rec_reboot, "rec-reboot")["ok"] is True
        op.wait_for(lambda: [p for t, p, _ in list(op.raw) if t == "city/lights/n1/status" and b'"reboot"' in p],
                    15)  # the goodbye (QoS 1)
        op.wait_for(lambda: online_births() > births[-1], 30)
        births.append(online_births())
        boots = vn.boots
        op.publish_raw("city/lights/n1/cmd", rec_reboot)
        r = op.wait_for(lambda: len(op.replies.get("rec-reboot", [])) == 2 and op.replies["rec-reboot"][1], 15)
        assert r["ok"] is False and r["error"] == "signed before the replay window", r
        # A fresh command is answered after the replay (in order): no restart happened in between. After a restart
        # a command needs a ts later than every one accepted before it (the saved floor): the node was back
        # within the reboot's own second, so this one is signed a second later.
        s2 = signed("s2", "get", what="state", ts=ts_of(rec_reboot) + 1)
        assert send(s2, "s2")["state"]["override"]["level"] == 44
        assert vn.boots == boots and online_births() == births[-1]
        # 4. A power cut (SIGKILL), then both recordings again.
        vn.restart("power_on")
        op.wait_for(lambda: online_births() > births[-1], 30)
        for payload, cid, n in ((rec_set, "rec-set", 4), (rec_reboot, "rec-reboot", 3)):
            op.publish_raw("city/lights/n1/cmd", payload)
            r = op.wait_for(lambda: len(op.replies.get(cid, [])) == n and op.replies[cid][n - 1], 15)
            assert r["ok"] is False and r["error"] == "signed before the replay window", r
        state = send(signed("s3", "get", what="state", ts=ts_of(s2) + 1), "s3")["state"]
        assert state["override"]["level"] == 44 and vn.boots == boots + 1
    finally:
        op.close()
