"""Fault runs of a whole simulated lamp post: the sim's board feeds the node's real control chain, no sleeping.

Run from the repo root, on either runtime:
    .venv/bin/python tools/faultsim.py --fault lamp_dead@19-21 --hours 16
    MICROPYPATH=.:lib .venv/bin/micropython tools/faultsim.py --fault cycling@20-21:30 --step-s 5

A FaultSim builds a drivers/sim.py SimBoard whose clocks are counters it advances itself (`real_ms` drives world
time at the sim's speed, `mono_ms` the ticks), so a simulated year takes seconds. Each step runs the chain that
firmware/node.py Node.control_step runs, in the same order and with the same inputs:
    clock.now → light.read_lux → Controller.decide(..., FaultMonitor.light_fault()) → LampOutput.set_target + step
    → lamp.set_relay/set_output → meter.read → Meter.update(now, reading, relay) → astro.sun_elevation (time valid
    only) → FaultMonitor.update(now, {level, relay, on_s, reading, lux, sun, override})
with `relay` the LampOutput's relay flag, `level` its driven level and `on_s` the whole seconds since that relay
last closed (ticks_diff, like the node). What node.py does besides (MQTT, persistence, OTA, CLO, overrides,
identify, the 50 ms fade cadence) is left out: none of it feeds the fault monitor or the meter.
Boot is node.start's: TimeKeeper.boot judges the RTC, FaultMonitor.note_reset and Meter.note_supply_loss hear the
reset cause, and the first control step runs at once.

Besides the fault events it keeps the exact energy of the simulated lamp: the sim's noise-free power
(SimMeter.true_watts, faults included) right after each step's output is set, which holds until the next step
because the board changes only at steps — so the sum of watts x step is the exact integral of the sim's power
(for an HPS lamp's run-up, whose power moves with the seconds since strike, it is a Riemann sum at the step).
"""

import sys


def _repo_root():
    # tools/faultsim.py → the repo root, without os.path (the unix port has none).
    f = __file__
    i = f.rfind("/")
    return (f[:i] if i >= 0 else ".") + "/.."


if _repo_root() not in sys.path:
    sys.path.insert(0, _repo_root())

import os  # noqa: E402

import cliargs  # noqa: E402  (tools/, beside this file)
from drivers import sim as simmod  # noqa: E402
from firmware import astro, timebase  # noqa: E402
from firmware import config as configmod  # noqa: E402
from firmware.clo import clo_level  # noqa: E402
from firmware.compat import ticks_diff  # noqa: E402
from firmware.control import Controller  # noqa: E402
from firmware.faults import FaultMonitor  # noqa: E402
from firmware.lampout import LampOutput  # noqa: E402
from firmware.metering import Meter  # noqa: E402
from firmware.node import BUILD_FLOOR_T2K  # noqa: E402
from firmware.schema import Invalid  # noqa: E402

# Where the sim keeps sim_clock.json when the caller names no directory. A FaultSim deletes that file before it
# builds its board: every run starts a fresh world at start_t2k instead of resuming an earlier run's clock.
DEFAULT_DIR = "/tmp/faultsim"
CAL_LEVELS = (10, 20, 40, 60, 80, 100)  # min_level, the default program's 60 and 100, and points between


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:  # exists already (or cannot be made: FileStore will say so on its first write)
        pass


class ManualClock:
    """A millisecond counter that only moves when told: the board's real_ms and mono_ms."""

    def __init__(self, start_ms=0):
        self.ms = start_ms

    def __call__(self):
        return self.ms


