# runtimes: cpython micropython
"""firmware/timebase.py: civil dates, local time with DST, and the TimeKeeper's judgement of clocks."""

from mini import raises

from firmware import schema
from firmware.timebase import (
    SITE_SCHEMA,
    T2K_UNIX_OFFSET,
    TimeKeeper,
    civil_from_days,
    days_from_civil,
    local_offset_min,
    local_time,
    nth_weekday,
    split,
    t2k_from_local,
    weekday,
)


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _next(y, m, d):
    last = 29 if (m == 2 and _leap(y)) else _MONTH_DAYS[m - 1]
    if d < last:
        return (y, m, d + 1)
    if m < 12:
        return (y, m + 1, 1)
    return (y + 1, 1, 1)


# ---- dates ---------------------------------------------------------------------------------------------------

def test_epoch_and_known_day_numbers():
    assert days_from_civil(2000, 1, 1) == 0
    assert civil_from_days(0) == (2000, 1, 1)
    assert days_from_civil(2000, 3, 1) == 60  # 2000 is a leap year (divisible by 400)
    assert days_from_civil(2001, 1, 1) == 366
    assert days_from_civil(1970, 1, 1) * 86400 == -T2K_UNIX_OFFSET
    assert T2K_UNIX_OFFSET == 946684800


def test_every_day_2000_to_2100_walks_the_calendar():
    # An independent calendar (month table + leap rule) walked day by day must meet both functions on every day.
    ymd = (1999, 12, 31)
    n = days_from_civil(*ymd)
    assert n == -1
    end = days_from_civil(2101, 1, 1)
    while n < end:
        n += 1
        ymd = _next(*ymd)
        if n % 37 == 0 or ymd[2] == 29 and ymd[1] == 2:
            assert days_from_civil(*ymd) == n, (ymd, n)
        assert civil_from_days(n) == ymd, (n, ymd)
    assert ymd == (2101, 1, 1)


def test_round_trips_every_37_days_and_leap_edges():
    for n in range(-400, days_from_civil(2101, 1, 1), 37):
        assert days_from_civil(*civil_from_days(n)) == n
    assert civil_from_days(days_from_civil(2000, 2, 29)) == (2000, 2, 29)
    assert days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28) == 2
    assert days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28) == 1  # 2100 is not a leap year
    assert civil_from_days(days_from_civil(2100, 3, 1)) == (2100, 3, 1)
    assert civil_from_days(days_from_civil(2024, 2, 29)) == (2024, 2, 29)
    assert days_from_civil(2100, 12, 31) - days_from_civil(2000, 1, 1) == 36889


def test_weekdays_of_known_dates():
    known = (
        ((2000, 1, 1), 5),  # Saturday
        ((2001, 9, 11), 1),  # Tuesday
        ((1969, 7, 20), 6),  # Sunday: Apollo 11 landing
        ((1970, 1, 1), 3),  # Thursday: the Unix epoch
        ((2024, 2, 29), 3),  # Thursday
        ((2038, 1, 19), 1),  # Tuesday: the 32-bit Unix rollover
        ((2100, 1, 1), 4),  # Friday
        ((2100, 12, 31), 4),  # Friday
    )
    for ymd, wd in known:
        assert weekday(days_from_civil(*ymd)) == wd, ymd


def test_split_handles_day_edges_and_negatives():
    assert split(0) == (0, 0)
    assert split(86399) == (0, 86399)
    assert split(86400) == (1, 0)
    assert split(-1) == (-1, 86399)
    n, s = split(3187295999)  # 2100-12-31 23:59:59: a big int on 32-bit ports
    assert civil_from_days(n) == (2100, 12, 31) and s == 86399


def test_nth_weekday():
    assert civil_from_days(nth_weekday(2024, 3, 5, 6)) == (2024, 3, 31)  # last Sunday of March 2024
    assert civil_from_days(nth_weekday(2024, 10, 5, 6)) == (2024, 10, 27)
    assert civil_from_days(nth_weekday(2024, 10, 1, 6)) == (2024, 10, 6)  # first Sunday of October 2024
    assert civil_from_days(nth_weekday(2024, 2, 5, 3)) == (2024, 2, 29)  # last Thursday of Feb, leap day
    assert civil_from_days(nth_weekday(2024, 9, 2, 0)) == (2024, 9, 9)  # second Monday


# ---- local time and DST --------------------------------------------------------------------------------------

PADANG = {"lat": -0.95, "lon": 100.35, "utc_offset_min": 420, "dst": None}

