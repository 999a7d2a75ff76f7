"""firmware/astro.py against the NOAA algorithm as implemented by astral (used only here, as the reference), in
double precision and with every float operation of the SAME source rounded to IEEE single as on an ESP32.

The float32 run does not copy the algorithm: it parses firmware/astro.py, wraps every arithmetic result and every
call result in a round-to-single function and rounds every float literal, then executes that tree. Ints stay exact
ints, as on the device. Run with -s to see the worst errors found."""

import ast
import datetime
import math
import os
import random
import struct

from astral import Observer
from astral.julian import julianday, julianday_to_juliancentury
from astral.sun import SunDirection, eq_of_time, hour_angle, sun_declination, time_of_transit
from conftest import ROOT

from firmware import astro
from firmware.timebase import civil_from_days, days_from_civil

ASTRO_PATH = os.path.join(ROOT, "firmware", "astro.py")


# ---- float32 execution of the real source ------------------------------------------------------------------------

def f32(x):
    if isinstance(x, float):
        return struct.unpack("f", struct.pack("f", x))[0]
    return x


class _RoundEverything(ast.NodeTransformer):
    """Every BinOp, UnaryOp and Call result goes through _f32; float literals are stored as float32 values."""

    def _wrap(self, node):
        call = ast.Call(func=ast.Name(id="_f32", ctx=ast.Load()), args=[node], keywords=[])
        return ast.copy_location(call, node)

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return self._wrap(node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        return self._wrap(node)

    def visit_Call(self, node):
        self.generic_visit(node)
        return self._wrap(node)

    def visit_AugAssign(self, node):
        # x op= v  ->  x = _f32(x op v), so augmented assignments cannot slip past the rounding.
        self.generic_visit(node)
        load = ast.Name(id=node.target.id, ctx=ast.Load())
        value = self._wrap(ast.BinOp(left=load, op=node.op, right=node.value))
        return ast.copy_location(ast.Assign(targets=[node.target], value=value), node)

    def visit_Constant(self, node):
        if isinstance(node.value, float):
            node.value = f32(node.value)
        return node


def load_float32(source, name):
    tree = _RoundEverything().visit(ast.parse(source))
    ast.fix_missing_locations(tree)
    ns = {"_f32": f32, "__name__": name}
    exec(compile(tree, name, "exec"), ns)
    return ns


with open(ASTRO_PATH) as _f:
    ASTRO32 = load_float32(_f.read(), "astro_f32")


def test_float32_harness_bites():
    # The same rounding applied to the textbook Julian-day form loses the time of day: 5 h after midnight is
    # 0.208 day, but float32 near 2.45e6 steps by 0.25 day. If this ever passed, the harness would prove nothing.
    ns = load_float32("def day_fraction(t2k):\n    return (2451544.5 + t2k / 86400.0) - 2451544.5\n", "naive")
    err_min = abs(ns["day_fraction"](5 * 3600) - 5 / 24.0) * 1440
    print("\nnaive Julian day in float32: %.1f min error at 05:00" % err_min)
    assert err_min > 30


def test_float32_run_really_differs_from_double():
    d64 = astro.sun_times(2063, 7, 14, 37.5, -122.3, -420)
    d32 = ASTRO32["sun_times"](2063, 7, 14, 37.5, -122.3, -420)
    assert d64 != d32  # the rounding reached the arithmetic
    assert abs(d64[0] - d32[0]) < 0.5 and abs(d64[1] - d32[1]) < 0.5


# ---- the reference -----------------------------------------------------------------------------------------------

def _ref_iterated(y, m, d, lat, lon, offset, depression, rising):
    """The same NOAA event from astral's own sun_declination / eq_of_time / hour_angle, iterated from local noon
    of the date (used where astral's date search cannot return the event, see ref_event)."""
    obs_dir = SunDirection.RISING if rising else SunDirection.SETTING
    jd0 = julianday(datetime.date(y, m, d))  # 00:00 UTC of the date
    t = 720.0 - offset  # UTC minutes after jd0: local noon
    for _ in range(4):
        jc = julianday_to_juliancentury(jd0 + t / 1440.0)
        try:
            ha = hour_angle(lat, sun_declination(jc), 90.0 + depression, obs_dir)
        except ValueError:
            return None
        t = 720.0 - 4.0 * (lon + math.degrees(ha)) - eq_of_time(jc)
    mins = t + offset
    return mins if 0 <= mins < 1440 else None


def ref_event(y, m, d, lat, lon, offset, depression, rising):
    """NOAA/astral event on the local date y-m-d, minutes after its local midnight, or None if none that date.

    astral's own sunrise()/dawn() add their own refraction model to the zenith (about 0.79 deg at the horizon,
    0.055 deg extra at 6 deg); NOAA's calculator and astro.py take the depression as given, so the reference is
    astral's time_of_transit without refraction, searched over the neighbouring UTC dates as astral does.
    time_of_transit returns one event per UTC date; when the event drifts across 00:00 UTC a UTC date holds two
    (e.g. 00:00:25 and 23:58:50) and the second is never returned: then the iterated primitives answer."""
    obs = Observer(latitude=lat, longitude=lon)
    direction = SunDirection.RISING if rising else SunDirection.SETTING
    day = datetime.date(y, m, d)
    local0 = datetime.datetime(y, m, d) - datetime.timedelta(minutes=offset)  # local midnight, in UTC
    for k in (-1, 0, 1):
        try:
            t = time_of_transit(obs, day + datetime.timedelta(days=k), 90.0 + depression, direction,
                                with_refraction=False)
        except ValueError:  # math domain error: no crossing that UTC date
            continue
        mins = (t.replace(tzinfo=None) - local0).total_seconds() / 60.0
        if 0 <= mins < 1440:
            return mins
    FALLBACKS[0] += 1
    return _ref_iterated(y, m, d, lat, lon, offset, depression, rising)


FALLBACKS = [0]


def _grid(count, lat_lo, lat_hi, seed):
    rnd = random.Random(seed)
    n0 = days_from_civil(2000, 1, 1)
    n1 = days_from_civil(2100, 12, 31)
    for _ in range(count):
        y, m, d = civil_from_days(rnd.randint(n0, n1))
        lat = rnd.uniform(lat_lo, lat_hi)
        lon = rnd.uniform(-180.0, 180.0)
        # A real-world style offset: the longitude's zone, give or take an hour (DST, political zones).
        offset = int(round(lon / 15.0)) * 60 + rnd.choice((-60, 0, 0, 60))
        offset = max(-720, min(840, offset))
        yield y, m, d, lat, lon, offset


def _worst_against_reference(fn, count, lat_lo, lat_hi, seed):
    worst = (0.0, None)
    compared = 0
    for y, m, d, lat, lon, off in _grid(count, lat_lo, lat_hi, seed):
        for dep in (0.833, 6.0):
            got = fn(y, m, d, lat, lon, off, dep)
            ref = (ref_event(y, m, d, lat, lon, off, dep, True), ref_event(y, m, d, lat, lon, off, dep, False))
            assert got is not None, (y, m, d, lat, lon, off, dep)
            assert 0 <= got[0] < got[1] < 1440, (y, m, d, lat, lon, off, dep, got)
            for g, r in zip(got, ref):
                assert r is not None, (y, m, d, lat, lon, off, dep, ref)
                err = abs(g - r)
                compared += 1
                if err > worst[0]:
                    worst = (err, (y, m, d, round(lat, 2), round(lon, 2), off, dep))
    return worst, compared


def test_double_matches_noaa_reference_lat55():
    worst, n = _worst_against_reference(astro.sun_times, 2500, -55.0, 55.0, 1)
    print("\ndouble:  worst %.4f min over %d events (|lat|<=55) at %s; %d by iterated reference"
          % (worst[0], n, worst[1], FALLBACKS[0]))
    assert worst[0] < 1.0


def test_float32_matches_noaa_reference_lat55():
    worst, n = _worst_against_reference(ASTRO32["sun_times"], 2500, -55.0, 55.0, 1)
    print("\nfloat32: worst %.4f min over %d events (|lat|<=55) at %s" % (worst[0], n, worst[1]))
    assert worst[0] < 1.0
    # And how far single precision moves the answer from the same code in double, over the same grid.
    diff = 0.0
    for y, m, d, lat, lon, off in _grid(2500, -55.0, 55.0, 1):
        for dep in (0.833, 6.0):
            a = astro.sun_times(y, m, d, lat, lon, off, dep)
            b = ASTRO32["sun_times"](y, m, d, lat, lon, off, dep)
            diff = max(diff, abs(a[0] - b[0]), abs(a[1] - b[1]))
    print("float32 vs double, same code: worst %.4f min (%.2f s)" % (diff, diff * 60))
    assert 0.0 < diff < 0.1


def _next_date(y, m, d, k):
    return civil_from_days(days_from_civil(y, m, d) + k)


def test_high_latitudes_up_to_65_where_reference_agrees():
    # Near the polar circles in summer the night shrinks to minutes: the set of the solar day may fall after local
    # midnight (ours returns it as >= 1440, the reference finds it on the next date), and on the last days before
    # polar day or night one crossing slips to the neighbouring date while the other does not (ours: None).
    worst32 = worst64 = 0.0
    compared = nones = beyond = grazing = 0
    for y, m, d, lat, lon, off in _grid(400, 55.0, 65.0, 2):
        lat = lat if (y + m + d) % 2 else -lat
        for dep in (0.833, 6.0):
            ref = [ref_event(y, m, d, lat, lon, off, dep, True), ref_event(y, m, d, lat, lon, off, dep, False)]
            got64 = astro.sun_times(y, m, d, lat, lon, off, dep)
            got32 = ASTRO32["sun_times"](y, m, d, lat, lon, off, dep)
            case = (y, m, d, lat, lon, off, dep, got64, ref)
            if ref[0] is None and ref[1] is None:  # polar day or night for the reference: ours must agree
                assert got64 is None and got32 is None, case
                nones += 1
                continue
            if got64 is None:
                assert got32 is None and (ref[0] is None or ref[1] is None), case
                grazing += 1
                continue
            if got64[1] >= 1440:  # set after local midnight: compare with the next date's reference set
                ref[1] = ref_event(*_next_date(y, m, d, 1), lat, lon, off, dep, False) + 1440
                beyond += 1
            if got64[0] < 0:
                ref[0] = ref_event(*_next_date(y, m, d, -1), lat, lon, off, dep, True) - 1440
                beyond += 1
            for g64, g32, r in zip(got64, got32, ref):
                worst64 = max(worst64, abs(g64 - r))
                worst32 = max(worst32, abs(g32 - r))
                compared += 1
    print("\n|lat| 55..65: worst double %.4f min, float32 %.4f min over %d events "
          "(%d past midnight); %d polar days agreed, %d grazing days"
          % (worst64, worst32, compared, beyond, nones, grazing))
    assert compared > 1000 and nones > 10 and beyond > 0
    assert grazing <= 0.01 * compared
    assert worst64 < 1.0 and worst32 < 1.0


def test_float32_elevation_matches_double():
    rnd = random.Random(3)
    worst = 0.0
    for _ in range(2000):
        t2k = rnd.randint(0, days_from_civil(2100, 12, 31) * 86400)
        lat = rnd.uniform(-65, 65)
        lon = rnd.uniform(-180, 180)
        worst = max(worst, abs(astro.sun_elevation(t2k, lat, lon) - ASTRO32["sun_elevation"](t2k, lat, lon)))
    print("\nsun_elevation float32 vs double: worst %.5f deg" % worst)
    assert worst < 0.02  # 0.02 deg is about 5 s of the sun's motion


def test_elevation_matches_reference_geometry():
    # astral's elevation without refraction is the same NOAA geometry; a pure check of the hour-angle path.
    from astral.sun import elevation
    rnd = random.Random(4)
    worst = 0.0
    for _ in range(500):
        t2k = rnd.randint(0, days_from_civil(2100, 12, 31) * 86400)
        lat = rnd.uniform(-65, 65)
        lon = rnd.uniform(-180, 180)
        when = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=t2k)
        ref = elevation(Observer(latitude=lat, longitude=lon), when, with_refraction=False)
        worst = max(worst, abs(astro.sun_elevation(t2k, lat, lon) - ref))
    print("\nsun_elevation vs astral: worst %.4f deg" % worst)
    assert worst < 0.05


def test_extreme_offset_events_leave_the_day_consistently():
    # A clock 10 h 20 min behind the sun: the pair is the solar day around 22:20 local, so the set is returned
    # past 1440 and must equal the reference set of the next local date; the rise is the reference rise of this
    # date. And the mirror, a clock 10 h 20 min ahead, with the rise before local midnight.
    y, m, d, lat = 2030, 3, 20, 10.0
    rise, sett = astro.sun_times(y, m, d, lat, 100.35, -420)
    assert 0 <= rise < 1440 <= sett
    assert abs(rise - ref_event(y, m, d, lat, 100.35, -420, 0.833, True)) < 1.0
    assert abs((sett - 1440) - ref_event(y, m, d + 1, lat, 100.35, -420, 0.833, False)) < 1.0
    rise, sett = astro.sun_times(y, m, d, lat, -100.35, 420)
    assert rise < 0 <= sett < 1440
    assert abs((rise + 1440) - ref_event(y, m, d - 1, lat, -100.35, 420, 0.833, True)) < 1.0
    assert abs(sett - ref_event(y, m, d, lat, -100.35, 420, 0.833, False)) < 1.0
