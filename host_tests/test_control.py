# runtimes: cpython micropython
"""Controller: priorities, the three modes, the hybrid window, no time, dead sensor, overrides."""

from mini import raises

from firmware import control, photocell, program, timebase
from firmware.schema import Invalid

DAY = timebase.days_from_civil(2026, 1, 14)  # a Wednesday


def make_cfg(mode="astro", calendar=None, programs=None, **ctl):
    ctl["mode"] = mode
    return {
        "site": timebase.SITE_SCHEMA.check({}, "site"),
        "programs": program.PROGRAMS_SCHEMA.check(programs or program.PROGRAMS_SCHEMA.make_default(), "programs"),
        "calendar": program.CALENDAR_SCHEMA.check(calendar or [], "calendar"),
        "photocell": photocell.SCHEMA.check({}, "photocell"),
        "control": control.SCHEMA.check(ctl, "control"),
    }


def at(hh, mm=0, day=DAY):
    return timebase.t2k_from_local(day, hh * 60 + mm, timebase.SITE_SCHEMA.check({}))


DARK = 2.0
LIGHT = 5000.0


def test_schema():
    c = control.SCHEMA.check({}, "control")
    assert c == {"mode": "astro", "default_level": 100, "hybrid_window_min": 60}
    assert str(raises(Invalid, control.SCHEMA.check, {"mode": "auto"}, "control")).startswith("control.mode:")
    assert str(raises(Invalid, control.SCHEMA.check, {"default_level": 101}, "control")).startswith(
        "control.default_level:")
    assert str(raises(Invalid, control.SCHEMA.check, {"hybrid_window_min": -1}, "control")).startswith(
        "control.hybrid_window_min:")


def test_astro_follows_the_schedule_and_ignores_the_photocell():
    c = control.Controller(make_cfg("astro"))
    assert c.decide(at(13), True, DARK, None) == (0, "program:default")
    assert c.decide(at(21), True, LIGHT, None) == (100, "program:default")
    assert c.decide(at(23, 30), True, LIGHT, None) == (60, "program:default")
    assert c.decide(at(5, day=DAY + 1), True, DARK, None) == (100, "program:default")


def test_special_day_reason():
    cal = [{"program": "eid", "dates": ["01-14"]}, {"program": "default", "weekdays": [2]}]
    progs = {"default": [{"at": "sunset", "level": 100}, {"at": "sunrise", "level": 0}],
             "eid": [{"at": "sunset", "level": 100}, {"at": "02:00", "level": 80}, {"at": "sunrise", "level": 0}]}
    c = control.Controller(make_cfg("astro", cal, progs))
    assert c.decide(at(21), True, None, None) == (100, "special:eid")
    assert c.decide(at(3, day=DAY + 1), True, None, None) == (80, "special:eid")
    assert c.decide(at(21, day=DAY + 7), True, None, None) == (100, "program:default")


def test_override_and_expiry():
    c = control.Controller(make_cfg("astro", [{"program": "default", "dates": ["01-14"]}]))
    now = at(21)
    ov = {"level": 30, "until": now + 3600}
    assert c.decide(now, True, None, ov) == (30, "override")  # beats a special day
    assert c.decide(now + 3599, True, None, ov) == (30, "override")
    assert c.decide(now + 3600, True, None, ov) == (100, "special:default")
    assert c.decide(at(13), True, None, {"level": 0, "until": None}) == (0, "override")
    # Without valid time an untimed override still holds; a timed one cannot be judged and is ignored.
    assert c.decide(now, False, None, {"level": 40, "until": None}) == (40, "override")
    assert c.decide(now, False, None, ov) == (100, "failsafe")


def test_no_time_photocell_decides():
    c = control.Controller(make_cfg("astro", default_level=80))
    t = 3600  # an unset RTC (year 2000), still ticking
    assert c.decide(t, False, DARK, None) == (80, "photocell:no-time")
    # Day comes: after the debounce the photocell turns the lamp off.
    for k in range(1, 40):
        r = c.decide(t + 10 * k, False, LIGHT, None)
    assert r == (0, "photocell:no-time")


