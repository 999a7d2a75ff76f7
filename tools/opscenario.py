"""The operator scenario of issue 14, in code: one ordinary operator session against one virtual lamp post, and the
smallest heap it passes in.

    python tools/opscenario.py run [--micropython BIN] [--heap 112K] [--code src|mpy|rom|frozen] [--days 7]
                                   [--broker auto|mosquitto|amqtt] [--json] [--keep DIR]
    python tools/opscenario.py need [--micropython BIN] [--code ...] [--lo 32] [--hi 512] [--step 4]
                                    [--budget-s 600] [--json]

The session, step by step (each step checks every reply it gets):
  boot       the node (boot.py + main.py through tools/bench_heapwrap.py, which samples the heap) comes online
  get        `get` state, config, counters and log: each answered ok with its section
  program    4 programs x 10 steps and a 2-entry calendar (a weekday rule and a special date): ok
  config     a live change (report.telemetry_s): ok, no restart
  get_config `get config` x 3: ok, and each shows the program push and the live change
  sets       50 `set`s (levels, some timed) and a `clear`: each ok, echoing its level
  hostile    300 seeded hostile payloads (random bytes, bad JSON, wrong types, 5 KB ids): each refused, with the
             command's id when it could be read and id null when not
  ota        `ota_begin` of a signed bundle of the whole firmware, every chunk sent (tools/ota.py's sender) until
             the node says complete, then `ota_abort`: ok, aborted
  days       `days` simulated days of control with telemetry (sim.json speed): every `state` the node publishes
             matches the program the host computes from the node's own config (firmware/program.py), every long
             program segment is seen, telemetry keeps coming
It PASSES when every step passed, the node never reset (one boot, one birth — a lost link counts — and its process
still running at the end). A MemoryError the node caught and answered as a refusal is no failure by itself: every
valid command must still have got its ok. The node's MemoryError lines are counted in the report.

`need` bisects the heap (to --step KB) with the days phase skipped: that phase adds no memory pressure, and each
run measures it (max live heap in the days phase vs in the command phases, reported as `days_extra_live`). The
need found is then confirmed by one full run (days included); if that fails, the heap is raised step by step.

Heap figures come from tools/bench_heapwrap.py's samples (gc.collect() between control ticks): `max_live` is the
most the node held at a quiet point, `min_free` = the heap minus that (the low-water mark between ticks; the peak
inside one command is not observable from outside — the bisection is what catches it). `min_free_node` is the
node's own low-water mark where the firmware reports one (`get counters` -> memory.heap_low: free heap right after
each command, collected), read at the end of a passing run. Telemetry's own `heap_free` (gc.mem_free() without a
collect) is reported as `tele_heap_free_min`.

Runs on any micropython binary: the pip package's (64-bit), or the esp32-shaped one tools/mpbuild.py builds.
"""

