"""The benchmark (`make bench`): each figure of issue 10 next to a baseline measured in the same run, and its goal.

    .venv/bin/python tools/bench.py [--quick] [--out out/bench.json] [--only NAME,...] [--broker KIND] [--one-broker]

Prints a table and writes JSON: {"quick": bool, "broker": kind, "brokers": [kinds], "seconds", "errors",
"figures": {name: {"value", "baseline", "unit", "goal", "goal_op", "status" ("pass" | "miss" | "info"), "how",
"detail"}}}. A figure without a goal is "info"; one the measure could get no value for (None) is "miss" when it has
a goal. Exit status 0 unless a measure raised (its error is printed and kept in "errors").
`--quick` runs every figure with smaller counts and shorter runs (same methods, so the same keys); the idle CPU
window is BENCH_IDLE_S seconds (default 60; 5 with --quick unless BENCH_IDLE_S is set).

How each figure is measured (one function each below):
* esp32_need_* / esp32_live_* / esp32_free112_* — issue 14's goals, on the esp32-shaped MicroPython that
  tools/mpbuild.py builds (32-bit objects, float32, the GC heap in two equal areas): the operator scenario of
  tools/opscenario.py (every get, a program push, a live config change, 50 sets, 300 hostile payloads, an OTA
  transfer and abort, simulated days of control; every reply checked, no reset allowed). "need" is the smallest
  -X heapsize at which it passes (bisected to 4 KB without the days, then confirmed with them); "live" the most
  the node held at a quiet point (gc.mem_alloc() after gc.collect() between control ticks, tools/bench_heapwrap.py)
  over the scenario at 112 KB, and "free112" that heap minus it. "frozen": the firmware frozen into the binary
  (goals: passes at 64 KB, free >= 48 KB at 112 KB); "mpy": the .mpy files of a provision bundle (goal: passes at
  112 KB). Baseline: the bare umqtt.simple client on the same binary. ROMFS cannot be measured on this binary: the
  image can only live in the GC heap, and no area of a split heap holds it beside the node (see ESP32_GOALS).
* heap_* — (info) the 64-bit unix port: the real node (boot.py + main.py) under `micropython -X heapsize=...`
  through tools/bench_heapwrap.py. Baseline: a bare umqtt.simple client (tools/bench_umqtt_base.py) measured the
  same way. "need" is the smallest -X heapsize (bisected) under which boot → online → get state/config/counters/log
  passes with no MemoryError and no reset. "src" loads modules from source (compiled in the heap); "mpy" from .mpy
  files (bytecode copied into RAM); "rom" from the ROMFS image that tools/provision.py builds, mounted at /rom
  (bytecode and constants used in place; the image's bytes are added to each trial's heap and subtracted from
  "live"). Objects take about twice their ESP32 size there.
* @<broker> — on every other broker installed (mosquitto first, then the embedded amqtt), latency and the
  esp32-shaped session at 112 KB run again: both brokers carry the node.
* heap_growth_7d — live heap after 7 simulated days minus after the first (accelerated clock), node and baseline
  running side by side; "flat" = growth <= 1 KB.
* code_size — flash of the frozen code: `mpy-cross -march=xtensawin` of every module the board manifest freezes
  (schema descriptions stripped), beside the app partition of boards/STREETLIGHT_ESP32/partitions-4MiB.csv (its
  free space needs an ESP-IDF build: not measured); romfs_image — code.romfs beside the romfs partition.
* latency — command → reply (`get state`), sequential, through the broker; baseline: a paho client echoing the same
  command topic to the reply topic through the same broker (same Operator code measures both).
* idle_cpu — utime+stime from /proc of the node process at sim speed 1 over the window, in % of one core; baseline:
  the broker process over the same window. (The sim's watchdog thread wakes every 50 ms: it counts in the figure.)
* boot_online / boot_decision — process start → the retained {"online": true} seen by a subscriber, and → the
  node's "boot:" log line (Node.start logs it just before the first lamp decision, which takes a few ms more;
  the node's own boot_decision_ms is not published yet).
  Baseline: the bare umqtt client's start → its retained online message.
* sim_year — wall time of `micropython tools/simyear.py --days 365` when it exists, else of
  `micropython tools/bench_control.py astro` (a year of control decisions); baseline: the other one, or CPython.
* mqtt_bytes_day / flash_writes_day — one simulated day at an accelerated clock. Bytes per day =
  sum over the node's messages in that day of (MQTT fixed header + 2 + topic + payload [+ 2 packet id + 4 PUBACK
  for QoS 1]) + pings per real day: 86400 / (keepalive_s / 2) x 4 bytes (PINGREQ + PINGRESP; the link pings after
  keepalive/2 without traffic). The accelerated clock runs control steps every 100 ms of real time, which may be
  coarser than telemetry_s: the telemetry count is raised to 86400 / telemetry_s when fewer were seen (documented
  in "detail"). TCP/IP and Wi-Fi framing are not included; "detail" gives the packet count to add them.
  Flash writes per day = store.writes over the day (wrapper samples). Baseline bytes: one telemetry message per
  telemetry_s plus pings (the traffic any reporting node must make); baseline writes: the persist daily budget.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (HERE, ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import paho.mqtt.client as mqtt  # noqa: E402
from broker import Broker, available_kinds  # noqa: E402
from operator_client import Operator  # noqa: E402
import provision  # noqa: E402  (tools/: the device code as bundles get it)
from bench_placement import CodePlacements  # noqa: E402
import opscenario  # noqa: E402  (the operator scenario: issue 14's heap figures)
from opscenario import read_samples  # noqa: E402  (the heap wrapper's JSON lines)
from vnode import VirtualNode, host_micropython, micropython_binary  # noqa: E402

WRAPPER = os.path.join(HERE, "bench_heapwrap.py")
BASE_CLIENT = os.path.join(HERE, "bench_umqtt_base.py")
BIG_HEAP = "1M"  # for runs that measure something else than the heap need
DEVICE_FILES_GLOBS = (("", ("boot.py", "main.py")), ("firmware", None), ("drivers", None),
                      ("lib/umqtt", ("simple.py",)))
KEEPALIVE_S = 60  # the config default (firmware/mqtt_link.py)


# --- helpers ---------------------------------------------------------------------------------------------------------


def device_files():
    """Repo-relative paths of every file a device carries (drivers/sim.py is host-only)."""
    out = []
    for d, names in DEVICE_FILES_GLOBS:
        full = os.path.join(ROOT, d)
        for n in sorted(names or os.listdir(full)):
            if n.endswith(".py") and not (d == "drivers" and n == "sim.py"):
                out.append(os.path.join(d, n) if d else n)
    return out


def node_config(node_id, broker, **extra):
    cfg = {"node": {"id": node_id}, "mqtt": {"brokers": [{"host": broker.host, "port": broker.port}]}}
    for k, v in extra.items():
        cfg.setdefault(k, {}).update(v)
    return cfg


def percentile(values, p):
    s = sorted(values)
    if not s:
        return None
    k = (len(s) - 1) * p / 100.0
    i = int(k)
    j = min(i + 1, len(s) - 1)
    return s[i] + (s[j] - s[i]) * (k - i)


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def figure(value, baseline, unit, goal=None, goal_op="<=", how="", detail=None, missing_is_miss=False):
    """One figure. A value of None (the measure could not get one: the scenario failed at every heap tried) is a
    "miss" when there is a goal and `missing_is_miss`, else "info"."""
    if value is None and goal is not None and missing_is_miss:
        status = "miss"
    elif goal is None or value is None:
        status = "info"
    elif goal_op == "<=":
        status = "pass" if value <= goal else "miss"
    else:
        status = "pass" if value >= goal else "miss"
    return {"value": value, "baseline": baseline, "unit": unit, "goal": goal, "goal_op": goal_op, "status": status,
            "how": how, "detail": detail or {}}


class Bench:
    """One run: a broker, a work directory, and the quick/full sizes."""

    def __init__(self, quick, work):
        self.quick = quick
        self.work = work
        self.broker = None
        self.places = CodePlacements(os.path.join(work, "code"))
        self._n = 0

    def name(self, stem):
        self._n += 1
        return "%s-%d" % (stem, self._n)

    def node(self, stem, cfg_extra=None, sim=None, heap=BIG_HEAP, wrapper=False, code="src", env=None, **kw):
        nid = self.name(stem)
        d = os.path.join(self.work, nid)
        e = dict(env or {})
        if wrapper:
            e["BENCH_HEAP_OUT"] = os.path.join(d, "bench_heap.jsonl")
            e.update(self.code_env(code))
        vn = VirtualNode(d, node_config(nid, self.broker, **(cfg_extra or {})), sim or {"speed": 1}, env=e,
                         main=WRAPPER if wrapper else None, mp_args=["-X", "heapsize=" + heap], **kw)
        return nid, vn

    def code_env(self, code):
        """Environment for tools/bench_codepath.py: load the code from source, a .mpy tree or a ROMFS image."""
        return self.places.env(code)

    def held_k(self, code):
        """KB the code placement takes in this heap but not on an ESP32 (the ROMFS image)."""
        return self.places.held_k(code)

    def base_client(self, heap=BIG_HEAP, code="src", binary=None):
        """Start the bare umqtt.simple client (under `binary`, default the nodes' own); returns (id, Popen, sample
        file)."""
        bid = self.name("base")
        d = os.path.join(self.work, bid)
        os.makedirs(d, exist_ok=True)
        env = dict(os.environ)
        env.update({"MICROPYPATH": os.pathsep.join((".frozen", os.path.join(ROOT, "lib"))),
                    "BENCH_HOST": self.broker.host,
                    "BENCH_PORT": str(self.broker.port), "BENCH_ID": bid,
                    "BENCH_HEAP_OUT": os.path.join(d, "bench_heap.jsonl")})
        env.update(self.code_env(code))
        log = open(os.path.join(d, "base.log"), "wb")
        p = subprocess.Popen([binary or host_micropython(), "-X", "heapsize=" + heap, BASE_CLIENT], cwd=d, env=env,
                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return bid, p, os.path.join(d, "bench_heap.jsonl")


def stop_proc(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


class Watcher:
    """A raw paho subscriber: every message on the given topic filters, with its arrival time."""

    def __init__(self, broker, filters):
        self.msgs = []
        self.cond = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        ready = threading.Event()

        def on_connect(client, userdata, flags, rc, props):
            for f in filters:
                client.subscribe(f, 1)
            ready.set()

        def on_message(client, userdata, msg):
            with self.cond:
                self.msgs.append((time.monotonic(), msg.topic, bytes(msg.payload), msg.qos, msg.retain))
                self.cond.notify_all()

        self.c.on_connect = on_connect
        self.c.on_message = on_message
        self.c.connect(broker.host, broker.port, 30)
        self.c.loop_start()
        if not ready.wait(10):
            raise RuntimeError("watcher could not connect")
        time.sleep(0.2)  # let the SUBACKs arrive

    def wait(self, pred, timeout, proc=None):
        """The first message matching pred, or None after timeout (at once when `proc` has exited)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.msgs:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (proc is not None and proc.poll() is not None):
                    return None
                self.cond.wait(min(left, 0.05))

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def is_online(topic_suffix):
    return lambda m: m[1].endswith(topic_suffix) and b'"online": true' in m[2].replace(b'"online":true',
                                                                                     b'"online": true')


