"""A simulated year: the real control code (Controller, LampOutput, Meter) in the sim's world → CSV, energy summary.

Run from the repo root, on either runtime:
    .venv/bin/python tools/simyear.py --days 365 --place padang
    MICROPYPATH=.:lib .venv/bin/micropython tools/simyear.py --days 365 --json

One step per simulated minute (--step-s for finer steps). Each step reads the sim's light sensor
(drivers/sim.py SimWorld.sensor_lux: clear-sky daylight, clouds, headlights, noise, light faults), asks
Controller.decide for the level, drives LampOutput, and meters the lamp's true power (SimWorld.meter_reading, the
lamp faults included) with firmware Meter. Nothing of the control path is re-implemented here.

Modelling choices (each one a simplification to know about):
* The simulation starts at local noon of --start: day k of the run is the night of local date start + k.
* The decision taken at step t holds for [t, t + step). The lamp is advanced to t + min(fade, step) before its state
  is read, so a 1.5 s fade is not billed as a whole minute at min_level; a re-strike lockout or warm-up longer than
  the step is followed step by step.
* `energy_kwh` is the exact sum of true watts x step. `meter_kwh` is what the node's Meter integrates from the same
  samples (trapezoids: it differs by half a step at each level change); `switch_ons` counts relay closings.
* The sun's elevation is computed exactly every KNOT_S and interpolated linearly in between: within 20 degrees of
  the horizon (where light levels decide anything) the error stays below 0.01 degree, 2 s of the sun's motion;
  near the zenith, where the curve has a kink, it reaches ~1 degree in full daylight, which changes nothing.
* Photocell sampling: the node feeds its photocell every control period (1 s), and its median window and EMA count
  samples, not seconds: sampled once a minute they would take three cars a minute apart for daylight. So where the
  photocell's opinion is used (photocell/hybrid mode, or no valid time) and it could change its mind, the sim steps
  at the node's period (--fine-s, default system.control_ms) and returns to the minute grid once all is quiet.
  Between coarse samples cars are not seen at all: the headlights that meet a minute boundary are the ones tested.
* Months count nights by the date they start on (the night of 31 January is January's).
* "All night full power" (the baseline): nominal watts whenever the sun is below the sunrise/sunset depression.
* A clock loss (--clock-loss DAY:HOURS) behaves like an ESP32 RTC without battery after a power cut: time_valid is
  false and the RTC restarts at 2000-01-01 00:00, so `now` jumps back at the start and forward at the end.
"""

import json
import sys


def _repo_root():
    # The repo root from this file's path (tools/simyear.py), for running as a script on CPython; MicroPython
    # finds it through MICROPYPATH too. No os.path: the unix port has none.
    f = __file__
    i = f.rfind("/")
    return (f[:i] if i >= 0 else ".") + "/.."


if _repo_root() not in sys.path:
    sys.path.insert(0, _repo_root())

import cliargs  # noqa: E402  (tools/, beside this file)
from drivers.sim import SIM_SCHEMA, SimWorld  # noqa: E402
from firmware import astro, config, control, lampout, program, timebase  # noqa: E402
from firmware.compat import ticks_diff, ticks_ms  # noqa: E402
from firmware.control import Controller  # noqa: E402
from firmware.lampout import LampOutput  # noqa: E402
from firmware.metering import Meter  # noqa: E402

KNOT_S = 600  # exact sun elevation every 10 min, linear in between
SUNSET_ELEV = -0.833  # geometric elevation of the sun's centre at sunrise/sunset (astro.py convention)
_TICKS_MASK = 0x3FFFFFFF
_DAY = 86400

# EU rule in local standard time: last Sunday of March 02:00 CET → last Sunday of October 02:00 CET (03:00 CEST).
_EU_CET = {"start": {"month": 3, "week": 5, "weekday": 6, "minute": 120},
           "end": {"month": 10, "week": 5, "weekday": 6, "minute": 120}, "shift_min": 60}
_EU_GMT = {"start": {"month": 3, "week": 5, "weekday": 6, "minute": 60},
           "end": {"month": 10, "week": 5, "weekday": 6, "minute": 60}, "shift_min": 60}