class FaultSim:
    """One simulated lamp post. `sim_cfg`: a sim.json document (faults, noise, start_t2k...); `node_cfg`: a node
    config document (None: the defaults — Padang, astro mode, the default program); `cause`: the reset cause of
    the boot ("power_on" makes a supply_loss event); `data_dir`: where the sim writes its clock file.
    `on_step(sim, events)`, when given, is called after every step, the boot step included (tests watch the
    inputs with it)."""

    def __init__(self, sim_cfg=None, node_cfg=None, cause="soft", data_dir=None, on_step=None):
        d = data_dir or DEFAULT_DIR
        _mkdir(d)
        try:
            os.remove(d + "/" + simmod.CLOCK_FILE)
        except OSError:  # no earlier run there
            pass
        self.clock_ms = ManualClock(0)
        self.board = simmod.make_board(None, d, sim_cfg or {}, cause, self.clock_ms, self.clock_ms)
        self.world = self.board.world
        cfg = configmod.validate(node_cfg or {})
        self.cfg = cfg
        self.site = cfg["site"]
        self.speed = self.world.cfg["speed"]
        self.controller = Controller(cfg)
        self.lamp = LampOutput(cfg["lamp"])
        self.meter = Meter(cfg["metering"])
        self.faults = FaultMonitor(cfg["faults"], cfg["lamp"])
        self.time = timebase.TimeKeeper(BUILD_FLOOR_T2K, cfg["time"]["max_jump_s"])
        self.on_step = on_step
        self.override = None  # {"level": L, "until": t2k or None}, as Node.override (set by tests and calibrate)
        self.events = []  # (name, active, world t2k, detail) in order
        self.steps = 0
        self.inputs = None  # the dict given to FaultMonitor.update at the last step
        self.level = 0
        self.reason = "boot"
        self.true_wh = 0.0  # exact integral of the sim's noise-free power since boot (host tool: a double)
        self._watts = 0.0  # true power set at the last step: holds until the next
        self._t_last = None
        self._lit_since = None  # ticks when the relay last closed, as node.py keeps it
        # Boot, as Node.start: judge the RTC, hear the reset cause, decide the lamp at once.
        b = self.board
        self.time.boot(b.clock.now(), None)
        c = b.system.reset_cause()
        if c in ("power_on", "brownout"):
            self.meter.note_supply_loss()
        self.faults.note_reset(c)
        self._control()

    # --- time ---

    def world_now(self):
        """True t2k of the simulated street (the sim's faults are scheduled in it)."""
        return self.board.clock.world_now()

    def advance(self, seconds):
        """Move both board clocks on by `seconds` of world time (no control step)."""
        self.clock_ms.ms += int(seconds * 1000 / self.speed)

    # --- the step ---

    def step(self, seconds=1):
        """Advance `seconds` of world time, then one control step; returns that step's fault events."""
        self.advance(seconds)
        return self._control()

    def run(self, until_t2k, step_s=1):
        """Control steps every `step_s` world seconds up to world time `until_t2k` (a shorter last step lands on
        it exactly); returns the events of the span."""
        out = []
        while True:
            left = until_t2k - self.world_now()
            if left <= 0:
                return out
            out.extend(self.step(step_s if step_s < left else left))

    def _control(self):
        # The body of Node.control_step and Node._drive, input for input (see the module docstring).
        b = self.board
        now_ms = b.clock.ticks_ms()
        now = b.clock.now()
        tv = self.time.valid
        lux = b.light.read_lux()
        level, reason = self.controller.decide(now, tv, lux, self.override, self.faults.light_fault())
        clo = self.cfg["clo"]
        if clo["enabled"] and level > 0 and reason != "override":
            level = clo_level(level, self.meter.counters()["burn_h"], clo)
        self.level = level
        self.reason = reason
        lamp = self.lamp
        lamp.set_target(level, now_ms)
        duty, relay = lamp.step(now_ms)
        if relay and self._lit_since is None:
            self._lit_since = now_ms
        elif not relay:
            self._lit_since = None
        b.lamp.set_relay(relay)
        b.lamp.set_output(duty)
        reading = b.meter.read()
        lit = lamp.relay
        self.meter.update(now, reading, lit, lamp.expected_w() if lit else 0.0)  # as firmware/node.py does
        elev = astro.sun_elevation(now, self.site["lat"], self.site["lon"]) if tv else None
        on_s = ticks_diff(now_ms, self._lit_since) // 1000 if lit and self._lit_since is not None else None
        inp = {"level": lamp.level, "relay": lit, "on_s": on_s, "reading": reading, "lux": lux, "sun": elev,
               "override": reason == "override"}
        self.inputs = inp
        evs = self.faults.update(now, inp)
        # Exact energy: the power set by the previous step held until now.
        w = self.world_now()
        if self._t_last is not None:
            self.true_wh += self._watts * (w - self._t_last) / 3600.0
        self._t_last = w
        self._watts = b.meter.true_watts()
        self.steps += 1
        for name, active, detail in evs:
            self.events.append((name, active, w, detail))
        if self.on_step is not None:
            self.on_step(self, evs)
        return evs

    def calibrate(self, levels, hold_s=60, step_s=1):
        """Learn the lamp's healthy current at each level, as a node's `calibrate` command would: override the
        lamp to each level for hold_s while FaultMonitor collects (calibrate_start/stop). Returns the table
        ([[level, amps], ...]) for the config's faults.nominal_a; the override is removed afterwards."""
        self.faults.calibrate_start(self.board.clock.now())
        for lv in levels:
            self.override = {"level": lv, "until": None}
            self.run(self.world_now() + hold_s, step_s)
        self.override = None
        return self.faults.calibrate_stop(self.board.clock.now())

    # --- results ---

    def energy_wh(self):
        """What the node's Meter has integrated since boot."""
        return self.meter.energy_wh()

    def active(self):
        return self.faults.active()


# --- helpers for runs and reports -------------------------------------------------------------------------------