# --- heap ------------------------------------------------------------------------------------------------------------


def node_scenario(b, heap, code):
    """Boot → online → get state/config/counters/log under `heap`; (ok, max live heap, why)."""
    op = Operator(b.broker.host, b.broker.port)
    nid, vn = b.node("heap", heap=heap, wrapper=True, code=code, max_restarts=0)
    try:
        vn.start()
        # Each wait also ends when the node died (a MemoryError): a failed trial costs no timeout.
        if op.wait_for(lambda: op.status.get(nid, {}).get("online") or not vn.alive(), 30) is not True:
            raise TimeoutError("not online")
        for what in ("state", "config", "counters", "log"):
            cid = op.send(nid, "get", what=what)
            if op.wait_for(lambda: op.replies.get(cid) or not vn.alive(), 15) is True:
                raise TimeoutError("no reply to get " + what)
        time.sleep(0.6)
        ok, why = vn.alive() and vn.boots == 1, ""
    except TimeoutError as e:
        ok, why = False, str(e)
    finally:
        vn.stop()
        op.close()
    log = vn.read_log()
    if "MemoryError" in log or "Traceback" in log:
        ok, why = False, log.strip().splitlines()[-1][:120]
    samples = read_samples(os.path.join(vn.dir, "bench_heap.jsonl"))
    return ok, max([s["live"] for s in samples] or [0]), why


