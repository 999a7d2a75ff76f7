"""A real node (boot.py + main.py under micropython, sim drivers, a real broker) runs across the 2^30 ticks_ms wrap.

The sim's sim.json "ticks_offset" puts the board's ticks_ms a few seconds before the wrap. The node runs through
tools/bench_heapwrap.py, which boots it exactly like `import boot; import main` and logs the ticks value of every
tick it samples — the proof that the node's own clock did cross the wrap while the test watched. Across it the node
must keep answering commands, and its lamp must keep following a program whose steps fall after the wrap.
It runs twice: on the host MicroPython with the code from files, and on the esp32-shaped build (32-bit, ticks period
2^30 natively, 2 x 56 KB heap) with the firmware frozen in, as on the city's ESP32 image.
"""

import json
import os
import sys
import time

import pytest
from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
from broker import Broker  # noqa: E402
from nodekit import esp32_frozen  # noqa: E402
from operator_client import Operator  # noqa: E402
from vnode import VirtualNode  # noqa: E402

from drivers.sim import SIM_SCHEMA, TICKS_MASK, SimClock  # noqa: E402
from firmware import config as configmod  # noqa: E402
from firmware.program import Schedule  # noqa: E402
from firmware.timebase import T2K_UNIX_OFFSET, days_from_civil  # noqa: E402

PERIOD = TICKS_MASK + 1  # 2^30
BEFORE_WRAP_MS = 3000
SPEED = 60  # one simulated minute per real second
START = days_from_civil(2026, 3, 20) * 86400 + 13 * 3600  # 20:00 local in Padang (UTC+7)
PROGRAM = [
    {"at": "20:01", "level": 30},
    {"at": "20:05", "level": 70},
    {"at": "20:08", "level": 20},
    {"at": "06:00", "level": 0},
]
RUN_S = 11.0


def _ticks_offset():
    """The sim.json ticks_offset that puts the board's ticks BEFORE_WRAP_MS before the wrap: the sim counts ticks
    from the clock's creation at boot, starting at ticks_offset (checked here, so a change there fails loudly)."""
    probe = SimClock(SIM_SCHEMA.check({"ticks_offset": 1000}, ""), mono_ms=lambda: 5000)
    assert probe.ticks_ms() == 1000
    return PERIOD - BEFORE_WRAP_MS


def _samples(path):
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # the last line, cut by the stop
    return out


# Found by this test: Node starts with _next_control = 0, and ticks_diff(2^30 - 3000, 0) is -3000, so after the boot
# decision no control step runs until the ticks wrap (up to 2^29 ms when a node boots in the upper half of the
# period; the watchdog fires first). The first program step (20:01) was taken ~130 simulated s late. The fix is in
# firmware/node.py (start(): _next_control = the boot tick); remove this marker with it (strict: a pass fails here).
@pytest.mark.parametrize("runtime", ["host", "esp32-frozen"])
def test_node_answers_and_follows_its_program_across_the_ticks_wrap(tmp_path, request, runtime):
    node_kw = esp32_frozen(request.getfixturevalue("esp32_micropython")) if runtime == "esp32-frozen" else {}
    d = str(tmp_path / "wrapnode")
    heap_out = os.path.join(d, "bench_heap.jsonl")
    with Broker("auto") as broker:
        cfg = {"node": {"id": "wrapnode"}, "mqtt": {"brokers": [{"host": broker.host, "port": broker.port}]},
               "system": {"control_ms": 200}, "programs": {"default": PROGRAM}}
        sim = {"speed": SPEED, "start_t2k": START, "rtc_valid_at_boot": True, "ticks_offset": _ticks_offset()}
        op = Operator(broker.host, broker.port)
        vn = VirtualNode(d, cfg, sim, main=os.path.join(ROOT, "tools", "bench_heapwrap.py"),
                         env={"BENCH_HEAP_OUT": heap_out, "BENCH_SAMPLE_MS": "100"}, **node_kw)
        replies = []
        try:
            vn.start()
            op.wait_for(lambda: op.status.get("wrapnode", {}).get("online"), 15)
            t_end = time.monotonic() + RUN_S
            while time.monotonic() < t_end:
                r = op.command("wrapnode", "get", timeout=5, what="state")  # raises when the node stops answering
                assert r["ok"], r
                replies.append(r["state"])
                time.sleep(0.3)
            alive = vn.alive()
        finally:
            vn.stop()
            op.close()
    log = vn.read_log()
    assert alive and vn.history[-1][0] == "power_on" and len(vn.history) == 1, log[-2000:]
    assert "Traceback" not in log, log[-2000:]

    # The node's own ticks crossed the wrap while it ran (not merely a big number that never wrapped).
    s = _samples(heap_out)
    wraps = [i for i in range(1, len(s)) if s[i]["ms"] < s[i - 1]["ms"]]
    assert len(wraps) == 1, [x["ms"] for x in s]
    i = wraps[0]
    assert s[i - 1]["ms"] > PERIOD - 5000 and s[i]["ms"] < 5000, (s[i - 1], s[i])
    t_wrap = s[i]["now"]  # RTC t2k just after the wrap
    assert s[-1]["now"] - t_wrap >= 4 * 60, "too little of the run after the wrap"

    # The lamp followed the program on both sides of the wrap, with the same lag bound (a control step = 12 s).
    full = configmod.validate(cfg)
    sched = Schedule(full["programs"], full["calendar"], full["site"])
    after = []
    for st in replies:
        t = st["t"] - T2K_UNIX_OFFSET
        allowed = (sched.level_at(t)[0], sched.level_at(t - 20)[0])
        assert st["level"] in allowed and st["reason"] == "program:default", (json.dumps(st), allowed, t - START)
        if t > t_wrap + 15:
            after.append(st["level"])
    # After the wrap the program still moved the lamp: 30 → 70 (20:05) → 20 (20:08).
    assert 70 in after and 20 in after and after.index(70) < len(after) - 1 - after[::-1].index(20), after
