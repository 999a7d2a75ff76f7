"""The simulated lamp post: sun, clouds, headlights, lamp electrics, injected faults, RTC and watchdog as one board.

Runs on the MicroPython unix port (the virtual node, started by tools/vnode.py) and on CPython (host tools and
tests import `SimWorld` for the physics alone). Everything random is a hash of (seed, time), so the same sim.json
gives the same world at the same t2k, whatever the process, the runtime or the order of the questions.

Two clocks, kept apart on purpose (docs/DESIGN.md, "Real time vs world time"):
* world time — the true t2k of the simulated street: `start_t2k` + `speed` x real elapsed time since the world was
  created (remembered in data_dir/sim_clock.json, so it keeps running across node restarts). The sun, the faults
  and the network windows follow it. The node never sees it directly.
* the RTC — `clock.now()`: world time + an offset the node may be wrong about. After a power cut (reset cause
  power_on/brownout) it restarts at 0 = 2000-01-01 00:00 like an ESP32 without a backup battery, unless
  sim.json says `rtc_battery` (keeps its offset) or `rtc_valid_at_boot` (comes up right). A watchdog or soft
  reset keeps it running, as the ESP32's RTC does. The fault "no_rtc" loses it at every boot.
`clock.ticks_ms()` is real monotonic ms since boot (+ `ticks_offset`), masked to 30 bits like a 32-bit port.

The radio (SimRadio): in a node process (board_for) the sim stands under the node's `socket` module, as the Wi-Fi
does on an ESP32, so a `net_down` window cuts the node off for real and not only in `net.up()`: while the net is
down a new connection fails (EHOSTUNREACH); a TCP connection that was open when the net went down (or across a
window the node slept through) is dead for good, as a real one is after the broker has given up on it: what the
node writes is lost, nothing it is sent arrives, and its keepalive has to notice. Datagrams (NTP) are lost while
the net is down. Host tools and tests that build a board with make_board() keep the host's own sockets.

Watchdog: the unix port has no machine.WDT, no os._exit and no signal module, a SystemExit raised in a thread ends
only that thread, and exceptions from micropython.schedule callbacks are printed and swallowed — so no thread can
make the process exit with a chosen code while the main thread hangs. The watcher thread therefore does what a
hardware watchdog does, abruptly: it records the cause in data_dir/sim_reset ("wdt", the sim's reset-reason
register), then SIGKILLs its own process (no finally blocks, no handler can swallow it, fires even inside a
blocking socket call). tools/vnode.py turns "killed + sim_reset says wdt" into exit code 77 and restarts the node
with SIM_RESET_CAUSE=wdt. `system.reset()` exits with code 78 (soft reset).
"""

import json
import math
import os
import select
import sys
import time

from drivers.filestore import FileStore
from firmware import astro
from firmware.compat import mem_free as _mem_free
from firmware.compat import is_finite, ticks_diff, ticks_ms
from firmware.schema import NAME_CHARS, Bool, Dict, Enum, Float, Int, Invalid, Lazy, List, Nullable, Str
from firmware.timebase import days_from_civil

WDT_EXIT = 77  # exit code of a watchdog reset (made by tools/vnode.py from the sim_reset record)
SOFT_EXIT = 78  # exit code of system.reset()
SIM_FILE = "sim.json"
CLOCK_FILE = "sim_clock.json"
RESET_FILE = "sim_reset"
TICKS_MASK = 0x3FFFFFFF  # ticks_ms period on 32-bit ports: 2^30
RESET_CAUSES = ("power_on", "brownout", "hard", "soft", "wdt", "panic", "deepsleep")
_POWER_LOSS = ("power_on", "brownout")  # resets after which an RTC without battery has lost the time

FAULT_KINDS = ("lamp_dead", "relay_stuck_on", "light_stuck", "light_dead", "meter_dead", "cycling", "over_current",
               "under_power", "over_power", "no_rtc")
CYCLING_ON_S = 240  # "cycling": an end-of-life HPS lamp burns 4 minutes ...
CYCLING_OFF_S = 60  # ... then drops out for a minute and re-strikes
OVER_CURRENT = 1.5  # "over_current": a failing driver, same power, 1.5 x the current (a worse power factor)
UNDER_POWER = 0.6  # "under_power": part of the LED strings open, power and current 0.6 x (still lit, not failed)
OVER_POWER = 1.4  # "over_power": a driver overdriving its LEDs, power and current 1.4 x
_EHOSTUNREACH = 113  # errno numbers as lwIP and Linux give them
_ETIMEDOUT = 110
_EAGAIN = 11