def local_t2k(days, hh, mm=0, site=None):
    """t2k of local time hh:mm on local date `days` (days since 2000-01-01) at `site` (default Padang)."""
    s = site or configmod.defaults()["site"]
    return timebase.t2k_from_local(days, hh * 60 + mm, s)


def first_events(events):
    """{name: (t raised, t cleared or None)} of each fault's first raise; the count of raises in `counts`."""
    out = {}
    for name, active, t, _ in events:
        if active and name not in out:
            out[name] = [t, None]
        elif not active and name in out and out[name][1] is None:
            out[name][1] = t
    return out


def raise_counts(events):
    n = {}
    for name, active, _, _ in events:
        if active:
            n[name] = n.get(name, 0) + 1
    return n


# --- command line -----------------------------------------------------------------------------------------------

USAGE = """usage: faultsim.py [--start YYYY-MM-DD] [--from-h H] [--hours H] [--step-s S] [--seed N]
       [--fault KIND@FROM-TO]... [--cause CAUSE] [--dir DIR] [--calibrate] [--mode astro|photocell|hybrid]
Times are local hours of the start date (H, H.H or HH:MM; 24+ = the next day); the run starts at --from-h
(default 12) and lasts --hours (default 24). --calibrate first learns faults.nominal_a on a healthy copy of the
post (FaultSim.calibrate at CAL_LEVELS); without it the defaults expect amps = W / V (power factor 1).
--mode sets control.mode (default astro): e.g. light_stuck in photocell mode shows day_burning and the program
taking over from the flagged sensor. Each line of the output is an alarm; the last one sums the run up.
fault kinds: """ + ", ".join(simmod.FAULT_KINDS)


def _hours(s):
    # "19", "19.5" or "19:30" → seconds after local midnight of the start date
    hh, _, mm = s.partition(":")
    if mm:
        return int(hh) * 3600 + int(mm) * 60
    return int(float(hh) * 3600)


def _fault(v):
    kind, _, span = v.partition("@")
    f, _, t = span.partition("-")
    if not kind or not f or not t:
        raise ValueError("--fault wants KIND@FROM-TO (local hours H, H.H or HH:MM), got %r" % v)
    return kind, _hours(f), _hours(t)


def parse_args(argv):
    defaults = {"start": "2026-03-20", "from": 12 * 3600, "hours": 24.0, "step": 1, "seed": 1, "faults": [],
                "cause": "soft", "dir": None, "calibrate": False, "mode": "astro"}
    flags = {"--start": ("start", str), "--from-h": ("from", _hours), "--hours": ("hours", float),
             "--step-s": ("step", int), "--seed": ("seed", int), "--cause": ("cause", str), "--dir": ("dir", str),
             "--mode": ("mode", str)}
    return cliargs.parse(argv, defaults, USAGE, flags, {"--calibrate": "calibrate"}, {"--fault": ("faults", _fault)})


def main(argv):
    try:
        a = parse_args(argv)
    except ValueError as e:
        print(e)
        return 2
    d = timebase.days_from_civil(*[int(x) for x in a["start"].split("-")])
    midnight = local_t2k(d, 0)
    t0 = midnight + a["from"]
    faults = [{"kind": k, "from": midnight + f, "to": midnight + t} for k, f, t in a["faults"]]
    node_cfg = {"control": {"mode": a["mode"]}}
    try:
        if a["calibrate"]:
            cal = FaultSim({"start_t2k": t0, "seed": a["seed"]}, None, "soft", a["dir"])
            node_cfg["faults"] = {"nominal_a": cal.calibrate(CAL_LEVELS)}
            print("calibrated nominal_a: %s" % ", ".join("%d%%: %.4f A" % (p[0], p[1]) for p in
                                                           node_cfg["faults"]["nominal_a"]))
        fs = FaultSim({"start_t2k": t0, "seed": a["seed"], "faults": faults}, node_cfg, a["cause"], a["dir"])
    except Invalid as e:
        print(e)
        return 2
    fs.run(t0 + int(a["hours"] * 3600), a["step"])
    for name, active, t, detail in fs.events:
        lt = t - midnight
        print("%+3d %02d:%02d:%02d  %-20s %s  %s" % (lt // 86400, lt % 86400 // 3600, lt % 3600 // 60, lt % 60, name,
                                                      "raised " if active else "cleared", detail))
    err = 100.0 * (fs.energy_wh() - fs.true_wh) / fs.true_wh if fs.true_wh else 0.0
    print("%d steps; active at the end: %s; energy metered %.2f Wh, true %.2f Wh (%+.3f %%)" % (
        fs.steps, ", ".join(fs.active()) or "none", fs.energy_wh(), fs.true_wh, err))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
