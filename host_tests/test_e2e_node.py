"""End to end: the real main.py under the MicroPython unix port ↔ a real broker ↔ a paho operator.

Each test runs against every available broker (mosquitto when installed, and always the embedded amqtt broker).
The node's simulated clock runs at real speed here, at night in Padang unless a test says otherwise.
"""

import json
import signal
import time

from nodekit import NOON_T2K
from operator_client import Operator


def online(op, node):
    return lambda: op.status.get(node, {}).get("online") is True


def start(any_broker, node_factory, name="n1", **kw):
    op = Operator(any_broker.host, any_broker.port)
    vn = node_factory(any_broker, name, **kw)
    op.wait_for(online(op, name), 20)
    op.wait_for(lambda: name in op.state, 10)
    return op, vn


def test_birth_state_and_last_will(any_broker, node_factory):
    op, vn = start(any_broker, node_factory)
    try:
        birth = op.status["n1"]
        assert birth["online"] is True and birth["id"] == "n1" and birth["fw"]
        st = op.state["n1"]
        assert st["level"] == 100 and st["reason"] == "program:default" and st["time_valid"] is True
        # Retained: a late subscriber sees both without the node doing anything.
        late = Operator(any_broker.host, any_broker.port)
        late.wait_for(lambda: late.status.get("n1", {}).get("online") and "n1" in late.state, 10)
        late.close()
        vn.kill(signal.SIGKILL)  # a crash, not a clean disconnect: the broker publishes the Last Will
        op.wait_for(lambda: op.status["n1"].get("online") is False, 20)
    finally:
        op.close()


def test_set_with_duration_then_clear(any_broker, node_factory):
    op, vn = start(any_broker, node_factory)
    try:
        r = op.command("n1", "set", level=30, duration_s=600)
        assert r["ok"] is True and r["level"] == 30 and r["until"] is not None
        st = op.wait_for(lambda: op.state["n1"]["reason"] == "override" and op.state["n1"], 10)
        assert st["level"] == 30 and st["override"]["level"] == 30
        r = op.command("n1", "clear")
        assert r["ok"] is True and r["level"] == 100 and r["reason"] == "program:default"
        op.wait_for(lambda: op.state["n1"]["reason"] == "program:default", 10)
    finally:
        op.close()


def test_every_command_is_answered(any_broker, node_factory):
    op, vn = start(any_broker, node_factory, groups=("east",))
    try:
        for what in ("state", "config", "log", "counters"):
            r = op.command("n1", "get", what=what)
            assert r["ok"] is True and what in r, r
        cfg = op.command("n1", "get", what="config")["config"]
        assert cfg["node"]["id"] == "n1" and cfg["mqtt"]["password"] is None
        r = op.command("n1", "identify", seconds=2)
        assert r["ok"] and r["seconds"] == 2
        r = op.command("n1", "time", utc=int(time.time()))
        assert r["ok"] is False and "needs confirmation" in r["error"]  # sim clock is a year off: a big jump
        programs = {"default": [{"at": "sunset", "level": 80}, {"at": "sunrise", "level": 0}]}
        r = op.command("n1", "program", programs=programs)
        assert r["ok"] is True
        op.wait_for(lambda: op.state["n1"]["level"] == 80, 10)
        r = op.command("n1", "config", set={"photocell": {"on_lux": 70, "off_lux": 50}})
        assert r == {"id": r["id"], "ok": False, "cmd": "config", "error": "set.photocell.on_lux: must be < off_lux"}
        r = op.command("n1", "config", set={"report": {"telemetry_s": 60}})
        assert r["ok"] is True and r["restart"] is False
        # Group and broadcast commands reach the node and are answered on its own reply topic.
        cid = op.send("n1", "set", topic="city/lights/group/east/cmd", level=55)
        assert op.wait_for(lambda: op.replies.get(cid), 10)[0]["level"] == 55
        cid = op.send("n1", "clear", topic="city/lights/all/cmd")
        assert op.wait_for(lambda: op.replies.get(cid), 10)[0]["ok"] is True
        cid = op.send("n1", "set", topic="city/lights/group/west/cmd", level=1)  # not our group
        time.sleep(1.0)
        assert cid not in op.replies
        r = op.command("n1", "reboot")
        assert r["ok"] is True
        op.wait_for(lambda: op.status["n1"].get("online") is False, 10)
        op.wait_for(online(op, "n1"), 20)
        assert vn.history[-1][1] == 78   # the supervisor saw a soft reset
        st = op.command("n1", "get", what="state")["state"]
        assert st["level"] == 80  # the pushed program survived the reboot
    finally:
        op.close()


def test_bad_commands_get_reasons_and_change_nothing(any_broker, node_factory):
    op, vn = start(any_broker, node_factory)
    try:
        before = op.command("n1", "get", what="state")["state"]
        cases = [
            (b"not json", "payload is not JSON"),
            (b"\xff\xfe", "payload is not UTF-8"),
            (b"[1, 2]", "payload must be a JSON object"),
            (json.dumps({"id": "x1", "cmd": "set", "level": 101}).encode(), "level: must be in 0..100"),
            (json.dumps({"id": "x2", "cmd": "set", "level": "50"}).encode(), "level: must be an integer"),
            (json.dumps({"id": "x3", "cmd": "launch"}).encode(), "cmd: must be one of"),
            (json.dumps({"id": "x4", "cmd": "set", "level": 5, "extra": 1}).encode(), "extra: unknown field"),
            (json.dumps({"id": "x5", "cmd": "set", "level": 5, "ts": 1000}).encode(), "stale"),
        ]
        for payload, reason in cases:
            n = len(op.raw)
            op.publish_raw("city/lights/n1/cmd", payload)
            reply = op.wait_for(lambda: [json.loads(p) for t, p, _ in op.raw[n:] if t.endswith("/reply")], 10)[0]
            assert reply["ok"] is False and reason in reply["error"], (payload, reply)
        after = op.command("n1", "get", what="state")["state"]
        assert after["level"] == before["level"] and after["override"] is None
    finally:
        op.close()