# 2026-03-20 10:30 UTC = 17:30 in Padang, an hour before sunset (18:29 local that day).
DEFAULT_START_T2K = days_from_civil(2026, 3, 20) * 86400 + 37800
_T2K_MAX = 0x7FFFFFFF

# --- sim.json ------------------------------------------------------------------------------------------------------


def _check_window(v, path):
    if v["to"] is not None and v["to"] <= v["from"]:
        raise Invalid(path + ".to" if path else "to", "must be > from")


def _from():
    return Int(0, _T2K_MAX, 0, doc="world t2k where the window starts")


def _to():
    return Nullable(Int(0, _T2K_MAX), doc="world t2k where it ends (exclusive); null = never")


def _fault():
    return Dict({"kind": Enum(FAULT_KINDS), "from": _from(), "to": _to()}, check=_check_window)


def _window():
    return Dict({"from": _from(), "to": _to()}, check=_check_window)


def _lamp():
    return Dict({
        "nominal_w": Float(1.0, 2000.0, 60.0, doc="real power at duty 1 (the truth; config.json may be wrong)"),
        "standby_w": Float(0.0, 20.0, 1.0, doc="driver draw with the relay closed at duty 0"),
        "warmup_s": Int(0, 1800, 0, doc="HPS-like run-up: power ramps from 30 %, current from 140 %; 0 = LED, instant"),
        "pf_full": Float(0.3, 1.0, 0.96, doc="power factor at duty 1"),
        "pf_idle": Float(0.1, 1.0, 0.35, doc="power factor at duty 0 (drivers lose PF at light load)"),
    })


def _sim():
    return Dict({
        "seed": Int(0, _T2K_MAX, 1, doc="every random thing in the world is a hash of this and the time"),
        "lat": Float(-90.0, 90.0, -0.95),
        "lon": Float(-180.0, 180.0, 100.35),
        "start_t2k": Int(0, _T2K_MAX, DEFAULT_START_T2K, doc="world time when the world was created"),
        "speed": Float(0.001, 100000.0, 1.0, doc="world seconds per real second (720: a night in a minute)"),
        "rtc_valid_at_boot": Bool(True, doc="false: a power-on boot finds the RTC at 0 (2000-01-01)"),
        "rtc_battery": Bool(False, doc="the RTC keeps its time through power cuts"),
        "ticks_offset": Int(0, TICKS_MASK, 0, doc="added to real ticks_ms (start near 2^30 to test the wrap)"),
        "cloudiness": Float(0.0, 1.0, 0.3, doc="0 clear sky; 1 clouds cut daylight by up to 90 %"),
        "headlights_per_hour": Float(0.0, 120.0, 6.0, doc="cars lighting the sensor after sunset"),
        "lux_noise": Float(0.0, 0.5, 0.02, doc="relative sensor noise"),
        "mains_v": Float(90.0, 260.0, 220.0),
        "mains_noise_v": Float(0.0, 30.0, 3.0, doc="slow drift amplitude of the mains voltage"),
        "lamp": _lamp(),
        "faults": List(_fault(), 32, []),
        "net_down": List(_window(), 32, [], doc="world-time windows without Wi-Fi"),
        "rssi": Int(-100, -20, -62, doc="mean Wi-Fi signal, dBm"),
        "unique_id": Nullable(Str(32, minlen=1, charset=NAME_CHARS), doc="default: 12 hex digits from the seed"),
    })


SIM_SCHEMA = Lazy(_sim)

# --- deterministic noise -------------------------------------------------------------------------------------------
# Multipliers stay below 2^29 and inputs below 2^32, so every product is a small int on a 64-bit MicroPython
# (no bignum allocation) and the results are bit-identical on CPython.


def _mix(a, b):
    x = ((a & 0x7FFFFFFF) * 0x1B873593 + (b & 0xFFFFFFFF) * 0x0CC9E2D1 + 0x165667B1) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x1F4A7C15) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0x1B873593) & 0xFFFFFFFF
    x ^= x >> 16
    return x


def _unit(a, b):
    """A uniform number in [0, 1) fixed by (a, b)."""
    return _mix(a, b) / 4294967296.0


