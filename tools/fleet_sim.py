"""A virtual fleet: N virtual lamp posts (firmware on the MicroPython unix port, sim drivers) spread over Padang.

    python tools/fleet_sim.py --nodes 20 --seconds 60            # bounded run, then a summary
    python tools/fleet_sim.py --bench 10,25,50,100 [--json]      # how many nodes does this machine sustain?

Nodes stand along a few streets around Padang (-0.95, 100.35), with deterministic lat/lon jitter; each obeys its
street's group and the group "sim-fleet". A few carry an injected fault from drivers/sim.py FAULT_KINDS. The world
starts shortly before sunset and runs `--speed` times faster than real time, so lamps light up during a short run.
Without --broker a local broker is started (mosquitto when installed, else the embedded amqtt). The nodes run on
the project's native MicroPython where `make mp-native` has built it (3.5–3.9 MB RSS a node), else on the pip one
(12.7–13.0 MB: MicroPython inside a CPython process); --micropython picks any other.

Benchmark method (--bench): for each N, start nodes until N run, wait until all are online, measure the CPU used by
the node processes and the broker over a window (utime+stime from /proc/<pid>/stat, as % of all cores), then send
`set` to the group "sim-fleet" several times and time how long until every node has acked. The ramp stops when a
round does not get all acks within --ack-timeout or CPU passes --cpu-limit % of the machine; the last N that passed
is the figure. The machine may be shared: its total CPU use (/proc/stat) is reported alongside ours.
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from broker import Broker  # noqa: E402
from operator_client import Operator  # noqa: E402
from vnode import VirtualNode, host_micropython  # noqa: E402

from drivers.sim import DEFAULT_START_T2K, FAULT_KINDS  # noqa: E402
from fleet import parse_broker_url  # noqa: E402

PADANG = (-0.95, 100.35)
# Streets (group name, lat/lon offset of the street's middle, direction of the street); a post every ~30 m.
STREETS = (("jl-sudirman", (0.000, 0.000), (0.0003, 0.0000)),
           ("jl-khatib-sulaiman", (-0.012, 0.005), (0.0002, 0.0002)),
           ("jl-hayam-wuruk", (0.008, -0.004), (0.0000, 0.0003)),
           ("jl-diponegoro", (0.004, 0.010), (0.0003, 0.0001)),
           ("jl-samudera", (-0.006, -0.012), (0.0003, -0.0001)))
FLEET_GROUP = "sim-fleet"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SUNSET_MINUS_5_MIN = DEFAULT_START_T2K + 55 * 60  # the sim's default start is an hour before sunset in Padang


def layout(n, seed=1, faulty=None):
    """[(node_id, groups, lat, lon, fault kind or None)] for n posts; deterministic for a seed."""
    rnd = random.Random(seed)
    faulty = max(1, n // 10) if faulty is None else faulty
    faulty_at = set(rnd.sample(range(n), min(faulty, n)))
    kinds = [k for k in FAULT_KINDS if k != "no_rtc"]  # no_rtc only shows after a power cut
    out = []
    for i in range(n):
        street, (dlat, dlon), (slat, slon) = STREETS[i % len(STREETS)]
        k = i // len(STREETS)
        lat = PADANG[0] + dlat + slat * k + rnd.uniform(-0.00005, 0.00005)
        lon = PADANG[1] + dlon + slon * k + rnd.uniform(-0.00005, 0.00005)
        fault = kinds[len([j for j in faulty_at if j < i]) % len(kinds)] if i in faulty_at else None
        out.append(("pdg-%04d" % (i + 1), [street, FLEET_GROUP], round(lat, 6), round(lon, 6), fault))
    return out


def node_docs(entry, host, port, speed, start_t2k, seed, control_ms=1000):
    node_id, groups, lat, lon, fault = entry
    cfg = {"node": {"id": node_id, "groups": groups},
           "site": {"lat": lat, "lon": lon},
           "mqtt": {"brokers": [{"host": host, "port": port}], "keepalive_s": 60},
           "report": {"telemetry_s": 60, "min_interval_s": 10},
           "system": {"control_ms": control_ms}}
    sim = {"seed": seed, "lat": lat, "lon": lon, "speed": speed, "start_t2k": start_t2k,
           "faults": [{"kind": fault}] if fault else []}
    return cfg, sim


class Fleet:
    """Virtual nodes under one directory, started and stopped together."""

    def __init__(self, host, port, workdir, speed=30.0, start_t2k=SUNSET_MINUS_5_MIN, seed=1, faulty=None,
                 control_ms=1000, micropython=None):
        self.host, self.port, self.dir = host, port, workdir
        self.micropython = micropython or host_micropython()
        self.speed, self.start_t2k, self.seed, self.faulty = speed, start_t2k, seed, faulty
        self.control_ms = control_ms
        self.nodes = []  # [(entry, VirtualNode)]

    def grow(self, n, total=None):
        """Start nodes until n run; the layout is planned for `total` posts (default n)."""
        plan = layout(max(n, total or n), self.seed, self.faulty)
        for entry in plan[len(self.nodes):n]:
            cfg, sim = node_docs(entry, self.host, self.port, self.speed, self.start_t2k,
                                 self.seed * 1000 + len(self.nodes), self.control_ms)
            vn = VirtualNode(os.path.join(self.dir, entry[0]), cfg, sim, micropython=self.micropython)
            vn.start()
            self.nodes.append((entry, vn))

    def ids(self):
        return [e[0] for e, _ in self.nodes]

    def pids(self):
        return [vn.pid for _, vn in self.nodes if vn.pid]

    def stop(self):
        for _, vn in self.nodes:
            vn.kill(15)
        for _, vn in self.nodes:
            vn.stop(5)


# --- measuring -----------------------------------------------------------------------------------------------------


def proc_ticks(pid):
    """utime + stime of a process in clock ticks (0 when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def proc_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_ticks():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def cpu_window(pids, seconds):
    """(% of all cores used by pids, % of the machine busy overall) over `seconds`."""
    ncpu = os.cpu_count() or 1
    t0 = time.time()
    a = sum(proc_ticks(p) for p in pids) + _self_ticks()
    m0 = machine_ticks()
    time.sleep(seconds)
    b = sum(proc_ticks(p) for p in pids) + _self_ticks()
    m1 = machine_ticks()
    dt = time.time() - t0
    ours = 100.0 * (b - a) / CLK_TCK / dt / ncpu
    total = 100.0 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
    return round(ours, 1), round(total, 1)


def _self_ticks():
    t = os.times()
    return int((t.user + t.system) * CLK_TCK)  # this process: the supervisors' threads and the operator


def wait_online(op, ids, timeout):
    try:
        op.wait_for(lambda: all(op.status.get(n, {}).get("online") for n in ids), timeout)
        return True
    except TimeoutError:
        return False


def group_round_trip(op, ids, level, timeout):
    """Send set to the fleet group; (seconds until every node acked or None, {node: latency s}, acked count)."""
    prefix = op.prefix
    t0 = time.time()
    cid = op.send("group:" + FLEET_GROUP, "set", topic="%s/group/%s/cmd" % (prefix, FLEET_GROUP), level=level,
                  duration_s=600)
    want = set(ids)
    lat = {}
    scan = 0
    deadline = t0 + timeout
    while time.time() < deadline and len(lat) < len(want):
        with op.cond:
            new = op.raw[scan:]
            scan = len(op.raw)
            if not new:
                op.cond.wait(0.05)
        now = time.time()
        for topic, payload, _ in new:
            if topic.endswith("/reply") and cid.encode() in payload:
                node = topic[len(prefix) + 1:-len("/reply")]
                if node in want and node not in lat:
                    lat[node] = now - t0
    done = max(lat.values()) if len(lat) == len(want) else None
    return done, lat, len(lat)


def _pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))] if v else None