def test_no_time_and_dead_sensor_is_failsafe_on():
    c = control.Controller(make_cfg("astro"))
    assert c.decide(100, False, None, None) == (100, "failsafe")  # no reading yet: no opinion
    c2 = control.Controller(make_cfg("photocell"))
    assert c2.decide(0, False, LIGHT, None) == (0, "photocell:no-time")
    for k in range(1, 6):
        r = c2.decide(k, False, None, None)
    assert r == (100, "failsafe")  # 5 missing readings: unhealthy
    for k in range(6, 12):
        r = c2.decide(k, False, -1.0, None)  # implausible
    assert r == (100, "failsafe")


def test_photocell_mode():
    c = control.Controller(make_cfg("photocell"))
    assert c.decide(at(1, day=DAY + 1), True, DARK, None) == (60, "photocell")  # dark: the schedule's level
    c = control.Controller(make_cfg("photocell"))
    assert c.decide(at(13), True, DARK, None) == (100, "photocell")  # dark by day: schedule 0 → default
    c = control.Controller(make_cfg("photocell"))
    assert c.decide(at(21), True, LIGHT, None) == (0, "photocell")  # light at night: off
    # Dead sensor with valid time: the schedule takes over.
    for k in range(6):
        r = c.decide(at(21) + k, True, None, None)
    assert r == (100, "program:default (light sensor fault)")  # the reason says why the photocell is not used


def test_hybrid_window():
    cfg = make_cfg("hybrid")
    c = control.Controller(cfg)
    sset, srise, _, _ = c.schedule.sun_events(DAY)
    # 30 min before sunset, dark (a storm): the photocell switches on although the schedule says 0.
    assert c.decide(sset - 1800, True, DARK, None) == (100, "photocell")
    # 90 min before sunset: outside the window, the schedule rules.
    c = control.Controller(cfg)
    assert c.decide(sset - 5400, True, DARK, None) == (0, "program:default")
    # 30 min after sunset but still bright: the photocell keeps it off.
    c = control.Controller(cfg)
    assert c.decide(sset + 1800, True, LIGHT, None) == (0, "photocell")
    # Window edges are inclusive, 60 min.
    c = control.Controller(cfg)
    assert c.decide(sset + 3600, True, LIGHT, None) == (0, "photocell")
    c = control.Controller(cfg)
    assert c.decide(sset + 3601, True, LIGHT, None) == (100, "program:default")
    # Deep night: schedule, whatever the sensor says.
    c = control.Controller(cfg)
    assert c.decide(at(23, 30), True, LIGHT, None) == (60, "program:default")
    # A dark morning, 30 min after sunrise: stays on.
    c = control.Controller(cfg)
    assert c.decide(srise + 1800, True, DARK, None) == (100, "photocell")
    c = control.Controller(cfg)
    assert c.decide(srise + 4000, True, DARK, None) == (0, "program:default")
    # Dead sensor inside the window: the schedule.
    c = control.Controller(cfg)
    for k in range(6):
        r = c.decide(sset - 1800 + k, True, None, None)
    assert r == (0, "program:default (light sensor fault)")


def test_a_night_in_hybrid_mode_switches_once_each_way():
    # Minute by minute through a night with a synthetic lux curve that crosses on_lux 10 min after sunset and
    # off_lux 10 min before sunrise: on once, off once, 60 % in the middle of the night.
    c = control.Controller(make_cfg("hybrid"))
    sset, srise, _, _ = c.schedule.sun_events(DAY)
    t = at(14)
    end = at(10, day=DAY + 1)
    levels = []
    while t < end:
        if sset + 600 <= t <= srise - 600:
            lux = 5.0
        else:
            lux = 2000.0
        lv, why = c.decide(t, True, lux, None)
        if not levels or levels[-1][0] != lv:
            levels.append((lv, why, t))
        t += 60
    assert [x[0] for x in levels] == [0, 100, 60, 100, 0]
    on, off = levels[1][2], levels[4][2]
    # Sampled once a minute, a step from 2000 to 5 lux takes 3 samples to turn the median and ~13 more for the
    # EMA (alpha 0.3) to pass below on_lux, then the 120 s debounce; the rise needs the median and one EMA step.
    assert sset + 600 + 15 * 60 <= on <= sset + 600 + 20 * 60, (on - sset - 600) // 60
    assert srise - 600 + 120 <= off <= srise - 600 + 6 * 60, (off - srise + 600) // 60
    assert levels[1][1] == "photocell" and levels[2][1] == "program:default"