def _smooth(seed, t, period):
    """Value noise in [0, 1): a random value per `period` seconds, smoothstepped in between (continuous in t)."""
    k = t // period
    f = (t - k * period) / period
    f = f * f * (3.0 - 2.0 * f)
    a = _unit(seed, k)
    return a + (_unit(seed, k + 1) - a) * f


# Salts that give each noise stream its own sequence from the one seed.
_S_CLOUD1 = 0x0C10
_S_CLOUD2 = 0x0C20
_S_CARS = 0x0CA5
_S_CARS2 = 0x0CA6
_S_LUX = 0x01C5
_S_VOLT = 0x0F01
_S_JIT = 0x0F02
_S_RSSI = 0x0F03
_S_ID = 0x01D0

# --- clear-sky daylight --------------------------------------------------------------------------------------------
# log10(twilight lux) is a logistic in the sun's geometric elevation h, fitted through the usual reference points:
# ~400 lux when the sun sets (h = -0.833), ~4 lux at the end of civil twilight (-6), ~0.008 at nautical (-12),
# ~0.0008 at astronomical (-18), tending to 0.0005 (starlight and airglow). While the sun is up a direct+diffuse term
# 99 600 x sin(h')^1.25 is added (h' = sunset..zenith scaled to 0..90): it starts flat (the sum stays C1 at sunset)
# and gives ~100 klux with the sun overhead.
_TW_LO = -3.3
_TW_HI = 3.5
_TW_MID = -7.0
_TW_K = 3.25
_DAY_LUX = 99600.0
_SUNSET_DEG = -0.833
_D2R = 0.017453292519943295


def clear_sky_lux(elev):
    """Horizontal illuminance (lux) under a clear sky with the sun at geometric elevation `elev` degrees."""
    lux = 10.0 ** (_TW_LO + (_TW_HI - _TW_LO) / (1.0 + math.exp((_TW_MID - elev) / _TW_K)))
    if elev > _SUNSET_DEG:
        # Sunset..zenith mapped onto 0..90 degrees, so the term peaks with the sun overhead.
        h = (elev - _SUNSET_DEG) * (90.0 / (90.0 - _SUNSET_DEG))
        lux += _DAY_LUX * math.sin(h * _D2R) ** 1.25
    return lux


_CAR_SLOT = 30  # s: at most one car per slot, so up to 120 an hour


