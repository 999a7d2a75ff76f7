# runtimes: cpython micropython
"""firmware/astro.py against known facts of the sun; the NOAA/astral and float32 comparison is test_astro_reference."""

from mini import approx

from firmware.astro import sun_elevation, sun_times
from firmware.timebase import days_from_civil, t2k_from_local

PADANG = {"lat": -0.95, "lon": 100.35, "utc_offset_min": 420, "dst": None}


def _t2k(y, m, d, local_min, offset):
    return days_from_civil(y, m, d) * 86400 + int((local_min - offset) * 60)


def test_padang_late_november():
    # Published tables for Padang (UTC+7) at the end of November: sunrise about 06:01, sunset about 18:11.
    rise, sett = sun_times(2024, 11, 28, -0.95, 100.35, 420)
    assert approx(rise, 6 * 60 + 1.5, 1.0), rise
    assert approx(sett, 18 * 60 + 11.5, 1.0), sett


def test_equator_day_is_a_little_over_twelve_hours():
    # 0.833 deg of refraction and half-disc lengthen the equatorial day to about 12 h 07 min, all year round.
    for m in (1, 3, 6, 9, 12):
        rise, sett = sun_times(2030, m, 15, 0.0, 0.0, 0)
        assert 12 * 60 + 5 < sett - rise < 12 * 60 + 9, (m, sett - rise)


def test_solar_noon_follows_the_equation_of_time():
    # Extremes of the equation of time: sundial about 16.4 min fast around 3 November, 14.2 min slow around
    # 11 February. Mid-point of rise and set is solar noon = 12:00 - EoT at longitude 0 on UTC.
    rise, sett = sun_times(2024, 11, 3, 0.0, 0.0, 0)
    assert approx((rise + sett) / 2, 720 - 16.4, 0.5)
    rise, sett = sun_times(2024, 2, 11, 0.0, 0.0, 0)
    assert approx((rise + sett) / 2, 720 + 14.2, 0.5)
    # Longitude: 15 deg east is one hour earlier on the same clock.
    r0, _ = sun_times(2024, 2, 11, 0.0, 0.0, 0)
    r15, _ = sun_times(2024, 2, 11, 0.0, 15.0, 0)
    assert approx(r0 - r15, 60.0, 0.1)


def test_seasons_change_day_length_away_from_the_equator():
    # 52.5 N: about 16 h 45 min at the June solstice, 7 h 40 min at the December one.
    r, s = sun_times(2024, 6, 21, 52.5, 13.4, 120)
    assert 16 * 60 + 35 < s - r < 16 * 60 + 55, s - r
    r, s = sun_times(2024, 12, 21, 52.5, 13.4, 60)
    assert 7 * 60 + 30 < s - r < 7 * 60 + 50, s - r
    # The southern hemisphere mirrors it.
    r, s = sun_times(2024, 12, 21, -52.5, 13.4, 60)
    assert 16 * 60 + 35 < s - r < 16 * 60 + 55, s - r


def test_civil_twilight_brackets_rise_and_set():
    for lat in (-50.0, -0.95, 30.0, 55.0):
        rise, sett = sun_times(2031, 4, 9, lat, 100.35, 420)
        dawn, dusk = sun_times(2031, 4, 9, lat, 100.35, 420, 6)
        assert dawn < rise and dusk > sett
        # 5.2 deg more depression: ~21 min at the equator, longer as the sun's path slants.
        assert 19 < rise - dawn < 45 and 19 < dusk - sett < 45, (lat, rise - dawn)


def test_polar_cases_return_none():
    # White nights: at 62 N around the June solstice the sun never sinks 6 deg below the horizon.
    assert sun_times(2024, 6, 20, 62.0, 10.0, 60, 6) is None
    assert sun_times(2024, 12, 21, -62.0, 10.0, 60, 6) is None
    # But it does still set there.
    assert sun_times(2024, 6, 20, 62.0, 10.0, 60) is not None
    # Past the polar circle (outside the documented range) it answers None, not an exception.
    assert sun_times(2024, 12, 21, 70.0, 20.0, 60) is None  # polar night
    assert sun_times(2024, 6, 21, 70.0, 20.0, 60) is None  # midnight sun