def bench(op, fleet, steps, broker_pid, ack_timeout, cpu_limit, rounds, window, out):
    results = []
    for n in steps:
        t0 = time.time()
        fleet.grow(n, max(steps))
        online = wait_online(op, fleet.ids(), 30 + n * 0.5)
        boot_s = time.time() - t0
        time.sleep(2.0)  # let the boot burst (births, retained states, first telemetry) pass
        pids = fleet.pids() + ([broker_pid] if broker_pid else [])
        cpu, machine = cpu_window(pids, window)
        rss = sum(proc_rss_kb(p) for p in fleet.pids()) // 1024
        trips, lats, acked_min = [], [], n
        for r in range(rounds):
            done, lat, acked = group_round_trip(op, fleet.ids(), 30 + 10 * (r % 2), ack_timeout)
            acked_min = min(acked_min, acked)
            if done is not None:
                trips.append(done)
            lats.extend(lat.values())
            time.sleep(0.5)
        row = {"nodes": n, "online": online, "boot_s": round(boot_s, 1), "cpu_pct": cpu, "machine_pct": machine,
               "cpu_per_node_pct": round(cpu / n, 2), "rss_mb": rss, "rounds": rounds,
               "all_acked_rounds": len(trips), "min_acked": acked_min,
               "all_acks_s_p50": None if not trips else round(_pct(trips, 50), 3),
               "all_acks_s_max": None if not trips else round(max(trips), 3),
               "ack_s_p50": None if not lats else round(_pct(lats, 50), 3)}
        row["ok"] = online and len(trips) == rounds and cpu < cpu_limit
        results.append(row)
        out.write("N=%(nodes)4d online=%(online)s boot %(boot_s)5.1fs  cpu %(cpu_pct)5.1f%% of machine "
                  "(machine busy %(machine_pct)5.1f%%)  rss %(rss_mb)4d MB  all-acks p50 %(all_acks_s_p50)s s "
                  "max %(all_acks_s_max)s s  (%(all_acked_rounds)d/%(rounds)d rounds complete)\n" % row)
        out.flush()
        if not row["ok"]:
            break
    return results


