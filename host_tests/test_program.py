# runtimes: cpython micropython
"""Programs and calendar: schema errors, the Padang default night, calendar precedence, polar nights, caching."""

from mini import raises

from firmware import program, timebase
from firmware.schema import Invalid

SITE = timebase.SITE_SCHEMA.check({}, "site")  # Padang: -0.95, 100.35, UTC+7


def progs(value=None):
    if value is None:
        value = program.PROGRAMS_SCHEMA.make_default()
    return program.PROGRAMS_SCHEMA.check(value, "programs")


def cal(value):
    return program.CALENDAR_SCHEMA.check(value, "calendar")


def local(days, hh, mm=0, site=SITE):
    return timebase.t2k_from_local(days, hh * 60 + mm, site)


def err(field, value, path):
    return str(raises(Invalid, field.check, value, path))


def step(at, level, offset=0):
    return {"at": at, "level": level, "offset_min": offset}


# ---------------------------------------------------------------- schema


def test_default_is_the_padang_program():
    p = progs()
    assert list(p.keys()) == ["default"]
    assert [(s["at"], s["level"]) for s in p["default"]] == [("sunset", 100), ("23:00", 60), ("04:30", 100),
                                                             ("sunrise", 0)]
    assert cal([]) == []


def test_step_errors_name_the_field():
    P = program.PROGRAMS_SCHEMA
    assert err(P, {"default": [step("24:00", 10)]}, "programs").startswith("programs.default[0].at:")
    assert err(P, {"default": [step("7:30", 10)]}, "programs").startswith("programs.default[0].at:")
    assert err(P, {"default": [step("dusk", 10)]}, "programs").startswith("programs.default[0].at:")
    assert err(P, {"default": [step("20:00", 10), step("21:00", 101)]}, "programs").startswith(
        "programs.default[1].level:")
    assert err(P, {"default": [step("sunset", 10, 181)]}, "programs").startswith("programs.default[0].offset_min:")
    assert err(P, {"default": [step("20:00", 10)] * 11}, "programs").startswith("programs.default:")
    assert err(P, {"default": []}, "programs").startswith("programs.default:")
    assert err(P, {"night": [step("20:00", 10)]}, "programs") == "programs: a program named 'default' is required"
    assert err(P, {"default": [step("20:00", 1)], "Bad/Name": [step("20:00", 1)]}, "programs").startswith(
        "programs.<key>:")
    ok = P.check({"default": [step("00:00", 5), step("23:59", 6), step("civil_dusk", 1, -180)]}, "programs")
    assert ok["default"][2]["offset_min"] == -180
    assert P.check({"default": [{"at": "sunset", "level": 50}]})["default"][0]["offset_min"] == 0


def test_calendar_errors_name_the_field():
    C = program.CALENDAR_SCHEMA
    assert err(C, [{"program": "x", "dates": ["02-30"]}], "calendar").startswith("calendar[0].dates[0]:")
    assert err(C, [{"program": "x", "dates": ["2025-02-29"]}], "calendar").startswith("calendar[0].dates[0]:")
    assert err(C, [{"program": "x", "dates": ["12-25", "13-01"]}], "calendar").startswith("calendar[0].dates[1]:")
    assert err(C, [{"program": "x", "from": "12-01"}], "calendar").startswith("calendar[0].from:")
    assert err(C, [{"program": "x"}, {"program": "y", "from": "2026-01-02", "to": "2026-01-01"}],
               "calendar") == "calendar[1].from: must be <= to"
    assert err(C, [{"program": "x", "weekdays": [7]}], "calendar").startswith("calendar[0].weekdays[0]:")
    assert err(C, [{"program": "x", "priority": 101}], "calendar").startswith("calendar[0].priority:")
    assert err(C, [{"program": "x", "day": 1}], "calendar").startswith("calendar[0].day:")
    assert err(C, [{"program": "x"}] * 33, "calendar").startswith("calendar:")
    ok = C.check([{"program": "x", "dates": ["02-29", "2024-02-29"], "from": "2026-01-01", "to": "2026-01-01"}])
    assert ok[0]["priority"] == 0 and ok[0]["weekdays"] is None


def test_check_references():
    cfg = {"programs": progs({"default": [step("20:00", 1)], "eid": [step("20:00", 2)]}),
           "calendar": cal([{"program": "eid", "dates": ["04-10"]}, {"program": "default", "weekdays": [0]},
                            {"program": "x", "weekdays": [1]}])}
    e = raises(Invalid, program.check_references, cfg)
    assert str(e) == "calendar[2].program: unknown program 'x'"
    cfg["calendar"].pop()
    program.check_references(cfg)  # no error