def test_elevation_at_solar_noon_and_midnight():
    # On the June solstice the declination is +23.44: noon elevation = 90 - |lat - 23.44|.
    for lat, lon, off in ((-0.95, 100.35, 420), (52.5, 13.4, 120), (-33.9, 151.2, 600), (23.44, -100.0, -360)):
        rise, sett = sun_times(2024, 6, 20, lat, lon, off)
        noon = (rise + sett) / 2
        el = sun_elevation(_t2k(2024, 6, 20, noon, off), lat, lon)
        assert approx(el, 90 - abs(lat - 23.44), 0.1), (lat, el)
        midnight = sun_elevation(_t2k(2024, 6, 20, noon + 720, off), lat, lon)
        assert midnight < -10, (lat, midnight)
        # An hour either side of noon is lower than noon.
        assert sun_elevation(_t2k(2024, 6, 20, noon - 60, off), lat, lon) < el
        assert sun_elevation(_t2k(2024, 6, 20, noon + 60, off), lat, lon) < el


def test_elevation_at_the_computed_events_is_the_depression():
    # sun_times and sun_elevation share one geometry: at the event the sun is `depression` below the horizon.
    n = days_from_civil(2024, 11, 28)
    for dep in (0.833, 6.0):
        rise, sett = sun_times(2024, 11, 28, PADANG["lat"], PADANG["lon"], 420, dep)
        for ev in (rise, sett):
            el = sun_elevation(t2k_from_local(n, ev, PADANG), PADANG["lat"], PADANG["lon"])
            assert approx(el, -dep, 0.01), (dep, ev, el)
    # Rising: below before, above after; setting the reverse.
    t = t2k_from_local(n, rise, PADANG)
    assert sun_elevation(t - 300, -0.95, 100.35) < -6.0 < sun_elevation(t + 300, -0.95, 100.35)


def test_whole_range_of_years():
    for y in (2000, 2050, 2100):
        for m, d in ((1, 1), (12, 31)):
            rise, sett = sun_times(y, m, d, -0.95, 100.35, 420)
            assert 5 * 60 + 30 < rise < 6 * 60 + 30 and 17 * 60 + 45 < sett < 18 * 60 + 45, (y, rise, sett)
    # Year-to-year the same date repeats within a minute or two (the leap-year cycle and slow orbital terms).
    a = sun_times(2001, 3, 1, 45.0, 7.0, 60)
    b = sun_times(2099, 3, 1, 45.0, 7.0, 60)
    assert approx(a[0], b[0], 3.0) and approx(a[1], b[1], 3.0)


def test_the_solar_day_nearest_local_noon_is_used():
    # Longitude -170 on a +14 h clock (Kiribati-like): solar time is UTC - 11 h 20 min, so the clock runs
    # 25 h 20 min ahead of the sun: a day too much, the solar noon nearest local 12:00 is at 13:20 (+7.5 min of
    # the equation of time in March), and both events stay inside the local date.
    rise, sett = sun_times(2030, 3, 20, 10.0, -170.0, 840)
    assert 0 < rise < sett < 1440 and approx((rise + sett) / 2, 720 + 80 + 7.5, 1.0)


def test_extreme_offset_events_may_leave_the_local_day():
    # A clock 10 h 20 min behind the sun (Padang's longitude on UTC-7): solar noon near 22:20, the set after
    # midnight is returned past 1440 rather than swapped for the previous evening's set.
    n = days_from_civil(2030, 3, 20)
    site = {"utc_offset_min": -420, "dst": None}
    rise, sett = sun_times(2030, 3, 20, -0.95, 100.35, -420)
    assert 0 < rise < 1440 < sett
    for ev in (rise, sett):
        assert approx(sun_elevation(t2k_from_local(n, ev, site), -0.95, 100.35), -0.833, 0.01), ev
    # Every date keeps this convention: the next date's set is also past its midnight, a minute or less apart.
    _, sett_next = sun_times(2030, 3, 21, -0.95, 100.35, -420)
    assert approx(sett_next - sett, 0.0, 1.0)
    # The mirror: a clock 10 h 20 min ahead puts the sunrise before local midnight.
    rise, sett = sun_times(2030, 3, 20, -0.95, -100.35, 420)
    assert rise < 0 < sett < 1440
