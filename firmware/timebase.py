"""Civil time on the t2k timeline: days <-> dates, local offset with DST, and whether the clock can be believed."""

from firmware import schema
from firmware.compat import const

# t2k = seconds since 2000-01-01 00:00 UTC (the ESP32 epoch); add this to get Unix seconds.
T2K_UNIX_OFFSET = const(946684800)
DAY_S = const(86400)

# Days from 0000-03-01 (proleptic Gregorian, years counted from March so the leap day ends a year) to 2000-01-01.
_EPOCH_SHIFT = const(730425)

# Hard plausibility window for any time we accept: 2024-01-01 .. 2101-01-01 (exclusive). Anything outside is an
# unset RTC (2000 on ESP32, 1970 on Unix-style sources), a wrapped counter or a bad command.
T2K_MIN_PLAUSIBLE = const(757382400)  # 2024-01-01 00:00 UTC
T2K_MAX_PLAUSIBLE = 3187296000  # 2101-01-01 00:00 UTC (no const: past a 31-bit small int on ESP32)


def days_from_civil(y, m, d):
    """Days since 2000-01-01 of the proleptic Gregorian date y-m-d (negative before 2000). Integers only."""
    if m <= 2:
        y -= 1
        mp = m + 9  # Jan, Feb are months 10, 11 of the March-based year
    else:
        mp = m - 3
    era = y // 400  # floor division keeps this right for years before 0 too
    yoe = y - era * 400  # 0..399
    doy = (153 * mp + 2) // 5 + d - 1  # day of the March-based year, 0..365
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy  # day of the 400-year era, 0..146096
    return era * 146097 + doe - _EPOCH_SHIFT


def civil_from_days(n):
    """(y, m, d) of day n since 2000-01-01; the inverse of days_from_civil."""
    z = n + _EPOCH_SHIFT
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400
    if m <= 2:
        y += 1
    return (y, m, d)


def weekday(n):
    """Weekday of day n since 2000-01-01: 0 = Monday .. 6 = Sunday (2000-01-01 was a Saturday)."""
    return (n + 5) % 7


def split(t2k):
    """(days since 2000-01-01, seconds of that UTC day 0..86399)."""
    n = t2k // DAY_S
    return (n, t2k - n * DAY_S)


def month_days(y, m):
    """Number of days in month m of year y."""
    if m == 12:
        return days_from_civil(y + 1, 1, 1) - days_from_civil(y, 12, 1)
    return days_from_civil(y, m + 1, 1) - days_from_civil(y, m, 1)


def nth_weekday(y, m, week, wd):
    """Day number of the `week`-th weekday `wd` (0 = Monday) of month m; week 5 means the last one in the month."""
    if week >= 5:
        last = days_from_civil(y, m, month_days(y, m))
        return last - (weekday(last) - wd) % 7
    first = days_from_civil(y, m, 1)
    return first + (wd - weekday(first)) % 7 + 7 * (week - 1)


# ---- configuration: the "site" section -------------------------------------------------------------------------

def _transition():
    return schema.Dict(
        {
            "month": schema.Int(1, 12, doc="month of the change"),
            "week": schema.Int(1, 5, doc="which occurrence of the weekday in the month; 5 = the last"),
            "weekday": schema.Int(0, 6, doc="0 = Monday .. 6 = Sunday"),
            "minute": schema.Int(0, 1439, doc="minute of the day, in local STANDARD time, when the change happens"),
        },
        doc="a yearly instant: the week-th weekday of a month, at a minute of local standard time",
    )


def _check_rule(rule, path):
    s, e = rule["start"], rule["end"]
    if s["month"] == e["month"] and s["week"] == e["week"] and s["weekday"] == e["weekday"] \
            and s["minute"] == e["minute"]:
        raise schema.Invalid(path + ".end" if path else "end", "must differ from start")


def _dst_rule():
    return schema.Dict(
        {
            "start": _transition(),
            "end": _transition(),
            "shift_min": schema.Int(0, 120, default=60, doc="minutes added to utc_offset_min while DST is in force"),
        },
        check=_check_rule,
        doc="daylight saving time: in force from start to end (both in local standard time); start may fall later "
            "in the year than end (southern hemisphere)",
    )


