"""Lamp-health fault detection (TALQ LampMonitor alarms), debounced so each occurrence raises and clears once.

Input of FaultMonitor.update(now, inp): a dict with these keys (a missing key counts as None/0/False):
  "level"   effective level 0..100 after lampout (fades included); 0 = commanded off
  "relay"   True when the relay is commanded closed
  "on_s"    seconds since the lamp was last switched on (None: unknown — then taken as warmed up)
  "reading" (volts, amps, watts, pf) from the meter, or None on a meter error
  "lux"     ambient light, or None on a light-sensor error
  "sun"     sun elevation in degrees, or None when the time is not valid
  "override" True when the level is an operator's override (a deliberate choice; see day_burning)

Each fault is driven by a tri-state condition every step: True (fault seen), False (healthy seen), None (cannot
tell: e.g. lamp_failure while the lamp is commanded off). A fault raises when True held for its delay_s and clears
when False held for its clear_s; None holds the current state and restarts any pending timer, so a fault never
clears for lack of evidence (a failed lamp stays failed through the day). A step of dt < 0 or > 1 h restarts all
timers (the clock was set, or the node stalled): no condition is taken to have held across the gap.

Definitions ("lit" = amps >= lit_a and watts >= lit_w; "commanded on" = level > 0 and relay closed):
  lamp_failure   commanded on, on_s >= warmup_s, and not lit or amps < fail_frac x expected amps
  day_burning    the lamp burns when it should be off (TALQ), whatever the cause: lit although commanded off
                 (level 0: a welded relay, a driver that does not dim to off), or lit — or, without a meter
                 reading, commanded on — while the sun is at or above day_burning.sun_deg (daylight by the clock:
                 a photocell fooled into "dark", a program that burns into the morning). An operator's override
                 is deliberate: it counts only once it has burned by day for day_burning.override_s (a
                 technician's test at noon is not an alarm, an override forgotten for the day is). Calibration
                 holds it. Without valid time only the level-0 rule can judge.
  relay_stuck    relay commanded OPEN and the circuit energised (watts >= relay_stuck.min_w: any draw through
                 an open relay, even a driver's standby) — the cause, when a relay is fitted. A welded relay by
                 day therefore raises both: relay_stuck after its delay, day_burning after its own (TALQ names both).
  over/under_power  lit, commanded on, lit for >= warmup_s and on_s >= warmup_s, not failed, outside expected
                 +/- max(tol_pct %, floor). Expected power = nominal_w x level/100 (power does not depend on the
                 driver's power factor, so this check is right without calibration).
  over/under_current  the same, but only once a calibration table exists (nominal_a, learned by the `calibrate`
                 command): expected current = table, interpolated. Without it, current checks are off — the
                 current of a dimmed LED driver (power factor 0.8 and below at low levels) cannot be predicted
                 from watts/volts, and guessing raised a false over_current every night in simulation.
  cycling        >= count dropouts (lit -> not lit while commanded on at both samples) within window_s; clears
                 after a window with no dropout (seen while commanded on) plus clear_s
  light_sensor_fault  reason "range" (None, not finite or outside min_lux..max_lux for delay_s), "stuck"
                 (identical readings for stuck_h), "dark_day" (< dark_lux with sun > sun_high_deg for dark_day_h),
                 "bright_night" (> bright_lux with sun < sun_low_deg for bright_night_h)
  current_sensor_fault  reading None or impossible (not finite, V/A out of range, |pf| > 1, W > V x A) for delay_s
  supply_loss    momentary: note_reset("brownout" | "power_on") makes the next update() return a raise AND a clear
                 event for it, in that order; it is never in active() and never persisted.
While cycling is active, lamp_failure and the over/under faults hold (the lamp is expected to be going out).
"""

from firmware.compat import const, is_finite
from firmware.schema import Bool, Dict, Enum, Float, Int, Invalid, Lazy, List, Map

NAMES = (
    "lamp_failure",
    "day_burning",
    "relay_stuck",
    "over_current",
    "under_current",
    "over_power",
    "under_power",
    "cycling",
    "light_sensor_fault",
    "current_sensor_fault",
    "supply_loss",
)
_LIGHT_REASONS = ("range", "stuck", "dark_day", "bright_night")
_MAX_GAP_S = const(3600)
_MAX_CAL = const(11)
_SNAPSHOT_VERSION = const(1)


