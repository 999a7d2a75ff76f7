"""End to end: the node must come back right after power cuts, crashes, hangs and bad configs (issue: boot,
persistence and fail-safe). Real main.py under the unix port, real broker, paho operator.

Faulty firmware is injected the way a bad release would arrive: as an installed image slot (slot_a, see
docs/OTA.md) that boot.py puts in front of the factory code — a copy of the firmware with one function broken.
"""

import json
import os
import random
import shutil
import time

from conftest import ROOT
from nodekit import node_config
from operator_client import Operator

from firmware import config as configmod
from firmware import timebase


def install_slot(node_dir, patch_file, old, new):
    """A copy of the device code in node_dir/slot_a with `old` replaced by `new` in `patch_file`, made active."""
    slot = os.path.join(node_dir, "slot_a")
    os.makedirs(node_dir, exist_ok=True)
    for pkg in ("firmware", "drivers"):
        shutil.copytree(os.path.join(ROOT, pkg), os.path.join(slot, pkg),
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(ROOT, "lib"), os.path.join(slot, "lib"), ignore=shutil.ignore_patterns("__pycache__"))
    path = os.path.join(slot, patch_file)
    with open(path) as f:
        src = f.read()
    assert old in src, "the patch point moved: update this test"
    with open(path, "w") as f:
        f.write(src.replace(old, new))
    with open(os.path.join(slot, "manifest.json"), "w") as f:
        f.write("{}")
    with open(os.path.join(node_dir, "ota.json"), "w") as f:
        json.dump({"active": "slot_a", "previous": None, "trial": False, "boots": 0}, f)


CLO_CALL = '''    if not clo_cfg["enabled"] or level <= 0:
        return level
'''


def faulty_node(tmp_path, broker, node_factory, fault_code, wdt_ms=30000):
    node_dir = str(tmp_path / "n1")
    install_slot(node_dir, "firmware/clo.py", CLO_CALL, CLO_CALL + fault_code)
    cfg = node_config(broker, "n1", clo={"enabled": True}, system={"control_ms": 200, "wdt_ms": wdt_ms})
    return node_factory(broker, "n1", config=cfg)


def test_crash_loop_ends_in_safe_mode(broker, node_factory, tmp_path):
    op = Operator(broker.host, broker.port)
    try:
        vn = faulty_node(tmp_path, broker, node_factory, "    raise RuntimeError('injected startup fault')\n")
        birth = op.wait_for(lambda: op.status.get("n1", {}).get("online") and op.status["n1"], 60)
        assert birth["safe_mode"] is True
        # Four crashes (soft resets the node did not ask for), then safe mode: photocell only, full level at night.
        assert [code for cause, code in vn.history[:4]] == [78, 78, 78, 78]
        st = op.wait_for(lambda: op.state.get("n1"), 10)
        assert st["safe_mode"] is True and st["mode"] == "safe" and st["level"] == 100
        assert st["reason"] == "photocell"
        log = op.command("n1", "get", what="log")["log"]
        assert any("SAFE MODE: 4 abnormal resets" in line for line in log)
        assert op.command("n1", "set", level=30)["ok"]  # still commandable for recovery
    finally:
        op.close()


def test_hung_loop_is_reset_by_the_watchdog(broker, node_factory, tmp_path):
    op = Operator(broker.host, broker.port)
    try:
        vn = faulty_node(tmp_path, broker, node_factory, "    while True:\n        pass\n", wdt_ms=2000)
        birth = op.wait_for(lambda: op.status.get("n1", {}).get("online") and op.status["n1"], 90)
        assert birth["safe_mode"] is True
        codes = [code for cause, code in vn.history]
        assert codes[:4] == [77, 77, 77, 77]  # each hang ended by the (simulated) hardware watchdog
        # Each boot after a hang was told its cause was the watchdog (the running, fifth boot included).
        assert [cause for cause, code in vn.history[1:4]] == ["wdt"] * 3 and vn.cause == "wdt"
        assert op.wait_for(lambda: op.state.get("n1"), 10)["level"] == 100
    finally:
        op.close()