# Sydney: first Sunday of October 02:00 AEST → first Sunday of April 03:00 AEDT (02:00 AEST).
_AU_EAST = {"start": {"month": 10, "week": 1, "weekday": 6, "minute": 120},
            "end": {"month": 4, "week": 1, "weekday": 6, "minute": 120}, "shift_min": 60}

PLACES = {
    "padang": {"lat": -0.95, "lon": 100.35, "utc_offset_min": 420, "dst": None},
    "jakarta": {"lat": -6.2, "lon": 106.85, "utc_offset_min": 420, "dst": None},
    "singapore": {"lat": 1.35, "lon": 103.82, "utc_offset_min": 480, "dst": None},
    "quito": {"lat": -0.18, "lon": -78.47, "utc_offset_min": -300, "dst": None},
    "oslo": {"lat": 59.91, "lon": 10.75, "utc_offset_min": 60, "dst": _EU_CET},
    "london": {"lat": 51.51, "lon": -0.13, "utc_offset_min": 0, "dst": _EU_GMT},
    "reykjavik": {"lat": 64.15, "lon": -21.94, "utc_offset_min": 0, "dst": None},
    "sydney": {"lat": -33.87, "lon": 151.21, "utc_offset_min": 600, "dst": _AU_EAST},
}


class _World(SimWorld):
    """SimWorld with the sun's elevation interpolated between exact values every KNOT_S (see the module notes)."""

    def __init__(self, cfg):
        SimWorld.__init__(self, cfg)
        self._k = None  # knot at or before the last asked time
        self._e0 = 0.0
        self._e1 = 0.0
        self._t = None
        self._e = 0.0

    def exact_elevation(self, t2k):
        return astro.sun_elevation(t2k, self.lat, self.lon)

    def sun_elevation(self, t2k):
        if t2k == self._t:
            return self._e  # asked again for the same step (lux, then the baseline)
        k = t2k - t2k % KNOT_S
        if k != self._k:
            if self._k is not None and k == self._k + KNOT_S:
                self._e0 = self._e1  # walking forward: the old end knot is the new start
            else:
                self._e0 = astro.sun_elevation(k, self.lat, self.lon)
            self._e1 = astro.sun_elevation(k + KNOT_S, self.lat, self.lon)
            self._k = k
        self._t = t2k
        self._e = self._e0 + (self._e1 - self._e0) * (t2k - k) / KNOT_S
        return self._e


# ---------------------------------------------------------------- helpers shared with the energy report and tests


def start_noon(start_days, site):
    """t2k of local noon of local date `start_days`: where a run (and the night of that date) starts."""
    return timebase.t2k_from_local(start_days, 720, site)


def parse_day(s):
    """'YYYY-MM-DD' → days since 2000-01-01; ValueError when invalid."""
    d = program.parse_date(s, False)
    if d is None:
        raise ValueError("bad date %r (YYYY-MM-DD, 2000..2099)" % s)
    return timebase.days_from_civil(d[0], d[1], d[2])


def day_str(days):
    y, m, d = timebase.civil_from_days(days)
    return "%04d-%02d-%02d" % (y, m, d)


def load_config(path=None):
    """A validated node config: the file's document (missing sections take their defaults), or the defaults."""
    if path is None:
        return config.defaults()
    with open(path) as f:
        return config.validate(json.loads(f.read()))


def site_for(place=None, lat=None, lon=None, utc_offset_min=None, base=None):
    """A validated `site` section: a named place, or lat/lon/offset given (None fields from `base` or Padang)."""
    if place is not None:
        if place not in PLACES:
            raise ValueError("unknown place %r (known: %s)" % (place, ", ".join(sorted(PLACES))))
        doc = dict(PLACES[place])
    else:
        doc = dict(base) if base is not None else dict(PLACES["padang"])
        if lat is not None or lon is not None or utc_offset_min is not None:
            doc["dst"] = None  # a hand-given place has no DST rule unless a config file says so
        if lat is not None:
            doc["lat"] = lat
        if lon is not None:
            doc["lon"] = lon
        if utc_offset_min is not None:
            doc["utc_offset_min"] = utc_offset_min
    return timebase.SITE_SCHEMA.check(doc, "site")