# EU: last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC. In local STANDARD time (CET, UTC+1)
# both instants are 02:00 — the October one is 03:00 on the summer-time wall clock.
BERLIN = SITE_SCHEMA.check({
    "lat": 52.5, "lon": 13.4, "utc_offset_min": 60,
    "dst": {"start": {"month": 3, "week": 5, "weekday": 6, "minute": 120},
            "end": {"month": 10, "week": 5, "weekday": 6, "minute": 120}, "shift_min": 60},
})

# Southern hemisphere (Sydney): first Sunday of October 02:00 AEST to first Sunday of April 03:00 AEDT = 02:00 AEST.
SYDNEY = SITE_SCHEMA.check({
    "lat": -33.9, "lon": 151.2, "utc_offset_min": 600,
    "dst": {"start": {"month": 10, "week": 1, "weekday": 6, "minute": 120},
            "end": {"month": 4, "week": 1, "weekday": 6, "minute": 120}, "shift_min": 60},
})

# Transition instants (t2k) taken from the tz database, with the offset in force from that second on.
BERLIN_CHANGES = ((765162000, 120), (783306000, 60), (796611600, 120), (814755600, 60),
                  (954464400, 120), (972608400, 60), (3131744400, 120), (3149888400, 60))
SYDNEY_CHANGES = ((765734400, 600), (781459200, 660), (797184000, 600), (812908800, 660),
                  (955036800, 600), (970761600, 660), (3132316800, 600), (3148041600, 660))


def test_no_dst_is_the_plain_offset():
    for t in (0, 765162000, 3187295999):
        assert local_offset_min(t, PADANG) == 420
    # 2024-11-28 23:30 UTC is 06:30 on Friday 29th in Padang.
    t = days_from_civil(2024, 11, 28) * 86400 + 23 * 3600 + 1800
    assert local_time(t, PADANG) == (days_from_civil(2024, 11, 29), 2024, 11, 29, 4, 6 * 3600 + 1800, 420)


def test_european_rule_matches_tz_database():
    before = 60  # winter before the first listed change
    for t, after in BERLIN_CHANGES:
        assert local_offset_min(t - 1, BERLIN) == before, t
        assert local_offset_min(t, BERLIN) == after, t
        before = after
    assert local_offset_min(days_from_civil(2024, 7, 1) * 86400, BERLIN) == 120
    assert local_offset_min(days_from_civil(2024, 12, 24) * 86400, BERLIN) == 60


def test_southern_rule_matches_tz_database():
    before = 660  # January is summer in Sydney
    for t, after in SYDNEY_CHANGES:
        assert local_offset_min(t - 1, SYDNEY) == before, t
        assert local_offset_min(t, SYDNEY) == after, t
        before = after
    assert local_offset_min(days_from_civil(2024, 1, 15) * 86400, SYDNEY) == 660
    assert local_offset_min(days_from_civil(2024, 7, 15) * 86400, SYDNEY) == 600
    assert local_offset_min(days_from_civil(2024, 12, 31) * 86400 + 86399, SYDNEY) == 660


def test_local_time_across_spring_forward():
    t = 765162000  # 2024-03-31 01:00 UTC
    n = days_from_civil(2024, 3, 31)
    assert local_time(t - 1, BERLIN) == (n, 2024, 3, 31, 6, 2 * 3600 - 1, 60)  # 01:59:59 CET
    assert local_time(t, BERLIN) == (n, 2024, 3, 31, 6, 3 * 3600, 120)  # 03:00:00 CEST


def test_t2k_from_local_gap_overlap_and_plain():
    spring = days_from_civil(2024, 3, 31)
    autumn = days_from_civil(2024, 10, 27)
    # 02:30 does not exist on spring-forward day: read as standard time, it lands at 03:30 summer time.
    t = t2k_from_local(spring, 150, BERLIN)
    assert t == spring * 86400 + 3600 + 1800
    assert local_time(t, BERLIN)[5] == 3 * 3600 + 1800
    # 02:30 happens twice on fall-back day: the first (summer time, 00:30 UTC) is returned.
    assert t2k_from_local(autumn, 150, BERLIN) == autumn * 86400 + 1800
    # Plain summer and winter noons.
    assert t2k_from_local(days_from_civil(2024, 7, 1), 720, BERLIN) == days_from_civil(2024, 7, 1) * 86400 + 36000
    assert t2k_from_local(days_from_civil(2024, 12, 1), 720, BERLIN) == days_from_civil(2024, 12, 1) * 86400 + 39600
    # Padang: no DST; fractional and out-of-day minutes (astro events) are fine and round to the second.
    n = days_from_civil(2024, 11, 28)
    assert t2k_from_local(n, 360.5, PADANG) == n * 86400 - 420 * 60 + 21630
    assert t2k_from_local(n, -30, PADANG) == n * 86400 - 450 * 60
    assert t2k_from_local(n, 1445, PADANG) == (n + 1) * 86400 - 415 * 60
    assert t2k_from_local(n, -0.004, PADANG) == n * 86400 - 420 * 60


