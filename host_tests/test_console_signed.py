"""The console on a fleet that requires signed commands: with the fleet's key (tools/fleet.py settings, signing by
tools/signing.py) its commands are obeyed; without it the node refuses them and the console shows the refusal."""

import time

import pytest

import console  # noqa: F401  (puts tools/ on sys.path)
from console.app import App
from console.store import Store
from nodekit import node_config

import fleet

NODE_KEY = "console-test-node-key-0123456789"
GROUP_KEY = "console-test-group-key-987654321"
T2K_UNIX = 946684800


def _app(broker, db, key):
    settings = {"broker": "mqtt://%s:%d" % (broker.host, broker.port), "prefix": "city/lights", "user": None,
                "password": None, "ca": None, "key": key, "group_key": GROUP_KEY if key else None}
    return App(fleet.connect(settings), Store.open(db)).start("127.0.0.1", 0)


def _done(app, t, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = app.commander.get(t.id)
        if v["done"]:
            return v
        time.sleep(0.05)
    pytest.fail("command %s did not finish" % t.id)


def test_signed_fleet_obeys_the_console_with_the_key_only(broker, node_factory, tmp_path):
    cfg = node_config(broker, "sg-0001", ["signed"], security={"require_signed": True, "node_key": NODE_KEY,
                                                                "group_key": GROUP_KEY})
    # The street keeps the host's time, so the signatures' ts are fresh to the node.
    node_factory(broker, "sg-0001", config=cfg, sim={"start_t2k": int(time.time()) - T2K_UNIX})
    signed = _app(broker, str(tmp_path / "a.db"), NODE_KEY)
    unsigned = _app(broker, str(tmp_path / "b.db"), None)
    try:
        for app in (signed, unsigned):
            deadline = time.time() + 30
            while time.time() < deadline and not (app.fleet.get("sg-0001") or {}).get("online"):
                time.sleep(0.1)
        ok = _done(signed, signed.commander.send("op", ("node", ["sg-0001"]), "set", {"level": 30}))
        assert ok["results"]["sg-0001"]["result"] == "ok", ok
        grp = _done(signed, signed.commander.send("op", ("group", "signed"), "clear", {}))
        assert grp["results"]["sg-0001"]["result"] == "ok", grp  # the group key, on the group topic
        bad = _done(unsigned, unsigned.commander.send("op", ("node", ["sg-0001"]), "set", {"level": 70}))
        r = bad["results"]["sg-0001"]
        assert r["result"] == "error" and "sig" in (r["error"] or ""), r
        assert unsigned.store.command_results(bad["id"])["sg-0001"]["result"] == "error"  # the refusal is history
        # The signed console also learned the post's config (its get config was signed too), secrets hidden.
        deadline = time.time() + 20
        while time.time() < deadline and not (signed.fleet.get("sg-0001") or {}).get("config"):
            time.sleep(0.1)
        sec = signed.fleet.get("sg-0001")["config"]["security"]
        assert sec["node_key"] == "***" and sec["require_signed"] is True
    finally:
        for app in (signed, unsigned):
            app.close()
            app.op.close()
            app.store.close()