def parse_window(s, what):
    """'DAY:HOURS' (DAY may be fractional: days after the run's start at local noon) → (day, hours) floats."""
    parts = s.split(":")
    if len(parts) != 2:
        raise ValueError("%s wants DAY:HOURS, got %r" % (what, s))
    day = float(parts[0])
    hours = float(parts[1])
    if day < 0 or hours <= 0:
        raise ValueError("%s: DAY must be >= 0 and HOURS > 0" % what)
    return (day, hours)


# ---------------------------------------------------------------- the simulation


def _months_between(start_days, days):
    # [(first local day, "YYYY-MM")] for every month the run touches.
    out = []
    y, m, _ = timebase.civil_from_days(start_days)
    last = start_days + days - 1
    while True:
        first = timebase.days_from_civil(y, m, 1)
        if first > last:
            break
        out.append((first, "%04d-%02d" % (y, m)))
        m += 1
        if m > 12:
            m = 1
            y += 1
    return out


class _Run:
    """One simulation's state and counters. run() is the hot path (525 600 steps a year): kept flat, ints only."""

    def __init__(self, cfg, days, start_days, options, on_step):
        opts = options or {}
        self.cfg = cfg
        self.site = cfg["site"]
        self.days = days
        self.start_days = start_days
        self.step_s = int(opts.get("step_s", 60))
        if self.step_s < 1 or self.step_s > 3600 or 86400 % self.step_s:
            raise ValueError("step_s must divide a day and be 1..3600")
        # The node feeds its photocell every control period; the sim does too wherever the photocell could change
        # its mind (see run()). 0 turns that off: plain fixed steps.
        fine = opts.get("fine_s")
        if fine is None:
            fine = max(1, cfg["system"]["control_ms"] // 1000) if "system" in cfg else 1
        self.fine_s = int(fine) if int(fine) < self.step_s else 0
        self.t0 = start_noon(start_days, self.site)
        self.end = self.t0 + days * _DAY
        lamp_cfg = cfg["lamp"]
        sim_doc = dict(opts.get("sim") or {})
        sim_doc["lat"] = self.site["lat"]
        sim_doc["lon"] = self.site["lon"]
        lamp_doc = dict(sim_doc.get("lamp") or {})
        lamp_doc["nominal_w"] = lamp_cfg["nominal_w"]  # the truth is what the config says the lamp is
        if "warmup_s" not in lamp_doc:
            lamp_doc["warmup_s"] = lamp_cfg["warmup_s"]
        sim_doc["lamp"] = lamp_doc
        self.world = _World(SIM_SCHEMA.check(sim_doc, "sim"))
        self.nominal_w = lamp_cfg["nominal_w"]
        self.fade_ms = lamp_cfg["fade_ms"]
        self.ctl = Controller(cfg)
        self.lamp = LampOutput(lamp_cfg)
        self.meter = Meter(cfg.get("metering"))
        # Clock-loss windows as absolute [from, to) world t2k.
        self.losses = []
        for day, hours in opts.get("clock_loss") or ():
            a = self.t0 + int(day * _DAY)
            self.losses.append((a, a + int(hours * 3600)))
        self.losses.sort()
        self.on_step = on_step
        self.dense_meter = bool(opts.get("dense_meter", False))
        # Counters in seconds and mW·s (ints), turned into hours and kWh by summary().
        self.on_s = 0
        self.energy_mws = 0
        self.switch_ons = 0
        self.level_s = {}
        self.reason_s = {}
        self.invalid_s = 0
        self.base_s = 0
        self.base_switch_ons = 0
        self.steps = 0
        self.fine_steps = 0
        self.night_ons = bytearray(days + 1)
        self.months = _months_between(start_days, days)
        n = len(self.months)
        self.m_energy = [0] * n
        self.m_on = [0] * n
        self.m_base = [0] * n

    def run(self):
        world = self.world
        ctl = self.ctl
        cell = ctl.photocell
        on_lux = cell.on_lux
        off_lux = cell.off_lux
        cell_mode = ctl.mode != "astro"
        lamp = self.lamp
        meter = self.meter
        step = self.step_s
        fine = self.fine_s
        fade = self.fade_ms
        t0 = self.t0
        cb = self.on_step
        losses = self.losses
        no_faults = not world.faults
        warmup = world.lamp["warmup_s"] > 0
        level_s = self.level_s
        reason_s = self.reason_s
        night_ons = self.night_ons
        m_energy = self.m_energy
        m_on = self.m_on
        m_base = self.m_base
        months = self.months
        mi = 0
        next_month = months[1][0] if len(months) > 1 else None
        night = self.start_days - 1
        next_day_t = t0  # the first step starts the first night
        loss_i = 0
        loss_from = losses[0][0] if losses else None
        loss_to = losses[0][1] if losses else None
        dense = self.dense_meter
        m_gap = meter.cfg["max_gap_s"] // 2
        m_w = -1  # power, relay state, time validity and now at the meter's last sample
        m_relay = False
        m_valid = True
        m_now = 0
        p_now = 0  # the previous step, shown to the meter only when the next one brings a change
        p_reading = None
        p_relay = False
        prev_relay = False
        prev_dark = False
        strike_t = 0
        c_duty = -1.0
        c_relay = False
        reading = None
        wmw = 0  # true power in mW for the current lamp state
        watts = 0.0
        t = t0
        end = self.end
        while t < end:
            if t >= next_day_t:
                # A new night. Months count nights by the date they start on (the night of Jan 31 is January's).
                night += 1
                if next_month is not None and night >= next_month:
                    mi += 1
                    next_month = months[mi + 1][0] if mi + 1 < len(months) else None
                next_day_t += _DAY
            valid = True
            now = t
            if loss_from is not None and t >= loss_from:
                if t < loss_to:
                    valid = False
                    now = t - loss_from  # the RTC restarted at 2000-01-01 00:00 when the loss began
                else:
                    loss_i += 1
                    if loss_i < len(losses):
                        loss_from, loss_to = losses[loss_i]
                    else:
                        loss_from = None
                    continue  # re-check the same t against the next window
            lux = world.sensor_lux(t)
            level, reason = ctl.decide(now, valid, lux, None)
            # Length of this step. A minute per sample would stretch the photocell's filters (median window and
            # EMA count samples, not seconds) 60-fold and let three cars seen a minute apart look like daylight.
            # So wherever its opinion is used and it could change its mind — the reading or the filtered lux on
            # the other side of its threshold, an opinion not formed yet, a failing sensor still counted healthy —
            # the sim samples at the node's own period, and goes back to the minute grid once all is quiet.
            dt = step - (t - t0) % step
            if fine and (cell_mode or not valid):
                d = cell.dark
                f = cell.lux
                if lux is None:
                    go = cell.healthy
                elif d is None or f is None:
                    go = True
                elif d:
                    go = lux > on_lux or f >= on_lux
                else:
                    go = lux < off_lux or f <= off_lux
                if go and fine < dt:
                    dt = fine
                    self.fine_steps += 1
            if t + dt > end:
                dt = end - t
            self.steps += 1
            ms = ((t - t0) * 1000) & _TICKS_MASK
            lamp.set_target(level, ms)
            # Read the lamp once a fade has run (within this step): that state holds for the step.
            lamp.step((ms + (fade if fade < dt * 1000 else dt * 1000)) & _TICKS_MASK)
            relay = lamp.relay
            if relay and not prev_relay:
                strike_t = t
                self.switch_ons += 1
                k = (t - t0) // _DAY
                if night_ons[k] < 255:
                    night_ons[k] += 1
            prev_relay = relay
            duty = lamp.duty()
            # The true power only changes with the lamp state, a warm-up or a fault: cache it otherwise.
            if not no_faults or (warmup and relay) or duty != c_duty or relay != c_relay:
                c_duty = duty
                c_relay = relay
                reading = world.meter_reading(duty, relay, t - strike_t if relay else 0, t, False)
                if reading is None:  # meter_dead: the lamp still draws its true power
                    watts = world.power_truth(duty, relay, t - strike_t if relay else 0)
                else:
                    watts = reading[2]
                wmw = int(watts * 1000.0 + 0.5)
            # The node's Meter sees every step. It is called only where something changes (and at the step before
            # it, and every half max_gap): between those samples power is constant, so its trapezoids add up to
            # the same energy, burn time and switch-ons at a fraction of the cost (Meter.update boxes floats:
            # ~15 us a call under MicroPython). options["dense_meter"] calls it every step (tests compare).
            if dense or wmw != m_w or relay != m_relay or valid != m_valid or now - m_now >= m_gap or now < m_now:
                if p_now != m_now:
                    meter.update(p_now, p_reading, p_relay)  # the last step before the change
                meter.update(now, reading, relay)
                m_w = wmw
                m_relay = relay
                m_valid = valid
                m_now = now
            p_now = now
            p_reading = reading
            p_relay = relay
            lvl = int(lamp.level + 0.5)
            level_s[lvl] = level_s.get(lvl, 0) + dt
            reason_s[reason] = reason_s.get(reason, 0) + dt
            if relay:
                self.on_s += dt
                m_on[mi] += dt
            if wmw:
                self.energy_mws += wmw * dt
                m_energy[mi] += wmw * dt
            if not valid:
                self.invalid_s += dt
            dark = world.sun_elevation(t) < SUNSET_ELEV
            if dark:
                self.base_s += dt
                m_base[mi] += dt
                if not prev_dark:
                    self.base_switch_ons += 1
            prev_dark = dark
            if cb is not None:
                cb(t, dt, level, reason, lux, lvl, watts, valid)
            t += dt
        return self

    def summary(self):
        nom = self.nominal_w
        energy_kwh = self.energy_mws / 3.6e9
        base_kwh = self.base_s * nom / 3.6e6
        months = []
        for i, (first, name) in enumerate(self.months):
            months.append({
                "month": name,
                "energy_kwh": round(self.m_energy[i] / 3.6e9, 4),
                "burn_h": round(self.m_on[i] / 3600.0, 3),
                "baseline_kwh": round(self.m_base[i] * nom / 3.6e6, 4),
                "baseline_burn_h": round(self.m_base[i] / 3600.0, 3),
            })
        levels = {}
        for lv in sorted(self.level_s):
            levels[str(lv)] = round(self.level_s[lv] / 3600.0, 3)
        reasons = {}
        for r in sorted(self.reason_s):
            reasons[r] = round(self.reason_s[r] / 3600.0, 3)
        nights = self.night_ons[:self.days]
        counters = self.meter.counters()
        site = self.site
        return {
            "start": day_str(self.start_days),
            "days": self.days,
            "step_s": self.step_s,
            "fine_s": self.fine_s,
            "steps": self.steps,
            "fine_steps": self.fine_steps,
            "lat": site["lat"],
            "lon": site["lon"],
            "utc_offset_min": site["utc_offset_min"],
            "dst": site["dst"] is not None,
            "mode": self.cfg["control"]["mode"],
            "nominal_w": nom,
            "burn_h": round(self.on_s / 3600.0, 3),
            "energy_kwh": round(energy_kwh, 4),
            "energy_mws": self.energy_mws,
            "meter_kwh": round(counters["energy_wh"] / 1000.0, 4),
            "meter_burn_h": counters["burn_h"],
            "switch_ons": self.switch_ons,
            "meter_switch_ons": counters["switch_ons"],
            "max_switch_ons_night": max(nights) if len(nights) else 0,
            "nights_over_one_switch_on": sum(1 for n in nights if n > 1),
            "level_h": levels,
            "reason_h": reasons,
            "invalid_time_h": round(self.invalid_s / 3600.0, 3),
            "baseline": {
                "burn_h": round(self.base_s / 3600.0, 3),
                "energy_kwh": round(base_kwh, 4),
                "switch_ons": self.base_switch_ons,
            },
            "savings_pct": round(100.0 * (1.0 - energy_kwh / base_kwh), 2) if base_kwh > 0 else 0.0,
            "months": months,
        }


def simulate(cfg, days, start_days, options=None, on_step=None):
    """Run `days` nights from local noon of local date `start_days` (days since 2000-01-01) → summary dict.

    cfg: a validated node config (its site, programs, calendar, control, photocell, lamp, metering and system
    sections are used). options: {"step_s": 60, "fine_s": node's control period (0: fixed steps), "sim": {sim.json
    overrides: seed, cloudiness, headlights_per_hour, lux_noise, faults, lamp...}, "clock_loss": [(day, hours)],
    "dense_meter": False}. on_step(t2k, dt, decided_level, reason, lux, lamp_level, watts, time_valid) is called
    after every step (the state it reports holds for [t2k, t2k + dt)) when given."""
    if days < 1:
        raise ValueError("days must be >= 1")
    return _Run(cfg, days, start_days, options, on_step).run().summary()


# ---------------------------------------------------------------- command line


class _Csv:
    """Per-step CSV rows: utc,local,level,lux,reason,watts (local time carries its UTC offset)."""

    def __init__(self, f, site, t0, step):
        self.f = f
        self.site = site
        self.t0 = t0
        self.step = step
        self._day = None
        self._utc_date = ""
        self._local = None
        f.write("utc,local,level,lux,reason,watts\n")

    def row(self, t, dt, level, reason, lux, lamp_level, watts, valid):
        if (t - self.t0) % self.step:
            return  # rows on the step grid only; the photocell's fine steps in between are not written
        n = t // _DAY
        if n != self._day:
            self._day = n
            self._utc_date = day_str(n)
        s = t - n * _DAY
        off = timebase.local_offset_min(t, self.site)
        lt = t + off * 60
        ln = lt // _DAY
        ls = lt - ln * _DAY
        sign = "+" if off >= 0 else "-"
        a = off if off >= 0 else -off
        self.f.write("%sT%02d:%02d:%02dZ,%sT%02d:%02d:%02d%s%02d:%02d,%d,%s,%s,%.3f\n" % (
            self._utc_date, s // 3600, s // 60 % 60, s % 60,
            day_str(ln), ls // 3600, ls // 60 % 60, ls % 60, sign, a // 60, a % 60,
            lamp_level, "" if lux is None else "%.3f" % lux, reason, watts))


USAGE = """usage: simyear.py [--days N] [--start YYYY-MM-DD] [--place NAME | --lat X --lon Y --utc-offset-min M]
       [--config FILE] [--mode astro|photocell|hybrid] [--watts W] [--step-s S] [--fine-s S|0]
       [--csv FILE] [--json]
       [--clock-loss DAY:HOURS]... [--fault KIND:DAY:HOURS]... [--noise REL] [--headlights PER_HOUR]
       [--clouds 0..1] [--seed N]
places: """ + ", ".join(sorted(PLACES))


def parse_args(argv):
    """Command-line words → (cfg, days, start_days, options, out) where out = {"csv": path|None, "json": bool}.
    Shared by tools/energy_report.py through build()."""
    defaults = {"days": 365, "start": "2026-01-01", "place": None, "lat": None, "lon": None, "off": None,
                "config": None, "mode": None, "watts": None, "step": 60, "fine": None, "csv": None, "json": False,
                "loss": [], "faults": [], "noise": None, "headlights": None, "clouds": None, "seed": None}
    flags = {"--days": ("days", int), "--start": ("start", str), "--place": ("place", str), "--lat": ("lat", float),
             "--lon": ("lon", float), "--utc-offset-min": ("off", int), "--config": ("config", str),
             "--mode": ("mode", str), "--watts": ("watts", float), "--step-s": ("step", int), "--fine-s": ("fine", int),
             "--csv": ("csv", str), "--noise": ("noise", float), "--headlights": ("headlights", float),
             "--clouds": ("clouds", float), "--seed": ("seed", int)}

    def fault(v):
        kind, _, rest = v.partition(":")
        return (kind,) + parse_window(rest, "--fault")

    repeats = {"--clock-loss": ("loss", lambda v: parse_window(v, "--clock-loss")), "--fault": ("faults", fault)}
    return build(cliargs.parse(argv, defaults, USAGE, flags, {"--json": "json"}, repeats))


def build(a):
    """Options dict (the keys of parse_args) → (cfg, days, start_days, options, out)."""
    cfg = load_config(a.get("config"))
    given_site = a.get("config") is not None and a.get("place") is None
    cfg["site"] = site_for(a.get("place"), a.get("lat"), a.get("lon"), a.get("off"),
                           cfg["site"] if given_site else None)
    if a.get("mode") is not None:
        cfg["control"]["mode"] = a["mode"]
        cfg["control"] = control.SCHEMA.check(cfg["control"], "control")
    if a.get("watts") is not None:
        cfg["lamp"]["nominal_w"] = a["watts"]
        cfg["lamp"] = lampout.SCHEMA.check(cfg["lamp"], "lamp")
    start_days = parse_day(a.get("start") or "2026-01-01")
    t0 = start_noon(start_days, cfg["site"])
    sim = {}
    for key, name in (("noise", "lux_noise"), ("headlights", "headlights_per_hour"), ("clouds", "cloudiness"),
                      ("seed", "seed")):
        if a.get(key) is not None:
            sim[name] = a[key]
    faults = []
    for kind, day, hours in a.get("faults") or ():
        f = t0 + int(day * _DAY)
        faults.append({"kind": kind, "from": f, "to": f + int(hours * 3600)})
    if faults:
        sim["faults"] = faults
    days = int(a.get("days") or 365)
    options = {"step_s": int(a.get("step") or 60), "fine_s": a.get("fine"), "sim": sim,
               "clock_loss": list(a.get("loss") or ())}
    return cfg, days, start_days, options, {"csv": a.get("csv"), "json": bool(a.get("json"))}


def format_summary(s):
    """The summary as a few lines of text."""
    b = s["baseline"]
    lines = [
        "%d nights from %s at lat %.2f lon %.2f (UTC%+d min%s), mode %s, %.0f W lamp, step %d s (%d steps, %d of "
        "them %d s photocell steps)" % (
            s["days"], s["start"], s["lat"], s["lon"], s["utc_offset_min"], ", DST" if s["dst"] else "", s["mode"],
            s["nominal_w"], s["step_s"], s["steps"], s["fine_steps"], s["fine_s"]),
        "program:         %9.1f burn h  %9.2f kWh  %5d switch-ons (meter: %.2f kWh, %d switch-ons)" % (
            s["burn_h"], s["energy_kwh"], s["switch_ons"], s["meter_kwh"], s["meter_switch_ons"]),
        "all night 100%%:  %9.1f burn h  %9.2f kWh  %5d switch-ons" % (b["burn_h"], b["energy_kwh"], b["switch_ons"]),
        "savings: %.1f %%; most switch-ons in one night: %d (%d nights with more than one)" % (
            s["savings_pct"], s["max_switch_ons_night"], s["nights_over_one_switch_on"]),
        "hours at level: " + ", ".join("%s%%: %.1f" % (k, v) for k, v in _by_level(s["level_h"]) if v >= 0.05),
        "hours by reason: " + ", ".join("%s: %.1f" % (k, v) for k, v in sorted(s["reason_h"].items())),
    ]
    if s["invalid_time_h"]:
        lines.append("time not valid for %.1f h" % s["invalid_time_h"])
    return "\n".join(lines)


def _by_level(d):
    return sorted(d.items(), key=lambda kv: -int(kv[0]))


def main(argv):
    try:
        cfg, days, start_days, options, out = parse_args(argv)
    except ValueError as e:
        print(e)
        return 2
    f = None
    cb = None
    if out["csv"]:
        f = open(out["csv"], "w")
        cb = _Csv(f, cfg["site"], start_noon(start_days, cfg["site"]), options["step_s"]).row
    t = ticks_ms()
    try:
        s = simulate(cfg, days, start_days, options, cb)
    finally:
        if f is not None:
            f.close()
    wall = ticks_diff(ticks_ms(), t) / 1000.0
    if out["json"]:
        s["wall_s"] = wall
        print(json.dumps(s))
    else:
        print(format_summary(s))
        print("wall time %.2f s (%s)" % (wall, sys.implementation.name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