class SimWorld:
    """The street around the post from a sim.json document (validated here, defaults filled in); every answer is
    a pure function of t2k."""

    def __init__(self, cfg):
        cfg = SIM_SCHEMA.check(cfg, "")  # idempotent on an already normalised document
        self.cfg = cfg
        self.seed = cfg["seed"]
        self.lat = cfg["lat"]
        self.lon = cfg["lon"]
        self.lamp = cfg["lamp"]
        self.faults = cfg["faults"]

    # --- light ---

    def sun_elevation(self, t2k):
        return astro.sun_elevation(t2k, self.lat, self.lon)

    def cloud_factor(self, t2k):
        """Fraction of clear-sky light that gets through: 1 clear .. 0.1 under the thickest cloud."""
        c = self.cfg["cloudiness"]
        if c <= 0.0:
            return 1.0
        n = 0.7 * _smooth(self.seed ^ _S_CLOUD1, t2k, 1800) + 0.3 * _smooth(self.seed ^ _S_CLOUD2, t2k, 240)
        return 1.0 - 0.9 * c * n

    def headlight_lux(self, t2k):
        """Lux added by passing cars at t2k: spikes of 2..5 s, 1500..5000 lux, `headlights_per_hour` on average."""
        p = self.cfg["headlights_per_hour"] * _CAR_SLOT / 3600.0
        if p <= 0.0:
            return 0.0
        k = t2k // _CAR_SLOT
        lux = 0.0
        for j in (k - 1, k):  # a car from the previous slot may still be passing
            if _unit(self.seed ^ _S_CARS, j) >= p:
                continue
            h = _mix(self.seed ^ _S_CARS2, j)
            start = j * _CAR_SLOT + h % _CAR_SLOT
            if start <= t2k < start + 2 + (h >> 8) % 4:
                lux += 1500.0 + 3500.0 * ((h >> 16) & 0xFFFF) / 65535.0
        return lux

    def lux_at(self, t2k):
        """Ambient lux at the sensor: clear sky x clouds, plus headlights after sunset."""
        elev = self.sun_elevation(t2k)
        lux = clear_sky_lux(elev) * self.cloud_factor(t2k)
        if elev < _SUNSET_DEG:
            lux += self.headlight_lux(t2k)
        return lux

    def sensor_lux(self, t2k):
        """What the light sensor reads at t2k (noise and the light faults applied), or None when it fails."""
        if self.fault(t2k, "light_dead") is not None:
            return None
        f = self.fault(t2k, "light_stuck")
        if f is not None:
            t2k = f["from"]  # frozen at the reading it gave when it stuck
        n = self.cfg["lux_noise"]
        return self.lux_at(t2k) * (1.0 + n * (2.0 * _unit(self.seed ^ _S_LUX, t2k) - 1.0))

    # --- electrics ---

    def mains_volts(self, t2k):
        amp = self.cfg["mains_noise_v"]
        return (self.cfg["mains_v"] + amp * (2.0 * _smooth(self.seed ^ _S_VOLT, t2k, 900) - 1.0)
                + 0.1 * amp * (2.0 * _unit(self.seed ^ _S_JIT, t2k) - 1.0))

    def _truth(self, duty, relay_on, seconds_since_strike, volts):
        # -> (amps, watts, pf) without noise. An LED driver is constant-power: W follows duty, A = W / (V x PF).
        if not relay_on:
            return (0.0, 0.0, 0.0)
        duty = 0.0 if duty < 0.0 else (1.0 if duty > 1.0 else duty)
        lp = self.lamp
        w = lp["standby_w"] + (lp["nominal_w"] - lp["standby_w"]) * duty
        pf = lp["pf_idle"] + (lp["pf_full"] - lp["pf_idle"]) * math.sqrt(duty)
        a = w / (volts * pf)
        wu = lp["warmup_s"]
        if wu > 0 and seconds_since_strike < wu:
            # HPS run-up: the cold arc draws more current at low voltage while the light (and power) builds up.
            r = seconds_since_strike / wu if seconds_since_strike > 0 else 0.0
            r = r * r * (3.0 - 2.0 * r)
            w *= 0.3 + 0.7 * r
            a *= 1.4 - 0.4 * r
            pf = w / (volts * a)
        return (a, w, pf)

    def power_truth(self, duty, relay_on, seconds_since_strike):
        """Exact lamp power in W for these inputs (no noise, no faults): integrate this to check energy meters."""
        return self._truth(duty, relay_on, seconds_since_strike, self.cfg["mains_v"])[1]

    def lamp_electrical(self, duty, relay_on, seconds_since_strike, t2k=None):
        """(volts, amps, watts, pf) of a healthy lamp; with `t2k` the mains drift and meter noise of that second."""
        if t2k is None:
            v = self.cfg["mains_v"]
            a, w, pf = self._truth(duty, relay_on, seconds_since_strike, v)
            return (v, a, w, pf)
        v = self.mains_volts(t2k)
        a, w, pf = self._truth(duty, relay_on, seconds_since_strike, v)
        if w > 0.0:
            w *= 1.0 + 0.01 * (2.0 * _unit(self.seed ^ _S_JIT, t2k + 7) - 1.0)
            a = w / (v * pf)  # keeps W = V x A x PF exactly, so no reading is "impossible"
        return (v, a, w, pf)

    def meter_reading(self, duty, powered, seconds_since_strike, t2k, noise=True):
        """The meter's (V, A, W, PF) at world time t2k with the lamp faults applied, or None (meter_dead).
        `powered`: the lamp circuit is closed (relay, or a stuck relay)."""
        if self.fault(t2k, "meter_dead") is not None:
            return None
        v = self.mains_volts(t2k) if noise else self.cfg["mains_v"]
        if not powered or self.fault(t2k, "lamp_dead") is not None:
            return (v, 0.0, 0.0, 0.0)
        f = self.fault(t2k, "cycling")
        if f is not None:
            phase = (t2k - f["from"]) % (CYCLING_ON_S + CYCLING_OFF_S)
            if phase >= CYCLING_ON_S:
                return (v, 0.0, 0.0, 0.0)
            if phase < seconds_since_strike:
                seconds_since_strike = phase  # it re-struck at the start of this phase
        v, a, w, pf = self.lamp_electrical(duty, True, seconds_since_strike, t2k if noise else None)
        if self.fault(t2k, "over_current") is not None and w > 0.0:
            a *= OVER_CURRENT  # a failing driver: same power, more current, so a worse power factor
            pf = w / (v * a)
        k = UNDER_POWER if self.fault(t2k, "under_power") is not None else 1.0
        if self.fault(t2k, "over_power") is not None:
            k *= OVER_POWER
        if k != 1.0:
            a *= k  # the same power factor: W = V x A x PF still holds exactly
            w *= k
        return (v, a, w, pf)

    # --- schedules ---

    def fault(self, t2k, kind):
        """The fault entry of `kind` active at world time t2k, or None."""
        for f in self.faults:
            if f["kind"] == kind and f["from"] <= t2k and (f["to"] is None or t2k < f["to"]):
                return f
        return None

    def net_up(self, t2k):
        for w in self.cfg["net_down"]:
            if w["from"] <= t2k and (w["to"] is None or t2k < w["to"]):
                return False
        return True

    def net_lost_between(self, t0, t1):
        """True when the net was down at any moment of [t0, t1] (a window the node may have slept through)."""
        for w in self.cfg["net_down"]:
            if w["from"] <= t1 and (w["to"] is None or t0 < w["to"]):
                return True
        return False

    def rssi(self, t2k):
        return self.cfg["rssi"] + int(8.0 * _smooth(self.seed ^ _S_RSSI, t2k, 300)) - 4

    def unique_id(self):
        uid = self.cfg["unique_id"]
        if uid is not None:
            return uid
        # Like a MAC address: 12 hex digits, different for every seed.
        return "%04x%08x" % (_mix(self.seed, _S_ID) & 0xFFFF, _mix(self.seed, _S_ID + 1))