def test_bad_config_file_falls_back_and_is_reported(broker, node_factory, tmp_path):
    node_dir = tmp_path / "n1"
    node_dir.mkdir()
    good = node_config(broker, "n1")
    (node_dir / "config.good.json").write_text(json.dumps(good))
    bad = dict(good, photocell={"on_lux": 80, "off_lux": 10})
    op = Operator(broker.host, broker.port)
    try:
        node_factory(broker, "n1", config=bad)
        st = op.wait_for(lambda: op.state.get("n1"), 30)
        assert st["config"] == "good" and st["level"] == 100
        ev = op.wait_for(lambda: [e for n, e in op.events if e.get("kind") == "config_error"], 10)[0]
        assert any("photocell.on_lux: must be < off_lux" in p for p in ev["problems"])
    finally:
        op.close()


def test_remote_config_that_loses_the_broker_is_rolled_back(broker, node_factory):
    from broker import free_port

    cfg = node_config(broker, "n1", system={"control_ms": 200, "confirm_config_s": 10})
    op = Operator(broker.host, broker.port)
    try:
        vn = node_factory(broker, "n1", config=cfg)
        op.wait_for(lambda: op.status.get("n1", {}).get("online"), 20)
        dead = free_port()
        r = op.command("n1", "config", set={"mqtt": {"brokers": [{"host": "127.0.0.1", "port": dead}]}})
        assert r["ok"] is True and r["restart"] is True
        op.wait_for(lambda: op.status["n1"].get("online") is False, 10)
        # The new config cannot reach a broker: after confirm_config_s the node restores the previous one.
        op.wait_for(lambda: op.status["n1"].get("online") is True, 60)
        cfg_now = op.command("n1", "get", what="config")["config"]
        assert cfg_now["mqtt"]["brokers"][0]["port"] == broker.port
        ev = op.wait_for(lambda: [e for n, e in op.events if e.get("kind") == "config_rollback"], 10)[0]
        assert ev["reason"] == "new config did not reach the broker within 10 s"
        assert [cause for cause, code in vn.history] == ["power_on", "soft"]  # config reset, then rollback reset
    finally:
        op.close()


POWER_CUTS = int(os.environ.get("POWER_CUTS", "200"))


def _energy(node_dir):
    try:
        with open(os.path.join(node_dir, "state.json")) as f:
            return json.load(f)["meter"]
    except FileNotFoundError:
        return None


def test_power_cuts_at_200_random_points(broker, node_factory, tmp_path):
    """SIGKILL the node at 200 random moments while it writes config (program pushes) and state (fast world clock:
    counter saves every few hundred ms). After every cut: a valid config loads, counters never go backwards."""
    rnd = random.Random(20261127)
    cfg = node_config(broker, "n1", metering={"save_interval_s": 300})
    sim = {"speed": 2000}
    op = Operator(broker.host, broker.port)
    node_dir = str(tmp_path / "n1")
    programs = [{"default": [{"at": "sunset", "level": 100 - i % 50}, {"at": "sunrise", "level": 0}]}
                for i in range(8)]
    try:
        vn = node_factory(broker, "n1", config=cfg, sim=sim)
        last = {"wh": -1, "burn_s": -1}
        torn = 0
        for i in range(POWER_CUTS):
            deadline = time.time() + rnd.uniform(0.05, 0.6)
            while time.time() < deadline:
                op.send("n1", "program", programs=programs[i % len(programs)])  # each writes config files
                time.sleep(0.02)
            vn.restart("power_on")  # SIGKILL, then a boot like after a power cut
            if any(name.endswith(".tmp") for name in os.listdir(node_dir)):
                torn += 1  # the cut fell inside a write: the temp file was left behind
            # What the next boot will load must validate (config.json, or else config.good.json).
            cfg_loaded, source, problems = configmod.load(_Store(node_dir))
            assert source in ("config", "good"), problems
            meter = _energy(node_dir)
            if meter is not None:
                wh = meter["wh"] + meter.get("nwh", 0) / 1e9
                assert wh >= last["wh"] and meter["burn_s"] >= last["burn_s"], (i, meter, last)
                last = {"wh": wh, "burn_s": meter["burn_s"]}
        # One more clean boot, and the node answers from whatever the cuts left on its flash.
        with op.cond:
            op.status.pop("n1", None)
        vn.restart("power_on")
        op.wait_for(lambda: op.status.get("n1", {}).get("online"), 30)
        assert op.command("n1", "get", what="state")["state"]["config"] in ("config", "good")
        print("power cuts: 200, inside a write: %d, energy kept: %.1f Wh" % (torn, last["wh"]))
    finally:
        op.close()