def _timing(delay, clear):
    return {
        "delay_s": Int(0, 86400, delay, doc="seconds the fault condition must hold before raising"),
        "clear_s": Int(0, 86400, clear, doc="seconds the healthy condition must hold before clearing"),
    }


def _with(fields, delay, clear, doc=""):
    d = _timing(delay, clear)
    for k in fields:
        d[k] = fields[k]
    return Dict(d, doc=doc)


def _check_table(table, path):
    last = 0
    for i, p in enumerate(table):
        lv = p[0]
        if lv != int(lv) or lv < 1:
            raise Invalid("%s[%d]" % (path, i), "level must be an integer 1..100")
        if lv <= last:
            raise Invalid("%s[%d]" % (path, i), "levels must increase strictly")
        last = lv


def _check_faults(c, path):
    ls = c["light_sensor"]
    if ls["min_lux"] >= ls["max_lux"]:
        raise Invalid(path + ".light_sensor.min_lux" if path else "light_sensor.min_lux", "must be < max_lux")
    if ls["dark_lux"] >= ls["bright_lux"]:
        raise Invalid(path + ".light_sensor.dark_lux" if path else "light_sensor.dark_lux", "must be < bright_lux")


# Defaults are for a 60 W LED lantern on 220 V (0.27 A at full output). Delays are minutes, not seconds: nobody
# repairs a lamp within the minute, and a head-end flooded by flapping alarms stops reading them.
def _schema():
    return Dict(
        {
            "lit_a": Float(0, 10, 0.02, doc="the lamp counts as lit when current >= lit_a A ..."),
            "lit_w": Float(0, 1000, 3.0, doc="... and real power >= lit_w W (ignores reactive idle current)"),
            "nominal_v": Float(50, 500, 220.0, doc="volts used when the measured voltage is implausible"),
            "nominal_a": List(
                List(Float(0, 100), 2, min_len=2),
                _MAX_CAL,
                default=[],
                check=_check_table,
                doc="[level, amps] pairs learned by calibration; empty = computed from nominal_w",
            ),
            "lamp_failure": _with({"fail_frac": Float(0, 1, 0.3, doc="failed below this fraction of expected amps")},
                                  300, 300),
            "day_burning": _with({
                "sun_deg": Float(-6, 90, 6.0, doc="the sun at least this high (degrees) is daylight: no lamp should "
                                                  "burn (6: ~25 min after sunrise near the equator)"),
                "override_s": Int(0, 86400, 3600, doc="an override may burn by day this long before it counts as "
                                                      "day burning; 0: no exemption"),
            }, 300, 120),
            "relay_stuck": _with({
                "enabled": Bool(True, doc="false on boards without a relay (PWM only)"),
                "min_w": Float(0, 1000, 0.5, doc="draw through an open relay that means welded contacts (raise it to "
                                                "the meter's noise floor, e.g. 5 W with an ACS712)"),
            }, 60, 60),
            "current": _with(
                {"tol_pct": Float(1, 100, 20.0), "min_tol_a": Float(0, 10, 0.03, doc="absolute tolerance floor")},
                600, 300, doc="over_current / under_current"),
            "power": _with(
                {"tol_pct": Float(1, 100, 20.0), "min_tol_w": Float(0, 1000, 5.0, doc="absolute tolerance floor")},
                600, 300, doc="over_power / under_power"),
            "cycling": _with(
                {"count": Int(2, 20, 3, doc="dropouts within window_s that mean cycling"),
                 "window_s": Int(60, 86400, 3600)},
                0, 3600),
            "light_sensor": _with(
                {
                    "enabled": Bool(True, doc="false when the node has no light sensor"),
                    "min_lux": Float(-1000, 1000000, 0.0),
                    "max_lux": Float(0, 1000000, 200000.0),
                    "stuck_h": Float(1, 720, 24.0, doc="identical readings this long = stuck (a night is ~13 h of 0)"),
                    "dark_lux": Float(0, 100000, 5.0),
                    # dark_day / bright_night: while they mature a photocell-switched lamp burns by day or a
                    # street is dark, so they are kept short. The thresholds are far from any real sky (the
                    # darkest storm gives thousands of lux with the sun 15 degrees up, twilight ~3 lux at -6), and
                    # a false raise is cheap: the program rules the lamp until the sensor proves itself again.
                    "dark_day_h": Float(0.1, 48, 0.5, doc="hours below dark_lux with the sun above sun_high_deg"),
                    "bright_lux": Float(0, 1000000, 500.0),
                    "bright_night_h": Float(0.1, 48, 0.5, doc="hours above bright_lux with the sun below sun_low_deg"),
                    "sun_high_deg": Float(0, 90, 15.0),
                    "sun_low_deg": Float(-90, 0, -6.0),
                },
                300, 600),
            "current_sensor": _with(
                {
                    "enabled": Bool(True, doc="false when the node has no meter"),
                    "max_v": Float(1, 1000, 300.0),
                    "max_a": Float(0.01, 100, 10.0),
                },
                60, 60),
        },
        check=_check_faults,
        doc="lamp-health fault detection",
    )