def base_scenario(b, heap, code, binary=None):
    """The bare client under `heap`: online, one echoed command; (ok, max live heap, why)."""
    w = Watcher(b.broker, ["bench/#"])
    bid, p, out = b.base_client(heap, code, binary)
    try:
        # Generous waits (a loaded machine): a client that died ends them at once.
        ok = w.wait(is_online("%s/status" % bid), 30, p) is not None
        if ok:
            w.c.publish("bench/%s/cmd" % bid, b'{"cmd": "get", "id": "x"}', qos=1)
            ok = w.wait(lambda m: m[1] == "bench/%s/reply" % bid, 15, p) is not None
        time.sleep(0.6)
        ok = ok and p.poll() is None
    finally:
        stop_proc(p)
        w.close()
    samples = read_samples(out)
    return ok, max([s["live"] for s in samples] or [0]), "" if ok else "failed"


def bisect_heap(b, scenario, lo_k, hi_k, step_k, code, binary=None):
    """Smallest heap (KB, to step_k) where scenario passes; (need_k or None, live at the passing heap).

    With code="rom" each trial's -X heapsize is that much more than need_k: the ROMFS image, which the unix port
    must keep in its heap and an ESP32 keeps in flash."""
    extra_k = b.held_k(code)
    kw = {"binary": binary} if binary else {}
    ok, live, why = scenario(b, "%dK" % (hi_k + extra_k), code, **kw)
    if not ok:
        return None, live, why
    best_live = live
    while hi_k - lo_k > step_k:
        mid = (lo_k + hi_k) // 2 // step_k * step_k
        if mid <= lo_k:
            break
        ok, live, _ = scenario(b, "%dK" % (mid + extra_k), code, **kw)
        if ok:
            hi_k, best_live = mid, live
        else:
            lo_k = mid
    return hi_k, best_live, ""


# src: compiled from source at import; mpy: .mpy files read into the heap; rom: a ROMFS image used in place.
CODE_PLACEMENTS = ("src", "mpy", "rom")


def measure_heap(b):
    """The 64-bit unix port's figures (info): boot, online and 4 gets, by code placement."""
    # Bisection ranges: the node needs ~100-300 KB on the 64-bit port (by code placement); the bare client ~16-40 KB.
    step, lo, hi = (64, 0, 512) if b.quick else (8, 16, 1024)
    bstep, blo, bhi = (16, 0, 64) if b.quick else (2, 0, 256)
    figs = {}
    for kind in CODE_PLACEMENTS:
        need, live, why = bisect_heap(b, node_scenario, lo, hi, step, kind)
        bneed, blive, _ = bisect_heap(b, base_scenario, blo, bhi, bstep, kind)
        figs["heap_need_" + kind] = figure(
            need, bneed, "KB", how="64-bit unix port, info: smallest -X heapsize (to %d KB) for boot, online, 4 gets"
            % step, detail={"why_failed": why} if need is None else {})
        figs["heap_live_" + kind] = figure(
            round(live / 1024.0, 1), round(blive / 1024.0, 1), "KB",
            how="64-bit, info: max gc.mem_alloc() after gc.collect() between ticks over the same scenario")
    return figs


# --- heap on the esp32-shaped runtime (issue 14's goals) -----------------------------------------------------------

# placement -> (goal for the need in KB, goal for the lowest free heap at 112 KB in KB); None: no goal (info).
# No "rom" here: the unix port can only hold a ROMFS image in its GC heap (tools/bench_codepath.py), and a split heap
# of two equal areas cannot take a ~110 KB image in one piece beside a node — measured: the bare client fails with
# the image at 64 + 113 KB. The 64-bit figures (one heap area) keep heap_*_rom as info.
ESP32_GOALS = {"frozen": (64, 48), "mpy": (112, None)}
ESP32_HEAP_K = 112  # an ESP32 without PSRAM after its one heap growth: 2 x 56 KB