# ---------------------------------------------------------------- the night


def test_padang_default_night():
    d = timebase.days_from_civil(2025, 11, 25)
    s = program.Schedule(progs(), cal([]), SITE)
    sset, srise, cdusk, cdawn = s.sun_events(d)
    # Padang, late November: sunset ≈ 18:11 on D, sunrise ≈ 06:01 on D+1 (field notes); twilight outside them.
    assert local(d, 18, 0) < sset < local(d, 18, 25)
    assert local(d + 1, 5, 50) < srise < local(d + 1, 6, 15)
    assert sset < cdusk < sset + 40 * 60 and srise - 40 * 60 < cdawn < srise
    assert s.events(d) == [(sset, 100), (local(d, 23), 60), (local(d + 1, 4, 30), 100), (srise, 0)]
    assert s.level_at(local(d, 12)) == (0, "program:default")
    assert s.level_at(sset - 1) == (0, "program:default")
    assert s.level_at(sset) == (100, "program:default")
    assert s.level_at(local(d, 22, 59)) == (100, "program:default")
    assert s.level_at(local(d, 23)) == (60, "program:default")
    assert s.level_at(local(d + 1, 4, 29)) == (60, "program:default")
    assert s.level_at(local(d + 1, 4, 30)) == (100, "program:default")
    assert s.level_at(srise - 1) == (100, "program:default")
    assert s.level_at(srise) == (0, "program:default")
    assert s.level_at(local(d + 1, 11, 59)) == (0, "program:default")


def test_cached_answers_equal_fresh_ones_over_a_week():
    # The segment/night cache must never change an answer: compare a long-lived Schedule stepped minute by minute
    # with answers computed from events() of a fresh Schedule.
    p = progs({"default": [step("sunset", 100), step("23:00", 60), step("04:30", 100), step("sunrise", 0, 10)],
               "fri": [step("civil_dusk", 80, -5), step("01:00", 30)]})
    c = cal([{"program": "fri", "weekdays": [4]}])
    s = program.Schedule(p, c, SITE)
    d0 = timebase.days_from_civil(2026, 3, 1)
    t = local(d0, 12)
    end = local(d0 + 7, 12)
    changes = 0
    prev = None
    while t < end:
        got = s.level_at(t)
        if got != prev:
            changes += 1
            prev = got
            fresh = program.Schedule(p, c, SITE)
            night = fresh.night_of(t)
            level = None
            ev = fresh.events(night)
            for et, lv in ev:
                if et <= t:
                    level = lv
            if level is None:
                level = ev[-1][1]
            assert got[0] == level, (t, got, level)
            assert got[1] == ("program:fri" if timebase.weekday(night) == 4 else "program:default")
        t += 60
    # 7 nights: default has 4 changes a night, fri has 2 (+ the noon change of program source)
    assert changes >= 7 * 2 + 6, changes


def test_cyclic_before_the_first_step_and_single_step():
    d = timebase.days_from_civil(2026, 5, 4)
    s = program.Schedule(progs({"default": [step("20:00", 50), step("06:00", 0)], "on": [step("21:00", 70)]}),
                         cal([{"program": "on", "dates": ["2026-05-05"]}]), SITE)
    assert s.level_at(local(d, 13))[0] == 0  # before 20:00: the last step (06:00 → 0)
    assert s.level_at(local(d, 20))[0] == 50
    assert s.level_at(local(d + 1, 5, 59))[0] == 50
    assert s.level_at(local(d + 1, 6))[0] == 0
    assert s.level_at(local(d + 1, 13)) == (70, "special:on")  # one step: all night long
    assert s.level_at(local(d + 2, 11, 59)) == (70, "special:on")
    assert s.level_at(local(d + 2, 12)) == (0, "program:default")