def test_local_round_trip_through_a_dst_year():
    checked = repeated = 0
    for site in (BERLIN, SYDNEY, PADANG):
        t = days_from_civil(2024, 1, 1) * 86400 + 37
        end = days_from_civil(2025, 1, 1) * 86400
        while t < end:
            n, y, m, d, wd, sod, off = local_time(t, site)
            assert (y, m, d) == civil_from_days(n) and wd == weekday(n)
            back = t2k_from_local(n, sod / 60.0, site)
            if back != t:  # only the second pass of the repeated fall-back hour may map elsewhere: to the first
                assert back == t - 3600 and local_offset_min(back, site) == off + 60, (t, back)
                repeated += 1
            checked += 1
            t += 86400 + 3600 * 2 + 11  # drifts through every hour of the day over the year
    assert checked > 900 and repeated <= 2
    # The repeated hour explicitly: its second pass maps to the first.
    t2 = 783306000 + 1800  # 2024-10-27 01:30 UTC = 02:30 CET, the second 02:30
    n, y, m, d, wd, sod, off = local_time(t2, BERLIN)
    assert off == 60 and sod == 9000 and t2k_from_local(n, 150, BERLIN) == t2 - 3600


# ---- schema --------------------------------------------------------------------------------------------------

def test_site_schema_defaults_are_padang():
    assert SITE_SCHEMA.make_default() == PADANG
    assert BERLIN["dst"]["shift_min"] == 60


def test_site_schema_refuses_bad_values_naming_the_field():
    e = raises(schema.Invalid, SITE_SCHEMA.check, {"lat": 70.0})
    assert e.path == "lat"
    e = raises(schema.Invalid, SITE_SCHEMA.check, {"utc_offset_min": 900})
    assert e.path == "utc_offset_min"
    rule = {"start": {"month": 3, "week": 6, "weekday": 6, "minute": 120},
            "end": {"month": 10, "week": 5, "weekday": 6, "minute": 120}}
    e = raises(schema.Invalid, SITE_SCHEMA.check, {"dst": rule})
    assert e.path == "dst.start.week"
    same = {"month": 3, "week": 5, "weekday": 6, "minute": 120}
    e = raises(schema.Invalid, SITE_SCHEMA.check, {"dst": {"start": same, "end": dict(same)}})
    assert e.path == "dst.end" and "differ" in str(e)
    e = raises(schema.Invalid, SITE_SCHEMA.check, {"dst": {"start": same, "end": same, "shift_min": 180}})
    assert e.path == "dst.shift_min"


# ---- TimeKeeper ----------------------------------------------------------------------------------------------

FLOOR = days_from_civil(2026, 1, 1) * 86400
NOW = days_from_civil(2026, 6, 15) * 86400 + 12 * 3600


def _synced():
    tk = TimeKeeper(FLOOR, 120)
    ok, why, delta = tk.offer("ntp", NOW, 0)
    assert ok and tk.valid and tk.source == "ntp" and tk.last_sync == NOW
    return tk


def test_unset_epochs_and_out_of_range_years_are_refused():
    tk = TimeKeeper(FLOOR, 120)
    ok, why, _ = tk.offer("ntp", -T2K_UNIX_OFFSET + 5, 0)  # 1970-01-01 00:00:05
    assert not ok and "1970" in why and not tk.valid
    ok, why, _ = tk.offer("cmd", 3600, 0)  # 2000-01-01 01:00, the ESP32's unset RTC
    assert not ok and "2000" in why
    ok, why, _ = tk.offer("ntp", days_from_civil(2101, 1, 1) * 86400, 0)
    assert not ok and "2101" in why
    ok, why, _ = tk.offer("ntp", days_from_civil(2023, 12, 31) * 86400, 0)
    assert not ok and "2023" in why
    ok, why, _ = tk.offer("ntp", days_from_civil(2025, 6, 1) * 86400, 0)  # plausible year, before the build
    assert not ok and "floor" in why
    ok, why, delta = tk.offer("ntp", 1.5e9, 0)
    assert not ok and delta == 0
    assert not tk.valid and tk.source is None and tk.last_sync is None


