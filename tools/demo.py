"""The virtual lamp post demo: real firmware under the MicroPython unix port, simulated drivers, a real broker.

`make demo` starts a broker (mosquitto when installed, else the embedded one), a few virtual lamp posts in Padang
whose clocks run fast (a night passes in about a minute and a half), and shows what the broker sees. With
DEMO_SECONDS set it runs that long, without a live screen, and prints a summary (exit status 0 when every node
was seen online, lit at dusk and dark again by dawn).

Environment: DEMO_SECONDS (bounded run), DEMO_NODES (default 3), DEMO_BROKER (auto|mosquitto|amqtt).
"""

import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from broker import Broker  # noqa: E402
from operator_client import Operator  # noqa: E402
from vnode import VirtualNode  # noqa: E402

from firmware.timebase import days_from_civil  # noqa: E402

PADANG_OFFSET_S = 7 * 3600
SIM_SPAN_S = 18 * 3600  # 15:00 to 09:00 local: one dusk and one dawn


def node_config(node_id, broker, control_ms):
    return {
        "node": {"id": node_id, "groups": ["demo", "district-1"]},
        "mqtt": {"brokers": [{"host": broker.host, "port": broker.port}], "keepalive_s": 30},
        "report": {"telemetry_s": 600, "min_interval_s": 60},
        "system": {"control_ms": control_ms},
    }


def sim_config(start_t2k, speed, seed, faults=()):
    return {"speed": speed, "start_t2k": start_t2k, "seed": seed, "rtc_valid_at_boot": True,
            "faults": list(faults)}


def local_clock(t_unix):
    t = t_unix + PADANG_OFFSET_S
    return "%02d:%02d" % (t // 3600 % 24, t // 60 % 60)


def table(op, nodes):
    rows = ["node        online  level  reason              lux      W      Wh  local time"]
    with op.cond:
        for n in nodes:
            st = op.state.get(n, {})
            te = op.tele.get(n, {})
            online = op.status.get(n, {}).get("online")
            t = te.get("t") or st.get("t")
            energy = te.get("energy_wh", st.get("energy_wh", "-"))  # telemetry is fresher than the retained state
            rows.append("%-11s %-7s %5s  %-18s %7s %6s %7s  %s" % (
                n, "yes" if online else ("no" if online is False else "?"), st.get("level", "-"),
                st.get("reason", "-"), te.get("lux", "-"), te.get("w", "-"), energy, local_clock(t) if t else "--:--"))
    return "\n".join(rows)


def main():
    seconds = float(os.environ.get("DEMO_SECONDS", "0") or 0)
    count = int(os.environ.get("DEMO_NODES", "3"))
    kind = os.environ.get("DEMO_BROKER", "auto")
    run_for = seconds if seconds > 0 else 90.0
    speed = max(1, int(SIM_SPAN_S / run_for))
    # 15:00 local in Padang today (UTC 08:00), as the simulated start.
    now = time.gmtime()
    start_t2k = days_from_civil(now[0], now[1], now[2]) * 86400 + 15 * 3600 - PADANG_OFFSET_S
    control_ms = 200
    out = os.path.join(ROOT, "out", "demo")
    shutil.rmtree(out, ignore_errors=True)
    broker = Broker(kind).start()
    print("broker: %s on 127.0.0.1:%d; %d virtual lamp posts, clock x%d" % (broker.kind, broker.port, count, speed))
    names = ["pdg-%04d" % (i + 1) for i in range(count)]
    nodes = []
    op = Operator(broker.host, broker.port)
    levels = {n: [] for n in names}
    try:
        for i, n in enumerate(names):
            vn = VirtualNode(os.path.join(out, n), node_config(n, broker, control_ms),
                             sim_config(start_t2k, speed, 1000 + i))
            vn.start()
            nodes.append(vn)
        t_end = time.time() + run_for
        interactive = seconds <= 0 and sys.stdout.isatty()
        while time.time() < t_end:
            time.sleep(0.25)
            with op.cond:
                for n in names:
                    lv = op.state.get(n, {}).get("level")
                    if lv is not None and (not levels[n] or levels[n][-1] != lv):
                        levels[n].append(lv)
            if interactive:
                sys.stdout.write("\x1b[H\x1b[2J" + table(op, names) + "\n(Ctrl-C to stop)\n")
                sys.stdout.flush()
        print(table(op, names))
    except KeyboardInterrupt:
        pass
    finally:
        for vn in nodes:
            vn.stop()
        op.close()
        broker.close()
    print("\nsummary")
    ok = True
    for n in names:
        seq = levels[n]
        lit = any(v > 0 for v in seq)
        dark_after = lit and seq[-1] == 0 and any(v > 0 for v in seq[:-1])
        online = True if seq else False
        print("  %s: online=%s levels seen %s -> lit at dusk: %s, dark by dawn: %s, final level %s" % (
            n, online, seq, "yes" if lit else "no", "yes" if dark_after else "no", seq[-1] if seq else "-"))
        ok = ok and online and lit and dark_after
    print("result: %s" % ("every lamp came on at dusk and went off at dawn" if ok else "INCOMPLETE"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