# --- a light sensor flagged by the fault monitor (light_fault) stops deciding -----------------------------------

FB = "program:default (light sensor fault)"


def test_flagged_sensor_stuck_at_daylight_no_longer_keeps_the_street_dark():
    # Photocell mode, the sensor frozen at a noon reading: plausible, so the photocell's own filter keeps trusting
    # it and keeps the lamp off all night. Flagged (bright_night), the program rules and the reason says so.
    c = control.Controller(make_cfg("photocell"))
    t = at(21)
    assert c.decide(t, True, LIGHT, None) == (0, "photocell")
    assert c.decide(t + 1, True, LIGHT, None, False) == (0, "photocell")
    assert c.decide(t + 2, True, LIGHT, None, True) == (100, FB)
    assert c.decide(at(23, 30), True, LIGHT, None, True) == (60, FB)
    assert c.decide(at(13, day=DAY + 1), True, LIGHT, None, True) == (0, FB)  # and off by day, by the program
    # The fault clears (the sensor works again): the photocell decides at once, from its own filtered opinion.
    assert c.decide(at(13, 1, day=DAY + 1), True, LIGHT, None, False) == (0, "photocell")


def test_flagged_sensor_stuck_at_night_no_longer_burns_at_noon():
    c = control.Controller(make_cfg("photocell"))
    assert c.decide(at(12), True, DARK, None) == (100, "photocell")  # what the issue saw: 100 % in full sun
    assert c.decide(at(12, 1), True, DARK, None, True) == (0, FB)
    assert c.decide(at(21), True, DARK, None, True) == (100, FB)


def test_flagged_sensor_without_time_is_the_failsafe():
    # No clock: the photocell would decide, but it is flagged: default_level (on), never its "light" opinion.
    c = control.Controller(make_cfg("photocell", default_level=90))
    assert c.decide(3600, False, LIGHT, None) == (0, "photocell:no-time")
    assert c.decide(3601, False, LIGHT, None, True) == (90, "failsafe")
    c = control.Controller(make_cfg("astro"))
    assert c.decide(3600, False, DARK, None, True) == (100, "failsafe")


def test_flagged_sensor_in_hybrid_mode_only_changes_the_window():
    cfg = make_cfg("hybrid")
    c = control.Controller(cfg)
    sset, srise, _, _ = c.schedule.sun_events(DAY)
    # Inside the window a flagged sensor does not decide: the schedule, with the reason.
    assert c.decide(sset - 1800, True, DARK, None, True) == (0, FB)
    assert c.decide(sset + 1800, True, LIGHT, None, True) == (100, FB)
    # Outside it the schedule rules anyway: no suffix, nothing was overruled.
    assert c.decide(at(23, 30), True, LIGHT, None, True) == (60, "program:default")


def test_flagged_sensor_changes_nothing_in_astro_mode_or_under_an_override():
    c = control.Controller(make_cfg("astro"))
    assert c.decide(at(21), True, LIGHT, None, True) == (100, "program:default")
    assert c.decide(at(13), True, DARK, None, True) == (0, "program:default")
    c = control.Controller(make_cfg("photocell"))
    assert c.decide(at(13), True, DARK, {"level": 40, "until": None}, True) == (40, "override")


def test_flagged_sensor_on_a_special_day_keeps_the_special_reason():
    cal = [{"program": "eid", "dates": ["01-14"]}]
    progs = {"default": [{"at": "sunset", "level": 100}, {"at": "sunrise", "level": 0}],
             "eid": [{"at": "sunset", "level": 80}, {"at": "sunrise", "level": 0}]}
    c = control.Controller(make_cfg("photocell", cal, progs))
    assert c.decide(at(21), True, LIGHT, None, True) == (80, "special:eid (light sensor fault)")


def test_flagged_fallback_allocates_no_new_tuple_per_decision():
    # decide() runs every control step on a 100 KB heap: the fallback is built once per schedule segment.
    c = control.Controller(make_cfg("photocell"))
    first = c.decide(at(21), True, LIGHT, None, True)
    assert c.decide(at(21, 1), True, LIGHT, None, True) is first
    later = c.decide(at(23, 30), True, LIGHT, None, True)
    assert later == (60, FB) and later is not first
