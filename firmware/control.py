"""Who decides the lamp level: override, calendar, program, photocell and fail-safe → (level, reason).

Priority, highest first:
1. override  {"level": L, "until": t2k or None}. A timed override whose `until` has passed is ignored (the caller
   removes expired ones; this is the belt to its braces). Without valid time a timed override cannot be judged and
   is ignored; an override without `until` always applies.
2. calendar special day   ─┐ the Schedule (firmware/program.py): reason "special:<prog>" / "program:<prog>".
3. program of the night   ─┘
4. photocell — in "photocell" mode, inside the "hybrid" window, or when time is not valid; only while its sensor
   is trusted (see below).
5. default_level (100 %, TALQ) — the fail-safe when neither time nor a trusted photocell with an opinion exists.

Modes:
* astro: the schedule decides while time is valid.
* photocell: the photocell decides on/off; "on" uses the schedule's level when time is valid and that level > 0,
  else default_level. Photocell not trusted or still undecided → the schedule (time valid) or the fail-safe.
* hybrid (TALQ AstroAndSensor): the schedule decides, except within ±hybrid_window_min of that night's sunset and
  of its sunrise, where the photocell decides on/off as in photocell mode (when it is trusted and has an opinion).
* without valid time, in every mode: the photocell decides (on → default_level, reason "photocell:no-time"); no
  trusted photocell either → default_level, reason "failsafe". A street is never dark because a clock is missing.

A trusted photocell: its own filter sees plausible readings (Photocell.healthy) AND the caller's fault monitor has
no `light_sensor_fault` active (decide's `light_fault`). The second matters for a sensor stuck at one plausible
reading: the filter cannot tell it from a steady sky, but firmware/faults.py can (a daylight reading all night, a
night reading at noon, the same value for a day), and from then on the sensor must not keep a street dark or burn
a lamp at noon. Where the photocell would have ruled but is not trusted, the schedule's reason carries the suffix
" (light sensor fault)" so the operator sees why the photocell mode is not being followed.

Reasons are short stable strings: "override", "special:<prog>", "program:<prog>", either of those two followed
by " (light sensor fault)", "photocell", "photocell:no-time", "failsafe".
"""

from firmware.photocell import Photocell
from firmware.program import Schedule
from firmware.schema import Dict, Enum, Int, Lazy


def _schema():
    return Dict(
        {
            "mode": Enum(("astro", "photocell", "hybrid"), default="astro", doc="who switches the lamp"),
            "default_level": Int(0, 100, default=100, doc="level when nothing else applies; the fail-safe"),
            "hybrid_window_min": Int(0, 240, default=60, doc="photocell acts within ± this of sunset and sunrise"),
        }
    )


SCHEMA = Lazy(_schema)

R_OVERRIDE = "override"
R_PHOTOCELL = "photocell"
R_NO_TIME = "photocell:no-time"
R_FAILSAFE = "failsafe"
SENSOR_FAULT_SUFFIX = " (light sensor fault)"


class Controller:
    def __init__(self, cfg):
        c = cfg["control"]
        self.mode = c["mode"]
        self.default_level = c["default_level"]
        self.window_s = c["hybrid_window_min"] * 60
        self.schedule = Schedule(cfg["programs"], cfg["calendar"], cfg["site"])
        self.photocell = Photocell(cfg["photocell"])
        self._fallback_of = None  # the schedule tuple the cached fallback below was made from
        self._fallback = None  # (level, reason + SENSOR_FAULT_SUFFIX): built once per schedule segment, not per call

    # decide() is split into small methods on purpose: MicroPython allocates a call's frame on the heap when a
    # function needs more than ~11 locals + stack slots, and decide() runs every minute (measured: 3x faster).

    def decide(self, now, time_valid, lux, override, light_fault=False):
        """One control decision at t2k `now` → (level 0..100, reason). Feed it every sample: it updates the
        photocell with `lux` (float or None) too. `light_fault`: the fault monitor flags the light sensor
        (light_sensor_fault active), so the photocell must not decide whatever it reads."""
        self.photocell.update(lux, now)
        if override is not None and _override_holds(override, now, time_valid):
            return override["level"], R_OVERRIDE
        if time_valid:
            return self._timed(now, light_fault)
        if not light_fault and self._cell_ok():
            return (self.default_level if self.photocell.dark else 0), R_NO_TIME
        return self.default_level, R_FAILSAFE

    def _cell_ok(self):
        cell = self.photocell
        return cell.dark is not None and cell.healthy

    def _timed(self, now, light_fault):
        sched = self.schedule.level_at(now)
        mode = self.mode
        if mode == "astro" or (mode == "hybrid" and not self._in_hybrid_window(now)):
            return sched  # the schedule's own cached tuple: nothing allocated on the common path
        if not light_fault and self._cell_ok():
            return self._cell_level(sched[0]), R_PHOTOCELL
        if light_fault or not self.photocell.healthy:
            return self._sensor_fallback(sched)
        return sched  # healthy but no opinion yet (the first second after boot)

    def _sensor_fallback(self, sched):
        # The photocell should rule here but its sensor is not trusted: the schedule, saying so in the reason.
        if sched is not self._fallback_of:
            self._fallback_of = sched
            self._fallback = (sched[0], sched[1] + SENSOR_FAULT_SUFFIX)
        return self._fallback

    def _cell_level(self, sched_level):
        # Photocell says dark: the schedule's level when it has one, else the default (never dark by schedule gap).
        if not self.photocell.dark:
            return 0
        if sched_level > 0:
            return sched_level
        return self.default_level

    def _in_hybrid_window(self, now):
        sun = self.schedule.sun_events_at(now)
        return _near(sun[0], now, self.window_s) or _near(sun[1], now, self.window_s)


def _near(t, now, w):
    return t is not None and t - w <= now <= t + w


def _override_holds(override, now, time_valid):
    until = override.get("until")
    return until is None or (time_valid and now < until)