def test_offsets_and_clamping_to_the_night():
    d = timebase.days_from_civil(2026, 7, 1)
    # No morning astro step here, so fixed steps are not clamped to the astro night, only to the noon-to-noon one.
    s = program.Schedule(progs({"default": [step("sunset", 100, -15), step("11:30", 40, 60),
                                            step("12:10", 30, -60)]}), cal([]), SITE)
    sset, srise, _, _ = s.sun_events(d)
    ev = s.events(d)
    start, end = local(d, 12), local(d + 1, 12)
    # 12:10 - 60 min would leave the night: clamped to its start; 11:30 + 60 on D+1: clamped to its end.
    assert ev == [(start, 30), (sset - 900, 100), (end, 40)]
    assert s.level_at(start) == (30, "program:default")
    assert s.level_at(sset - 901)[0] == 30
    assert s.level_at(sset - 900)[0] == 100
    assert s.level_at(end - 1)[0] == 100
    # With a morning astro step, the same fixed steps are pulled into the astro night: nothing lit by day.
    s = program.Schedule(progs({"default": [step("sunset", 100, -15), step("sunrise", 0, 20),
                                            step("11:30", 40, 60), step("12:10", 30, -60)]}), cal([]), SITE)
    ev = s.events(d)
    assert ev == [(sset - 900, 100), (sset - 900, 30), (srise + 1200, 40), (srise + 1200, 0)]
    assert s.level_at(start)[0] == 0 and s.level_at(end - 1)[0] == 0 and s.level_at(sset - 900)[0] == 30


# ---------------------------------------------------------------- calendar


def _cal_schedule():
    p = progs({"default": [step("20:00", 10)], "weekend": [step("20:00", 20)], "sunday": [step("20:00", 25)],
               "eid": [step("20:00", 30)], "natal": [step("20:00", 40)], "ramadan": [step("20:00", 50)],
               "fest": [step("20:00", 60)]})
    c = cal([
        {"program": "weekend", "weekdays": [5, 6]},
        {"program": "sunday", "weekdays": [6], "priority": 5},
        {"program": "ramadan", "from": "2026-02-18", "to": "2026-03-19"},
        {"program": "eid", "dates": ["2026-03-20", "2026-03-21"], "priority": 10},
        {"program": "natal", "dates": ["12-25"]},
        {"program": "fest", "from": "2026-03-01", "to": "2026-03-07", "weekdays": [5], "priority": 1},
    ])
    return program.Schedule(p, c, SITE)


def test_special_beats_weekly_beats_default():
    s = _cal_schedule()
    D = timebase.days_from_civil
    assert s.program_for(D(2026, 1, 7)) == ("default", False)  # a Wednesday
    assert s.program_for(D(2026, 1, 10)) == ("weekend", False)  # Saturday
    assert s.program_for(D(2026, 1, 11)) == ("sunday", False)  # Sunday: priority 5 beats the weekend entry
    assert s.program_for(D(2026, 2, 21)) == ("ramadan", True)  # a Saturday inside Ramadan: special wins
    assert s.program_for(D(2026, 2, 17)) == ("default", False)
    assert s.program_for(D(2026, 3, 19)) == ("ramadan", True)
    assert s.program_for(D(2026, 3, 20)) == ("eid", True)
    assert s.program_for(D(2026, 3, 22)) == ("sunday", False)
    assert s.program_for(D(2026, 3, 7)) == ("fest", True)  # Saturday in range, priority 1 beats Ramadan's 0
    assert s.program_for(D(2026, 3, 6)) == ("ramadan", True)  # Friday: fest's weekday condition fails
    assert s.program_for(D(2026, 12, 25)) == ("natal", True)  # MM-DD: every year
    assert s.program_for(D(2031, 12, 25)) == ("natal", True)
    t = local(D(2026, 3, 20), 21)
    assert s.level_at(t) == (30, "special:eid")
    assert s.level_at(local(D(2026, 3, 21), 11)) == (30, "special:eid")  # still the night of the 20th
    assert s.level_at(local(D(2026, 1, 10), 21)) == (20, "program:weekend")


def test_priority_then_list_order():
    p = progs({"default": [step("20:00", 10)], "a": [step("20:00", 20)], "b": [step("20:00", 30)],
               "c": [step("20:00", 40)]})
    d = timebase.days_from_civil(2026, 8, 17)
    c = cal([{"program": "a", "dates": ["08-17"]}, {"program": "b", "dates": ["08-17"]},
             {"program": "c", "dates": ["2026-08-17"], "priority": 1}])
    s = program.Schedule(p, c, SITE)
    assert s.program_for(d) == ("c", True)
    assert s.program_for(d + 365) == ("a", True)  # 2027: c is dated 2026 only; a and b tie, a is first