import argparse
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (HERE, ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import ota as otatool  # noqa: E402  (tools/: bundles and the chunk sender)
from bench_placement import PLACEMENTS, CodePlacements  # noqa: E402
from broker import Broker  # noqa: E402
from vnode import VirtualNode, esp32_micropython, micropython_binary  # noqa: E402

from firmware.program import Schedule  # noqa: E402  (the host computes what the lamp must do)
from firmware.timebase import days_from_civil  # noqa: E402

WRAPPER = os.path.join(HERE, "bench_heapwrap.py")
PREFIX = "city/lights"
UNIX_T2K = 946684800  # Unix seconds at 2000-01-01 00:00 UTC (the node's t2k epoch)
UPDATE_KEY = "0123456789abcdef0123456789abcdef"  # a test fleet's key: ota_begin must verify the manifest
OTA_VERSION = "9.0.0"  # newer than anything running: ota_begin needs no force
SEED = 20261202
HOSTILE_N = 300
SETS_N = 50
CONTROL_MS = 200
TELEMETRY_S = 900  # the live config change: 300 s (default) -> 900 s
DAYS_REAL_S = 40.0  # real seconds the simulated days take (sets sim.json speed)
# 2026-11-29 17:00 local in Padang (10:00 UTC), a Sunday: the first sunset comes soon after boot.
START_T2K = days_from_civil(2026, 11, 29) * 86400 + 10 * 3600
SPECIAL_DATE = "2026-12-02"  # a Wednesday inside the simulated week: its night runs the special program
MAX_PAYLOAD = 8192  # mqtt.max_payload default: every hostile payload stays under it, so each one is answered


class StepFailed(Exception):
    pass


# --- what the operator sends ---------------------------------------------------------------------------------------


def _steps(r, base):
    """10 program steps: an astro start and end, eight fixed times through the night, levels from `base`."""
    times = ["19:00", "20:00", "21:00", "22:00", "23:00", "00:30", "02:00", "03:30"]
    steps = [{"at": "sunset", "offset_min": r.randint(-20, 20), "level": 100}]
    for hhmm in times:
        steps.append({"at": hhmm, "offset_min": 0, "level": max(0, min(100, base + r.randint(-30, 30)))})
    steps.append({"at": "sunrise", "offset_min": r.randint(-20, 0), "level": 0})
    return steps


def program_push(seed=SEED):
    """(programs, calendar): 4 programs x 10 steps; a weekend rule and one special date."""
    r = random.Random(seed)
    programs = {"default": _steps(r, 70), "weekend": _steps(r, 85), "festival": _steps(r, 100),
                "quiet": _steps(r, 40)}
    calendar = [
        {"program": "weekend", "priority": 5, "weekdays": [5, 6], "dates": None, "from": None, "to": None},
        {"program": "festival", "priority": 10, "weekdays": None, "dates": [SPECIAL_DATE], "from": None,
         "to": None},
    ]
    return programs, calendar


def hostile_payloads(seed=SEED, n=HOSTILE_N):
    """[(category, payload bytes, expected reply id or None)]: every one is invalid by construction; None means the
    id cannot be read (not UTF-8, not JSON, or an id that breaks the id rule), so the refusal carries id null."""
    r = random.Random(seed)
    out = []
    # (command, field path, values each wrong for that field whatever the node's limits are)
    typed = [
        ({"cmd": "set"}, ("level",), ["high", "", [50], {"v": 50}, 101, -1, None, "50%", 10 ** 12]),
        ({"cmd": "set", "level": 50}, ("duration_s",), ["soon", [60], {"s": 60}, "", -5]),
        ({"cmd": "get"}, ("what",), ["everything", "", 5, [], {"x": 1}, "State"]),
        ({"cmd": "program"}, ("programs",), ["all", [], 5, {}, {"default": []},
                                             {"default": [{"at": "noonish", "level": 50}]}]),
        ({"cmd": "config", "set": {"report": {}}}, ("set", "report", "telemetry_s"), ["fast", [], {}, -1, None]),
        ({"cmd": "config", "set": {"photocell": {"off_lux": 1}}}, ("set", "photocell", "on_lux"), [500, 1000]),
        ({}, ("cmd",), ["self_destruct", 5, [], None, "", "GET"]),
        ({"cmd": "identify"}, ("seconds",), ["long", [], {}, -3]),
        ({"cmd": "time"}, ("utc",), ["yesterday", [], {}, ""]),
    ]
    id_chars = "abcdefghijklmnopqrstuvwxyz0123456789-_.:"
    for i in range(n):
        kind = ("bytes", "json", "types", "types", "bigid")[i % 5]
        if kind == "bytes":
            data = bytearray(r.getrandbits(8) for _ in range(r.randint(1, 1500)))
            data.insert(r.randint(0, len(data)), 0xFF)  # never valid UTF-8: refused before any parsing
            out.append((kind, bytes(data), None))
        elif kind == "json":
            cid = "h-%d" % i
            text = json.dumps({"id": cid, "cmd": "set", "level": r.randint(0, 100)})
            # Broken so that no JSON reader takes it: cut inside a string (unterminated), or a bare token where a
            # value belongs. (Not a plain cut after a value: MicroPython 1.25's parser reads '{"id": "x", "cmd":
            # "set", "level": 1' as the whole command and the node obeys it — a lenient-parser limit reported apart,
            # not a memory question, so this session stays out of it.)
            if r.random() < 0.5:
                quotes = [k for k, ch in enumerate(text) if ch == '"']
                q = r.choice(quotes[0::2])  # an opening quote: cut within that string
                end = text.index('"', q + 1)
                text = text[:r.randint(q + 1, end)]
            else:
                text = text.replace(": %s}" % json.loads(text)["level"], ": %s}" % r.choice(
                    ["@", "--1", "0x1f", "'5'", "five", "1..2", "+"]))
            out.append((kind, text.encode(), ("either", cid)))
        elif kind == "types":
            cid = "h-%d" % i
            base, path, values = r.choice(typed)
            doc = json.loads(json.dumps(base))
            doc["id"] = cid
            d = doc
            for k in path[:-1]:
                d = d[k]
            d[path[-1]] = r.choice(values)
            out.append((kind, json.dumps(doc).encode(), cid))
        else:
            big = "".join(r.choice(id_chars) for _ in range(5 * 1024))
            out.append((kind, json.dumps({"id": big, "cmd": "get", "what": "state"}).encode(), None))
    for _, p, _ in out:
        if len(p) > MAX_PAYLOAD - 512:
            raise AssertionError("hostile payload over the node's max_payload")  # a generator bug, not a node's
    return out


def node_config(node_id, broker):
    return {
        "node": {"id": node_id},
        "mqtt": {"brokers": [{"host": broker.host, "port": broker.port}], "keepalive_s": 30, "backoff_min_s": 1,
                 "backoff_max_s": 2},
        "system": {"control_ms": CONTROL_MS},
        "ota": {"update_key": UPDATE_KEY},
    }


# --- the run -------------------------------------------------------------------------------------------------------


class Scenario:
    """One run of the session. `broker`: a started tools/broker.py Broker (shared across runs) or None (own one).
    `days`: simulated days of the last phase (0 skips it). `work`: a directory for bundles and code placements
    shared across runs (built once), else a private one."""

    def __init__(self, micropython=None, heap="112K", code="src", broker=None, days=7, work=None, seed=SEED,
                 placements=None, log=None, keep=None, config_extra=None, sim_extra=None):
        if code not in PLACEMENTS:
            raise ValueError("code must be one of %s" % ", ".join(PLACEMENTS))
        self.micropython = micropython or micropython_binary()
        self.heap = heap
        self.code = code
        self.days = days
        self.seed = seed
        self._own_work = work is None
        self.work = work or tempfile.mkdtemp(prefix="opscenario-")
        self.placements = placements or CodePlacements(os.path.join(self.work, "code"))
        self._own_broker = broker is None
        self.broker = broker
        self.log = log or (lambda s: None)
        self.keep = keep
        self.config_extra = config_extra or {}  # sections merged into the node's config.json (tests)
        self.sim_extra = sim_extra or {}
        self.online_timeout = 60.0  # boot to birth; generous for a loaded machine (a dead node ends it at once)
        self.speed = round(7 * 86400 / DAYS_REAL_S)
        self.op = None
        self.vn = None
        self.nid = None

    # --- helpers

    def _alive(self):
        return self.vn.alive()

    def _wait(self, pred, timeout, what):
        """Wait for pred() under the operator's lock; fails at once when the node process is gone."""
        try:
            return self.op.wait_for(lambda: pred() or (not self._alive() and "dead"), timeout)
        except TimeoutError:
            raise StepFailed("%s: no answer in %.0f s" % (what, timeout))

    def _reply(self, cid, what, timeout=30.0):
        got = self._wait(lambda: self.op.replies.get(cid, [None])[0], timeout, what)
        if got == "dead":
            raise StepFailed("%s: the node process ended" % what)
        return got

    def cmd(self, cmd, timeout=30.0, **fields):
        cid = self.op.send(self.nid, cmd, **fields)
        return self._reply(cid, cmd + (" " + fields["what"] if "what" in fields else ""), timeout)

    def _ok(self, r, what):
        if r.get("ok") is not True:
            raise StepFailed("%s refused: %s" % (what, r.get("error")))
        return r

    # --- steps

    def step_boot(self):
        self.nid = "ops-%d-%d" % (os.getpid(), int(time.monotonic() * 1000) % 1000000)
        env = {"BENCH_HEAP_OUT": os.path.join(self.work, self.nid, "bench_heap.jsonl")}
        env.update(self.placements.env(self.code))
        heap_k = _kb(self.heap) + self.placements.held_k(self.code)
        sim = {"speed": self.speed, "start_t2k": START_T2K, "seed": 7, "rtc_valid_at_boot": True}
        sim.update(self.sim_extra)
        cfg = node_config(self.nid, self.broker)
        for k, v in self.config_extra.items():
            cfg[k] = dict(cfg.get(k, {}), **v) if isinstance(v, dict) else v
        # "frozen": only boot.py and main.py on the node's flash, the rest from the binary (tools/vnode.py).
        where = {"placement": "frozen"} if self.code == "frozen" else {}
        self.vn = VirtualNode(os.path.join(self.work, self.nid), cfg, sim, env=env,
                              main=WRAPPER, micropython=self.micropython, mp_args=["-X", "heapsize=%dK" % heap_k],
                              max_restarts=0, **where)
        self.vn.start()
        got = self._wait(lambda: self.op.status.get(self.nid, {}).get("online"), self.online_timeout, "online")
        if got == "dead":
            raise StepFailed("the node died before it came online")

    def step_get(self):
        for what in ("state", "config", "counters", "log"):
            r = self._ok(self.cmd("get", what=what), "get " + what)
            if what not in r:
                raise StepFailed("get %s: reply without %r" % (what, what))

    def step_program(self):
        self.programs, self.calendar = program_push(self.seed)
        self._ok(self.cmd("program", programs=self.programs, calendar=self.calendar), "program")

    def step_config(self):
        r = self._ok(self.cmd("config", set={"report": {"telemetry_s": TELEMETRY_S}}), "config")
        if r.get("restart") is not False:
            raise StepFailed("live config change asked for a restart: %r" % r)

    def step_get_config(self):
        for i in range(3):
            cfg = self._ok(self.cmd("get", what="config"), "get config #%d" % (i + 1))["config"]
            if cfg.get("report", {}).get("telemetry_s") != TELEMETRY_S:
                raise StepFailed("get config #%d: telemetry_s %r, the live change set %d" % (
                    i + 1, cfg.get("report", {}).get("telemetry_s"), TELEMETRY_S))
            if cfg.get("programs") != self.programs:
                raise StepFailed("get config #%d: programs differ from the push" % (i + 1))
            if cfg.get("calendar") != self.calendar:
                raise StepFailed("get config #%d: calendar differs from the push: %r" % (i + 1, cfg.get("calendar")))
        self.config = cfg

    def step_sets(self):
        r = random.Random(self.seed + 1)
        for i in range(SETS_N):
            level = r.randint(0, 100)
            fields = {"level": level}
            if i % 3 == 0:
                # Long in sim time: at the sim's speed (~15,000x) a 60 s override ends 4 ms of real time later,
                # and one that ended before its own control step rightly replies the program's level.
                fields["duration_s"] = r.randint(4 * 3600, 8 * 3600)
            rep = self._ok(self.cmd("set", **fields), "set #%d" % (i + 1))
            if rep.get("level") != level:
                raise StepFailed("set #%d: reply level %r, sent %d" % (i + 1, rep.get("level"), level))
        self._ok(self.cmd("clear"), "clear")

    def step_hostile(self):
        topic = "%s/%s/cmd" % (PREFIX, self.nid)
        counts = {}
        for i, (kind, payload, cid) in enumerate(hostile_payloads(self.seed)):
            with self.op.cond:
                nulls = len(self.op.replies.get(None, []))
            self.op.client.publish(topic, payload, qos=1)
            what = "hostile #%d (%s)" % (i + 1, kind)
            either = isinstance(cid, tuple)
            if either:
                cid = cid[1]
                got = self._wait(lambda: len(self.op.replies.get(None, [])) > nulls or self.op.replies.get(cid),
                                 30, what)
                if got == "dead":
                    raise StepFailed("%s: the node process ended" % what)
                with self.op.cond:
                    rep = (self.op.replies.get(cid) or self.op.replies[None][nulls:])[0]
            elif cid is None:
                got = self._wait(lambda: len(self.op.replies.get(None, [])) > nulls, 30, what)
                if got == "dead":
                    raise StepFailed("%s: the node process ended" % what)
                with self.op.cond:
                    rep = self.op.replies[None][nulls]
            else:
                rep = self._reply(cid, what)
            if rep.get("ok") is not False or not rep.get("error"):
                raise StepFailed("%s: not refused with a reason: %r" % (what, rep))
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def step_ota(self):
        bd = _bundle(self.work)
        push = otatool.NodePush(self.op, self.nid, bd, window=4, chunk=4096, ack_timeout=30.0, cmd_timeout=30.0,
                                max_resyncs=0)
        try:
            push._transfer()  # begin + every chunk until the node's ack says complete (tools/ota.py's sender)
        except otatool._Failed as e:
            raise StepFailed("ota transfer: %s" % e)
        except TimeoutError as e:  # a command the node never answered (not even its short out-of-memory reply)
            raise StepFailed("ota transfer: no reply (%s)" % e)
        st = self._ok(self.cmd("ota_status"), "ota_status")
        staging = st.get("staging") or {}
        if staging.get("version") != OTA_VERSION:
            raise StepFailed("ota_status after the transfer: %r" % st)
        r = self._ok(self.cmd("ota_abort"), "ota_abort")
        if r.get("aborted") is not True:
            raise StepFailed("ota_abort did not abort: %r" % r)
        return {"bytes": bd.total, "files": len(bd.files), "resends": push.result["resends"]}

    def step_days(self):
        with self.op.cond:
            t0 = self._node_t()
        t_end = t0 + self.days * 86400
        self.days_from = t0
        timeout = self.days * 86400.0 / self.speed * 3 + 60
        got = self._wait(lambda: self._node_t() >= t_end, timeout, "%d simulated days" % self.days)
        if got == "dead":
            raise StepFailed("the node process ended during the simulated days")
        return self._check_program(t0, t_end)

    def _node_t(self):
        """Latest node time (t2k) seen in its state or telemetry (caller holds the lock)."""
        best = 0
        for doc in (self.op.tele.get(self.nid), self.op.state.get(self.nid)):
            if doc and isinstance(doc.get("t"), int):
                best = max(best, doc["t"] - UNIX_T2K)
        return best

    def _check_program(self, t0, t_end):
        """Every state in [t0, t_end] matches the host's schedule at the state's own time (the node publishes a
        state with the clock of the step that decided it); every program segment longer than 1.5 control steps
        shows up where the node ran a step inside it (its telemetry says so); telemetry kept coming."""
        cfg = self.config
        sched = Schedule(cfg["programs"], cfg["calendar"], cfg["site"])
        slack = 60  # sim seconds: the state's t is whole seconds
        step = self.speed * CONTROL_MS / 1000.0  # sim seconds between two control steps
        long_seg = int(1.5 * step) + 120
        states, teles = [], []
        state_topic = "%s/%s/state" % (PREFIX, self.nid)
        tele_topic = "%s/%s/tele" % (PREFIX, self.nid)
        with self.op.cond:
            raw = list(self.op.raw)
        for topic, payload, _ in raw:
            if topic not in (state_topic, tele_topic):
                continue
            doc = json.loads(payload)
            if not isinstance(doc.get("t"), int) or not t0 <= doc["t"] - UNIX_T2K <= t_end:
                continue
            (states if topic == state_topic else teles).append(doc)
        bad = []
        for s in states:
            t = s["t"] - UNIX_T2K
            ok = any(sched.level_at(x) == (s["level"], s["reason"]) for x in (t - slack, t, t + 1))
            if not ok:
                bad.append("t2k %d: %s %r, program says %r" % (t, s["level"], s["reason"], sched.level_at(t)))
        if bad:
            raise StepFailed("lamp off its program (%d of %d states): %s" % (len(bad), len(states), "; ".join(
                bad[:3])))
        # Coverage: the program's segments (merged when level and source repeat) of the window.
        segs = []
        t = t0
        while t < t_end:
            cur = sched.level_at(t)
            if not segs or segs[-1][1] != cur:
                segs.append([t, cur])
            t += 60
        missed = []
        for i, (a, cur) in enumerate(segs):
            b = segs[i + 1][0] if i + 1 < len(segs) else t_end
            if b - a <= long_seg or a == segs[0][0]:
                continue
            seen = any(a <= s["t"] - UNIX_T2K < b and (s["level"], s["reason"]) == cur for s in states)
            # A step inside the segment publishes telemetry (due every step at this speed): without any, the node
            # ran no step there (the host stalled it for the segment's ~0.4 s of real time): no decision to judge.
            stepped = any(a <= x["t"] - UNIX_T2K < b for x in teles)
            if not seen and stepped:
                missed.append("t2k %d-%d %r" % (a, b, cur))
        if missed:
            raise StepFailed("program segments never followed: %s" % "; ".join(missed[:3]))
        want_tele = self.days * 86400 // max(TELEMETRY_S, int(self.speed * CONTROL_MS / 1000.0)) // 2
        if len(teles) < want_tele:
            raise StepFailed("telemetry stalled: %d messages in %d days (want >= %d)" % (len(teles), self.days,
                                                                                        want_tele))
        return {"states": len(states), "segments": len(segs), "tele": len(teles),
                "tele_heap_free_min": min([x["heap_free"] for x in teles if isinstance(x.get("heap_free"), int)]
                                          or [None])}

    # --- the whole session

    def connect(self):
        """The broker (when the scenario owns one) and the operator; tests that drive their own steps call this,
        then step_boot() and cmd(), and close() at the end."""
        if self._own_broker:
            self.broker = Broker("auto").start()
        self.op = otatool.connect("%s:%d" % (self.broker.host, self.broker.port), PREFIX)
        nodelay(self.op.client)
        return self

    def close(self):
        if self.vn is not None:
            self.vn.stop()
        if self.op is not None:
            self.op.close()
        if self._own_broker and self.broker is not None:
            self.broker.close()

    def reset_signs(self):
        """What says the node reset (empty when it did not): process gone, more than one boot or birth."""
        self.judged = {"failed_step": None, "why": ""}
        self._judge(self.judged)
        return self.judged.get("why", "") if self.judged.get("failed_step") == "reset" else ""

    def run(self):
        t_start = time.monotonic()
        result = {"heap": self.heap, "code": self.code, "days": self.days, "micropython": self.micropython,
                  "pass": False, "failed_step": None, "why": "", "steps": []}
        self.connect()
        result["broker"] = self.broker.kind
        plan = [("boot", self.step_boot), ("get", self.step_get), ("program", self.step_program),
                ("config", self.step_config), ("get_config", self.step_get_config), ("sets", self.step_sets),
                ("hostile", self.step_hostile), ("ota", self.step_ota)]
        if self.days:
            plan.append(("days", self.step_days))
        marks = {}
        try:
            for name, fn in plan:
                t0 = time.monotonic()
                marks[name] = self._node_now_ms()
                try:
                    detail = fn()
                except StepFailed as e:
                    result["failed_step"], result["why"] = name, str(e)
                    self.log("opscenario: %s FAILED: %s" % (name, e))
                    break
                result["steps"].append({"step": name, "s": round(time.monotonic() - t0, 2),
                                        "detail": detail if isinstance(detail, dict) else None})
                self.log("opscenario: %s ok (%.1f s)" % (name, time.monotonic() - t0))
            marks["end"] = self._node_now_ms()
            time.sleep(0.5)  # a reset right after the last reply still counts
            self._judge(result)
            if result["pass"]:
                self._node_memory(result)
        finally:
            self.close()
        self._heap_figures(result, marks)
        if self.vn is not None:
            log = self.vn.read_log()
            result["stderr_tail"] = "\n".join(log.strip().splitlines()[-25:])
            if self.keep:
                shutil.copytree(self.vn.dir, os.path.join(self.keep, self.nid), dirs_exist_ok=True)
        result["seconds"] = round(time.monotonic() - t_start, 1)
        if self._own_work:
            shutil.rmtree(self.work, ignore_errors=True)
        return result

    def _judge(self, result):
        """Pass = every step passed and the node never reset."""
        vn = self.vn
        if vn is None:
            return
        births = 0
        status_topic = "%s/%s/status" % (PREFIX, self.nid)
        with self.op.cond:
            for topic, payload, _ in self.op.raw:
                if topic == status_topic and b'"online": true' in payload.replace(b'"online":true',
                                                                                  b'"online": true'):
                    births += 1
        log = vn.read_log()
        resets = []
        if not vn.alive():
            resets.append("node process ended (exit %s)" % (vn.history[-1][1] if vn.history else "?"))
        if vn.boots != 1:
            resets.append("%d boots" % vn.boots)
        if births > 1:
            resets.append("%d births (the link was lost and re-made)" % births)
        # A traceback in the output is not a reset by itself (the node logs a refused MemoryError with its
        # traceback); the last MemoryError line says where memory ran out.
        errors = [ln.strip() for ln in log.splitlines() if "MemoryError" in ln]
        result["memory_errors"] = len(errors)
        if errors:
            result["last_memory_error"] = errors[-1][:200]
        result["births"] = births
        result["boots"] = vn.boots
        if resets and result["failed_step"] is None:
            result["failed_step"], result["why"] = "reset", "; ".join(resets)
        elif resets:
            result["why"] += " [" + "; ".join(resets) + "]"
        result["pass"] = result["failed_step"] is None

    def _node_memory(self, result):
        """The node's own memory counters, where the firmware reports them (`get counters` -> memory: heap_low is
        the lowest free heap it saw right after a command, collected — lower than a between-ticks sample can be)."""
        try:
            mem = self.cmd("get", what="counters").get("memory")
        except StepFailed:
            return
        if isinstance(mem, dict):
            result["node_memory"] = mem
            if isinstance(mem.get("heap_low"), int) and mem["heap_low"] >= 0:
                result["min_free_node"] = mem["heap_low"]

    def _node_now_ms(self):
        """The wrapper's sample count so far: splits the heap samples into phases."""
        if self.vn is None:
            return 0
        return len(read_samples(os.path.join(self.vn.dir, "bench_heap.jsonl")))

    def _heap_figures(self, result, marks):
        if self.vn is None:
            return
        s = read_samples(os.path.join(self.vn.dir, "bench_heap.jsonl"))
        result["samples"] = len(s)
        if not s:
            return
        heap_b = _kb(self.heap) * 1024
        live = [x["live"] for x in s]
        result["max_live"] = max(live)
        result["min_free"] = heap_b - max(live)
        result["live_idle"] = s[min(len(s) - 1, max(0, marks.get("get", 1) - 1))]["live"]
        # The most held in each step (samples from its mark to the next): says which step sets the peak.
        names = list(marks)
        result["max_live_by_step"] = {n: max(live[marks[n]:marks[names[i + 1]]] or [0])
                                      for i, n in enumerate(names[:-1])}
        if "days" in marks:
            cmd_part = live[:marks["days"]] or [0]
            day_part = live[marks["days"]:marks.get("end", len(live))] or [0]
            result["max_live_commands"] = max(cmd_part)
            result["max_live_days"] = max(day_part)
            result["days_extra_live"] = max(day_part) - max(cmd_part)


def nodelay(client):
    """TCP_NODELAY on a paho client's socket. Without it, the PUBACK the client owes for a QoS 1 reply and its next
    command are two small writes: Nagle holds the second until the broker's delayed ACK (~40 ms) — every sequential
    command would cost 44 ms on either broker (measured), which is the client's doing, not the node's."""
    sock = client.socket()
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def read_samples(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line cut by the kill
    except FileNotFoundError:
        pass
    return out


def _kb(heap):
    """'112K' / '1M' / 112 -> KB."""
    if isinstance(heap, int):
        return heap
    h = heap.strip().upper()
    if h.endswith("K"):
        return int(h[:-1])
    if h.endswith("M"):
        return int(h[:-1]) * 1024
    return (int(h) + 1023) // 1024


_bundle_lock = threading.Lock()


def _bundle(work):
    """The update bundle of the whole firmware (.mpy, as a fleet sends it), built once per work directory."""
    path = os.path.join(work, "bundle")
    with _bundle_lock:
        if not os.path.exists(os.path.join(path, otatool.BUNDLE_FILE)):
            otatool.build_bundle(path, UPDATE_KEY, OTA_VERSION, fmt="mpy")
        return otatool.BundleData(path)


def run(micropython=None, heap="112K", code="src", broker=None, days=7, work=None, log=None, keep=None,
        placements=None):
    """One scenario run; the result dict (see the module doc)."""
    return Scenario(micropython, heap, code, broker, days, work, placements=placements, log=log, keep=keep).run()


def need(micropython=None, code="src", lo_k=32, hi_k=512, step_k=4, budget_s=900.0, broker=None, work=None,
         log=None, confirm_days=7, placements=None):
    """Smallest heap (KB, to step_k) at which the scenario passes: bisected with the days phase skipped, then
    confirmed by a full run (raised a step at a time while that fails). Returns a dict: need_k (None when even hi_k
    fails or the budget ran out), the trials, and the figures of the confirming run."""
    log = log or (lambda s: None)
    own_broker = broker is None
    broker = broker or Broker("auto").start()
    own_work = work is None
    work = work or tempfile.mkdtemp(prefix="opscenario-need-")
    places = placements or CodePlacements(os.path.join(work, "code"))
    deadline = time.monotonic() + budget_s
    trials = []

    def trial(k, days):
        r = run(micropython, "%dK" % k, code, broker, days, work, log=None, placements=places)
        trials.append({"heap_k": k, "days": days, "pass": r["pass"], "failed_step": r["failed_step"],
                       "why": r["why"][:200], "s": r["seconds"]})
        log("need(%s): %d KB days=%d -> %s%s" % (code, k, days, "pass" if r["pass"] else "FAIL",
                                                  "" if r["pass"] else " at %s: %s" % (r["failed_step"],
                                                                                        r["why"][:120])))
        return r

    out = {"code": code, "need_k": None, "trials": trials, "step_k": step_k, "lo_k": lo_k, "hi_k": hi_k}
    try:
        top = trial(hi_k, 0)
        if not top["pass"]:
            out["why"] = "fails at the upper bound %d KB: %s: %s" % (hi_k, top["failed_step"], top["why"])
            return out
        lo, hi = lo_k, hi_k
        while hi - lo > step_k and time.monotonic() < deadline:
            mid = (lo + hi) // 2 // step_k * step_k
            if mid <= lo:
                break
            if trial(mid, 0)["pass"]:
                hi = mid
            else:
                lo = mid
        if hi - lo > step_k:
            out["why"] = "time budget spent: the need lies in (%d, %d] KB" % (lo, hi)
            out["range_k"] = [lo, hi]
            return out
        k = hi
        while k <= hi_k and time.monotonic() < deadline:
            full = trial(k, confirm_days)
            if full["pass"]:
                out["need_k"] = k
                out["confirm"] = full
                return out
            k += step_k
        out["why"] = "no full run passed between %d and %d KB within the budget" % (hi, hi_k)
        return out
    finally:
        out["seconds"] = round(budget_s - (deadline - time.monotonic()), 1)
        if own_broker:
            broker.close()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


def summary(r):
    lines = ["%s: heap %s, code %s, %d days, broker %s, %.0f s" % (
        "PASS" if r["pass"] else "FAIL", r["heap"], r["code"], r["days"], r.get("broker"), r.get("seconds", 0))]
    if not r["pass"]:
        lines.append("failed at step %s: %s" % (r["failed_step"], r["why"]))
    for k in ("max_live", "min_free", "min_free_node", "live_idle", "max_live_commands", "max_live_days",
              "days_extra_live"):
        if k in r:
            lines.append("  %-18s %8d B" % (k, r[k]))
    if r.get("memory_errors"):
        lines.append("  %d MemoryError line(s) in the node's output; last: %s" % (r["memory_errors"],
                                                                             r["last_memory_error"]))
    for s in r["steps"]:
        lines.append("  step %-10s ok %6.1f s  %s" % (s["step"], s["s"], json.dumps(s["detail"]) if s["detail"]
                                                       else ""))
    if not r["pass"] and r.get("stderr_tail"):
        lines.append("node output (last lines):\n" + r["stderr_tail"])
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    for name in ("run", "need"):
        p = sub.add_parser(name)
        p.add_argument("--micropython", help="the micropython binary (default: the venv's)")
        p.add_argument("--esp32", action="store_true", help="the esp32-shaped binary (tools/mpbuild.py esp32)")
        p.add_argument("--code", default="src", choices=PLACEMENTS)
        p.add_argument("--broker", default="auto", help="auto | mosquitto | amqtt")
        p.add_argument("--json", action="store_true", help="print the result as JSON")
    r = sub.choices["run"]
    r.add_argument("--heap", default="112K")
    r.add_argument("--days", type=int, default=7)
    r.add_argument("--keep", help="copy the node's directory (log, heap samples) here")
    n = sub.choices["need"]
    n.add_argument("--lo", type=int, default=32, help="KB known to fail (lower bound)")
    n.add_argument("--hi", type=int, default=512, help="KB upper bound")
    n.add_argument("--step", type=int, default=4, help="KB resolution")
    n.add_argument("--budget-s", type=float, default=900.0)
    args = ap.parse_args(argv)

    def say(line):
        sys.stderr.write(line + "\n")

    if args.esp32:
        args.micropython = esp32_micropython()
    with Broker(args.broker) as broker:
        if args.what == "run":
            res = run(args.micropython, args.heap, args.code, broker, args.days, log=say, keep=args.keep)
            print(json.dumps(res, indent=1) if args.json else summary(res))
            return 0 if res["pass"] else 1
        res = need(args.micropython, args.code, args.lo, args.hi, args.step, args.budget_s, broker, log=say)
        if args.json:
            print(json.dumps(res, indent=1))
        else:
            print("need(%s) = %s KB%s" % (args.code, res["need_k"], "" if res["need_k"] else " (%s)" % res.get(
                "why")))
            if res.get("confirm"):
                print(summary(res["confirm"]))
        return 0 if res["need_k"] else 1


if __name__ == "__main__":
    sys.exit(main())