class _Store:
    """Reads the node's files the way the node does (drivers.filestore), from the test process."""

    def __init__(self, root):
        from drivers.filestore import FileStore

        self.fs = FileStore(root)

    def read(self, name):
        return self.fs.read(name)


# --- the sim's net_down cuts the node off for real (drivers/sim.py SimRadio) --------------------------------------


def _first_alarm(op, name, active):
    for node, e in op.events:
        if e.get("kind") == "alarm" and e["name"] == name and e["active"] == active:
            return e
    return None


def test_net_down_cuts_the_node_off_and_it_comes_back(broker, node_factory):
    """While the window lasts nothing the node sends reaches the broker (it goes offline by its Last Will), its
    reconnects fail; the lamp keeps its program; an alarm raised meanwhile is delivered after the window."""
    speed = 4
    t0 = timebase.t2k_from_local(timebase.days_from_civil(2026, 3, 20), 20 * 60, timebase.SITE_SCHEMA.check({}))
    win = (t0 + 40, t0 + 140)  # 10 s .. 35 s of real time after the world began: > 1.5 x keepalive (10 s)
    sim = {"speed": speed, "start_t2k": t0, "net_down": [{"from": win[0], "to": win[1]}],
           "faults": [{"kind": "meter_dead", "from": t0 + 50, "to": None}]}  # raised 60 s later: cut off
    op = Operator(broker.host, broker.port)
    arrivals = []  # (real ms, topic, payload), every message the operator received
    inner = op.client.on_message

    def stamp(client, userdata, msg):
        arrivals.append((time.time() * 1000.0, msg.topic, msg.payload))
        inner(client, userdata, msg)

    op.client.on_message = stamp
    try:
        vn = node_factory(broker, "n1", start=False, sim=sim,
                          config=node_config(broker, "n1", system={"control_ms": 100}))
        vn.start(cause="soft")
        op.wait_for(lambda: op.status.get("n1", {}).get("online"), 20)
        with open(os.path.join(vn.dir, "sim_clock.json")) as f:
            origin = json.load(f)["origin_ms"]

        def real_ms(t2k):
            return origin + (t2k - t0) * 1000.0 / speed

        # The broker gives up on the silent node: its Last Will says offline, during the window.
        op.wait_for(lambda: op.status["n1"].get("online") is False, 60)
        assert time.time() * 1000.0 < real_ms(win[1])
        cid = op.send("n1", "get", what="state")  # into the void: the node never hears it
        # After the window: a new connection, a new birth, and the alarm raised while cut off.
        op.wait_for(lambda: op.status["n1"].get("online") is True, 60)
        ev = op.wait_for(lambda: _first_alarm(op, "current_sensor_fault", True), 20)
        assert win[0] < ev["t"] - timebase.T2K_UNIX_OFFSET < win[1]  # it happened inside the window
        c = op.command("n1", "get", what="counters")
        assert c["link"]["connects"] >= 2 and c["link"]["drops"] >= 1
        assert c["link"]["failures"] >= 1  # reconnects were refused while the net was down, not just silent
        st = op.wait_for(lambda: op.state.get("n1"), 10)
        assert st["level"] == 100 and st["reason"] == "program:default"  # the lamp kept its program
        assert cid not in op.replies
        # Nothing from the node arrived between one second into the window and its end (the broker's own Last
        # Will is not the node's).
        quiet = [(t, topic, p) for t, topic, p in arrivals if real_ms(win[0]) + 1000 <= t <= real_ms(win[1])]
        assert all(topic.endswith("/status") and json.loads(p)["online"] is False for _, topic, p in quiet), quiet
        before = [a for a in arrivals if a[0] < real_ms(win[0])]
        assert before, "the node published nothing before the window: the check above proves nothing"
    finally:
        op.close()