def test_date_range_across_year_end():
    p = progs({"default": [step("sunset", 100)], "holidays": [step("sunset", 80)]})
    s = program.Schedule(p, cal([{"program": "holidays", "from": "2025-12-20", "to": "2026-01-05"}]), SITE)
    D = timebase.days_from_civil
    assert s.program_for(D(2025, 12, 19)) == ("default", False)
    for y, m, d in ((2025, 12, 20), (2025, 12, 31), (2026, 1, 1), (2026, 1, 5)):
        assert s.program_for(D(y, m, d)) == ("holidays", True)
    assert s.program_for(D(2026, 1, 6)) == ("default", False)
    assert s.program_for(D(2026, 12, 25)) == ("default", False)
    # The night of Jan 5 runs to noon of Jan 6.
    assert s.level_at(local(D(2026, 1, 6), 3)) == (80, "special:holidays")
    assert s.level_at(local(D(2026, 1, 6), 12)) == (100, "program:default")  # the cyclic rule: sunset's level


# ---------------------------------------------------------------- polar and DST


def test_polar_fail_toward_light():
    D = timebase.days_from_civil
    # 75 N in December: the sun never rises. Dusk at the night's start, dawn never comes: lights stay on.
    north = {"lat": 75.0, "lon": 15.0, "utc_offset_min": 60, "dst": None}
    s = program.Schedule(progs(), cal([]), north)
    d = D(2025, 12, 21)
    assert s.sun_events(d)[:2] == (None, None)
    for hh in (12, 15, 23):
        assert s.level_at(local(d, hh, 0, north))[0] > 0
    assert s.level_at(local(d + 1, 11, 59, north))[0] == 100
    assert s.level_at(local(d + 1, 12, 0, north))[0] == 100  # and the next night begins lit
    # 65 N at midsummer: sunset exists but civil dusk does not (white night): dusk never comes, dawn has happened.
    white = {"lat": 65.0, "lon": 25.0, "utc_offset_min": 120, "dst": None}
    s = program.Schedule(progs({"default": [step("civil_dusk", 100), step("civil_dawn", 0)]}), cal([]), white)
    d = D(2026, 6, 21)
    ev = s.sun_events(d)
    assert ev[0] is not None and ev[1] is not None and ev[2] is None and ev[3] is None
    for hh in (12, 18, 23):
        assert s.level_at(local(d, hh, 0, white))[0] == 0
    assert s.level_at(local(d + 1, 2, 0, white))[0] == 0


def test_dst_night_steps_follow_the_local_clock():
    # A Central-European site: DST from the last Sunday of March 02:00 to the last Sunday of October 03:00 summer.
    cet = timebase.SITE_SCHEMA.check({"lat": 52.0, "lon": 5.0, "utc_offset_min": 60, "dst": {
        "start": {"month": 3, "week": 5, "weekday": 6, "minute": 120},
        "end": {"month": 10, "week": 5, "weekday": 6, "minute": 120}}})
    d = timebase.days_from_civil(2026, 3, 28)  # Saturday; DST starts in this night
    s = program.Schedule(progs(), cal([]), cet)
    ev = s.events(d)
    u = d * 86400  # UTC midnight of the 28th
    assert ev[1] == (u + 22 * 3600, 60)  # 23:00 CET = 22:00 UTC
    assert ev[2] == (u + 86400 + 2 * 3600 + 1800, 100)  # 04:30 CEST = 02:30 UTC
    assert s.level_at(u + 86400 + 10 * 3600 - 1)[0] == 0  # 11:59:59 CEST: still this night, after sunrise
    assert s.night_of(u + 86400 + 10 * 3600) == d + 1  # 12:00 CEST


def test_fixed_morning_step_never_relights_after_sunrise():
    # Oslo in June: sunrise ≈ 03:55 local (UTC+2), before the default program's "04:30 → 100 %" step. That step must
    # not relight the lamp for the day; at noon and just after 04:30 the lamp is off.
    from firmware.timebase import days_from_civil, t2k_from_local

    site = {"lat": 59.91, "lon": 10.75, "utc_offset_min": 120, "dst": None}
    sch = program.Schedule(program.PROGRAMS_SCHEMA.make_default(), [], site)
    d = days_from_civil(2026, 6, 20)
    assert sch.level_at(t2k_from_local(d + 1, 4 * 60 + 45, site))[0] == 0
    assert sch.level_at(t2k_from_local(d + 1, 12 * 60, site))[0] == 0
    assert sch.level_at(t2k_from_local(d + 1, 1 * 60, site))[0] == 60  # the night's dimming still applies