def test_first_plausible_time_is_accepted():
    tk = TimeKeeper(FLOOR, 120)
    ok, why, delta = tk.offer("ntp", NOW, 3600)  # RTC still near 2000-01-01 01:00
    assert ok and delta == NOW - 3600 and tk.valid


def test_small_correction_is_accepted_at_once():
    tk = _synced()
    ok, why, delta = tk.offer("ntp", NOW + 7200 + 90, NOW + 7200)
    assert ok and delta == 90 and tk.last_sync == NOW + 7290
    ok, why, delta = tk.offer("cmd", NOW + 9000 - 120, NOW + 9000)
    assert ok and delta == -120 and tk.source == "cmd"


def test_big_jump_needs_confirmation_from_the_same_source():
    tk = _synced()
    rtc = NOW + 600
    ok, why, delta = tk.offer("ntp", rtc + 3600, rtc)  # one answer an hour ahead
    assert not ok and delta == 3600 and "confirm" in why
    assert tk.valid and tk.last_sync == NOW  # the clock is left alone
    ok, why, delta = tk.offer("ntp", rtc + 64 + 3602, rtc + 64)  # the next poll says the same
    assert ok and delta == 3602 and "ntp" in why and tk.last_sync == rtc + 64 + 3602


def test_big_jump_confirmed_by_another_source():
    tk = _synced()
    assert not tk.offer("ntp", NOW + 86400, NOW)[0]
    ok, why, _ = tk.offer("cmd", NOW + 30 + 86400 - 3, NOW + 30)
    assert ok and tk.source == "cmd" and "ntp" in why


def test_disagreeing_big_jumps_are_never_accepted():
    tk = _synced()
    rtc = NOW
    for k in range(6):  # a source that answers something different every time keeps the clock untouched
        rtc += 60
        ok, why, _ = tk.offer("ntp", rtc + 1000 * (k + 1), rtc)
        assert not ok
    assert tk.last_sync == NOW
    # A stale pending answer (beyond the window) does not confirm a later one either.
    tk.offer("ntp", rtc + 5000, rtc)
    assert not tk.offer("ntp", rtc + 4000 + 5000, rtc + 4000)[0]
    # A correction in between clears what was pending.
    tk.offer("ntp", rtc + 9000 + 5000, rtc + 9000)
    assert tk.offer("ntp", rtc + 9060 + 10, rtc + 9060)[0]
    assert not tk.offer("ntp", rtc + 9120 + 5000, rtc + 9120)[0]


def test_boot_believes_a_plausible_rtc():
    tk = TimeKeeper(FLOOR, 120)
    ok, why = tk.boot(NOW, NOW - 3000)  # soft reset: RTC ran on past the last persisted valid time
    assert ok and tk.valid and tk.source == "rtc" and tk.last_sync is None
    tk = TimeKeeper(FLOOR, 120)
    assert tk.boot(NOW, None)[0]  # no persisted time yet, but the RTC is past the build floor
    tk = TimeKeeper(FLOOR, 120)
    assert tk.boot(NOW, NOW + 60)[0]  # a small backward correction after the persist is tolerated


def test_boot_refuses_an_implausible_rtc():
    tk = TimeKeeper(FLOOR, 120)
    ok, why = tk.boot(5, NOW)  # power cycle: the ESP32 RTC restarts at 2000-01-01
    assert not ok and not tk.valid and "2000" in why
    tk = TimeKeeper(FLOOR, 120)
    ok, why = tk.boot(NOW - 86400, NOW)  # behind the last time known to be valid
    assert not ok and "last valid" in why
    tk = TimeKeeper(FLOOR, 120)
    ok, why = tk.boot(NOW + 5 * 365 * 86400, NOW)  # years ahead of the last valid time
    assert not ok and "far" in why
    tk = TimeKeeper(FLOOR, 120)
    ok, why = tk.boot(FLOOR - 86400, None)  # before the firmware was built
    assert not ok and "floor" in why


def test_after_refused_boot_time_cannot_go_back_past_the_persisted_time():
    tk = TimeKeeper(FLOOR, 120)
    tk.boot(5, NOW)
    ok, why, _ = tk.offer("cmd", NOW - 86400, 5)
    assert not ok and "last valid" in why
    ok, why, _ = tk.offer("ntp", NOW + 3600, 5)
    assert ok and tk.valid and tk.source == "ntp"
