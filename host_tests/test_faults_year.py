"""CPython-only long runs: a noisy healthy lamp for a simulated year raises no alarm (faults.py), and the meter's
energy under emulated ESP32 float32 arithmetic (a float subclass, which MicroPython cannot override)."""

import math
import struct

from firmware.faults import FaultMonitor
from firmware.metering import Meter

LAT = -0.95  # Padang
LON = 100.35
UTC_OFFSET_S = 7 * 3600
T0 = 9131 * 86400  # 2025-01-01 00:00 UTC in t2k seconds
LAMP = {"nominal_w": 60.0, "warmup_s": 60, "min_level": 10}
# The calibration table of HealthyNode's lamp at 220 V (its noise-free current at 50 % and 100 %): current is
# judged only against a table, so the year runs a calibrated monitor beside the uncalibrated one.
CAL = [[50, 60.0 * 0.52 / (220.0 * 0.92)], [100, 60.0 / (220.0 * 0.95)]]


class Lcg:
    def __init__(self, seed):
        self.s = seed

    def uniform(self):  # 0..1
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return self.s / 2147483648.0

    def gauss(self):  # approximately normal, sigma 1 (sum of 12 uniforms)
        return sum(self.uniform() for _ in range(12)) - 6.0


def sun_elevation(t):
    """Approximate solar elevation in degrees (declination + hour angle; +-1 deg is plenty for this test)."""
    days = (t - T0) / 86400.0
    doy = days % 365.25
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365.25)
    solar_h = ((t % 86400) / 3600.0 + LON / 15.0) % 24.0
    ha = math.radians(15.0 * (solar_h - 12.0))
    lat = math.radians(LAT)
    s = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(ha)
    return math.degrees(math.asin(s))


class HealthyNode:
    """A noisy but healthy 60 W LED post: astro on/off, 50 % from 23:00 to 05:00 local, mains 205-235 V,
    power +-2 %, driver overhead at low levels, rare single sensor glitches, clouds and moonless nights."""

    def __init__(self, seed):
        self.n = Lcg(seed)
        self.on_since = None
        self.cloud = 0.6
        self.counts = {"on": 0, "dim": 0, "meter_none": 0, "lux_none": 0, "lux_zero": 0}

    def inp(self, t):
        n = self.n
        sun = sun_elevation(t)
        local_h = ((t + UTC_OFFSET_S) % 86400) / 3600.0
        on = sun < -1.0
        level = (50 if (local_h >= 23.0 or local_h < 5.0) else 100) if on else 0
        if on and self.on_since is None:
            self.on_since = t
        if not on:
            self.on_since = None
        on_s = None if self.on_since is None else t - self.on_since
        v = 220.0 + 10.0 * math.sin(t / 86400.0 * 2 * math.pi / 7.0) + 2.0 * n.gauss()
        if level:
            self.counts["on"] += 1
            if level == 50:
                self.counts["dim"] += 1
            w = 60.0 * (0.04 + 0.96 * level / 100.0) * (1.0 + 0.02 * n.gauss() / 3.0)
            pf = 0.95 if level == 100 else 0.92
            reading = (v, w / (v * pf), w, pf)
        else:
            reading = (v, 0.012 + 0.002 * n.uniform(), 0.3 * n.uniform(), 0.1)  # driver idle, capacitive
        if n.uniform() < 1.0 / 5000:
            reading = None
            self.counts["meter_none"] += 1
        # Clouds: a slow random walk between heavy storm (0.02) and clear sky (1).
        self.cloud = min(1.0, max(0.02, self.cloud + 0.02 * (n.uniform() - 0.5)))
        if sun > 0:
            lux = 110000.0 * math.sin(math.radians(sun)) * self.cloud * (1 + 0.05 * n.gauss() / 3.0)
        elif sun > -6:
            lux = 400.0 * (sun + 6.0) / 6.0 * self.cloud
        else:
            moon = max(0.0, math.sin(2 * math.pi * (t - T0) / (29.53 * 86400)))  # crude lunar cycle
            lux = 0.3 * moon * self.cloud + 0.05 * n.gauss()
        lux = max(0.0, round(lux, 1))  # a quantising sensor: long runs of exactly 0.0 on moonless nights
        if lux == 0.0:
            self.counts["lux_zero"] += 1
        if n.uniform() < 1.0 / 10000:
            lux = None
            self.counts["lux_none"] += 1
        return {"level": level, "relay": level > 0, "on_s": on_s, "reading": reading, "lux": lux, "sun": sun}