def esp32_binaries():
    """(frozen binary, binary for code from files): the esp32-shaped build, and its stock-shaped twin without the
    firmware frozen in (tools/bench_stockbuild.py) — or None, and then the frozen build with the files ahead on
    sys.path, whose ROM qstrs make the .mpy figures too good (measured: 129 KB live idle there, 171 KB on the
    stock shape; said in each figure's detail)."""
    import mpbuild

    if not mpbuild.have_cross_compiler():
        raise RuntimeError(mpbuild.missing_cross_message())
    import bench_stockbuild

    return mpbuild.build_esp32(log=sys.stderr), bench_stockbuild.build_stock(log=sys.stderr)


LOWEST_FREE_HOW = ("lowest free heap over the whole scenario at %d KB: the lower of the heap minus the most held "
                   "between control ticks and the node's own low-water mark (get counters: memory.heap_low, right "
                   "after a command); none when the scenario fails there")


def lowest_free_kb(at):
    """The lower of the two low-water marks of a passing scenario run (opscenario), KB; None when it failed."""
    if not at["pass"]:
        return None
    marks = [at[k] for k in ("min_free", "min_free_node") if isinstance(at.get(k), int)]
    return round(min(marks) / 1024.0, 1) if marks else None


def lowest_free_detail(at):
    if not at["pass"]:
        return {"failed_step": at["failed_step"], "why": at["why"][:300]}
    return {"between_ticks_kb": round(at["min_free"] / 1024.0, 1) if "min_free" in at else None,
            "node_heap_low_kb": round(at["min_free_node"] / 1024.0, 1) if "min_free_node" in at else None}


def measure_esp32_heap(b):
    """need / live / lowest free of the operator scenario (tools/opscenario.py) on the esp32-shaped runtime, for
    code frozen in, from .mpy files and from a ROMFS image; baseline: the bare umqtt client on the same binary."""
    frozen_bin, stock_bin = esp32_binaries()
    step, days, bstep = (32, 1, 16) if b.quick else (4, 7, 2)
    budget = 300.0 if b.quick else 900.0
    figs = {}
    for kind, (need_goal, free_goal) in ESP32_GOALS.items():
        binary = frozen_bin if kind == "frozen" else (stock_bin or frozen_bin)
        note = {} if kind == "frozen" or stock_bin else {"binary": "the frozen build, files first on sys.path "
                                                                   "(its qstrs are in ROM: a lower bound)"}
        res = opscenario.need(binary, kind, 32, 512, step, budget, broker=b.broker, work=b.work,
                              confirm_days=days, placements=b.places)
        at = opscenario.run(binary, "%dK" % ESP32_HEAP_K, kind, b.broker, days, b.work, placements=b.places)
        bneed, blive, _ = bisect_heap(b, base_scenario, 0, 64, bstep, kind, binary)
        fail = {} if at["pass"] else {"failed_step": at["failed_step"], "why": at["why"][:300]}
        figs["esp32_need_" + kind] = figure(
            res["need_k"], bneed, "KB", need_goal, how="smallest -X heapsize (to %d KB) at which the operator "
            "scenario passes (days skipped in the bisection, then confirmed with %d simulated days)" % (step, days),
            detail=dict(note, trials=[(t["heap_k"], t["days"], t["pass"] or t["failed_step"]) for t in res["trials"]],
                        **({} if res["need_k"] else {"why": res.get("why", "")})), missing_is_miss=True)
        live = round(at["max_live"] / 1024.0, 1) if "max_live" in at else None  # none: it never got to sample
        figs["esp32_live_" + kind] = figure(
            live, round(blive / 1024.0, 1), "KB",
            how="max gc.mem_alloc() after gc.collect() between control ticks over the scenario at %d KB" %
                ESP32_HEAP_K,
            detail=dict(note, passed=at["pass"], live_idle_kb=round(at.get("live_idle", 0) / 1024.0, 1),
                        days_extra_live=at.get("days_extra_live"), **fail))
        figs["esp32_free112_" + kind] = figure(
            lowest_free_kb(at), round(ESP32_HEAP_K - blive / 1024.0, 1), "KB", free_goal, goal_op=">=",
            how=LOWEST_FREE_HOW % ESP32_HEAP_K, detail=dict(note, **lowest_free_detail(at)), missing_is_miss=True)
    return figs