def _site():
    return schema.Dict(
        {
            "lat": schema.Float(-65.0, 65.0, default=-0.95, doc="latitude, degrees north"),
            "lon": schema.Float(-180.0, 180.0, default=100.35, doc="longitude, degrees east"),
            "utc_offset_min": schema.Int(-720, 840, default=420, doc="standard time offset from UTC, minutes"),
            "dst": schema.Nullable(_dst_rule(), default=None, doc="daylight saving rule, or null for none"),
        },
        doc="where the lamp post stands and which civil time it keeps",
    )


SITE_SCHEMA = schema.Lazy(_site)


# ---- local time --------------------------------------------------------------------------------------------------

def _transition_t2k(y, tr, base_min):
    """t2k of a DST transition of year y; the rule's minute is local standard time (UTC + base_min)."""
    n = nth_weekday(y, tr["month"], tr["week"], tr["weekday"])
    return n * DAY_S + (tr["minute"] - base_min) * 60


def local_offset_min(t2k, site_cfg):
    """UTC offset in minutes in force at t2k: utc_offset_min, plus shift_min while the DST rule is in force."""
    base = site_cfg["utc_offset_min"]
    rule = site_cfg.get("dst")
    if rule is None or rule["shift_min"] == 0:
        return base
    # The year is taken from local standard time: transitions never sit on New Year's night in real rules, and
    # with both instants of the same year this reads the same for northern and southern rules.
    y = civil_from_days((t2k + base * 60) // DAY_S)[0]
    start = _transition_t2k(y, rule["start"], base)
    end = _transition_t2k(y, rule["end"], base)
    if start < end:  # northern hemisphere: DST is the middle of the year
        on = start <= t2k < end
    elif start > end:  # southern hemisphere: DST spans New Year
        on = t2k >= start or t2k < end
    else:
        on = False
    return base + rule["shift_min"] if on else base


def local_time(t2k, site_cfg):
    """The local civil time at t2k as (days, y, m, d, weekday, sec_of_day, offset_min).

    days: local date as days since 2000-01-01 (use it for calendars and astro); weekday 0 = Monday;
    sec_of_day: 0..86399 seconds since local midnight; offset_min: the UTC offset in force (DST included).
    """
    off = local_offset_min(t2k, site_cfg)
    n, sod = split(t2k + off * 60)
    y, m, d = civil_from_days(n)
    return (n, y, m, d, weekday(n), sod, off)


def _round(x):
    # Round half up to an int without math; int() truncates toward zero so negatives need the floor.
    i = int(x)
    if i > x:
        i -= 1
    return i + 1 if x - i >= 0.5 else i


def t2k_from_local(days_local, minute, site_cfg):
    """t2k of local wall-clock `minute` (int or float, may be < 0 or >= 1440) after local midnight of day days_local.

    DST edges: a wall time that does not exist (the spring-forward gap) is read as standard time, which lands it
    just after the gap (02:30 -> 03:30 summer time); a wall time that happens twice (fall back) gives the first,
    summer-time, instant.
    """
    wall = days_local * DAY_S + _round(minute * 60)
    base = site_cfg["utc_offset_min"]
    t_std = wall - base * 60
    rule = site_cfg.get("dst")
    if rule is None or rule["shift_min"] == 0:
        return t_std
    summer = base + rule["shift_min"]
    t_dst = wall - summer * 60
    if local_offset_min(t_dst, site_cfg) == summer:
        return t_dst  # valid as summer time; when also valid as standard time this is the earlier instant
    return t_std


# ---- is the clock believable? --------------------------------------------------------------------------------------

class TimeKeeper:
    """Judges the RTC at boot and every new time offered by NTP or an operator; pure, the caller owns the RTC.

    Rules (TALQ Time function; a node must never run a schedule on a wrong clock, and a flaky time source must
    not shake a clock that is already right):
    - Any time before `min_t2k` (the firmware's build floor), before 2024 or from 2101 on is refused: that is an
      unset RTC (2000 epoch), a 1970-epoch source, or garbage.
    - At boot the RTC, which keeps running across a soft reset, is believed when it is past the floor, not before
      the last time persisted as valid (less `max_jump_s` of slack for a backward correction made after the
      persist), and not more than `max_boot_gap_s` after it.
    - While time is not valid, the first plausible offer is accepted.
    - While time is valid, an offer within `max_jump_s` of the RTC is accepted at once (drift correction). A bigger
      jump is held as pending and accepted only when a second offer - from the same source later, or from another
      source - implies the same clock error within `confirm_tol_s`, within `confirm_window_s` of RTC time. A
      disagreeing big offer replaces the pending one; any accepted offer clears it.
    """

    def __init__(self, min_t2k, max_jump_s, confirm_tol_s=10, confirm_window_s=3600, max_boot_gap_s=400 * 86400):
        self.min_t2k = min_t2k if min_t2k > T2K_MIN_PLAUSIBLE else T2K_MIN_PLAUSIBLE
        self.max_jump_s = max_jump_s
        self.confirm_tol_s = confirm_tol_s
        self.confirm_window_s = confirm_window_s
        self.max_boot_gap_s = max_boot_gap_s
        self.floor = self.min_t2k  # raised by a persisted valid time: time never goes back past it
        self.valid = False
        self.source = None  # "rtc" when believed at boot, else the source of the last accepted offer
        self.last_sync = None  # t2k of the last accepted offer
        self._pending = None  # (source, delta_s, rtc_now) of an unconfirmed big jump

    def _implausible(self, t2k):
        """A reason string when t2k cannot be a real current time, else None."""
        if isinstance(t2k, bool) or not isinstance(t2k, int):
            return "not an integer"
        if t2k < T2K_MIN_PLAUSIBLE or t2k >= T2K_MAX_PLAUSIBLE:
            y = civil_from_days(t2k // DAY_S)[0]
            if y == 1970:
                return "1970 epoch (unset clock)"
            if y == 2000:
                return "2000 epoch (unset clock)"
            return "year %d outside 2024..2100" % y
        if t2k < self.min_t2k:
            return "before build floor"
        if t2k < self.floor:
            return "before last valid time"
        return None

    def boot(self, rtc_now, persisted_valid_t2k):
        """Decide whether the RTC reading at boot can be believed. Returns (valid, reason)."""
        self._pending = None
        self.last_sync = None
        if persisted_valid_t2k is not None and persisted_valid_t2k - self.max_jump_s > self.floor:
            self.floor = persisted_valid_t2k - self.max_jump_s
        why = self._implausible(rtc_now)
        if why is None and persisted_valid_t2k is not None and rtc_now - persisted_valid_t2k > self.max_boot_gap_s:
            why = "too far after last valid time"
        self.valid = why is None
        self.source = "rtc" if self.valid else None
        return (self.valid, "rtc believed" if self.valid else why)

    def offer(self, source, t2k_candidate, rtc_now):
        """Judge a new time from `source` ("ntp", "cmd", ...). Returns (accepted, reason, delta_s).

        delta_s = candidate - rtc_now (0 when the candidate is not an integer). On acceptance the caller sets the
        RTC to the candidate.
        """
        why = self._implausible(t2k_candidate)
        if why is not None:
            ok_int = isinstance(t2k_candidate, int) and not isinstance(t2k_candidate, bool)
            return (False, why, t2k_candidate - rtc_now if ok_int else 0)
        delta = t2k_candidate - rtc_now
        if not self.valid:
            return self._accept(source, t2k_candidate, delta, "first valid time")
        if -self.max_jump_s <= delta <= self.max_jump_s:
            return self._accept(source, t2k_candidate, delta, "correction")
        p = self._pending
        if p is not None and rtc_now - p[2] <= self.confirm_window_s and rtc_now >= p[2] \
                and -self.confirm_tol_s <= delta - p[1] <= self.confirm_tol_s:
            how = "jump confirmed by " + (p[0] if p[0] != source else "second " + source)
            return self._accept(source, t2k_candidate, delta, how)
        self._pending = (source, delta, rtc_now)
        return (False, "jump of %d s needs confirmation" % delta, delta)

    def _accept(self, source, t2k, delta, reason):
        self.valid = True
        self.source = source
        self.last_sync = t2k
        self._pending = None
        return (True, reason, delta)