# --- the board -----------------------------------------------------------------------------------------------------


def _real_ms():
    # Wall-clock ms (host epoch): world time must keep running while the process is down, so not a monotonic clock.
    return time.time_ns() // 1000000


def _sleep_ms(ms):
    time.sleep(ms / 1000.0)  # CPython has no time.sleep_ms


def _load_json(files, name):
    try:
        data = files.read(name)
        doc = json.loads(data) if data is not None else None
    except ValueError:  # a torn or foreign file: start afresh rather than refuse to boot
        return None
    return doc if isinstance(doc, dict) else None


class SimClock:
    """RTC (`now`, `set_now`) over world time, and real ticks. `files`: where sim_clock.json lives (None: nowhere).
    `real_ms`/`mono_ms` replace the host clocks in tests."""

    def __init__(self, cfg, files=None, cause="power_on", real_ms=None, mono_ms=None, world=None):
        self._real = real_ms or _real_ms
        self._mono = mono_ms or ticks_ms
        self._files = files
        self.start_t2k = cfg["start_t2k"]
        self.speed = cfg["speed"]
        # Ticks count from this boot, starting at ticks_offset (like a device whose counter restarts at reset), so
        # ticks_offset = 2**30 - 3000 means "the counter wraps 3 s after boot" whatever the host's uptime.
        self.ticks_offset = cfg["ticks_offset"]
        self._mono0 = self._mono()
        saved = _load_json(files, CLOCK_FILE) if files is not None else None
        if saved is not None and saved.get("start_t2k") == self.start_t2k and saved.get("speed") == self.speed \
                and isinstance(saved.get("origin_ms"), int):
            self._origin = saved["origin_ms"]
        else:  # a new world (or its parameters changed): it starts now at start_t2k
            self._origin = self._real()
            saved = None
        w = self.world_now()
        no_rtc = world is not None and world.fault(w, "no_rtc") is not None
        kept = None if saved is None else saved.get("rtc_offset")
        if isinstance(kept, int) and not no_rtc and (cause not in _POWER_LOSS or cfg["rtc_battery"]):
            self._offset = kept
            self.rtc_lost = False
        elif cfg["rtc_valid_at_boot"] and not no_rtc:
            self._offset = 0
            self.rtc_lost = False
        else:
            self._offset = -w  # the RTC restarts at 2000-01-01 00:00
            self.rtc_lost = True
        self._save()

    def _save(self):
        if self._files is not None:
            doc = {"start_t2k": self.start_t2k, "speed": self.speed, "origin_ms": self._origin,
                   "rtc_offset": self._offset}
            self._files.write(CLOCK_FILE, json.dumps(doc))

    def world_now(self):
        """True t2k of the simulated street."""
        return self.start_t2k + int((self._real() - self._origin) * self.speed) // 1000

    def now(self):
        return self.world_now() + self._offset

    def set_now(self, t2k):
        self._offset = int(t2k) - self.world_now()
        self._save()  # the RTC keeps this through a soft reset

    def ticks_ms(self):
        return (self._mono() - self._mono0 + self.ticks_offset) & TICKS_MASK


