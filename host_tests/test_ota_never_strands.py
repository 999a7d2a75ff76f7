"""An update never strands a node: whatever a release breaks at import or in its first seconds, the node goes back
to the previous version by itself and reports `ota_rollback` (docs/OTA.md, "Rollback").

Every case is end to end: tools/ota.py pushes a broken release through a real broker to a virtual lamp post (the
real boot.py and main.py under the MicroPython unix port, drivers/sim.py), and the test only watches what an
operator sees: the push result, the node's birth, its `ota_status`, its events, and that it obeys a command again.
"""

import os
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import ota as otatool  # noqa: E402
from vnode import VirtualNode  # noqa: E402

KEY = "00112233445566778899aabbccddeeff"
FACTORY = "0.1.0"


def _source(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


# name → (how the release is broken, bundle overrides or exclusions, what the rollback reason must contain)
def _cases():
    sim = _source("drivers/sim.py")
    node = _source("firmware/node.py")
    return {
        # boot.py's trial import check catches it: the previous image runs in the same boot.
        "board_raises_at_import": (
            {"drivers/sim.py": sim + "\n\nraise RuntimeError('release: drivers/sim.py is broken')\n"}, (),
            "import failed", "drivers/sim.py is broken"),
        # The entry module the factory main.py runs is not in the release at all.
        "startup_missing": ({}, ("firmware/startup.py",), "import failed", "startup"),
        # Imports fine, raises in main.py before there is a board: main.py notes it and resets.
        "board_raises_in_main": (
            {"drivers/sim.py": sim + "\n\ndef board_for(cfg):\n    raise RuntimeError('release: no board')\n"}, (),
            "crashed on trial", "no board"),
        # The firmware runs for a few seconds, then raises: startup resets, the trial boot does not come back.
        "node_raises_after_seconds": (
            {"firmware/node.py": node + (
                "\n\n_step = Node.control_step\n\n\n"
                "def _failing_step(self, now_ms):\n"
                "    if ticks_diff(now_ms, self._boot_ms) > 3000:\n"
                "        raise RuntimeError('release: fails after 3 s')\n"
                "    _step(self, now_ms)\n\n\n"
                "Node.control_step = _failing_step\n")}, (),
            "reset before the new version confirmed", None),
        # Runs, connects, but could never take the next update: never confirmed (the confirm check in
        # firmware/ota.py); meanwhile the push tool's own ota_status polls are refused "cannot load".
        "update_commands_broken": (
            {"firmware/cmd_ota.py": "def run(node, cmd, now):\n    return {\n"}, (),
            "", None),
        # The firmware hangs in a blocking call: the watchdog resets it.
        "node_hangs": (
            {"firmware/node.py": node + (
                "\n\ndef _hang(self, poller):\n    self.start(poller)\n    import time\n    time.sleep(3600)\n\n\n"
                "Node.run = _hang\n")}, (),
            "reset before the new version confirmed", None),
    }


CASES = sorted(_cases())


@pytest.fixture(scope="module")
def broker(module_broker):
    return module_broker


@pytest.fixture
def op(broker):
    o = otatool.connect("%s:%d" % (broker.host, broker.port), "city/lights")
    yield o
    o.close()


def node_config(name, broker):
    return {
        "node": {"id": name},
        "mqtt": {"brokers": [{"host": broker.host, "port": broker.port}], "keepalive_s": 30},
        "system": {"control_ms": 200, "wdt_ms": 3000},
        "ota": {"update_key": KEY, "confirm_s": 10, "trial_max_s": 120},
    }


@pytest.mark.parametrize("case", CASES)
def test_a_broken_release_rolls_back_by_itself(case, tmp_path, broker, op):
    overrides, exclude, reason, detail = _cases()[case]
    bundle = str(tmp_path / "bundle")
    otatool.build_bundle(bundle, KEY, "0.3.0", fmt="py", overrides=overrides, exclude=exclude)
    name = case.replace("_", "-")[:32]
    vn = VirtualNode(str(tmp_path / name), node_config(name, broker), {"seed": 3}).start()
    try:
        op.wait_for(lambda: op.status.get(name, {}).get("online") and op.status[name].get("fw") == FACTORY, 30)
        r = otatool.rollout(op, [name], otatool.BundleData(bundle), outcome_timeout=90)[0]
        log = vn.read_log()
        assert r["result"] == "rolled_back", (r, log[-3000:])
        assert reason in r["detail"] and (detail is None or detail in r["detail"]), r
        # Back on the previous version, online, reporting the rollback, and obeying commands again.
        op.wait_for(lambda: op.status.get(name, {}).get("online") and op.status[name].get("fw") == FACTORY, 30)
        st = op.command(name, "ota_status")
        assert st["version"] == FACTORY and st["active"] == "factory" and st["trial"] is False, st
        assert st["result"]["kind"] == "ota_rollback" and st["result"]["version"] == "0.3.0", st
        # The event comes from the previous version's first connected steps, which may follow the ota_status reply.
        op.wait_for(lambda: any(n == name and e.get("kind") == "ota_rollback" for n, e in op.events), 30)
        with op.cond:
            events = [e for n, e in op.events if n == name and e.get("kind") == "ota_rollback"]
        assert events[-1]["running"] == FACTORY and reason in events[-1]["reason"], events
        assert op.command(name, "set", level=40)["ok"]
        assert vn.alive(), vn.history  # never left stopped (the unix port's stand-in for an ESP32 at the REPL)
        print("%s: %s after %.1f s; boots %s" % (case, r["detail"], r["seconds"], vn.history))
    finally:
        vn.stop()