def summary(op, ids, injected):
    with op.cond:
        status = dict(op.status)
        state = dict(op.state)
        events = list(op.events)
    online = sum(1 for n in ids if status.get(n, {}).get("online"))
    levels, reasons = {}, {}
    for n in ids:
        st = state.get(n, {})
        levels[st.get("level")] = levels.get(st.get("level"), 0) + 1
        reasons[st.get("reason")] = reasons.get(st.get("reason"), 0) + 1
    alarms = [{"node": n, "name": e.get("name"), "active": e.get("active")} for n, e in events
              if e.get("kind") == "alarm" and n in ids]
    active = {n: state[n].get("faults") for n in ids if state.get(n, {}).get("faults")}
    return {"nodes": len(ids), "online": online,
            "levels": {str(k): v for k, v in sorted(levels.items(), key=lambda kv: str(kv[0]))},
            "reasons": {str(k): v for k, v in sorted(reasons.items(), key=lambda kv: str(kv[0]))},
            "alarm_events": alarms, "active_faults": active, "injected_faults": injected}


def main(argv=None, out=None):
    out = out or sys.stdout
    ap = argparse.ArgumentParser(prog="fleet_sim", description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the bounded run")
    ap.add_argument("--broker", help="mqtt://host:port of a running broker (default: start one)")
    ap.add_argument("--broker-kind", default="auto", choices=("auto", "mosquitto", "amqtt"))
    ap.add_argument("--prefix", default="city/lights")
    ap.add_argument("--dir", help="where the nodes' flash directories go (default: a temporary directory)")
    ap.add_argument("--speed", type=float, default=30.0, help="simulated seconds per real second")
    ap.add_argument("--faulty", type=int, help="how many nodes get an injected fault (default N/10, at least 1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--control-ms", type=int, default=1000, help="the nodes' control loop period")
    ap.add_argument("--bench", help="comma list of fleet sizes to ramp through, e.g. 10,25,50,100")
    ap.add_argument("--ack-timeout", type=float, default=10.0)
    ap.add_argument("--cpu-limit", type=float, default=90.0, help="%% of all cores that counts as saturated")
    ap.add_argument("--rounds", type=int, default=3, help="group set round trips per step")
    ap.add_argument("--window", type=float, default=5.0, help="CPU measuring window, seconds")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--micropython", help="the nodes' binary (default: the native build where built, else pip's)")
    args = ap.parse_args(argv)
    broker = None
    workdir = args.dir or tempfile.mkdtemp(prefix="fleet-sim-")
    if args.broker:
        _, host, port = parse_broker_url(args.broker)
    else:
        broker = Broker(args.broker_kind).start()
        host, port = broker.host, broker.port
    fleet = Fleet(host, port, workdir, args.speed, seed=args.seed, faulty=args.faulty, control_ms=args.control_ms,
                  micropython=args.micropython)
    op = None
    try:
        op = Operator(host, port, prefix=args.prefix)
        if args.bench:
            steps = [int(x) for x in args.bench.split(",") if x]
            out.write("broker %s on %s:%d, %d cores, nodes on %s\n" % (
                broker.kind if broker else "external", host, port, os.cpu_count() or 1, fleet.micropython))
            res = bench(op, fleet, steps, broker.proc.pid if broker else None, args.ack_timeout, args.cpu_limit,
                        args.rounds, args.window, out)
            passed = [r["nodes"] for r in res if r["ok"]]
            doc = {"broker": broker.kind if broker else "external", "cores": os.cpu_count(), "steps": res,
                   "micropython": fleet.micropython,
                   "sustained": max(passed) if passed else 0}
            out.write(json.dumps(doc, sort_keys=True) + "\n" if args.json else
                      "sustained: %d nodes on this machine\n" % doc["sustained"])
            return 0
        fleet.grow(args.nodes)
        injected = {e[0]: e[4] for e, _ in fleet.nodes if e[4]}
        end = time.time() + args.seconds
        wait_online(op, fleet.ids(), max(1.0, min(args.seconds, 30 + args.nodes * 0.5)))
        while time.time() < end:
            time.sleep(0.2)
        doc = summary(op, fleet.ids(), injected)
        if args.json:
            out.write(json.dumps(doc, sort_keys=True) + "\n")
        else:
            out.write("virtual fleet: %d nodes, %d online after %.0f s (world x%g)\n" % (
                doc["nodes"], doc["online"], args.seconds, args.speed))
            out.write("levels: %s\n" % ", ".join("%s%%: %d" % kv for kv in doc["levels"].items()))
            out.write("reasons: %s\n" % ", ".join("%s: %d" % kv for kv in doc["reasons"].items()))
            out.write("injected faults: %s\n" % (", ".join("%s=%s" % kv for kv in sorted(injected.items())) or "-"))
            out.write("alarm events seen: %d%s\n" % (len(doc["alarm_events"]), "".join(
                "\n  %s %s %s" % (a["node"], a["name"], "raised" if a["active"] else "cleared")
                for a in doc["alarm_events"])))
            out.write("active faults: %s\n" % (", ".join("%s=%s" % (n, ",".join(f)) for n, f in
                                                          sorted(doc["active_faults"].items())) or "-"))
        return 0 if doc["online"] == doc["nodes"] else 1
    finally:
        fleet.stop()
        if op is not None:
            op.close()
        if broker is not None:
            broker.close()
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