class SimLamp:
    """PWM + relay; remembers when the lamp circuit was last energised (for the warm-up)."""

    def __init__(self, world, clock):
        self._world = world
        self._clock = clock
        self.duty = 0.0
        self.relay = False
        self.switches = 0
        self._since = None  # world t2k when the circuit was energised, None while it is open

    def set_output(self, duty):
        d = float(duty)
        if not is_finite(d):
            raise ValueError("duty must be finite")
        self.duty = 0.0 if d < 0.0 else (1.0 if d > 1.0 else d)

    def set_relay(self, on):
        on = bool(on)
        if on != self.relay:
            self.switches += 1
        self.relay = on
        self.powered(self._clock.world_now())

    def powered(self, t2k):
        """True when current can flow at t2k (the relay, or a stuck relay); tracks the strike time."""
        p = self.relay or self._world.fault(t2k, "relay_stuck_on") is not None
        if not p:
            self._since = None
        elif self._since is None:
            self._since = t2k
        return p

    def on_s(self, t2k):
        return 0 if self._since is None else t2k - self._since


class SimLight:
    def __init__(self, world, clock):
        self._world = world
        self._clock = clock

    def read_lux(self):
        return self._world.sensor_lux(self._clock.world_now())


class SimMeter:
    def __init__(self, world, clock, lamp):
        self._world = world
        self._clock = clock
        self._lamp = lamp

    def _read(self, noise):
        t = self._clock.world_now()
        p = self._lamp.powered(t)
        return self._world.meter_reading(self._lamp.duty, p, self._lamp.on_s(t), t, noise)

    def read(self):
        return self._read(True)

    def true_watts(self):
        """Noise-free power now (faults included; 0.0 while the meter is dead): for tests checking energy."""
        r = self._read(False)
        if r is None:
            t = self._clock.world_now()
            return self._world.power_truth(self._lamp.duty, self._lamp.powered(t), self._lamp.on_s(t))
        return r[2]


def _own_pid():
    # MicroPython's os has no getpid; /proc/self is this process on Linux, the only host the sim runs on.
    getpid = getattr(os, "getpid", None)
    if getpid is not None:
        return getpid()
    with open("/proc/self/stat") as f:
        return int(f.read().split()[0])