def test_noisy_healthy_lamp_for_a_year_raises_no_alarm():
    fm = FaultMonitor({}, LAMP)
    cal = FaultMonitor({"nominal_a": CAL}, LAMP)  # same inputs, current checks on
    node = HealthyNode(2025)
    events = []
    steps = 365 * 1440
    for k in range(steps):
        t = T0 + 60 * k
        x = node.inp(t)
        for m, tag in ((fm, ""), (cal, "cal:")):
            for ev in m.update(t, x):
                events.append((t, tag + ev[0], ev[1]))
    c = node.counts
    print("year: steps=%d events=%d counts=%r" % (steps, len(events), c))
    # The simulation did exercise the interesting states (a vacuous year would prove nothing).
    assert 0.45 * steps < c["on"] < 0.55 * steps and c["dim"] > 0.2 * steps
    assert c["meter_none"] > 50 and c["lux_none"] > 20 and c["lux_zero"] > 0.1 * steps
    assert events == [], events[:10]
    assert fm.active() == [] and cal.active() == []
    # And both monitors are alive: the same lamp failing on the next night is caught by each.
    t = T0 + 60 * steps
    while sun_elevation(t) > -3:
        x = node.inp(t)
        fm.update(t, x)
        cal.update(t, x)
        t += 60
    raised = []
    for _ in range(30):
        x = node.inp(t)
        x["reading"] = (220.0, 0.0, 0.0, 0.0)
        raised += [(ev[0], ev[1]) for ev in fm.update(t, x)]
        raised += [("cal:" + ev[0], ev[1]) for ev in cal.update(t, x)]
        t += 60
    assert raised == [("lamp_failure", True), ("cal:lamp_failure", True)]
    # The calibrated one judges current: 1.5x the current at the right power is over_current once the lamp has
    # been lit again for warmup_s (the lit run restarted when it failed) and then for the current delay_s.
    t0 = t
    raised = []
    for _ in range(30):
        x = node.inp(t)
        v, a, w, pf = x["reading"]
        x["reading"] = (v, 1.5 * a, w, pf / 1.5)
        raised += [(ev[0], ev[1], t - t0) for ev in cal.update(t, x)]
        t += 60
    assert raised == [("lamp_failure", False, 300), ("over_current", True, LAMP["warmup_s"] + 600)], raised


def _f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


class F32(float):
    """A float whose every arithmetic result is rounded to IEEE single precision, like an ESP32's."""

    def _w(self, x):
        return F32(_f32(x))

    def __add__(self, o):
        return self._w(float(self) + float(o))

    def __radd__(self, o):
        return self._w(float(o) + float(self))

    def __sub__(self, o):
        return self._w(float(self) - float(o))

    def __rsub__(self, o):
        return self._w(float(o) - float(self))

    def __mul__(self, o):
        return self._w(float(self) * float(o))

    def __rmul__(self, o):
        return self._w(float(o) * float(self))

    def __truediv__(self, o):
        return self._w(float(self) / float(o))


def test_naive_float32_total_would_lose_a_year_of_energy():
    # Why metering.py keeps ints: at 525 000 Wh a float32 total cannot take one second of 60 W.
    total = F32(_f32(525000.0))
    assert total + F32(_f32(60.0 / 3600.0)) == total


def test_meter_under_float32_arithmetic_one_second_steps():
    # The Meter's arithmetic runs on F32 values end to end (watts in → increment → split into Wh + nWh).
    m = Meter()
    r = (F32(_f32(220.0)), F32(_f32(0.3)), F32(_f32(60.0)), F32(_f32(0.95)))
    day = 86400
    for t in range(day + 1):
        m.update(t, r, True)
    d1 = (m._energy[0], m._energy[1])
    for t in range(day + 1, 2 * day + 1):
        m.update(t, r, True)
    d2 = (m._energy[0] - d1[0], m._energy[1] - d1[1])
    assert isinstance(m._energy[0], int) and isinstance(m._energy[1], int)
    day_wh = d1[0] + d1[1] / 1e9
    assert abs(day_wh - 1440.0) < 1440.0 * 1e-5, day_wh
    # Totals are ints, so every later day adds exactly the same as the second one: a year of 1 s updates is
    # day1 + 364 x day2, computed in integers, with no float total anywhere.
    year_nwh = (d1[0] + 364 * d2[0]) * 1000000000 + d1[1] + 364 * d2[1]
    year_wh = year_nwh / 1e9
    print("float32 year of 1 s steps at 60 W: %.3f Wh (exact 525600)" % year_wh)
    assert abs(year_wh - 525600.0) <= 525600.0 * 0.001
    assert abs(year_wh - 525600.0) <= 525600.0 * 0.00001