def measure_heap_growth(b):
    days = 1 if b.quick else 7
    real_s = 8.0 if b.quick else 60.0
    speed = int((days + 0.2) * 86400 / real_s) + 1
    op = Operator(b.broker.host, b.broker.port)
    nid, vn = b.node("soak", cfg_extra={"system": {"control_ms": 100}}, sim={"speed": speed}, wrapper=True)
    bid, p, bout = b.base_client()
    try:
        vn.start()
        op.wait_for(lambda: op.status.get(nid, {}).get("online"), 60)
        t_end = time.monotonic() + real_s
        i = lost = 0
        while time.monotonic() < t_end:
            i += 1
            try:
                op.command(nid, "get", timeout=30, what=("state", "counters", "log", "config")[i % 4])
            except TimeoutError:
                lost += 1  # a slow machine: the soak goes on, the count is reported
            time.sleep(0.2)
    finally:
        vn.stop()
        stop_proc(p)
        op.close()
    s = read_samples(os.path.join(vn.dir, "bench_heap.jsonl"))
    warm, end = _warm_and_end([x["live"] for x in s])
    bwarm, bend = _warm_and_end([x["live"] for x in read_samples(bout)])
    return {"heap_growth_7d": figure(
        end - warm, None if bend is None else bend - bwarm, "bytes", 1024,
        how="live heap at the end minus after the warm-up (first %d %% of %d simulated days, speed %d, control "
            "100 ms, a get every 0.2 s); baseline: the bare client over the same real time" % (WARM_PCT, days, speed),
        detail={"sim_days": round((s[-1]["now"] - s[0]["now"]) / 86400.0, 2), "live_after_warmup": warm,
                "gets_lost": lost, "live_end": end, "samples": len(s), "min_free": min(x["free"] for x in s),
                "live_by_tenth": [s[len(s) * k // 10]["live"] for k in range(10)] + [s[-1]["live"]]})}


WARM_PCT = 50  # the log ring and the de-dup cache of 24 replies fill within it


def _warm_and_end(lives):
    """(max live just after the warm-up, max live over the last samples); (None, None) when too few samples."""
    n = len(lives)
    if n < 10:
        return None, None
    k = n * WARM_PCT // 100
    return max(lives[k:k + 3]), max(lives[-3:])


# --- code size -------------------------------------------------------------------------------------------------------


BOARD_DIR = os.path.join(ROOT, "boards", "STREETLIGHT_ESP32")


def partitions(path=os.path.join(BOARD_DIR, "partitions-4MiB.csv")):
    """{name: size in bytes} of an ESP-IDF partition table (CSV: name, type, subtype, offset, size, flags)."""
    out = {}
    with open(path) as f:
        for line in f:
            cols = [c.strip() for c in line.split("#", 1)[0].split(",")]
            if len(cols) >= 5 and cols[0]:
                out[cols[0]] = int(cols[4], 0)
    return out


def frozen_object_kb():
    """text + data of frozen_content.o in the esp32-shaped build of the current sources (bytecode, constants and
    qstr pool as the C compiler lays them out; it holds drivers/sim.py too), or None without the cross compiler."""
    import glob

    import mpbuild

    if not mpbuild.have_cross_compiler():
        return None
    mpbuild.build_esp32(log=sys.stderr)  # the current sources built (tools/mpbuild.py keeps one build folder)
    found = sorted(glob.glob(os.path.join(mpbuild.cache_dir(), "src-*", "*", "ports", "unix", "build-esp32-*",
                                          "frozen_content.o")), key=os.path.getmtime)[-1:]
    size = shutil.which(mpbuild.CROSS + "size") or shutil.which("size")
    if not found or not size:
        return None
    r = subprocess.run([size, found[0]], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    text, data = r.stdout.splitlines()[1].split()[:2]
    return round((int(text) + int(data)) / 1024.0, 1)


def measure_code_size(b):
    """Flash: the code frozen into our image beside the board's app partition, and the ROMFS image beside the romfs
    partition (boards/STREETLIGHT_ESP32/partitions-4MiB.csv)."""
    out = os.path.join(b.work, "xtensawin")
    os.makedirs(out, exist_ok=True)
    files = [f for f in device_files() if f not in ("boot.py", "main.py")]  # what the board manifest freezes
    with ThreadPoolExecutor(4) as pool:  # mpy-cross start-up dominates: run a few at once
        done = pool.map(lambda rel: len(provision.compile_source(os.path.join(ROOT, rel), rel, os.path.join(
            out, rel.replace("/", "_")[:-3] + ".mpy"))), files)
        sizes = dict(zip(files, done))
    total = sum(sizes.values())
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:6]
    # drivers/esp32.py imports a sensor driver only when the hw config names it: the default board (BH1750 +
    # INA219) never loads the others, though every bundle carries them.
    unused = sum(sizes[f] for f in OTHER_SENSOR_DRIVERS)
    parts = partitions()
    app_kb = parts["factory"] // 1024
    rom_kb = parts["romfs"] // 1024
    image_kb = round(os.path.getsize(b.code_env("rom")["BENCH_ROMFS"]) / 1024.0, 1)
    return {
        "code_size": figure(
            round(total / 1024.0, 1), round(sizes["lib/umqtt/simple.py"] / 1024.0, 1), "KB",
            how="flash the frozen code takes: mpy-cross -march=xtensawin of the %d modules the board manifest "
                "freezes (schema descriptions stripped), beside the %d KB app partition; baseline umqtt.simple "
                "alone. The C part of the app (MicroPython, ESP-IDF, Wi-Fi) needs an ESP-IDF build (idf.py size), "
                "so the partition's free space is not measured here" % (len(sizes), app_kb),
            detail={"app_partition_kb": app_kb, "frozen_content_o_kb": frozen_object_kb(),
                    "largest": dict((k, v) for k, v in top),
                    "loaded_by_default_board_kb": round((total - unused) / 1024.0, 1)}),
        "romfs_image": figure(
            image_kb, round(sizes["lib/umqtt/simple.py"] / 1024.0, 1), "KB", rom_kb,
            how="code.romfs as tools/provision.py builds it, beside the board's %d KB romfs partition (goal: it "
                "fits); baseline umqtt.simple alone" % rom_kb),
    }


OTHER_SENSOR_DRIVERS = ("drivers/veml7700.py", "drivers/ldr.py", "drivers/ina226.py", "drivers/acs712.py")


# --- latency ---------------------------------------------------------------------------------------------------------


def _timed_commands(op, target, n, timeout=30.0):
    """n sequential `get state` round trips; (latencies in ms, commands that got no reply within `timeout`).
    A lost reply is counted, not raised: on a loaded machine one slow answer must not lose the whole figure."""
    lat, lost = [], 0
    for i in range(n):
        t0 = time.perf_counter()
        cid = op.send(target, "get", what="state")
        try:
            op.wait_for(lambda: op.replies.get(cid, [None])[0], timeout)
        except TimeoutError:
            lost += 1
            continue
        lat.append((time.perf_counter() - t0) * 1000.0)
    return lat, lost


def nodelay_operator(op):
    """TCP_NODELAY on an Operator's socket (opscenario.nodelay explains the 44 ms it saves); returns op."""
    opscenario.nodelay(op.client)
    return op


def measure_latency(b):
    n = 50 if b.quick else 300
    op = nodelay_operator(Operator(b.broker.host, b.broker.port))
    echo_prefix = "bench/echo"
    echo_op = nodelay_operator(Operator(b.broker.host, b.broker.port, prefix=echo_prefix))
    echo = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    ready = threading.Event()
    echo.on_connect = lambda c, u, f, rc, p: (c.subscribe(echo_prefix + "/e1/cmd", 1), ready.set())
    stray = []

    def on_echo(c, u, msg):
        # Anything that is not one of our commands (a stray or retained message on the topic) is counted and
        # left alone: an exception here would end paho's network thread, and with it every echo after it.
        try:
            doc = json.loads(msg.payload)
            cid, cmd = doc["id"], doc["cmd"]
        except (ValueError, TypeError, KeyError):
            stray.append(msg.payload[:80])
            return
        c.publish(echo_prefix + "/e1/reply", json.dumps({"id": cid, "ok": True, "cmd": cmd}), qos=0)

    echo.on_message = on_echo
    echo.connect(b.broker.host, b.broker.port, 30)
    # Like the node (firmware/umqtt_hardened.py), the echo gets TCP_NODELAY: a fair baseline, not one slowed by
    # Nagle's algorithm and delayed ACKs.
    echo.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    echo.loop_start()
    ready.wait(30)
    time.sleep(0.2)
    nid, vn = b.node("lat")
    try:
        vn.start()
        op.wait_for(lambda: op.status.get(nid, {}).get("online"), 60)
        _timed_commands(op, nid, 5)  # warm-up
        _timed_commands(echo_op, "e1", 5)
        node_lat, node_lost = _timed_commands(op, nid, n)
        echo_lat, echo_lost = _timed_commands(echo_op, "e1", n)
    finally:
        vn.stop()
        echo.loop_stop()
        echo.disconnect()
        op.close()
        echo_op.close()
    if len(node_lat) < n * 0.9 or len(echo_lat) < n * 0.9:
        raise RuntimeError("latency: %d of %d node replies and %d of %d echoes lost" % (node_lost, n, echo_lost, n))
    p99, e99 = percentile(node_lat, 99), percentile(echo_lat, 99)
    return {
        "latency_p50": figure(round(percentile(node_lat, 50), 2), round(percentile(echo_lat, 50), 2), "ms",
                              how="%d sequential `get state` commands; baseline paho echo" % n),
        "latency_p99": figure(round(p99, 2), round(e99, 2), "ms", round(2 * e99, 2),
                              how="goal: p99 <= 2 x the echo's p99 in this run",
                              detail={"max": round(max(node_lat), 2), "echo_max": round(max(echo_lat), 2),
                                      "lost": node_lost, "echo_lost": echo_lost, "stray": len(stray)}),
    }


# --- idle CPU --------------------------------------------------------------------------------------------------------


def measure_idle_cpu(b):
    default = "3" if b.quick else "60"
    window = float(os.environ.get("BENCH_IDLE_S") or default)
    op = Operator(b.broker.host, b.broker.port)
    nid, vn = b.node("idle")
    try:
        vn.start()
        op.wait_for(lambda: op.status.get(nid, {}).get("online"), 60)
        time.sleep(1.0)  # past the boot work
        hz = os.sysconf("SC_CLK_TCK")
        n0, b0, t0 = cpu_ticks(vn.pid), cpu_ticks(b.broker.proc.pid), time.monotonic()
        time.sleep(window)
        n1, b1, t1 = cpu_ticks(vn.pid), cpu_ticks(b.broker.proc.pid), time.monotonic()
        alive = vn.alive()
    finally:
        vn.stop()
        op.close()
    pct = 100.0 * (n1 - n0) / hz / (t1 - t0)
    bpct = 100.0 * (b1 - b0) / hz / (t1 - t0)
    return {"idle_cpu": figure(round(pct, 2), round(bpct, 2), "%", 1.0,
                               how="node process utime+stime over %.0f s at sim speed 1 (control 1 s); baseline: the "
                                   "broker process in the same window" % window,
                               detail={"window_s": window, "node_alive": alive, "ticks_per_s": hz})}


# --- boot ------------------------------------------------------------------------------------------------------------


def _wait_log(vn, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in vn.read_log():
            return time.monotonic()
        time.sleep(0.002)
    return None


def measure_boot(b):
    n = 2 if b.quick else 5
    w = Watcher(b.broker, ["city/lights/+/status", "bench/+/status"])
    online, decision, base = [], [], []
    try:
        for _ in range(n):
            nid, vn = b.node("boot")
            t0 = time.monotonic()
            vn.start()
            td = _wait_log(vn, "boot:", 30)
            m = w.wait(lambda m, nid=nid: m[1] == "city/lights/%s/status" % nid and b"true" in m[2], 30)
            vn.stop()
            if td is not None:
                decision.append((td - t0) * 1000.0)
            if m is not None:
                online.append((m[0] - t0) * 1000.0)
            t0 = time.monotonic()
            bid, p, _ = b.base_client()
            m = w.wait(lambda m, bid=bid: m[1] == "bench/%s/status" % bid and b"true" in m[2], 30)
            stop_proc(p)
            if m is not None:
                base.append((m[0] - t0) * 1000.0)
    finally:
        w.close()
    med = lambda v: round(statistics.median(v), 1) if v else None  # noqa: E731
    return {
        "boot_online": figure(med(online), med(base), "ms", 300,
                              how="process start -> retained online seen by a subscriber (median of %d)" % n,
                              detail={"runs": [round(x, 1) for x in online]}),
        "boot_decision": figure(med(decision), med(base), "ms",
                                how="process start -> the node's 'boot:' log line (logged just before the first "
                                    "decision); baseline: bare client start -> online",
                                detail={"runs": [round(x, 1) for x in decision]}),
    }


# --- simulated year --------------------------------------------------------------------------------------------------


def _timed(cmd, env=None):
    e = dict(os.environ)
    e.update(env or {})
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=600)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), (r.stderr or r.stdout)[-300:]))
    return dt, r.stdout.strip().splitlines()[-1:] or [""]


def measure_sim_year(b):
    mp = micropython_binary()
    env = {"MICROPYPATH": os.pathsep.join((".frozen", ROOT, os.path.join(ROOT, "lib")))}
    control = [mp, os.path.join(HERE, "bench_control.py"), "astro"]
    simyear = os.path.join(HERE, "simyear.py")
    if os.path.exists(simyear):
        days = 30 if b.quick else 365
        dt, out = _timed([mp, simyear, "--days", str(days)], env)
        value = dt * 365.0 / days
        bdt, bout = _timed(control, env)
        how = "micropython tools/simyear.py --days %d (x 365/%d); baseline: bench_control.py astro" % (days, days)
    else:
        dt, out = _timed(control, env)
        value = dt
        bdt, bout = _timed([sys.executable] + control[1:])
        how = "tools/simyear.py missing: micropython tools/bench_control.py astro; baseline: the same on CPython"
    return {"sim_year": figure(round(value, 2), round(bdt, 2), "s", 10, how=how,
                               detail={"output": out[0][:160], "baseline_output": bout[0][:160]})}


# --- airtime and flash -----------------------------------------------------------------------------------------------


def mqtt_publish_bytes(topic, payload, qos):
    rem = 2 + len(topic) + len(payload) + (2 if qos else 0)
    lenbytes = 1 if rem < 128 else (2 if rem < 16384 else 3)
    return 1 + lenbytes + rem + (4 if qos else 0)  # + PUBACK for QoS 1


def measure_airtime(b):
    real_s = 6.0 if b.quick else 60.0
    speed = int(86400 / real_s)
    telemetry_s = 300
    w = Watcher(b.broker, ["city/lights/#"])
    nid, vn = b.node("air", cfg_extra={"system": {"control_ms": 100}, "report": {"telemetry_s": telemetry_s}},
                     sim={"speed": speed}, wrapper=True)
    try:
        vn.start()
        if w.wait(lambda m: m[1] == "city/lights/%s/status" % nid, 60) is None:
            raise RuntimeError("airtime node never came online: " + vn.read_log()[-300:])
        time.sleep(1.0)
        t_start = time.monotonic()
        time.sleep(real_s)
        t_end = time.monotonic()
    finally:
        vn.stop()
        w.close()
    prefix = "city/lights/%s/" % nid
    kinds = {}
    packets = 0
    for t, topic, payload, qos, retain in w.msgs:
        if not (t_start <= t < t_end and topic.startswith(prefix)):
            continue
        k = kinds.setdefault(topic[len(prefix):], [0, 0])
        k[0] += 1
        k[1] += mqtt_publish_bytes(topic, payload, qos)
        packets += 2 if qos else 1
    s = read_samples(os.path.join(vn.dir, "bench_heap.jsonl"))
    win = [x for x in s if x["now"] >= s[0]["now"]]
    sim_s = max(1, win[-1]["now"] - win[0]["now"])
    writes = win[-1]["writes"] - win[0]["writes"]
    # Messages seen in the real window stand for (t_end - t_start) x speed simulated seconds.
    day_scale = 86400.0 / ((t_end - t_start) * speed)
    per_day = dict((k, {"msgs": round(v[0] * day_scale, 1), "bytes": round(v[1] * day_scale)})
                   for k, v in kinds.items())
    tele = per_day.get("tele", {"msgs": 0, "bytes": 0})
    want = 86400.0 / telemetry_s
    tele_size = tele["bytes"] / tele["msgs"] if tele["msgs"] else 0
    if 0 < tele["msgs"] < want:
        tele["bytes"] = round(tele_size * want)
        tele["raised_to"] = want
    pings_day = 86400.0 / (KEEPALIVE_S / 2.0)
    total = sum(v["bytes"] for v in per_day.values()) + pings_day * 4
    base = want * tele_size + pings_day * 4
    return {
        "mqtt_bytes_day": figure(round(total), round(base), "B/day",
                                 how="payload+MQTT header of every node message in one simulated day (speed %d) + "
                                     "%d pings/day x 4 B; baseline: telemetry alone + pings" % (speed, pings_day),
                                 detail={"per_kind": per_day, "publish_packets_day": round(packets * day_scale),
                                         "pings_day": pings_day}),
        "flash_writes_day": figure(round(writes * 86400.0 / sim_s, 1), 100, "writes/day", 100,
                                   how="store.writes over %d simulated s, per day; baseline: persist daily budget"
                                       % sim_s,
                                   detail={"sim_s_per_control_step": speed * 0.1,
                                           "note": "a lower bound when a control step spans more than "
                                                   "metering.save_interval_s (the periodic save then skips)"}),
    }


MEASURES = (
    ("code_size", measure_code_size),
    ("sim_year", measure_sim_year),
    ("boot", measure_boot),
    ("latency", measure_latency),
    ("idle_cpu", measure_idle_cpu),
    ("airtime", measure_airtime),
    ("heap_growth", measure_heap_growth),
    ("heap", measure_heap),
    ("esp32_heap", measure_esp32_heap),
)
FIGURE_NAMES = ("code_size", "romfs_image", "sim_year", "boot_online", "boot_decision", "latency_p50", "latency_p99",
                "idle_cpu", "mqtt_bytes_day", "flash_writes_day", "heap_growth_7d", "heap_need_src", "heap_live_src",
                "heap_need_mpy", "heap_live_mpy", "heap_need_rom", "heap_live_rom") + tuple(
    "esp32_%s_%s" % (f, k) for k in ("frozen", "mpy") for f in ("need", "live", "free112"))


def fmt(v):
    if v is None:
        return "-"
    return ("%.2f" % v).rstrip("0").rstrip(".") if isinstance(v, float) else str(v)


def table(figs):
    rows = ["%-26s %10s %10s %-10s %10s  %s" % ("figure", "value", "baseline", "unit", "goal", "status")]
    names = [n for n in FIGURE_NAMES if n in figs] + sorted(n for n in figs if n not in FIGURE_NAMES)
    for name in names:
        f = figs.get(name)
        if f is None:
            continue
        goal = "-" if f["goal"] is None else "%s %s" % (f["goal_op"], fmt(f["goal"]))
        rows.append("%-26s %10s %10s %-10s %10s  %s" % (name, fmt(f["value"]), fmt(f["baseline"]), f["unit"], goal,
                                                         f["status"]))
    return "\n".join(rows)


def measure_esp32_session(b):
    """The operator scenario once at 112 KB with the code frozen in, on this run's broker (the second broker's
    cross-check of the esp32-shaped figures)."""
    frozen_bin, _ = esp32_binaries()
    at = opscenario.run(frozen_bin, "%dK" % ESP32_HEAP_K, "frozen", b.broker, 1 if b.quick else 7, b.work,
                        placements=b.places)
    return {"esp32_free112_frozen": figure(
        lowest_free_kb(at), None, "KB", ESP32_GOALS["frozen"][1], ">=", how=LOWEST_FREE_HOW % ESP32_HEAP_K,
        detail=lowest_free_detail(at), missing_is_miss=True)}


# On every other broker kind installed, these run again: what the broker changes (round trips) and the esp32-shaped
# session, so both brokers are shown to carry the node. Their figures are named "<figure>@<broker kind>".
SECOND_BROKER_MEASURES = (("latency", measure_latency), ("esp32_session", measure_esp32_session))


def run_measures(b, measures, only, figs, errors, suffix=""):
    for name, fn in measures:
        if only and name not in only and not (name == "esp32_session" and "esp32_heap" in only):
            continue
        t0 = time.monotonic()
        try:
            for k, v in fn(b).items():
                figs[k + suffix] = v
        except Exception as e:  # noqa: BLE001 — one failed measure must not lose the others; it is reported
            errors[name + suffix] = "%s: %s" % (e.__class__.__name__, e)
        sys.stderr.write("bench: %s%s done in %.1f s\n" % (name, suffix, time.monotonic() - t0))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts and shorter runs, every figure")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "bench.json"))
    ap.add_argument("--only", help="comma-separated measures: " + ",".join(n for n, _ in MEASURES))
    ap.add_argument("--broker", default="auto", help="auto | mosquitto | amqtt")
    ap.add_argument("--one-broker", action="store_true", help="skip the second broker's cross-check")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    work = tempfile.mkdtemp(prefix="bench-")
    b = Bench(args.quick, work)
    figs, errors = {}, {}
    t_start = time.monotonic()
    b.broker = Broker(args.broker).start()  # tools/broker.py gives mosquitto set_tcp_nodelay
    kinds = [b.broker.kind]
    try:
        run_measures(b, MEASURES, only, figs, errors)
    finally:
        b.broker.close()
    try:
        for kind in ([] if args.one_broker else [k for k in available_kinds() if k != kinds[0]]):
            kinds.append(kind)
            b.broker = Broker(kind).start()
            try:
                run_measures(b, SECOND_BROKER_MEASURES, only, figs, errors, "@" + kind)
            finally:
                b.broker.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {"quick": args.quick, "broker": kinds[0], "brokers": kinds, "figures": figs, "errors": errors,
           "seconds": round(time.monotonic() - t_start),
           "note": "esp32_* figures come from the esp32-shaped runtime (32-bit, float32, 2 heap areas); heap_* "
                   "from the 64-bit unix port (info)"}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    print("brokers: %s (the first for every figure; @<kind> figures from the others)" % ", ".join(kinds))
    print(table(figs))
    for name, err in errors.items():
        print("ERROR %s: %s" % (name, err))
    print("written: %s (%d s)" % (args.out, doc["seconds"]))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