class SimWdt:
    """start(timeout_ms) then feed(); starved for longer than the timeout, it records "wdt" and kills the process
    (see the module docstring). `files`: where the reset record goes. Like machine.WDT it cannot be stopped; a
    second start() only changes the timeout."""

    def __init__(self, files, mono_ms=None):
        self._files = files
        self._mono = mono_ms or ticks_ms
        self.timeout_ms = 0  # 0 = not started
        self._last = 0
        self._pid = 0
        self._halt = False
        self._running = False

    def start(self, timeout_ms):
        timeout_ms = int(timeout_ms)
        if timeout_ms < 1:
            raise ValueError("timeout_ms must be >= 1")
        self._last = self._mono()
        self.timeout_ms = timeout_ms
        if not self._running:
            import _thread

            self._pid = _own_pid()
            self._running = True
            _thread.start_new_thread(self._watch, ())
            # Stop the watcher before the interpreter tears itself down, or the thread may run into a freed VM.
            if hasattr(sys, "atexit"):
                sys.atexit(self.halt)

    def feed(self):
        self._last = self._mono()

    def halt(self):
        """Stop the watcher thread (process exit only: the real watchdog cannot be stopped)."""
        self._halt = True
        for _ in range(50):
            if not self._running:
                return
            _sleep_ms(5)

    def _watch(self):
        while not self._halt:
            _sleep_ms(min(50, max(1, self.timeout_ms // 4)))
            starved = ticks_diff(self._mono(), self._last)
            if starved > self.timeout_ms and not self._halt:
                self._fire(starved)
        self._running = False

    def _fire(self, starved):
        try:
            self._files.write(RESET_FILE, b"wdt")
        except OSError as e:  # still reset: a watchdog that does not fire is worse than a lost reason
            print("sim: cannot record the watchdog reset:", e)
        print("sim: watchdog: not fed for %d ms (timeout %d ms): reset" % (starved, self.timeout_ms))
        os.system("kill -9 %d" % self._pid)
        _sleep_ms(1000)  # SIGKILL is on its way; never return into a loop that would fire again


class SimNet:
    def __init__(self, world, clock):
        self._world = world
        self._clock = clock
        self.connects = 0

    def up(self):
        return self._world.net_up(self._clock.world_now())

    def connect(self):
        self.connects += 1  # the host's network is simply there; windows in sim.json take it away

    def rssi(self):
        t = self._clock.world_now()
        return self._world.rssi(t) if self._world.net_up(t) else None


try:
    from io import IOBase as _StreamBase  # MicroPython: a Python class becomes a stream that poll and ssl accept
except ImportError:  # a port without io.IOBase: plain objects (the e2e tests run the unix port, which has it)
    _StreamBase = object

_GET_FILENO = 10  # MicroPython's MP_STREAM_GET_FILENO ioctl: select.poll asks it once, at register()
_POLL = 3  # MP_STREAM_POLL: a stream wrapped around ours (ssl) asks it for readiness


class SimSocket(_StreamBase):
    """A host socket behind the simulated radio (see the module docstring). Only what the node's umqtt and NTP
    code call is here."""

    def __init__(self, radio, sock, stream):
        self._radio = radio
        self._s = sock
        self._stream = stream  # TCP: a cut is for good; UDP: each datagram is judged alone
        self._seen = radio.world_now()  # world time of the last I/O while the net was up
        self._dead = False
        self._timeout = None

    def _cut(self):
        # TCP: down now, or down at some moment since the last I/O — the connection does not survive it.
        # UDP: each datagram meets the net as it is now.
        r = self._radio
        now = r.world_now()
        if not self._stream:
            return not r.world.net_up(now)
        if self._dead or r.world.net_lost_between(self._seen, now):
            self._dead = True
            return True
        self._seen = now
        return False

    def _drain(self):
        # Take what the host delivered and lose it (it was "in the air"); the broker closing the connection is
        # what the node's TCP stack would meet as a timeout.
        s = self._s
        s.setblocking(False)
        try:
            data = s.recv(512)
        except OSError:  # nothing there
            data = None
        finally:
            if self._timeout is None:
                s.setblocking(True)
            else:
                s.settimeout(self._timeout)
        if data == b"":
            raise OSError(_ETIMEDOUT)

    def connect(self, addr):
        if not self._radio.world.net_up(self._radio.world_now()):
            raise OSError(_EHOSTUNREACH)
        self._s.connect(addr)
        self._seen = self._radio.world_now()

    def write(self, buf, n=None):
        size = len(buf) if n is None else n
        if self._cut():
            return size  # sent into a radio link that carries nothing any more
        return self._s.write(buf, size)

    def send(self, buf):
        if self._cut():
            return len(buf)
        return self._s.send(buf)

    def sendto(self, buf, addr):
        if self._cut():
            return len(buf)
        return self._s.sendto(buf, addr)

    def read(self, n):
        if self._cut():
            self._drain()
            return None  # "nothing waiting", as on a non-blocking socket
        return self._s.read(n)

    def readinto(self, buf, n=None):
        if self._cut():
            self._drain()
            return None
        return self._s.readinto(buf) if n is None else self._s.readinto(buf, n)

    def recv(self, n):
        if self._cut():
            self._drain()
            raise OSError(_EAGAIN)
        return self._s.recv(n)

    def ioctl(self, req, arg):
        if req == _GET_FILENO:
            return self._s.fileno()  # poll waits on the host socket itself: no busy loop
        if req == _POLL:
            # Asked by a stream wrapped around this one (TLS: its poll asks the socket under it). The host socket
            # answers, unless the radio cut the connection: then nothing ever arrives.
            if self._stream and self._dead:
                return 0
            p = select.poll()
            p.register(self._s, arg)
            events = p.poll(0)
            return events[0][1] & arg if events else 0
        return 0

    def fileno(self):
        return self._s.fileno()

    def settimeout(self, t):
        self._timeout = t
        self._s.settimeout(t)

    def setblocking(self, flag):
        self._timeout = None if flag else 0
        self._s.setblocking(flag)

    def setsockopt(self, *args):
        self._s.setsockopt(*args)

    def bind(self, addr):
        self._s.bind(addr)

    def close(self):
        self._s.close()


class SimRadio:
    """Stands in for the `socket` module of a node process (install()); `world_now` is the world clock."""

    def __init__(self, world, clock, host_socket):
        self.world = world
        self.world_now = clock.world_now
        self._host = host_socket

    def socket(self, af=None, kind=None, *args):
        h = self._host
        if af is None:
            s = h.socket()
        elif kind is None:
            s = h.socket(af)
        else:
            s = h.socket(af, kind, *args)
        return SimSocket(self, s, kind is None or kind == h.SOCK_STREAM)

    def getaddrinfo(self, *args):
        return self._host.getaddrinfo(*args)

    def __getattr__(self, name):  # AF_INET, SOCK_DGRAM and the other constants: the host's
        return getattr(self._host, name)

    def install(self):
        sys.modules["socket"] = self


class SimSystem:
    def __init__(self, cause, uid, wdt):
        self._cause = cause
        self._uid = uid
        self._wdt = wdt

    def reset_cause(self):
        return self._cause

    def reset(self):
        self._wdt.halt()
        sys.exit(SOFT_EXIT)

    def unique_id(self):
        return self._uid

    def mem_free(self):
        return _mem_free()


class SimBoard:
    """The board seam of docs/DESIGN.md, plus `world` and `data_dir` for tools and tests."""

    def __init__(self, sim_cfg, data_dir=".", cause="power_on", real_ms=None, mono_ms=None):
        self.data_dir = data_dir
        self.world = SimWorld(sim_cfg)
        files = FileStore(data_dir)  # the sim's own files, kept out of the node store's write count
        self.clock = SimClock(self.world.cfg, files, cause, real_ms, mono_ms, self.world)
        self.store = FileStore(data_dir)
        self.lamp = SimLamp(self.world, self.clock)
        self.light = SimLight(self.world, self.clock)
        self.meter = SimMeter(self.world, self.clock, self.lamp)
        self.wdt = SimWdt(files, mono_ms)
        self.net = SimNet(self.world, self.clock)
        self.system = SimSystem(cause, self.world.unique_id(), self.wdt)


def reset_cause():
    """The reset cause given by the supervisor (env SIM_RESET_CAUSE), default power_on."""
    c = os.getenv("SIM_RESET_CAUSE") or "power_on"
    if c not in RESET_CAUSES:
        raise ValueError("SIM_RESET_CAUSE %r not one of %s" % (c, ", ".join(RESET_CAUSES)))
    return c


def load_sim(data_dir="."):
    """sim.json of data_dir, validated with defaults ({} when there is none). A bad file raises Invalid."""
    data = FileStore(data_dir).read(SIM_FILE)
    try:
        doc = json.loads(data) if data is not None else {}
    except ValueError as e:
        raise Invalid(SIM_FILE, "not JSON (%s)" % e)
    return SIM_SCHEMA.check(doc, "")


def board_for(cfg):
    """The board for main.py/startup: the simulated post described by ./sim.json (the node config is not needed),
    with its radio under the node's sockets."""
    import socket

    b = make_board(cfg)
    SimRadio(b.world, b.clock, socket).install()
    return b


def make_board(cfg=None, data_dir=".", sim_cfg=None, cause=None, real_ms=None, mono_ms=None):
    """The simulated board. `cfg` (the node config, as firmware/startup.py passes it) is not needed by the sim;
    `sim_cfg` (a sim.json document) defaults to data_dir/sim.json; `cause` to reset_cause()."""
    sim = load_sim(data_dir) if sim_cfg is None else SIM_SCHEMA.check(sim_cfg, "")
    return SimBoard(sim, data_dir, cause or reset_cause(), real_ms, mono_ms)


def seed(data_dir="."):
    """A per-node random seed (backoff jitter): from sim.json's seed and unique id, so every node differs."""
    w = SimWorld(load_sim(data_dir))
    s = 0
    for ch in w.unique_id():
        s = _mix(s, ord(ch))
    return _mix(s, w.seed) & 0x7FFFFFFF
