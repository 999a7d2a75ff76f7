"""Sunrise, sunset, twilight and solar elevation by NOAA's algorithm, kept exact enough in 32-bit floats."""

# NOAA's solar calculator (the Meeus-derived "General Solar Position" formulas) in small quantities.
#
# Why not the textbook form: it starts from a Julian day (~2.46e6), which an ESP32 float (IEEE single, 24-bit
# mantissa) resolves only to 0.25 day. Here time is the int day number n (days since 2000-01-01, exact as an int)
# plus a float fraction of a day, and every angle that grows with time is reduced mod 360 from its integer part
# before it meets a float: the mean longitude's rate 0.98564736 deg/day is written 1 - 0.01435264 so that n * 1
# reduces exactly in ints and only the small 0.01435264 * n (< 530 deg) is a float product. Trig arguments are
# always < 360 deg. host_tests/test_astro_reference.py runs this very source with every float result rounded to
# single precision and checks it against the NOAA reference (astral) to well under a minute.
#
# Convention: depression is the sun's centre below the geometric horizon, refraction included, as in NOAA's
# calculator: 0.833 for rise/set (34' refraction + 16' semi-diameter), 6 civil, 12 nautical, 18 astronomical.

import math

from firmware.timebase import days_from_civil

_D2R = 0.017453292519943295  # pi / 180
_R2D = 57.29577951308232  # 180 / pi

# Per-day rates of the sun's mean longitude and mean anomaly (NOAA's per-century 36000.76983 and 35999.05029
# divided by 36525), as 1 - k so the whole-degree part is done in exact integer arithmetic.
_L_K = 0.014352639835728953
_M_K = 0.014399718275154004
_L_RATE = 1.0 - _L_K
_M_RATE = 1.0 - _M_K


def _sin(deg):
    return math.sin(deg * _D2R)


def _cos(deg):
    return math.cos(deg * _D2R)


def _sun(n, f):
    """(declination deg, equation of time min) at f days (float, small) after 00:00 UTC of day n (int)."""
    df = f - 0.5  # J2000.0 is 2000-01-01 12:00: days since it are n + df
    jc = (n + df) / 36525.0  # Julian centuries: only multiplies slow terms, so its 1e-7 resolution is plenty
    jc2 = jc * jc
    l0 = (280.46646 + (n % 360) - _L_K * n + _L_RATE * df + 0.0003032 * jc2) % 360.0  # mean longitude
    m = (357.52911 + (n % 360) - _M_K * n + _M_RATE * df - 0.0001537 * jc2) % 360.0  # mean anomaly
    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)  # eccentricity of Earth's orbit
    sin_m = _sin(m)
    sin_2m = _sin((2.0 * m) % 360.0)
    c = (sin_m * (1.914602 - jc * (0.004817 + 0.000014 * jc)) + sin_2m * (0.019993 - 0.000101 * jc)
         + _sin((3.0 * m) % 360.0) * 0.000289)  # equation of centre
    omega = (125.04 - 1934.136 * jc) % 360.0  # Moon's node: nutation and aberration terms
    app_long = l0 + c - 0.00569 - 0.00478 * _sin(omega)
    eps0 = 23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
    eps = eps0 + 0.00256 * _cos(omega)  # obliquity of the ecliptic
    decl = math.asin(_sin(eps) * _sin(app_long)) * _R2D
    y = math.tan(eps * 0.5 * _D2R)
    y = y * y
    l2 = (2.0 * l0) % 360.0
    eot = 4.0 * _R2D * (y * _sin(l2) - 2.0 * e * sin_m + 4.0 * e * y * sin_m * _cos(l2)
                        - 0.5 * y * y * _sin((4.0 * l0) % 360.0) - 1.25 * e * e * sin_2m)
    return decl, eot


def _cos_hour_angle(lat, decl, depression):
    # Zenith distance 90 + depression: cos(90 + dep) = -sin(dep).
    return (-_sin(depression) - _sin(lat) * _sin(decl)) / (_cos(lat) * _cos(decl))


def _event(n, shift, lat, offset, depression, sign):
    """Local minutes of the crossing on the side `sign` (-1 rising, +1 setting) of the solar noon at about
    720 + shift, re-evaluating the sun at the estimated time of the event; None if the sun does not cross."""
    t_local = 720.0 + shift
    for _ in range(3):  # the sun moves < 0.02 deg/h in declination: two refinements settle well under a second
        decl, eot = _sun(n, (t_local - offset) / 1440.0)
        ch = _cos_hour_angle(lat, decl, depression)
        if ch < -1.0 or ch > 1.0:
            return None
        t_local = 720.0 + shift - eot + sign * 4.0 * _R2D * math.acos(ch)
    return t_local


def sun_times(year, month, day, lat, lon, utc_offset_min, depression=0.833):
    """(rise, set) in minutes after local midnight of the local date year-month-day, or None when the sun does not
    cross `depression` degrees below the horizon that day (polar day or night: sun_elevation at noon tells which).

    lat/lon in degrees (north/east positive), utc_offset_min the local clock's offset from UTC. depression 0.833 is
    sunrise/sunset, 6 civil dawn/dusk. Valid 2000..2100, |lat| <= 65; within a minute of NOAA for |lat| <= 55.

    The pair belongs to the solar day whose noon is nearest 12:00 on the local clock, so rise < set always. Real
    time zones keep the clock within ~3 h of solar time and both events inside 0..1440, except for a very long
    day or night near the polar circles. Otherwise an event that falls on the neighbouring local date is returned
    as < 0 or >= 1440 (1445.0 is 00:05 of the next date, -30.0 is 23:30 of the previous one) rather than swapped
    for that date's event: adding the value to this date's local midnight always gives the right instant.
    """
    n = days_from_civil(year, month, day)
    # Clock minus solar time, reduced to [-720, 720): picks the solar noon nearest local 12:00 of this date.
    shift = (utc_offset_min - 4.0 * lon + 720.0) % 1440.0 - 720.0
    # Sun at that solar noon: the cheap polar test before any iteration.
    decl, _ = _sun(n, (720.0 + shift - utc_offset_min) / 1440.0)
    ch = _cos_hour_angle(lat, decl, depression)
    if ch < -1.0 or ch > 1.0:
        return None
    rise = _event(n, shift, lat, utc_offset_min, depression, -1.0)
    sett = _event(n, shift, lat, utc_offset_min, depression, 1.0)
    if rise is None or sett is None:
        # Only on the edge of polar day/night, where the sun grazes the depression for minutes: call it no crossing.
        return None
    return (rise, sett)


def sun_elevation(t2k, lat, lon):
    """Geometric elevation of the sun's centre in degrees (no refraction) at t2k (int s since 2000-01-01 UTC).

    Below -0.833 the sun has set; below -6 it is past civil dusk; the same convention as sun_times.
    """
    n = t2k // 86400
    s = t2k - n * 86400  # exact int seconds of the UTC day: the float never sees the big number
    decl, eot = _sun(n, s / 86400.0)
    tst = (s / 60.0 + eot + 4.0 * lon) % 1440.0  # true solar time, minutes
    ha = tst * 0.25 - 180.0  # hour angle, degrees
    x = _sin(lat) * _sin(decl) + _cos(lat) * _cos(decl) * _cos(ha)
    if x > 1.0:
        x = 1.0
    elif x < -1.0:
        x = -1.0
    return math.asin(x) * _R2D