def test_duplicate_id_is_answered_again_without_acting_twice(any_broker, node_factory):
    op, vn = start(any_broker, node_factory)
    try:
        op.send("n1", "set", id="same-1", level=40)
        op.wait_for(lambda: len(op.replies.get("same-1", [])) == 1, 10)
        op.send("n1", "clear", id="same-2")
        op.wait_for(lambda: op.replies.get("same-2"), 10)
        op.send("n1", "set", id="same-1", level=40)  # the same id again, after the override was cleared
        op.wait_for(lambda: len(op.replies.get("same-1", [])) == 2, 10)
        assert op.replies["same-1"][0] == op.replies["same-1"][1]
        st = op.command("n1", "get", what="state")["state"]
        assert st["override"] is None and st["level"] == 100  # it did not act again
    finally:
        op.close()


def test_retained_command_never_flips_the_lamp(any_broker, node_factory):
    op = Operator(any_broker.host, any_broker.port)
    try:
        # An old retained "off" waits on the broker before the node even starts...
        # (Planted with paho itself: the project's tools never publish a command retained.)
        op.client.publish("city/lights/n1/cmd", json.dumps({"id": "old-1", "cmd": "set", "level": 0}), qos=1,
                          retain=True).wait_for_publish(10)
        vn = node_factory(any_broker, "n1")
        reply = op.wait_for(lambda: op.replies.get("old-1"), 20)[0]
        assert reply["ok"] is False and reply["stale"] is True
        op.wait_for(lambda: op.state.get("n1", {}).get("level") == 100, 10)
        # ...and is refused again after a reconnect, without the lamp ever leaving 100 %.
        vn.restart("soft")
        op.wait_for(lambda: len(op.replies.get("old-1", [])) >= 2, 20)
        levels = [json.loads(p)["level"] for t, p, _ in op.raw if t == "city/lights/n1/state"]
        assert levels and set(levels) == {100}
        op.clear_retained("city/lights/n1/cmd")
    finally:
        op.close()


def test_daylight_lamp_is_off(any_broker, node_factory):
    op, vn = start(any_broker, node_factory, sim={"start_t2k": NOON_T2K})
    try:
        st = op.state["n1"]
        assert st["level"] == 0 and st["reason"] == "program:default"
        tele = op.command("n1", "get", what="state")["state"]
        assert tele["time_valid"] is True
    finally:
        op.close()


def test_no_clock_photocell_decides(any_broker, node_factory):
    # RTC lost (power cut, no battery) at night: no valid time, the photocell sees darkness → lamp on.
    op, vn = start(any_broker, node_factory, sim={"rtc_valid_at_boot": False})
    try:
        st = op.state["n1"]
        assert st["time_valid"] is False and st["level"] == 100 and st["reason"].startswith("photocell")
    finally:
        op.close()


def test_calibrate_learns_the_healthy_current_per_level(broker, node_factory):
    # World clock x20: six levels held 60 s each pass in 18 real seconds, and the 1.5 s (real) fade between levels
    # still settles well inside each hold, as it does at real speed.
    op, vn = start(broker, node_factory, sim={"speed": 20})
    try:
        r = op.command("n1", "calibrate")
        assert r["ok"] and r["levels"] == [10, 20, 40, 60, 80, 100]
        ev = op.wait_for(lambda: [e for n, e in op.events if e.get("kind", "").startswith("calibrat")], 45)[0]
        assert ev["kind"] == "calibrated", ev
        table = ev["nominal_a"]
        assert [lv for lv, a in table] == [10, 20, 40, 60, 80, 100]
        amps = [a for lv, a in table]
        assert amps == sorted(amps) and 0.2 < amps[-1] < 0.35  # a 60 W lamp on 220 V draws about 0.27 A
        cfg = op.command("n1", "get", what="config")["config"]
        assert cfg["faults"]["nominal_a"] == table  # stored: current checks are on from now on
        st = op.wait_for(lambda: op.state["n1"]["reason"] != "calibrate" and op.state["n1"], 10)
        assert st["reason"] == "program:default" and st["level"] == 100 and st["faults"] == []
    finally:
        op.close()


def test_one_birth_per_boot(any_broker, node_factory):
    """Issue 15 4(d): after a reset the broker holds the node's offline status (Will or goodbye) retained; the node
    receives it while subscribing and used to answer it with a birth of its own, on top of the one it sends on
    connecting. A command's reply comes after the births of that connection, so counting them then is exact."""
    op, vn = start(any_broker, node_factory)

    def births():
        return [p for t, p, _ in list(op.raw) if t == "city/lights/n1/status" and b'"online": true' in p]

    try:
        assert len(births()) == 1
        for how in ("power_on", "soft", "reboot"):
            before = len(births())
            if how == "reboot":
                assert op.command("n1", "reboot")["ok"] is True
            else:
                vn.restart(how)
            op.wait_for(lambda: len(births()) > before, 30)
            assert op.command("n1", "get", what="state", timeout=15)["ok"] is True
            assert len(births()) == before + 1, (how, births()[before:])
        # The goodbye before the reboot was delivered (QoS 1) and is what the broker then held retained.
        assert any(t == "city/lights/n1/status" and json.loads(p) == {"online": False, "reason": "reboot"}
                   for t, p, _ in list(op.raw))
    finally:
        op.close()