SCHEMA = Lazy(_schema)


def _snapshot():
    return Dict(
        {
            "v": Int(_SNAPSHOT_VERSION, _SNAPSHOT_VERSION),
            "active": Map(Enum(NAMES[:-1]), Int(-0x3FFFFFFF, 0x3FFFFFFF), len(NAMES)),
            "light_reason": Enum(_LIGHT_REASONS, "range"),
        }
    )


_SNAPSHOT = Lazy(_snapshot)


class _Debounce:
    """One fault's state: active or not, and since when the opposite condition has been seen."""

    def __init__(self, delay_s, clear_s):
        self.delay_s = delay_s
        self.clear_s = clear_s
        self.active = False
        self.since = None  # first time the condition opposite to `active` was seen, continuously
        self.raised_at = None

    def step(self, now, cond):
        """cond True/False/None → +1 raised, -1 cleared, 0 nothing."""
        if cond is None or cond == self.active:
            self.since = None
            return 0
        if self.since is None:
            self.since = now
        if now - self.since < (self.clear_s if self.active else self.delay_s):
            return 0
        self.active = cond
        self.since = None
        if cond:
            self.raised_at = now
            return 1
        self.raised_at = None
        return -1


def _since(prev, cond, now):
    # Start-of-run tracker: when cond has held continuously since, or None.
    if not cond:
        return None
    return now if prev is None else prev


def _num(x):
    return (isinstance(x, (int, float)) and not isinstance(x, bool)) and is_finite(x)


class FaultMonitor:
    """See the module docstring for the input dict and every fault's exact definition.

    Power-up behaviour: nothing is raised at boot; every condition must hold for its delay from the first update().
    Faults restored from `saved` are active at once without a new raise event, and clear (one event) once their
    healthy condition has held for clear_s. `restore_error` is None, or why `saved` was refused (the monitor then
    starts with no active fault).
    """

    def __init__(self, cfg, lamp_cfg, saved=None):
        self.cfg = SCHEMA.check(cfg if cfg is not None else {}, "faults")
        self.nominal_w = float(lamp_cfg["nominal_w"])
        self.warmup_s = lamp_cfg.get("warmup_s", 0) or 0
        self.min_level = lamp_cfg.get("min_level", 0) or 0
        c = self.cfg
        self._deb = {}
        for name, sec in (
            ("lamp_failure", "lamp_failure"),
            ("day_burning", "day_burning"),
            ("relay_stuck", "relay_stuck"),
            ("over_current", "current"),
            ("under_current", "current"),
            ("over_power", "power"),
            ("under_power", "power"),
            ("cycling", "cycling"),
            ("light_sensor_fault", "light_sensor"),
            ("current_sensor_fault", "current_sensor"),
        ):
            self._deb[name] = _Debounce(c[sec]["delay_s"], c[sec]["clear_s"])
        # light_sensor_fault raises as soon as a reason has matured: each reason carries its own duration
        # (delay_s is the one for "range"), so its debounce adds none.
        self._deb["light_sensor_fault"].delay_s = 0
        self._table = [[p[0], p[1]] for p in c["nominal_a"]]
        self._drops = [None] * c["cycling"]["count"]  # ring of the latest dropout times
        self._drop_i = 0
        self._pending = []  # momentary events queued by note_reset()
        self._light_reason = "range"
        self._cal = None  # {level: [sum, n]} while calibrating
        self._cal_level = None
        self._cal_level_since = None
        self._exp_a = None  # expected amps / watts of the last step, for an event's detail
        self._exp_w = None
        self.restore_error = None
        self._t = None
        self._restart()
        if saved is not None:
            try:
                s = _SNAPSHOT.check(saved, "faults.saved")
            except Invalid as e:
                self.restore_error = str(e)
            else:
                for name, since in s["active"].items():
                    d = self._deb[name]
                    d.active = True
                    d.raised_at = since
                self._light_reason = s["light_reason"]

    def _restart(self):
        # Forget everything that measures "how long": after a time discontinuity nothing has held.
        for d in self._deb.values():
            d.since = None
        for i in range(len(self._drops)):
            self._drops[i] = None
        self._prev_lit = None  # lit state at the previous valid reading taken while commanded on
        self._lit_since = None
        self._bad_lux_since = None
        self._lux_last = None
        self._lux_same_since = None
        self._dark_since = None
        self._bright_since = None
        self._cal_level_since = None
        self._override_day_since = None  # when an override started burning the lamp by day

    # ---- boot and reporting -------------------------------------------------------------------------------------

    def note_reset(self, cause):
        """Called once at boot with the reset cause; power-on and brown-out are supply losses."""
        if cause in ("brownout", "power_on"):
            d = {"cause": cause}
            self._pending.append(("supply_loss", True, d))
            self._pending.append(("supply_loss", False, d))

    def active(self):
        return sorted(n for n, d in self._deb.items() if d.active)

    def light_fault(self):
        """True while light_sensor_fault is active: the controller must not let the photocell decide."""
        return self._deb["light_sensor_fault"].active

    def snapshot(self):
        act = {}
        for n, d in self._deb.items():
            if d.active:
                act[n] = d.raised_at if d.raised_at is not None else 0
        return {"v": _SNAPSHOT_VERSION, "active": act, "light_reason": self._light_reason}

    # ---- expected values ----------------------------------------------------------------------------------------

    def expected_w(self, level):
        return self.nominal_w * level / 100.0

    def expected_a(self, level, volts):
        t = self._table
        if not t:
            nv = self.cfg["nominal_v"]
            v = volts if _num(volts) and 0.5 * nv <= volts <= 1.5 * nv else nv
            return self.expected_w(level) / v
        if level <= t[0][0]:
            return t[0][1] * level / t[0][0]  # towards (0, 0): a driver at level 0 draws nothing
        for i in range(1, len(t)):
            if level <= t[i][0]:
                l0, a0 = t[i - 1]
                l1, a1 = t[i]
                return a0 + (a1 - a0) * (level - l0) / (l1 - l0)
        return t[-1][1] * level / t[-1][0]  # above the table: proportional to its last point

    # ---- calibration --------------------------------------------------------------------------------------------

    def learn(self, level, amps_samples):
        """Store the mean of amps_samples as the nominal current at `level` (1..100); returns that mean."""
        if isinstance(level, bool) or not isinstance(level, int) or level < 1 or level > 100:
            raise Invalid("level", "must be an integer 1..100")
        total = 0.0
        n = 0
        for a in amps_samples:
            if _num(a) and 0 <= a <= self.cfg["current_sensor"]["max_a"]:
                total += a
                n += 1
        if n == 0:
            raise Invalid("amps_samples", "no valid sample")
        mean = total / n
        t = self._table
        for p in t:
            if p[0] == level:
                p[1] = mean
                return mean
        if len(t) >= _MAX_CAL:
            raise Invalid("nominal_a", "at most %d levels" % _MAX_CAL)
        t.append([level, mean])
        t.sort()
        return mean

    def calibration(self):
        """The table as [[level, amps], ...] for the config's faults.nominal_a."""
        return [[p[0], p[1]] for p in self._table]

    def calibrate_start(self, now):
        """Collect mean current per level from update() while the node steps the lamp; electrical faults hold."""
        self._cal = {}
        self._cal_level = None
        self._cal_level_since = None

    def calibrate_stop(self, now, min_samples=3):
        """End collection, learn every level with >= min_samples samples, return calibration()."""
        cal = self._cal
        self._cal = None
        if cal:
            for level in sorted(cal):
                s, n = cal[level]
                if n >= min_samples:
                    self.learn(level, (s / n,))
        return self.calibration()

    def _collect(self, now, level, cmd_on, r):
        if level != self._cal_level:
            self._cal_level = level
            self._cal_level_since = now
        if self._cal_level_since is None:
            self._cal_level_since = now
        # Wait a settle time after each level change (warm-up, or 5 s for a driver's own soft start).
        if not cmd_on or r is None or now - self._cal_level_since < max(5, self.warmup_s):
            return
        level = int(level)
        acc = self._cal.get(level)
        if acc is None:
            if len(self._cal) >= _MAX_CAL:
                return
            acc = [0.0, 0]
            self._cal[level] = acc
        acc[0] += r[1]
        acc[1] += 1

    # ---- the step -----------------------------------------------------------------------------------------------

    def _reading(self, reading):
        # (v, a, w, pf) when physically possible, else None.
        if reading is None:
            return None
        try:
            v, a, w, pf = reading
        except (TypeError, ValueError):
            return None
        if not (_num(v) and _num(a) and _num(w) and _num(pf)):
            return None
        cs = self.cfg["current_sensor"]
        if v < 0 or v > cs["max_v"] or a < 0 or a > cs["max_a"] or pf < -1.05 or pf > 1.05:
            return None
        # Real power cannot exceed apparent power; the margin covers a chip's rounding at tiny currents.
        if w < -2.0 or w > v * a * 1.1 + 2.0:
            return None
        return (v, a, w, pf)

    def update(self, now, inp):
        """One control step; returns a list of (name, active, detail) events (usually empty)."""
        events = self._pending
        self._pending = []
        if self._t is not None and (now < self._t or now - self._t > _MAX_GAP_S):
            self._restart()
        self._t = now
        c = self.cfg
        level = inp.get("level") or 0
        relay = bool(inp.get("relay"))
        on_s = inp.get("on_s")
        cmd_on = level > 0 and relay
        if cmd_on and level < self.min_level:
            level = self.min_level
        r = self._reading(inp.get("reading"))

        if c["current_sensor"]["enabled"]:
            s = self._deb["current_sensor_fault"].step(now, r is None)
            if s:  # details are built for the event only: this runs every control step
                events.append(("current_sensor_fault", s > 0, {"reading": _short(inp.get("reading"))}))

        self._day_burning(events, now, level, cmd_on, r, inp.get("sun"), inp.get("override"))
        if self._cal is not None:
            self._collect(now, level, cmd_on, r)
            r = None  # the node drives odd levels while calibrating: judge nothing electrical
        self._electrical(events, now, level, relay, cmd_on, on_s, r)

        ls = c["light_sensor"]
        if ls["enabled"]:
            self._light(events, now, inp.get("lux"), inp.get("sun"), ls)
        return events

    def _emit(self, events, now, name, cond, r, level):
        # An electrical fault's step. Its detail (the reading, and what was expected where it was judged) is built
        # only for an event: a dict every control step would churn the heap for nothing. A condition is None
        # without a reading, and None never changes the state, so r is a reading whenever there is an event.
        s = self._deb[name].step(now, cond)
        if s:
            d = {"v": r[0], "a": r[1], "w": r[2], "level": level}
            if self._exp_a is not None:
                d["exp_a"] = self._exp_a
            if self._exp_w is not None:
                d["exp_w"] = self._exp_w
            events.append((name, s > 0, d))

    def _electrical(self, events, now, level, relay, cmd_on, on_s, r):
        c = self.cfg
        fail = stuck = oc = uc = op = up = cyc = None
        self._exp_a = self._exp_w = None
        if r is not None:
            v, a, w, pf = r
            lit = a >= c["lit_a"] and w >= c["lit_w"]
            rs = c["relay_stuck"]
            if not relay and rs["enabled"]:
                stuck = w >= rs["min_w"]
            if cmd_on:
                if self._prev_lit and not lit:
                    self._drops[self._drop_i] = now
                    self._drop_i = (self._drop_i + 1) % len(self._drops)
                self._prev_lit = lit
                self._lit_since = _since(self._lit_since, lit, now)
                n = 0
                for t in self._drops:
                    if t is not None and now - t <= c["cycling"]["window_s"]:
                        n += 1
                cyc = True if n >= c["cycling"]["count"] else (False if n == 0 else None)
                cycling = self._deb["cycling"].active or cyc is True
                warm = on_s is None or on_s >= self.warmup_s
                exp_a = self.expected_a(level, v)
                self._exp_a = exp_a
                failed = not lit or a < c["lamp_failure"]["fail_frac"] * exp_a
                if warm and not cycling:
                    fail = failed
                if (warm and not cycling and not failed and self._lit_since is not None
                        and now - self._lit_since >= self.warmup_s):
                    cc = c["current"]
                    tol = exp_a * cc["tol_pct"] / 100.0
                    if tol < cc["min_tol_a"]:
                        tol = cc["min_tol_a"]
                    if self._table:  # current is judged only against a learned table (see the module docstring)
                        oc = a > exp_a + tol
                        uc = a < exp_a - tol
                    pc = c["power"]
                    exp_w = self.expected_w(level)
                    self._exp_w = exp_w
                    tol = exp_w * pc["tol_pct"] / 100.0
                    if tol < pc["min_tol_w"]:
                        tol = pc["min_tol_w"]
                    op = w > exp_w + tol
                    up = w < exp_w - tol
            else:
                # Commanded off: a drop now is the command, not the lamp; forget the lit run.
                self._prev_lit = None
                self._lit_since = None
        self._emit(events, now, "relay_stuck", stuck, r, level)
        self._emit(events, now, "cycling", cyc, r, level)
        self._emit(events, now, "lamp_failure", fail, r, level)
        self._emit(events, now, "over_current", oc, r, level)
        self._emit(events, now, "under_current", uc, r, level)
        self._emit(events, now, "over_power", op, r, level)
        self._emit(events, now, "under_power", up, r, level)

    def _day_burning(self, events, now, level, cmd_on, r, sun, override):
        # See the module docstring. `r`: the checked reading, or None.
        c = self.cfg
        db = c["day_burning"]
        if r is not None:
            burning = r[1] >= c["lit_a"] and r[2] >= c["lit_w"]
        else:
            burning = True if cmd_on else None  # no meter: what the node drives is the best evidence there is
        day = sun is not None and sun >= db["sun_deg"]
        deliberate = bool(override) and burning is True and day and level > 0
        if not deliberate:
            self._override_day_since = None
        if self._cal is not None:
            cond = None  # calibration steps the lamp through its levels, by day too, on purpose
        elif burning is None:
            cond = None if level <= 0 or day else False  # commanded off, no meter: cannot tell
        elif not burning:
            cond = False
        elif level <= 0:
            cond = True  # lit although commanded off
        elif not day:
            cond = False
        elif deliberate:
            if self._override_day_since is None:
                self._override_day_since = now
            cond = True if now - self._override_day_since >= db["override_s"] else None
        else:
            cond = True
        s = self._deb["day_burning"].step(now, cond)
        if s:
            # The detail is built only for the event: this check runs every step.
            d = {"level": level, "sun": sun}
            if r is not None:
                d["v"] = r[0]
                d["a"] = r[1]
                d["w"] = r[2]
            events.append(("day_burning", s > 0, d))

    def _light(self, events, now, lux, sun, ls):
        bad = not _num(lux) or lux < ls["min_lux"] or lux > ls["max_lux"]
        self._bad_lux_since = _since(self._bad_lux_since, bad, now)
        dark = bright = False
        if not bad:
            if lux != self._lux_last or self._lux_same_since is None:
                self._lux_last = lux
                self._lux_same_since = now
            if sun is not None:
                dark = sun > ls["sun_high_deg"] and lux < ls["dark_lux"]
                bright = sun < ls["sun_low_deg"] and lux > ls["bright_lux"]
        self._dark_since = _since(self._dark_since, dark, now)
        self._bright_since = _since(self._bright_since, bright, now)
        reason = None
        if bad and now - self._bad_lux_since >= ls["delay_s"]:
            reason = "range"
        elif not bad and now - self._lux_same_since >= ls["stuck_h"] * 3600:
            reason = "stuck"
        elif dark and now - self._dark_since >= ls["dark_day_h"] * 3600:
            reason = "dark_day"
        elif bright and now - self._bright_since >= ls["bright_night_h"] * 3600:
            reason = "bright_night"
        d = self._deb["light_sensor_fault"]
        if reason is not None:
            cond = True
        elif not d.active or self._light_reason in ("range", "stuck"):
            cond = False if not bad else None
        elif sun is None or bad:
            cond = None
        elif self._light_reason == "dark_day":
            cond = False if sun > ls["sun_high_deg"] else None  # only daylight proves a sensor not blind
        else:
            cond = False if sun < ls["sun_low_deg"] else None
        s = d.step(now, cond)
        if s > 0:
            self._light_reason = reason
        if s:
            events.append(("light_sensor_fault", s > 0,
                           {"reason": self._light_reason, "lux": lux if _num(lux) else None}))


def _short(reading):
    # Event details must stay JSON-able and small: a tuple of floats becomes a list, anything else its repr.
    if reading is None:
        return None
    if isinstance(reading, (tuple, list)):
        return [x if _num(x) else repr(x) for x in reading]
    return repr(reading)
